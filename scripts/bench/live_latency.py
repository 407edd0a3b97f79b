#!/usr/bin/env python3
"""Live floor latency: Kafka -> the main job on the Flink cluster -> Kafka, with live traffic.

    scripts/stack/kafka.sh start && scripts/stack/expansion_service.sh start
    scripts/flink.sh start
    flock /tmp/flink.lock .venv/bin/python -m scripts.bench.live_latency --seconds 120

1. creates a fresh 2-partition input topic; a consumer of the job's output topics
   cc-queue-status and cc-abandon-metrics (`--sink=kafka`: JSON rows) is placed at their end;
2. submits the main job with scripts/submit_flink.sh cluster (its production defaults) reading
   that topic, `--sink=kafka`, `--early_firing_seconds`;
3. once the job runs, produces live calls for `--seconds` (testing/datagen/live.py's simulated
   floor, flat at `--rate` contacts/s over `--queues` queues of a prefix of this run, event time =
   now: CALL_STARTED, CALL_QUEUED, CALL_ANSWERED, CALL_ENDED), noting when each was sent;
4. reads the rows back until `--drain` seconds after the last send, cancels the job and deletes
   the topic.

Reported, over the events sent after `--warmup` seconds:
* **queue_status latency**: for each queue entry (CALL_QUEUED) or exit (CALL_ANSWERED, an
  abandoning CALL_ENDED), from its send to the first queue_status row of its queue read from
  cc-queue-status that reflects it: a row the events caused (its as_of is the time of one of the
  queue's events; the job's processing-time refresh rows extrapolate as_of and are left out)
  whose as_of is at or after the event's. p50, p99, max; the same to the row's `updated_at` (the
  job's write, without the output topic and this consumer). Target p99 < 2 s. The last row of
  each queue is also checked against the floor's own count after the last send.
* **early panes**: for each CALL_ENDED (an offered call of its queue's open window), from its
  send to the first abandon_metrics pane of its queue and window whose total_calls counts it
  (the k-th CALL_ENDED of a window needs total_calls >= k), and the time between successive
  EARLY panes of a window, against `--early_firing_seconds`: a pane fires that long after the
  first element since the last one, so the delay of an offered call should stay under about
  the early firing interval plus the pipeline's latency.
Both the figures and the command that produced them are printed (JSON).
"""

import argparse
import bisect
import collections
import json
import os
import shlex
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from scripts.bench.flink import rest, wait_for_free_cluster
from testing.datagen.live import CallFloor, DayClock, kafka_send, run_paced

REPO = Path(__file__).resolve().parents[2]
STATUS_TOPIC = 'cc-queue-status'
METRICS_TOPIC = 'cc-abandon-metrics'
ENTRY, EXIT = 'CALL_QUEUED', ('CALL_ANSWERED', 'CALL_ENDED')


def percentiles(values: Sequence[float]) -> Optional[Dict[str, float]]:
  """count, p50, p99 and max of `values` (seconds), None when empty."""
  if not values:
    return None
  v = sorted(values)
  return {
    'count': len(v),
    'p50': round(statistics.median(v), 3),
    'p99': round(v[min(len(v) - 1, int(0.99 * len(v)))], 3),
    'max': round(v[-1], 3),
  }


