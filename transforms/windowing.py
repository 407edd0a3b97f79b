"""WindowedCombinePerKey: fixed event-time windows with allowed lateness,
accumulating late panes and a late-data side output that never loses an
element.

Why not `WindowInto(FixedWindows) | CombinePerKey` behind a gate: Beam drops
data past allowed lateness without a trace, and a Python DoFn cannot read the
watermark, so a separate gate can only guess what the downstream GroupByKey
will drop; a gate that guesses wrong loses exactly the events it was meant to
save (the first event of an already-expired window; docs/design.md, "One
operator decides lateness and aggregates").
Here the decision "counted or late" and the aggregation happen in the same
stateful DoFn, in the global window, so they cannot disagree: every element
either enters an accumulator that a later pane reports, or leaves on the
`late` output.

Bounded out-of-orderness: sources emit the watermark Kafka's `CreateTime`
policy gives (the largest event time seen); this DoFn works on that
watermark minus `max_out_of_orderness`, so every timer is set that
much later and every "clock" below is in that delayed time.

How the DoFn knows the watermark: only firing event-time timers tell it.
Keys are spread over shard keys (transforms/sharding.py); each shard keeps
a "clock", the latest timer timestamp that fired, which is a lower bound of
the input watermark. A shard keeps timers ("ticks") armed at the next
TICKS_AHEAD boundaries of the fixed grid (window ends and window expiries
= end + allowed lateness) once its clock has fired, so whenever the
watermark passes a boundary, the shard's clock passes it too before later
elements are processed.

One lateness rule (docs/design.md, "When an event is late"), which
depends on the event, its key's own history and the watermark, never on
the other keys of the shard: a key has a clock of its own once the shard's
clock has passed the end of its first window; an element of a key with a
clock whose window expired is routed to `late`, even when it is the first
element of that window, and the first element of a window whose end has
passed gets a LATE pane. A key without a clock yet (new to the job) cannot
judge lateness: its elements are counted, never lost.

Bounded state: a key with no open window and no element for
`key_idle_ttl` of event time loses its windows' state and is
remembered by name only, so its late events are still judged late however
long it was silent and a window that already has a row is never re-opened
by them. A shard remembers at most MAX_REMEMBERED_KEYS keys (the least
recently active are forgotten first, counted in `keys_forgotten`), so a
flood of distinct keys leaves a bounded record per shard. The clock keeps
ticking after the shard's keys are gone; ticks end only when the input
does: a shard without keys also arms one timer at the end of the global
window, which fires only when the watermark reaches it (end of input);
from then on it arms nothing and forgets everything, so a replay still
finishes.

Why several ticks, each with its own dynamic timer tag: a fired timer can
only arm the next one, which fires in a later round of the runner, so a
single tick walks a watermark jump (a backlog being read) one boundary per
round trip; on Flink that held rows back for minutes after the input was
read. With TICKS_AHEAD ticks armed, a round covers that many boundaries.
"""

import copy
import json
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Set, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
  BagStateSpec,
  ReadModifyWriteStateSpec,
  TimerSpec,
  on_timer,
)
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Duration, Timestamp

from options.config import checked_millis
from transforms.batching import BatchPerKey
from transforms.change_log import InstanceCopies, LogSize, append, merged, new_token
from transforms.event_time import DelayedClock
from transforms.operator_metrics import set_live_state_entries
from transforms.records import LateEvent
from transforms.sharding import DEFAULT_STATE_SHARDS, shard_of
from transforms.state_coders import VersionedStateCoder

LATE = 'late'
# The output of the elements each pane counts, when an element id is given.
COUNTED = 'counted'
# Grid boundaries a key keeps timers armed at, ahead of its clock.
TICKS_AHEAD = 8
# Keys a shard remembers by name after their windows' state went idle
# (a few dozen bytes each); beyond, the least recently active is forgotten.
MAX_REMEMBERED_KEYS = 1000
# The timer tag of a shard whose clock has not fired yet.
FIRST_TAG = 'first'
# The timer tag of the end-of-input wake-up of a shard without keys.
END_TAG = 'end'
# The last timestamp a timer of the global window can have (epoch ms).
_GLOBAL_WINDOW_END_MS = GlobalWindow().max_timestamp().micros // 1000
ON_TIME_PANE = 'ON_TIME'
LATE_PANE = 'LATE'
EARLY_PANE = 'EARLY'
# The pane of a window's figures that a reprocessing run wrote
# (pipelines/reprocess.py): never produced by this module.
RESTATED_PANE = 'RESTATED'


