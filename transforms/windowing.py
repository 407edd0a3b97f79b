"""WindowedCombinePerKey: fixed event-time windows with allowed lateness,
accumulating late panes and a late-data side output that never loses an
element.

Why not `WindowInto(FixedWindows) | CombinePerKey` behind a gate: Beam drops
data past allowed lateness without a trace, and a Python DoFn cannot read the
watermark, so a separate gate can only guess what the downstream GroupByKey
will drop; a gate that guesses wrong loses exactly the events it was meant to
save (the first event of an already-expired window, see DESIGN.md section 2).
Here the decision "counted or late" and the aggregation happen in the same
stateful DoFn, in the global window, so they cannot disagree: every element
either enters an accumulator that a later pane reports, or leaves on the
`late` output.

Bounded out-of-orderness: sources emit the watermark Kafka's `CreateTime`
policy gives (the largest event time seen); this DoFn works on that
watermark minus `watermark_delay_seconds`, so every timer is set that much
later and every "clock" below is in that delayed time.

How the DoFn knows the watermark: only firing event-time timers tell it. Each
key keeps a "clock", the latest timer timestamp that fired, which is a lower
bound of the input watermark. Each key keeps timers ("ticks") armed at the
next TICKS_AHEAD boundaries of the fixed grid (window ends and window
expiries = end + allowed lateness) while it has been active within
`key_idle_ttl_seconds`. So whenever the watermark passes a boundary, the
key's clock passes it too before later elements are processed: an element
whose window expired is routed to `late` even when it is the first element
of that window, and the first element of a window whose end has passed gets
a LATE pane. Limit: a key whose clock has never fired (a brand-new key)
cannot be judged late; its first window is opened and reported like any
other (counted, never lost).

Why several ticks, each with its own dynamic timer tag: a fired timer can
only arm the next one, which fires in a later round of the runner, so a
single tick walks a watermark jump (a backlog being read) one boundary per
round trip; on Flink that held rows back for minutes after the input was
read. With TICKS_AHEAD ticks armed, a round covers that many boundaries.
"""
import json
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.transforms.userstate import TimerSpec
from apache_beam.transforms.userstate import on_timer

from transforms.batching import BatchPerKey
from transforms.event_time import DelayedClock
from transforms.records import LateEvent

LATE = 'late'
# Grid boundaries a key keeps timers armed at, ahead of its clock.
TICKS_AHEAD = 8
# The timer tag of a key whose clock has not fired yet.
FIRST_TAG = 'first'
ON_TIME_PANE = 'ON_TIME'
LATE_PANE = 'LATE'


class WindowPane(NamedTuple):
  """The accumulated result of one (key, window) as of one firing."""
  key: str
  window_start: int
  window_end: int
  result: Any
  pane_index: int
  timing: str


class LateArrival(NamedTuple):
  """An element that arrived after its window's expiry."""
  key: str
  value: Any
  event_timestamp: int
  window_start: int
  window_end: int
  watermark: int


class _OpenWindow:
  """Per-window state: the accumulator and how many panes were emitted."""
  __slots__ = ('accumulator', 'panes_emitted', 'end_passed')

  def __init__(self, accumulator: Any, end_passed: bool):
    self.accumulator = accumulator
    self.panes_emitted = 0
    # True once the watermark passed the window end: from then on each new
    # element produces a LATE pane at once (accumulating), like Beam's
    # AfterWatermark(late=AfterCount(1)).
    self.end_passed = end_passed

  def __getstate__(self):
    return (self.accumulator, self.panes_emitted, self.end_passed)

  def __setstate__(self, state):
    self.accumulator, self.panes_emitted, self.end_passed = state


class _KeyState:
  """Everything one key needs: its watermark clock, its open windows and
  its armed ticks (see the module docstring)."""
  __slots__ = ('clock', 'last_active', 'windows', 'armed_through', 'ticks')

  def __init__(self):
    self.clock: Optional[int] = None
    self.last_active: Optional[int] = None
    self.windows: Dict[int, _OpenWindow] = {}
    # The latest boundary a tick is armed at, and how many ticks were ever
    # armed: a tick's tag is its number modulo TICKS_AHEAD, so the ticks
    # armed at any time have distinct tags.
    self.armed_through: Optional[int] = None
    self.ticks = 0

  def __getstate__(self):
    return (self.clock, self.last_active, self.windows, self.armed_through,
            self.ticks)

  def __setstate__(self, state):
    (self.clock, self.last_active, self.windows, self.armed_through,
     self.ticks) = state


