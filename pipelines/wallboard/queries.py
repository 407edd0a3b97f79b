"""The wallboard's numbers, computed from a `Store` (pipelines/wallboard/
stores.py).

In: the result tables of transforms/schema.py, as any release wrote them
(columns a release did not have read as absent or NULL and show as "–";
`abandon_metrics` without `channel` holds voice calls). Out: plain dicts and
lists (JSON-ready, times in epoch ms, rates as fractions) for the page.

`read()` reads the store once into a `Board`: one tile per queue (its
newest window start, its channels summed), the newest pattern alerts, the
busiest interaction channels, late events and dead letters per reason (the
largest groups, and how many there are in all). `view(board, queues,
tiles)` is what one page shows of it: the queues of its filter, all of them
when they fit in `tiles`, else the worst `tiles` and a summary of the rest;
its size is bounded whatever the number of queues, channels or reasons.
`queue_trends` and `queue_detail` read a few queues' windows.

The live floor (tables `queue_status` and `waiting_contacts`, one row per
queue and channel, replaced as contacts enter and leave): each tile carries
its queue's `live` figures (contacts waiting now, summed over channels, and
the longest wait: the row of the channel whose contact has waited longest,
with the event times `oldest_waiting_since` and `as_of` and the processing
time `updated_at`, from which the page lets the wait tick on); a queue with
contacts waiting but no window yet has a tile too. A drill-down lists the
queue's waiting contacts. A store without these tables (an earlier
release) has no live figures. Their values come from the producer and are
checked: a count or time that is not a whole number in range reads as
unknown, a list of contacts that is not the JSON the job writes is left out
and counted.

Staffing (tables `agent_status`, one row per queue and channel replaced as
agents change state, and `agent_metrics`, agent time per queue, channel and
window): each tile carries its queue's `agents` by state, summed over
channels, and `no_agent` when contacts wait in it and none of its agents is
available; the view carries `staffing`, the totals of its queues (logged
in, by state, the not-ready reasons with most agents); `agent_trends` draws
occupancy and average handle time of a few queues and `queue_agents` lists
a queue's agents by state and reason per channel. A store without these
tables (an earlier release, or a job given no agent events) has no staffing
figures. Their values are the producer's and are checked like the live
floor's: counts that are not whole numbers in range read as unknown, reasons
are text only (cut at MAX_TEXT, at most MAX_REASONS_KEPT per row), a reasons
entry that is not the JSON object the job writes is counted as unreadable.

Alerting (tables `alerts`, one row per rule, queue and channel replaced as
its state changes; `alert_notifications` and `alert_deliveries`, its
history; `daily_metrics`, the figures since local midnight): the view
carries `active_alerts`, the firing alerts then the pending ones (most
severe, then newest first, at most MAX_ACTIVE_SHOWN, of the view's queues
and those of the whole job), and each tile its queue's `today` (offered,
abandon rate and service level of the newest local date of the data, its
channels summed). `alert_history` lists an alert's newest notifications
with their deliveries. A store without these tables (an earlier release,
or a job given no alert rules) has no alerts and no today figures. Their
values are the producer's and are checked like the others: texts cut at
MAX_TEXT (messages at MESSAGE_CHARS), numbers that are not finite, times
that are not whole numbers in range read as unknown.

A window's drill-down (tables `window_contacts`, the contacts each window
counts, kept `--contact_detail_ttl_seconds` by the job; `metric_revisions`,
every change of a window's figures after its end): `window_detail` lists
one window's (queue, channel, window start) abandoned contacts, or all its
contacts, by event time with their outcome and wait, and its revisions by
pane; `queue_detail` marks the windows that were revised (a revision, or a
LATE or RESTATED pane). A store without these tables (an earlier release,
or a job writing no contact detail) lists none. Their values are the
producer's and are checked like the others.

Time ranges ("the last hour") end at the newest window end of the data, not
at the wall clock: a replayed or delayed stream still shows its last hour,
and `health` says how old that is.
"""

import hashlib
import heapq
import json
import math
import time
from typing import (
  Any,
  Callable,
  Dict,
  FrozenSet,
  Iterable,
  List,
  NamedTuple,
  Optional,
  Sequence,
  Tuple,
)

from pipelines.contact_center import CALL_EVENTS_SOURCE
from pipelines.wallboard.stores import Row, Store
from transforms.abandon_rate import rounded_ratio
from transforms.metric_definitions import (
  ABANDON_RATE_DEFINITIONS,
  DEFAULT_ABANDON_RATE,
  DEFAULT_SERVICE_LEVEL,
  SERVICE_LEVEL_DEFINITIONS,
  Counts,
)
from transforms.records import ALERT_FIRING, ALERT_PENDING, AbandonMetrics
from transforms.schema import (
  ABANDON_METRICS,
  AGENT_METRICS,
  AGENT_STATUS,
  ALERT_DELIVERIES,
  ALERT_NOTIFICATIONS,
  ALERTS,
  DAILY_METRICS,
  DEAD_LETTERS,
  INTERACTION_VOLUMES,
  LATE_EVENTS,
  METRIC_REVISIONS,
  PATTERN_ALERTS,
  QUEUE_STATUS,
  WAITING_CONTACTS,
  WINDOW_CONTACTS,
  Table,
)

HOUR_MS = 3_600_000
MAX_TREND_HOURS = 24
# Rows read per queue or channel for a chart or a drill-down.
MAX_ROWS_PER_KEY = 5_000
ALERT_LIMIT = 20
LATE_EVENT_LIMIT = 50
# Groups of late events and dead letters (source, reason) sent to the page.
COUNT_LIMIT = 8
# Queues with a line in the trend charts, channels in the volume chart.
MAX_SERIES = 10
DEFAULT_TILES = 60
MAX_TILES = 500
# Windows per page of a drill-down, channels per window (the rest summed).
WINDOWS_PER_PAGE = 48
MAX_CHANNELS_SHOWN = 12
# Longest text of the data sent as is: longer values are cut with '…'
# (queue ids up to the longest a drill-down accepts), raw events at RAW_CHARS.
MAX_TEXT = 256
RAW_CHARS = 4_096
VOICE = AbandonMetrics._field_defaults['channel']
# The pane of a window still open (early firings): its figures so far.
EARLY = 'EARLY'

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
# Columns added by later releases, selected when the store has them.
# Average speed of answer needs the answered calls' wait and their count:
# without them the tiles show the average wait of all calls offered
# (total_wait_seconds / total_calls), labelled 'avg wait'.
ASA_COLUMNS = ('answered_wait_seconds', 'answered_calls', 'answered_wait_unknown_calls')
# Recomputing a rate over several channels needs the definitions' counts.
DEFINITION_COLUMNS = (
  'short_abandoned_calls',
  'abandoned_within_sl',
  'abandon_rate_definition',
  'service_level_definition',
)
CHANNEL_COLUMN = 'channel'
# The queue's name (the job's --queue_names), shown beside its id.
NAME_COLUMN = 'queue_name'
# Summed over the channels of a window (None when a channel's is unknown).
SUMMED = (
  'total_calls',
  'abandoned_calls',
  'answered_within_sl',
  'total_wait_seconds',
  'short_abandoned_calls',
  'abandoned_within_sl',
  *ASA_COLUMNS,
)
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

# The live floor. queue_status's `queue_name` is selected when present.
LIVE_COLUMNS = (
  'queue_id',
  'channel',
  'waiting',
  'oldest_waiting_since',
  'longest_wait_seconds',
  'as_of',
  'updated_at',
)
WAITING_COLUMNS = ('queue_id', 'channel', 'contacts', 'waiting', 'as_of', 'updated_at')
# Both tables order a key's rows by `updated_at` (processing time).
LIVE_TIME_COLUMN = 'updated_at'
# queue_status rows held per read (one per queue and channel; the most
# recently updated when there are more): a few hundred bytes each.
MAX_LIVE_ROWS = 200_000
# A drill-down's waiting_contacts rows (channels of the queue) and the
# contacts it lists of them, oldest first (the job lists at most 100 per
# channel).
MAX_WAITING_ROWS = 50
MAX_WAITING_LISTED = 100
# The longest `contacts` JSON parsed: 100 contacts of 256-character ids,
# every character escaped, fit; a longer one is not the job's.
MAX_CONTACTS_JSON = 256 * 1024
# Whole numbers the page can hold exactly (JavaScript's safe integers).
MAX_WHOLE = 2**53 - 1

# Staffing. agent_status's `queue_name` is selected when present.
AGENT_STATUS_COLUMNS = (
  'queue_id',
  'channel',
  'logged_in',
  'available',
  'on_contact',
  'after_contact_work',
  'not_ready',
  'not_ready_reasons',
  'as_of',
  'updated_at',
)
# A logged-in agent's states, in the order the page shows them.
AGENT_STATES = ('available', 'on_contact', 'after_contact_work', 'not_ready')
AGENT_COUNTS = ('logged_in', *AGENT_STATES)
AGENT_METRIC_COLUMNS = (
  'queue_id',
  'channel',
  'window_start',
  'window_end',
  'handled_contacts',
  'talk_seconds',
  'hold_seconds',
  'after_contact_work_seconds',
  'available_seconds',
  'not_ready_seconds',
)
# Agent time that is work on contacts: occupancy's and AHT's numerator.
BUSY_SECONDS = ('talk_seconds', 'hold_seconds', 'after_contact_work_seconds')
# agent_status rows held per read, as queue_status's (one per queue and
# channel; the most recently updated when there are more), and read for a
# drill-down (the queue's channels).
MAX_AGENT_ROWS = MAX_LIVE_ROWS
MAX_AGENT_CHANNELS = 50
# A row's not_ready_reasons: the longest JSON parsed, the reasons kept
# (those with most agents; the others summed), the distinct reasons a
# staffing panel adds up before counting new ones as "other": a producer
# inventing reasons cannot grow a read without bound.
MAX_REASONS_JSON = 64 * 1024
MAX_REASONS_KEPT = 20
MAX_DISTINCT_REASONS = 10_000
# Agent seconds beyond this (about 31,700 years) are not a window's.
MAX_AGENT_SECONDS = 1e12


