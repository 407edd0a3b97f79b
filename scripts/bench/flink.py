#!/usr/bin/env python3
"""End-to-end benchmark: Kafka -> Beam on the Flink cluster -> Cassandra.

    scripts/stack.sh up && scripts/flink.sh start
    .venv/bin/python -m scripts.bench.flink --events 100000

1. generates N calls (no too-late events, jitter 5 s, so the final rows are exact and known),
   rebased so the newest event is "now";
2. produces them to a fresh 2-partition topic as fast as the producer can (BEFORE the job
   runs: an unbounded CreateTime reader that catches up with a still-running producer moves
   its watermark to processing time and would make the rest of a historic file late);
3. submits the main job with scripts/submit_flink.sh cluster (checkpoints every 60 s,
   RocksDB, Cassandra sink into a fresh keyspace);
4. polls Cassandra every second until the rows equal the reference, sampling Flink REST
   (back-pressure), the offsets committed by the job's consumer group, and the CPU of the
   TaskManager JVM and the Python SDK workers from /proc meanwhile; cancels the job.
With --peer flink-sql, between 2. and 3. the same job runs as native Flink SQL on the same
cluster and topic (scripts/bench/flink_sql.py), and the run reports both processed rates, their
ratio and whether both produced the same windows (docs/benchmarks.md).

Reported: produce rate; end-to-end events/s (first produce -> last row written, and job RUNNING
-> last row written; both include waiting for the last windows to close); the processed rate
(job RUNNING -> all offsets committed: offsets are committed when a checkpoint completes, after
every operator processed the records before its barrier); row latency =
time a row first appears in Cassandra - (window_end + watermark delay), p50/p99 (seen by 1 s
polling; Cassandra writetime() cannot be used: the sink writes versioned rows with USING
TIMESTAMP = fixed base + pane index). As the whole file is a backlog of historic event time,
this latency is mostly the lag of reading the backlog, not a steady-state latency.
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

from scripts.bench import flink_sql
from scripts.bench.flink_sql import rest
from scripts.produce_events import produce_lines, read_lines, rebase_lines
from testing.datagen.calls import DEFAULT_START_MS, write_call_events
from testing.reference.calls import reference_call_metrics

REPO = Path(__file__).resolve().parents[2]

RUN_DIR = Path(os.environ.get('RUN_DIR', REPO / '.run'))
TICK = os.sysconf('SC_CLK_TCK')


def wait_for_free_cluster() -> None:
  """Waits until no job runs on the cluster: it has 2 slots, so another
  job would starve a benchmark's, or the benchmark it."""
  while True:
    busy = [
      j['name']
      for j in rest('/jobs/overview')['jobs']
      if j['state'] not in ('CANCELED', 'FINISHED', 'FAILED')
    ]
    if not busy:
      return
    print(f'waiting for the cluster: {busy}', flush=True)
    time.sleep(10)


def cpu_ticks(pid: int) -> Optional[int]:
  try:
    fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime
  except (OSError, IndexError):
    return None


def service_pid(service: str) -> Optional[int]:
  """The pid the stack's scripts recorded for `service` ($RUN_DIR/pids/<service>.pid), if it
  runs with the service's marker on its command line (scripts/stack/lib.sh checks it the same
  way: a recycled pid is not the service); None otherwise."""
  try:
    pid = int((RUN_DIR / 'pids' / f'{service}.pid').read_text().strip())
    words = Path(f'/proc/{pid}/cmdline').read_bytes().replace(b'\0', b' ').decode().split()
  except (OSError, ValueError):
    return None
  return pid if f'-Dccstack.svc={service}' in words else None


def processes() -> Dict[str, List[int]]:
  """pids of this stack's TaskManager JVMs and of the Python SDK workers its worker pool
  started (the pool's process group: scripts/flink.sh starts it with setsid). By pid files,
  not command lines, so that a second stack on the machine (another RUN_DIR) is not counted."""
  taskmanagers = sorted(p.stem for p in (RUN_DIR / 'pids').glob('flink-taskmanager*.pid'))
  out = {
    'taskmanager': [pid for pid in map(service_pid, taskmanagers) if pid is not None],
    'python_workers': [],
  }
  pool = service_pid('flink-worker-pool')
  if pool is not None:
    for d in Path('/proc').iterdir():
      try:
        if d.name.isdigit() and int(d.name) != pool and os.getpgid(int(d.name)) == pool:
          out['python_workers'].append(int(d.name))
      except OSError:
        continue  # gone meanwhile
  return out