class WindowPane(NamedTuple):
  """The accumulated result of one (key, window) as of one firing."""

  key: str
  window_start: int
  window_end: int
  result: Any
  pane_index: int
  timing: str
  # A LATE pane's audit trail: the result of the window's previous pane
  # (None when this is its first), and the ids of the elements it added
  # (when the step has an element id; see WindowedCombinePerKey).
  previous: Any = None
  added: Tuple[str, ...] = ()


class CountedElement(NamedTuple):
  """An element a window accepted: `pane_index` is the first pane of the
  (key, window) that counts it, `timing` ON_TIME for an element accepted
  before the window's end (its first pane is EARLY or ON_TIME), LATE after."""

  key: str
  window_start: int
  window_end: int
  pane_index: int
  timing: str
  value: Any


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

  __slots__ = ('accumulator', 'panes_emitted', 'end_passed', 'early_due')

  def __init__(self, accumulator: Any, end_passed: bool):
    self.accumulator = accumulator
    self.panes_emitted = 0
    # True once the watermark passed the window end: from then on each new
    # element produces a LATE pane at once (accumulating), like Beam's
    # AfterWatermark(late=AfterCount(1)).
    self.end_passed = end_passed
    # True while the open window took elements its last pane does not
    # show: the next early firing reports it.
    self.early_due = False


class _KeyWindows:
  """One key's open windows, the end of its latest window with data, and
  whether the key has a clock of its own (see _WindowedCombineFn)."""

  __slots__ = ('last_active', 'windows', 'first_end')

  def __init__(self, first_end: Optional[int] = None):
    self.last_active: Optional[int] = None
    self.windows: Dict[int, _OpenWindow] = {}
    # The end of the key's first window, until the shard's clock passes it;
    # None from then on: the key has seen the watermark pass one of its own
    # windows, so its later events are judged by the watermark.
    self.first_end = first_end

  @property
  def has_clock(self) -> bool:
    return self.first_end is None


class _ShardState:
  """Everything one shard needs: its watermark clock, its keys' open windows
  and its armed ticks (see the module docstring), and which keys changed
  since it was last written."""

  __slots__ = (
    'clock',
    'keys',
    'remembered',
    'armed_through',
    'ticks',
    'early_at',
    'log',
    'changed',
    'token',
  )

  def __init__(self):
    self.clock: Optional[int] = None
    self.keys: Dict[str, _KeyWindows] = {}
    # Keys with a clock of their own whose windows are all gone and that
    # were idle past the TTL: key -> end of its latest window. Only the
    # fact that they have a clock is kept, so their late events are still
    # judged late however long they were silent.
    self.remembered: Dict[str, int] = {}
    # The latest boundary a tick is armed at, and how many ticks were ever
    # armed: a tick's tag is its number modulo TICKS_AHEAD, so the ticks
    # armed at any time have distinct tags.
    self.armed_through: Optional[int] = None
    self.ticks = 0
    # The processing time (ms) the early firing is armed at, None when not.
    self.early_at: Optional[int] = None
    # The keys' log (transforms/change_log.py) and the keys changed since
    # it was last appended to.
    self.log = LogSize()
    self.changed: Set[str] = set()
    # The head's token this state was read or written with.
    self.token: Optional[bytes] = None


class _ShardHead(NamedTuple):
  """The part of a shard's state read and written at every bundle."""

  token: bytes
  clock: Optional[int]
  armed_through: Optional[int]
  ticks: int
  early_at: Optional[int]
  stored: int
  kept: int


def _key_to_plain(key_windows: _KeyWindows) -> list:
  return [
    key_windows.last_active,
    [
      [start, w.accumulator, w.panes_emitted, w.end_passed, w.early_due]
      for start, w in key_windows.windows.items()
    ],
    key_windows.first_end,
  ]


def _key_from_plain(plain: list) -> _KeyWindows:
  last_active, windows, first_end = plain
  key_windows = _KeyWindows(first_end)
  key_windows.last_active = last_active
  for start, accumulator, panes_emitted, end_passed, early_due in windows:
    window = _OpenWindow(accumulator, end_passed)
    window.panes_emitted = panes_emitted
    window.early_due = early_due
    key_windows.windows[start] = window
  return key_windows


