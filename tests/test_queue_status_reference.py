"""The live queue state (transforms/queue_status.py) against its independent
reference (testing/reference/queue_status.py).

First the reference on hand-written cases, one rule each; then the job on
the local runner, fed TestStream polls of generated streams (disorder,
duplicates, lost ends, ends without starts, re-entries, waits past
max_queue_wait): after every poll, the latest QueueStatus and
WaitingContacts row of every key must be the reference's state at that
point, the lost contacts and the counters its own; and a processing-time
refresh, driven by TestStream's clock, must extrapolate as the reference
does.

The job's processing clock here is the runner's own TestStream clock (see
`runner_clock`): every poll runs at its own processing time, so a row's
updated_at says which poll wrote it, and refresh timers fire on the same
time the job reads.
"""

import json
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import MAX_TIMESTAMP, Duration

from testing.datagen.queue_transitions import Transition, generate_transitions
from testing.reference.queue_status import (
  ENTERED,
  LEFT,
  Lost,
  QueueStatusReference,
  Status,
  Waiting,
  reference_queue_status,
)
from tests.conftest import BASE_S, streaming_options
from tests.support.beam_metrics import committed_counters
from tests.support.runner_clock import COLLECTED, collect, runner_clock, runner_now  # noqa: F401 (fixture)

T0 = BASE_S * 1000
S = 1000
WAIT_MS = 120 * S  # max_queue_wait of the hand-written cases
NAMESPACE = 'queue_status_reference_test'
QUEUE_NAMES = {'Q-1': 'Sales', 'Q-2': 'Support'}


def entered(contact: str, at_s: float, queue: str = 'Q-1', channel: str = 'voice') -> Transition:
  return Transition(contact, queue, channel, ENTERED, T0 + int(at_s * S))


def left(contact: str, at_s: float, queue: str = 'Q-1', channel: str = 'voice') -> Transition:
  return Transition(contact, queue, channel, LEFT, T0 + int(at_s * S), None, 'ANSWERED')


def ref_of(*transitions: Transition, listed: int = 10) -> QueueStatusReference:
  return reference_queue_status(transitions, WAIT_MS, listed)


KEY = ('Q-1', 'voice')


def ms(at_s: float) -> int:
  return T0 + int(at_s * S)


# ---------------------------------------------------------------------------
# (a) The reference, rule by rule
# ---------------------------------------------------------------------------


def test_an_entry_waits_until_its_exit():
  ref = ref_of(entered('a', 0), entered('b', 5))
  assert ref.status(KEY) == Status(2, ms(0), 5.0, ms(5))
  ref.apply(left('a', 8))
  assert ref.status(KEY) == Status(1, ms(5), 3.0, ms(8))
  ref.apply(left('b', 9))
  assert ref.status(KEY) == Status(0, None, 0.0, ms(9))
  assert ref.held(KEY) == ({}, {'a': ms(8), 'b': ms(9)})  # tombstones
  assert ref.exits_without_entry == 0


def test_an_exit_arriving_before_its_entry_wins_and_counts_as_without_entry():
  # The exit finds no record (counted); the entry, older than the
  # tombstone, is then stale.
  ref = ref_of(left('a', 10), entered('a', 2))
  assert ref.status(KEY) == Status(0, None, 0.0, ms(10))
  assert ref.exits_without_entry == 1


@pytest.mark.parametrize('order', [(0, 1), (1, 0)])
def test_an_entry_and_an_exit_in_the_same_millisecond_leave_nothing_waiting(order):
  pair = [entered('a', 3), left('a', 3)]
  ref = ref_of(*(pair[i] for i in order))
  assert ref.status(KEY).waiting == 0
  assert ref.held(KEY) == ({}, {'a': ms(3)})


def test_duplicates_change_nothing():
  stream = [entered('a', 0), entered('b', 1), left('a', 4), entered('c', 6), left('b', 7)]
  once = ref_of(*stream)
  twice = ref_of(*[t for t in stream for _ in (0, 1)])
  late_copies = ref_of(*stream, *stream)
  for other in (twice, late_copies):
    assert other.statuses() == once.statuses()
    assert other.all_waiting() == once.all_waiting()
    assert other.held(KEY) == once.held(KEY)
  assert twice.emitted_status == once.emitted_status