class CpuSampler:
  """CPU ticks of the TaskManager and the SDK workers, sampled at wall-clock times (the
  benchmark's other timestamps are wall clock too)."""

  def __init__(self):
    self.samples = []

  def sample(self):
    now = time.time()
    current = {k: {p: cpu_ticks(p) for p in pids} for k, pids in processes().items()}
    self.samples.append((now, current))

  def used_seconds(self, until: Optional[float] = None) -> Dict[str, float]:
    """CPU seconds each kind of process used from the first sample to the last one taken at
    or before `until` (all samples when None); processes started later count from zero."""
    taken = [s for s in self.samples if until is None or s[0] <= until]
    if len(taken) < 2:
      return {}
    a, b = self.samples[0][1], taken[-1][1]
    return {
      kind: sum(
        ticks - (a.get(kind, {}).get(pid) or 0)
        for pid, ticks in b[kind].items()
        if ticks is not None
      )
      / TICK
      for kind in b
    }

  def report(self) -> Dict[str, str]:
    if len(self.samples) < 2:
      return {}
    elapsed = self.samples[-1][0] - self.samples[0][0]
    last = self.samples[-1][1]
    return {
      kind: f'{100.0 * used / elapsed:.0f}% of one core over the run ({len(last[kind])} processes)'
      for kind, used in self.used_seconds().items()
    }


def cpu_ms_per_1000(used_seconds: float, events: int) -> float:
  """CPU milliseconds per 1,000 events: the cost of the work, which other tenants of the machine
  change far less than they change a rate."""
  return round(1e6 * used_seconds / events, 1)


class LiveProducer(threading.Thread):
  """Produces calls stamped with the send time, `rate` per second for `seconds`: event time
  = wall time, so a window's row can appear window_end + watermark delay at the earliest."""

  def __init__(self, topic, bootstrap, rate, seconds):
    super().__init__(daemon=True)
    self.topic, self.bootstrap, self.rate, self.seconds = topic, bootstrap, rate, seconds
    self.lines = None
    self.error = None
    self.counted = False
    self.t0 = time.time()

  def run(self):
    try:
      from kafka import KafkaProducer

      producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks='all', linger_ms=5)
      rng = random.Random(11)
      lines = []
      self.t0 = time.time()
      sent = 0
      while time.time() - self.t0 < self.seconds:
        due = int((time.time() - self.t0) * self.rate)
        while sent < due:
          now = int(time.time() * 1000)
          abandoned = rng.random() < 0.1
          line = json.dumps(
            {
              'call_uuid': str(uuid.UUID(int=rng.getrandbits(128), version=4)),
              'event_type': 'CALL_ENDED',
              'timestamp': now,
              'queue_id': f'Q-LIVE-{rng.randint(1, 8)}',
              'abandoned': abandoned,
              'wait_time_seconds': rng.randint(0, 90),
              'agent_id': None if abandoned else 'A-LIVE',
            },
            separators=(',', ':'),
          ).encode()
          producer.send(self.topic, value=line, timestamp_ms=now)
          lines.append(line)
          sent += 1
        time.sleep(0.01)
      producer.flush()
      producer.close()
      self.lines = lines
    except Exception as exc:  # pylint: disable=broad-except
      self.error = exc


