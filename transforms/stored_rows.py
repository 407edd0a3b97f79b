"""What a reprocessing run reads back from the result store: late calls and
the windows they belong to.

In: the stores' frozen settings (`SinkConfigs`, options/config.py); the
store read is the first of sqlite and cassandra that `--sink` names.
Out: a `StoredRows` per DoFn instance, opened in its `setup()` on the
worker (never while the graph is built), with
  `late_events(source, reason, from_ms, to_ms)`: the late_events rows not
    yet folded (reprocessed_at 0) whose event time is in [from, to);
  `window(queue_id, channel, window_start)`: the window's latest
    abandon_metrics pane (None when it has none) and the ids of the
    contacts it already counts (its window_contacts rows and every id in
    its metric_revisions rows' `contact_ids`).
`ReadLateCalls` turns the late rows into (OfferedCall, LateEvent) pairs,
the call read from the row's `record` (its `raw` in rows of releases that
kept only the normalised record there); a row whose record is not an
OfferedCall becomes a dead letter.

Tables a store does not hold yet (a store written before the audit
tables, or a dry run on a store never prepared) read as empty.
"""

import abc
import datetime
import functools
import json
import logging
import os
import sqlite3
from typing import Callable, FrozenSet, Iterator, List, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from options.config import CassandraSettings, SinkConfigs
from transforms.parsing import InvalidRecord, dead_letter_output
from transforms.records import (
  CHANNELS,
  OUTCOMES,
  AbandonMetrics,
  LateEvent,
  OfferedCall,
  SourceRecord,
)
from transforms.schema import (
  ABANDON_METRICS,
  LATE_EVENTS,
  METRIC_REVISIONS,
  WINDOW_CONTACTS,
)

_LOGGER = logging.getLogger(__name__)
METRICS_NAMESPACE = 'reprocess'
# The dead-letter reason of a late_events row whose routed record is not
# the JSON of an OfferedCall (transforms/call_flow.py writes it).
UNREADABLE_LATE_EVENT = 'unreadable_late_event'
# The stores a reprocessing run can read, in --sink's order of preference.
READABLE_SINKS = ('sqlite', 'cassandra')
_DAY_MS = 86_400_000


class StoredWindow(NamedTuple):
  """A window as the store holds it: its latest pane (None when the window
  has no row) and the ids of the contacts counted in it that the store
  knows of."""

  row: Optional[AbandonMetrics]
  contact_ids: FrozenSet[str]


class StoredRows(abc.ABC):
  """Reads one store; one instance per DoFn instance (worker)."""

  @abc.abstractmethod
  def open(self) -> None:
    """Connects to the store."""

  @abc.abstractmethod
  def close(self) -> None:
    """Releases connections."""

  @abc.abstractmethod
  def late_events(self, source: str, reason: str, from_ms: int, to_ms: int) -> Iterator[LateEvent]:
    """The rows of `source` and `reason` whose event_timestamp is in
    [from_ms, to_ms) and reprocessed_at is 0."""

  @abc.abstractmethod
  def window(self, queue_id: str, channel: str, window_start: int) -> StoredWindow:
    """The window's latest pane and known contacts."""


def record_of(record_type, values) -> tuple:
  """`record_type` of a stored row's values in field order; NULL columns (a
  column added after the row was written) take the field's default."""
  defaults = record_type._field_defaults
  return record_type(
    *(
      defaults.get(name) if value is None else value
      for name, value in zip(record_type._fields, values)
    )
  )


def revision_contact_ids(contact_ids: Optional[str]) -> List[str]:
  """The ids of a metric_revisions row's `contact_ids` JSON array; [] (and
  a warning) for one that is not an array of strings."""
  try:
    ids = json.loads(contact_ids or '[]')
  except ValueError:
    ids = None
  if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
    _LOGGER.warning('metric_revisions: contact_ids %.200r is not a JSON array of ids', contact_ids)
    return []
  return ids


def utc_day(epoch_ms: int) -> str:
  """The UTC day 'YYYY-MM-DD' of an epoch-ms time: the day bucket of the
  Cassandra tables partitioned by day (transforms/schema.py DayBucket)."""
  when = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(
    milliseconds=epoch_ms
  )
  return when.strftime('%Y-%m-%d')


def utc_days(from_ms: int, to_ms: int) -> List[str]:
  """Every UTC day that [from_ms, to_ms) touches, in order."""
  first = from_ms - from_ms % _DAY_MS
  return [utc_day(day) for day in range(first, to_ms, _DAY_MS)]


def _columns(record_type) -> str:
  return ', '.join(record_type._fields)


