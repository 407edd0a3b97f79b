"""The agent flow end to end on each vendor's agent sample: the main job's
agent tables hold what agents by state and agent time must always satisfy,
and every malformed line the generators planted is a dead letter with its
reason. (The parsers are checked record by record against the vendors'
documented examples in tests/test_agent_amazon_connect.py and
tests/test_agent_genesys_cloud.py; the agent steps against the reference in
tests/test_agents_reference.py.)"""

import json
import sqlite3
from pathlib import Path

import pytest

from pipelines import contact_center
from testing.datagen import agent_events, genesys_agent_events
from tests.support.prism import on_both_runners, runner_flags

REPO = Path(__file__).resolve().parents[1]
WINDOW_S = 300

CASES = [
  pytest.param(
    'amazon_connect',
    'samples/amazon_connect_agent_events.jsonl',
    [],
    agent_events.MALFORMED_REASONS,
    id='amazon_connect',
  ),
  pytest.param(
    'genesys_cloud',
    'samples/genesys_cloud_agent_events.jsonl',
    ['--queue_members=tests/fixtures/queue_members.json'],
    genesys_agent_events.MALFORMED_REASONS,
    id='genesys_cloud',
  ),
]


def _rows(db: Path, table: str) -> list:
  with sqlite3.connect(db) as conn:
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute(f'SELECT * FROM {table}')]


@on_both_runners
@pytest.mark.parametrize('fmt, sample, extra, planted', CASES)
def test_agent_tables_of_each_vendor_sample_hold_together(
  fmt, sample, extra, planted, tmp_path, runner
):
  db = tmp_path / 'out.db'
  contact_center.run(
    [
      f'--agent_events={REPO / sample}',
      f'--agent_event_format={fmt}',
      f'--sqlite_path={db}',
      f'--window_seconds={WINDOW_S}',
      *extra,
      *runner_flags(runner),
    ]
  )
  status = _rows(db, 'agent_status')
  assert status
  for row in status:
    by_state = row['available'] + row['on_contact'] + row['after_contact_work'] + row['not_ready']
    assert row['logged_in'] == by_state
    assert sum(json.loads(row['not_ready_reasons']).values()) == row['not_ready']

  activity = _rows(db, 'agent_activity')
  metrics = _rows(db, 'agent_metrics')
  assert activity and metrics
  for row in activity:
    # One agent cannot spend more than the window in it.
    spent = sum(
      row[f'{s}_seconds'] for s in ('talk', 'hold', 'after_contact_work', 'available', 'not_ready')
    )
    assert 0 <= spent <= WINDOW_S + 1e-6, row
  for row in metrics + activity:
    assert 0 <= row['occupancy'] <= 1
    assert row['aht_seconds'] >= 0
  # Every contact handled per agent is handled in the queues it serves.
  assert sum(r['handled_contacts'] for r in activity) > 0
  assert sum(r['handled_contacts'] for r in metrics) >= sum(r['handled_contacts'] for r in activity)

  dead = sorted(r['reason'] for r in _rows(db, 'dead_letters'))
  assert dead == sorted(planted)