def _entry_plain(shard: _ShardState, key: str) -> Any:
  """A key's entry in the shard's log: its windows (a list) while it has
  any, the end of its latest window (a number) while it is remembered,
  None once it is gone."""
  key_windows = shard.keys.get(key)
  if key_windows is not None:
    return _key_to_plain(key_windows)
  return shard.remembered.get(key)


def _shard_from(head: _ShardHead, entries: Dict[str, Any]) -> _ShardState:
  shard = _ShardState()
  shard.clock, shard.armed_through, shard.ticks = head.clock, head.armed_through, head.ticks
  shard.early_at, shard.log = head.early_at, LogSize(head.stored, head.kept)
  shard.token = head.token
  for key, plain in entries.items():
    if isinstance(plain, list):
      shard.keys[key] = _key_from_plain(plain)
    else:
      shard.remembered[key] = plain
  return shard


# Format v1: [token as hex, clock, armed through, ticks, early firing armed
# at (processing ms) or null, changes stored, keys kept]. The shard's keys
# are a log (transforms/change_log.py) of {key: [last active, [[window
# start, accumulator, panes emitted, end passed, early due], ...], end of
# its first window or null once it has a clock] while it has windows, the
# end of its latest window while it is remembered, null once forgotten}.
# (docs/upgrades.md: the release before kept a shard in one cell,
# `windowed combine` v3, which this release does not restore.)
HEAD_CODER = VersionedStateCoder(
  'windowed head',
  1,
  lambda h: [h.token.hex(), *h[1:]],
  {1: lambda p: _ShardHead(bytes.fromhex(p[0]), *p[1:])},
)
KEYS_CODER = VersionedStateCoder('windowed keys', 1, dict, {1: dict})


