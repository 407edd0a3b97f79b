"""The wallboard's numbers, computed from a `Store` (pipelines/dashboard/
stores.py).

In: the result tables of transforms/schema.py. Out: plain dicts and lists
(JSON-ready, times in epoch ms, rates as fractions) for the page:
- `latest_windows`: one tile per queue, its newest window (the row holds
  the highest pane: the sinks upsert one row per (queue, window start));
- `queue_trends`, `channel_volumes`: series aligned on window starts, for
  charts;
- `pattern_alerts`: the newest alerts first;
- `health`: how far each flow's newest window lags behind now, late events
  per reason over the last hour of data and dead letters per reason over
  the last hour;
- `queue_detail`: one queue's windows and late events.

Time ranges ("the last hour") end at the newest window end of the data, not
at the wall clock: a replayed or delayed stream still shows its last hour,
and `health` says how old that is. Rates and service level are the job's
columns (abandoned / offered, answered within the service level / offered).
"""

import hashlib
import json
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence

from pipelines.contact_center import CALL_EVENTS_SOURCE
from pipelines.dashboard.stores import Row, Store
from transforms.schema import (
  ABANDON_METRICS,
  DEAD_LETTERS,
  INTERACTION_VOLUMES,
  LATE_EVENTS,
  PATTERN_ALERTS,
  Table,
)

HOUR_MS = 3_600_000
MAX_TREND_HOURS = 24
MAX_WINDOWS_PER_KEY = 10_000
ALERT_LIMIT = 20
LATE_EVENT_LIMIT = 50

WINDOW_COLUMNS = (
  'queue_id',
  'window_start',
  'window_end',
  'total_calls',
  'abandoned_calls',
  'answered_within_sl',
  'total_wait_seconds',
  'abandon_rate',
  'service_level',
  'pane_index',
  'pane_timing',
)
# Average speed of answer needs the answered calls' wait and their count.
# Until abandon_metrics has both columns, the tiles show the average wait of
# all calls offered (total_wait_seconds / total_calls), labelled 'avg wait';
# once a store has them they are selected and the label becomes 'ASA'.
ASA_COLUMNS = ('answered_wait_seconds', 'answered_calls', 'answered_wait_unknown_calls')
VOLUME_COLUMNS = ('channel', 'window_start', 'window_end', 'volume')
ALERT_COLUMNS = (
  'customer_id',
  'channel',
  'timestamp',
  'failure_count',
  'alert_type',
  'tier',
  'region',
)
LATE_EVENT_COLUMNS = (
  'event_id',
  'key',
  'event_timestamp',
  'window_start',
  'window_end',
  'watermark',
  'reason',
  'raw',
)
# late_events: `watermark` is when the pipeline routed the event (its
# event-time clock then), so "late events of the last hour" filter on it.
LATE_EVENT_TIME_COLUMN = 'watermark'
# dead_letters: `received_at` is when the job rejected the record (processing
# time), so its last hour ends now. Stores written before the column existed
# count all time.
DEAD_LETTER_TIME_COLUMN = 'received_at'


class Thresholds(NamedTuple):
  """SLA thresholds as fractions (0.05 = 5 %)."""

  abandon_rate_warn: float
  abandon_rate_alert: float
  service_level_target: float


def abandon_status(rate: float, thresholds: Thresholds) -> str:
  """'ok', 'warn' or 'alert' for an abandon rate (a fraction)."""
  if rate >= thresholds.abandon_rate_alert:
    return 'alert'
  return 'warn' if rate >= thresholds.abandon_rate_warn else 'ok'


def service_level_status(level: float, thresholds: Thresholds) -> str:
  """'ok' at or above the target, else 'alert'."""
  return 'ok' if level >= thresholds.service_level_target else 'alert'


_SEVERITY = ('ok', 'warn', 'alert')


