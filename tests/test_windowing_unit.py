"""WindowedCombinePerKey on its own, through its public contract only: the
panes (ON_TIME at the window end, accumulating LATE panes within allowed
lateness, `pane_index` in order), the `late` output (an element past its
window's end + allowed lateness, never lost), the lateness rule per key
(docs/design.md, "When an event is late"), idle-key expiry, and its
counters.

The combine is a small CombineFn of this module (the ids of the elements,
sorted), the elements plain records of this module: nothing of the flows.
The composite's internals (sharding, state layout, timers) are being
rewritten; nothing here reads them.
"""

import random
from typing import NamedTuple

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from tests.conftest import BASE_S
from tests.support.beam_metrics import committed_counters
from transforms.sharding import DEFAULT_STATE_SHARDS
from transforms.windowing import (
  COUNTED,
  EARLY_PANE,
  LATE_PANE,
  ON_TIME_PANE,
  WindowedCombinePerKey,
)

WINDOW = 300
LATENESS = 60
IDLE_TTL = 3600
NAMESPACE = 'windowing_unit'


class Ev(NamedTuple):
  """A test element: its key, its id and its event time (epoch ms)."""

  key: str
  id: str
  ts: int


def ev(key: str, id_: str, at_s: float) -> TimestampedValue:
  """An element of `key` at BASE_S + at_s, stamped with its event time."""
  ms = int((BASE_S + at_s) * 1000)
  return TimestampedValue(Ev(key, id_, ms), ms / 1000)


def key_of(e: Ev) -> str:
  return e.key


def event_ms(e: Ev) -> int:
  return e.ts


class IdsFn(beam.CombineFn):
  """The sorted ids of a window's elements; the accumulator is a JSON list,
  as the composite's state requires."""

  def create_accumulator(self):
    return []

  def add_input(self, acc, e):
    acc.append(e.id)
    return acc

  def merge_accumulators(self, accs):
    return [i for acc in accs for i in acc]

  def extract_output(self, acc):
    return tuple(sorted(acc))


def _windowed(idle_ttl=IDLE_TTL, lateness=LATENESS, **kwargs):
  return WindowedCombinePerKey(
    IdsFn(),
    key_of,
    event_ms,
    Duration(seconds=WINDOW),
    Duration(seconds=lateness),
    Duration(seconds=idle_ttl),
    metrics_namespace=NAMESPACE,
    **kwargs,
  )


def _pane_tuple(pane):
  return (
    pane.key,
    pane.window_start // 1000 - BASE_S,
    pane.window_end // 1000 - BASE_S,
    pane.pane_index,
    pane.timing,
    pane.result,
  )


# What the runs emitted, per output: the local runner runs every step in
# this process, so a module-level function can collect (as
# tests/support/runner_clock.py does), with no window to close first.


def drain(stream):
  """Ends a TestStream: a watermark past every deadline of these tests
  (two hours of event time, beyond the idle TTL), then infinity. Shorter
  than tests/conftest.py's ten days: the step keeps ticking on its window
  grid while the watermark moves, so ten days of small windows cost
  seconds. The outputs are collected as they come (no assert_that window
  to close first)."""
  return stream.advance_watermark_to(BASE_S + 7200).advance_watermark_to_infinity()


_COLLECTED = {}


def _collect(element, output):
  _COLLECTED.setdefault(output, []).append(element)
  return ()


def _late_tuple(arrival):
  return (
    arrival.key,
    arrival.value.id,
    arrival.event_timestamp,
    arrival.window_start // 1000 - BASE_S,
    arrival.window_end // 1000 - BASE_S,
    arrival.watermark,
  )


def run(stream, options, **kwargs):
  """Runs the composite on a TestStream; returns (panes, late arrivals,
  counters), panes and arrivals as sorted tuples."""
  _COLLECTED.clear()
  p = beam.Pipeline(options=options)
  out = p | stream | _windowed(**kwargs)
  _ = out.panes | 'Panes' >> beam.Map(_pane_tuple) | 'KeepPanes' >> beam.FlatMap(_collect, 'panes')
  _ = out.late | 'Late' >> beam.Map(_late_tuple) | 'KeepLate' >> beam.FlatMap(_collect, 'late')
  result = p.run()
  result.wait_until_finish()
  panes, late = sorted(_COLLECTED.get('panes', [])), sorted(_COLLECTED.get('late', []))
  _COLLECTED.clear()
  return panes, late, committed_counters(result, NAMESPACE)


