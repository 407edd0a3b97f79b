"""The result tables, defined once for every sink.

A table is a record type (NamedTuple) plus its primary key. Column names and
types come from the record's annotations, so SQLite DDL, the Cassandra CQL
schema and the Kafka JSON values cannot drift from the records the pipeline
produces.

Some stores partition time series by a UTC day (`DayBucket`): a column of
the store, derived from a time column of the record, not a record field.
"""

import datetime
import functools
import typing
from typing import Dict, NamedTuple, Optional, Tuple, Type

from transforms.records import (
  AbandonMetrics,
  AgentActivity,
  AgentMetrics,
  AgentStatus,
  Alert,
  AlertDelivery,
  AlertNotification,
  DailyMetrics,
  DeadLetter,
  InteractionVolume,
  LateEvent,
  MetricRevision,
  PatternAlert,
  QueueStatus,
  RollingMetrics,
  WaitingContacts,
  WindowContact,
)


class DayBucket(NamedTuple):
  """A column `column` holding the UTC day ('YYYY-MM-DD') of the record's
  epoch-ms column `source_column`.

  Stores whose partitions must stay bounded (Cassandra) add it to the
  partition key of an append-only table; others ignore it.
  """

  column: str
  source_column: str

  def value(self, row: tuple) -> str:
    """The bucket of `row`. Raises TypeError or OverflowError when the
    source column is not an epoch-ms integer within datetime's range."""
    return _utc_day(getattr(row, self.source_column) // _MS_PER_DAY)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_MS_PER_DAY = 86_400_000


# Cached: a sink writes every contact of a window with the same day, and
# formatting it was a few per cent of the Cassandra workers' time.
@functools.lru_cache(maxsize=1024)
def _utc_day(days_since_epoch: int) -> str:
  return (_EPOCH + datetime.timedelta(days=days_since_epoch)).strftime('%Y-%m-%d')


class Table(NamedTuple):
  """A result table.

  `version_column`: a column that grows with each update of the same row
  (the pane index); sinks apply an update only if it is not older than the
  stored row, so out-of-order or repeated writes converge.
  `day_bucket`: see DayBucket; for tables that grow with time, not with keys.
  `version_is_time`: the version column is a processing time (epoch ms),
  not a count: Cassandra takes it as the write timestamp itself, so it
  outranks rows written before it by older releases (transforms/cassandra/
  schema.py bind_values).
  `expiring`: rows are kept `--contact_detail_ttl_seconds` after they are
  written (SinkConfigs.contact_detail_ttl): a Cassandra TTL, pruned from
  SQLite, the topic's retention on Kafka.
  """

  name: str
  record_type: Type[tuple]
  primary_key: Tuple[str, ...]
  version_column: Optional[str] = None
  day_bucket: Optional[DayBucket] = None
  expiring: bool = False
  version_is_time: bool = False

  @property
  def columns(self) -> Tuple[Tuple[str, type], ...]:
    """(name, python type) pairs in record order; Optional[X] becomes X."""
    hints = typing.get_type_hints(self.record_type)
    return tuple((name, _base_type(hints[name])) for name in self.record_type._fields)


def _base_type(hint) -> type:
  args = [a for a in typing.get_args(hint) if a is not type(None)]
  return args[0] if args else hint


ABANDON_METRICS = Table(
  'abandon_metrics',
  AbandonMetrics,
  ('queue_id', 'channel', 'window_start'),
  version_column='pane_index',
)
INTERACTION_VOLUMES = Table(
  'interaction_volumes', InteractionVolume, ('channel', 'window_start'), version_column='pane_index'
)
PATTERN_ALERTS = Table('pattern_alerts', PatternAlert, ('customer_id', 'channel', 'timestamp'))
# One event can be late for two reasons (a volume window and the pattern
# order), hence the reason in the key.
# Late events by the day of their event time, dead letters by the day they
# were rejected (a bad record may have no event time).
LATE_EVENTS = Table(
  'late_events',
  LateEvent,
  ('source', 'event_id', 'reason'),
  version_column='reprocessed_at',
  version_is_time=True,
  day_bucket=DayBucket('day', 'event_timestamp'),
)
DEAD_LETTERS = Table(
  'dead_letters', DeadLetter, ('source', 'origin'), day_bucket=DayBucket('day', 'received_at')
)

# Audit: the contacts behind each window (kept a bounded time, by the day
# of their window so no partition grows without bound) and every change to
# a window's figures after its end.
WINDOW_CONTACTS = Table(
  'window_contacts',
  WindowContact,
  ('queue_id', 'channel', 'window_start', 'contact_id'),
  day_bucket=DayBucket('day', 'window_start'),
  expiring=True,
)
METRIC_REVISIONS = Table(
  'metric_revisions',
  MetricRevision,
  ('queue_id', 'channel', 'window_start', 'pane_index'),
  day_bucket=DayBucket('day', 'window_start'),
)

# The live floor: one row per queue and channel, replaced as it changes;
# `revision` (processing time in us) orders the rows, so a restarted job's
# rows replace an earlier run's.
QUEUE_STATUS = Table(
  'queue_status', QueueStatus, ('queue_id', 'channel'), version_column='revision'
)
WAITING_CONTACTS = Table(
  'waiting_contacts', WaitingContacts, ('queue_id', 'channel'), version_column='revision'
)

# Agents: by state per queue and channel now (replaced as it changes), and
# their time per window per queue and channel and per agent; an agent's
# own rows are kept 30 days (by day, as the late events).
AGENT_STATUS = Table(
  'agent_status', AgentStatus, ('queue_id', 'channel'), version_column='revision'
)
AGENT_METRICS = Table(
  'agent_metrics',
  AgentMetrics,
  ('queue_id', 'channel', 'window_start'),
  version_column='pane_index',
)
AGENT_ACTIVITY = Table(
  'agent_activity',
  AgentActivity,
  ('agent_id', 'window_start'),
  version_column='pane_index',
  day_bucket=DayBucket('day', 'window_start'),
)

# Alerting: figures over rolling spans and the local day (replaced as
# panes restate them), the state of each rule per queue and channel, and
# its history of notifications and deliveries, kept by day.
ROLLING_METRICS = Table(
  'rolling_metrics',
  RollingMetrics,
  ('queue_id', 'channel', 'span', 'span_end'),
  version_column='panes_counted',
)
DAILY_METRICS = Table(
  'daily_metrics',
  DailyMetrics,
  ('queue_id', 'channel', 'local_date'),
  version_column='panes_counted',
)
ALERTS = Table('alerts', Alert, ('rule', 'queue_id', 'channel'), version_column='revision')
ALERT_NOTIFICATIONS = Table(
  'alert_notifications',
  AlertNotification,
  ('rule', 'queue_id', 'channel', 'created_at', 'notification_id'),
  day_bucket=DayBucket('day', 'created_at'),
)
ALERT_DELIVERIES = Table(
  'alert_deliveries',
  AlertDelivery,
  ('notification_id', 'receiver'),
  version_column='attempts',
)

TABLES: Dict[str, Table] = {
  t.name: t
  for t in (
    ABANDON_METRICS,
    INTERACTION_VOLUMES,
    PATTERN_ALERTS,
    LATE_EVENTS,
    DEAD_LETTERS,
    QUEUE_STATUS,
    WAITING_CONTACTS,
    AGENT_STATUS,
    AGENT_METRICS,
    AGENT_ACTIVITY,
    ROLLING_METRICS,
    DAILY_METRICS,
    ALERTS,
    ALERT_NOTIFICATIONS,
    ALERT_DELIVERIES,
    WINDOW_CONTACTS,
    METRIC_REVISIONS,
  )
}