# Alerting. alerts rows read per state (the most recently updated), and the
# active alerts a view lists (the rest counted).
MAX_ALERT_ROWS = 2_000
MAX_ACTIVE_SHOWN = 50
ACTIVE_STATES = (ALERT_FIRING, ALERT_PENDING)
ALERT_STATE_COLUMNS = (
  'rule',
  'queue_id',
  'channel',
  'state',
  'severity',
  'metric',
  'span',
  'value',
  'threshold',
  'since',
  'last_notification_kind',
  'delivery_status',
  'updated_at',
)
# The most severe first; a severity of the rule file not listed here after
# these (the page colours it as the least).
SEVERITIES = ('critical', 'warning', 'info')
# An alert's history: its newest notifications, kept by the job for 30
# days (the TTL of the Cassandra table), each with its deliveries.
HISTORY_LIMIT = 50
HISTORY_DAYS = 30
# The alert row's `updated_at` is the event time of the figure evaluated
# last, which a late figure can set before notifications already sent:
# the history reads a day past it.
HISTORY_AFTER_MS = 86_400_000
MAX_DELIVERIES_SHOWN = 20
MESSAGE_CHARS = 2_000
NOTIFICATION_COLUMNS = (
  'notification_id',
  'kind',
  'severity',
  'metric',
  'span',
  'value',
  'threshold',
  'previous_value',
  'figure_end',
  'message',
  'receivers',
  'created_at',
)
DELIVERY_COLUMNS = ('receiver', 'status', 'attempts', 'answer', 'delivered_at')
# daily_metrics: a queue's channels of its newest local date.
DAILY_COLUMNS = (
  'queue_id',
  'channel',
  'local_date',
  'total_calls',
  'abandoned_calls',
  'short_abandoned_calls',
  'answered_within_sl',
  'abandoned_within_sl',
  'abandon_rate',
  'service_level',
  'abandon_rate_definition',
  'service_level_definition',
)
# A today figure as the board holds it (checked values, in this order).
TODAY_FIELDS = ('local_date', 'offered', 'abandoned', 'abandon_rate', 'service_level')


# A window's drill-down. Contacts listed at most (by event time; a window
# of a busy queue counts more), revisions at most (by pane).
MAX_WINDOW_CONTACTS = 500
MAX_REVISIONS = 100
# The contacts a revision added, listed at most (the rest counted); its
# longest JSON parsed (a reprocessing run may add many).
MAX_REVISION_CONTACTS = 100
MAX_REVISION_JSON = 1024 * 1024
CONTACT_FILTERS = ('abandoned', 'all')
ABANDONED = 'ABANDONED'
# Outcomes and pane timings the page writes as words; others as data.
OUTCOMES = ('ANSWERED', ABANDONED, 'FLOW_OUT', 'UNKNOWN')
# Panes that change a window's figures after its end: the live job's late
# firings, a reprocessing run's restatements.
REVISED_TIMINGS = ('LATE', 'RESTATED')
WINDOW_CONTACT_COLUMNS = (
  'contact_id',
  'outcome',
  'wait_seconds',
  'event_timestamp',
  'pane_index',
  'pane_timing',
)
REVISION_FIGURES = (
  ('offered', 'total_calls'),
  ('abandoned', 'abandoned_calls'),
  ('answered', 'answered_calls'),
  ('abandon_rate', 'abandon_rate'),
  ('service_level', 'service_level'),
)
REVISION_COLUMNS = (
  'window_end',
  'pane_index',
  'pane_timing',
  'previous_pane_index',
  *(f'{age}_{column}' for _, column in REVISION_FIGURES for age in ('old', 'new')),
  'contact_ids',
  'revised_at',
)
# Channels of a page of a queue's windows whose revisions are looked up.
MAX_REVISED_CHANNELS = 50


class Thresholds(NamedTuple):
  """SLA thresholds as fractions (0.05 = 5 %); the longest wait's in
  seconds (defaults: the options' defaults)."""

  abandon_rate_warn: float
  abandon_rate_alert: float
  service_level_target: float
  longest_wait_warn: float = 60.0
  longest_wait_alert: float = 120.0


def abandon_status(rate: Optional[float], thresholds: Thresholds) -> str:
  """'ok', 'warn' or 'alert' for an abandon rate (a fraction); 'idle'
  when it is unknown."""
  if rate is None:
    return 'idle'
  if rate >= thresholds.abandon_rate_alert:
    return 'alert'
  return 'warn' if rate >= thresholds.abandon_rate_warn else 'ok'


def service_level_status(level: Optional[float], thresholds: Thresholds) -> str:
  """'ok' at or above the target, else 'alert'; 'idle' when unknown."""
  if level is None:
    return 'idle'
  return 'ok' if level >= thresholds.service_level_target else 'alert'


def longest_wait_status(seconds: Optional[float], thresholds: Thresholds) -> str:
  """'ok', 'warn' or 'alert' for the longest wait of a queue now (0 when
  nobody waits); 'idle' when it is unknown."""
  if seconds is None:
    return 'idle'
  if seconds >= thresholds.longest_wait_alert:
    return 'alert'
  return 'warn' if seconds >= thresholds.longest_wait_warn else 'ok'


_SEVERITY = ('idle', 'ok', 'warn', 'alert')


def _worse(*statuses: str) -> str:
  return max(statuses, key=_SEVERITY.index)


def clip(value: Any, limit: int = MAX_TEXT) -> Any:
  """A text of the data cut to `limit` characters (with '…'); other values
  as they are."""
  if isinstance(value, str) and len(value) > limit:
    return value[: limit - 1] + '…'
  return value


def _finite(value: Any) -> Any:
  """None for a float that JSON cannot carry (NaN, infinity)."""
  return None if isinstance(value, float) and not math.isfinite(value) else value


def _sum(rows: Sequence[Row], column: str) -> Any:
  """The column's sum over `rows`; None if a row lacks it (an earlier
  release) or holds NULL."""
  values = [row.get(column) for row in rows]
  return None if None in values else sum(values)


def _definition_rate(
  total: Row, rows: Sequence[Row], column: str, definitions: Dict[str, Any], default: str
) -> Optional[float]:
  """A rate of summed channels from the summed counts, under the channels'
  definition (the default for rows of a release before definitions)."""
  names = {row.get(column) or default for row in rows}
  if len(names) != 1 or next(iter(names)) not in definitions:
    return None  # channels under different definitions have no one rate
  counts = Counts(
    total['total_calls'],
    total['abandoned_calls'],
    total['short_abandoned_calls'] or 0,
    total['answered_within_sl'],
    total['abandoned_within_sl'] or 0,
  )
  if None in counts:
    return None
  return rounded_ratio(*definitions[next(iter(names))](counts))


def combine(rows: Sequence[Row]) -> Row:
  """The channels of one queue's window as one row: counts summed, rates
  recomputed from the sums (never averaged); one channel is its own row."""
  first = rows[0]
  if len(rows) == 1:
    return {**first, 'channels': [first.get(CHANNEL_COLUMN, VOICE)]}
  total = {**first, **{column: _sum(rows, column) for column in SUMMED}}
  total['abandon_rate'] = _definition_rate(
    total, rows, 'abandon_rate_definition', ABANDON_RATE_DEFINITIONS, DEFAULT_ABANDON_RATE
  )
  total['service_level'] = _definition_rate(
    total, rows, 'service_level_definition', SERVICE_LEVEL_DEFINITIONS, DEFAULT_SERVICE_LEVEL
  )
  newest_pane = max(rows, key=lambda row: row['pane_index'] or 0)
  total['pane_index'], total['pane_timing'] = newest_pane['pane_index'], newest_pane['pane_timing']
  # A channel's early pane makes the sum a figure so far, whatever pane
  # the others are at: its final counts are still to come.
  early = [row for row in rows if row['pane_timing'] == EARLY]
  if early:
    total['pane_index'], total['pane_timing'] = early[0]['pane_index'], EARLY
  total['window_end'] = max(row['window_end'] for row in rows)
  total['channels'] = sorted(row.get(CHANNEL_COLUMN, VOICE) for row in rows)
  return total


def _wait(row: Row, has_asa: bool) -> Optional[float]:
  if has_asa:
    # ASA over the answered calls whose wait is known (transforms/
    # metric_definitions.py, docs/metric_definitions.md).
    answered, unknown, wait = (
      row[c] for c in ('answered_calls', 'answered_wait_unknown_calls', 'answered_wait_seconds')
    )
    if None in (answered, unknown, wait) or answered - unknown <= 0:
      return None
    return wait / (answered - unknown)
  offered, wait = row['total_calls'], row['total_wait_seconds']
  return wait / offered if offered and wait is not None else None