def _window_row(row: Row, thresholds: Thresholds, has_asa: bool) -> Row:
  """A window of abandon_metrics as the page shows it."""
  offered = row['total_calls']
  if has_asa:
    # ASA over the answered calls whose wait is known (transforms/
    # metric_definitions.py, docs/metric_definitions.md).
    answered = row['answered_calls'] - row['answered_wait_unknown_calls']
    wait = row['answered_wait_seconds'] / answered if answered else None
  else:
    wait = row['total_wait_seconds'] / offered if offered else None
  out = {
    'queue_id': row['queue_id'],
    'window_start': row['window_start'],
    'window_end': row['window_end'],
    'offered': offered,
    'abandoned': row['abandoned_calls'],
    'abandon_rate': row['abandon_rate'],
    'service_level': row['service_level'],
    'wait_seconds': wait,
    'pane_index': row['pane_index'],
    'pane_timing': row['pane_timing'],
  }
  if offered:
    out['abandon_status'] = abandon_status(row['abandon_rate'], thresholds)
    out['service_level_status'] = service_level_status(row['service_level'], thresholds)
    out['status'] = max(out['abandon_status'], out['service_level_status'], key=_SEVERITY.index)
  else:
    # A window without calls has no rate to judge.
    out['abandon_status'] = out['service_level_status'] = 'idle'
    out['status'] = 'idle'
  return out


def _aligned(series: Dict[str, List[Row]], fields: Sequence[str]) -> Dict[str, Any]:
  """Rows per key -> one x axis (window starts, ascending) and, per key and
  field, values on that axis (None where the key has no window)."""
  x = sorted({row['window_start'] for rows in series.values() for row in rows})
  position = {start: i for i, start in enumerate(x)}
  out = []
  for key, rows in series.items():
    values = {field: [None] * len(x) for field in fields}
    for row in rows:
      for field in fields:
        values[field][position[row['window_start']]] = row[field]
    out.append({'key': key, **values})
  return {'x': x, 'series': out}


def _newest_end(rows: Sequence[Row]) -> Optional[int]:
  return max((row['window_end'] for row in rows), default=None)


