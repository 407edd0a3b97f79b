"""The main job end to end on the vendor formats: the committed samples and
randomly reordered generated streams, against the plain-Python reference
(testing/reference/vendors.py); the sample replayed by scripts/run_local.sh."""

import os
import random
import sqlite3
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from pipelines import contact_center
from testing.datagen.vendor_events import CONNECT, GENESYS, write_vendor_events
from testing.reference.vendors import ROW_FIELDS, reference_vendor_metrics
from tests.support.prism import PRISM, on_both_runners, runner_flags
from tests.test_pipeline_e2e import shuffled_copy

REPO = Path(__file__).resolve().parents[1]
SAMPLES = {
  GENESYS: REPO / 'samples' / 'genesys_cloud.jsonl',
  CONNECT: REPO / 'samples' / 'amazon_connect.jsonl',
}
# The malformed lines of the committed samples: one of each kind.
SAMPLE_MALFORMED = {GENESYS: 18, CONNECT: 21}


def _rounded(value):
  # Wait sums are sums of floats in another order than the reference's.
  return round(value, 6) if isinstance(value, float) else value


class JobOutput(NamedTuple):
  """What a run wrote: rows by (queue, channel, window start), the call
  ids of the late events by reason, the dead-letter reasons."""

  rows: dict
  late: list
  record_updates: list
  dead: list


def run_job(path, fmt, db, *extra) -> JobOutput:
  """Runs the job on `path` and reads its SQLite store."""
  contact_center.run(
    [f'--call_events={path}', f'--call_event_format={fmt}', f'--sqlite_path={db}', *extra]
  )
  with sqlite3.connect(db) as conn:
    rows = {
      (q, c, ws): [_rounded(v) for v in rest]
      for q, c, ws, *rest in conn.execute(
        f'SELECT queue_id, channel, window_start, {", ".join(ROW_FIELDS)}, window_end '
        'FROM abandon_metrics'
      )
    }
    late = {'after_window_expiry': [], 'record_update': []}
    for event_id, reason in conn.execute('SELECT event_id, reason FROM late_events'):
      late[reason].append(event_id)
    dead = [r[0] for r in conn.execute('SELECT reason FROM dead_letters')]
  return JobOutput(rows, sorted(late['after_window_expiry']), sorted(late['record_update']), dead)


def expected_rows(ref):
  return {
    key: [_rounded(row[f]) for f in ROW_FIELDS] + [row['window_end_ms']]
    for key, row in ref.rows.items()
  }


@pytest.mark.parametrize(
  'fmt, extra, reference_options',
  [
    (GENESYS, [], {}),
    (CONNECT, ['--allowed_lateness_seconds=3600'], {'allowed_lateness_s': 3600}),
  ],
)
@on_both_runners
def test_committed_sample_matches_the_reference(tmp_path, fmt, extra, reference_options, runner):
  rows, late, updates, dead = run_job(
    SAMPLES[fmt], fmt, tmp_path / 'out.db', *extra, *runner_flags(runner)
  )
  ref = reference_vendor_metrics(str(SAMPLES[fmt]), fmt, **reference_options)
  if (fmt, runner) == (GENESYS, PRISM):
    # Prism holds the pairing's output watermark for its pending timers
    # (tests/support/prism.py): an end it releases unpaired can be counted
    # where the reference, like the local runner, has it late. Still every
    # late call is one of the reference's, every window of the reference has
    # its row, and each call is counted once (below).
    assert set(late) <= set(ref.late) and set(expected_rows(ref)) <= set(rows)
  else:
    assert rows == expected_rows(ref) and rows
    assert late == sorted(ref.late)
  assert updates == sorted(ref.record_updates)
  assert len(dead) == ref.dead_letter_count == SAMPLE_MALFORMED[fmt]
  assert dead.count('wrong_stream') == 1
  # The samples hold more channels than voice.
  assert len({channel for _, channel, _ in rows}) > 1
  # Conservation: every offered call is in one final row or late, once.
  assert sum(r[0] for r in rows.values()) + len(late) == ref.offered
  if fmt == GENESYS:
    assert late, 'the sample must exercise the late output'
    assert ref.ends_without_start and ref.paired


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('fmt', [GENESYS, CONNECT])
def test_random_arrival_orders_match_the_reference(tmp_path, fmt, seed):
  rng = random.Random(seed)
  generated = tmp_path / 'generated.jsonl'
  write_vendor_events(
    str(generated),
    fmt,
    600,
    seed,
    events_per_second=rng.choice([0.5, 2, 8]),
    queues=rng.randint(2, 6),
    missing_start_share=rng.uniform(0, 0.2),
    delayed_start_share=rng.uniform(0, 0.2),
    too_late_share=rng.uniform(0, 0.05),
    duplicate_share=rng.uniform(0, 0.1),
    update_share=0.05,
    body_share=rng.uniform(0, 0.3),
    # Genesys callbacks wait half an hour to hours: their ends are tested
    # on the committed sample and the fixtures, not in random orders.
    callback_share=rng.uniform(0, 0.2) if fmt == CONNECT else 0,
    outbound_share=rng.uniform(0, 0.1),
    oversized=seed == 0,
  )
  path = tmp_path / 'arrivals.jsonl'
  shuffled_copy(generated, path, rng, share=rng.uniform(0.01, 0.1))
  poll_size = rng.choice([1, 7, 50, 500])
  lateness = rng.choice([60, 600, 3600])
  queue_key = rng.choice(['name', 'arn'])
  # Moved lines can arrive long after their first copy: the dedupe horizon
  # must cover that for "each call once" to be the contract.
  rows, late, updates, _ = run_job(
    path,
    fmt,
    tmp_path / 'out.db',
    f'--replay_poll_size={poll_size}',
    f'--allowed_lateness_seconds={lateness}',
    '--short_abandon_threshold_seconds=5',
    f'--connect_queue_key={queue_key}',
    '--dedupe_ttl_seconds=86400',
  )
  ref = reference_vendor_metrics(
    str(path),
    fmt,
    poll_size=poll_size,
    allowed_lateness_s=lateness,
    short_abandon_threshold_s=5,
    connect_queue_key=queue_key,
    dedupe_ttl_s=86400,
  )
  assert rows == expected_rows(ref)
  assert late == sorted(ref.late)
  assert updates == sorted(ref.record_updates)
  assert sum(r[0] for r in rows.values()) + len(late) == ref.offered


def test_run_local_replays_a_vendor_sample(tmp_path):
  db = tmp_path / 'local.db'
  proc = subprocess.run(
    [
      str(REPO / 'scripts' / 'run_local.sh'),
      f'--call_events={SAMPLES[GENESYS]}',
      '--call_event_format=genesys_cloud',
    ],
    cwd=REPO,
    env={**os.environ, 'SQLITE_PATH': str(db)},
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'abandon_metrics rows: 87' in proc.stdout
  with sqlite3.connect(db) as conn:
    sources = {r[0] for r in conn.execute('SELECT source FROM dead_letters')}
    queues = {r[0] for r in conn.execute('SELECT queue_id FROM abandon_metrics')}
  # The vendor sample replaced the seed's, the Data Actions sample still ran.
  assert sources == {'cc-call-logs', 'cxone-data-actions'}
  assert all(len(q) == 36 for q in queues), queues  # Genesys queue UUIDs
