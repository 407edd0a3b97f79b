"""The agent flow end to end: the main job on a generated seed agent-event
file (testing/datagen/seed_agent_events.py), its agent_metrics,
agent_activity and agent_status tables and its dead letters against the
plain-Python reference (testing/reference/agents.py) fed the same file.

The reference replays the file as the job's replay does
(transforms/replay.py): polls of --replay_poll_size lines, the watermark
after each poll at the largest event time of a valid line so far, then the
end of the input. Polls span a few minutes of event time, far below
--allowed_lateness_seconds=3600, so no agent time reaches its window after the
window closed (the local runner does not hold a step's watermark for its
pending timers, tests/conftest.py `drain`); the late_events table stays
empty.
"""

import sqlite3
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from pipelines import contact_center
from testing.datagen.seed_agent_events import Line, generate_agent_events
from testing.reference.agents import AgentsReference, Counts, Figures
from tests.conftest import BASE_S
from tests.support.beam_metrics import committed_counters
from tests.support.prism import on_both_runners, runner_flags

WINDOW_S = 300
SAMPLE = Path(__file__).resolve().parent.parent / 'samples' / 'agent_events.jsonl'
SILENCE_S = 900


def _rows(db: Path, sql: str) -> List[sqlite3.Row]:
  with sqlite3.connect(db) as conn:
    conn.row_factory = sqlite3.Row
    return list(conn.execute(sql))


def _reference(lines: List[Line], poll_size: int) -> AgentsReference:
  ref = AgentsReference(WINDOW_S * 1000, SILENCE_S * 1000)
  watermark = None
  for first in range(0, len(lines), poll_size):
    for line in lines[first : first + poll_size]:
      if line.record is not None:
        ref.apply(line.record)
        at = line.record['timestamp']
        watermark = at if watermark is None else max(watermark, at)
    if watermark is not None:
      ref.advance_watermark(watermark)
  ref.finish()
  return ref


def _figures(row: sqlite3.Row) -> Figures:
  return Figures(*(row[name] for name in Figures._fields))


def check_file(
  path: Path, lines: List[Line], poll_size: int, tmp_path: Path, runner: str
) -> AgentsReference:
  """Runs the main job on `path` (holding `lines`) on `runner`
  (tests/support/prism.py) and checks its agent tables, dead letters and
  counters against the reference. Returns the reference."""
  db = tmp_path / 'out.db'
  result = contact_center.run(
    [
      f'--agent_events={path}',
      f'--sqlite_path={db}',
      f'--replay_poll_size={poll_size}',
      f'--window_seconds={WINDOW_S}',
      '--allowed_lateness_seconds=3600',
      f'--agent_silence_timeout_seconds={SILENCE_S}',
      *runner_flags(runner),
    ]
  )
  ref = _reference(lines, poll_size)

  metrics = {
    (r['queue_id'], r['channel'], r['window_start']): r
    for r in _rows(db, 'SELECT * FROM agent_metrics')
  }
  want_metrics = ref.queue_windows()
  assert sorted(metrics) == sorted(want_metrics)
  for key, want in want_metrics.items():
    assert _figures(metrics[key]) == want, key
    assert metrics[key]['window_end'] == key[2] + WINDOW_S * 1000
    assert metrics[key]['queue_name'] == key[0]
  activity = {
    (r['agent_id'], r['window_start']): r for r in _rows(db, 'SELECT * FROM agent_activity')
  }
  want_activity = ref.agent_windows()
  assert sorted(activity) == sorted(want_activity)
  for key, want in want_activity.items():
    assert _figures(activity[key]) == want, key
  assert sum(f.handled_contacts for f in want_activity.values()) > 100

  # Everyone logged out at the end: each place's last row says nobody.
  status: Dict[Tuple[str, str], sqlite3.Row] = {
    (r['queue_id'], r['channel']): r for r in _rows(db, 'SELECT * FROM agent_status')
  }
  assert sorted(status) == ref.places
  assert set(ref.statuses().values()) == {Counts(0, 0, 0, 0, 0, ())}
  for row in status.values():
    assert (row['logged_in'], row['not_ready_reasons']) == (0, '{}')

  dead = {r['origin']: r['reason'] for r in _rows(db, 'SELECT * FROM dead_letters')}
  assert dead == {
    f'{path.name}:{n + 1}': line.reason for n, line in enumerate(lines) if line.record is None
  }
  assert _rows(db, 'SELECT * FROM late_events') == []

  counters = committed_counters(result, 'agents')
  assert counters.get('stale_events', 0) == ref.stale_events > 0
  assert counters.get('silent_logouts', 0) == ref.silent_logouts > 0
  assert counters.get('heartbeats_of_agents_logged_out', 0) == ref.heartbeats_of_agents_logged_out
  assert counters.get('state_changes', 0) == ref.state_changes
  return ref


# The replay's default poll (500 lines) spans about 10 minutes of event
# time on the bigger floor; on the smaller one, arrivals up to 90 s late
# often follow the watermark past a window boundary (the change counts from
# the boundary).
@pytest.mark.parametrize(
  'seed, agents, hours, poll_size, disorder_s', [(7, 12, 1.5, 60, 90), (8, 30, 3, 500, 20)]
)
@on_both_runners
def test_the_agent_tables_equal_the_reference(
  seed, agents, hours, poll_size, disorder_s, tmp_path, runner
):
  lines = generate_agent_events(
    seed,
    agents,
    disorder_ms=disorder_s * 1000,
    start_ms=BASE_S * 1000 + 3,
    duration_ms=int(hours * 3600 * 1000),
    silent_share=0.3,
    malformed=10,
  )
  path = tmp_path / 'agents.jsonl'
  path.write_bytes(b''.join(line.raw + b'\n' for line in lines))
  check_file(path, lines, poll_size, tmp_path, runner)
  assert sum(line.record is None for line in lines) == 10


@on_both_runners
def test_the_sample_file_is_the_generators_and_the_job_agrees(tmp_path, runner):
  """samples/agent_events.jsonl is what its generator's documented command
  writes (testing/datagen/seed_agent_events.py), and the job agrees with
  the reference on it."""
  lines = generate_agent_events(1, 20)
  assert SAMPLE.read_bytes() == b''.join(line.raw + b'\n' for line in lines)
  check_file(SAMPLE, lines, 500, tmp_path, runner)
