"""Independent reference for the rolling and since-midnight figures
(transforms/rolling_metrics.py, transforms/daily_metrics.py).

Given AbandonMetrics panes in arrival order, compute in plain Python, with
dicts, the rows each step emits after each pane and the latest row of
every key. It shares no code with the steps: only the records
(transforms/records.py) and the named definitions
(transforms/metric_definitions.py) they both implement. It is the oracle
they are checked against (tests/test_spans_reference.py).

Semantics (the steps' contract):

* A window is (queue_id, channel, window_start). Its latest pane by
  pane_index counts; a pane whose pane_index is not above the one counted
  for its window (older, or a copy) is stale and changes nothing.
* Rolling (key (queue_id, channel)): EARLY panes are ignored. For each span
  (minutes in its name) and each window W with a counted pane, the row
  ending at E = W's end sums the counted windows whose start is in
  [E - span, E). A pane that changes window W emits, per span, the rows of
  every E (an end of a counted window of the key) with
  E - span <= W.start < E, in span then E order.
* Daily (key (queue_id, channel, local date of the window start in the
  time zone)): every pane counts, EARLY ones included; a pane that changes
  the day emits the day's row. day_start: the first instant (ms) whose
  local date is the date, found by bisection over instants (not by
  constructing local midnight); day_end: day_start of the next date;
  as_of: the largest window end counted.
* Counts are summed in ascending window_start order; rates are the
  definitions' ratio rounded half-up to 4 places (0 when the denominator is
  0), by the definitions of the counted window with the largest start ('':
  the defaults); asa_seconds = answered_wait_seconds / (answered_calls -
  answered_wait_unknown_calls), 0 when that is 0; windows: windows counted;
  panes_counted: sum of pane_index + 1; queue_name: the newest window's.

Not modelled: state expiry and dead letters (the steps' own tests cover
them); inputs that respect the lateness never meet them.
"""

from __future__ import annotations

import datetime
import zoneinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from transforms.metric_definitions import (
  ABANDON_RATE_DEFINITIONS,
  DEFAULT_ABANDON_RATE,
  DEFAULT_SERVICE_LEVEL,
  SERVICE_LEVEL_DEFINITIONS,
  Counts,
)
from transforms.records import DailyMetrics, RollingMetrics

SUMMED = (
  'total_calls',
  'abandoned_calls',
  'short_abandoned_calls',
  'answered_calls',
  'flow_out_calls',
  'answered_within_sl',
  'abandoned_within_sl',
  'wait_unknown_calls',
  'answered_wait_unknown_calls',
  'total_wait_seconds',
  'answered_wait_seconds',
)


def _ratio(numerator: int, denominator: int) -> float:
  if not denominator:
    return 0.0
  exact = Decimal(numerator) / Decimal(denominator)
  return float(exact.quantize(Decimal('1.0000'), rounding=ROUND_HALF_UP))


def _summed(panes: List[Any]) -> Dict[str, Any]:
  """The shared columns over the counted panes of a span or a day."""
  panes = sorted(panes, key=lambda p: p.window_start)
  out: Dict[str, Any] = {}
  for name in SUMMED:
    total: Any = 0.0 if name.endswith('seconds') else 0
    for p in panes:
      total += getattr(p, name)
    out[name] = total
  newest = panes[-1]
  ar_name = newest.abandon_rate_definition or DEFAULT_ABANDON_RATE
  sl_name = newest.service_level_definition or DEFAULT_SERVICE_LEVEL
  c = Counts(
    out['total_calls'],
    out['abandoned_calls'],
    out['short_abandoned_calls'],
    out['answered_within_sl'],
    out['abandoned_within_sl'],
  )
  known = out['answered_calls'] - out['answered_wait_unknown_calls']
  out['abandon_rate'] = _ratio(*ABANDON_RATE_DEFINITIONS[ar_name](c))
  out['service_level'] = _ratio(*SERVICE_LEVEL_DEFINITIONS[sl_name](c))
  out['asa_seconds'] = out['answered_wait_seconds'] / known if known > 0 else 0.0
  out['abandon_rate_definition'] = ar_name
  out['service_level_definition'] = sl_name
  out['windows'] = len(panes)
  out['panes_counted'] = sum(p.pane_index + 1 for p in panes)
  out['queue_name'] = newest.queue_name
  return out


