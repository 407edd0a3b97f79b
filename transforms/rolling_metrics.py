"""ComputeRollingMetrics: abandon statistics per queue and channel over the
rolling 15, 30 and 60 minutes ending at each window end.

Input: the AbandonMetrics panes the AbandonRate step emits
(transforms/abandon_rate.py). Their element timestamps do not tell event
time (an ON_TIME pane is stamped at its timer, a LATE one at the late
call, an EARLY one at processing time), so this step reads event time from
the records' windows only.

The rules, which the reference (testing/reference/spans.py) follows on its
own:
- Key: the natural key (queue_id, channel); its state is kept in the
  shard `shard_of('queue_id|channel', shards)` (transforms/sharding.py):
  one state cell per shard, mapping each of its keys to the key's windows
  and clock, and one event-time timer per shard, armed at the earliest
  expiry of any window of the shard and armed again after it fires. A
  bundle's panes of a shard are one batch (one state read and write).
- EARLY panes are not final and are ignored (counted in
  `early_panes_ignored`). Of the other panes of a window the latest (highest
  pane_index) counts; one not above the pane kept changes nothing (counted
  in `stale_panes`).
- A row exists for each window with a counted pane, for each span, ending
  at that window's end E: the windows whose start is in [E - span, E)
  (RollingMetrics). A pane that changes window W re-emits the rows of
  every span containing W (E - span <= W.start < E) whose E is the end of
  a window the key has a counted pane for; the rows a batch of panes (one
  bundle's panes of the key) changes are emitted once, after the batch, in
  span then span_end order (keys of a shard's batch one after the other),
  each timestamped at its span_end.
- A span is a whole number of windows: a pane whose window length does not
  divide every span, like a pane `span_counts.pane_problem` refuses, goes
  to `dead_letters` (counted in `rejected_panes`).
- Bounded state: a window expires at its end + the longest span +
  `allowed_lateness`, when no pane can need it any more; the shard's timer
  firing at a time drops every window of the shard expired by then
  (counted in `windows_dropped`) and removes a key left with none. The
  latest expiry of a key's windows dropped so far is the key's clock (a
  lower bound of the watermark; none again once the key is removed): a
  pane whose window ended `allowed_lateness` or more before it (which
  AbandonRate, routing such calls to its late events, never emits with
  the same lateness) is ignored, counted in `expired_panes`:
  the windows its spans need may be gone. `windows_held` counts windows in
  and out of state, so a drained job leaves it at 0. Like every event-time
  decision of the job, timers run on the watermark delayed by
  `max_out_of_orderness` (transforms/event_time.py).

State format `rolling metrics` v1 (transforms/span_counts.py,
SpanShardLog): a head and a log of its keys' changes per shard.
"""

import re
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
  BagStateSpec,
  ReadModifyWriteStateSpec,
  TimerSpec,
  on_timer,
)
from apache_beam.utils.timestamp import Duration, Timestamp

from options.config import checked_millis
from transforms.batching import BatchPerKey
from transforms.change_log import InstanceCopies
from transforms.event_time import DelayedClock, at_event_time
from transforms.records import ROLLING_SPANS, AbandonMetrics, DeadLetter, RollingMetrics
from transforms.sharding import DEFAULT_STATE_SHARDS, shard_of
from transforms.span_counts import (
  DEAD_LETTERS,
  SpanShard,
  SpanShardLog,
  WindowCounts,
  counted_windows_from_plain,
  counted_windows_to_plain,
  is_newer,
  pane_problem,
  rejected_pane,
  span_columns,
  span_shard_key,
  window_counts,
)
from transforms.windowing import EARLY_PANE

# Dead-letter reason of a pane whose window does not fit the spans.
WINDOW_NOT_IN_SPAN = 'window_does_not_divide_span'
_SPAN_NAME = re.compile(r'^([1-9][0-9]*)m$')


def span_millis(span: str) -> int:
  """The length of a rolling span named in ROLLING_SPANS ('15m': 900000
  ms); ValueError naming the known spans for any other name."""
  match = _SPAN_NAME.match(span)
  if span not in ROLLING_SPANS or not match:
    raise ValueError(f'unknown rolling span {span!r}; known: {", ".join(ROLLING_SPANS)}')
  return int(match.group(1)) * 60_000


class _RollingState:
  """One key's counted windows by start, and its clock: the latest expiry
  of its windows dropped so far (ms of delayed event time), None before
  any."""

  __slots__ = ('clock', 'windows')

  def __init__(self):
    self.clock: Optional[int] = None
    self.windows: Dict[int, WindowCounts] = {}


def _key_to_plain(held: _RollingState) -> list:
  return counted_windows_to_plain(held.clock, held.windows)


def _key_from_plain(plain: list) -> _RollingState:
  held = _RollingState()
  held.clock, held.windows = counted_windows_from_plain(plain)
  return held