class SqliteStoredRows(StoredRows):
  """Reads the SQLite file of `--sqlite_path`, read-only: a missing file
  is an empty store (a dry run creates nothing)."""

  def __init__(self, path: str):
    self._path = path
    self._conn: Optional[sqlite3.Connection] = None
    self._tables: FrozenSet[str] = frozenset()

  def open(self) -> None:
    path = os.path.realpath(self._path)
    if not os.path.isfile(path):
      return
    self._conn = sqlite3.connect(f'file:{path}?mode=ro', uri=True, timeout=60)
    self._tables = frozenset(
      name for (name,) in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    )

  def close(self) -> None:
    if self._conn is not None:
      self._conn.close()
      self._conn = None

  def _has(self, table: str) -> bool:
    return self._conn is not None and table in self._tables

  def late_events(self, source: str, reason: str, from_ms: int, to_ms: int) -> Iterator[LateEvent]:
    if not self._has(LATE_EVENTS.name):
      return
    rows = self._conn.execute(
      f'SELECT {_columns(LateEvent)} FROM {LATE_EVENTS.name} '
      'WHERE source = ? AND reason = ? AND event_timestamp >= ? AND event_timestamp < ? '
      'AND COALESCE(reprocessed_at, 0) = 0 ORDER BY event_timestamp, event_id',
      (source, reason, from_ms, to_ms),
    )
    for values in rows:
      yield record_of(LateEvent, values)

  def window(self, queue_id: str, channel: str, window_start: int) -> StoredWindow:
    key = (queue_id, channel, window_start)
    where = 'WHERE queue_id = ? AND channel = ? AND window_start = ?'
    row = None
    if self._has(ABANDON_METRICS.name):
      found = self._conn.execute(
        f'SELECT {_columns(AbandonMetrics)} FROM {ABANDON_METRICS.name} {where}', key
      ).fetchone()
      row = None if found is None else record_of(AbandonMetrics, found)
    ids = set()
    if self._has(WINDOW_CONTACTS.name):
      ids.update(
        i
        for (i,) in self._conn.execute(
          f'SELECT contact_id FROM {WINDOW_CONTACTS.name} {where}', key
        )
      )
    if self._has(METRIC_REVISIONS.name):
      for (contact_ids,) in self._conn.execute(
        f'SELECT contact_ids FROM {METRIC_REVISIONS.name} {where}', key
      ):
        ids.update(revision_contact_ids(contact_ids))
    return StoredWindow(row, frozenset(ids))


class CassandraStoredRows(StoredRows):
  """Reads the keyspace of `--cassandra_keyspace`. Late events and the
  audit tables are partitioned by UTC day (transforms/schema.py): each day
  of the range is one query."""

  def __init__(self, settings: CassandraSettings):
    self._settings = settings
    self._cluster = None
    self._session = None

  def open(self) -> None:
    # Imported here: a job reading SQLite never loads the driver's cluster
    # code on its workers.
    from transforms.cassandra.connection import connect

    self._cluster, self._session = connect(self._settings)

  def close(self) -> None:
    if self._cluster is not None:
      self._cluster.shutdown()
    self._cluster = self._session = None

  def _table(self, name: str) -> str:
    return f'{self._settings.keyspace}.{name}'

  def late_events(self, source: str, reason: str, from_ms: int, to_ms: int) -> Iterator[LateEvent]:
    query = self._session.prepare(
      f'SELECT {_columns(LateEvent)} FROM {self._table(LATE_EVENTS.name)} '
      'WHERE source = ? AND day = ?'
    )
    for day in utc_days(from_ms, to_ms):
      # The partition's rows are filtered here: reason, event time and the
      # mark are not key columns, and a day's partition is bounded.
      for values in self._session.execute(query, (source, day)):
        event = record_of(LateEvent, tuple(values))
        if (
          event.reason == reason
          and from_ms <= event.event_timestamp < to_ms
          and not event.reprocessed_at
        ):
          yield event

  def window(self, queue_id: str, channel: str, window_start: int) -> StoredWindow:
    found = self._session.execute(
      f'SELECT {_columns(AbandonMetrics)} FROM {self._table(ABANDON_METRICS.name)} '
      'WHERE queue_id = %s AND channel = %s AND window_start = %s',
      (queue_id, channel, window_start),
    ).one()
    row = None if found is None else record_of(AbandonMetrics, tuple(found))
    key = (queue_id, utc_day(window_start), channel, window_start)
    where = 'WHERE queue_id = %s AND day = %s AND channel = %s AND window_start = %s'
    ids = {
      r.contact_id
      for r in self._session.execute(
        f'SELECT contact_id FROM {self._table(WINDOW_CONTACTS.name)} {where}', key
      )
    }
    for r in self._session.execute(
      f'SELECT contact_ids FROM {self._table(METRIC_REVISIONS.name)} {where}', key
    ):
      ids.update(revision_contact_ids(r.contact_ids))
    return StoredWindow(row, frozenset(ids))


