"""ComputeDailyMetrics: abandon statistics per queue and channel since the
contact center's local midnight (the day so far).

Input: the AbandonMetrics panes the AbandonRate step emits
(transforms/abandon_rate.py), EARLY ones included: the day so far is what
the open window shows too. Event time is read from the records' windows,
never from the element timestamps (see transforms/rolling_metrics.py).

The rules, which the reference (testing/reference/spans.py) follows on its
own:
- Key: (queue_id, channel, local_date), local_date the date ('YYYY-MM-DD')
  in `timezone` (an IANA name, zoneinfo) of the window's start: a window
  counts in the day it starts in, whatever its end.
- Of the panes of a window the latest (highest pane_index) counts; one not
  above the pane kept changes nothing (counted in `stale_panes`).
- After each batch of panes (one bundle's panes of the key) that changes
  the day, the day's row (DailyMetrics), timestamped at its as_of:
  `day_start` and `day_end` the first instants (epoch ms) of the date and of
  the next (23 or 25 hours apart on a DST change day), `as_of` the end of
  the latest window counted.
- Bounded state: the key's state is cleared (counted in `days_closed`) by
  an event-time timer at day_end (or the end of the day's last window if
  later) + `allowed_lateness`, after which AbandonRate, with the same
  lateness, emits no pane of the day's windows. A pane that came after all
  the same would start the day over. Timers run on the watermark delayed
  by `max_out_of_orderness` (transforms/event_time.py).
- A pane `span_counts.pane_problem` refuses goes to `dead_letters`
  (counted in `rejected_panes`).
"""

import datetime
import functools
import zoneinfo
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp

from options.config import checked_millis
from transforms.batching import BatchPerKey
from transforms.event_time import DelayedClock, at_event_time
from transforms.records import AbandonMetrics, DailyMetrics, DeadLetter
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


def time_zone(name: str) -> zoneinfo.ZoneInfo:
  """The IANA time zone `name`; ValueError naming it when unknown."""
  try:
    return zoneinfo.ZoneInfo(name)
  except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError, OSError):
    # OSError: a directory of the database, e.g. "Europe".
    raise ValueError(
      f'unknown time zone {name!r}: expected an IANA name such as Europe/Berlin'
    ) from None


def local_date(timezone: str, epoch_ms: int) -> str:
  """The date ('YYYY-MM-DD') in `timezone` at an instant (epoch ms)."""
  return datetime.datetime.fromtimestamp(epoch_ms / 1000, time_zone(timezone)).date().isoformat()


@functools.lru_cache(maxsize=64)
def day_bounds(timezone: str, date: str) -> Tuple[int, int]:
  """(day_start, day_end) of a local date in `timezone`, epoch ms: the
  first instants of the date and of the next. Cached: a job sees few dates."""
  day = datetime.date.fromisoformat(date)
  return _first_instant(timezone, day), _first_instant(timezone, day + datetime.timedelta(days=1))


def _first_instant(timezone: str, day: datetime.date) -> int:
  """The first instant whose local date is `day`: local midnight, or,
  where a DST change skips midnight, the change itself. Midnight read
  with the offset before (fold 0) and after (fold 1) a change; the
  earliest of those that falls on `day`."""
  zone = time_zone(timezone)
  candidates = []
  for fold in (0, 1):
    midnight = datetime.datetime.combine(day, datetime.time(0, fold=fold), tzinfo=zone)
    instant_ms = int(midnight.timestamp() * 1000)
    if datetime.datetime.fromtimestamp(instant_ms / 1000, zone).date() == day:
      candidates.append(instant_ms)
  return min(candidates)


class _DayState:
  """One key's (queue, channel, date) counted windows by start, and the
  time its clearing timer is armed at (ms of delayed event time)."""

  __slots__ = ('windows', 'clear_at')

  def __init__(self):
    self.windows: Dict[int, WindowCounts] = {}
    self.clear_at: Optional[int] = None


DAY_STATE_CODER = counted_windows_coder('daily metrics', _DayState, 'clear_at')


