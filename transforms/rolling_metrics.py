"""ComputeRollingMetrics: abandon statistics per queue and channel over the
rolling 15, 30 and 60 minutes ending at each window end.

Input: the AbandonMetrics panes the AbandonRate step emits
(transforms/abandon_rate.py). Their element timestamps do not tell event
time (an ON_TIME pane is stamped at its timer, a LATE one at the late
call, an EARLY one at processing time), so this step reads event time from
the records' windows only.

The rules, which the reference (testing/reference/spans.py) follows on its
own:
- Key: the natural key (queue_id, channel); no shards (a few hundred keys).
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
  span then span_end order, each timestamped at its span_end.
- A span is a whole number of windows: a pane whose window length does not
  divide every span, like a pane `span_counts.pane_problem` refuses, goes
  to `dead_letters` (counted in `rejected_panes`).
- Bounded state: each window arms an event-time timer at its end + the
  longest span + `allowed_lateness`, when no pane can need it any more; a
  firing timer drops every window due (counted in `windows_dropped`) and
  clears a key left with none. Its time is the key's clock (a lower bound
  of the watermark): a pane whose window ended `allowed_lateness` or more
  before it (which AbandonRate, routing such calls to its late events, never
  emits with the same lateness) is ignored, counted in `expired_panes`:
  the windows its spans need may be gone. `windows_held` counts windows in
  and out of state, so a drained job leaves it at 0. Like every event-time
  decision of the job, timers run on the watermark delayed by
  `max_out_of_orderness` (transforms/event_time.py).
"""

import re
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp

from options.config import checked_millis
from transforms.batching import BatchPerKey
from transforms.event_time import DelayedClock, at_event_time
from transforms.records import ROLLING_SPANS, AbandonMetrics, DeadLetter, RollingMetrics
from transforms.span_counts import (
  DEAD_LETTERS,
  WindowCounts,
  counted_windows_coder,
  is_newer,
  pane_problem,
  rejected_pane,
  span_columns,
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
  """One key's counted windows by start, and its clock: the latest
  expiry timer that fired (ms of delayed event time), None before any."""

  __slots__ = ('clock', 'windows')

  def __init__(self):
    self.clock: Optional[int] = None
    self.windows: Dict[int, WindowCounts] = {}


ROLLING_STATE_CODER = counted_windows_coder('rolling metrics', _RollingState, 'clock')


class _RollingMetricsFn(beam.DoFn):
  STATE = ReadModifyWriteStateSpec('rolling_state', ROLLING_STATE_CODER)
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

  def process(
    self,
    batch: Tuple[Tuple[str, str], List[AbandonMetrics]],
    state=beam.DoFn.StateParam(STATE),
    expiry=beam.DoFn.TimerParam(EXPIRY),
  ) -> Iterator:
    (queue_id, channel), panes = batch
    held = state.read() or _RollingState()
    # (span position, span end) of the rows the batch changes.
    changed: Set[Tuple[int, int]] = set()
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
      if held.clock is not None and pane.window_end + self._lateness <= held.clock:
        self._expired.inc()
        continue
      kept = held.windows.get(pane.window_start)
      if not is_newer(pane, kept):
        self._stale.inc()
        continue
      if kept is None:
        self._held.inc()
        self._event_time.set(expiry, pane.window_end + self._kept_for, str(pane.window_start))
      held.windows[pane.window_start] = pane
      ends = [w.window_end for w in held.windows.values()]
      for position, (_, span_ms) in enumerate(self._spans):
        start = pane.window_start
        changed.update((position, end) for end in ends if start < end <= start + span_ms)
    if not changed:
      return
    state.write(held)
    for position, end in sorted(changed):
      row = self._row(queue_id, channel, position, end, held)
      yield at_event_time(row, end)

  @on_timer(EXPIRY)
  def on_expiry(self, fired=beam.DoFn.TimestampParam, state=beam.DoFn.StateParam(STATE)) -> None:
    held = state.read()
    if held is None:
      return  # every window went at an earlier timer
    clock = self._event_time.fired_ms(fired)
    held.clock = clock if held.clock is None else max(held.clock, clock)
    due = [s for s, w in held.windows.items() if w.window_end + self._kept_for <= held.clock]
    for start in due:
      del held.windows[start]
    self._dropped.inc(len(due))
    self._held.dec(len(due))
    if held.windows:
      state.write(held)
    else:
      state.clear()

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


def _natural_key(metrics: AbandonMetrics) -> Tuple[str, str]:
  return metrics.queue_id, metrics.channel


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
  The rules are in the module docstring. `processing_clock`: the
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
  ):
    super().__init__()
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
    outputs = (
      panes
      | 'BatchPerQueue' >> BatchPerKey(_natural_key, _window_end, Tuple[str, str])
      | 'Rolling'
      >> beam.ParDo(self._fn)
      .with_output_types(RollingMetrics, **{DEAD_LETTERS: DeadLetter})
      .with_outputs(DEAD_LETTERS, main='rolling_metrics')
    )
    return {'rolling_metrics': outputs.rolling_metrics, DEAD_LETTERS: outputs[DEAD_LETTERS]}
