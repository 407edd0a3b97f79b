#!/usr/bin/env python3
"""Soak: the main job on the Flink cluster under a steady live load whose ids rotate.

    scripts/stack.sh up && scripts/flink.sh start
    .venv/bin/python -m scripts.bench.soak --minutes 120 --rate 1000

1. creates a calls topic and a data-actions topic (2 partitions each) and a fresh keyspace;
2. submits the main job with scripts/submit_flink.sh cluster (its production defaults:
   RocksDB, checkpoints every 60 s, Cassandra sink), reading both topics;
3. produces `--rate` records/s for `--minutes`, stamped with the send time, from a rotating
   population (testing/datagen/rotating.py: new queue and customer ids every `--rotate-seconds`,
   the old ones idle; call ids are always new); `--interaction-share` of them are
   interactions, the rest ended calls;
4. every `--sample-minutes` records: RSS of the TaskManager JVM and of the Python SDK workers
   (/proc), the latest completed checkpoint (full and incremental size, duration) and its state
   size per job vertex (Flink REST checkpoint details: per chain of operators, the finest the
   REST API gives), the row latency of the rows settled since the last sample (when the row
   last changed in Cassandra, 2 s polls, minus window end + the 10 s watermark delay: the job
   writes early panes, so the first value is not the final one) and the consumer lag (offsets
   are committed at checkpoints: about a checkpoint interval of records);
5. stops producing, waits for the last windows, checks the abandon_metrics rows against
   reference_call_metrics of every call produced (exact), cancels the job and cleans up.

Writes samples.json and samples.csv into --out, and prints per curve the value after the
warm-up (`--warmup-minutes`, the issue's first hour; half the run when the run is shorter)
and at the end, and whether it stayed within 10 %. Exit 1 when the rows are not exact.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

from scripts.bench.flink import processes, rest, wait_for_free_cluster
from testing.datagen.rotating import RotatingPopulation
from testing.reference.calls import comparable_rows, reference_call_metrics

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get('RUN_DIR', REPO / '.run'))
WATERMARK_DELAY_S = 10
# the curves the summary judges: sample key -> label
CURVES = {
  'taskmanager_rss_mib': 'TaskManager RSS (MiB)',
  'workers_rss_mib': 'Python workers RSS (MiB)',
  'checkpoint_full_mib': 'checkpoint full size (MiB)',
  'checkpoint_incremental_mib': 'checkpoint incremental size (MiB)',
  'checkpoint_duration_s': 'checkpoint duration (s)',
  'row_latency_p50_s': 'row latency p50 (s)',
  'row_latency_p99_s': 'row latency p99 (s)',
}


def rss_mib(pid: int) -> float:
  try:
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) / 1024
  except OSError:
    pass
  return 0.0


class Producer(threading.Thread):
  """`rate` records/s, stamped with the send time, until stop(); every call is also
  appended to `produced` (the reference's input)."""

  def __init__(self, population, calls_topic, actions_topic, bootstrap, rate, share, produced):
    super().__init__(daemon=True)
    self.population, self.bootstrap, self.rate, self.share = population, bootstrap, rate, share
    self.calls_topic, self.actions_topic, self.produced = calls_topic, actions_topic, produced
    self.calls = self.interactions = 0
    self.error: Optional[BaseException] = None
    self._halt = threading.Event()

  def stop(self):
    self._halt.set()
    self.join()
    if self.error:
      raise self.error

  def run(self):
    try:
      from kafka import KafkaProducer

      producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks='all', linger_ms=20)
      rng = self.population.rng
      t0 = time.time()
      sent = 0
      with open(self.produced, 'ab') as out:
        while not self._halt.is_set():
          due = int((time.time() - t0) * self.rate)
          while sent < due:
            now = int(time.time() * 1000)
            if self.actions_topic and rng.random() < self.share:
              line = self.population.interaction(now)
              producer.send(self.actions_topic, value=line, timestamp_ms=now)
              self.interactions += 1
            else:
              line, _ = self.population.call(now)
              producer.send(self.calls_topic, value=line, timestamp_ms=now)
              out.write(line + b'\n')
              self.calls += 1
            sent += 1
          time.sleep(0.01)
      producer.flush()
      producer.close()
    except BaseException as exc:  # pylint: disable=broad-except
      self.error = exc


