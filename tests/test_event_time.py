"""transforms/event_time.py on its own: DelayedClock's timers fire when the
watermark reaches the delayed time plus the bound and read back as the
delayed time; at_event_time stamps an element with its event time in the
global window; ceil_to_grid rounds up to a grid."""

from typing import Any, List

import apache_beam as beam
import pytest
from apache_beam.coders import BooleanCoder
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp

from tests.conftest import BASE_S
from transforms.event_time import DelayedClock, at_event_time, ceil_to_grid

BASE_MS = BASE_S * 1000
DELAY_MS = 10_000
TIMER_AT_MS = BASE_MS + 100_000

_COLLECTED: List[Any] = []


def _collect(element):
  _COLLECTED.append(element)
  return ()


def _drain_collected():
  out = list(_COLLECTED)
  _COLLECTED.clear()
  return out


# -- DelayedClock on a real runner ----------------------------------------------


class _Probe(beam.DoFn):
  """'arm' sets a timer at TIMER_AT_MS of delayed time; each later element
  reports whether that timer has fired; the timer reports what fired_ms
  reads."""

  FIRED = ReadModifyWriteStateSpec('fired', BooleanCoder())
  TIMER = TimerSpec('timer', TimeDomain.WATERMARK)

  def __init__(self, clock: DelayedClock):
    self._clock = clock

  def process(
    self,
    element,
    fired=beam.DoFn.StateParam(FIRED),
    timer=beam.DoFn.TimerParam(TIMER),
  ):
    _, name = element
    if name == 'arm':
      self._clock.set(timer, TIMER_AT_MS, 'tag')
      return
    yield ('probe', name, bool(fired.read()))

  @on_timer(TIMER)
  def on_timer(
    self,
    fired_at=beam.DoFn.TimestampParam,
    fired=beam.DoFn.StateParam(FIRED),
    tag=beam.DoFn.DynamicTimerTagParam,
  ):
    fired.write(True)
    yield ('fired', tag, self._clock.fired_ms(fired_at))


def _probe(stream, options, delay_ms):
  p = beam.Pipeline(options=options)
  _ = (
    p
    | stream
    | beam.Map(lambda name: (0, name))
    | beam.ParDo(_Probe(DelayedClock(delay_ms)))
    | beam.FlatMap(_collect)
  )
  p.run().wait_until_finish()
  return sorted(_drain_collected())


def _stream(*steps):
  stream = TestStream().add_elements(['arm'])
  for watermark_ms, probe in steps:
    stream = stream.advance_watermark_to(Timestamp(micros=watermark_ms * 1000))
    stream = stream.add_elements([probe])
  return stream.advance_watermark_to_infinity()


def test_a_delayed_timer_fires_only_when_the_watermark_passes_time_plus_bound(options):
  stream = _stream(
    (TIMER_AT_MS, 'at-the-time'),
    (TIMER_AT_MS + DELAY_MS - 1, 'just-before-bound'),
    (TIMER_AT_MS + DELAY_MS, 'at-the-bound'),
  )
  assert _probe(stream, options, DELAY_MS) == [
    ('fired', 'tag', TIMER_AT_MS),  # read back as the delayed time
    ('probe', 'at-the-bound', True),
    ('probe', 'at-the-time', False),
    ('probe', 'just-before-bound', False),
  ]


def test_without_a_bound_the_timer_fires_at_the_time(options):
  stream = _stream((TIMER_AT_MS - 1, 'before'), (TIMER_AT_MS, 'at-the-time'))
  assert _probe(stream, options, 0) == [
    ('fired', 'tag', TIMER_AT_MS),
    ('probe', 'at-the-time', True),
    ('probe', 'before', False),
  ]


@pytest.mark.parametrize('delay_ms', [0, 1, DELAY_MS, 3_600_000])
def test_fired_ms_reads_back_what_set_armed(delay_ms):
  armed = []

  class RecordingTimer:
    def set(self, timestamp, dynamic_timer_tag=''):
      armed.append((timestamp, dynamic_timer_tag))

  clock = DelayedClock(delay_ms)
  clock.set(RecordingTimer(), TIMER_AT_MS, 'x')
  [(timestamp, tag)] = armed
  assert tag == 'x'
  assert timestamp == Timestamp(micros=(TIMER_AT_MS + delay_ms) * 1000)
  assert clock.fired_ms(timestamp) == TIMER_AT_MS


# -- at_event_time ------------------------------------------------------------------


class _Stamp(beam.DoFn):
  def process(self, element):
    name, at_ms = element
    yield at_event_time(name, at_ms)


def _timestamp_and_window(name, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
  return name, timestamp, window


def test_at_event_time_stamps_the_element_with_its_event_time(options):
  stream = (
    TestStream()
    .add_elements([('a', BASE_MS + 1), ('b', BASE_MS + 250_000)])
    .advance_watermark_to_infinity()
  )
  p = beam.Pipeline(options=options)
  _ = p | stream | beam.ParDo(_Stamp()) | beam.Map(_timestamp_and_window) | beam.FlatMap(_collect)
  p.run().wait_until_finish()
  assert sorted(_drain_collected()) == [
    ('a', Timestamp(micros=(BASE_MS + 1) * 1000), GlobalWindow()),
    ('b', Timestamp(micros=(BASE_MS + 250_000) * 1000), GlobalWindow()),
  ]


def test_at_event_time_feeds_event_time_windows(options):
  """A downstream FixedWindows assignment sees the stamped event time."""
  stream = (
    TestStream()
    .add_elements([('a', BASE_MS + 10_000), ('b', BASE_MS + 70_000), ('c', BASE_MS + 50_000)])
    .advance_watermark_to_infinity()
  )
  p = beam.Pipeline(options=options)
  _ = (
    p
    | stream
    | beam.ParDo(_Stamp())
    | beam.WindowInto(beam.window.FixedWindows(60))
    | beam.Map(lambda name: (0, name))
    | beam.GroupByKey()
    | beam.Map(
      lambda kv, w=beam.DoFn.WindowParam: (w.start.micros // 1000 - BASE_MS, sorted(kv[1]))
    )
    | beam.FlatMap(_collect)
  )
  p.run().wait_until_finish()
  assert sorted(_drain_collected()) == [(0, ['a', 'c']), (60_000, ['b'])]


# -- ceil_to_grid -------------------------------------------------------------------------


@pytest.mark.parametrize(
  'ms, step, expected',
  [
    (0, 1000, 0),
    (1, 1000, 1000),
    (999, 1000, 1000),
    (1000, 1000, 1000),
    (1001, 1000, 2000),
    (BASE_MS + 1, 60_000, BASE_MS + 60_000),
    (BASE_MS, 60_000, BASE_MS),
    (-1, 1000, 0),
    (-1000, 1000, -1000),
    (-1001, 1000, -1000),
  ],
)
def test_ceil_to_grid_is_the_first_multiple_at_or_after(ms, step, expected):
  assert ceil_to_grid(ms, step) == expected
