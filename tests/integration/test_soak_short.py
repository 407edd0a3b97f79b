"""The soak (scripts/bench/soak.py) for 8 minutes in CI: 1,000 records/s whose queue and
customer ids rotate every minute, on the Flink cluster; the checkpoint must stop growing once
the ids rotate, and the rows must end exact.

The job keeps state per id for a while by design: re-delivered call and interaction ids
(`--dedupe_ttl_seconds`, 600 s by default), idle keys' windows (`--key_idle_ttl_seconds`,
900 s), customers (`--customer_state_ttl_seconds`, a day), the rolling figures (60 min) and
the day so far (until midnight). The first three are set to 2 minutes here, so the bulk of
the state (the call ids: ~60,000 a minute) is bounded well inside the run; the rolling and
daily steps keep one small entry per queue and window (a few KiB a minute here), far below
what the check can see; a queue that goes quiet is forgotten by the live floor once the
watermark passes its last event plus the re-delivery TTL (transforms/queue_status.py).
A step that kept something per call or per id beyond its horizon
would add megabytes a minute and fail it.

Robust on a noisy 2-core machine: the full checkpoint size (RocksDB, incremental: the SST
files a checkpoint references, obsolete entries included until compaction) saw-tooths from
one checkpoint to the next, so medians of several samples are compared, not single ones,
with a 20 % margin, sampled every 12 s (about every checkpoint); nothing is timed.

  .venv/bin/python -m pytest tests/integration/test_soak_short.py -v -s
"""

import statistics
import time

from scripts.bench import soak

LOAD_MINUTES = 8.5
# Settled: a rotated queue's windows (60 s + 60 s lateness) and the 2-minute TTLs have passed.
SETTLED_FROM_MIN, SETTLED_TO_MIN = 4.0, 5.5
LAST_FROM_MIN = 7.0
GROWTH_BOUND = 1.2
JOB_ARGS = [
  '--dedupe_ttl_seconds=120',
  '--interaction_dedupe_ttl_seconds=120',
  '--key_idle_ttl_seconds=120',
  '--customer_state_ttl_seconds=120',
]


def medians_per_vertex(samples, lo, hi) -> dict:
  values = {}
  for s in samples:
    if lo <= s['minute'] < hi:
      for vertex, mib in s.get('state_mib_per_vertex', {}).items():
        values.setdefault(vertex, []).append(mib)
  return {v: statistics.median(m) for v, m in values.items()}


def test_checkpoint_stops_growing_once_ids_rotate(
  flink_standalone, kafka_bootstrap, cassandra_session, expansion_service, tmp_path
):
  t0 = time.monotonic()
  args = soak.build_parser().parse_args(
    [
      f'--minutes={LOAD_MINUTES}',
      '--rate=1000',
      '--sample-minutes=0.2',
      '--rotate-seconds=60',
      '--checkpoint-ms=10000',
      f'--bootstrap={kafka_bootstrap}',
      f'--out={tmp_path}',
      '--',
      *JOB_ARGS,
    ]
  )
  result = soak.run(args)
  samples = result['samples']
  for s in samples:
    print(
      f'  {s["minute"]:5.1f} min  {s.get("checkpoint_full_mib")} MiB full, '
      f'{s.get("checkpoint_incremental_mib")} MiB incremental, {s.get("checkpoint_duration_s")}'
      f' s; TaskManager {s["taskmanager_rss_mib"]} MiB, workers {s["workers_rss_mib"]} MiB; '
      f'latency p50 {s["row_latency_p50_s"]} s; {s["job_state"]}'
    )
  print(
    f'  rows: {result["rows"]}; {result["calls"]} calls, {result["interactions"]} '
    f'interactions; test {time.monotonic() - t0:.0f} s'
  )
  assert result['rows_exact'], result['rows']
  assert all(s['job_state'] == 'RUNNING' for s in samples), [s['job_state'] for s in samples]
  assert samples[-1].get('checkpoints_restored') == 0, 'the job restarted: not a steady run'

  def full(lo, hi):
    return [
      s['checkpoint_full_mib']
      for s in samples
      if lo <= s['minute'] < hi and s.get('checkpoint_full_mib') is not None
    ]

  settled, last = full(SETTLED_FROM_MIN, SETTLED_TO_MIN), full(LAST_FROM_MIN, 1e9)
  assert len(settled) >= 3 and len(last) >= 3, (settled, last)
  a, b = statistics.median(settled), statistics.median(last)
  print(f'  checkpoint full size: median {a:.1f} MiB at {settled} -> {b:.1f} MiB at {last}')
  before = medians_per_vertex(samples, SETTLED_FROM_MIN, SETTLED_TO_MIN)
  after = medians_per_vertex(samples, LAST_FROM_MIN, 1e9)
  for vertex in sorted(before):
    print(f'    {vertex[:70]}: {before[vertex]:.2f} -> {after.get(vertex, 0):.2f} MiB')
  assert b <= GROWTH_BOUND * a, (
    f'the checkpoint still grows once ids rotate: median {a:.1f} MiB in minutes '
    f'{SETTLED_FROM_MIN:g}-{SETTLED_TO_MIN:g}, {b:.1f} MiB from minute {LAST_FROM_MIN:g} '
    f'(bound {GROWTH_BOUND}x); per vertex: {before} -> {after}'
  )
