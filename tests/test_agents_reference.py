"""Agent states, agents per queue and agent time (transforms/agent_states.py,
agent_status.py, agent_metrics.py) against their independent reference
(testing/reference/agents.py).

First the reference on hand-written cases, one rule each; then the job's
AgentStates, AgentStatusPerQueue, AgentMetricsPerQueue and
AgentActivityPerAgent on the local runner, fed TestStream polls of
generated seed agent events (testing/datagen/seed_agent_events.py: logins,
contacts, holds, breaks, heartbeats, logouts, silences, disorder,
duplicates, stale re-sends), the watermark at the largest event time after
every poll: after every poll its latest agent_status row per (queue,
channel) must be the reference's counts at that point; at the end its last
agent_metrics and agent_activity pane per window the reference's figures,
and its counters (stale events, silent logouts, heartbeats of agents not
logged in) the reference's.

Lateness: the local runner does not hold a step's output watermark for its
pending timers (tests/conftest.py `drain`), so time the agents' boundary
timers report could reach a window after the window closed if the watermark
jumped far. Here the watermark moves in steps far below the allowed
lateness (3600 s): the generated events are dense, and after the last poll
it walks one window at a time past every silence logout before infinity;
so nothing is late, and the late output is checked empty.

The status step's processing clock is the runner's TestStream clock (one
second per poll, deterministic), so a row's updated_at says which poll
wrote it.

The last two tests send an agent's state again after its logout: older
than the logout, it is stale (the job keeps the logout as a tombstone for
the silence timeout), not a new login.
"""

import json
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration

from testing.datagen.seed_agent_events import generate_agent_events
from testing.reference.agents import (
  AgentsReference,
  Counts,
  Figures,
  figures_of,
  half_up_4,
  reference_agents,
)
from tests.conftest import BASE_S, streaming_options
from tests.support.beam_metrics import committed_counters
from tests.support.runner_clock import COLLECTED, collect, runner_clock, runner_now  # noqa: F401 (fixture)

T0 = BASE_S * 1000
S = 1000
W = 300 * S  # window
TIMEOUT = 900 * S  # silence timeout
LATENESS_S = 3600
NAMESPACE = 'agents_reference_test'


def ev(
  agent: str,
  at_s: float,
  state: str,
  reason: str = '',
  queues: Sequence[str] = ('Q-1',),
  channels: Sequence[str] = ('voice',),
  contact: str = '',
) -> Dict[str, Any]:
  """An AgentEvent-like dict at T0 + at_s (since = timestamp)."""
  at = T0 + int(round(at_s * S))
  return {
    'agent_id': agent,
    'timestamp': at,
    'since': at,
    'state': state,
    'reason': reason,
    'queues': list(queues),
    'channels': list(channels),
    'contact_id': contact,
    'heartbeat': False,
  }


def beat(agent: str, at_s: float) -> Dict[str, Any]:
  at = T0 + int(round(at_s * S))
  return {'agent_id': agent, 'timestamp': at, 'since': at, 'heartbeat': True}


def ms(at_s: float) -> int:
  return T0 + int(round(at_s * S))


def ref_of(*events: Dict[str, Any], watermark_s: Optional[float] = None) -> AgentsReference:
  """The reference after `events`, the watermark then at `watermark_s` if
  given (never moved otherwise)."""
  ref = AgentsReference(W, TIMEOUT)
  for event in events:
    ref.apply(event)
  if watermark_s is not None:
    ref.advance_watermark(ms(watermark_s))
  return ref


KEY = ('Q-1', 'voice')