def test_a_re_entry_while_waiting_keeps_the_first_entry_time():
  ref = ref_of(entered('a', 0), entered('a', 30))
  assert ref.status(KEY) == Status(1, ms(0), 30.0, ms(30))
  assert ref.held(KEY) == ({'a': (ms(0), ms(30))}, {})
  # An exit older than the latest entry is stale: the contact still waits.
  ref.apply(left('a', 20))
  assert ref.status(KEY).waiting == 1
  ref.apply(left('a', 31))
  assert ref.status(KEY).waiting == 0


def test_a_waiting_contact_waits_since_its_earliest_entry_in_any_order():
  # Arrival order does not matter: an earlier entry arriving second moves
  # `since` back, as it would have been first in event time.
  ref = ref_of(entered('a', 20), entered('a', 10))
  assert ref.status(KEY) == Status(1, ms(10), 10.0, ms(20))
  assert ref.status(KEY) == ref_of(entered('a', 10), entered('a', 20)).status(KEY)


def test_a_contact_that_left_can_enter_again_later():
  ref = ref_of(entered('a', 0), left('a', 10), entered('a', 15))
  assert ref.status(KEY) == Status(1, ms(15), 0.0, ms(15))
  # An entry at the exit's own millisecond is not a re-entry: the exit wins.
  ref = ref_of(entered('a', 0), left('a', 10), entered('a', 10))
  assert ref.status(KEY).waiting == 0


def test_the_clock_is_the_latest_event_of_the_key_only():
  ref = ref_of(entered('a', 0), entered('x', 500, queue='Q-2'), entered('y', 600, channel='chat'))
  # Other keys are far past max_queue_wait: `a` still waits.
  assert ref.status(KEY) == Status(1, ms(0), 0.0, ms(0))
  assert ref.clock(('Q-2', 'voice')) == ms(500)
  # A stale transition still moves the clock (it is an event of the key).
  ref.apply(left('a', 50))
  ref.apply(entered('a', 40))
  assert ref.clock(KEY) == ms(50)


def test_a_contact_waiting_longer_than_max_queue_wait_is_lost_once():
  ref = ref_of(entered('a', 0), entered('b', 10), entered('c', 120))
  # Exactly max_queue_wait behind the clock still waits.
  assert ref.status(KEY) == Status(3, ms(0), 120.0, ms(120))
  ref.apply(entered('d', 120.001))
  assert ref.status(KEY) == Status(3, ms(10), 110.001, ms(120.001))
  assert ref.lost == [Lost('Q-1', 'voice', 'a', ms(0))]
  assert ref.lost_exits == 1
  ref.apply(entered('e', 121))
  assert ref.lost_exits == 1  # counted once
  # Its exit arrives after it was dropped: an exit without entry.
  ref.apply(left('a', 125))
  assert ref.exits_without_entry == 1


def test_an_entry_older_than_max_queue_wait_never_shows_as_waiting():
  ref = ref_of(entered('a', 200), entered('old', 50))
  assert ref.status(KEY) == Status(1, ms(200), 0.0, ms(200))
  assert ref.lost == [Lost('Q-1', 'voice', 'old', ms(50))]
  assert ref.history[KEY][-1].waiting == 1


def test_a_tombstone_is_forgotten_after_max_queue_wait():
  ref = ref_of(entered('a', 0), left('a', 10), entered('b', 130))
  assert ref.held(KEY) == ({'b': (ms(130), ms(130))}, {'a': ms(10)})
  ref.apply(entered('c', 130.001))
  assert ref.held(KEY)[1] == {}
  # A duplicate of `a`'s exit, now, counts as an exit without entry again.
  ref.apply(left('a', 10))
  assert ref.exits_without_entry == 1


def test_the_waiting_list_holds_the_oldest_by_time_then_id():
  ref = ref_of(entered('z', 1), entered('b', 2), entered('a', 2), entered('c', 0), listed=3)
  assert ref.waiting_contacts(KEY) == Waiting((('c', ms(0)), ('z', ms(1)), ('a', ms(2))), 4, ms(2))
  assert ref_of(entered('a', 0), listed=0).waiting_contacts(KEY) == Waiting((), 1, ms(0))