class RowWatcher(threading.Thread):
  """Polls abandon_metrics every `interval` s and notes when each row last changed: the
  job writes early panes before a window closes, so a row's latency is that of its last
  (on-time) value, not of its first."""

  def __init__(self, session, keyspace: str, interval: float = 2.0):
    super().__init__(daemon=True)
    self.session, self.keyspace, self.interval = session, keyspace, interval
    self.values: Dict[tuple, list] = {}
    self.changed_at: Dict[tuple, float] = {}
    self.reported = set()
    self._halt = threading.Event()

  def stop(self):
    self._halt.set()
    self.join()

  def poll(self) -> Dict[tuple, list]:
    try:
      result = self.session.execute(
        f'SELECT queue_id, window_start, total_calls, abandoned_calls, short_abandoned_calls, '
        f'answered_within_sl, total_wait_seconds, window_end, abandon_rate, service_level '
        f'FROM {self.keyspace}.abandon_metrics',
        timeout=30,
      )
    except Exception:  # pylint: disable=broad-except
      return {}  # keyspace not there yet, or Cassandra busy: the next poll will tell
    now = time.time()
    rows = {}
    for r in result:
      key = (r.queue_id, r.window_start)
      rows[key] = [
        r.total_calls,
        r.abandoned_calls,
        r.short_abandoned_calls,
        r.answered_within_sl,
        round(r.total_wait_seconds, 6),
        r.window_end,
        r.abandon_rate,
        r.service_level,
      ]
      if self.values.get(key) != rows[key]:
        self.changed_at[key] = now
    self.values = rows
    return rows

  def settled_latencies(self, settle_s: float) -> List[float]:
    """Latency (last change - window end - watermark delay) of the rows whose window ended
    more than `settle_s` ago and that no earlier call reported."""
    now = time.time()
    out = []
    for key, at in list(self.changed_at.items()):
      end_s = self.values.get(key, [0] * 6)[5] / 1000
      if key in self.reported or not end_s or now - end_s < settle_s:
        continue
      self.reported.add(key)
      out.append(at - (end_s + WATERMARK_DELAY_S))
    return out

  def run(self):
    while not self._halt.wait(self.interval):
      self.poll()


def checkpoint_sample(jid: str, names: Dict[str, str]) -> dict:
  """The latest completed checkpoint: sizes, duration, and state size per vertex."""
  try:
    stats = rest(f'/jobs/{jid}/checkpoints')
  except Exception:  # pylint: disable=broad-except
    return {}
  latest = (stats.get('latest') or {}).get('completed')
  if not latest:
    return {'checkpoints_completed': stats.get('counts', {}).get('completed', 0)}
  out = {
    'checkpoint_id': latest['id'],
    'checkpoints_completed': stats['counts']['completed'],
    'checkpoints_failed': stats['counts']['failed'],
    'checkpoints_restored': stats['counts']['restored'],
    'checkpoint_full_mib': round(latest['state_size'] / 2**20, 3),
    'checkpoint_incremental_mib': round(latest.get('checkpointed_size', 0) / 2**20, 3),
    'checkpoint_duration_s': round(latest['end_to_end_duration'] / 1000, 2),
  }
  try:
    details = rest(f'/jobs/{jid}/checkpoints/details/{latest["id"]}')
    out['state_mib_per_vertex'] = {
      names.get(vid, vid): round(task['state_size'] / 2**20, 3)
      for vid, task in details.get('tasks', {}).items()
    }
  except Exception:  # pylint: disable=broad-except
    pass
  return out