def run_peer(args, topic: str, work: Path, records: int) -> Dict:
  """The native Flink SQL job on the benchmark's topic: its rate (blackhole sink), then its
  rows (a Kafka topic, read back), each after checking the topic still holds every record."""
  sql = dict(
    topic=topic,
    bootstrap=args.bootstrap,
    parallelism=args.parallelism,
    window_s=args.window_size,
    checkpoint_ms=args.checkpoint_ms,
    state_backend=args.peer_state_backend,
  )
  flink_sql.require_records(topic, args.bootstrap, records, 'the Flink SQL rate run')
  cpu = CpuSampler()
  cpu.sample()
  rate = flink_sql.run_job(
    flink_sql.render_sql(job_name=f'{topic}-sql-rate', rows_topic=None, **sql), work
  )
  cpu.sample()
  print(
    f'flink sql: {records} records in {rate["seconds"]:.1f} s (RUNNING -> FINISHED)', flush=True
  )
  flink_sql.require_records(topic, args.bootstrap, records, 'the Flink SQL rows run')
  rows_topic = f'{topic}-sql-rows'
  flink_sql.run_job(
    flink_sql.render_sql(job_name=f'{topic}-sql-rows', rows_topic=rows_topic, **sql), work
  )
  return {
    'jid': rate['jid'],
    'seconds (job RUNNING -> FINISHED)': round(rate['seconds'], 2),
    'processed_events_per_s': round(records / rate['seconds']),
    # The job runs in the TaskManager; its submission (sql-client) and startup are included.
    'taskmanager_cpu_ms_per_1000_events': cpu_ms_per_1000(
      cpu.used_seconds().get('taskmanager', 0.0), records
    ),
    'rows': flink_sql.read_rows(rows_topic, args.bootstrap),
  }


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--events', type=int, default=1_000_000, help='calls to generate')
  p.add_argument('--bootstrap', default='127.0.0.1:9092')
  p.add_argument('--partitions', type=int, default=2)
  p.add_argument('--parallelism', type=int, default=2)
  p.add_argument(
    '--queues',
    type=int,
    default=8,
    help='distinct queues of the calls (docs/benchmarks.md, "Keys")',
  )
  p.add_argument('--timeout', type=float, default=1800, help='s to wait for complete rows')
  p.add_argument('--workdir', default=None)
  p.add_argument('--keep', action='store_true', help='keep topic and keyspace')
  p.add_argument('--window-size', type=int, default=60, help='job --window_seconds (s)')
  p.add_argument(
    '--checkpoint-ms',
    type=int,
    default=10000,
    help='job --checkpointing_interval: offsets are committed when a checkpoint '
    'completes, which is how the processed rate is measured',
  )
  p.add_argument(
    '--live-seconds',
    type=float,
    default=150,
    help='after the backlog, produce calls stamped with the send time for this '
    'long; row latency is measured on the windows of this live phase (0: none)',
  )
  p.add_argument('--live-rate', type=float, default=200, help='live calls per second')
  p.add_argument(
    '--peer',
    choices=['flink-sql'],
    default=None,
    help='before the Beam job, run the same job as native Flink SQL '
    '(scripts/bench/abandon_rate.sql) on the same cluster and topic: once into a '
    'blackhole sink for its rate, once into a topic for its rows',
  )
  p.add_argument(
    '--peer-state-backend',
    choices=['rocksdb', 'hashmap'],
    default='rocksdb',
    help="the peer's state backend: RocksDB as the Beam job's, or the heap",
  )
  p.add_argument(
    '--job',
    choices=['main', 'floor'],
    default='main',
    help='main: the main job, its rows checked against the reference; floor: the same Kafka '
    'source into Python and nothing else (scripts/bench/flink_floor.py), done when every '
    'offset is committed: what any Beam Python job pays here before its own work',
  )
  p.add_argument('job_args', nargs='*', help='extra job args for submit_flink.sh')
  args = p.parse_args(argv)

  from cassandra.cluster import Cluster
  from kafka.admin import KafkaAdminClient, NewTopic

  work = Path(args.workdir or tempfile.mkdtemp(prefix='bench_flink_'))
  work.mkdir(parents=True, exist_ok=True)
  tag = uuid.uuid4().hex[:8]
  topic, keyspace, name = f'bench-{tag}', f'bench_{tag}', f'bench-flink-{tag}'
  result = {'events': args.events, 'topic': topic, 'keyspace': keyspace}

  t = time.monotonic()
  gen = work / 'calls.jsonl'
  counts = write_call_events(
    str(gen),
    args.events,
    seed=7,
    queues=args.queues,
    jitter_seconds=5.0,
    too_late_share=0.0,
    late_within_lateness_share=0.0,
    start_ms=DEFAULT_START_MS,
  )
  # aligned to the window: the newest window ends at or before now, so no row waits for
  # processing time to reach a window end (that would count as slowness of the job)
  lines, _ = rebase_lines(
    read_lines(str(gen)), int(time.time() * 1000), align_ms=args.window_size * 1000
  )
  produced = work / 'produced.jsonl'
  produced.write_bytes(b''.join(line + b'\n' for line in lines))
  ref = reference_call_metrics(str(produced), window_size_s=args.window_size)
  assert not ref.late
  expected = {k: r['total_calls'] for k, r in ref.rows.items()}
  print(
    f'generated {len(lines)} lines ({counts["valid"]} calls, {len(expected)} rows expected)'
    f' in {time.monotonic() - t:.1f} s',
    flush=True,
  )

  admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
  admin.create_topics([NewTopic(topic, args.partitions, 1)])
  cluster = Cluster(['127.0.0.1'])
  session = cluster.connect()
  t_first_produce = time.time()
  prod = produce_lines(
    lines, topic, args.bootstrap, producer_config={'max_in_flight_requests_per_connection': 5}
  )
  print(
    f'produced {prod["count"]} records in {prod["seconds"]:.1f} s ({prod["rate"]:.0f}/s)',
    flush=True,
  )
  result['produce_rate'] = round(prod['rate'])

  cmd = [
    str(REPO / 'scripts' / 'submit_flink.sh'),
    'cluster',
    '--detach',
    f'--job_name={name}',
    f'--kafka_call_events_topic={topic}',
    f'--kafka_consumer_group={name}',
    '--sink=cassandra',
    f'--cassandra_keyspace={keyspace}',
    f'--parallelism={args.parallelism}',
    f'--window_seconds={args.window_size}',
    f'--checkpointing_interval={args.checkpoint_ms}',
    *args.job_args,
  ]
  wait_for_free_cluster()
  if args.peer:
    try:
      result['flink_sql'] = run_peer(args, topic, work, len(lines))
      flink_sql.require_records(topic, args.bootstrap, len(lines), 'the Beam job')
    except BaseException:
      if not args.keep:
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(topic)])
      raise
  t_submit = time.time()
  env = dict(os.environ)
  if args.job == 'floor':
    env['PIPELINE_MODULE'] = 'scripts.bench.flink_floor'
  sub = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  if sub.returncode:
    print(sub.stdout, sub.stderr[-3000:], file=sys.stderr)
    if not args.keep:
      admin.delete_topics([t for t in admin.list_topics() if t.startswith(topic)])
    return 1
  t_running = time.time()
  jobs = sorted(
    (j for j in rest('/jobs/overview')['jobs'] if j['name'] == name), key=lambda j: j['start-time']
  )
  jid = jobs[-1]['jid']
  print(f'job {jid} RUNNING {t_running - t_submit:.1f} s after submit', flush=True)

  seen: Dict[tuple, float] = {}
  window_end: Dict[tuple, int] = {}
  cpu = CpuSampler()
  backpressure = {}
  # (time, offsets committed by the job's consumer group): an aligned checkpoint completes
  # only after every operator processed all records before its barrier, and only then are
  # the offsets committed, so this counts records fully processed (not merely read).
  committed_counts = []
  ok = False
  backlog_done = None
  live = None
  try:
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
      now = time.time()
      try:
        rows = list(
          session.execute(
            'SELECT queue_id, window_start, window_end, total_calls'
            f' FROM {keyspace}.abandon_metrics'
          )
        )
      except Exception:  # pylint: disable=broad-except
        rows = []
      current = {}
      for r in rows:
        key = (r.queue_id, r.window_start)
        current[key] = r.total_calls
        window_end[key] = r.window_end
        if key not in seen:
          seen[key] = now
      cpu.sample()
      try:
        job = rest(f'/jobs/{jid}')
        # until all are committed: with few windows the rows can be complete before that
        if not committed_counts or committed_counts[-1][1] < len(lines):
          committed_counts.append(
            (
              now,
              sum(
                meta.offset
                for meta in admin.list_group_offsets(name).get(name, {}).values()
                if meta.offset > 0
              ),
            )
          )
        if len(committed_counts) % 10 == 3:
          for v in job['vertices']:
            bp = rest(f'/jobs/{jid}/vertices/{v["id"]}/backpressure')
            level = bp.get('backpressureLevel') or bp.get('status')
            busy = [s.get('busyRatio') for s in bp.get('subtasks', [])]
            backpressure.setdefault(v['name'][:60], []).append((level, busy))
      except Exception as exc:  # pylint: disable=broad-except
        print(f'REST: {exc}', flush=True)
      if args.job == 'floor':
        if committed_counts and committed_counts[-1][1] >= len(lines):
          ok = True
          break
      elif backlog_done is None and current == expected:
        backlog_done = max(seen.values())
        if args.live_seconds > 0:
          live = LiveProducer(topic, args.bootstrap, args.live_rate, args.live_seconds)
          live.start()
          print(f'backlog rows complete; live phase of {args.live_seconds:.0f} s', flush=True)
      elif args.live_seconds <= 0 and backlog_done is not None:
        if committed_counts and committed_counts[-1][1] >= len(lines):
          ok = True
          break
      elif live is not None and not live.counted and not live.is_alive():
        live.join()
        if live.error:
          raise live.error
        live.counted = True
        with open(produced, 'ab') as f:
          f.write(b''.join(line + b'\n' for line in live.lines))
        live_ref = reference_call_metrics(str(produced), window_size_s=args.window_size)
        assert not live_ref.late, f'{len(live_ref.late)} late in the live phase'
        expected = {k: r['total_calls'] for k, r in live_ref.rows.items()}
        print(
          f'live phase done: {len(live.lines)} calls, {len(expected)} rows expected', flush=True
        )
      elif live is not None and live.counted and current == expected:
        ok = True
        break
      time.sleep(1)
    t_done = backlog_done or (max(seen.values()) if seen else time.time())
    if args.peer and args.job == 'main':
      beam_rows = {
        (r.queue_id, r.window_start): (r.total_calls, r.abandoned_calls)
        for r in session.execute(
          f'SELECT queue_id, window_start, total_calls, abandoned_calls '
          f'FROM {keyspace}.abandon_metrics'
        )
        if not r.queue_id.startswith('Q-LIVE')
      }
      result['flink_sql']['rows_vs_beam'] = flink_sql.compare_rows(
        result['flink_sql'].pop('rows'), beam_rows, flink_sql.lenient_lines(lines, args.window_size)
      )
    elif args.peer:
      result['flink_sql'].pop('rows')  # the floor job writes none to compare
  finally:
    try:
      rest(f'/jobs/{jid}?mode=cancel', method='PATCH')
    except Exception:  # pylint: disable=broad-except
      pass
    if not args.keep:
      try:
        session.execute(f'DROP KEYSPACE IF EXISTS {keyspace}', timeout=120)
        admin.delete_topics([topic] + ([f'{topic}-sql-rows'] if args.peer else []))
      except Exception as exc:  # pylint: disable=broad-except
        print(f'cleanup: {exc}')
    cluster.shutdown()
    admin.close()

  n = len(lines)
  result['complete'] = ok
  result['rows'] = f'{len(seen)} of {len(expected)}'
  result['e2e_events_per_s (first produce -> last row)'] = round(n / (t_done - t_first_produce))
  result['job_events_per_s (job RUNNING -> last row)'] = round(n / (t_done - t_running))
  result['submit_to_running_s'] = round(t_running - t_submit, 1)
  result['first_produce_to_last_row_s'] = round(t_done - t_first_produce, 1)
  moving = [(t, c) for t, c in committed_counts if c]
  if moving:
    # From the job's start: the first commit already covers records processed before it.
    done = next((t for t, c in moving if c >= n), None)
    result['processed_events_per_s (job RUNNING -> all offsets committed)'] = (
      round(n / (done - t_running)) if done else None
    )
    result['offsets_committed'] = f'{moving[-1][1]} of {n}'
    if done:
      used = cpu.used_seconds(until=done)
      result['cpu_ms_per_1000_events (job RUNNING -> all offsets committed)'] = {
        **{kind: cpu_ms_per_1000(seconds, n) for kind, seconds in used.items()},
        'total': cpu_ms_per_1000(sum(used.values()), n),
      }

  def pct(keys):
    lat = sorted(seen[k] - (window_end[k] / 1000 + 10) for k in keys)
    if not lat:
      return None
    return {
      'rows': len(lat),
      'p50': round(statistics.median(lat), 1),
      'p99': round(lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1),
      'max': round(lat[-1], 1),
    }

  if live is not None:
    result['live_calls'] = len(live.lines or [])
    result['live_row_latency_s'] = pct([k for k in seen if k[0].startswith('Q-LIVE')])
  result['backlog_row_lag_s'] = pct([k for k in seen if not k[0].startswith('Q-LIVE')])
  result['latency_note'] = (
    'time a row is first seen in Cassandra (1 s polls) - (window_end '
    '+ 10 s watermark delay); backlog rows: lag of reading historic '
    'event time, live rows: steady-state latency'
  )
  if args.peer:
    peer = result['flink_sql']
    ours = result.get('processed_events_per_s (job RUNNING -> all offsets committed)')
    peer['ratio beam/flink_sql (processed rates)'] = (
      f'1/{peer["processed_events_per_s"] / ours:.1f}' if ours else None
    )
    our_cost = result.get('cpu_ms_per_1000_events (job RUNNING -> all offsets committed)')
    if our_cost and peer['taskmanager_cpu_ms_per_1000_events']:
      peer['ratio beam/flink_sql (CPU per event)'] = (
        f'{our_cost["total"] / peer["taskmanager_cpu_ms_per_1000_events"]:.1f}x'
      )
  result['cpu'] = cpu.report()
  result['backpressure'] = {k: v[-3:] for k, v in backpressure.items()}
  print(json.dumps(result, indent=2, default=str))
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