class WallboardQueries:
  """Every number of the wallboard, read from `store` on each call."""

  def __init__(
    self,
    store: Store,
    thresholds: Thresholds,
    max_out_of_orderness_ms: int,
    clock: Callable[[], float] = time.time,
  ):
    self._store = store
    self._thresholds = thresholds
    self._max_out_of_orderness_ms = max_out_of_orderness_ms
    self._clock = clock

  def _has_asa(self) -> bool:
    return set(ASA_COLUMNS) <= self._store.columns(ABANDON_METRICS)

  def _window_columns(self, has_asa: bool) -> Sequence[str]:
    return WINDOW_COLUMNS + (ASA_COLUMNS if has_asa else ())

  def _latest_rows(self, table: Table, columns: Sequence[str]) -> List[Row]:
    """The newest row of each key of `table`."""
    latest = []
    for key in self._store.keys(table):
      rows = self._store.newest(
        table, columns, 'window_start', 1, equal={table.primary_key[0]: key}
      ).rows
      latest.extend(rows)
    return latest

  def _windows_since(
    self, table: Table, columns: Sequence[str], key: str, since_ms: int
  ) -> List[Row]:
    """`key`'s windows starting at or after `since_ms`, oldest first."""
    rows = self._store.newest(
      table,
      columns,
      'window_start',
      MAX_WINDOWS_PER_KEY,
      equal={table.primary_key[0]: key},
      since_ms=since_ms,
    ).rows
    return rows[::-1]

  def latest_windows(self) -> Dict[str, Any]:
    """Tiles: the newest window of each queue. `current` is False for a
    queue whose newest window is older than the newest window of all."""
    has_asa = self._has_asa()
    return self._tiles(self._latest_rows(ABANDON_METRICS, self._window_columns(has_asa)), has_asa)

  def _tiles(self, rows: List[Row], has_asa: bool) -> Dict[str, Any]:
    newest_start = max((row['window_start'] for row in rows), default=None)
    tiles = []
    for row in rows:
      tile = _window_row(row, self._thresholds, has_asa)
      tile['current'] = row['window_start'] == newest_start
      tiles.append(tile)
    return {
      'wait_label': 'ASA' if has_asa else 'avg wait',
      'newest_window_end': _newest_end(rows),
      'tiles': tiles,
    }

  def queue_trends(self, hours: int) -> Dict[str, Any]:
    """Abandon rate and calls offered per queue and window, over the
    `hours` before the newest window end."""
    columns = ('queue_id', 'window_start', 'window_end', 'abandon_rate', 'total_calls')
    latest = self._latest_rows(ABANDON_METRICS, columns)
    until = _newest_end(latest)
    if until is None:
      return {'hours': hours, 'until_ms': None, 'x': [], 'series': []}
    since = until - hours * HOUR_MS
    series = {
      row['queue_id']: self._windows_since(ABANDON_METRICS, columns, row['queue_id'], since)
      for row in latest
    }
    return {
      'hours': hours,
      'until_ms': until,
      **_aligned(series, ('abandon_rate', 'total_calls')),
    }

  def channel_volumes(self, hours: int = 1) -> Dict[str, Any]:
    """Interactions per channel and window over the `hours` before the
    newest interaction window end."""
    return self._volumes(self._latest_rows(INTERACTION_VOLUMES, VOLUME_COLUMNS), hours)

  def _volumes(self, latest: List[Row], hours: int) -> Dict[str, Any]:
    until = _newest_end(latest)
    if until is None:
      return {'hours': hours, 'until_ms': None, 'x': [], 'series': []}
    since = until - hours * HOUR_MS
    series = {
      row['channel']: self._windows_since(
        INTERACTION_VOLUMES, VOLUME_COLUMNS, row['channel'], since
      )
      for row in latest
    }
    return {'hours': hours, 'until_ms': until, **_aligned(series, ('volume',))}

  def pattern_alerts(self, limit: int = ALERT_LIMIT) -> Dict[str, Any]:
    """The newest pattern alerts first."""
    result = self._store.newest(PATTERN_ALERTS, ALERT_COLUMNS, 'timestamp', limit)
    return {'alerts': result.rows, 'complete': result.complete}

  def _flow_health(self, name: str, latest: List[Row], now_ms: int) -> Dict[str, Any]:
    """Lag and staleness of a flow, from the newest row of each of its
    keys."""
    if not latest:
      return {
        'name': name,
        'newest_window_end': None,
        'window_ms': None,
        'lag_ms': None,
        'stale_after_ms': None,
        'stale': True,
      }
    newest = max(latest, key=lambda row: row['window_end'])
    window_ms = newest['window_end'] - newest['window_start']
    # A window's row appears once the watermark (newest event time minus
    # the out-of-orderness) passes its end: more than two windows behind
    # that means nothing new has arrived for two windows.
    stale_after = 2 * window_ms + self._max_out_of_orderness_ms
    lag = now_ms - newest['window_end']
    return {
      'name': name,
      'newest_window_end': newest['window_end'],
      'window_ms': window_ms,
      'lag_ms': lag,
      'stale_after_ms': stale_after,
      'stale': lag > stale_after,
    }

  def _counts(self, table: Table, time_column: str, since_ms: Optional[int]) -> Dict[str, Any]:
    """Rows per (source, reason) with `time_column >= since_ms`, or of all
    time when `since_ms` is None or the store lacks the column."""
    if time_column not in self._store.columns(table):
      since_ms = None
    result = self._store.count(table, ('source', 'reason'), time_column, since_ms)
    counts = [
      {'source': source, 'reason': reason, 'count': n}
      for (source, reason), n in result.counts.items()
    ]
    counts.sort(key=lambda c: (-c['count'], c['source'], c['reason']))
    return {
      'since_ms': since_ms,
      'total': sum(c['count'] for c in counts),
      'counts': counts,
      'complete': result.complete,
    }

  def health(self) -> Dict[str, Any]:
    """Lag and staleness per flow; late events per reason over the last
    hour of data, dead letters per reason."""
    columns = ('window_start', 'window_end')
    return self._health(
      self._latest_rows(ABANDON_METRICS, ('queue_id', *columns)),
      self._latest_rows(INTERACTION_VOLUMES, ('channel', *columns)),
    )

  def _health(self, latest_calls: List[Row], latest_volumes: List[Row]) -> Dict[str, Any]:
    now_ms = int(self._clock() * 1000)
    flows = [
      self._flow_health('call metrics', latest_calls, now_ms),
      self._flow_health('interaction volumes', latest_volumes, now_ms),
    ]
    data_end = max((f['newest_window_end'] for f in flows if f['newest_window_end']), default=None)
    # Without any window yet there is no "last hour" of data: all time.
    since = None if data_end is None else data_end - HOUR_MS
    return {
      'now_ms': now_ms,
      'flows': flows,
      'late_events': self._counts(LATE_EVENTS, LATE_EVENT_TIME_COLUMN, since),
      'dead_letters': self._counts(DEAD_LETTERS, DEAD_LETTER_TIME_COLUMN, now_ms - HOUR_MS),
    }

  def queue_exists(self, queue_id: str) -> bool:
    return bool(
      self._store.newest(
        ABANDON_METRICS, ('window_start',), 'window_start', 1, equal={'queue_id': queue_id}
      ).rows
    )

  def queue_detail(self, queue_id: str, hours: int) -> Dict[str, Any]:
    """One queue's windows over the `hours` before its newest window end
    (newest first) and its newest late events."""
    has_asa = self._has_asa()
    columns = self._window_columns(has_asa)
    latest = self._store.newest(
      ABANDON_METRICS, columns, 'window_start', 1, equal={'queue_id': queue_id}
    ).rows
    windows = []
    if latest:
      windows = [
        _window_row(row, self._thresholds, has_asa)
        for row in self._store.newest(
          ABANDON_METRICS,
          columns,
          'window_start',
          MAX_WINDOWS_PER_KEY,
          equal={'queue_id': queue_id},
          since_ms=latest[0]['window_end'] - hours * HOUR_MS,
        ).rows
      ]
    late = self._store.newest(
      LATE_EVENTS,
      LATE_EVENT_COLUMNS,
      LATE_EVENT_TIME_COLUMN,
      LATE_EVENT_LIMIT,
      equal={'source': CALL_EVENTS_SOURCE, 'key': queue_id},
    )
    return {
      'queue_id': queue_id,
      'hours': hours,
      'wait_label': 'ASA' if has_asa else 'avg wait',
      'windows': windows,
      'late_events': late.rows,
      'late_events_complete': late.complete,
    }

  def snapshot(self) -> Dict[str, Any]:
    """Everything the page shows besides trends and drill-down.
    `data_version` changes exactly when a number read from the store
    does (not when only the clock moved)."""
    # The newest row of each queue and channel, read once for the tiles,
    # the volumes and the health.
    has_asa = self._has_asa()
    calls = self._latest_rows(ABANDON_METRICS, self._window_columns(has_asa))
    volumes = self._latest_rows(INTERACTION_VOLUMES, VOLUME_COLUMNS)
    data = {
      'queues': self._tiles(calls, has_asa),
      'volumes': self._volumes(volumes, 1),
      'alerts': self.pattern_alerts(),
    }
    health = self._health(calls, volumes)
    # Counts only: the dead letters' hour moves with the clock.
    observed = [
      data,
      [flow['newest_window_end'] for flow in health['flows']],
      health['late_events']['counts'],
      health['dead_letters']['counts'],
    ]
    data_version = hashlib.sha256(json.dumps(observed, sort_keys=True).encode()).hexdigest()[:16]
    return {
      'data_version': data_version,
      'thresholds': self._thresholds._asdict(),
      'health': health,
      **data,
    }