# A key's state, format v1: [clock or null, [[window start, end, pane
# index, [counts in COUNT_FIELDS order], queue name, abandon rate
# definition, service level definition], ...]], in the shard's log
# (transforms/span_counts.py SpanShardLog).
ROLLING_LOG = SpanShardLog('rolling metrics', _key_to_plain, _key_from_plain)


class _RollingMetricsFn(beam.DoFn):
  HEAD = ReadModifyWriteStateSpec('rolling_head', ROLLING_LOG.head_coder)
  KEYS = BagStateSpec('rolling_keys', ROLLING_LOG.keys_coder)
  EXPIRY = TimerSpec('expiry', TimeDomain.WATERMARK)

  def __init__(
    self,
    spans: Sequence[str],
    allowed_lateness_ms: int,
    max_out_of_orderness_ms: int,
    metrics_namespace: str,
    processing_clock: Callable[[], Timestamp],
  ):
    self._spans = [(span, span_millis(span)) for span in spans]
    self._lateness = allowed_lateness_ms
    # How long after its end a window may still be summed into a span.
    self._kept_for = max(ms for _, ms in self._spans) + allowed_lateness_ms
    self._event_time = DelayedClock(max_out_of_orderness_ms)
    self._namespace = metrics_namespace
    self._processing_clock = processing_clock
    self._early_ignored = Metrics.counter(metrics_namespace, 'early_panes_ignored')
    self._stale = Metrics.counter(metrics_namespace, 'stale_panes')
    self._expired = Metrics.counter(metrics_namespace, 'expired_panes')
    self._rejected = Metrics.counter(metrics_namespace, 'rejected_panes')
    self._dropped = Metrics.counter(metrics_namespace, 'windows_dropped')
    self._held = Metrics.counter(metrics_namespace, 'windows_held')
    self._copies = InstanceCopies()

  def process(
    self,
    batch: Tuple[int, List[AbandonMetrics]],
    head_state=beam.DoFn.StateParam(HEAD),
    keys_state=beam.DoFn.StateParam(KEYS),
    expiry=beam.DoFn.TimerParam(EXPIRY),
  ) -> Iterator:
    shard_id, panes = batch
    shard = ROLLING_LOG.read(self._copies, shard_id, head_state, keys_state) or SpanShard()
    # Per key, (span position, span end) of the rows the batch changes.
    changed: Dict[Tuple[str, str], Set[Tuple[int, int]]] = {}
    # The earliest expiry of the windows the batch adds.
    earliest: Optional[int] = None
    for metrics in panes:
      if metrics.pane_timing == EARLY_PANE:
        self._early_ignored.inc()
        continue
      problem = pane_problem(metrics) or self._span_problem(metrics)
      if problem is not None:
        self._rejected.inc()
        now_ms = self._processing_clock().micros // 1000
        yield beam.pvalue.TaggedOutput(
          DEAD_LETTERS, rejected_pane(metrics, self._namespace, *problem, now_ms)
        )
        continue
      pane = window_counts(metrics)
      key = (metrics.queue_id, metrics.channel)
      held = shard.keys.get(key)
      if held is None:
        held = _RollingState()
      elif held.clock is not None and pane.window_end + self._lateness <= held.clock:
        self._expired.inc()
        continue
      kept = held.windows.get(pane.window_start)
      if not is_newer(pane, kept):
        self._stale.inc()
        continue
      if kept is None:
        self._held.inc()
        expires = pane.window_end + self._kept_for
        earliest = expires if earliest is None else min(earliest, expires)
      held.windows[pane.window_start] = pane
      shard.keys[key] = held
      shard.changed.add(key)
      ends = [w.window_end for w in held.windows.values()]
      key_changed = changed.setdefault(key, set())
      for position, (_, span_ms) in enumerate(self._spans):
        start = pane.window_start
        key_changed.update((position, end) for end in ends if start < end <= start + span_ms)
    if not changed:
      ROLLING_LOG.unchanged(self._copies, shard_id, shard)
      return
    # Windows are only added here: the shard's earliest expiry moves only
    # to an earlier window's.
    if earliest is not None and (shard.armed_at is None or earliest < shard.armed_at):
      shard.armed_at = earliest
      self._event_time.set(expiry, earliest)
    ROLLING_LOG.write(self._copies, shard_id, shard, head_state, keys_state)
    for key in sorted(changed):
      queue_id, channel = key
      held = shard.keys[key]
      for position, end in sorted(changed[key]):
        row = self._row(queue_id, channel, position, end, held)
        yield at_event_time(row, end)

  @on_timer(EXPIRY)
  def on_expiry(
    self,
    fired=beam.DoFn.TimestampParam,
    shard_id=beam.DoFn.KeyParam,
    head_state=beam.DoFn.StateParam(HEAD),
    keys_state=beam.DoFn.StateParam(KEYS),
    expiry=beam.DoFn.TimerParam(EXPIRY),
  ) -> None:
    shard = ROLLING_LOG.read(self._copies, shard_id, head_state, keys_state)
    if shard is None:
      return  # every window went at an earlier timer
    fired_ms = self._event_time.fired_ms(fired)
    earliest: Optional[int] = None
    for key in list(shard.keys):
      held = shard.keys[key]
      due = []
      for start, window in held.windows.items():
        expires = window.window_end + self._kept_for
        if expires <= fired_ms:
          due.append(start)
          # As if each window had its own timer: the key's clock is the
          # latest expiry of its windows dropped.
          held.clock = expires if held.clock is None else max(held.clock, expires)
        elif earliest is None or expires < earliest:
          earliest = expires
      for start in due:
        del held.windows[start]
      if due:
        shard.changed.add(key)
      self._dropped.inc(len(due))
      self._held.dec(len(due))
      if not held.windows:
        del shard.keys[key]
    shard.armed_at = earliest
    if earliest is not None:
      self._event_time.set(expiry, earliest)
    ROLLING_LOG.write(self._copies, shard_id, shard, head_state, keys_state)

  def _span_problem(self, metrics: AbandonMetrics) -> Optional[Tuple[str, str]]:
    length = metrics.window_end - metrics.window_start
    for span, span_ms in self._spans:
      if span_ms % length:
        return WINDOW_NOT_IN_SPAN, f'a {length} ms window does not divide the {span} span'
    return None

  def _row(
    self, queue_id: str, channel: str, position: int, end: int, held: _RollingState
  ) -> RollingMetrics:
    span, span_ms = self._spans[position]
    start = end - span_ms
    windows = [w for w in held.windows.values() if start <= w.window_start < end]
    return RollingMetrics(
      queue_id=queue_id,
      channel=channel,
      span=span,
      span_start=start,
      span_end=end,
      **span_columns(windows),
    )


