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
  counts in the day it starts in, whatever its end. State is kept in the
  shard of (queue_id, channel), `shard_of('queue_id|channel', shards)` as
  in transforms/rolling_metrics.py: one state cell per shard, mapping each
  (queue_id, channel) of it to its days, and one event-time timer per
  shard, armed at the earliest clearing time of any day of the shard and
  armed again after it fires. A bundle's panes of a shard are one batch.
- Of the panes of a window the latest (highest pane_index) counts; one not
  above the pane kept changes nothing (counted in `stale_panes`).
- After each batch of panes (one bundle's panes of the key) that changes
  the day, the day's row (DailyMetrics; the days of a shard's batch one
  after the other), timestamped at its as_of:
  `day_start` and `day_end` the first instants (epoch ms) of the date and of
  the next (23 or 25 hours apart on a DST change day), `as_of` the end of
  the latest window counted.
- Bounded state: the day's state is cleared (counted in `days_closed`)
  at day_end (or the end of the day's last window if later) +
  `allowed_lateness`, after which AbandonRate, with the same lateness,
  emits no pane of the day's windows: the shard's timer firing at a time
  clears every day of the shard due by then, and removes a (queue_id,
  channel) left with no day. A pane that came after all the same would
  start the day over. Timers run on the watermark delayed by
  `max_out_of_orderness` (transforms/event_time.py).
- A pane `span_counts.pane_problem` refuses goes to `dead_letters`
  (counted in `rejected_panes`).

State format `daily metrics` v1 (transforms/span_counts.py,
SpanShardLog): a head and a log of its keys' changes per shard.
"""

import datetime
import functools
import zoneinfo
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple

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
from transforms.records import AbandonMetrics, DailyMetrics, DeadLetter
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
  """One day's (queue, channel, date) counted windows by start, and the
  time it is cleared at (ms of delayed event time)."""

  __slots__ = ('windows', 'clear_at')

  def __init__(self):
    self.windows: Dict[int, WindowCounts] = {}
    self.clear_at: Optional[int] = None


def _days_to_plain(days: Dict[str, _DayState]) -> dict:
  return {date: counted_windows_to_plain(day.clear_at, day.windows) for date, day in days.items()}


def _days_from_plain(plain: dict) -> Dict[str, _DayState]:
  days = {}
  for date, counted in plain.items():
    day = days[date] = _DayState()
    day.clear_at, day.windows = counted_windows_from_plain(counted)
  return days


# A key's state, format v1: {local date: [clear at, [[window start, end,
# pane index, [counts in COUNT_FIELDS order], queue name, abandon rate
# definition, service level definition], ...]]}, in the shard's log
# (transforms/span_counts.py SpanShardLog).
DAY_LOG = SpanShardLog('daily metrics', _days_to_plain, _days_from_plain)


@functools.lru_cache(maxsize=4096)
def _window_date(timezone: str, window_start: int) -> str:
  """local_date of a window start; cached: windows are few and each has
  many panes."""
  return local_date(timezone, window_start)


class _DailyMetricsFn(beam.DoFn):
  HEAD = ReadModifyWriteStateSpec('day_head', DAY_LOG.head_coder)
  KEYS = BagStateSpec('day_keys', DAY_LOG.keys_coder)
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
    self._copies = InstanceCopies()

  def process(
    self,
    batch: Tuple[int, List[AbandonMetrics]],
    head_state=beam.DoFn.StateParam(HEAD),
    keys_state=beam.DoFn.StateParam(KEYS),
    clear=beam.DoFn.TimerParam(CLEAR),
  ) -> Iterator:
    shard_id, panes = batch
    shard = DAY_LOG.read(self._copies, shard_id, head_state, keys_state) or SpanShard()
    # (queue_id, channel, date) of the days the batch changes.
    changed: Set[Tuple[str, str, str]] = set()
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
      key = (metrics.queue_id, metrics.channel)
      date = _window_date(self._timezone, pane.window_start)
      days = shard.keys.get(key)
      day = days.get(date) if days is not None else None
      kept = day.windows.get(pane.window_start) if day is not None else None
      if not is_newer(pane, kept):
        self._stale.inc()
        continue
      if kept is None:
        self._held.inc()
      if day is None:
        if days is None:
          days = shard.keys[key] = {}
        day = days[date] = _DayState()
      day.windows[pane.window_start] = pane
      changed.add((*key, date))
      shard.changed.add(key)
    if not changed:
      DAY_LOG.unchanged(self._copies, shard_id, shard)
      return
    rows = []
    for queue_id, channel, date in sorted(changed):
      day = shard.keys[(queue_id, channel)][date]
      day_start, day_end = day_bounds(self._timezone, date)
      as_of = max(w.window_end for w in day.windows.values())
      day.clear_at = max(day_end, as_of) + self._lateness
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
      rows.append(at_event_time(row, as_of))
    # A day's clearing time only grows: the earliest of the shard's may move
    # either way.
    self._arm(clear, shard)
    DAY_LOG.write(self._copies, shard_id, shard, head_state, keys_state)
    yield from rows

  @on_timer(CLEAR)
  def on_clear(
    self,
    fired=beam.DoFn.TimestampParam,
    shard_id=beam.DoFn.KeyParam,
    head_state=beam.DoFn.StateParam(HEAD),
    keys_state=beam.DoFn.StateParam(KEYS),
    clear=beam.DoFn.TimerParam(CLEAR),
  ) -> None:
    shard = DAY_LOG.read(self._copies, shard_id, head_state, keys_state)
    if shard is None:
      return
    fired_ms = self._event_time.fired_ms(fired)
    for key in list(shard.keys):
      days = shard.keys[key]
      for date in [d for d, day in days.items() if day.clear_at <= fired_ms]:
        self._days_closed.inc()
        self._held.dec(len(days.pop(date).windows))
        shard.changed.add(key)
      if not days:
        del shard.keys[key]
    shard.armed_at = None
    if shard.keys:
      self._arm(clear, shard)
    DAY_LOG.write(self._copies, shard_id, shard, head_state, keys_state)

  def _arm(self, clear, shard: SpanShard) -> None:
    """Arms the shard's timer at its days' earliest clearing time, unless
    armed there."""
    earliest = min(day.clear_at for days in shard.keys.values() for day in days.values())
    if earliest != shard.armed_at:
      shard.armed_at = earliest
      self._event_time.set(clear, earliest)


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
  `shards`: how many shard keys the state is spread over, the job's
  `--max_parallelism` (transforms/sharding.py). The rules are in the
  module docstring. `processing_clock`: the
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
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    time_zone(timezone)
    if shards < 1:
      raise ValueError(f'shards must be at least 1, got {shards}')
    self._shards = shards
    self._timezone = timezone
    self._fn = _DailyMetricsFn(
      timezone,
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
      >> BatchPerKey(lambda m: shard_of(span_shard_key(m), shards), lambda m: m.window_end, int)
      | 'Daily'
      >> beam.ParDo(self._fn)
      .with_output_types(DailyMetrics, **{DEAD_LETTERS: DeadLetter})
      .with_outputs(DEAD_LETTERS, main='daily_metrics')
    )
    return {'daily_metrics': outputs.daily_metrics, DEAD_LETTERS: outputs[DEAD_LETTERS]}