class _WindowedCombineFn(beam.DoFn):
  HEAD = ReadModifyWriteStateSpec('shard_head', HEAD_CODER)
  KEYS = BagStateSpec('shard_keys', KEYS_CODER)
  # The steps reading the panes keep timers of their own (rolling, daily,
  # forecast): on the local runner this step's output watermark waits for
  # its due timers, so they get the last panes before the end of input
  # moves them on (pipelines/local_runner.py _ParDoEvaluatorHoldingAtTimers).
  HOLDS_OUTPUT_AT_TIMERS = True
  FIRE = TimerSpec('fire', TimeDomain.WATERMARK)
  EARLY = TimerSpec('early', TimeDomain.REAL_TIME)

  def __init__(
    self,
    combine_fn: beam.CombineFn,
    key_fn: Callable[[Any], str],
    event_time_ms: Callable[[Any], int],
    window_size_ms: int,
    allowed_lateness_ms: int,
    key_idle_ttl_ms: int,
    max_out_of_orderness_ms: int,
    metrics_namespace: str,
    early_firing_ms: int = 0,
    processing_clock: Callable[[], Timestamp] = Timestamp.now,
    max_remembered_keys: int = MAX_REMEMBERED_KEYS,
    element_id: Optional[Callable[[Any], str]] = None,
    counted: bool = False,
  ):
    self._combine_fn = combine_fn
    self._element_id = element_id
    self._counted = counted
    self._early_firing_ms = early_firing_ms
    self._processing_clock = processing_clock
    self._key_fn = key_fn
    self._event_time_ms = event_time_ms
    self._event_time = DelayedClock(max_out_of_orderness_ms)
    self._size = window_size_ms
    self._lateness = allowed_lateness_ms
    self._idle_ttl = key_idle_ttl_ms
    # The end of input in the delayed time of the clock: only the
    # watermark's final jump passes it.
    self._end_of_input_ms = _GLOBAL_WINDOW_END_MS - max_out_of_orderness_ms
    self._late_events = Metrics.counter(metrics_namespace, 'late_events')
    self._on_time_panes = Metrics.counter(metrics_namespace, 'on_time_panes')
    self._late_panes = Metrics.counter(metrics_namespace, 'late_panes')
    self._early_panes = Metrics.counter(metrics_namespace, 'early_panes')
    self._idle_keys_dropped = Metrics.counter(metrics_namespace, 'idle_keys_dropped')
    self._keys_forgotten = Metrics.counter(metrics_namespace, 'keys_forgotten')
    self._max_remembered = max_remembered_keys
    self._state_step = f'{metrics_namespace}_windows'
    self._copies: InstanceCopies[_ShardState] = InstanceCopies()

  def setup(self):
    self._combine_fn.setup()

  def teardown(self):
    self._combine_fn.teardown()

  def process(
    self,
    batch: Tuple[int, List[Any]],
    head_state=beam.DoFn.StateParam(HEAD),
    keys_state=beam.DoFn.StateParam(KEYS),
    fire=beam.DoFn.TimerParam(FIRE),
    early=beam.DoFn.TimerParam(EARLY),
  ) -> Iterator:
    shard_id, values = batch
    shard = self._read(shard_id, head_state, keys_state) or _ShardState()
    clock = shard.clock
    # Windows whose end has passed and that took elements of this batch: one
    # LATE pane each after the batch, as Beam's AfterCount(1) late firing
    # gives for elements that arrive together.
    late_updates: Dict[Tuple[str, int], _OpenWindow] = {}
    # Of those windows: the result of their last pane, and (with element
    # ids) the ids the batch added; the LATE pane's audit trail.
    previous: Dict[Tuple[str, int], Any] = {}
    added: Dict[Tuple[str, int], List[str]] = {}
    element_id = self._element_id
    # Keys of this batch still without a clock: the only ones whose clock
    # the batch can teach (the shard's clock does not move in a batch).
    learning: Dict[str, _KeyWindows] = {}
    accepted = False
    for value in values:
      key = self._key_fn(value)
      event_ms = self._event_time_ms(value)
      # The same grid as FixedWindows(size) with offset 0.
      start = event_ms - event_ms % self._size
      end = start + self._size
      key_windows = shard.keys.get(key)
      has_clock = key_windows.has_clock if key_windows else key in shard.remembered
      if clock is not None and has_clock and end + self._lateness <= clock:
        self._late_events.inc()
        yield beam.pvalue.TaggedOutput(LATE, LateArrival(key, value, event_ms, start, end, clock))
        continue
      if key_windows is None:
        key_windows = shard.keys[key] = self._key_windows(shard, key, end)
      if key_windows.first_end is not None:
        key_windows.first_end = min(key_windows.first_end, end)
        learning[key] = key_windows
      window = key_windows.windows.get(start)
      if window is None:
        window = _OpenWindow(
          self._combine_fn.create_accumulator(), end_passed=clock is not None and end <= clock
        )
        key_windows.windows[start] = window
      if window.end_passed and (key, start) not in late_updates:
        late_updates[(key, start)] = window
        # A copy: accumulators are updated in place.
        previous[(key, start)] = (
          self._combine_fn.extract_output(copy.deepcopy(window.accumulator))
          if window.panes_emitted
          else None
        )
      window.accumulator = self._combine_fn.add_input(window.accumulator, value)
      key_windows.last_active = max(key_windows.last_active or end, end)
      shard.changed.add(key)
      accepted = True
      if not window.end_passed:
        window.early_due = True
      if window.end_passed and element_id is not None:
        added.setdefault((key, start), []).append(element_id(value))
      if self._counted:
        timing = LATE_PANE if window.end_passed else ON_TIME_PANE
        yield beam.pvalue.TaggedOutput(
          COUNTED, CountedElement(key, start, end, window.panes_emitted, timing, value)
        )
    if not accepted:
      if shard.token is not None:  # unchanged: the copy stays current
        self._copies.keep(shard_id, shard.token, shard)
      return
    self._learn_clocks(clock, learning.items())
    for key, start in sorted(late_updates):
      self._late_panes.inc()
      yield self._pane(
        key,
        start,
        late_updates[(key, start)],
        LATE_PANE,
        previous[(key, start)],
        tuple(added.get((key, start), ())),
      )
    self._arm(fire, shard)  # before the write: arming updates the state
    self._arm_early(early, shard)
    self._write(shard_id, shard, head_state, keys_state)
    set_live_state_entries(self._state_step, shard_id, len(shard.keys) + len(shard.remembered))

  @on_timer(FIRE)
  def on_fire(
    self,
    fire_timestamp=beam.DoFn.TimestampParam,
    shard_id=beam.DoFn.KeyParam,
    head_state=beam.DoFn.StateParam(HEAD),
    keys_state=beam.DoFn.StateParam(KEYS),
    fire=beam.DoFn.TimerParam(FIRE),
    early=beam.DoFn.TimerParam(EARLY),
  ) -> Iterator:
    shard = self._read(shard_id, head_state, keys_state)
    if shard is None:
      return
    fired_ms = self._event_time.fired_ms(fire_timestamp)
    clock = fired_ms if shard.clock is None else max(shard.clock, fired_ms)
    shard.clock = clock
    for key in sorted(shard.keys):
      key_windows = shard.keys[key]
      for start in sorted(key_windows.windows):
        window = key_windows.windows[start]
        end = start + self._size
        if not window.end_passed and end <= clock:
          window.end_passed = True
          shard.changed.add(key)
          self._on_time_panes.inc()
          yield self._pane(key, start, window, ON_TIME_PANE)
        if end + self._lateness <= clock:
          del key_windows.windows[start]
          shard.changed.add(key)
      if not key_windows.windows and (clock - key_windows.last_active >= self._idle_ttl):
        # Idle past its TTL with nothing open: its windows' state goes. A
        # key that has a clock is remembered by name only, so its late
        # events are still judged late after any silence.
        del shard.keys[key]
        shard.changed.add(key)
        self._idle_keys_dropped.inc()
        if key_windows.has_clock:
          self._remember(shard, key, key_windows.last_active)
    if clock >= self._end_of_input_ms:
      # The input has ended: nothing more to judge.
      shard.changed.update(shard.remembered)
      shard.remembered.clear()
    shard.changed.update(self._learn_clocks(clock, shard.keys.items()))
    if shard.early_at is not None and all(
      w.end_passed for k in shard.keys.values() for w in k.windows.values()
    ):
      # No open window left to report early. A processing-time timer holds
      # the step's output watermark until it fires, and Flink fires none
      # once a bounded input ended: the job would never finish.
      shard.early_at = None
      early.clear()
    self._arm(fire, shard)  # before the write: arming updates the state
    self._write(shard_id, shard, head_state, keys_state)
    set_live_state_entries(self._state_step, shard_id, len(shard.keys) + len(shard.remembered))

  @on_timer(EARLY)
  def on_early(
    self,
    fired=beam.DoFn.TimestampParam,
    shard_id=beam.DoFn.KeyParam,
    head_state=beam.DoFn.StateParam(HEAD),
    keys_state=beam.DoFn.StateParam(KEYS),
    early=beam.DoFn.TimerParam(EARLY),
  ) -> Iterator:
    """The figures so far of the open windows that took elements since
    their last pane: one EARLY pane each. Armed again only by new elements,
    so a quiet shard has no timer."""
    shard = self._read(shard_id, head_state, keys_state)
    if shard is None:
      return
    if shard.early_at is None:
      self._copies.keep(shard_id, shard.token, shard)  # unchanged
      return
    shard.early_at = None
    for key in sorted(shard.keys):
      windows = shard.keys[key].windows
      for start in sorted(windows):
        window = windows[start]
        if window.early_due and not window.end_passed:
          shard.changed.add(key)
          self._early_panes.inc()
          yield self._pane(key, start, window, EARLY_PANE)
    self._write(shard_id, shard, head_state, keys_state)

  def _read(self, shard_id: int, head_state, keys_state) -> Optional[_ShardState]:
    """The shard as last written, None if it holds nothing: this instance's
    copy while current, else read back from the log."""
    head = head_state.read()
    copy = self._copies.take(shard_id, head and head.token)
    if head is None or copy is not None:
      return copy
    return _shard_from(head, merged(keys_state.read()))

  def _write(self, shard_id: int, shard: _ShardState, head_state, keys_state) -> None:
    """Appends the keys changed since the last write to the log and writes
    the head; the shard becomes this instance's current copy."""
    shard.log = append(
      keys_state,
      {key: _entry_plain(shard, key) for key in shard.changed},
      shard.log,
      lambda: {key: _entry_plain(shard, key) for key in (*shard.keys, *shard.remembered)},
    )
    shard.changed = set()
    shard.token = new_token()
    head_state.write(
      _ShardHead(
        shard.token, shard.clock, shard.armed_through, shard.ticks, shard.early_at, *shard.log
      )
    )
    self._copies.keep(shard_id, shard.token, shard)

  def _arm_early(self, early, shard: _ShardState) -> None:
    """Arms the early firing `early_firing_ms` of processing time from now
    when a window awaits one and none is armed."""
    if not self._early_firing_ms or shard.early_at is not None:
      return
    if shard.clock is not None and shard.clock >= self._end_of_input_ms:
      return  # the input has ended: the ON_TIME panes are out
    now_ms = self._processing_clock().micros // 1000
    shard.early_at = now_ms + self._early_firing_ms
    early.set(Timestamp(micros=shard.early_at * 1000))

  def _key_windows(self, shard: _ShardState, key: str, end: int) -> _KeyWindows:
    """A key's windows as it comes back or first comes: a remembered key
    keeps its clock; a new one gets its clock when the shard's clock
    passes the end of its first window."""
    if shard.remembered.pop(key, None) is not None:
      return _KeyWindows()
    return _KeyWindows(first_end=end)

  @staticmethod
  def _learn_clocks(clock: Optional[int], keys: Iterable[Tuple[str, _KeyWindows]]) -> List[str]:
    """Keys whose first window end the shard's clock has passed have a
    clock of their own from now on; returns them."""
    if clock is None:
      return []
    learnt = []
    for key, key_windows in keys:
      if key_windows.first_end is not None and key_windows.first_end <= clock:
        key_windows.first_end = None
        learnt.append(key)
    return learnt

  def _remember(self, shard: _ShardState, key: str, last_active: int) -> None:
    """Remembers a key's clock, within MAX_REMEMBERED_KEYS per shard: the
    key least recently active is forgotten first (and counted), so a flood
    of distinct keys bounds the state."""
    remembered = shard.remembered
    remembered[key] = last_active
    if len(remembered) > self._max_remembered:
      oldest = min(remembered, key=lambda k: (remembered[k], k))
      del remembered[oldest]
      shard.changed.add(oldest)
      self._keys_forgotten.inc()

  def _pane(
    self,
    key: str,
    start: int,
    window: _OpenWindow,
    timing: str,
    previous: Any = None,
    added: Tuple[str, ...] = (),
  ) -> beam.window.TimestampedValue:
    """The window's next pane, stamped at the window's last instant (as
    Beam's GroupByKey stamps a pane), not at the timer that fired it: a
    pane fired as the input ends would otherwise carry the end of time, hold
    no watermark downstream, and a downstream step's timers could fire
    before it arrives (Beam's direct runner does; see
    transforms/daily_metrics.py)."""
    pane = WindowPane(
      key=key,
      window_start=start,
      window_end=start + self._size,
      result=self._combine_fn.extract_output(self._combine_fn.compact(window.accumulator)),
      pane_index=window.panes_emitted,
      timing=timing,
      previous=previous,
      added=added,
    )
    window.panes_emitted += 1
    window.early_due = False
    return beam.window.TimestampedValue(pane, Timestamp(micros=pane.window_end * 1000 - 1))

  def _next_boundary(self, after_ms: int) -> int:
    """The first window end or window expiry on the grid after a time."""
    next_end = (after_ms // self._size + 1) * self._size
    next_expiry = ((after_ms - self._lateness) // self._size + 1) * (self._size) + self._lateness
    return min(next_end, next_expiry)

  def _arm(self, fire, shard: _ShardState) -> None:
    clock = shard.clock
    if clock is None:
      # No timer has fired for this shard yet: one wake-up at the end of its
      # first window tells it where the watermark is.
      starts = [s for k in shard.keys.values() for s in k.windows]
      if starts:
        self._event_time.set(fire, min(starts) + self._size, FIRST_TAG)
      return
    if clock >= self._end_of_input_ms:
      return  # the input has ended: nothing more to judge
    if not shard.keys:
      # All keys forgotten: the ticks go on (the clock must keep judging
      # their late events), until the input ends.
      self._event_time.set(fire, self._end_of_input_ms, END_TAG)
    boundary = clock
    for _ in range(TICKS_AHEAD):
      boundary = self._next_boundary(boundary)
      if shard.armed_through is not None and boundary <= shard.armed_through:
        continue
      self._event_time.set(fire, boundary, str(shard.ticks % TICKS_AHEAD))
      shard.ticks += 1
      shard.armed_through = boundary


class WindowedCombinePerKey(beam.PTransform):
  """Fixed event-time windows per key, combined with a CombineFn, with
  allowed lateness and a late side output.

  Input: PCollection[V] in the global window; `key_fn(V)` is its key and
  `event_time_ms(V)` its event time (epoch ms), its timestamp too.
  `combine_fn`'s accumulators are kept in state as JSON values
  (transforms/state_coders.py): numbers, strings, lists. Each
  bundle's elements are batched per shard of their key
  (transforms/batching.py, transforms/sharding.py) before the stateful step.
  Outputs (a DoOutputsTuple):
    main: PCollection[WindowPane] with `result` = combine_fn's output. With
      `early_firing`, EARLY panes of the open window, at most one
      per that much processing time and only after new elements (the
      figures so far; a runner without processing-time timers, like the
      local runner outside TestStream, fires none); one ON_TIME pane when
      the watermark passes the window end, then one LATE pane per batch of
      elements that arrives within allowed lateness; panes accumulate,
      `pane_index` orders them, so the last pane of a (key, window) counts
      every element accepted into it.
      A LATE pane also carries the result of the window's previous pane
      (`previous`) and, with `element_id`, the ids of the elements it
      added (`added`).
    `late`: PCollection[LateArrival], elements that arrived after their
      window's end + allowed lateness.
    `counted` (only if `counted`, which needs `element_id`):
      PCollection[CountedElement], each accepted element with the first
      pane that counts it.
  Conservation: each input element is in the last pane of exactly one
  (key, window), or once in `late`.
  """

  def __init__(
    self,
    combine_fn: beam.CombineFn,
    key_fn: Callable[[Any], str],
    event_time_ms: Callable[[Any], int],
    window_size: Duration,
    allowed_lateness: Duration,
    key_idle_ttl: Duration,
    metrics_namespace: str,
    max_out_of_orderness: Duration = Duration(0),
    early_firing: Duration = Duration(0),
    processing_clock: Callable[[], Timestamp] = Timestamp.now,
    shards: int = DEFAULT_STATE_SHARDS,
    element_id: Optional[Callable[[Any], str]] = None,
    counted: bool = False,
  ):
    super().__init__()
    if counted and element_id is None:
      raise ValueError('the counted output needs an element id')
    self._key_fn = key_fn
    self._outputs = (LATE, COUNTED) if counted else (LATE,)
    self._shards = shards
    self._event_time_ms = event_time_ms
    self._fn = _WindowedCombineFn(
      combine_fn,
      key_fn,
      event_time_ms,
      checked_millis(window_size, 'window size', zero_ok=False),
      checked_millis(allowed_lateness, 'allowed lateness', zero_ok=True),
      checked_millis(key_idle_ttl, 'key idle TTL', zero_ok=True),
      checked_millis(max_out_of_orderness, 'max out-of-orderness', zero_ok=True),
      metrics_namespace,
      checked_millis(early_firing, 'early firing', zero_ok=True),
      processing_clock,
      element_id=element_id,
      counted=counted,
    )

  def expand(self, pcoll):
    key_fn, shards = self._key_fn, self._shards
    return (
      pcoll
      | 'BatchPerShard'
      >> BatchPerKey(lambda v: shard_of(key_fn(v), shards), self._event_time_ms, int)
      | 'Combine' >> beam.ParDo(self._fn).with_outputs(*self._outputs, main='panes')
    )


AFTER_WINDOW_EXPIRY = 'after_window_expiry'


def to_late_event(
  source: str, arrival: LateArrival, event_id: str, reason: str = AFTER_WINDOW_EXPIRY
) -> LateEvent:
  """The late-events table row for a late arrival of a NamedTuple record:
  `record` is the record's JSON (sorted keys) without its `raw` field,
  what a reprocessing run folds in; `raw` is the record's `raw` (what the
  producer sent: OfferedCall), or that JSON for a record that keeps none
  (or whose source is unknown)."""
  fields = arrival.value._asdict()
  raw = fields.pop('raw', None)
  record = json.dumps(fields, sort_keys=True)
  return LateEvent(
    source=source,
    event_id=event_id,
    key=arrival.key,
    event_timestamp=arrival.event_timestamp,
    window_start=arrival.window_start,
    window_end=arrival.window_end,
    watermark=arrival.watermark,
    reason=reason,
    raw=raw or record,
    record=record,
  )