def test_rows_are_emitted_when_they_change():
  ref = ref_of(left('x', 0))  # a key's first transition always emits
  assert ref.emitted_status[KEY] == [Status(0, None, 0.0, ms(0))]
  assert ref.emitted_waiting[KEY] == [Waiting((), 0, ms(0))]
  ref.apply(left('x', 0))  # a duplicate: no row
  ref.apply(entered('a', 5))
  ref.apply(entered('b', 3))  # waiting and listed change, not the clock
  ref.apply(entered('b', 3))  # nothing changes
  ref.apply(left('y', 9))  # only the clock changes: a status row only
  assert ref.emitted_status[KEY][1:] == [
    Status(1, ms(5), 0.0, ms(5)),
    Status(2, ms(3), 2.0, ms(5)),
    Status(2, ms(3), 6.0, ms(9)),
  ]
  assert ref.emitted_waiting[KEY][1:] == [
    Waiting((('a', ms(5)),), 1, ms(5)),
    Waiting((('b', ms(3)), ('a', ms(5))), 2, ms(5)),
  ]
  assert len(ref.history[KEY]) == 6


def test_a_refresh_extrapolates_the_clock_and_expires_at_it():
  ref = QueueStatusReference(WAIT_MS, 10)
  ref.apply(entered('a', 0), now_ms=1_000)
  ref.apply(entered('b', 50), now_ms=2_000)
  ref.apply(entered('c', 40), now_ms=3_000)  # no clock advance
  assert ref.refresh(KEY, 32_000) == Status(3, ms(0), 80.0, ms(80))
  assert ref.clock(KEY) == ms(50)  # the clock itself stays
  assert ref.refresh(KEY, 73_000) == Status(2, ms(40), 81.0, ms(121))
  assert ref.lost == [Lost('Q-1', 'voice', 'a', ms(0))]
  # A refresh with nothing waiting emits nothing.
  ref.apply(left('b', 60), now_ms=80_000)
  ref.apply(left('c', 60), now_ms=80_000)
  assert ref.refresh(KEY, 200_000) is None
  assert ref.status(KEY) == Status(0, None, 0.0, ms(60))


def test_the_generator_is_seeded_and_has_every_kind_of_disorder():
  stats: Dict[str, int] = {}
  a = generate_transitions(3, 300, stats=stats)
  assert a == generate_transitions(3, 300)
  assert a != generate_transitions(4, 300)
  for kind in ('duplicates', 'lost_ends', 'ends_without_start', 'reentries', 'long_waits'):
    assert stats[kind] > 0, kind
  assert len({(t.queue_id, t.channel) for t in a}) == 6
  # Out of order, but first deliveries never by more than the disorder
  # bound (20 s); re-deliveries come up to 30 records later.
  latest = -1
  out_of_order = 0
  seen = set()
  for t in a:
    if t in seen:
      continue
    seen.add(t)
    out_of_order += t.timestamp < latest
    assert t.timestamp >= latest - 20 * S
    latest = max(latest, t.timestamp)
  assert out_of_order > 0
  ref = reference_queue_status(a, 600 * S, 20)
  assert ref.exits_without_entry > 0 and ref.lost_exits > 0


# ---------------------------------------------------------------------------
# (b) The job against the reference
# ---------------------------------------------------------------------------


# One step of the TestStream: ('poll', transitions) after processing time
# advanced by `advance_s`, or ('wait', advance_s) alone.
Step = Tuple[str, Any, float]