def _window_end(metrics: AbandonMetrics) -> int:
  return metrics.window_end


class ComputeRollingMetrics(beam.PTransform):
  """Rolling abandon statistics per queue and channel.

  Input: PCollection[AbandonMetrics], the panes of the AbandonRate step
  (EARLY, ON_TIME and LATE), in the global window.
  Outputs (dict):
    `rolling_metrics`: PCollection[RollingMetrics], for each span of
      `spans` (a subset of ROLLING_SPANS) and each window with an ON_TIME or
      LATE pane, the span ending at the window's end, re-emitted whenever a
      newer pane changes one of its windows; `panes_counted` grows with
      each, so sinks keep the latest.
    `dead_letters`: PCollection[DeadLetter], panes that cannot be counted
      (reasons `bad_window`, `unknown_metric_definition`,
      `window_does_not_divide_span`), source `metrics_namespace`.
  `allowed_lateness` and `max_out_of_orderness`: the AbandonRate step's,
  so a window is kept as long as a pane of a window of its spans can come.
  `shards`: how many shard keys the state is spread over, the job's
  `--max_parallelism` (transforms/sharding.py). The rules are in the
  module docstring. `processing_clock`: the
  `received_at` of dead letters.
  """

  def __init__(
    self,
    *,
    spans: Sequence[str] = ROLLING_SPANS,
    allowed_lateness: Duration,
    max_out_of_orderness: Duration = Duration(0),
    metrics_namespace: str = 'rolling_metrics',
    processing_clock: Callable[[], Timestamp] = Timestamp.now,
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    if shards < 1:
      raise ValueError(f'shards must be at least 1, got {shards}')
    self._shards = shards
    if not spans or len(set(spans)) != len(spans):
      raise ValueError(f'spans must be distinct and at least one, got {list(spans)}')
    for span in spans:
      span_millis(span)
    self._fn = _RollingMetricsFn(
      list(spans),
      checked_millis(allowed_lateness, 'allowed lateness', zero_ok=True),
      checked_millis(max_out_of_orderness, 'max out-of-orderness', zero_ok=True),
      metrics_namespace,
      processing_clock,
    )

  def expand(self, panes):
    shards = self._shards
    outputs = (
      panes
      | 'BatchPerShard'
      >> BatchPerKey(lambda m: shard_of(span_shard_key(m), shards), _window_end, int)
      | 'Rolling'
      >> beam.ParDo(self._fn)
      .with_output_types(RollingMetrics, **{DEAD_LETTERS: DeadLetter})
      .with_outputs(DEAD_LETTERS, main='rolling_metrics')
    )
    return {'rolling_metrics': outputs.rolling_metrics, DEAD_LETTERS: outputs[DEAD_LETTERS]}