def pct(values: List[float], q: float) -> Optional[float]:
  if not values:
    return None
  values = sorted(values)
  return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def consumer_lag(admin, group: str, end_offsets) -> Optional[int]:
  try:
    committed = admin.list_group_offsets(group).get(group, {})
    ends = end_offsets()
    return sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items() if tp in ends)
  except Exception:  # pylint: disable=broad-except
    return None


def take_sample(t0, jid, names, watcher, producer, settle_s, lag) -> dict:
  procs = processes()
  lat = watcher.settled_latencies(settle_s)
  sample = {
    'minute': round((time.time() - t0) / 60, 2),
    'job_state': rest(f'/jobs/{jid}')['state'],
    'calls_produced': producer.calls,
    'interactions_produced': producer.interactions,
    'consumer_lag': lag,
    'taskmanager_rss_mib': round(sum(rss_mib(p) for p in procs['taskmanager']), 1),
    'workers_rss_mib': round(sum(rss_mib(p) for p in procs['python_workers']), 1),
    'python_workers': len(procs['python_workers']),
    'rows_seen': len(watcher.values),
    'rows_settled': len(lat),
    'row_latency_p50_s': pct(lat, 0.5),
    'row_latency_p99_s': pct(lat, 0.99),
    'row_latency_max_s': pct(lat, 1.0),
  }
  sample.update(checkpoint_sample(jid, names))
  return sample