def _statuses(row: Row, thresholds: Thresholds) -> Tuple[str, str, str]:
  """(abandon status, service-level status, the worse) of a window."""
  if not row['total_calls']:
    # A window without calls (or an unknown count) has no rate to judge.
    return 'idle', 'idle', 'idle'
  rate = abandon_status(_finite(row['abandon_rate']), thresholds)
  level = service_level_status(_finite(row['service_level']), thresholds)
  return rate, level, max(rate, level, key=_SEVERITY.index)


def _window_row(row: Row, thresholds: Thresholds, has_asa: bool) -> Row:
  """A window of abandon_metrics (one channel or `combine`d) as the page
  shows it."""
  offered = row['total_calls']
  out = {
    'queue_id': clip(row['queue_id']),
    # None without a name of its own (a store before names, or none given).
    'queue_name': clip(row.get(NAME_COLUMN)) or None,
    'window_start': row['window_start'],
    'window_end': row['window_end'],
    'offered': offered,
    'abandoned': row['abandoned_calls'],
    'abandon_rate': _finite(row['abandon_rate']),
    'service_level': _finite(row['service_level']),
    'wait_seconds': _finite(_wait(row, has_asa)),
    'pane_index': row['pane_index'],
    'pane_timing': clip(row['pane_timing']),
  }
  out['abandon_status'], out['service_level_status'], out['status'] = _statuses(row, thresholds)
  return out


def _by_window(rows: Iterable[Row]) -> Dict[Tuple[str, int], List[Row]]:
  """Rows per (queue, window start), in the order met."""
  grouped: Dict[Tuple[str, int], List[Row]] = {}
  for row in rows:
    grouped.setdefault((row['queue_id'], row['window_start']), []).append(row)
  return grouped


class Rank(NamedTuple):
  """What a view needs of a queue it does not show: `key` sorts worst
  first (status, current window, abandon rate, service level, id);
  `status` is the worse of its window's and its longest wait's now."""

  key: Tuple[Any, ...]
  status: str
  offered: Optional[int]
  abandoned: Optional[int]
  waiting: Optional[int] = None
  no_agent: bool = False


def _rank(
  queue_id: str,
  row: Optional[Row],
  current: bool,
  thresholds: Thresholds,
  live: Optional[Row] = None,
  no_agent: bool = False,
) -> Rank:
  """`row`: the queue's newest window (None: none yet); `live`: its
  `_live_tile` (None: no live row); `no_agent`: contacts wait in it and no
  agent is available (such a queue goes first: nobody will answer them)."""
  status = 'idle' if row is None else _statuses(row, thresholds)[2]
  waiting = None
  if live is not None:
    waiting = live['waiting']
    status = _worse(status, longest_wait_status(_seconds(live['wait_now_ms']), thresholds))
  row = row or {}
  rate, level = _finite(row.get('abandon_rate')), _finite(row.get('service_level'))
  key = (
    not no_agent,
    -_SEVERITY.index(status),
    not current,
    -(rate or 0),
    level if level is not None else 1,
    queue_id,
  )
  return Rank(key, status, row.get('total_calls'), row.get('abandoned_calls'), waiting, no_agent)


# --- the live floor -------------------------------------------------------
# A queue_status row as the board holds it (checked values, in this order).
LIVE_FIELDS = (
  'channel',
  'waiting',
  'oldest_waiting_since',
  'as_of',
  'updated_at',
  'wait_ms',
  'queue_name',
)


def _whole(value: Any) -> Optional[int]:
  """A count or an epoch-ms time of the producer: a whole number from 0 to
  MAX_WHOLE, else None (unknown). SQLite keeps whatever type was written."""
  if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_WHOLE:
    return value
  return None


def _seconds(ms: Optional[int]) -> Optional[float]:
  return None if ms is None else ms / 1000


def _live_channel(row: Row) -> Row:
  """A queue_status row with its values checked. `wait_ms`: the longest
  wait as of `as_of`, from `oldest_waiting_since` and `as_of` (both event
  time), else the row's `longest_wait_seconds`; 0 when nobody waits, None
  when unknown."""
  waiting = _whole(row['waiting'])
  since, as_of = _whole(row['oldest_waiting_since']), _whole(row['as_of'])
  longest = row['longest_wait_seconds']
  if waiting == 0:
    since, wait_ms = None, 0
  elif since is not None and as_of is not None:
    wait_ms = max(0, as_of - since)
  elif (
    isinstance(longest, (int, float))
    and not isinstance(longest, bool)
    and math.isfinite(longest)
    and longest >= 0
  ):
    wait_ms = min(round(longest * 1000), MAX_WHOLE)
  else:
    wait_ms = None
  channel = row['channel']
  return {
    'channel': clip(channel) if isinstance(channel, str) else '',
    'waiting': waiting,
    'oldest_waiting_since': since,
    'as_of': as_of,
    'updated_at': _whole(row['updated_at']),
    'wait_ms': wait_ms,
    'queue_name': clip(row.get(NAME_COLUMN)) if isinstance(row.get(NAME_COLUMN), str) else None,
  }


def _wait_now(channel: Row, now_ms: int) -> Optional[int]:
  """A channel's longest wait at `now_ms` (processing time): its wait as
  of the row plus the time since the job wrote the row. Event time and
  processing time are never compared."""
  if channel['wait_ms'] is None or channel['waiting'] == 0:
    return channel['wait_ms']
  updated = channel['updated_at']
  return channel['wait_ms'] + (0 if updated is None else max(0, now_ms - updated))


def _live_tile(channels: Sequence[Row], now_ms: int) -> Row:
  """A queue's live figures over its channels (`_live_channel`s): the
  contacts waiting, summed (None if a channel's count is unknown), and the
  row of the channel whose contact has waited longest now, from which the
  page lets the wait tick on (`ticking`: somebody waits)."""
  channels = sorted(channels, key=lambda c: c['channel'])
  known = [(c, w) for c in channels for w in [_wait_now(c, now_ms)] if w is not None]
  longest, wait_now = max(known, key=lambda cw: cw[1]) if known else (channels[0], None)
  counts = [c['waiting'] for c in channels]
  return {
    'waiting': None if None in counts else sum(counts),
    'wait_ms': longest['wait_ms'],
    'wait_now_ms': wait_now,
    'ticking': longest['wait_ms'] is not None and longest['waiting'] != 0,
    'oldest_waiting_since': longest['oldest_waiting_since'],
    'as_of': longest['as_of'],
    'updated_at': longest['updated_at'],
    'channels': [c['channel'] for c in channels[:MAX_CHANNELS_SHOWN]],
  }


def _json_list(text: Any, max_chars: int) -> Optional[list]:
  """`text` as a JSON array, None when it is not one (or longer than
  `max_chars`, or nested deeper than the parser goes): stored text is
  producers' data."""
  if not isinstance(text, str) or len(text) > max_chars:
    return None
  try:
    items = json.loads(text)
  except (ValueError, RecursionError):
    return None
  return items if isinstance(items, list) else None


def parse_contacts(text: Any) -> Optional[Tuple[List[Row], int]]:
  """The contacts of a waiting_contacts row (a JSON list of {"contact_id",
  "since"}): the valid ones (ids cut at MAX_TEXT), and how many items were
  not; None when it is not such a list (or longer than MAX_CONTACTS_JSON,
  or nested deeper than the parser goes)."""
  items = _json_list(text, MAX_CONTACTS_JSON)
  if items is None:
    return None
  contacts = []
  for item in items:
    if isinstance(item, dict):
      contact_id, since = item.get('contact_id'), _whole(item.get('since'))
      if isinstance(contact_id, str) and contact_id and since is not None:
        contacts.append({'contact_id': clip(contact_id), 'since': since})
  return contacts, len(items) - len(contacts)


# --- a window's drill-down --------------------------------------------------
def parse_contact_ids(text: Any) -> Optional[Tuple[List[str], int]]:
  """The contacts of a metric_revisions row (a JSON array of ids): the
  first MAX_REVISION_CONTACTS valid ids (cut at MAX_TEXT) and how many
  others there are (valid or not); None when it is not such an array."""
  items = _json_list(text, MAX_REVISION_JSON)
  if items is None:
    return None
  ids = [clip(item) for item in items if isinstance(item, str) and item]
  return ids[:MAX_REVISION_CONTACTS], len(items) - min(len(ids), MAX_REVISION_CONTACTS)


def _window_contact(row: Row) -> Row:
  """A window_contacts row with its values checked."""
  wait = _number(row['wait_seconds'])
  return {
    'contact_id': _text(row['contact_id']),
    'outcome': _text(row['outcome']),
    # A negative wait is not one: unknown.
    'wait_seconds': wait if wait is not None and wait >= 0 else None,
    'event_timestamp': _whole(row['event_timestamp']),
    'pane_index': _whole(row['pane_index']),
    'pane_timing': _text(row['pane_timing']),
  }


def _revision(row: Row) -> Row:
  """A metric_revisions row with its values checked: each figure old and
  new, the contacts the pane added."""
  previous = row['previous_pane_index']
  out = {
    'pane_index': _whole(row['pane_index']),
    'pane_timing': _text(row['pane_timing']),
    # -1: the window had no row before this pane.
    'previous_pane_index': previous if previous == -1 else _whole(previous),
    'revised_at': _whole(row['revised_at']),
  }
  for name, column in REVISION_FIGURES:
    read = _whole if column.endswith('_calls') else _number
    out[name] = {'old': read(row[f'old_{column}']), 'new': read(row[f'new_{column}'])}
  parsed = parse_contact_ids(row['contact_ids'])
  out['contact_ids'], out['more_contacts'] = parsed if parsed is not None else ([], 0)
  out['contacts_unreadable'] = parsed is None
  return out