class RollingReference:
  """The rolling step fed pane by pane: `emitted` every row in order,
  `rows` the latest per (queue_id, channel, span, span_end)."""

  def __init__(self, spans: Sequence[str] = ('15m', '30m', '60m')):
    self.spans = [(s, int(s[:-1]) * 60_000) for s in spans]
    self.counted: Dict[Tuple[str, str], Dict[int, Any]] = {}
    self.emitted: List[RollingMetrics] = []
    self.rows: Dict[Tuple[str, str, str, int], RollingMetrics] = {}
    self.early_ignored = 0
    self.stale = 0

  def apply(self, pane: Any) -> List[RollingMetrics]:
    if pane.pane_timing == 'EARLY':
      self.early_ignored += 1
      return []
    key = (pane.queue_id, pane.channel)
    windows = self.counted.setdefault(key, {})
    old = windows.get(pane.window_start)
    if old is not None and old.pane_index >= pane.pane_index:
      self.stale += 1
      return []
    windows[pane.window_start] = pane
    out = []
    for span, length in self.spans:
      for end in sorted({w.window_end for w in windows.values()}):
        if end - length <= pane.window_start < end:
          inside = [w for w in windows.values() if end - length <= w.window_start < end]
          row = RollingMetrics(
            queue_id=key[0],
            channel=key[1],
            span=span,
            span_start=end - length,
            span_end=end,
            **_summed(inside),
          )
          out.append(row)
          self.rows[(key[0], key[1], span, end)] = row
    self.emitted.extend(out)
    return out


def local_day(zone: zoneinfo.ZoneInfo, epoch_ms: int) -> datetime.date:
  return (
    datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.timezone.utc).astimezone(zone).date()
  )


def first_instant(zone: zoneinfo.ZoneInfo, day: datetime.date) -> int:
  """The first epoch ms whose local date is `day` or later, by bisection
  between 30 hours either side of `day`'s midnight UTC (every offset is
  within)."""
  utc_midnight = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc)
  low = int(utc_midnight.timestamp() * 1000) - 30 * 3_600_000
  high = low + 60 * 3_600_000
  while low < high:
    mid = (low + high) // 2
    if local_day(zone, mid) >= day:
      high = mid
    else:
      low = mid + 1
  return low


class DailyReference:
  """The daily step fed pane by pane in `timezone`: `emitted` every row in
  order, `rows` the latest per (queue_id, channel, local_date)."""

  def __init__(self, timezone: str):
    self.timezone = timezone
    self.zone = zoneinfo.ZoneInfo(timezone)
    self.counted: Dict[Tuple[str, str, str], Dict[int, Any]] = {}
    self.emitted: List[DailyMetrics] = []
    self.rows: Dict[Tuple[str, str, str], DailyMetrics] = {}
    self.stale = 0

  def bounds(self, date: str) -> Tuple[int, int]:
    day = datetime.date.fromisoformat(date)
    return first_instant(self.zone, day), first_instant(self.zone, day + datetime.timedelta(1))

  def apply(self, pane: Any) -> Optional[DailyMetrics]:
    date = local_day(self.zone, pane.window_start).isoformat()
    key = (pane.queue_id, pane.channel, date)
    windows = self.counted.setdefault(key, {})
    old = windows.get(pane.window_start)
    if old is not None and old.pane_index >= pane.pane_index:
      self.stale += 1
      return None
    windows[pane.window_start] = pane
    start, end = self.bounds(date)
    row = DailyMetrics(
      queue_id=key[0],
      channel=key[1],
      local_date=date,
      timezone=self.timezone,
      day_start=start,
      day_end=end,
      as_of=max(w.window_end for w in windows.values()),
      **_summed(list(windows.values())),
    )
    self.emitted.append(row)
    self.rows[key] = row
    return row


def reference_rolling(panes: Iterable[Any], spans: Sequence[str] = ('15m', '30m', '60m')):
  ref = RollingReference(spans)
  for pane in panes:
    ref.apply(pane)
  return ref


def reference_daily(panes: Iterable[Any], timezone: str) -> DailyReference:
  ref = DailyReference(timezone)
  for pane in panes:
    ref.apply(pane)
  return ref