def run_job(
  steps: Sequence[Step],
  *,
  max_queue_wait_s: float,
  status_interval_s: float,
  listed: int,
  watermark_lag_ms: int,
  tombstone_ttl_s: Optional[float] = None,
):
  """Runs LiveQueueStatus on the local runner over `steps`; the watermark
  follows each poll, `watermark_lag_ms` behind its latest event. Returns
  the pipeline result; the rows are in COLLECTED."""
  from transforms.queue_status import LiveQueueStatus

  stream = TestStream()
  for (kind, payload, advance_s), watermark in zip(steps, _watermarks(steps, watermark_lag_ms)):
    if advance_s:
      stream.advance_processing_time(advance_s)
    if kind == 'poll' and payload:
      stream.add_elements([TimestampedValue(t, t.timestamp / 1000) for t in payload])
      if watermark is not None:
        stream.advance_watermark_to(watermark / 1000)
  stream.advance_watermark_to_infinity()

  pipeline = beam.Pipeline(options=streaming_options())
  outputs = (
    pipeline
    | stream
    | LiveQueueStatus(
      max_queue_wait=Duration(seconds=max_queue_wait_s),
      tombstone_ttl=None if tombstone_ttl_s is None else Duration(seconds=tombstone_ttl_s),
      status_interval=Duration(seconds=status_interval_s),
      max_waiting_listed=listed,
      queue_names=QUEUE_NAMES,
      metrics_namespace=NAMESPACE,
      processing_clock=runner_now,
    )
  )
  for name in ('queue_status', 'waiting_contacts', 'lost_contacts'):
    _ = outputs[name] | f'Collect {name}' >> beam.FlatMap(collect, name)
  result = pipeline.run()
  result.wait_until_finish()
  return result


def _watermarks(steps: Sequence[Step], watermark_lag_ms: int) -> List[Optional[int]]:
  """Per step, the watermark it advances to (ms; None if it does not):
  `watermark_lag_ms` behind the latest event so far, never backwards."""
  marks: List[Optional[int]] = []
  latest: Optional[int] = None
  watermark: Optional[int] = None
  for kind, payload, _ in steps:
    advanced = None
    if kind == 'poll' and payload:
      latest = max([t.timestamp for t in payload] + ([latest] if latest is not None else []))
      if watermark is None or latest - watermark_lag_ms > watermark:
        watermark = advanced = latest - watermark_lag_ms
    marks.append(advanced)
  return marks


def _status_of(row) -> Status:
  return Status(row.waiting, row.oldest_waiting_since, row.longest_wait_seconds, row.as_of)


def _listed_of(row) -> Tuple[Tuple[Tuple[str, int], ...], int]:
  contacts = tuple((c['contact_id'], c['since']) for c in json.loads(row.contacts))
  return contacts, row.waiting


def _latest_rows(now_ms: int) -> Tuple[Dict[Any, Any], Dict[Any, Any]]:
  """Key -> the last QueueStatus and the last WaitingContacts row the job
  wrote at processing time <= now_ms."""
  status: Dict[Any, Any] = {}
  waiting: Dict[Any, Any] = {}
  for output, row in COLLECTED:
    if output == 'lost_contacts' or row.updated_at > now_ms:
      continue
    target = status if output == 'queue_status' else waiting
    target[(row.queue_id, row.channel)] = row
  return status, waiting


class _Expected:
  """The reference fed step by step, with what the tests need to judge
  the job's latest rows after each step: per key, the processing time its
  status last changed and the clock range the as_of of its listed
  contacts may come from."""

  def __init__(self, max_queue_wait_ms: int, listed: int, tombstone_ttl_ms: Optional[int] = None):
    self.ref = QueueStatusReference(max_queue_wait_ms, listed, tombstone_ttl_ms)
    self.status_changed_at: Dict[Any, int] = {}
    self.listed_since_clock: Dict[Any, int] = {}
    self._last_status: Dict[Any, Status] = {}
    self._last_listed: Dict[Any, Any] = {}

  def note(self, now_ms: int, statuses: Dict[Any, Status]) -> None:
    for key, status in statuses.items():
      if self._last_status.get(key) != status:
        self._last_status[key] = status
        self.status_changed_at[key] = now_ms
      listed = self.ref.waiting_contacts(key)
      if self._last_listed.get(key) != (listed.contacts, listed.waiting):
        self._last_listed[key] = (listed.contacts, listed.waiting)
        self.listed_since_clock[key] = status.as_of