# --- staffing ---------------------------------------------------------------
# An agent_status row as the board holds it (checked values, in this order).
AGENT_FIELDS = (
  'channel',
  *AGENT_COUNTS,
  'reasons',
  'other_reason_agents',
  'other_reasons',
  'unreadable',
  'as_of',
  'updated_at',
  'queue_name',
)


class Reasons(NamedTuple):
  """The not-ready reasons of an agent_status row: `kept`, (reason,
  agents) pairs of the reasons with most agents, most first; the agents
  and the number of the reasons not kept; `unreadable`, entries that are
  not a reason with a whole number of agents."""

  kept: Tuple[Tuple[str, int], ...]
  other_agents: int
  other_reasons: int
  unreadable: int


def parse_reasons(text: Any) -> Optional[Reasons]:
  """A row's `not_ready_reasons` (a JSON object of reason -> agents; empty:
  none); None when it is not such an object (or longer than
  MAX_REASONS_JSON, or nested deeper than the parser goes). Reasons are
  cut at MAX_TEXT (two reasons alike up to there are one) and only the
  MAX_REASONS_KEPT with most agents are kept."""
  if text == '':
    return Reasons((), 0, 0, 0)
  if not isinstance(text, str) or len(text) > MAX_REASONS_JSON:
    return None
  try:
    items = json.loads(text)
  except (ValueError, RecursionError):
    return None
  if not isinstance(items, dict):
    return None
  reasons: Dict[str, int] = {}
  unreadable = 0
  for reason, agents in items.items():
    agents = _whole(agents)
    if reason and agents is not None:
      reason = clip(reason)
      reasons[reason] = min(reasons.get(reason, 0) + agents, MAX_WHOLE)
    else:
      unreadable += 1
  ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
  kept, others = ordered[:MAX_REASONS_KEPT], ordered[MAX_REASONS_KEPT:]
  return Reasons(tuple(kept), sum(n for _, n in others), len(others), unreadable)


def _agent_channel(row: Row) -> Row:
  """An agent_status row with its values checked (AGENT_FIELDS)."""
  reasons = parse_reasons(row['not_ready_reasons'])
  channel, name = row['channel'], row.get(NAME_COLUMN)
  return {
    'channel': clip(channel) if isinstance(channel, str) else '',
    **{name: _whole(row[name]) for name in AGENT_COUNTS},
    'reasons': () if reasons is None else reasons.kept,
    'other_reason_agents': 0 if reasons is None else reasons.other_agents,
    'other_reasons': 0 if reasons is None else reasons.other_reasons,
    # A whole entry that is not the job's JSON counts as one.
    'unreadable': 1 if reasons is None else reasons.unreadable,
    'as_of': _whole(row['as_of']),
    'updated_at': _whole(row['updated_at']),
    'queue_name': clip(name) if isinstance(name, str) else None,
  }


def _agent_tile(channels: Sequence[Row]) -> Row:
  """A queue's agents by state over its channels (`_agent_channel`s):
  each count summed, None when a channel's is unknown."""
  out: Row = {}
  for name in AGENT_COUNTS:
    values = [c[name] for c in channels]
    out[name] = None if None in values else sum(values)
  out['channels'] = sorted(c['channel'] for c in channels)[:MAX_CHANNELS_SHOWN]
  return out


def _no_agent(waiting: Optional[int], agents: Optional[Row], agents_complete: bool) -> bool:
  """The highlight rule: contacts wait in the queue (its channels summed)
  and none of its agents is available. A queue without agent_status rows
  has none logged in, unless the read stopped at MAX_AGENT_ROWS (its rows
  may be among those not read); an unknown count decides nothing."""
  if not waiting:
    return False
  if agents is None:
    return agents_complete
  return agents['available'] == 0


def _staffing(board: 'Board', queues: Iterable[str]) -> Row:
  """The staffing panel over `queues`: agents logged in and by state
  (`totals`), summed over the queues' channels (a row's unknown count is left out and
  counted in `unknown`), the COUNT_LIMIT not-ready reasons with most
  agents (`more_reasons` others with `more_agents` agents), the queues
  with agent rows and those highlighted (`no_agent_queues`)."""
  totals = dict.fromkeys(AGENT_COUNTS, 0)
  reasons: Dict[str, int] = {}
  staffed = no_agent = unknown = unreadable = other_agents = other_reasons = 0
  for queue in queues:
    no_agent += queue in board.no_agent
    channels = board.agents.get(queue)
    if not channels:
      continue
    staffed += 1
    for values in channels:
      channel = dict(zip(AGENT_FIELDS, values))
      unknown += any(channel[name] is None for name in AGENT_COUNTS)
      for name in AGENT_COUNTS:
        totals[name] += channel[name] or 0
      unreadable += channel['unreadable']
      other_agents += channel['other_reason_agents']
      other_reasons += channel['other_reasons']
      for reason, agents in channel['reasons']:
        if reason in reasons or len(reasons) < MAX_DISTINCT_REASONS:
          reasons[reason] = reasons.get(reason, 0) + agents
        else:
          other_agents += agents
          other_reasons += 1
  top = heapq.nsmallest(COUNT_LIMIT, reasons.items(), key=lambda item: (-item[1], item[0]))
  listed = sum(n for _, n in top)
  return {
    'available': board.agents_available,
    'complete': board.agents_complete,
    'queues': staffed,
    'no_agent_queues': no_agent,
    'totals': totals,
    'unknown': unknown,
    'reasons': [{'reason': reason, 'agents': n} for reason, n in top],
    # Channels' reasons beyond their kept ones cannot be told apart: each
    # counts as one more reason.
    'more_reasons': len(reasons) - len(top) + other_reasons,
    'more_agents': sum(reasons.values()) - listed + other_agents,
    'unreadable': unreadable,
  }


# --- alerting ---------------------------------------------------------------
def metric_unit(metric: str) -> str:
  """How the page writes a rule's metric: 'fraction' (rates and levels,
  shown in %), 'seconds' (waits, handle times) or 'count'."""
  if metric.endswith('_rate') or 'service_level' in metric or 'occupancy' in metric:
    return 'fraction'
  if metric.endswith('_seconds') or 'wait' in metric or 'aht' in metric:
    return 'seconds'
  return 'count'


def _number(value: Any) -> Optional[float]:
  """A value of the producer: a finite number, else None (unknown)."""
  if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
    return value
  return None


def _text(value: Any, limit: int = MAX_TEXT) -> str:
  return clip(value, limit) if isinstance(value, str) else ''


def _severity_rank(severity: str) -> int:
  return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


def _active_alert(row: Row) -> Row:
  """An alerts row with its values checked, as the page lists it."""
  metric = _text(row['metric'])
  return {
    **{name: _text(row[name]) for name in ('rule', 'queue_id', 'channel', 'span')},
    'queue_name': _text(row.get(NAME_COLUMN)) or None,
    'state': _text(row['state']),
    'severity': _text(row['severity']),
    'metric': metric,
    'unit': metric_unit(metric),
    'value': _number(row['value']),
    'threshold': _number(row['threshold']),
    'since': _whole(row['since']),
    'updated_at': _whole(row['updated_at']),
    'last_notification_kind': _text(row['last_notification_kind']),
    'delivery_status': _text(row['delivery_status']),
  }


def _alert_order(alert: Row) -> Tuple[Any, ...]:
  """Firing before pending, the most severe, the newest first."""
  return (
    alert['state'] != ALERT_FIRING,
    _severity_rank(alert['severity']),
    -(alert['since'] or 0),
    alert['rule'],
    alert['queue_id'],
    alert['channel'],
  )


def _active_alerts(board: 'Board', queues: Optional[Sequence[str]]) -> Row:
  """The active alerts of the view's queues (all when None; alerts of the
  whole job, queue '*', on every view): firing and pending counted, the
  first MAX_ACTIVE_SHOWN listed."""
  chosen = None if queues is None else {*queues, '*'}
  alerts = [a for a in board.active_alerts if chosen is None or a['queue_id'] in chosen]
  return {
    'available': board.alerts_available,
    'complete': board.alerts_complete,
    'firing': sum(a['state'] == ALERT_FIRING for a in alerts),
    'pending': sum(a['state'] == ALERT_PENDING for a in alerts),
    'alerts': alerts[:MAX_ACTIVE_SHOWN],
    'more': max(0, len(alerts) - MAX_ACTIVE_SHOWN),
  }


# daily_metrics' counts, summed over a queue's channels.
DAILY_COUNTS = (
  'total_calls',
  'abandoned_calls',
  'short_abandoned_calls',
  'answered_within_sl',
  'abandoned_within_sl',
)


def today_figures(rows: Sequence[Row]) -> tuple:
  """One queue's daily_metrics rows of one local date (its channels) as
  the tile shows them (TODAY_FIELDS): offered and abandoned summed, the
  rates recomputed from the summed counts as for windows (one channel:
  its own). A count that is not a whole number in range is unknown, and
  so is what rests on it."""
  checked = [{**row, **{c: _whole(row[c]) for c in DAILY_COUNTS}} for row in rows]
  if len(checked) == 1:
    total = {**checked[0], **{c: _number(checked[0][c]) for c in ('abandon_rate', 'service_level')}}
  else:
    total = {**checked[0], **{c: _sum(checked, c) for c in DAILY_COUNTS}}
    total['abandon_rate'] = _definition_rate(
      total, checked, 'abandon_rate_definition', ABANDON_RATE_DEFINITIONS, DEFAULT_ABANDON_RATE
    )
    total['service_level'] = _definition_rate(
      total, checked, 'service_level_definition', SERVICE_LEVEL_DEFINITIONS, DEFAULT_SERVICE_LEVEL
    )
  return (
    _text(total['local_date']),
    _whole(total['total_calls']),
    _whole(total['abandoned_calls']),
    _finite(total['abandon_rate']),
    _finite(total['service_level']),
  )