def summarize(samples: List[dict], warmup_min: float, tolerance: float = 0.10) -> dict:
  """Per curve, and per vertex for the state: the mean of the first quarter of the samples
  after the warm-up against the mean of the last quarter; flat when within `tolerance`."""
  settled = [s for s in samples if s['minute'] >= warmup_min]
  out = {}
  if len(settled) < 2:
    return out
  k = max(1, len(settled) // 4)
  vertices = {v for s in settled for v in s.get('state_mib_per_vertex', {})}
  curves = {**CURVES, **{f'state of {v}': f'state MiB: {v}' for v in sorted(vertices)}}

  def value(sample, key):
    if key.startswith('state of '):
      return sample.get('state_mib_per_vertex', {}).get(key[len('state of ') :])
    return sample.get(key)

  for key, label in curves.items():
    head = [value(s, key) for s in settled[:k] if value(s, key) is not None]
    tail = [value(s, key) for s in settled[-k:] if value(s, key) is not None]
    if not head or not tail:
      continue
    a, b = statistics.mean(head), statistics.mean(tail)
    change = (b - a) / a if a else 0.0
    out[label] = {
      'after_warmup': round(a, 2),
      'end': round(b, 2),
      'change_pct': round(100 * change, 1),
      'flat_within_10pct': abs(change) <= tolerance,
    }
  return out


def write_samples(out_dir: Path, samples: List[dict]) -> None:
  (out_dir / 'samples.json').write_text(json.dumps(samples, indent=1))
  flat = [{k: v for k, v in s.items() if not isinstance(v, dict)} for s in samples]
  keys = sorted({k for s in flat for k in s}, key=lambda k: (k != 'minute', k))
  with open(out_dir / 'samples.csv', 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=keys)
    writer.writeheader()
    writer.writerows(flat)


def rows_diff(rows: dict, expected: dict) -> str:
  missing = [k for k in expected if k not in rows]
  wrong = [k for k in expected if k in rows and rows[k] != expected[k]]
  extra = [k for k in rows if k not in expected]
  sample = {k: (rows[k], expected[k]) for k in wrong[:3]}
  return (
    f'{len(rows)} rows for {len(expected)} expected: {len(missing)} missing, '
    f'{len(wrong)} differ {sample}, {len(extra)} unexpected {extra[:3]}'
  )


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--minutes', type=float, default=120, help='minutes of load')
  p.add_argument('--rate', type=float, default=1000, help='records per second')
  p.add_argument('--sample-minutes', type=float, default=5)
  p.add_argument('--rotate-seconds', type=float, default=60, help='a new generation of ids')
  p.add_argument('--queues', type=int, default=8, help='queues of each generation')
  p.add_argument('--customers', type=int, default=200, help='customers of each generation')
  p.add_argument(
    '--interaction-share',
    type=float,
    default=0.1,
    help='share of the records that are interactions (data actions topic; 0: calls only)',
  )
  p.add_argument('--window-seconds', type=int, default=60)
  p.add_argument('--checkpoint-ms', type=int, default=60000)
  p.add_argument(
    '--warmup-minutes', type=float, default=60, help='capped at half the run (summary)'
  )
  # The stack's scripts take their ports from the environment (scripts/stack/kafka.sh,
  # cassandra.sh): a soak on a second stack beside the default one uses the same names.
  p.add_argument('--bootstrap', default=os.environ.get('KAFKA_BOOTSTRAP', '127.0.0.1:9092'))
  p.add_argument(
    '--cassandra-port', type=int, default=int(os.environ.get('CASSANDRA_PORT', '9042'))
  )
  p.add_argument('--out', default=None, help='directory of samples.json/csv (default: a temp dir)')
  p.add_argument('--keep', action='store_true', help='keep topics and keyspace')
  p.add_argument('--seed', type=int, default=1)
  p.add_argument('job_args', nargs='*', help='extra job args for submit_flink.sh')
  return p


def run(args) -> dict:
  """The whole soak; returns {'samples', 'summary', 'rows_exact', ...}."""
  from cassandra.cluster import Cluster
  from kafka import KafkaConsumer, TopicPartition
  from kafka.admin import KafkaAdminClient, NewTopic

  out_dir = Path(args.out or tempfile.mkdtemp(prefix='soak_'))
  out_dir.mkdir(parents=True, exist_ok=True)
  tag = uuid.uuid4().hex[:8]
  calls_topic, actions_topic = f'soak-{tag}', f'soak-{tag}-actions'
  keyspace, name = f'soak_{tag}', f'soak-{tag}'
  share = args.interaction_share
  admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
  topics = [calls_topic] + ([actions_topic] if share > 0 else [])
  admin.create_topics([NewTopic(t, 2, 1) for t in topics])
  consumer = KafkaConsumer(bootstrap_servers=args.bootstrap)
  tps = [TopicPartition(t, p) for t in topics for p in range(2)]

  def end_offsets():
    return consumer.end_offsets(tps)

  cluster = Cluster(['127.0.0.1'], port=args.cassandra_port)
  session = cluster.connect()
  produced = out_dir / 'produced_calls.jsonl'
  produced.write_bytes(b'')
  cmd = [
    str(REPO / 'scripts' / 'submit_flink.sh'),
    'cluster',
    '--detach',
    f'--job_name={name}',
    f'--kafka_call_events_topic={calls_topic}',
    f'--kafka_data_actions_topic={actions_topic if share > 0 else ""}',
    f'--kafka_consumer_group={name}',
    '--sink=cassandra',
    f'--cassandra_keyspace={keyspace}',
    f'--cassandra_port={args.cassandra_port}',
    f'--window_seconds={args.window_seconds}',
    f'--checkpointing_interval={args.checkpoint_ms}',
    *args.job_args,
  ]
  result = {'command': ' '.join(sys.argv), 'out': str(out_dir), 'job': name}
  jid = None
  watcher = producer = None
  try:
    wait_for_free_cluster()
    env = dict(os.environ, RUN_DIR=str(RUN_DIR), KAFKA_BOOTSTRAP=args.bootstrap)
    env.setdefault('BEAM_PYTHON', sys.executable)  # a checkout without its own .venv
    sub = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    if sub.returncode:
      raise RuntimeError(f'submit_flink.sh failed:\n{sub.stdout}\n{sub.stderr[-3000:]}')
    jobs = sorted(
      (j for j in rest('/jobs/overview')['jobs'] if j['name'] == name),
      key=lambda j: j['start-time'],
    )
    jid = jobs[-1]['jid']
    names = {v['id']: v['name'][:80] for v in rest(f'/jobs/{jid}')['vertices']}
    print(f'job {name} ({jid}) RUNNING; samples in {out_dir}', flush=True)
    population = RotatingPopulation(
      seed=args.seed, rotate_s=args.rotate_seconds, queues=args.queues, customers=args.customers
    )
    watcher = RowWatcher(session, keyspace)
    watcher.start()
    producer = Producer(
      population, calls_topic, actions_topic, args.bootstrap, args.rate, share, produced
    )
    t0 = time.time()
    producer.start()
    samples: List[dict] = []
    # a row is final once its window is this far behind: the watermark delay plus slack
    settle_s = WATERMARK_DELAY_S + 120
    end = t0 + args.minutes * 60
    next_sample = t0 + args.sample_minutes * 60
    while True:
      time.sleep(min(5, max(0.1, min(next_sample, end) - time.time())))
      if producer.error:
        raise producer.error
      last = time.time() >= end
      if time.time() >= next_sample or last:  # and one at the end of the load
        lag = consumer_lag(admin, name, end_offsets)
        sample = take_sample(t0, jid, names, watcher, producer, settle_s, lag)
        samples.append(sample)
        write_samples(out_dir, samples)
        print(json.dumps({k: v for k, v in sample.items() if not isinstance(v, dict)}), flush=True)
        next_sample += args.sample_minutes * 60
      if last:
        break
    producer.stop()
    t_stop = time.time()
    print(
      f'produced {producer.calls} calls and {producer.interactions} interactions in '
      f'{(t_stop - t0) / 60:.1f} min; checking rows',
      flush=True,
    )
    t = time.monotonic()
    ref = reference_call_metrics(str(produced), window_size_s=args.window_seconds)
    expected = {k: [*v[:4], round(v[4], 6), *v[5:]] for k, v in comparable_rows(ref).items()}
    result['reference_s'] = round(time.monotonic() - t, 1)
    result['late_in_reference'] = len(ref.late)
    deadline = time.time() + args.window_seconds + 300
    rows = {}
    while time.time() < deadline:
      rows = watcher.poll()
      if rows == expected:
        break
      time.sleep(2)
    result['rows_exact'] = rows == expected
    result['rows'] = rows_diff(rows, expected)
    result['rows_exact_after_s'] = round(time.time() - t_stop, 1)
    result['calls'] = producer.calls
    result['interactions'] = producer.interactions
    result['minutes_run'] = round((t_stop - t0) / 60, 1)
    result['final_state_mib_per_vertex'] = checkpoint_sample(jid, names).get('state_mib_per_vertex')
    result['samples'] = samples
    warmup = min(args.warmup_minutes, (t_stop - t0) / 120)
    result['warmup_minutes'] = round(warmup, 1)
    result['summary'] = summarize(samples, warmup)
    (out_dir / 'result.json').write_text(json.dumps(result, indent=1, default=str))
    return result
  finally:
    if producer is not None and producer.is_alive():
      producer._halt.set()  # pylint: disable=protected-access
    if watcher is not None:
      watcher.stop()
    if jid:
      try:
        rest(f'/jobs/{jid}?mode=cancel', method='PATCH')
      except Exception:  # pylint: disable=broad-except
        pass
    if not args.keep:
      try:
        session.execute(f'DROP KEYSPACE IF EXISTS {keyspace}', timeout=120)
        admin.delete_topics(topics)
      except Exception as exc:  # pylint: disable=broad-except
        print(f'cleanup: {exc}')
    consumer.close()
    cluster.shutdown()
    admin.close()


def main(argv=None) -> int:
  args = build_parser().parse_args(argv)
  result = run(args)
  print(json.dumps({k: v for k, v in result.items() if k != 'samples'}, indent=2, default=str))
  return 0 if result['rows_exact'] else 1


if __name__ == '__main__':
  sys.exit(main())