def check_latest_rows(expected: _Expected, statuses: Dict[Any, Status], now_ms: int, step) -> None:
  """The job's latest rows per key at processing time `now_ms` against the
  reference's state `statuses` (key -> Status)."""
  job_status, job_waiting = _latest_rows(now_ms)
  assert sorted(job_status) == sorted(statuses), step
  assert sorted(job_waiting) == sorted(statuses), step
  for key, want in statuses.items():
    row = job_status[key]
    assert _status_of(row) == want, (step, key)
    assert row.queue_name == QUEUE_NAMES.get(key[0], key[0])
    # Written by the poll that made this state, or a later one.
    assert expected.status_changed_at[key] <= row.updated_at <= now_ms, (step, key)
    listed = expected.ref.waiting_contacts(key)
    row = job_waiting[key]
    assert _listed_of(row) == (listed.contacts, listed.waiting), (step, key)
    # The clock of the poll that changed the list, or of a later one.
    assert expected.listed_since_clock[key] <= row.as_of <= want.as_of, (step, key)


def _polls(rng: random.Random, arrival: List[Transition]) -> List[List[Any]]:
  from transforms.records import QueueTransition

  polls, i = [], 0
  while i < len(arrival):
    n = rng.randint(1, 12)
    polls.append([QueueTransition(*t) for t in arrival[i : i + n]])
    i += n
  return polls


POLL_S = 1  # processing time between polls
GEN = dict(
  mean_gap_ms=2 * S,
  mean_wait_ms=25 * S,
  max_queue_wait_ms=90 * S,
  disorder_ms=10 * S,
  lost_end_share=0.08,
  long_wait_share=0.06,
  zero_wait_share=0.05,
)


def check_revisions() -> None:
  """Each key's rows of each output carry strictly increasing revisions in
  the order the job wrote them (the sinks keep the highest)."""
  last: Dict[Any, int] = {}
  for output, row in COLLECTED:
    if output == 'lost_contacts' or not hasattr(row, 'revision'):
      continue
    key = (output, row.queue_id, row.channel)
    assert row.revision > last.get(key, -1), (key, row)
    last[key] = row.revision


def _lost_rows() -> List[Lost]:
  rows = [row for output, row in COLLECTED if output == 'lost_contacts']
  assert {row.kind for row in rows} <= {ENTERED}
  return sorted(Lost(row.queue_id, row.channel, row.contact_id, row.timestamp) for row in rows)