class _DailyMetricsFn(beam.DoFn):
  STATE = ReadModifyWriteStateSpec('day_state', DAY_STATE_CODER)
  CLEAR = TimerSpec('clear', TimeDomain.WATERMARK)

  def __init__(
    self,
    timezone: str,
    allowed_lateness_ms: int,
    max_out_of_orderness_ms: int,
    metrics_namespace: str,
    processing_clock: Callable[[], Timestamp],
  ):
    self._timezone = timezone
    self._lateness = allowed_lateness_ms
    self._event_time = DelayedClock(max_out_of_orderness_ms)
    self._namespace = metrics_namespace
    self._processing_clock = processing_clock
    self._stale = Metrics.counter(metrics_namespace, 'stale_panes')
    self._rejected = Metrics.counter(metrics_namespace, 'rejected_panes')
    self._days_closed = Metrics.counter(metrics_namespace, 'days_closed')
    self._held = Metrics.counter(metrics_namespace, 'windows_held')

  def process(
    self,
    batch: Tuple[Tuple[str, str, str], List[AbandonMetrics]],
    state=beam.DoFn.StateParam(STATE),
    clear=beam.DoFn.TimerParam(CLEAR),
  ) -> Iterator:
    (queue_id, channel, date), panes = batch
    day = state.read() or _DayState()
    changed = False
    for metrics in panes:
      problem = pane_problem(metrics)
      if problem is not None:
        self._rejected.inc()
        now_ms = self._processing_clock().micros // 1000
        yield beam.pvalue.TaggedOutput(
          DEAD_LETTERS, rejected_pane(metrics, self._namespace, *problem, now_ms)
        )
        continue
      pane = window_counts(metrics)
      kept = day.windows.get(pane.window_start)
      if not is_newer(pane, kept):
        self._stale.inc()
        continue
      if kept is None:
        self._held.inc()
      day.windows[pane.window_start] = pane
      changed = True
    if not changed:
      return
    day_start, day_end = day_bounds(self._timezone, date)
    as_of = max(w.window_end for w in day.windows.values())
    clear_at = max(day_end, as_of) + self._lateness
    if clear_at != day.clear_at:
      day.clear_at = clear_at
      self._event_time.set(clear, clear_at)
    state.write(day)
    row = DailyMetrics(
      queue_id=queue_id,
      channel=channel,
      local_date=date,
      timezone=self._timezone,
      day_start=day_start,
      day_end=day_end,
      as_of=as_of,
      **span_columns(day.windows.values()),
    )
    yield at_event_time(row, as_of)

  @on_timer(CLEAR)
  def on_clear(self, state=beam.DoFn.StateParam(STATE)) -> None:
    day = state.read()
    if day is None:
      return
    self._days_closed.inc()
    self._held.dec(len(day.windows))
    state.clear()


class ComputeDailyMetrics(beam.PTransform):
  """Abandon statistics per queue and channel since local midnight.

  Input: PCollection[AbandonMetrics], the panes of the AbandonRate step
  (EARLY, ON_TIME and LATE), in the global window.
  Outputs (dict):
    `daily_metrics`: PCollection[DailyMetrics], the row of a (queue,
      channel, local date) after each batch of panes that changes it (a
      newer pane of one of its windows, EARLY ones included);
      `panes_counted` grows with each, so sinks keep the latest.
    `dead_letters`: PCollection[DeadLetter], panes that cannot be counted
      (reasons `bad_window`, `unknown_metric_definition`), source
      `metrics_namespace`.
  `timezone`: an IANA name (ValueError naming it here when unknown).
  `allowed_lateness` and `max_out_of_orderness`: the AbandonRate step's.
  The rules are in the module docstring. `processing_clock`: the
  `received_at` of dead letters.
  """

  def __init__(
    self,
    *,
    timezone: str,
    allowed_lateness: Duration,
    max_out_of_orderness: Duration = Duration(0),
    metrics_namespace: str = 'daily_metrics',
    processing_clock: Callable[[], Timestamp] = Timestamp.now,
  ):
    super().__init__()
    time_zone(timezone)
    self._timezone = timezone
    self._fn = _DailyMetricsFn(
      timezone,
      checked_millis(allowed_lateness, 'allowed lateness', zero_ok=True),
      checked_millis(max_out_of_orderness, 'max out-of-orderness', zero_ok=True),
      metrics_namespace,
      processing_clock,
    )

  def expand(self, panes):
    timezone = self._timezone

    def day_key(metrics: AbandonMetrics) -> Tuple[str, str, str]:
      return metrics.queue_id, metrics.channel, local_date(timezone, metrics.window_start)

    outputs = (
      panes
      | 'BatchPerDay' >> BatchPerKey(day_key, lambda m: m.window_end, Tuple[str, str, str])
      | 'Daily'
      >> beam.ParDo(self._fn)
      .with_output_types(DailyMetrics, **{DEAD_LETTERS: DeadLetter})
      .with_outputs(DEAD_LETTERS, main='daily_metrics')
    )
    return {'daily_metrics': outputs.daily_metrics, DEAD_LETTERS: outputs[DEAD_LETTERS]}