StoredRowsFactory = Callable[[], StoredRows]


def stored_rows_factory(configs: SinkConfigs) -> StoredRowsFactory:
  """A picklable factory of the reader of the first store `configs` names
  that can be read back (READABLE_SINKS); raises ValueError when none is.
  Connects to nothing."""
  for name in configs.names:
    if name == 'sqlite':
      return functools.partial(SqliteStoredRows, configs.sqlite_path)
    if name == 'cassandra':
      return functools.partial(CassandraStoredRows, configs.cassandra)
  raise ValueError(
    f'--sink {", ".join(configs.names)}: reprocessing reads the late events and '
    f'windows back from {" or ".join(READABLE_SINKS)}; name one of them'
  )


def routed_record(event: LateEvent) -> Tuple[str, str]:
  """(column, text) of the record a late_events row was routed as: its
  `record`, or its `raw` when `record` is empty (rows of releases that
  kept the normalised record in `raw`; `raw` is now what the producer
  sent)."""
  return ('record', event.record) if event.record else ('raw', event.raw)


def offered_call_of(text: str, column: str = 'record') -> OfferedCall:
  """The OfferedCall a late_events row's routed record holds (the JSON of
  its fields, transforms/windowing.py to_late_event), `text` read from
  `column` (routed_record); raises InvalidRecord UNREADABLE_LATE_EVENT
  saying what is wrong."""
  try:
    fields = json.loads(text)
  except (TypeError, ValueError) as e:
    raise InvalidRecord(UNREADABLE_LATE_EVENT, f'{column} is not JSON: {e}') from None
  if not isinstance(fields, dict):
    raise InvalidRecord(UNREADABLE_LATE_EVENT, f'{column} is not a JSON object')
  missing = [
    f for f in OfferedCall._fields if f not in OfferedCall._field_defaults and f not in fields
  ]
  if missing:
    raise InvalidRecord(UNREADABLE_LATE_EVENT, f'{column} lacks {", ".join(missing)}')
  unknown = sorted(set(fields) - set(OfferedCall._fields))
  if unknown:
    raise InvalidRecord(UNREADABLE_LATE_EVENT, f'{column} has unknown fields {", ".join(unknown)}')
  call = OfferedCall(**fields)
  problems = []
  for name in ('call_id', 'queue_id'):
    if not isinstance(getattr(call, name), str) or not getattr(call, name):
      problems.append(f'{name} is not a text')
  if not _is_int(call.timestamp):
    problems.append('timestamp is not an integer')
  if call.outcome not in OUTCOMES:
    problems.append(f'outcome {call.outcome!r} is not one of {", ".join(OUTCOMES)}')
  wait = call.wait_seconds
  if wait is not None and (
    isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0
  ):
    problems.append('wait_seconds is not a number >= 0 or null')
  if call.channel not in CHANNELS:
    problems.append(f'channel {call.channel!r} is not one of the channels')
  if call.record_updated_at is not None and not _is_int(call.record_updated_at):
    problems.append('record_updated_at is not an integer or null')
  if not isinstance(call.raw, str):
    problems.append('raw is not a text')
  if problems:
    raise InvalidRecord(UNREADABLE_LATE_EVENT, '; '.join(problems))
  return call


def _is_int(value: object) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


class ReadLateCalls(beam.DoFn):
  """Reads the late calls of an event-time range from the store.

  Input: (from_ms, to_ms) ranges. Main output: (OfferedCall, LateEvent)
  pairs, the late_events rows of `source` and `reason` not yet folded.
  Tagged output `dead_letters`: DeadLetter (reason UNREADABLE_LATE_EVENT,
  origin `late_events:<event_id>`, raw the text read) for a row whose
  routed record (routed_record) is not an OfferedCall, also counted
  (namespace `reprocess`).
  """

  def __init__(self, stored_rows: StoredRowsFactory, source: str, reason: str):
    self._stored_rows = stored_rows
    self._source = source
    self._reason = reason
    self._read = Metrics.counter(METRICS_NAMESPACE, 'late_events_read')
    self._store: Optional[StoredRows] = None

  def setup(self):
    self._store = self._stored_rows()
    self._store.open()

  def process(self, time_range: Tuple[int, int]):
    from_ms, to_ms = time_range
    for event in self._store.late_events(self._source, self._reason, from_ms, to_ms):
      self._read.inc()
      column, text = routed_record(event)
      try:
        yield offered_call_of(text, column), event
      except InvalidRecord as e:
        record = SourceRecord(
          event.source, f'{LATE_EVENTS.name}:{event.event_id}', (text or '').encode('utf-8')
        )
        yield dead_letter_output(record, e, METRICS_NAMESPACE)

  def teardown(self):
    if self._store is not None:
      self._store.close()
      self._store = None