def _agent_seconds(value: Any) -> Optional[float]:
  """Agent seconds of the producer: a finite number from 0 to
  MAX_AGENT_SECONDS, else None (unknown)."""
  if (
    isinstance(value, (int, float))
    and not isinstance(value, bool)
    and math.isfinite(value)
    and 0 <= value <= MAX_AGENT_SECONDS
  ):
    return float(value)
  return None


def agent_window(rows: Sequence[Row]) -> Row:
  """One queue's agent_metrics rows of one window (its channels) as the
  trend charts draw it: occupancy, (talk + hold + after-contact work) /
  (that + available), and AHT, the same over the contacts handled,
  recomputed from the channels' summed seconds, never averaged (for one
  channel, the job's formula on its own seconds). None where the
  denominator is 0 (the job writes 0 there, which would draw as an idle
  queue) or a value is not a number in range."""
  busy: Optional[float] = 0.0
  available: Optional[float] = 0.0
  handled: Optional[int] = 0
  for row in rows:
    parts = [_agent_seconds(row[name]) for name in BUSY_SECONDS]
    idle, count = _agent_seconds(row['available_seconds']), _whole(row['handled_contacts'])
    busy = None if busy is None or None in parts else busy + sum(parts)
    available = None if available is None or idle is None else available + idle
    handled = None if handled is None or count is None else handled + count
  occupancy = None
  if busy is not None and available is not None and busy + available > 0:
    occupancy = busy / (busy + available)
  aht = busy / handled if busy is not None and handled else None
  return {'window_start': rows[0]['window_start'], 'occupancy': occupancy, 'aht_seconds': aht}


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
    out.append({'key': clip(key), **values})
  return {'x': x, 'series': out}


def _no_window_tile(queue_id: str) -> Row:
  """The tile of a queue with live figures but no window yet: the fields
  of `_window_row`, unknown."""
  return {
    'queue_id': clip(queue_id),
    'queue_name': None,
    'window_start': None,
    'window_end': None,
    'offered': None,
    'abandoned': None,
    'abandon_rate': None,
    'service_level': None,
    'wait_seconds': None,
    'pane_index': None,
    'pane_timing': None,
    'abandon_status': 'idle',
    'service_level_status': 'idle',
    'status': 'idle',
    'current': False,
    'channels': [],
  }


def _newest_end(rows: Iterable[Row]) -> Optional[int]:
  return max((row['window_end'] for row in rows), default=None)


def _compact(rows: Sequence[Row], columns: Sequence[str]) -> Tuple[tuple, ...]:
  """Rows as tuples of their values in `columns` order."""
  return tuple(tuple(row[name] for name in columns) for row in rows)


def _chosen(board: 'Board', queues: Optional[Sequence[str]]) -> List[str]:
  """The queues of `queues` (all when None) that have windows."""
  if queues is None:
    return list(board.ranks)
  return [q for q in dict.fromkeys(queues) if q in board.ranks]


def _wait_label(has_asa: bool) -> str:
  return 'ASA' if has_asa else 'avg wait'


def _version(value: Any) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