def per_agent(ref: AgentsReference, agent: str = 'A') -> Dict[int, Figures]:
  """Window offset (s from T0) -> the agent's figures."""
  return {(w - T0) // S: f for (a, w), f in ref.agent_windows().items() if a == agent}


def time_of(f: Figures) -> Tuple[int, float, float, float, float, float]:
  return (
    f.handled_contacts,
    f.talk_seconds,
    f.hold_seconds,
    f.after_contact_work_seconds,
    f.available_seconds,
    f.not_ready_seconds,
  )


# ---------------------------------------------------------------------------
# (a) The reference on hand-written cases
# ---------------------------------------------------------------------------


def test_an_event_older_than_the_current_state_is_stale_and_counted():
  ref = ref_of(ev('A', 0, 'available'), ev('A', 60, 'not_ready', 'Break'), ev('A', 30, 'available'))
  assert ref.stale_events == 1
  assert ref.state_of('A') == ('not_ready', 'Break', ms(60))
  ref.advance_watermark(ms(120))
  assert ref.status(KEY) == Counts(1, 0, 0, 0, 1, (('Break', 1),))
  ref.finish()
  assert time_of(per_agent(ref)[0]) == (0, 0, 0, 0, 60.0, 240.0)


def test_a_repeat_changes_nothing_but_refreshes_the_agent():
  once = ref_of(ev('A', 0, 'available'), ev('A', 10, 'on_contact', contact='c1'))
  twice = ref_of(
    ev('A', 0, 'available'),
    ev('A', 10, 'on_contact', contact='c1'),
    ev('A', 10, 'on_contact', contact='c1'),
    ev('A', 0, 'available'),  # a late copy: stale
    ev('A', 500, 'on_contact', contact='c1'),  # the same state re-stated later
  )
  assert twice.state_changes == once.state_changes == 2
  assert twice.stale_events == 1
  assert twice.state_of('A') == ('on_contact', '', ms(10))
  # The re-statement at 500 s moved last_seen: the silence logout is later.
  once.finish()
  twice.finish()
  assert once.agent_windows() != twice.agent_windows()
  # Logged out at 500 + 900 s, still on the contact.
  assert time_of(per_agent(twice)[900]) == (0, 300.0, 0, 0, 0, 0)
  assert time_of(per_agent(twice)[1200]) == (1, 200.0, 0, 0, 0, 0)
  assert max(per_agent(once)) == 900  # logged out at 10 + 900 s


def test_queues_and_channels_are_sets():
  ref = ref_of(
    ev('A', 0, 'available', queues=['Q-2', 'Q-1', 'Q-1'], channels=['voice', 'chat']),
    ev('A', 5, 'available', queues=['Q-1', 'Q-2'], channels=['chat', 'voice']),
  )
  assert ref.state_changes == 1
  assert ref.places == [('Q-1', 'chat'), ('Q-1', 'voice'), ('Q-2', 'chat'), ('Q-2', 'voice')]


def test_a_heartbeat_refreshes_a_logged_in_agent_and_is_counted_for_others():
  ref = ref_of(beat('A', 0), ev('A', 10, 'available'), beat('A', 800), beat('B', 5))
  assert ref.heartbeats_of_agents_logged_out == 2
  ref.advance_watermark(ms(10 + 900))  # 900 s after its event, not after its heartbeat
  assert ref.logged_in() == ['A'] and ref.silent_logouts == 0
  ref.advance_watermark(ms(1700))
  assert ref.logged_in() == [] and ref.silent_logouts == 1
  assert ref.status(KEY) == Counts(0, 0, 0, 0, 0, ())
  ref.apply(beat('A', 1710))
  assert ref.heartbeats_of_agents_logged_out == 3


def test_a_change_ends_the_old_state_at_its_since():
  ref = ref_of(
    ev('A', 0, 'available'), ev('A', 100, 'not_ready', 'Lunch'), ev('A', 350, 'logged_out')
  )
  assert time_of(per_agent(ref)[0]) == (0, 0, 0, 0, 100.0, 200.0)
  assert time_of(per_agent(ref)[300]) == (0, 0, 0, 0, 0, 50.0)
  assert ref.logged_in() == [] and ref.silent_logouts == 0
  # (handled, ms of talk, hold, ACW, available, not ready)
  assert ref.agent_window_ms() == {
    ('A', T0): (0, 0, 0, 0, 100_000, 200_000),
    ('A', T0 + W): (0, 0, 0, 0, 0, 50_000),
  }
  assert ref.queue_window_ms() == {(*KEY, w): t for (_, w), t in ref.agent_window_ms().items()}


def test_time_is_cut_at_each_boundary_the_watermark_passes():
  ref = ref_of(ev('A', 250, 'available'), watermark_s=700)
  # Reported through 600 s; the rest waits for the next boundary.
  assert {w: f.available_seconds for w, f in per_agent(ref).items()} == {0: 50.0, 300: 300.0}
  ref.advance_watermark(ms(899.999))
  assert 600 not in per_agent(ref)


def test_a_change_behind_a_reported_boundary_counts_from_the_boundary():
  # The change to not_ready at 280 s arrives after the watermark passed
  # 300 s: [0, 300) was reported as available; not_ready counts from 300 s.
  ref = ref_of(ev('A', 0, 'available'), watermark_s=310)
  ref.apply(ev('A', 280, 'not_ready', 'Break'))
  ref.apply(ev('A', 400, 'logged_out'))
  assert time_of(per_agent(ref)[0]) == (0, 0, 0, 0, 300.0, 0)
  assert time_of(per_agent(ref)[300]) == (0, 0, 0, 0, 0, 100.0)
  # A change past the reported time ends the old state at its since.
  ref = ref_of(ev('A', 0, 'available'), watermark_s=310)
  ref.apply(ev('A', 305, 'not_ready', 'Break'))
  ref.apply(ev('A', 400, 'logged_out'))
  assert time_of(per_agent(ref)[300]) == (0, 0, 0, 0, 5.0, 95.0)


def test_the_end_of_the_work_on_a_contact_is_handled_once():
  ref = ref_of(
    ev('A', 0, 'available'),
    ev('A', 10, 'on_contact', contact='c1'),
    ev('A', 40, 'on_hold', contact='c1'),
    ev('A', 50, 'on_contact', contact='c1'),
    ev('A', 70, 'after_contact_work', contact='c1'),
    ev('A', 80, 'on_contact', contact='c2'),  # straight to the next: c1 handled
    ev('A', 100, 'after_contact_work', contact='c2'),
    ev('A', 120, 'available'),  # c2 handled
    ev('A', 130, 'on_contact', contact='c3'),
    ev('A', 150, 'logged_out'),  # c3 handled by the logout
  )
  f = per_agent(ref)[0]
  assert time_of(f) == (3, 90.0, 10.0, 30.0, 20.0, 0)
  assert f.aht_seconds == 43.3333  # 130 s of work / 3
  assert f.occupancy == 0.8667  # 130 / 150


def test_a_contact_ended_at_a_reported_boundary_is_handled_in_the_next_window():
  ref = ref_of(ev('A', 0, 'available'), ev('A', 200, 'on_contact', contact='c1'), watermark_s=301)
  ref.apply(ev('A', 290, 'available'))  # behind the boundary reported
  ref.apply(ev('A', 320, 'logged_out'))
  assert time_of(per_agent(ref)[0]) == (0, 100.0, 0, 0, 200.0, 0)
  assert time_of(per_agent(ref)[300]) == (1, 0, 0, 0, 20.0, 0)
  # Unreported, the same end is handled in the window of its last moment.
  ref = ref_of(ev('A', 0, 'available'), ev('A', 200, 'on_contact', contact='c1'))
  ref.apply(ev('A', 300, 'available'))
  ref.apply(ev('A', 320, 'logged_out'))
  assert per_agent(ref)[0].handled_contacts == 1
  assert per_agent(ref)[300].handled_contacts == 0


def test_a_silent_agent_is_logged_out_at_its_last_event_plus_the_timeout():
  ref = ref_of(ev('A', 100, 'on_contact', contact='c1'), watermark_s=999.999)
  assert ref.logged_in() == ['A']
  ref.advance_watermark(ms(2000))
  assert ref.silent_logouts == 1 and ref.logged_in() == []
  windows = per_agent(ref)
  assert [(w, f.talk_seconds, f.handled_contacts) for w, f in sorted(windows.items())] == [
    (0, 200.0, 0),
    (300, 300.0, 0),
    (600, 300.0, 0),
    (900, 100.0, 1),
  ]
  assert ref.history[KEY][-1] == Counts(0, 0, 0, 0, 0, ())


def test_a_silence_logout_on_a_boundary_ends_the_contact_in_the_window_before():
  ref = ref_of(ev('A', 0, 'on_contact', contact='c1'), watermark_s=2000)
  assert [(w, f.talk_seconds, f.handled_contacts) for w, f in per_agent(ref).items()] == [
    (0, 300.0, 0),
    (300, 300.0, 0),
    (600, 300.0, 1),
  ]


def test_the_end_of_the_input_logs_everyone_out():
  ref = ref_of(ev('A', 0, 'available'), ev('B', 100, 'not_ready', 'Break'), beat('B', 400))
  ref.finish()
  assert ref.logged_in() == [] and ref.silent_logouts == 2
  assert sum(f.available_seconds for f in per_agent(ref, 'A').values()) == 900.0
  assert sum(f.not_ready_seconds for f in per_agent(ref, 'B').values()) == 1200.0


def test_an_event_older_than_a_logout_is_stale():
  ref = ref_of(ev('A', 0, 'available'), ev('A', 100, 'logged_out'), ev('A', 50, 'on_contact'))
  assert ref.stale_events == 1 and ref.logged_in() == []
  ref.apply(ev('A', 100, 'available'))  # a login at the logout's time is not older
  assert ref.logged_in() == ['A']


def test_agents_by_state_per_queue_and_channel():
  ref = ref_of(
    ev('A', 0, 'available', queues=['Q-1', 'Q-2']),
    ev('B', 1, 'on_hold', contact='c', channels=['voice', 'chat']),
    ev('C', 2, 'not_ready', 'Break'),
    ev('D', 3, 'not_ready', 'Lunch'),
    ev('E', 4, 'not_ready', 'Break'),
    ev('F', 5, 'after_contact_work', contact='d'),
  )
  assert ref.status(KEY) == Counts(6, 1, 1, 1, 3, (('Break', 2), ('Lunch', 1)))
  assert ref.status(('Q-2', 'voice')) == Counts(1, 1, 0, 0, 0, ())
  assert ref.status(('Q-1', 'chat')) == Counts(1, 0, 1, 0, 0, ())
  # A move to another queue leaves the first.
  ref.apply(ev('A', 10, 'available', queues=['Q-3']))
  assert ref.status(('Q-2', 'voice')) == Counts(0, 0, 0, 0, 0, ())
  assert ref.status(('Q-3', 'voice')) == Counts(1, 1, 0, 0, 0, ())
  assert ref.history[('Q-2', 'voice')][-1] == Counts(0, 0, 0, 0, 0, ())


def test_an_agent_of_several_queues_counts_in_each():
  ref = ref_of(
    ev('A', 0, 'available', queues=['Q-1', 'Q-2'], channels=['chat', 'voice']),
    ev('A', 60, 'logged_out', queues=['Q-1', 'Q-2'], channels=['chat', 'voice']),
  )
  windows = ref.queue_windows()
  assert sorted(windows) == [(q, c, T0) for q in ('Q-1', 'Q-2') for c in ('chat', 'voice')]
  assert {f.available_seconds for f in windows.values()} == {60.0}


def test_aht_and_occupancy_round_half_up_to_4_places():
  assert half_up_4(1, 8) == 0.125
  assert half_up_4(5, 100_000) == 0.0001  # 0.00005 up, where float rounding may go down
  assert half_up_4(4, 100_000) == 0.0
  assert half_up_4(2, 3) == 0.6667 and half_up_4(1, 3) == 0.3333
  assert half_up_4(7, 0) == 0.0
  assert figures_of(0, [0, 0, 0, 0, 5]) == Figures(0, 0, 0, 0, 0, 5 / 1000, 0.0, 0.0)
  f = figures_of(3, [100_000, 0, 0, 0, 0])
  assert f.aht_seconds == 33.3333 and f.occupancy == 1.0


def test_the_generator_is_seeded_and_has_every_kind_of_event():
  stats: Dict[str, int] = {}
  lines = generate_agent_events(3, 12, stats=stats)
  assert [line.raw for line in lines] == [line.raw for line in generate_agent_events(3, 12)]
  assert lines != generate_agent_events(4, 12)
  for kind in COUNT_KINDS:
    assert stats[kind] > 0, kind
  assert stats['lines'] == len(lines)
  assert {line.reason for line in lines if line.record is None} >= {
    'malformed_json',
    'missing_field',
    'unknown_enum_value',
  }
  valid = [line.record for line in lines if line.record is not None]
  # Every first delivery within the disorder bound (20 s) of the latest
  # event time seen.
  latest = 0
  for line in lines:
    if line.kind in ('state', 'heartbeat'):
      assert line.record['timestamp'] >= latest - 20 * S
      latest = max(latest, line.record['timestamp'])
  ref = reference_agents(valid, W, TIMEOUT)
  assert ref.stale_events > 0 and ref.silent_logouts > 0
  assert ref.heartbeats_of_agents_logged_out > 0
  assert sum(f.handled_contacts for f in ref.agent_windows().values()) > 100


COUNT_KINDS = (
  'contacts',
  'holds',
  'not_ready',
  'queue_moves',
  'logouts',
  'silent_agents',
  'relogins',
  'duplicates',
  'stale_resends',
  'malformed',
)


# ---------------------------------------------------------------------------
# (b) The job against the reference
# ---------------------------------------------------------------------------


def _agent_event(record: Dict[str, Any]):
  """The job's AgentEvent of a reference dict or seed record, by the
  seed parser for a seed record (what the job would read)."""
  from transforms.formats.agent_seed import parse_agent_event
  from transforms.records import AgentEvent

  if 'event_type' in record:
    return parse_agent_event(json.dumps(record).encode())
  if record.get('heartbeat'):
    return AgentEvent(
      record['agent_id'], record['timestamp'], record['since'], '', '', [], [], '', True
    )
  return AgentEvent(
    record['agent_id'],
    record['timestamp'],
    record['since'],
    record['state'],
    record['reason'],
    sorted(set(record['queues'])),
    sorted(set(record['channels'])),
    record['contact_id'],
  )


def run_job(polls: Sequence[Sequence[Dict[str, Any]]], tail: Sequence[int]):
  """Runs the agent steps on the local runner: one poll per second of
  processing time, the watermark after each at the largest event time so
  far, then at each of `tail` (epoch ms, one second apart), then infinity.
  Returns the pipeline result; the rows are in COLLECTED."""
  from transforms.agent_metrics import AgentActivityPerAgent, AgentMetricsPerQueue
  from transforms.agent_states import AGENT_PRESENCE, AgentStates
  from transforms.agent_status import AgentStatusPerQueue

  stream = TestStream()
  watermark: Optional[int] = None
  for poll in polls:
    stream.advance_processing_time(1)
    events = [_agent_event(r) for r in poll]
    if events:
      stream.add_elements([TimestampedValue(e, e.timestamp / 1000) for e in events])
      latest = max(e.timestamp for e in events)
      if watermark is None or latest > watermark:
        watermark = latest
        stream.advance_watermark_to(watermark / 1000)
  for at in tail:
    stream.advance_processing_time(1)
    if watermark is None or at > watermark:
      watermark = at
      stream.advance_watermark_to(at / 1000)
  stream.advance_watermark_to_infinity()

  windows = dict(
    window_size=Duration(seconds=W // S),
    allowed_lateness=Duration(seconds=LATENESS_S),
    key_idle_ttl=Duration(seconds=86400),
    max_out_of_orderness=Duration(0),
  )
  pipeline = beam.Pipeline(options=streaming_options())
  states = (
    pipeline
    | stream
    | AgentStates(
      window_size=Duration(seconds=W // S),
      silence_timeout=Duration(seconds=TIMEOUT // S),
      metrics_namespace=NAMESPACE,
    )
  )
  status = states[AGENT_PRESENCE] | AgentStatusPerQueue(queue_names={}, processing_clock=runner_now)
  metrics = states['agent_spans'] | 'Metrics' >> AgentMetricsPerQueue(queue_names={}, **windows)
  activity = states['agent_spans'] | 'Activity' >> AgentActivityPerAgent(**windows)
  outputs = {
    'agent_status': status,
    'agent_metrics': metrics['rows'],
    'agent_activity': activity['rows'],
    'late': (metrics['late'], activity['late']) | beam.Flatten(),
  }
  for name, rows in outputs.items():
    _ = rows | f'Collect {name}' >> beam.FlatMap(collect, name)
  result = pipeline.run()
  result.wait_until_finish()
  return result


def _counts_of(row) -> Counts:
  reasons = json.loads(row.not_ready_reasons)
  return Counts(
    row.logged_in,
    row.available,
    row.on_contact,
    row.after_contact_work,
    row.not_ready,
    tuple(sorted(reasons.items())),
  )


def _latest_status(now_ms: int) -> Dict[Tuple[str, str], Any]:
  latest: Dict[Tuple[str, str], Any] = {}
  for output, row in COLLECTED:
    if output == 'agent_status' and row.updated_at <= now_ms:
      latest[(row.queue_id, row.channel)] = row
  return latest


def _final_panes(output: str, key) -> Dict[Any, Any]:
  """Key -> the row of the highest pane of each window."""
  final: Dict[Any, Any] = {}
  for name, row in COLLECTED:
    if name == output:
      k = key(row)
      if k not in final or row.pane_index > final[k].pane_index:
        final[k] = row
  return final


def _figures_of_row(row) -> Figures:
  return Figures(*(getattr(row, name) for name in Figures._fields))


def _as_of_ranges(ref: AgentsReference) -> Dict[Tuple[str, str], Tuple[int, int]]:
  """Place -> the range its latest row's as_of may be in: the time of a
  change there, at most the latest (which changes the counts is not
  known: a batch of presences writes one row, or none if the counts stay).
  """
  return {place: (T0, ref.last_change(place)) for place in ref.places}


def check_job(polls: Sequence[Sequence[Dict[str, Any]]]) -> AgentsReference:
  """Runs the job over `polls` (then the watermark one window at a time
  past the last silence logout) and checks it against the reference after
  every poll and at the end. Returns the reference."""
  ref = AgentsReference(W, TIMEOUT)
  watermark: Optional[int] = None
  # (processing time, place -> counts, place -> as_of range).
  steps: List[
    Tuple[int, Dict[Tuple[str, str], Counts], Dict[Tuple[str, str], Tuple[int, int]]]
  ] = []
  for k, poll in enumerate(polls):
    for record in poll:
      ref.apply(record)
    if poll:
      latest = max(r['timestamp'] for r in poll)
      watermark = latest if watermark is None else max(watermark, latest)
    if watermark is not None:
      ref.advance_watermark(watermark)
    steps.append(((k + 1) * S, ref.statuses(), _as_of_ranges(ref)))
  # The tail: one window at a time past every silence logout.
  tail: List[int] = []
  if watermark is not None:
    at = watermark
    while ref.logged_in():
      at += W
      tail.append(at)
      ref.advance_watermark(at)
      steps.append(((len(polls) + len(tail)) * S, ref.statuses(), _as_of_ranges(ref)))
  result = run_job(polls, tail)
  for now_ms, statuses, as_of in steps:
    job = _latest_status(now_ms)
    assert sorted(job) == sorted(statuses), now_ms
    for place, want in statuses.items():
      assert _counts_of(job[place]) == want, (now_ms, place)
      low, high = as_of[place]
      assert low <= job[place].as_of <= high, (now_ms, place)
  metrics = _final_panes('agent_metrics', lambda r: (r.queue_id, r.channel, r.window_start))
  activity = _final_panes('agent_activity', lambda r: (r.agent_id, r.window_start))
  want_metrics = ref.queue_windows()
  want_activity = ref.agent_windows()
  assert sorted(metrics) == sorted(want_metrics)
  assert sorted(activity) == sorted(want_activity)
  for key, want in want_metrics.items():
    assert _figures_of_row(metrics[key]) == want, key
    assert metrics[key].window_end == key[2] + W
  for key, want in want_activity.items():
    assert _figures_of_row(activity[key]) == want, key
  assert [row for name, row in COLLECTED if name == 'late'] == []
  counters = committed_counters(result, NAMESPACE)
  assert counters.get('stale_events', 0) == ref.stale_events
  assert counters.get('silent_logouts', 0) == ref.silent_logouts
  assert counters.get('heartbeats_of_agents_logged_out', 0) == ref.heartbeats_of_agents_logged_out
  assert counters.get('state_changes', 0) == ref.state_changes
  assert counters.get('agents_logged_in', 0) == len(ref.logged_in()) == 0
  return ref


def _polls(rng: random.Random, records: List[Dict[str, Any]]) -> List[List[Dict[str, Any]]]:
  polls, i = [], 0
  while i < len(records):
    n = rng.randint(1, 40)
    polls.append(records[i : i + n])
    i += n
  return polls


# Millisecond timestamps: a silence logout exactly on a window boundary,
# where the job's two timers fire in either order (the contact's handled
# count then goes to one window or the next), is one chance in 300 000.
@pytest.mark.parametrize(
  'seed, agents, disorder_s', [(1, 8, 20), (2, 8, 20), (3, 8, 20), (4, 12, 90), (5, 12, 90)]
)
def test_the_job_agrees_with_the_reference_on_generated_floors(
  runner_clock, seed, agents, disorder_s
):
  lines = generate_agent_events(
    seed, agents, duration_ms=3600 * S, start_ms=T0 + 17, disorder_ms=disorder_s * S
  )
  records = [line.record for line in lines if line.record is not None]
  ref = check_job(_polls(random.Random(seed), records))
  assert ref.stale_events > 0 and ref.silent_logouts > 0
  assert sum(f.handled_contacts for f in ref.agent_windows().values()) > 20


def test_the_job_agrees_with_the_reference_at_the_rules_boundaries(runner_clock):
  polls = [
    [
      ev('A', 0, 'available', queues=['Q-1', 'Q-2']),
      beat('Z', 1),
      ev('B', 2, 'not_ready', 'Break'),
    ],
    [ev('A', 200, 'on_contact', contact='c1', queues=['Q-1', 'Q-2']), beat('B', 250)],
    # The watermark passes 300 s: both agents' time reported through it.
    # D goes silent on a contact: logged out at 900 s, a window boundary.
    [ev('C', 310, 'available', channels=['chat', 'voice']), ev('D', 0, 'on_contact', contact='d1')],
    # A's end behind the reported boundary: handled at 300 s, next window.
    [ev('A', 290, 'available', queues=['Q-1', 'Q-2'])],
    # Stale, a repeat, a move to another queue.
    [
      ev('B', 1, 'available'),
      ev('C', 310, 'available', channels=['voice', 'chat']),
      ev('A', 320, 'available', queues=['Q-3']),
    ],
    [ev('A', 400, 'on_hold', contact='c2', queues=['Q-3']), beat('C', 900)],
    [ev('A', 420, 'on_contact', contact='c2', queues=['Q-3'])],
    [ev('A', 450, 'after_contact_work', contact='c2', queues=['Q-3'])],
    [ev('A', 470, 'on_contact', contact='c3', queues=['Q-3'])],
    # B silent since 250 s (logged out at 1150 s); A logs out on c3.
    [ev('A', 1000, 'logged_out', queues=['Q-3'])],
    # E logs in 1450 s behind the watermark: silent already.
    [beat('C', 1500), ev('E', 50, 'not_ready', 'Training')],
  ]
  ref = check_job(polls)
  assert ref.stale_events == 1
  assert ref.silent_logouts == 4  # B, D, E, then C at the end
  assert sum(f.not_ready_seconds for f in per_agent(ref, 'E').values()) == 900.0
  assert per_agent(ref, 'D')[600].handled_contacts == 1
  assert ref.heartbeats_of_agents_logged_out == 1
  assert per_agent(ref)[300].handled_contacts == 1
  assert sum(f.handled_contacts for f in per_agent(ref).values()) == 3


def test_an_event_older_than_the_logout_does_not_log_the_agent_in_again(runner_clock):
  """A re-delivery of an agent's state that arrives after its logout (at
  least once delivery, a producer retry) is older than the logout: the
  agent stays logged out, not shown on_contact in agent_status with talk
  time until a silence logout."""
  polls = [
    [ev('A', 0, 'available')],
    [ev('A', 50, 'on_contact', contact='c1')],
    [ev('A', 100, 'logged_out')],
    [ev('A', 50, 'on_contact', contact='c1')],  # the re-delivery
    [ev('B', 200, 'available')],
    [ev('B', 260, 'logged_out')],
  ]
  ref = check_job(polls)
  assert ref.stale_events == 1


def test_the_job_agrees_with_the_reference_when_copies_follow_logouts(runner_clock):
  """The generated floor of seed 1 with, for half the logouts, the
  agent's previous state re-delivered up to a minute after its logout:
  the same disagreement as above, at the scale of a floor (agents shown
  logged in after they left, their contact's talk time counted again
  until the silence logout, contacts handled twice). Fails on the job as
  it stands."""
  stats: Dict[str, int] = {}
  lines = generate_agent_events(
    1, 8, duration_ms=3600 * S, start_ms=T0 + 17, after_logout_share=0.5, stats=stats
  )
  assert stats['after_logout_resends'] > 0
  records = [line.record for line in lines if line.record is not None]
  check_job(_polls(random.Random(1), records))