class RowReader(threading.Thread):
  """Reads the job's output topics from their end at start, keeping (receive time in ms, topic,
  row) for the rows of queues with `prefix`."""

  def __init__(self, bootstrap: str, prefix: str):
    super().__init__(daemon=True)
    from kafka import KafkaConsumer, TopicPartition

    # A short fetch wait: the consumer's own latency is part of what is measured.
    self.consumer = KafkaConsumer(
      bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    partitions = [
      TopicPartition(topic, p)
      for topic in (STATUS_TOPIC, METRICS_TOPIC)
      for p in sorted(self.consumer.partitions_for_topic(topic) or ())
    ]
    if not partitions:
      raise SystemExit(f'no {STATUS_TOPIC} / {METRICS_TOPIC} topics: scripts/stack/kafka.sh start')
    self.consumer.assign(partitions)
    self.consumer.seek_to_end(*partitions)
    for tp in partitions:  # resolve the end now, before the job writes
      self.consumer.position(tp)
    self.prefix = prefix.encode()
    self.rows: List[Tuple[int, str, dict]] = []
    self.stop = threading.Event()
    self.error: Optional[BaseException] = None

  def run(self) -> None:
    try:
      while not self.stop.is_set():
        for tp, records in self.consumer.poll(timeout_ms=50).items():
          now = int(time.time() * 1000)
          for r in records:
            if self.prefix in r.value:
              self.rows.append((now, tp.topic, json.loads(r.value)))
    except BaseException as exc:  # pylint: disable=broad-except
      self.error = exc
    finally:
      self.consumer.close()


def status_latency(
  sent: List[Tuple[dict, int]], rows: List[Tuple[int, str, dict]], since_ms: int
) -> Dict[str, object]:
  """The queue_status figures (module doc) from the events sent (event, sent ms) and the rows
  read (receive ms, topic, row) in receive order."""
  event_times: Dict[str, set] = collections.defaultdict(set)
  for event, _ in sent:
    if event['event_type'] == ENTRY or event['event_type'] in EXIT:
      event_times[event['queue_id']].add(event['timestamp'])
  # Per queue: the caused rows in receive order, with the running max of their as_of
  # (bisect finds the first row at or after an event's time).
  caused: Dict[str, Tuple[List[int], List[Tuple[int, dict]]]] = {}
  refresh_rows = 0
  for recv, topic, row in rows:
    if topic != STATUS_TOPIC:
      continue
    if row['as_of'] not in event_times[row['queue_id']]:
      refresh_rows += 1
      continue
    maxes, found = caused.setdefault(row['queue_id'], ([], []))
    maxes.append(max(maxes[-1], row['as_of']) if maxes else row['as_of'])
    found.append((recv, row))
  to_read, to_write, unmatched = [], [], 0
  for event, sent_ms in sent:
    kind = event['event_type']
    # Entries and exits; an answered call's end is a transition too (it
    # advances the queue's as_of) but no longer leaves the queue.
    leaves = kind == 'CALL_ANSWERED' or (kind == 'CALL_ENDED' and event['abandoned'])
    if not (kind == ENTRY or leaves) or sent_ms < since_ms:
      continue
    maxes, found = caused.get(event['queue_id'], ([], []))
    i = bisect.bisect_left(maxes, event['timestamp'])
    if i == len(maxes):
      unmatched += 1
      continue
    recv, row = found[i]
    to_read.append((recv - sent_ms) / 1000)
    to_write.append((row['updated_at'] - sent_ms) / 1000)
  return {
    'send_to_row_read_s': percentiles(to_read),
    'send_to_row_written_s (updated_at)': percentiles(to_write),
    'events_without_row': unmatched,
    'rows_caused_by_events': sum(len(f) for _, f in caused.values()),
    'refresh_rows': refresh_rows,
  }


def final_waiting_agrees(
  rows: List[Tuple[int, str, dict]], waiting: Dict[str, int]
) -> Dict[str, object]:
  """The last queue_status row read of each queue against the floor's own count once the
  last event was sent (`waiting`): every event read, the job must count who waits as the floor
  does. (A row before that may count fewer or more: the two partitions are read at their own
  pace, so a row's as_of does not mean every earlier event of its queue was read.)"""
  last = {row['queue_id']: row['waiting'] for _, topic, row in rows if topic == STATUS_TOPIC}
  # queue: (the job's count, the floor's)
  differ = {q: (last.get(q, 0), n) for q, n in waiting.items() if last.get(q, 0) != n}
  return {
    'queues': len(waiting),
    'equal': len(waiting) - len(differ),
    'differ': differ,
  }


def early_panes(
  sent: List[Tuple[dict, int]],
  rows: List[Tuple[int, str, dict]],
  since_ms: int,
  window_ms: int,
) -> Dict[str, object]:
  """The early-pane figures (module doc)."""
  offered: Dict[Tuple[str, int], List[Tuple[int, int]]] = collections.defaultdict(list)
  for event, sent_ms in sent:
    if event['event_type'] == 'CALL_ENDED':
      ts = event['timestamp']
      offered[(event['queue_id'], ts - ts % window_ms)].append((ts, sent_ms))
  panes: Dict[Tuple[str, int], List[Tuple[int, int, str]]] = collections.defaultdict(list)
  for recv, topic, row in rows:
    if topic == METRICS_TOPIC:
      key = (row['queue_id'], row['window_start'])
      panes[key].append((recv, row['total_calls'], row['pane_timing']))
  delays, by_timing, intervals = [], collections.Counter(), []
  for key, calls in offered.items():
    calls.sort()
    got = panes.get(key, [])
    early = [recv for recv, _, timing in got if timing == 'EARLY']
    intervals += [(b - a) / 1000 for a, b in zip(early, early[1:])]
    for rank, (_, sent_ms) in enumerate(calls, 1):
      if sent_ms < since_ms:
        continue
      first = next(((recv, timing) for recv, total, timing in got if total >= rank), None)
      if first is None:
        by_timing['none'] += 1
        continue
      delays.append((first[0] - sent_ms) / 1000)
      by_timing[first[1]] += 1
  return {
    'offered_call_to_first_pane_counting_it_s': percentiles(delays),
    'that_pane_s_timing': dict(by_timing),
    'between_early_panes_of_a_window_s': percentiles(intervals),
  }


def main(argv: Optional[Sequence[str]] = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--rate', type=float, default=200, help='new contacts per second')
  p.add_argument('--queues', type=int, default=50)
  p.add_argument('--seconds', type=float, default=120, help='how long to produce')
  p.add_argument('--warmup', type=float, default=20, help='s of traffic left out of the figures')
  p.add_argument('--drain', type=float, default=15, help='s to read rows after the last send')
  p.add_argument('--early-firing-seconds', type=float, default=10)
  p.add_argument('--window-size', type=int, default=300, help='job --window_seconds (s)')
  p.add_argument('--handle-seconds', type=float, default=30, help="mean agent's call (s)")
  p.add_argument(
    '--staffing', type=float, default=0.97, help='agents per erlang: under 1, queues stay busy'
  )
  p.add_argument('--bootstrap', default='127.0.0.1:9092')
  p.add_argument('--partitions', type=int, default=2)
  p.add_argument('--parallelism', type=int, default=2)
  p.add_argument('--checkpoint-ms', type=int, default=10000)
  p.add_argument('--keep', action='store_true', help='keep the input topic')
  p.add_argument('job_args', nargs='*', help='extra job args for submit_flink.sh (after --)')
  args = p.parse_args(argv)
  command = ' '.join(shlex.quote(a) for a in [sys.executable, '-m', __spec__.name, *sys.argv[1:]])

  from kafka.admin import KafkaAdminClient, NewTopic

  tag = uuid.uuid4().hex[:8]
  topic, name, prefix = f'bench-live-{tag}', f'bench-live-{tag}', f'QL{tag[:6]}-'
  admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
  admin.create_topics([NewTopic(topic, args.partitions, 1)])
  reader = RowReader(args.bootstrap, prefix)
  reader.start()
  cmd = [
    str(REPO / 'scripts' / 'submit_flink.sh'),
    'cluster',
    '--detach',
    f'--job_name={name}',
    f'--kafka_call_events_topic={topic}',
    f'--kafka_consumer_group={name}',
    '--sink=kafka',
    f'--parallelism={args.parallelism}',
    f'--window_seconds={args.window_size}',
    f'--early_firing_seconds={args.early_firing_seconds:g}',
    f'--checkpointing_interval={args.checkpoint_ms}',
    *args.job_args,
  ]
  jid = None
  sent: List[Tuple[dict, int]] = []
  result: Dict[str, object] = {'command': command}
  try:
    wait_for_free_cluster()
    t_submit = time.time()
    sub = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    if sub.returncode:
      print(sub.stdout, sub.stderr[-3000:], file=sys.stderr)
      return 1
    jobs = [j for j in rest('/jobs/overview')['jobs'] if j['name'] == name]
    jid = max(jobs, key=lambda j: j['start-time'])['jid']
    print(f'job {jid} RUNNING {time.time() - t_submit:.1f} s after submit', flush=True)

    start = int(time.time() * 1000)
    floor = CallFloor(
      DayClock(start, day_minutes=0),
      args.rate,
      args.queues,
      seed=int(tag, 16) % 1_000_000,
      handle_seconds=args.handle_seconds,
      staffing=args.staffing,
      queue_prefix=prefix,
    )
    send, close = kafka_send(args.bootstrap, {})
    stop = threading.Event()
    timer = threading.Timer(args.seconds, stop.set)
    timer.start()
    load_before = os.getloadavg()
    try:
      stats = run_paced(
        floor, None, send, stop, calls_topic=topic, on_call=lambda e, at: sent.append((e, at))
      )
    finally:
      timer.cancel()
      close()
    print(
      f'sent {stats.calls} contacts ({stats.call_events} events) in {args.seconds:.0f} s; '
      f'reading rows for {args.drain:.0f} s more',
      flush=True,
    )
    time.sleep(args.drain)
    result['load_average_1m (before, after)'] = (load_before[0], os.getloadavg()[0])
    result['job'] = rest(f'/jobs/{jid}')['state']
  finally:
    reader.stop.set()
    reader.join(timeout=10)
    if jid:
      try:
        rest(f'/jobs/{jid}?mode=cancel', method='PATCH')
      except Exception as exc:  # pylint: disable=broad-except
        print(f'cancel: {exc}', file=sys.stderr)
    if not args.keep:
      try:
        admin.delete_topics([topic])
      except Exception as exc:  # pylint: disable=broad-except
        print(f'cleanup: {exc}', file=sys.stderr)
    admin.close()
  if reader.error:
    raise reader.error

  since = (min(at for _, at in sent) if sent else 0) + int(args.warmup * 1000)
  result.update(
    {
      'traffic': f'{args.rate:g} contacts/s over {args.queues} queues for {args.seconds:g} s '
      f'({len(sent)} call events; the first {args.warmup:g} s left out)',
      'early_firing_seconds': args.early_firing_seconds,
      'queue_status': status_latency(sent, reader.rows, since),
      'last_queue_status_rows_vs_floor': final_waiting_agrees(reader.rows, floor.waiting()),
      'early_panes': early_panes(sent, reader.rows, since, args.window_size * 1000),
    }
  )
  print(json.dumps(result, indent=2))
  p99 = ((result['queue_status'] or {}).get('send_to_row_read_s') or {}).get('p99')
  print(
    f'queue_status p99 {p99} s: target < 2 s {"met" if p99 is not None and p99 < 2 else "MISSED"}'
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