class _WindowedCombineFn(beam.DoFn):
  STATE = ReadModifyWriteStateSpec('key_state', PickleCoder())
  FIRE = TimerSpec('fire', TimeDomain.WATERMARK)

  def __init__(
      self,
      combine_fn: beam.CombineFn,
      event_time_ms: Callable[[Any], int],
      window_size_ms: int,
      allowed_lateness_ms: int,
      key_idle_ttl_ms: int,
      watermark_delay_ms: int,
      metrics_namespace: str):
    self._combine_fn = combine_fn
    self._event_time_ms = event_time_ms
    self._event_time = DelayedClock(watermark_delay_ms)
    self._size = window_size_ms
    self._lateness = allowed_lateness_ms
    self._idle_ttl = key_idle_ttl_ms
    self._late_events = Metrics.counter(metrics_namespace, 'late_events')
    self._on_time_panes = Metrics.counter(metrics_namespace, 'on_time_panes')
    self._late_panes = Metrics.counter(metrics_namespace, 'late_panes')

  def setup(self):
    self._combine_fn.setup()

  def teardown(self):
    self._combine_fn.teardown()

  def process(
      self,
      batch: Tuple[Any, List[Any]],
      state=beam.DoFn.StateParam(STATE),
      fire=beam.DoFn.TimerParam(FIRE)) -> Iterator:
    key, values = batch
    key_state = state.read() or _KeyState()
    clock = key_state.clock
    # Windows whose end has passed and that took elements of this batch: one
    # LATE pane each after the batch, as Beam's AfterCount(1) late firing
    # gives for elements that arrive together.
    late_updates: Dict[int, _OpenWindow] = {}
    accepted = False
    for value in values:
      event_ms = self._event_time_ms(value)
      # The same grid as FixedWindows(size) with offset 0.
      start = event_ms - event_ms % self._size
      end = start + self._size
      if clock is not None and end + self._lateness <= clock:
        self._late_events.inc()
        yield beam.pvalue.TaggedOutput(
            LATE, LateArrival(key, value, event_ms, start, end, clock))
        continue
      window = key_state.windows.get(start)
      if window is None:
        window = _OpenWindow(
            self._combine_fn.create_accumulator(),
            end_passed=clock is not None and end <= clock)
        key_state.windows[start] = window
      window.accumulator = self._combine_fn.add_input(window.accumulator, value)
      key_state.last_active = max(key_state.last_active or end, end)
      accepted = True
      if window.end_passed:
        late_updates[start] = window
    if not accepted:
      return
    for start in sorted(late_updates):
      self._late_panes.inc()
      yield self._pane(key, start, late_updates[start], LATE_PANE)
    self._arm(fire, key_state)  # before the write: arming updates the state
    state.write(key_state)

  @on_timer(FIRE)
  def on_fire(
      self,
      key=beam.DoFn.KeyParam,
      fire_timestamp=beam.DoFn.TimestampParam,
      state=beam.DoFn.StateParam(STATE),
      fire=beam.DoFn.TimerParam(FIRE)) -> Iterator:
    key_state = state.read()
    if key_state is None:
      return
    fired_ms = self._event_time.fired_ms(fire_timestamp)
    clock = fired_ms if key_state.clock is None else max(
        key_state.clock, fired_ms)
    key_state.clock = clock
    for start in sorted(key_state.windows):
      window = key_state.windows[start]
      end = start + self._size
      if not window.end_passed and end <= clock:
        window.end_passed = True
        self._on_time_panes.inc()
        yield self._pane(key, start, window, ON_TIME_PANE)
      if end + self._lateness <= clock:
        del key_state.windows[start]
    self._arm(fire, key_state)  # before the write: arming updates the state
    state.write(key_state)

  def _pane(self, key: str, start: int, window: _OpenWindow,
            timing: str) -> WindowPane:
    pane = WindowPane(
        key=key,
        window_start=start,
        window_end=start + self._size,
        result=self._combine_fn.extract_output(
            self._combine_fn.compact(window.accumulator)),
        pane_index=window.panes_emitted,
        timing=timing)
    window.panes_emitted += 1
    return pane

  def _next_boundary(self, after_ms: int) -> int:
    """The first window end or window expiry on the grid after a time."""
    next_end = (after_ms // self._size + 1) * self._size
    next_expiry = ((after_ms - self._lateness) // self._size + 1) * (
        self._size) + self._lateness
    return min(next_end, next_expiry)

  def _arm(self, fire, key_state: _KeyState) -> None:
    clock = key_state.clock
    if clock is None:
      # No timer has fired for this key yet: one wake-up at the end of its
      # first window tells it where the watermark is.
      if key_state.windows:
        self._event_time.set(
            fire, min(key_state.windows) + self._size, FIRST_TAG)
      return
    if not key_state.windows and clock - key_state.last_active >= (
        self._idle_ttl):
      return  # idle: the armed ticks run out, the key stops waking up
    boundary = clock
    for _ in range(TICKS_AHEAD):
      boundary = self._next_boundary(boundary)
      if (key_state.armed_through is not None and
          boundary <= key_state.armed_through):
        continue
      self._event_time.set(
          fire, boundary, str(key_state.ticks % TICKS_AHEAD))
      key_state.ticks += 1
      key_state.armed_through = boundary


class WindowedCombinePerKey(beam.PTransform):
  """Fixed event-time windows per key, combined with a CombineFn, with
  allowed lateness and a late side output.

  Input: PCollection[V] in the global window; `key_fn(V)` is its key and
  `event_time_ms(V)` its event time (epoch ms), its timestamp too. Each
  bundle's elements are batched per key (transforms/batching.py) before the
  stateful step.
  Outputs (a DoOutputsTuple):
    main: PCollection[WindowPane] with `result` = combine_fn's output. One
      ON_TIME pane when the watermark passes the window end, then one LATE
      pane per batch of elements that arrives within allowed lateness; panes
      accumulate, `pane_index` orders them, so the last pane of a (key,
      window) counts every element accepted into it.
    `late`: PCollection[LateArrival], elements that arrived after their
      window's end + allowed lateness.
  Conservation: each input element is in the last pane of exactly one
  (key, window), or once in `late`.
  """
  def __init__(
      self,
      combine_fn: beam.CombineFn,
      key_fn: Callable[[Any], str],
      event_time_ms: Callable[[Any], int],
      window_size_seconds: int,
      allowed_lateness_seconds: int,
      key_idle_ttl_seconds: int,
      metrics_namespace: str,
      watermark_delay_seconds: int = 0):
    super().__init__()
    self._key_fn = key_fn
    self._event_time_ms = event_time_ms
    if window_size_seconds <= 0:
      raise ValueError(f'window size must be > 0, got {window_size_seconds}')
    if allowed_lateness_seconds < 0:
      raise ValueError(
          f'allowed lateness must be >= 0, got {allowed_lateness_seconds}')
    self._fn = _WindowedCombineFn(
        combine_fn,
        event_time_ms,
        window_size_seconds * 1000,
        allowed_lateness_seconds * 1000,
        key_idle_ttl_seconds * 1000,
        watermark_delay_seconds * 1000,
        metrics_namespace)

  def expand(self, pcoll):
    return (
        pcoll
        | 'BatchPerKey' >> BatchPerKey(self._key_fn, self._event_time_ms)
        | 'Combine' >> beam.ParDo(self._fn).with_outputs(LATE, main='panes'))


AFTER_WINDOW_EXPIRY = 'after_window_expiry'


def to_late_event(
    source: str,
    arrival: LateArrival,
    event_id: str,
    reason: str = AFTER_WINDOW_EXPIRY) -> LateEvent:
  """The late-events table row for a late arrival of a NamedTuple record."""
  return LateEvent(
      source=source,
      event_id=event_id,
      key=arrival.key,
      event_timestamp=arrival.event_timestamp,
      window_start=arrival.window_start,
      window_end=arrival.window_end,
      watermark=arrival.watermark,
      reason=reason,
      raw=json.dumps(arrival.value._asdict(), sort_keys=True))
