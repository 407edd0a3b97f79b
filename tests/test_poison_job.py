"""The whole local job on streams that mix valid events with every poison
record of tests/support/poison.py (both sources): it exits 0, every poison record is
one dead letter with its reason, and every valid window equals the
plain-Python references."""

import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

from testing.datagen.calls import write_call_events
from testing.datagen.data_actions import write_data_actions
from testing.reference.calls import ROW_COLUMNS, comparable_rows, reference_call_metrics
from testing.reference.interactions import reference_interactions
from tests.support.poison import POISON_CALLS, POISON_DATA_ACTIONS

REPO = Path(__file__).resolve().parents[1]
BOM = b'\xef\xbb\xbf'


def poisoned_copy(
  source: Path, target: Path, poison: List[Tuple[bytes, str]], seed: int
) -> Dict[str, str]:
  """`source` with the poison lines at random places and a byte-order mark
  before the first line; returns the expected dead letters, origin ->
  reason."""
  lines = source.read_bytes().split(b'\n')[:-1]
  rng = random.Random(seed)
  for raw, _ in poison:
    lines.insert(rng.randrange(1, len(lines)), raw)
  lines[0] = BOM + lines[0]
  target.write_bytes(b'\n'.join(lines) + b'\n')
  reasons = dict(poison)
  return {
    f'{target.name}:{number}': reasons[line]
    for number, line in enumerate(lines, start=1)
    if line in reasons
  }


def test_poison_records_are_dead_letters_and_every_window_is_exact(tmp_path):
  generated_calls = tmp_path / 'generated_calls.jsonl'
  generated_actions = tmp_path / 'generated_actions.jsonl'
  call_counts = write_call_events(str(generated_calls), 1500, seed=21, events_per_second=4)
  action_counts = write_data_actions(str(generated_actions), 2000, seed=22)
  calls, actions = tmp_path / 'calls.jsonl', tmp_path / 'actions.jsonl'
  expected = poisoned_copy(generated_calls, calls, POISON_CALLS, seed=1)
  expected.update(poisoned_copy(generated_actions, actions, POISON_DATA_ACTIONS, seed=2))
  db = tmp_path / 'out.db'

  job = subprocess.run(
    [
      sys.executable,
      '-m',
      'pipelines.contact_center',
      f'--call_events={calls}',
      f'--data_actions={actions}',
      f'--sqlite_path={db}',
    ],
    cwd=REPO,
    env=dict(os.environ, PYTHONPATH=str(REPO)),
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert job.returncode == 0, job.stderr[-3000:]

  conn = sqlite3.connect(db)
  dead = dict(conn.execute('SELECT origin, reason FROM dead_letters'))
  assert {o: dead.get(o) for o in expected} == expected
  assert len(dead) == (len(expected) + call_counts['malformed'] + action_counts['malformed'])

  rows = {
    (q, ws): list(rest)
    for q, ws, *rest in conn.execute(
      f'SELECT queue_id, window_start, {", ".join(ROW_COLUMNS)} FROM abandon_metrics'
    )
  }
  calls_ref = reference_call_metrics(str(calls))
  assert rows == comparable_rows(calls_ref)
  late_calls = {
    r[0] for r in conn.execute("SELECT event_id FROM late_events WHERE source = 'cc-call-logs'")
  }
  assert late_calls == set(calls_ref.late)

  actions_ref = reference_interactions(str(actions))
  volumes = dict(
    ((c, ws), v)
    for c, ws, v in conn.execute('SELECT channel, window_start, volume FROM interaction_volumes')
  )
  alerts = set(conn.execute('SELECT customer_id, channel, timestamp FROM pattern_alerts'))
  conn.close()
  assert volumes == actions_ref.volumes
  assert alerts == actions_ref.alerts and alerts