def late_ids(late):
  return sorted(entry[1] for entry in late)


# -- panes --------------------------------------------------------------------


def test_on_time_pane_at_window_end_holds_every_element_before_it(options):
  stream = drain(
    TestStream()
    .add_elements([ev('A', 'a1', 10), ev('A', 'a2', 250)])
    .add_elements([ev('A', 'a3', 299), ev('A', 'next', 300)])
    .advance_watermark_to(BASE_S + WINDOW)
  )
  panes, late, _ = run(stream, options)
  assert panes == [
    ('A', 0, 300, 0, ON_TIME_PANE, ('a1', 'a2', 'a3')),
    ('A', 300, 600, 0, ON_TIME_PANE, ('next',)),
  ]
  assert late == []


def test_no_pane_before_the_watermark_reaches_the_window_end(options):
  """The element after the watermark stopped short of the end is still in
  the single ON_TIME pane: nothing fired before the end."""
  stream = drain(
    TestStream()
    .add_elements([ev('A', 'a1', 10)])
    .advance_watermark_to(BASE_S + WINDOW - 1)
    .add_elements([ev('A', 'a2', 20)])
    .advance_watermark_to(BASE_S + WINDOW)
  )
  panes, late, _ = run(stream, options)
  assert panes == [('A', 0, 300, 0, ON_TIME_PANE, ('a1', 'a2'))]
  assert late == []


def test_late_panes_within_allowed_lateness_accumulate(options):
  stream = drain(
    TestStream()
    .add_elements([ev('A', 'a1', 10)])
    .advance_watermark_to(BASE_S + WINDOW + 10)
    .add_elements([ev('A', 'a2', 20)])
    .advance_watermark_to(BASE_S + WINDOW + 30)
    .add_elements([ev('A', 'a3', 30), ev('A', 'a4', 40)])
  )
  panes, late, counters = run(stream, options)
  assert panes == [
    ('A', 0, 300, 0, ON_TIME_PANE, ('a1',)),
    ('A', 0, 300, 1, LATE_PANE, ('a1', 'a2')),
    ('A', 0, 300, 2, LATE_PANE, ('a1', 'a2', 'a3', 'a4')),
  ]
  assert late == []
  assert counters.get('on_time_panes') == 1
  assert counters.get('late_panes') == 2
  assert counters.get('late_events', 0) == 0


def test_first_element_of_a_window_past_its_end_gets_a_late_pane(options):
  stream = drain(
    TestStream()
    .add_elements([ev('A', 'a1', 10)])
    .advance_watermark_to(BASE_S + 2 * WINDOW + 20)
    .add_elements([ev('A', 'b1', WINDOW + 100)])
  )
  panes, late, _ = run(stream, options)
  assert panes == [
    ('A', 0, 300, 0, ON_TIME_PANE, ('a1',)),
    ('A', 300, 600, 0, LATE_PANE, ('b1',)),
  ]
  assert late == []


# -- the audit trail: what each LATE pane changed, what each pane counts -----------


