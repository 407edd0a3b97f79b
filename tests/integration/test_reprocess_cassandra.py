"""The reprocessing job (pipelines/reprocess.py) against the real Cassandra
of scripts/stack.sh up: late calls folded into the windows the main job
wrote there give the reference's figures with unlimited lateness, once.

Each test works in its own keyspace and drops it. They fail (never skip)
when Cassandra is down.
"""

import json
from typing import List

import pytest

from pipelines import contact_center, reprocess
from testing.datagen.calls import write_call_events
from testing.reference.calls import comparable_rows, reference_call_metrics
from tests.support.cassandra_keyspace import fresh_keyspace, session_of, settings_of
from transforms.windowing import RESTATED_PANE

RANGE = ['--from_time=2026-11-02T00:00:00Z', '--to_time=2026-11-03T00:00:00Z']


@pytest.fixture
def cassandra_args(cassandra_hosts, cassandra_port) -> List[str]:
  """Sink options for a fresh keyspace, dropped after the test."""
  with fresh_keyspace(cassandra_hosts, cassandra_port, 'it_reprocess') as args:
    yield ['--sink=cassandra', *args]


@pytest.fixture
def session(cassandra_args):
  with session_of(cassandra_args) as session:
    yield session


def table(session, keyspace: str, name: str, columns: str) -> list:
  return sorted(
    (tuple(r) for r in session.execute(f'SELECT {columns} FROM {keyspace}.{name}')), key=repr
  )


def snapshot(session, keyspace: str) -> dict:
  return {
    name: table(session, keyspace, name, '*')
    for name in ('abandon_metrics', 'metric_revisions', 'window_contacts', 'late_events')
  }


def test_late_calls_fold_into_cassandra_windows_once(tmp_path, cassandra_args, session, capsys):
  keyspace = settings_of(cassandra_args).keyspace
  calls = tmp_path / 'calls.jsonl'
  write_call_events(str(calls), 1500, seed=4, events_per_second=4, queues=3, too_late_share=0.02)
  contact_center.run([f'--call_events={calls}', '--allowed_lateness_seconds=0', *cassandra_args])
  late = {
    r.event_id: (r.key, r.window_start)
    for r in session.execute(f'SELECT event_id, key, window_start FROM {keyspace}.late_events')
  }
  assert len(late) > 5, 'the file must make late calls'
  before = snapshot(session, keyspace)

  reprocess.run([*RANGE, '--dry_run=true', *cassandra_args])
  assert snapshot(session, keyspace) == before
  assert capsys.readouterr().out.strip().endswith('dry run: nothing written')

  reprocess.run([*RANGE, *cassandra_args])

  rows = {
    (r[0], r[1]): list(r[2:])
    for r in table(
      session,
      keyspace,
      'abandon_metrics',
      'queue_id, window_start, total_calls, abandoned_calls, short_abandoned_calls, '
      'answered_within_sl, total_wait_seconds, window_end, abandon_rate, service_level',
    )
  }
  assert rows == comparable_rows(reference_call_metrics(str(calls), allowed_lateness_s=10**9))
  added = {}
  for event_id, window in late.items():
    added.setdefault(window, set()).add(event_id)
  revisions = {
    (r.queue_id, r.window_start): r
    for r in session.execute(f'SELECT * FROM {keyspace}.metric_revisions')
    if r.pane_timing == RESTATED_PANE
  }
  assert revisions.keys() == added.keys()
  for window, revision in revisions.items():
    assert set(json.loads(revision.contact_ids)) == added[window]
    assert revision.new_total_calls - revision.old_total_calls == len(added[window])
    assert revision.pane_index == revision.previous_pane_index + 1
  panes = {
    (r.queue_id, r.window_start): r.pane_timing
    for r in session.execute(
      f'SELECT queue_id, window_start, pane_timing FROM {keyspace}.abandon_metrics'
    )
  }
  assert {w for w, timing in panes.items() if timing == RESTATED_PANE} == set(added)
  # The live job's contacts, if it lists them, are of its own panes.
  contacts = {
    r.contact_id
    for r in session.execute(f'SELECT contact_id, pane_timing FROM {keyspace}.window_contacts')
    if r.pane_timing == RESTATED_PANE
  }
  assert contacts == set(late)
  marks = [
    r.reprocessed_at for r in session.execute(f'SELECT reprocessed_at FROM {keyspace}.late_events')
  ]
  assert len(marks) == len(late) and all(m > 0 for m in marks)

  restated = snapshot(session, keyspace)
  reprocess.run([*RANGE, *cassandra_args])
  assert snapshot(session, keyspace) == restated
