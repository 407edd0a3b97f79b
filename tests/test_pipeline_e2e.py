"""The main job end to end on generated files, against the plain-Python
reference (testing/reference/calls.py), plus the randomized conservation law."""

import random
import sqlite3

import pytest

from pipelines import contact_center
from testing.datagen.calls import write_call_events
from testing.datagen.data_actions import write_data_actions
from testing.reference.calls import ROW_COLUMNS, comparable_rows, reference_call_metrics
from testing.reference.interactions import reference_interactions
from tests.support.prism import (
  LOCAL,
  PRISM,
  PRISM_LOSES_REPLAY_TAGS,
  on_both_runners,
  runner_flags,
)


def run_main_job(events_path, db_path, *extra):
  contact_center.run([f'--call_events={events_path}', f'--sqlite_path={db_path}', *extra])
  conn = sqlite3.connect(db_path)
  rows = {
    (q, ws): rest
    for q, ws, *rest in conn.execute(
      f'SELECT queue_id, window_start, {", ".join(ROW_COLUMNS)} FROM abandon_metrics'
    )
  }
  late = [r[0] for r in conn.execute('SELECT event_id FROM late_events')]
  dead = [r[0] for r in conn.execute('SELECT reason FROM dead_letters')]
  conn.close()
  return rows, late, dead


@on_both_runners
def test_main_job_matches_the_reference(tmp_path, runner):
  events = tmp_path / 'calls.jsonl'
  counts = write_call_events(str(events), 4000, seed=11, events_per_second=4, oversized=True)
  rows, late, dead = run_main_job(
    events, tmp_path / 'out.db', '--short_abandon_threshold_seconds=5', *runner_flags(runner)
  )
  ref = reference_call_metrics(str(events), short_abandon_threshold_s=5)

  assert {k: list(v) for k, v in rows.items()} == comparable_rows(ref)
  assert sorted(late) == sorted(ref.late)
  assert len(late) > 0, 'the generated file must exercise the late output'
  assert len(dead) == ref.dead_letter_count == counts['malformed']
  assert 'oversized_record' in dead
  # Conservation: every valid, de-duplicated CALL_ENDED event is counted
  # once in a final row or appears once in the late output.
  assert sum(r[0] for r in rows.values()) + len(late) == counts['valid']


def shuffled_copy(source, target, rng, share):
  """Moves a random share of lines to random positions: arbitrary arrival
  orders, beyond what the generator's delays produce."""
  with open(source, 'rb') as f:
    lines = f.read().split(b'\n')[:-1]
  for _ in range(int(len(lines) * share)):
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines.insert(j, lines.pop(i))
  with open(target, 'wb') as f:
    f.write(b'\n'.join(lines) + b'\n')


@pytest.mark.parametrize('seed', range(6))
def test_conservation_under_random_arrival_orders(tmp_path, seed):
  rng = random.Random(seed)
  generated = tmp_path / 'generated.jsonl'
  counts = write_call_events(
    str(generated),
    1200,
    seed=seed,
    events_per_second=rng.choice([1, 3, 10]),
    queues=rng.randint(2, 6),
    too_late_share=rng.uniform(0, 0.05),
    duplicate_share=rng.uniform(0, 0.05),
  )
  events = tmp_path / 'arrivals.jsonl'
  shuffled_copy(generated, events, rng, share=rng.uniform(0.01, 0.2))
  poll_size = rng.choice([1, 7, 50, 500])
  # Moved lines can arrive hours of event time after their first copy; the
  # dedupe horizon must cover that for "each event once" to be the contract.
  rows, late, _ = run_main_job(
    events, tmp_path / 'out.db', f'--replay_poll_size={poll_size}', '--dedupe_ttl_seconds=86400'
  )

  assert sum(r[0] for r in rows.values()) + len(late) == counts['valid']
  assert len(set(late)) == len(late)
  ref = reference_call_metrics(str(events), poll_size=poll_size)
  assert {k: list(v) for k, v in rows.items()} == comparable_rows(ref)
  assert sorted(late) == sorted(ref.late)


@pytest.mark.parametrize('runner', [LOCAL, pytest.param(PRISM, marks=PRISM_LOSES_REPLAY_TAGS)])
def test_both_flows_in_one_job_match_their_references(tmp_path, runner):
  calls = tmp_path / 'calls.jsonl'
  actions = tmp_path / 'actions.jsonl'
  write_call_events(str(calls), 1500, seed=3, events_per_second=4)
  counts = write_data_actions(str(actions), 3000, seed=5)
  db = tmp_path / 'out.db'
  rows, late, _ = run_main_job(calls, db, f'--data_actions={actions}', *runner_flags(runner))
  calls_ref = reference_call_metrics(str(calls))
  assert {k: list(v) for k, v in rows.items()} == comparable_rows(calls_ref)
  check_interactions(db, actions, counts)


@on_both_runners
def test_the_interactions_flow_alone_matches_its_reference(tmp_path, runner):
  # One replayed file: Prism runs no job of two (PRISM_LOSES_REPLAY_TAGS).
  actions = tmp_path / 'actions.jsonl'
  counts = write_data_actions(str(actions), 3000, seed=5)
  db = tmp_path / 'out.db'
  contact_center.run([f'--data_actions={actions}', f'--sqlite_path={db}', *runner_flags(runner)])
  check_interactions(db, actions, counts)


def check_interactions(db, actions, counts) -> None:
  """The interactions flow's tables in `db` against the reference fed the
  `actions` file the generator wrote (`counts`)."""
  ref = reference_interactions(str(actions))
  conn = sqlite3.connect(db)
  volumes = dict(
    ((c, ws), v)
    for c, ws, v in conn.execute('SELECT channel, window_start, volume FROM interaction_volumes')
  )
  alerts = set(conn.execute('SELECT customer_id, channel, timestamp FROM pattern_alerts'))
  late_by_reason = {}
  for event_id, reason in conn.execute(
    "SELECT event_id, reason FROM late_events WHERE source = 'cxone-data-actions'"
  ):
    late_by_reason.setdefault(reason, set()).add(event_id)
  unknown_tiers = conn.execute(
    "SELECT COUNT(*) FROM pattern_alerts WHERE tier = 'UNKNOWN'"
  ).fetchone()
  conn.close()

  assert volumes == ref.volumes
  assert late_by_reason.get('after_window_expiry', set()) == ref.late_volume_ids
  assert late_by_reason.get('behind_processed_interactions', set()) == ref.pattern_late_ids
  assert alerts == ref.alerts and alerts
  assert sum(volumes.values()) + len(ref.late_volume_ids) == counts['interactions']
  assert unknown_tiers[0] < len(alerts)