def check_polls(
  polls: List[List[Any]],
  max_queue_wait_s: float,
  listed: int,
  watermark_lag_ms: int,
  tombstone_ttl_s: Optional[float] = None,
) -> QueueStatusReference:
  """Runs the job over `polls` (one poll per POLL_S of processing time,
  no refresh due) and checks, after every poll, its latest rows per key
  against the reference's state; then its lost contacts and counters.
  Returns the reference after the last poll."""
  steps: List[Step] = [('poll', poll, POLL_S) for poll in polls]
  result = run_job(
    steps,
    max_queue_wait_s=max_queue_wait_s,
    # Never due during the run: every row comes from a poll.
    status_interval_s=86400,
    listed=listed,
    watermark_lag_ms=watermark_lag_ms,
    tombstone_ttl_s=tombstone_ttl_s,
  )
  expected = _Expected(
    int(max_queue_wait_s * S),
    listed,
    None if tombstone_ttl_s is None else int(tombstone_ttl_s * S),
  )
  forgotten: List[Any] = []  # a key each time it is forgotten
  for k, (poll, watermark) in enumerate(zip(polls, _watermarks(steps, watermark_lag_ms))):
    now_ms = (k + 1) * POLL_S * S
    for transition in poll:
      expected.ref.apply(transition, now_ms)
    if watermark is not None:
      forgotten.extend(expected.ref.advance_watermark(watermark))
    statuses = expected.ref.statuses()
    expected.note(now_ms, statuses)
    check_latest_rows(expected, statuses, now_ms, f'poll {k}')
  ref = expected.ref
  check_revisions()
  assert _lost_rows() == sorted(ref.lost)
  counters = committed_counters(result, NAMESPACE)
  assert counters.get('exits_without_entry', 0) == ref.exits_without_entry
  assert counters.get('lost_exits', 0) == ref.lost_exits
  # The end of input passes every clock: each idle key is forgotten.
  at_end = ref.advance_watermark(MAX_TIMESTAMP.micros // 1000)
  assert counters.get('idle_queues_dropped', 0) == len(forgotten) + len(at_end)
  return ref, forgotten


# Whole-second timestamps for some seeds: ties between transitions and waits
# of exactly max_queue_wait, where the rules' boundaries are.
@pytest.mark.parametrize('seed, resolution_ms', [(1, 1), (2, 1), (3, 1000), (4, 1000)])
def test_the_job_agrees_with_the_reference_after_every_poll(runner_clock, seed, resolution_ms):
  rng = random.Random(seed)
  arrival = generate_transitions(seed, 160, resolution_ms=resolution_ms, **GEN)
  # Cut the stream mid-flow: contacts whose exit has not arrived yet are
  # still waiting at the end, beside the lost ends not yet expired.
  arrival = arrival[: int(len(arrival) * 0.9)]
  ref, _ = check_polls(_polls(rng, arrival), 90, 3, 10 * S)
  assert sum(s.waiting for s in ref.statuses().values()) > 0  # still waiting at the end
  assert ref.lost_exits > 0 and ref.exits_without_entry > 0


def test_the_job_agrees_with_the_reference_with_exits_forgotten_early(runner_clock):
  """The job's setting (flow: --dedupe_ttl_seconds): exits remembered for less
  than max_queue_wait, so an entry arriving long after its exit shows."""
  rng = random.Random(7)
  arrival = generate_transitions(7, 160, resolution_ms=1, **GEN)
  ref, forgotten = check_polls(_polls(rng, arrival), 90, 3, 10 * S, tombstone_ttl_s=20)
  assert ref.tombstone_ttl_ms == 20 * S
  # Keys went idle and were forgotten mid-stream, not only at the end.
  assert forgotten


def test_the_job_agrees_with_the_reference_at_the_rules_boundaries(runner_clock):
  from transforms.records import QueueTransition

  def poll(*transitions: Transition) -> List[Any]:
    return [QueueTransition(*t) for t in transitions]

  polls = [
    # An exit without entry; another key with its own clock.
    poll(entered('a', 0), entered('b', 10), left('z', 5), entered('x', 0, queue='Q-2')),
    # An exit and its entry in the same millisecond, the exit first; a
    # duplicate entry.
    poll(left('s', 20), entered('s', 20), entered('a', 0)),
    poll(entered('c', 120)),  # `a` exactly max_queue_wait behind: waits
    poll(entered('d', 121)),  # 1 s more: `a` is lost
    # `a`'s exit after it was dropped; an entry already too old.
    poll(left('a', 130), entered('old', 0)),
    poll(entered('e', 200)),  # `b` lost; the tombstones of z and s forgotten
    # z's exit again (forgotten: counted again); an entry at a tombstone's
    # millisecond (the exit wins).
    poll(left('z', 5), entered('a', 130)),
    # A re-entry in one poll; a later entry of a waiting contact.
    poll(left('c', 150), entered('c', 160), entered('d', 125)),
    poll(entered('y', 500, queue='Q-2')),  # Q-2's clock only: `x` lost
  ]
  ref, _ = check_polls(polls, 120, 2, 0)
  assert ref.lost == [
    Lost('Q-1', 'voice', 'a', ms(0)),
    Lost('Q-1', 'voice', 'old', ms(0)),
    Lost('Q-1', 'voice', 'b', ms(10)),
    Lost('Q-2', 'voice', 'x', ms(0)),
  ]
  assert ref.exits_without_entry == 4  # z, s, a, z again
  assert ref.status(KEY) == Status(3, ms(121), 79.0, ms(200))
  assert ref.waiting_contacts(KEY).contacts == (('d', ms(121)), ('c', ms(160)))


def check_steps(steps: Sequence[Step], first_due: Dict[Any, int], poll_times: Sequence[int]):
  """Runs the job over `steps` (max_queue_wait 120 s, status_interval
  30 s) and checks its latest rows per key after every step against the
  reference, refreshed when the job's timers come due: `first_due` (key ->
  processing time, ms), then status_interval after each refresh while
  contacts wait. Returns the reference, the refreshes it made (processing
  time, key, row or None) and the job's rows written at other times than
  `poll_times` (its refreshes), as the same triples, and the job's result."""
  result = run_job(steps, max_queue_wait_s=120, status_interval_s=30, listed=10, watermark_lag_ms=0)
  expected = _Expected(WAIT_MS, 10)
  ref = expected.ref
  now_ms = 0
  due: Dict[Any, Optional[int]] = dict(first_due)
  refreshes = []
  for n, (kind, payload, advance_s) in enumerate(steps):
    now_ms += int(advance_s * S)
    for key in sorted(due):
      at = due[key]
      if at is not None and at <= now_ms:
        row = ref.refresh(key, now_ms)
        refreshes.append((now_ms, key, row))
        due[key] = now_ms + 30 * S if ref.status(key).waiting else None
    if kind == 'poll':
      for transition in payload:
        ref.apply(transition, now_ms)
    statuses = {key: ref.emitted_status[key][-1] for key in ref.keys}
    expected.note(now_ms, statuses)
    check_latest_rows(expected, statuses, now_ms, f'step {n} at {now_ms} ms')
  check_revisions()
  job_refreshes = sorted(
    (row.updated_at, (row.queue_id, row.channel), _status_of(row))
    for output, row in COLLECTED
    if output == 'queue_status' and row.updated_at not in poll_times
  )
  return ref, refreshes, job_refreshes, result


def _qt(*transitions: Transition) -> List[Any]:
  from transforms.records import QueueTransition

  return [QueueTransition(*t) for t in transitions]


def test_the_job_refreshes_a_quiet_queue_in_processing_time(runner_clock):
  """Three contacts and few events: the key's row keeps coming every
  status_interval, its clock extrapolated by the processing time since it
  last advanced, until the extrapolated clock expires all three."""
  steps: List[Step] = [
    ('poll', _qt(entered('a', 0), entered('b', 10)), 0),
    ('wait', None, 30),  # processing time 30 s: the refresh is due
    ('poll', _qt(entered('c', 20)), 10),  # 40 s: the clock moves on
    ('wait', None, 20),  # 60 s: due again
    *[('wait', None, 30)] * 5,  # 90 s ... 210 s
  ]
  ref, refreshes, job_refreshes, result = check_steps(steps, {KEY: 30 * S}, (0, 40 * S))
  assert refreshes == [
    (30 * S, KEY, Status(2, ms(0), 40.0, ms(40))),
    (60 * S, KEY, Status(3, ms(0), 40.0, ms(40))),
    (90 * S, KEY, Status(3, ms(0), 70.0, ms(70))),
    (120 * S, KEY, Status(3, ms(0), 100.0, ms(100))),
    (150 * S, KEY, Status(2, ms(10), 120.0, ms(130))),
    (180 * S, KEY, Status(0, None, 0.0, ms(160))),
  ]
  assert job_refreshes == refreshes
  assert (
    _lost_rows()
    == sorted(ref.lost)
    == [
      Lost('Q-1', 'voice', 'a', ms(0)),
      Lost('Q-1', 'voice', 'b', ms(10)),
      Lost('Q-1', 'voice', 'c', ms(20)),
    ]
  )
  counters = committed_counters(result, NAMESPACE)
  assert counters.get('lost_exits', 0) == ref.lost_exits == 3
  assert counters.get('exits_without_entry', 0) == ref.exits_without_entry == 0


def test_no_refresh_row_once_nobody_waits(runner_clock):
  """The key's only contact leaves before the refresh armed while it
  waited comes due: nothing waits then, so no row (refreshes run while
  contacts wait); its latest row stays the one of its last event. A
  tombstone is still held, so the key's state is not empty."""
  steps: List[Step] = [
    ('poll', _qt(entered('x', 5)), 0),
    ('poll', _qt(left('x', 8)), 10),
    ('wait', None, 20),  # 30 s: the refresh armed at 0 s comes due
    ('wait', None, 60),
  ]
  ref, refreshes, job_refreshes, _ = check_steps(steps, {KEY: 30 * S}, (0, 10 * S))
  assert refreshes == [(30 * S, KEY, None)]
  assert job_refreshes == []
  assert ref.status(KEY) == Status(0, None, 0.0, ms(8))