class Board(NamedTuple):
  """One read of the store: every queue's channel rows of its newest window
  (tuples of `columns`: a board of 100,000 queues stays in tens of MiB) and
  its `Rank` (by queue id, queues with live rows but no window included),
  and the sections that do not depend on a page's filter. Tiles are built
  for the queues a view shows only. `live`: each queue's queue_status rows
  (tuples of LIVE_FIELDS); `live_available`: the store has the table, with
  rows; `live_complete`: all its rows were read (at most MAX_LIVE_ROWS);
  `now_ms`: when it was read (processing time). `agents`: each queue's
  agent_status rows (tuples of AGENT_FIELDS), `agents_available` and
  `agents_complete` as for `live`; `no_agent`: the queues highlighted
  (`_no_agent`); `staffing`: the staffing panel of all queues. `today`:
  each queue's figures of `today_date`, the newest local date of
  daily_metrics (tuples of TODAY_FIELDS); `active_alerts`: the firing and
  pending alerts in `_alert_order`, `alerts_available` (the store has the
  table) and `alerts_complete` (no state had more than MAX_ALERT_ROWS)."""

  columns: Tuple[str, ...]
  queues: Dict[str, Tuple[tuple, ...]]
  ranks: Dict[str, Rank]
  newest_start: Optional[int]
  has_asa: bool
  newest_window_end: Optional[int]
  volumes: Dict[str, Any]
  alerts: Dict[str, Any]
  health: Dict[str, Any]
  live: Dict[str, Tuple[tuple, ...]] = {}
  live_available: bool = False
  live_complete: bool = True
  now_ms: int = 0
  agents: Dict[str, Tuple[tuple, ...]] = {}
  agents_available: bool = False
  agents_complete: bool = True
  no_agent: FrozenSet[str] = frozenset()
  staffing: Optional[Row] = None
  today: Dict[str, tuple] = {}
  today_date: Optional[str] = None
  active_alerts: Tuple[Row, ...] = ()
  alerts_available: bool = False
  alerts_complete: bool = True


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

  @property
  def thresholds(self) -> Thresholds:
    return self._thresholds

  def _window_columns(self) -> Tuple[Sequence[str], bool]:
    """The abandon_metrics columns to select from this store, and whether
    it has the ASA columns."""
    have = self._store.columns(ABANDON_METRICS)
    has_asa = set(ASA_COLUMNS) <= have
    later = (*ASA_COLUMNS, *DEFINITION_COLUMNS, CHANNEL_COLUMN, NAME_COLUMN)
    return WINDOW_COLUMNS + tuple(c for c in later if c in have), has_asa

  def latest_windows(self) -> Dict[str, Any]:
    """Tiles of every queue, sorted by queue id: its newest window, its
    channels summed. `current` is False for a queue whose newest window is
    older than the newest window of all."""
    board = self.read()
    return {
      'wait_label': _wait_label(board.has_asa),
      'newest_window_end': board.newest_window_end,
      'tiles': [self._tile(board, queue) for queue in sorted(board.queues)],
    }

  def _tile(self, board: Board, queue_id: str) -> Row:
    windows = board.queues.get(queue_id)
    if windows:
      total = combine([dict(zip(board.columns, values)) for values in windows])
      tile = _window_row(total, self._thresholds, board.has_asa)
      tile['current'] = total['window_start'] == board.newest_start
      tile['channels'] = [clip(c) for c in total['channels'][:MAX_CHANNELS_SHOWN]]
    else:
      tile = _no_window_tile(queue_id)
    live = board.live.get(queue_id)
    tile['live'] = None
    if live:
      channels = [dict(zip(LIVE_FIELDS, values)) for values in live]
      tile['live'] = _live_tile(channels, board.now_ms)
      # The wait now moves with the clock: the page computes it, and the
      # tile changes only when a row does.
      del tile['live']['wait_now_ms']
      if not tile['queue_name']:
        tile['queue_name'] = next((c['queue_name'] for c in channels if c['queue_name']), None)
    agents = board.agents.get(queue_id)
    tile['agents'] = None
    if agents:
      channels = [dict(zip(AGENT_FIELDS, values)) for values in agents]
      tile['agents'] = _agent_tile(channels)
      if not tile['queue_name']:
        tile['queue_name'] = next((c['queue_name'] for c in channels if c['queue_name']), None)
    tile['no_agent'] = queue_id in board.no_agent
    today = board.today.get(queue_id)
    tile['today'] = None
    if today is not None:
      figures = dict(zip(TODAY_FIELDS, today))
      rate, level = figures['abandon_rate'], figures['service_level']
      figures['abandon_status'] = abandon_status(rate, self._thresholds)
      figures['service_level_status'] = service_level_status(level, self._thresholds)
      if not figures['offered']:
        figures['abandon_status'] = figures['service_level_status'] = 'idle'
      tile['today'] = figures
    return tile

  def _series(self, table: Table, columns: Sequence[str], key: str, since_ms: int) -> List[Row]:
    """`key`'s rows with a window starting at or after `since_ms`."""
    return self._store.newest(
      table,
      columns,
      'window_start',
      MAX_ROWS_PER_KEY,
      equal={table.primary_key[0]: key},
      since_ms=since_ms,
    ).rows

  def queue_trends(
    self, hours: int, queue_ids: Sequence[str], until: Optional[int]
  ) -> Dict[str, Any]:
    """Abandon rate and calls offered of `queue_ids` (their channels
    summed) per window, over the `hours` before `until` (the newest window
    end of a `Board`; None: no windows)."""
    self._store.check()
    columns, _ = self._window_columns()
    if until is None:
      return {'hours': hours, 'until_ms': None, 'x': [], 'series': []}
    since = until - hours * HOUR_MS
    series = {
      queue: [
        combine(rows)
        for rows in _by_window(self._series(ABANDON_METRICS, columns, queue, since)).values()
      ]
      for queue in queue_ids
    }
    return {
      'hours': hours,
      'until_ms': until,
      **_aligned(series, ('abandon_rate', 'total_calls')),
    }

  def channel_volumes(self, hours: int = 1) -> Dict[str, Any]:
    """Interactions per window of the MAX_SERIES channels with the most in
    their newest window, over the `hours` before the newest window end;
    `more` channels are left out."""
    self._store.check()
    return self._volumes(self._store.latest(INTERACTION_VOLUMES, VOLUME_COLUMNS).rows, hours)

  def _volumes(self, latest: List[Row], hours: int) -> Dict[str, Any]:
    until = _newest_end(latest)
    if until is None:
      return {'hours': hours, 'until_ms': None, 'x': [], 'series': [], 'more': 0}
    since = until - hours * HOUR_MS
    recent = [row for row in latest if row['window_start'] >= since]
    busiest = sorted(recent, key=lambda row: (-(row['volume'] or 0), row['channel']))[:MAX_SERIES]
    series = {
      row['channel']: self._series(INTERACTION_VOLUMES, VOLUME_COLUMNS, row['channel'], since)
      for row in busiest
    }
    return {
      'hours': hours,
      'until_ms': until,
      **_aligned(series, ('volume',)),
      'more': len(recent) - len(busiest),
    }

  def pattern_alerts(self, limit: int = ALERT_LIMIT) -> Dict[str, Any]:
    """The newest pattern alerts first."""
    result = self._store.newest(PATTERN_ALERTS, ALERT_COLUMNS, 'timestamp', limit)
    return {
      'alerts': [{name: clip(value) for name, value in row.items()} for row in result.rows],
      'complete': result.complete,
    }

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
    time when `since_ms` is None or the store lacks the column: the
    COUNT_LIMIT largest groups, and the rows and groups in all."""
    if time_column not in self._store.columns(table):
      since_ms = None
    result = self._store.count(table, ('source', 'reason'), COUNT_LIMIT, time_column, since_ms)
    counts = [
      {'source': clip(source), 'reason': clip(reason), 'count': n}
      for (source, reason), n in result.counts.items()
    ]
    return {
      'since_ms': since_ms,
      'total': result.total,
      'groups': result.groups,
      'counts': counts,
      'complete': result.complete,
    }

  def _health(
    self, latest_calls: List[Row], latest_volumes: List[Row], now_ms: int
  ) -> Dict[str, Any]:
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

  def health(self) -> Dict[str, Any]:
    """Lag and staleness per flow; late events per reason over the last
    hour of data, dead letters per reason."""
    return self.read().health

  def read(self) -> Board:
    """Reads the store once: everything the pages show besides trends and
    drill-downs."""
    self._store.check()
    now_ms = int(self._clock() * 1000)
    columns, has_asa = self._window_columns()
    latest_calls = self._store.latest(ABANDON_METRICS, columns).rows
    by_queue = {queue: rows for (queue, _), rows in _by_window(latest_calls).items()}
    newest_start = max((row['window_start'] for row in latest_calls), default=None)
    live, live_available, live_complete = self._read_live()
    agents, agents_available, agents_complete = self._read_agents()
    ranks = {}
    no_agent = set()
    # Windows' queues in their order, then the queues with live rows only,
    # then those with agents only (staffed, nobody has called yet).
    for queue in dict.fromkeys([*by_queue, *live, *agents]):
      rows = by_queue.get(queue)
      channels = live.get(queue)
      live_tile = None if channels is None else _live_tile(channels, now_ms)
      staffed = agents.get(queue)
      unstaffed = agents_available and _no_agent(
        None if live_tile is None else live_tile['waiting'],
        None if staffed is None else _agent_tile(staffed),
        agents_complete,
      )
      if unstaffed:
        no_agent.add(queue)
      ranks[queue] = _rank(
        queue,
        # One channel is its own total: no copy for the many single-channel queues.
        None if rows is None else rows[0] if len(rows) == 1 else combine(rows),
        rows is not None and rows[0]['window_start'] == newest_start,
        self._thresholds,
        live_tile,
        unstaffed,
      )
    latest_volumes = self._store.latest(INTERACTION_VOLUMES, VOLUME_COLUMNS).rows
    board = Board(
      columns=tuple(columns),
      queues={queue: _compact(rows, columns) for queue, rows in by_queue.items()},
      ranks=ranks,
      newest_start=newest_start,
      has_asa=has_asa,
      newest_window_end=_newest_end(latest_calls),
      volumes=self._volumes(latest_volumes, 1),
      alerts=self.pattern_alerts(),
      health=self._health(latest_calls, latest_volumes, now_ms),
      live={
        queue: tuple(tuple(c[name] for name in LIVE_FIELDS) for c in channels)
        for queue, channels in live.items()
      },
      live_available=live_available,
      live_complete=live_complete,
      now_ms=now_ms,
      agents={
        queue: tuple(tuple(c[name] for name in AGENT_FIELDS) for c in channels)
        for queue, channels in agents.items()
      },
      agents_available=agents_available,
      agents_complete=agents_complete,
      no_agent=frozenset(no_agent),
    )
    today, today_date = self._read_today()
    active, alerts_available, alerts_complete = self._read_alerts()
    board = board._replace(
      today=today,
      today_date=today_date,
      active_alerts=active,
      alerts_available=alerts_available,
      alerts_complete=alerts_complete,
    )
    # The panel of the unfiltered view, once per read: summing 100,000
    # queues per page would cost each page that.
    return board._replace(staffing=_staffing(board, board.ranks))

  def _read_today(self) -> Tuple[Dict[str, tuple], Optional[str]]:
    """Each queue's `today_figures` of the newest local date of
    daily_metrics, and that date (None without rows or the table). A
    queue whose newest date is older has no figures today."""
    if not set(DAILY_COLUMNS) <= self._store.columns(DAILY_METRICS):
      return {}, None
    by_queue: Dict[str, List[Row]] = {}
    for row in self._store.latest(DAILY_METRICS, DAILY_COLUMNS).rows:
      if isinstance(row['queue_id'], str) and isinstance(row['local_date'], str):
        by_queue.setdefault(row['queue_id'], []).append(row)
    today = max((rows[0]['local_date'] for rows in by_queue.values()), default=None)
    return {
      queue: today_figures(rows)
      for queue, rows in by_queue.items()
      if rows[0]['local_date'] == today
    }, today

  def _read_alerts(self) -> Tuple[Tuple[Row, ...], bool, bool]:
    """The firing and pending alerts (`_active_alert`s in `_alert_order`),
    whether the store has the table, and whether every active row was
    read (else the MAX_ALERT_ROWS most recently updated of a state)."""
    have = self._store.columns(ALERTS)
    if not set(ALERT_STATE_COLUMNS) <= have:
      return (), False, True
    columns = ALERT_STATE_COLUMNS + ((NAME_COLUMN,) if NAME_COLUMN in have else ())
    active, complete = [], True
    for state in ACTIVE_STATES:
      read = self._store.newest(
        ALERTS, columns, 'updated_at', MAX_ALERT_ROWS, equal={'state': state}
      )
      active.extend(_active_alert(row) for row in read.rows)
      complete = complete and read.complete and len(read.rows) < MAX_ALERT_ROWS
    return tuple(sorted(active, key=_alert_order)), True, complete

  def alert_history(self, rule: str, queue_id: str, channel: str) -> Optional[Dict[str, Any]]:
    """One alert (rule, queue, channel): its current row and its newest
    notifications (at most HISTORY_LIMIT, over the HISTORY_DAYS before its
    last evaluation and HISTORY_AFTER_MS after), each with its deliveries (at most
    MAX_DELIVERIES_SHOWN); None when the store has no such alert."""
    self._store.check()
    have = self._store.columns(ALERTS)
    if not set(ALERT_STATE_COLUMNS) <= have:
      return None
    columns = ALERT_STATE_COLUMNS + ((NAME_COLUMN,) if NAME_COLUMN in have else ())
    key = {'rule': rule, 'queue_id': queue_id, 'channel': channel}
    found = self._store.newest(ALERTS, columns, 'updated_at', 1, equal=key).rows
    if not found:
      return None
    alert = _active_alert(found[0])
    notifications: List[Row] = []
    complete = True
    until = None if alert['updated_at'] is None else alert['updated_at'] + HISTORY_AFTER_MS
    if until is not None and set(NOTIFICATION_COLUMNS) <= self._store.columns(ALERT_NOTIFICATIONS):
      read = self._store.newest_by_day(
        ALERT_NOTIFICATIONS,
        NOTIFICATION_COLUMNS,
        HISTORY_LIMIT,
        key,
        max(0, until - HISTORY_AFTER_MS - HISTORY_DAYS * 86_400_000),
        until,
      )
      complete = len(read.rows) < HISTORY_LIMIT
      deliveries = set(DELIVERY_COLUMNS) <= self._store.columns(ALERT_DELIVERIES)
      notifications = [self._notification(row, deliveries) for row in read.rows]
    return {'alert': alert, 'notifications': notifications, 'complete': complete}

  def _notification(self, row: Row, deliveries: bool) -> Row:
    """A notification with its values checked and its deliveries, newest
    attempt first."""
    out = {
      'notification_id': _text(row['notification_id']),
      'kind': _text(row['kind']),
      'severity': _text(row['severity']),
      'metric': _text(row['metric']),
      'unit': metric_unit(_text(row['metric'])),
      'span': _text(row['span']),
      'value': _number(row['value']),
      'threshold': _number(row['threshold']),
      'previous_value': _number(row['previous_value']),
      'figure_end': _whole(row['figure_end']),
      'created_at': _whole(row['created_at']),
      'message': _text(row['message'], MESSAGE_CHARS),
      'receivers': _text(row['receivers']),
      'deliveries': [],
    }
    if deliveries and isinstance(row['notification_id'], str):
      read = self._store.newest(
        ALERT_DELIVERIES,
        DELIVERY_COLUMNS,
        'delivered_at',
        MAX_DELIVERIES_SHOWN,
        equal={'notification_id': row['notification_id']},
      )
      out['deliveries'] = [
        {
          'receiver': _text(d['receiver']),
          'status': _text(d['status']),
          'attempts': _whole(d['attempts']),
          'answer': _text(d['answer']),
          'delivered_at': _whole(d['delivered_at']),
        }
        for d in read.rows
      ]
    return out

  def _read_agents(self) -> Tuple[Dict[str, List[Row]], bool, bool]:
    """agent_status as `_agent_channel`s per queue id, whether the store
    has the table with rows, and whether every row was read (else the
    MAX_AGENT_ROWS most recently updated are), as `_read_live`."""
    have = self._store.columns(AGENT_STATUS)
    if not set(AGENT_STATUS_COLUMNS) <= have:
      return {}, False, True
    columns = AGENT_STATUS_COLUMNS + ((NAME_COLUMN,) if NAME_COLUMN in have else ())
    read = self._store.newest(AGENT_STATUS, columns, LIVE_TIME_COLUMN, MAX_AGENT_ROWS)
    agents: Dict[str, List[Row]] = {}
    for row in read.rows:
      queue = row['queue_id']
      if isinstance(queue, str) and queue:
        agents.setdefault(queue, []).append(_agent_channel(row))
    return agents, bool(agents), read.complete and len(read.rows) < MAX_AGENT_ROWS

  def _read_live(self) -> Tuple[Dict[str, List[Row]], bool, bool]:
    """queue_status as `_live_channel`s per queue id, whether the store
    has the table with rows, and whether every row was read (else the
    MAX_LIVE_ROWS most recently updated are). A row without a queue id is
    skipped."""
    have = self._store.columns(QUEUE_STATUS)
    if not set(LIVE_COLUMNS) <= have:
      return {}, False, True
    columns = LIVE_COLUMNS + ((NAME_COLUMN,) if NAME_COLUMN in have else ())
    read = self._store.newest(QUEUE_STATUS, columns, LIVE_TIME_COLUMN, MAX_LIVE_ROWS)
    live: Dict[str, List[Row]] = {}
    for row in read.rows:
      queue = row['queue_id']
      if isinstance(queue, str) and queue:
        live.setdefault(queue, []).append(_live_channel(row))
    # An empty table is a job (or an input format) that reports no live
    # floor yet: tiles without live figures rather than dashes on each.
    return live, bool(live), read.complete and len(read.rows) < MAX_LIVE_ROWS

  def view(self, board: Board, queues: Optional[Sequence[str]], tiles: int) -> Dict[str, Any]:
    """What a page shows of `board`: the tiles of `queues` (all queues when
    None), by queue id when at most `tiles` of them, else the worst `tiles`
    first and `rest` summarising the others; the other sections as read.
    `data_version` changes exactly when a number shown does (not when only
    the clock moved)."""
    ranks = board.ranks
    chosen = _chosen(board, queues)
    if len(chosen) <= tiles:
      shown, others = sorted(chosen), []
    else:
      ranked = sorted(chosen, key=lambda q: ranks[q].key)
      shown, others = ranked[:tiles], [ranks[q] for q in ranked[tiles:]]
    statuses: Dict[str, int] = {}
    for rank in others:
      statuses[rank.status] = statuses.get(rank.status, 0) + 1
    rest = {
      'queues': len(others),
      'statuses': statuses,
      'offered': sum(r.offered or 0 for r in others),
      'abandoned': sum(r.abandoned or 0 for r in others),
      'waiting': sum(r.waiting or 0 for r in others),
      'no_agent': sum(r.no_agent for r in others),
    }
    data = {
      'queues': {
        'wait_label': _wait_label(board.has_asa),
        'newest_window_end': board.newest_window_end,
        'tiles': [self._tile(board, queue) for queue in shown],
        'rest': rest,
        'selected': len(chosen),
        'missing': 0 if queues is None else len(set(queues)) - len(chosen),
        'live': {'available': board.live_available, 'complete': board.live_complete},
        'agents': {'available': board.agents_available, 'complete': board.agents_complete},
        'today': {'available': bool(board.today), 'local_date': board.today_date},
      },
      'active_alerts': _active_alerts(board, queues),
      'staffing': board.staffing if queues is None else _staffing(board, chosen),
      'volumes': board.volumes,
      'alerts': board.alerts,
    }
    health = board.health
    # Counts only: the dead letters' hour moves with the clock.
    observed = [
      data,
      [flow['newest_window_end'] for flow in health['flows']],
      health['late_events']['counts'],
      health['dead_letters']['counts'],
    ]
    return {
      'data_version': _version(observed),
      'thresholds': self._thresholds._asdict(),
      'health': health,
      **data,
    }

  @staticmethod
  def worst(board: Board, queues: Optional[Sequence[str]], count: int) -> List[str]:
    """The ids of the `count` worst queues of `queues` (all when None)
    that have windows: the trend charts draw windows, so a queue with live
    figures only would be an empty line."""
    with_windows = [q for q in _chosen(board, queues) if q in board.queues]
    return heapq.nsmallest(count, with_windows, key=lambda q: board.ranks[q].key)

  @staticmethod
  def worst_staffed(board: Board, queues: Optional[Sequence[str]], count: int) -> List[str]:
    """The ids of the `count` worst queues of `queues` (all when None)
    that have agent rows: the occupancy and AHT charts draw agents, and the
    queues agents log in to need not be those with windows."""
    staffed = [q for q in _chosen(board, queues) if q in board.agents]
    return heapq.nsmallest(count, staffed, key=lambda q: board.ranks[q].key)

  def snapshot(self) -> Dict[str, Any]:
    """The view of all queues with the default number of tiles."""
    return self.view(self.read(), None, DEFAULT_TILES)

  def queue_exists(self, queue_id: str) -> bool:
    """Whether the queue has a window or a live row."""
    self._store.check()
    if self._store.newest(
      ABANDON_METRICS, ('window_start',), 'window_start', 1, equal={'queue_id': queue_id}
    ).rows:
      return True
    # A queue with live rows or agents only (no window yet) has a tile too.
    for table in (QUEUE_STATUS, AGENT_STATUS):
      if LIVE_TIME_COLUMN in self._store.columns(table) and (
        self._store.newest(
          table, (LIVE_TIME_COLUMN,), LIVE_TIME_COLUMN, 1, equal={'queue_id': queue_id}
        ).rows
      ):
        return True
    return False

  def queue_agents(self, queue_id: str) -> Dict[str, Any]:
    """A queue's agents by state and its not-ready reasons, per channel (at
    most MAX_AGENT_CHANNELS, by channel name), from agent_status.
    `available` is False on a store without the table; `complete`: every
    channel row was read."""
    if not set(AGENT_STATUS_COLUMNS) <= self._store.columns(AGENT_STATUS):
      return {'available': False, 'channels': [], 'complete': True}
    read = self._store.newest(
      AGENT_STATUS,
      AGENT_STATUS_COLUMNS,
      LIVE_TIME_COLUMN,
      MAX_AGENT_CHANNELS,
      equal={'queue_id': queue_id},
    )
    channels = sorted((_agent_channel(row) for row in read.rows), key=lambda c: c['channel'])
    for channel in channels:
      del channel['queue_name']
      channel['reasons'] = [{'reason': r, 'agents': n} for r, n in channel['reasons']]
    return {
      'available': True,
      'channels': channels,
      'complete': read.complete and len(read.rows) < MAX_AGENT_CHANNELS,
    }

  def agent_trends(
    self, hours: int, queue_ids: Sequence[str], until: Optional[int]
  ) -> Dict[str, Any]:
    """Occupancy and AHT of `queue_ids` (their channels summed,
    `agent_window`) per window of agent_metrics, over the `hours` before
    `until` (as in `queue_trends`; None: the newest agent window end of
    those queues, for a store with agents but no call windows).
    `available` is False on a store without the table."""
    self._store.check()
    available = set(AGENT_METRIC_COLUMNS) <= self._store.columns(AGENT_METRICS)
    if available and until is None:
      ends = [
        row['window_end']
        for queue in queue_ids
        for row in self._store.newest(
          AGENT_METRICS,
          ('window_start', 'window_end'),
          'window_start',
          1,
          equal={'queue_id': queue},
        ).rows
        if _whole(row['window_end']) is not None
      ]
      until = max(ends, default=None)
    if not available or until is None:
      return {'available': available, 'hours': hours, 'until_ms': until, 'x': [], 'series': []}
    since = until - hours * HOUR_MS
    series = {
      queue: [
        agent_window(rows)
        for rows in _by_window(
          self._series(AGENT_METRICS, AGENT_METRIC_COLUMNS, queue, since)
        ).values()
      ]
      for queue in queue_ids
    }
    return {
      'available': True,
      'hours': hours,
      'until_ms': until,
      **_aligned(series, ('occupancy', 'aht_seconds')),
    }

  def waiting_contacts(self, queue_id: str) -> Dict[str, Any]:
    """The contacts waiting in a queue now, over its channels, oldest
    first (at most MAX_WAITING_LISTED): each with its channel and its
    row's `as_of` and `updated_at`, from which the page ticks its wait.
    `waiting`: the contacts waiting in all (listed or not); `complete`:
    all are listed; `unreadable`: rows or items that were not the job's
    JSON. `available` is False on a store without the table."""
    if not set(WAITING_COLUMNS) <= self._store.columns(WAITING_CONTACTS):
      return {
        'available': False,
        'waiting': None,
        'contacts': [],
        'complete': True,
        'unreadable': 0,
      }
    read = self._store.newest(
      WAITING_CONTACTS,
      WAITING_COLUMNS,
      LIVE_TIME_COLUMN,
      MAX_WAITING_ROWS,
      equal={'queue_id': queue_id},
    )
    contacts: List[Row] = []
    waiting: Optional[int] = 0
    unreadable = 0
    for row in read.rows:
      parsed = parse_contacts(row['contacts'])
      count = _whole(row['waiting'])
      if parsed is None:
        unreadable += 1
      else:
        unreadable += parsed[1]
        channel = clip(row['channel']) if isinstance(row['channel'], str) else ''
        as_of, updated = _whole(row['as_of']), _whole(row['updated_at'])
        contacts.extend(
          {**c, 'channel': channel, 'as_of': as_of, 'updated_at': updated} for c in parsed[0]
        )
        if count is None:
          count = len(parsed[0])
      waiting = None if waiting is None or count is None else waiting + count
    listed = heapq.nsmallest(
      MAX_WAITING_LISTED, contacts, key=lambda c: (c['since'], c['contact_id'], c['channel'])
    )
    return {
      'available': True,
      'waiting': waiting,
      'contacts': listed,
      'complete': (
        read.complete
        and len(read.rows) < MAX_WAITING_ROWS
        and not unreadable
        and len(listed) == waiting
      ),
      'unreadable': unreadable,
    }

  def queue_detail(self, queue_id: str, hours: int, page: int = 0) -> Dict[str, Any]:
    """One queue's windows over the `hours` before its newest window end,
    newest first, WINDOWS_PER_PAGE from page `page` (0 the newest): the
    queue's total and, per channel, its own row (the MAX_CHANNELS_SHOWN
    largest; `other_channels` sums the rest); and its newest late events."""
    self._store.check()
    columns, has_asa = self._window_columns()
    latest = self._store.newest(
      ABANDON_METRICS,
      ('window_start', 'window_end'),
      'window_start',
      1,
      equal={'queue_id': queue_id},
    ).rows
    windows, complete, pages = [], True, 0
    if latest:
      read = self._store.newest(
        ABANDON_METRICS,
        columns,
        'window_start',
        MAX_ROWS_PER_KEY,
        equal={'queue_id': queue_id},
        since_ms=latest[0]['window_end'] - hours * HOUR_MS,
      )
      complete = read.complete and len(read.rows) < MAX_ROWS_PER_KEY
      grouped = sorted(_by_window(read.rows).items(), key=lambda item: -item[0][1])
      pages = -(-len(grouped) // WINDOWS_PER_PAGE)
      shown = [rows for _, rows in grouped[page * WINDOWS_PER_PAGE : (page + 1) * WINDOWS_PER_PAGE]]
      revised = self._revised(queue_id, [row for rows in shown for row in rows])
      for rows in shown:
        windows.append(self._detail_window(rows, has_asa, revised))
    late = self._store.newest(
      LATE_EVENTS,
      LATE_EVENT_COLUMNS,
      LATE_EVENT_TIME_COLUMN,
      LATE_EVENT_LIMIT,
      equal={'source': CALL_EVENTS_SOURCE, 'key': queue_id},
    )
    return {
      'queue_id': clip(queue_id),
      'hours': hours,
      'page': page,
      'pages': pages,
      'wait_label': _wait_label(has_asa),
      'windows': windows,
      'windows_complete': complete,
      'late_events': [
        {name: clip(value, RAW_CHARS if name == 'raw' else MAX_TEXT) for name, value in e.items()}
        for e in late.rows
      ],
      'late_events_complete': late.complete,
      'waiting': self.waiting_contacts(queue_id),
      'agents': self.queue_agents(queue_id),
    }

  def _revised(self, queue_id: str, rows: List[Row]) -> FrozenSet[Tuple[str, int]]:
    """The (channel, window start) of `rows` (one queue's windows) that
    metric_revisions has revisions of: per channel (at most
    MAX_REVISED_CHANNELS), one read of its days from the first window to
    the last."""
    if not rows or not {'channel', 'window_start'} <= self._store.columns(METRIC_REVISIONS):
      return frozenset()
    starts = [row['window_start'] for row in rows]
    channels = sorted({row.get(CHANNEL_COLUMN, VOICE) for row in rows})[:MAX_REVISED_CHANNELS]
    revised = set()
    for channel in channels:
      read = self._store.newest_by_day(
        METRIC_REVISIONS,
        ('window_start',),
        MAX_ROWS_PER_KEY,
        {'queue_id': queue_id, 'channel': channel},
        min(starts),
        max(starts),
      )
      revised.update((channel, row['window_start']) for row in read.rows)
    return frozenset(revised)

  def window_detail(
    self, queue_id: str, channel: str, window_start: int, contacts: str = 'abandoned'
  ) -> Optional[Dict[str, Any]]:
    """One window of a queue's channel: its figures (as `queue_detail`'s
    channel rows), its contacts by event time (the abandoned ones, or
    `contacts='all'`; at most MAX_WINDOW_CONTACTS) with their outcome and
    wait, and its revisions by pane (at most MAX_REVISIONS). `available`
    is False on a store without the table (and a window's contacts are
    gone once the job's --contact_detail_ttl_seconds has passed);
    `complete`: all are listed. None when the store has no such window."""
    if contacts not in CONTACT_FILTERS:
      raise ValueError(f'contacts must be one of {", ".join(CONTACT_FILTERS)}, got {contacts!r}')
    self._store.check()
    columns, has_asa = self._window_columns()
    key = {'queue_id': queue_id, 'channel': channel, 'window_start': window_start}
    if CHANNEL_COLUMN not in columns:
      # A store before channels holds voice calls only.
      if channel != VOICE:
        return None
      key = {'queue_id': queue_id, 'window_start': window_start}
    found = self._store.newest(ABANDON_METRICS, columns, 'window_start', 1, equal=key).rows
    if not found:
      return None
    window = _window_row(found[0], self._thresholds, has_asa)
    window['channel'] = clip(channel)
    key = {'queue_id': queue_id, 'channel': channel, 'window_start': window_start}
    listed = {'available': False, 'which': contacts, 'contacts': [], 'complete': True}
    if set(WINDOW_CONTACT_COLUMNS) <= self._store.columns(WINDOW_CONTACTS):
      read = self._store.in_window(
        WINDOW_CONTACTS,
        WINDOW_CONTACT_COLUMNS,
        key,
        ('event_timestamp', 'contact_id'),
        MAX_WINDOW_CONTACTS,
        equal={'outcome': ABANDONED} if contacts == 'abandoned' else None,
      )
      listed.update(
        available=True,
        contacts=[_window_contact(row) for row in read.rows],
        complete=read.complete,
      )
    revisions = {'available': False, 'revisions': [], 'complete': True}
    if set(REVISION_COLUMNS) <= self._store.columns(METRIC_REVISIONS):
      read = self._store.in_window(
        METRIC_REVISIONS, REVISION_COLUMNS, key, ('pane_index',), MAX_REVISIONS
      )
      revisions.update(
        available=True, revisions=[_revision(row) for row in read.rows], complete=read.complete
      )
    window['revised'] = bool(revisions['revisions']) or window['pane_timing'] in REVISED_TIMINGS
    return {
      'queue_id': clip(queue_id),
      'channel': clip(channel),
      'window_start': window_start,
      'wait_label': _wait_label(has_asa),
      'window': window,
      'contacts': listed,
      'revisions': revisions,
    }

  def _detail_window(
    self, rows: List[Row], has_asa: bool, revised: FrozenSet[Tuple[str, int]] = frozenset()
  ) -> Row:
    """A window of the drill-down: the total and its channels; `revised`
    (see `_revised`) marks a channel row that was revised after its end, or
    whose pane is a LATE or RESTATED one, and the total when one is."""
    window = _window_row(combine(rows), self._thresholds, has_asa)
    by_size = sorted(
      rows, key=lambda row: (-(row['total_calls'] or 0), row.get(CHANNEL_COLUMN, VOICE))
    )
    shown, others = by_size[:MAX_CHANNELS_SHOWN], by_size[MAX_CHANNELS_SHOWN:]
    window['channels'] = [
      {
        'channel': clip(row.get(CHANNEL_COLUMN, VOICE)),
        **_window_row(row, self._thresholds, has_asa),
        'revised': (
          row['pane_timing'] in REVISED_TIMINGS
          or (row.get(CHANNEL_COLUMN, VOICE), row['window_start']) in revised
        ),
      }
      for row in shown
    ]
    window['revised'] = any(row['pane_timing'] in REVISED_TIMINGS for row in rows) or any(
      (row.get(CHANNEL_COLUMN, VOICE), row['window_start']) in revised for row in rows
    )
    window['other_channels'] = (
      {'channels': len(others), **_window_row(combine(others), self._thresholds, has_asa)}
      if others
      else None
    )
    return window