def _audit(pane):
  return (pane.window_start // 1000 - BASE_S, pane.pane_index, pane.previous, pane.added)


def _counted(counted):
  return (
    counted.key,
    counted.value.id,
    counted.window_start // 1000 - BASE_S,
    counted.pane_index,
    counted.timing,
  )


def test_a_late_pane_carries_the_previous_figures_and_the_elements_it_added(options):
  _COLLECTED.clear()
  stream = drain(
    TestStream()
    .add_elements([ev('A', 'a1', 10)])
    .advance_watermark_to(BASE_S + WINDOW + 10)
    .add_elements([ev('A', 'a2', 20)])
    .advance_watermark_to(BASE_S + WINDOW + 30)
    .add_elements([ev('A', 'a3', 30), ev('A', 'a4', 40), ev('A', 'b1', WINDOW + 5)])
    .advance_watermark_to(BASE_S + 3 * WINDOW + 20)
    .add_elements([ev('A', 'c1', 2 * WINDOW + 10)])
  )
  p = beam.Pipeline(options=options)
  out = p | stream | _windowed(element_id=lambda e: e.id, counted=True)
  _ = out.panes | beam.Map(_audit) | 'KeepPanes' >> beam.FlatMap(_collect, 'panes')
  _ = out[COUNTED] | beam.Map(_counted) | 'KeepCounted' >> beam.FlatMap(_collect, 'counted')
  p.run().wait_until_finish()
  assert sorted(_COLLECTED['panes'], key=repr) == sorted(
    [
      (0, 0, None, ()),
      (0, 1, ('a1',), ('a2',)),
      (0, 2, ('a1', 'a2'), ('a3', 'a4')),
      (300, 0, None, ()),
      # The first pane of a window whose end had passed: nothing before.
      (600, 0, None, ('c1',)),
    ],
    key=repr,
  )
  assert sorted(_COLLECTED['counted']) == [
    ('A', 'a1', 0, 0, ON_TIME_PANE),
    ('A', 'a2', 0, 1, LATE_PANE),
    ('A', 'a3', 0, 2, LATE_PANE),
    ('A', 'a4', 0, 2, LATE_PANE),
    ('A', 'b1', 300, 0, ON_TIME_PANE),
    ('A', 'c1', 600, 0, LATE_PANE),
  ]
  _COLLECTED.clear()


def test_the_counted_output_needs_an_element_id():
  with pytest.raises(ValueError, match='element id'):
    _windowed(counted=True)


# -- the late output -------------------------------------------------------------


def test_an_element_past_allowed_lateness_goes_to_the_late_output(options):
  stream = drain(
    TestStream()
    .add_elements([ev('A', 'a1', 10)])
    .advance_watermark_to(BASE_S + WINDOW + LATENESS + 1)
    .add_elements([ev('A', 'too-late', 20)])
  )
  panes, late, counters = run(stream, options)
  assert panes == [('A', 0, 300, 0, ON_TIME_PANE, ('a1',))]
  assert len(late) == 1
  key, id_, event_timestamp, start, end, watermark = late[0]
  assert (key, id_, event_timestamp, start, end) == (
    'A',
    'too-late',
    (BASE_S + 20) * 1000,
    0,
    300,
  )
  # The watermark it was judged at: past the expiry, never past the real one.
  assert (BASE_S + WINDOW + LATENESS) * 1000 <= watermark <= (BASE_S + WINDOW + LATENESS + 1) * 1000
  assert counters.get('late_events') == 1


def test_an_element_exactly_at_expiry_is_late(options):
  """Late iff the window's end + allowed lateness is AT or behind the
  watermark."""
  stream = drain(
    TestStream()
    .add_elements([ev('A', 'a1', 10)])
    .advance_watermark_to(BASE_S + WINDOW + LATENESS)
    .add_elements([ev('A', 'at-expiry', 20)])
  )
  panes, late, _ = run(stream, options)
  assert panes == [('A', 0, 300, 0, ON_TIME_PANE, ('a1',))]
  assert late_ids(late) == ['at-expiry']


def test_an_element_just_before_expiry_is_still_counted(options):
  stream = drain(
    TestStream()
    .add_elements([ev('A', 'a1', 10)])
    .advance_watermark_to(BASE_S + WINDOW + LATENESS - 1)
    .add_elements([ev('A', 'just-in', 20)])
  )
  panes, late, _ = run(stream, options)
  assert panes == [
    ('A', 0, 300, 0, ON_TIME_PANE, ('a1',)),
    ('A', 0, 300, 1, LATE_PANE, ('a1', 'just-in')),
  ]
  assert late == []


def test_zero_allowed_lateness_makes_everything_after_the_end_late(options):
  stream = drain(
    TestStream()
    .add_elements([ev('A', 'a1', 10)])
    .advance_watermark_to(BASE_S + WINDOW)
    .add_elements([ev('A', 'after-end', 20)])
  )
  panes, late, _ = run(stream, options, lateness=0)
  assert panes == [('A', 0, 300, 0, ON_TIME_PANE, ('a1',))]
  assert late_ids(late) == ['after-end']


@pytest.mark.parametrize('watermark_s', [2000, 3000])
def test_first_element_of_an_expired_window_of_a_key_that_saw_the_watermark_is_late(
  options, watermark_s
):
  """Window [300, 600) of key A never had an element; A saw the watermark
  pass its expiry (its own window [0, 300) closed), so the first element of
  that window is late, not a fresh pane over a window that may already
  have been reported. 3000 s crosses many window ends at once."""
  stream = drain(
    TestStream()
    .add_elements([ev('A', 'a1', 10)])
    .advance_watermark_to(BASE_S + watermark_s)
    .add_elements([ev('A', 'first-of-expired', 400), ev('A', 'open', watermark_s + 10)])
  )
  panes, late, _ = run(stream, options)
  open_start = (watermark_s + 10) // WINDOW * WINDOW
  assert panes == [
    ('A', 0, 300, 0, ON_TIME_PANE, ('a1',)),
    ('A', open_start, open_start + WINDOW, 0, ON_TIME_PANE, ('open',)),
  ]
  assert late_ids(late) == ['first-of-expired']


# -- keys are independent ------------------------------------------------------------

# The neighbours run with every key in one shard (shards=1) and spread over
# the default shards: the rule tested does not depend on which keys share a
# shard. The crowd is many keys.
A, B_SAME_SHARD, C_OTHER_SHARD = 'Q-1', 'Q-11', 'Q-2'
CROWD = tuple(f'Q-{n}' for n in range(100, 164))
NEIGHBOURS = [(), (C_OTHER_SHARD,), (B_SAME_SHARD,), CROWD]
NEIGHBOUR_IDS = ['alone', 'other-shard', 'same-shard', 'crowd']


def _neighbour_stream(neighbours, a_before, a_after):
  """`a_before` elements of A (if any), one element at 10 s of each
  neighbour, the watermark to 2120 s, then `a_after`."""
  first = list(a_before) + [ev(key, f'{key}-1', 10) for key in neighbours]
  stream = TestStream()
  if first:
    stream = stream.add_elements(first)
  stream = stream.advance_watermark_to(BASE_S + 2120).add_elements(a_after)
  return drain(stream)


def _of_key(panes, late, key):
  return [p for p in panes if p[0] == key], [entry for entry in late if entry[0] == key]


@pytest.mark.parametrize('shards', [1, DEFAULT_STATE_SHARDS])
@pytest.mark.parametrize('neighbours', NEIGHBOURS, ids=NEIGHBOUR_IDS)
def test_a_keys_lateness_follows_its_own_view_of_the_watermark(options, neighbours, shards):
  """A key that saw the watermark pass: its expired element is late, its
  open-window element counted, whatever another key does."""
  stream = _neighbour_stream(
    neighbours,
    [ev(A, 'a1', 10)],
    [ev(A, 'expired', 400), ev(A, 'within-lateness', 1950), ev(A, 'open', 2130)],
  )
  panes, late, _ = run(stream, options, shards=shards)
  a_panes, a_late = _of_key(panes, late, A)
  assert a_panes == [
    (A, 0, 300, 0, ON_TIME_PANE, ('a1',)),
    (A, 1800, 2100, 0, LATE_PANE, ('within-lateness',)),
    (A, 2100, 2400, 0, ON_TIME_PANE, ('open',)),
  ]
  assert late_ids(a_late) == ['expired']
  for key in neighbours:
    assert _of_key(panes, late, key) == ([(key, 0, 300, 0, ON_TIME_PANE, (f'{key}-1',))], [])


def test_a_new_keys_lateness_does_not_depend_on_other_keys(options):
  """The new rule: an event is late iff its window's end + allowed lateness
  is at or behind the watermark as seen by ITS key. A key first seen after
  the watermark moved on gets the same outcome for the same events whether
  another key was active in the same shard, in another shard, or not at
  all (nor among many keys)."""
  a_after = [ev(A, 'expired-window', 400), ev(A, 'open', 2130)]
  outcomes = {}
  for name, neighbours in zip(NEIGHBOUR_IDS, NEIGHBOURS):
    for shards in (1, DEFAULT_STATE_SHARDS):
      panes, late, _ = run(_neighbour_stream(neighbours, [], a_after), options, shards=shards)
      a_panes, a_late = _of_key(panes, late, A)
      # What is counted where, and what is late. Not the pane's timing:
      # ON_TIME or LATE says whether the job already knew the window's end
      # had passed (its shard's clock), not whether the event is late.
      counted = [(key, start, end, ids) for key, start, end, _, _, ids in a_panes]
      outcomes[f'{name}, {shards} shards'] = (counted, late_ids(a_late))
  # Never lost, whatever the rule decides.
  for a_panes, a_late in outcomes.values():
    counted = {i for pane in a_panes for i in pane[3]}
    assert sorted(counted | set(a_late)) == ['expired-window', 'open']
    assert not counted & set(a_late)
  alone = outcomes[f'alone, {DEFAULT_STATE_SHARDS} shards']
  differing = {name: o for name, o in outcomes.items() if o != alone}
  assert not differing, f'key A was judged by other keys: alone {alone}, beside others {differing}'


def test_each_key_gets_its_own_panes(options):
  stream = drain(
    TestStream()
    .add_elements([ev(A, 'a1', 10), ev(B_SAME_SHARD, 'b1', 20), ev(C_OTHER_SHARD, 'c1', 30)])
    .add_elements([ev(A, 'a2', 40), ev(B_SAME_SHARD, 'b2', 350)])
    .advance_watermark_to(BASE_S + 2 * WINDOW)
  )
  panes, late, _ = run(stream, options)
  assert panes == sorted(
    [
      (A, 0, 300, 0, ON_TIME_PANE, ('a1', 'a2')),
      (B_SAME_SHARD, 0, 300, 0, ON_TIME_PANE, ('b1',)),
      (B_SAME_SHARD, 300, 600, 0, ON_TIME_PANE, ('b2',)),
      (C_OTHER_SHARD, 0, 300, 0, ON_TIME_PANE, ('c1',)),
    ]
  )
  assert late == []


# -- idle keys -------------------------------------------------------------------------


@pytest.mark.parametrize('idle_ttl', [IDLE_TTL, 300])
def test_a_gap_longer_than_the_idle_ttl_keeps_the_lateness_rule(options, idle_ttl):
  """Key A is quiet for ~48 minutes of event time, far beyond a 300 s idle
  TTL: when it comes back, its element of a window that expired during the
  silence is late and its element of the open window is counted, as with a
  TTL that keeps the key. Nothing else carries the watermark."""
  stream = drain(
    TestStream()
    .add_elements([ev(A, 'a1', 10), ev(A, 'a2', 100)])
    .advance_watermark_to(BASE_S + 3550)
    .add_elements([ev(A, 'expired', 3000), ev(A, 'open', 3400)])
  )
  panes, late, counters = run(stream, options, idle_ttl=idle_ttl)
  assert panes == [
    (A, 0, 300, 0, ON_TIME_PANE, ('a1', 'a2')),
    (A, 3300, 3600, 0, ON_TIME_PANE, ('open',)),
  ]
  assert late_ids(late) == ['expired']
  if idle_ttl < 3000:
    # The quiet key was forgotten (bounded state), its events judged alike.
    assert counters.get('idle_keys_dropped', 0) >= 1


def test_a_forgotten_key_never_reopens_a_reported_window(options):
  """After its idle expiry, a key's element of a window that already had an
  ON_TIME pane and has expired goes late: no second pane_index 0."""
  stream = drain(
    TestStream()
    .add_elements([ev(A, 'a1', 10)])
    .advance_watermark_to(BASE_S + 1000)
    .add_elements([ev(A, 'again', 20)])
  )
  panes, late, _ = run(stream, options, idle_ttl=300)
  assert panes == [(A, 0, 300, 0, ON_TIME_PANE, ('a1',))]
  assert late_ids(late) == ['again']


# -- out-of-orderness, early panes ------------------------------------------------------


def test_out_of_orderness_delays_every_decision_by_the_bound(options):
  stream = drain(
    TestStream()
    .add_elements([ev(A, 'a1', 10)])
    .advance_watermark_to(BASE_S + WINDOW + 5)
    .add_elements([ev(A, 'still-on-time', 20)])
    .advance_watermark_to(BASE_S + WINDOW + LATENESS + 5)
    .add_elements([ev(A, 'late-pane', 30)])
    .advance_watermark_to(BASE_S + WINDOW + LATENESS + 10)
    .add_elements([ev(A, 'too-late', 40)])
  )
  panes, late, _ = run(stream, options, max_out_of_orderness=Duration(seconds=10))
  assert panes == [
    (A, 0, 300, 0, ON_TIME_PANE, ('a1', 'still-on-time')),
    (A, 0, 300, 1, LATE_PANE, ('a1', 'late-pane', 'still-on-time')),
  ]
  assert late_ids(late) == ['too-late']


def test_early_panes_report_the_open_window_then_on_time(options):
  stream = drain(
    TestStream()
    .add_elements([ev(A, 'a1', 10)])
    .advance_processing_time(11)
    .add_elements([ev(A, 'a2', 20)])
    .advance_processing_time(11)
    .advance_processing_time(11)
    .advance_watermark_to(BASE_S + WINDOW)
  )
  panes, late, counters = run(
    stream, options, early_firing=Duration(seconds=10), processing_clock=lambda: Timestamp(0)
  )
  assert panes == [
    (A, 0, 300, 0, EARLY_PANE, ('a1',)),
    (A, 0, 300, 1, EARLY_PANE, ('a1', 'a2')),
    (A, 0, 300, 2, ON_TIME_PANE, ('a1', 'a2')),
  ]
  assert late == []
  assert counters.get('early_panes') == 2


# -- conservation ---------------------------------------------------------------------------


@pytest.mark.parametrize('seed', [1, 2])
def test_every_element_is_in_one_last_pane_or_once_late(options, seed):
  rng = random.Random(seed)
  keys = [A, B_SAME_SHARD, C_OTHER_SHARD, 'Q-3']
  stream = TestStream()
  watermark_s = 0
  ids = []
  for step in range(12):
    batch = []
    for n in range(rng.randint(1, 5)):
      id_ = f'{step}-{n}'
      ids.append(id_)
      at_s = max(0, watermark_s + rng.randint(-900, 300))
      batch.append(ev(rng.choice(keys), id_, at_s))
    stream = stream.add_elements(batch)
    watermark_s += rng.randint(0, 400)
    stream = stream.advance_watermark_to(BASE_S + watermark_s)
  panes, late, counters = run(drain(stream), options)
  last = {}
  for key, start, _, index, _, result in panes:
    if (key, start) not in last or index > last[(key, start)][0]:
      last[(key, start)] = (index, result)
  counted = [i for _, result in last.values() for i in result]
  assert sorted(counted + late_ids(late)) == sorted(ids)
  assert counters.get('late_events', 0) == len(late)
  # pane_index runs 0, 1, 2... per (key, window).
  for key, start in last:
    indexes = sorted(p[3] for p in panes if (p[0], p[1]) == (key, start))
    assert indexes == list(range(len(indexes)))


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize(
  'size, lateness, message',
  [(0, 60, 'window size'), (-300, 60, 'window size'), (300, -1, 'allowed lateness')],
)
def test_nonsense_windows_are_refused(size, lateness, message):
  with pytest.raises(ValueError, match=message):
    WindowedCombinePerKey(
      IdsFn(),
      key_of,
      event_ms,
      Duration(seconds=size),
      Duration(seconds=lateness),
      Duration(seconds=IDLE_TTL),
      NAMESPACE,
    )
