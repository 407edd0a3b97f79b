"""Read-only access to the result tables, for the wallboard.

`Store` is the small interface the query layer (pipelines/wallboard/
queries.py) needs; `SqliteStore` and `CassandraStore` implement it over the
tables of transforms/schema.py. Columns are always selected by name, so
tables that gain columns keep working. Table and column names come from
transforms/schema.py and the query layer, never from a request; values are
bound parameters.

Keys: a table's partition is its first primary-key column
(`Table.primary_key[0]`, e.g. queue_id); its time column is the last
(window_start). `latest` answers "the newest rows of every key" in one
query on SQLite; Cassandra answers it from each partition's clustering
order, skipping from one group of the middle key columns (e.g. channel) to
the next. Any other question on Cassandra is a scan, filtered by the
server, of at most `scan_limit` rows, reported as incomplete when it stops
there.

The live tables (`queue_status`, `waiting_contacts`: LIVE_TABLES) and the
agent tables (`agent_status`, `agent_metrics`, `agent_activity`:
AGENT_TABLES), the alerting tables (`rolling_metrics`, `daily_metrics`,
`alerts`, `alert_notifications`, `alert_deliveries`: ALERTING_TABLES) and
the audit tables (`window_contacts`, `metric_revisions`: AUDIT_TABLES) are
optional: a store written by a release before them (an
older file or keyspace), or by a job given no agent events (it creates no
agent tables) or no alert rules, opens, and `columns` of such a table is empty, so the query
layer shows no live or staffing figures instead of failing. queue_status
and agent_status hold one row per queue and channel: the query layer reads
them whole (`newest` without `equal`: SQLite keeps the most recently
updated rows up to the limit, Cassandra scans up to `scan_limit`), and
waiting_contacts, agent_status and agent_metrics by queue.

`newest_by_day` reads a table with a day bucket (alert_notifications) in a
time range: one query on SQLite; on Cassandra one partition per UTC day,
newest day first, until it has enough rows, never a scan.

`in_window` reads the rows of one window of a table with a day bucket
(window_contacts, metric_revisions: a queue's channel's window): one query
on SQLite; on Cassandra one slice of one partition (the day of the
window's start), never a scan.

A SQLite store replaced at its path (a new run published by
transforms/sqlite_sink.publish, or a file copied over it) is noticed by
`check`, which reopens it and logs one line.
"""

import abc
import datetime
import heapq
import logging
import os
import pathlib
import sqlite3
import threading
from typing import Any, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from cassandra.query import SimpleStatement

from transforms.cassandra import CassandraSettings, connect
from transforms.schema import (
  AGENT_ACTIVITY,
  AGENT_METRICS,
  AGENT_STATUS,
  ALERT_DELIVERIES,
  ALERT_NOTIFICATIONS,
  ALERTS,
  DAILY_METRICS,
  METRIC_REVISIONS,
  QUEUE_STATUS,
  ROLLING_METRICS,
  TABLES,
  WAITING_CONTACTS,
  WINDOW_CONTACTS,
  Table,
)

Row = Dict[str, Any]
_LOGGER = logging.getLogger(__name__)

DEFAULT_SCAN_LIMIT = 100_000
# Tables of a later release than some stores still read: absent, they read
# as having no columns (and so no rows) instead of refusing the store.
LIVE_TABLES = frozenset({QUEUE_STATUS.name, WAITING_CONTACTS.name})
# The job creates these only when given agent events.
AGENT_TABLES = frozenset({AGENT_STATUS.name, AGENT_METRICS.name, AGENT_ACTIVITY.name})
# The job creates these only when given alert rules (a release before
# them has none).
ALERTING_TABLES = frozenset(
  t.name for t in (ROLLING_METRICS, DAILY_METRICS, ALERTS, ALERT_NOTIFICATIONS, ALERT_DELIVERIES)
)
# The contacts behind each window and the changes of its figures (a
# release before them has none; a job run with
# --contact_detail_ttl_seconds=0 writes no contacts).
AUDIT_TABLES = frozenset({WINDOW_CONTACTS.name, METRIC_REVISIONS.name})
OPTIONAL_TABLES = LIVE_TABLES | AGENT_TABLES | ALERTING_TABLES | AUDIT_TABLES
REQUIRED_TABLES = frozenset(TABLES) - OPTIONAL_TABLES
_FETCH_SIZE = 5_000
_DAY_MS = 86_400_000


class StoreError(RuntimeError):
  """The store cannot be read as a result store (missing file or table)."""


class Rows(NamedTuple):
  """Rows, newest first; `complete` is False when a scan stopped at the
  store's scan limit, so the rows are the newest of those scanned only."""

  rows: List[Row]
  complete: bool


class Counts(NamedTuple):
  """Row counts of the `limit` largest groups (most rows first), the rows
  and groups in all; `complete` as in `Rows`."""

  counts: Dict[Tuple[Any, ...], int]
  total: int
  groups: int
  complete: bool


def _top(counts: Mapping[Tuple[Any, ...], int], limit: int, complete: bool) -> Counts:
  top = heapq.nsmallest(limit, counts.items(), key=lambda item: (-item[1], item[0]))
  return Counts(dict(top), sum(counts.values()), len(counts), complete)


class Store(abc.ABC):
  """The result tables, read-only."""

  @abc.abstractmethod
  def columns(self, table: Table) -> FrozenSet[str]:
    """The table's columns as the store has them now; none for a table
    the store does not have (OPTIONAL_TABLES of an earlier release or
    of a job without agent events)."""

  def check(self) -> None:  # noqa: B027 (optional: stores that cannot be replaced)
    """Called before each group of reads: reopens a store that was
    replaced; raises StoreError when it cannot be read now."""

  @abc.abstractmethod
  def latest(self, table: Table, columns: Sequence[str]) -> Rows:
    """For each value of the table's partition column, its rows at the
    largest value of its time column (the last primary-key column): e.g.
    every channel's row of each queue's newest window start."""

  @abc.abstractmethod
  def newest(
    self,
    table: Table,
    columns: Sequence[str],
    time_column: str,
    limit: int,
    equal: Optional[Mapping[str, Any]] = None,
    since_ms: Optional[int] = None,
  ) -> Rows:
    """Up to `limit` rows with `column = value` for each item of `equal`
    and `time_column >= since_ms`, largest `time_column` first; `columns`
    include `time_column`."""

  def newest_by_day(
    self,
    table: Table,
    columns: Sequence[str],
    limit: int,
    equal: Mapping[str, Any],
    since_ms: int,
    until_ms: int,
  ) -> Rows:
    """Up to `limit` rows of a table with a day bucket, with `column =
    value` for each item of `equal` and the bucket's source column (the
    time column) from `since_ms` to `until_ms`, newest first. `equal` names
    the table's first primary-key column and the clustering columns
    before the time column; `columns` include the time column.

    This default reads `newest` from `since_ms` and drops the rows after
    `until_ms` (so fewer than `limit` when there are such rows); the
    stores answer exactly."""
    time_column = table.day_bucket.source_column
    read = self.newest(table, columns, time_column, limit, equal, since_ms)
    return Rows([row for row in read.rows if row[time_column] <= until_ms], read.complete)

  def in_window(
    self,
    table: Table,
    columns: Sequence[str],
    key: Mapping[str, Any],
    order_by: Sequence[str],
    limit: int,
    equal: Optional[Mapping[str, Any]] = None,
  ) -> Rows:
    """Up to `limit` rows of a table with a day bucket whose primary key
    begins with `key` (its columns up to the bucket's source column: e.g.
    queue_id, channel, window_start, one window of a queue's channel), with
    `column = value` for each item of `equal` (other columns), ordered by
    `order_by` ascending; `complete` is False when there were more.

    This default reads `newest` on the key's last column and sorts; the
    stores answer in one query."""
    time_column = table.day_bucket.source_column
    read = self.newest(table, columns, time_column, limit + 1, {**key, **(equal or {})})
    rows = sorted(read.rows, key=lambda row: _sort_key(row, order_by))
    return Rows(rows[:limit], read.complete and len(rows) <= limit)

  @abc.abstractmethod
  def count(
    self,
    table: Table,
    group_by: Sequence[str],
    limit: int,
    time_column: Optional[str] = None,
    since_ms: Optional[int] = None,
  ) -> Counts:
    """Rows per distinct `group_by` values (with `time_column >=
    since_ms` when given): the `limit` largest groups."""

  @abc.abstractmethod
  def close(self) -> None:
    """Releases connections."""


def _where(
  equal: Mapping[str, Any], time_column: Optional[str], since_ms: Optional[int]
) -> Tuple[str, List[Any]]:
  """` WHERE a = ? AND t >= ?` (or '') and its parameters; the same text is
  valid SQL and CQL."""
  terms = [f'{name} = ?' for name in equal]
  params = list(equal.values())
  if since_ms is not None:
    terms.append(f'{time_column} >= ?')
    params.append(since_ms)
  return (' WHERE ' + ' AND '.join(terms) if terms else ''), params


def _sort_key(row: Row, order_by: Sequence[str]) -> Tuple[Any, ...]:
  """`row` by its `order_by` columns ascending, NULL last."""
  return tuple((row[name] is None, row[name] if row[name] is not None else 0) for name in order_by)


def _utc_day(ms: int) -> datetime.date:
  """The UTC day of an epoch-ms time (as transforms/schema.py DayBucket)."""
  return datetime.date(1970, 1, 1) + datetime.timedelta(days=ms // _DAY_MS)


class SqliteStore(Store):
  """The SQLite file of the embedded sink, opened read-only.

  One connection, shared by the server's threads in turn. Each read sees
  the last commit of the job writing the file (WAL mode). `path` may be a
  symbolic link (transforms/sqlite_sink.publish): the file it names is
  opened, and `check` reopens when the path names another file.
  """

  def __init__(self, path: str):
    self._path = path
    self._lock = threading.Lock()
    self._conn, self._identity = self._open()

  def _open(self) -> Tuple[sqlite3.Connection, Tuple[int, int]]:
    """A connection to the file `path` names now, and its identity."""
    path = self._path
    file = pathlib.Path(path).resolve()
    try:
      stat = file.stat()
    except FileNotFoundError:
      raise StoreError(
        f'--sqlite_path={path}: no such file; run the job first (e.g. scripts/run_local.sh)'
      ) from None
    # mode=ro: the wallboard can never write the job's results.
    conn = sqlite3.connect(
      f'{file.as_uri()}?mode=ro', uri=True, check_same_thread=False, timeout=10
    )
    try:
      present = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
      }
    except sqlite3.DatabaseError as e:
      conn.close()
      raise StoreError(f'--sqlite_path={path}: not a SQLite database ({e})') from e
    missing = sorted(REQUIRED_TABLES - present)
    if missing:
      conn.close()
      raise StoreError(
        f'--sqlite_path={path}: not a result store of the job, it has no table {", ".join(missing)}'
      )
    return conn, (stat.st_dev, stat.st_ino)

  def check(self) -> None:
    try:
      stat = pathlib.Path(self._path).resolve().stat()
    except FileNotFoundError:
      raise StoreError(
        f'--sqlite_path={self._path}: the file is gone (removed, or being replaced); '
        'showing the last numbers read'
      ) from None
    if (stat.st_dev, stat.st_ino) == self._identity:
      return
    conn, identity = self._open()
    with self._lock:
      old, self._conn, self._identity = self._conn, conn, identity
    old.close()
    _LOGGER.info(
      'the store %s is another file now (%s); reopened it',
      self._path,
      os.path.realpath(self._path),
    )

  def _read(self, sql: str, params: Sequence[Any] = ()) -> List[Row]:
    with self._lock:
      cursor = self._conn.execute(sql, params)
      rows = cursor.fetchall()
    # zip over the names: twice as fast as sqlite3.Row then dict.
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row)) for row in rows]

  def columns(self, table: Table) -> FrozenSet[str]:
    return frozenset(row['name'] for row in self._read(f'PRAGMA table_info({table.name})'))

  def latest(self, table, columns) -> Rows:
    key, time = table.primary_key[0], table.primary_key[-1]
    names = ', '.join(f't.{name} AS {name}' for name in columns)
    rows = self._read(
      f'SELECT {names} FROM {table.name} t JOIN '
      f'(SELECT {key} AS k, MAX({time}) AS newest FROM {table.name} GROUP BY {key}) l '
      f'ON t.{key} = l.k AND t.{time} = l.newest ORDER BY t.{key}'
    )
    return Rows(rows, True)

  def newest(self, table, columns, time_column, limit, equal=None, since_ms=None) -> Rows:
    where, params = _where(equal or {}, time_column, since_ms)
    rows = self._read(
      f'SELECT {", ".join(columns)} FROM {table.name}{where} ORDER BY {time_column} DESC LIMIT ?',
      [*params, limit],
    )
    return Rows(rows, True)

  def newest_by_day(self, table, columns, limit, equal, since_ms, until_ms) -> Rows:
    time_column = table.day_bucket.source_column
    where, params = _where(equal, time_column, since_ms)
    rows = self._read(
      f'SELECT {", ".join(columns)} FROM {table.name}{where} AND {time_column} <= ? '
      f'ORDER BY {time_column} DESC LIMIT ?',
      [*params, until_ms, limit],
    )
    return Rows(rows, True)

  def in_window(self, table, columns, key, order_by, limit, equal=None) -> Rows:
    where, params = _where({**key, **(equal or {})}, None, None)
    rows = self._read(
      f'SELECT {", ".join(columns)} FROM {table.name}{where} ORDER BY {", ".join(order_by)} '
      'LIMIT ?',
      [*params, limit + 1],
    )
    return Rows(rows[:limit], len(rows) <= limit)

  def count(self, table, group_by, limit, time_column=None, since_ms=None) -> Counts:
    where, params = _where({}, time_column, since_ms)
    names = ', '.join(group_by)
    grouped = f'SELECT {names}, COUNT(*) AS n FROM {table.name}{where} GROUP BY {names}'
    [totals] = self._read(f'SELECT TOTAL(n) AS t, COUNT(*) AS g FROM ({grouped})', params)
    rows = self._read(f'{grouped} ORDER BY n DESC, {names} LIMIT ?', [*params, limit])
    counts = {tuple(row[name] for name in group_by): row['n'] for row in rows}
    return Counts(counts, int(totals['t']), totals['g'], True)

  def close(self) -> None:
    with self._lock:
      self._conn.close()


class CassandraStore(Store):
  """The keyspace of the Cassandra sink; only ever SELECTs.

  A role with SELECT permission on the keyspace is all it needs
  (`--cassandra_username`, password from `--cassandra_password_env`).
  """

  def __init__(self, settings: CassandraSettings, scan_limit: int = DEFAULT_SCAN_LIMIT):
    self._keyspace = settings.keyspace
    self._scan_limit = scan_limit
    self._cluster, self._session = connect(settings)
    self._prepared: Dict[str, Any] = {}
    self._layouts: Dict[str, List[Tuple[str, str]]] = {}
    try:
      present = {
        row.table_name
        for row in self._session.execute(
          'SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s', (self._keyspace,)
        )
      }
    except BaseException:
      self._cluster.shutdown()
      raise
    missing = sorted(REQUIRED_TABLES - present)
    if missing:
      self._cluster.shutdown()
      raise StoreError(
        f'--cassandra_keyspace={self._keyspace}: no table '
        f'{", ".join(missing)}; run the job with --sink=cassandra first'
      )

  def _execute(self, cql: str, params: Sequence[Any]):
    """Runs a prepared statement (prepared once per text), paged."""
    statement = self._prepared.get(cql)
    if statement is None:
      statement = self._session.prepare(cql)
      statement.fetch_size = _FETCH_SIZE
      self._prepared[cql] = statement
    return self._session.execute(statement, list(params))

  def _schema(self, table: Table) -> List[Any]:
    return list(
      self._session.execute(
        SimpleStatement(
          'SELECT column_name, kind, position, clustering_order FROM system_schema.columns '
          'WHERE keyspace_name = %s AND table_name = %s'
        ),
        (self._keyspace, table.name),
      )
    )

  def columns(self, table: Table) -> FrozenSet[str]:
    return frozenset(row.column_name for row in self._schema(table))

  def _clustering(self, table: Table) -> List[Tuple[str, str]]:
    """(column, 'asc' or 'desc') of the table's clustering columns as the
    keyspace has them (a keyspace of an earlier schema version may lack
    some), in key order; cached."""
    layout = self._layouts.get(table.name)
    if layout is None:
      schema = self._schema(table)
      rows = sorted((r for r in schema if r.kind == 'clustering'), key=lambda r: r.position)
      layout = [(r.column_name, r.clustering_order) for r in rows]
      # Not cached while the table is missing: the job may create it
      # (a live table of a later release) while the wallboard runs.
      if schema:
        self._layouts[table.name] = layout
    return layout

  def _order_newest_first(self, table: Table) -> str:
    """` ORDER BY ...` that reads a partition's clustering order with its
    time column (the last) descending: CQL orders all clustering columns
    as declared or all reversed."""
    clustering = self._clustering(table)
    reverse = clustering[-1][1] == 'asc'
    flip = {'asc': 'DESC', 'desc': 'ASC'} if reverse else {'asc': 'ASC', 'desc': 'DESC'}
    return ' ORDER BY ' + ', '.join(f'{name} {flip[order]}' for name, order in clustering)

  def latest(self, table, columns) -> Rows:
    key = table.primary_key[0]
    source = f'{self._keyspace}.{table.name}'
    clustering = self._clustering(table)
    middle = [name for name, _ in clustering[:-1]]
    order = self._order_newest_first(table)
    rows = []
    for (value,) in self._execute(f'SELECT DISTINCT {key} FROM {source}', []):
      newest = []
      for group in self._groups(table, value, middle):
        equal = {key: value, **dict(zip(middle, group))}
        where, params = _where(equal, None, None)
        newest.extend(
          r._asdict()
          for r in self._execute(
            f'SELECT {", ".join(columns)} FROM {source}{where}{order} LIMIT 1', params
          )
        )
      time = clustering[-1][0]
      top = max((row[time] for row in newest), default=None)
      rows.extend(row for row in newest if row[time] == top)
    rows.sort(key=lambda row: row[key])
    return Rows(rows, True)

  def _groups(self, table: Table, value: Any, middle: List[str]):
    """The distinct values of the `middle` clustering columns in the
    partition `value`, one read each: from one group to the first row
    after it in clustering order (a skip scan)."""
    if not middle:
      yield ()
      return
    key = table.primary_key[0]
    source = f'{self._keyspace}.{table.name}'
    names = ', '.join(middle)
    # The first middle column's declared order says which way is "after";
    # several columns compare as one tuple.
    after = '>' if self._clustering(table)[0][1] == 'asc' else '<'
    marks = ', '.join('?' for _ in middle)
    relation = f'{names} {after} ?' if len(middle) == 1 else f'({names}) {after} ({marks})'
    group = None
    while True:
      if group is None:
        cql, params = f'SELECT {names} FROM {source} WHERE {key} = ? LIMIT 1', [value]
      else:
        cql = f'SELECT {names} FROM {source} WHERE {key} = ? AND {relation} LIMIT 1'
        params = [value, *group]
      found = [tuple(row) for row in self._execute(cql, params)]
      if not found:
        return
      group = found[0]
      yield group

  def newest(self, table, columns, time_column, limit, equal=None, since_ms=None) -> Rows:
    equal = dict(equal or {})
    where, params = _where(equal, time_column, since_ms)
    select = f'SELECT {", ".join(columns)} FROM {self._keyspace}.{table.name}'
    clustering = [name for name, _ in self._clustering(table)]
    key_prefix = {table.primary_key[0], *clustering[:-1]}
    if set(equal) == key_prefix and clustering[-1:] == [time_column]:
      # One group of one partition, read backwards along its clustering order.
      order = self._order_newest_first(table)
      rows = self._execute(f'{select}{where}{order} LIMIT ?', [*params, limit])
      return Rows([row._asdict() for row in rows], True)
    # Restricted to a partition, the scan reads that partition only.
    scanned = self._scan(f'{select}{where}{" ALLOW FILTERING" if where else ""}', params)
    # A regular column (the live tables' updated_at) may hold null.
    newest = heapq.nlargest(
      limit,
      scanned.rows,
      key=lambda row: (row[time_column] is not None, row[time_column] or 0),
    )
    return Rows(newest, scanned.complete)

  def newest_by_day(self, table, columns, limit, equal, since_ms, until_ms) -> Rows:
    bucket, time_column = table.day_bucket.column, table.day_bucket.source_column
    clustering = [name for name, _ in self._clustering(table)]
    key = table.primary_key[0]
    # The partition (key, day), the clustering columns before the time
    # column by equality, the time column by range: one slice of one
    # partition, read backwards.
    prefix = clustering[: clustering.index(time_column)]
    if set(equal) != {key, *prefix}:
      raise ValueError(f'{table.name}: give {key} and {", ".join(prefix)}, got {sorted(equal)}')
    order = self._order_newest_first(table)
    names = [key, bucket, *prefix]
    cql = (
      f'SELECT {", ".join(columns)} FROM {self._keyspace}.{table.name} WHERE '
      + ' AND '.join(f'{name} = ?' for name in names)
      + f' AND {time_column} >= ? AND {time_column} <= ?{order} LIMIT ?'
    )
    rows: List[Row] = []
    day = _utc_day(until_ms)
    while len(rows) < limit and day >= _utc_day(since_ms):
      params = [equal[key], day.isoformat(), *(equal[name] for name in prefix)]
      found = self._execute(cql, [*params, since_ms, until_ms, limit - len(rows)])
      rows.extend(row._asdict() for row in found)
      day -= datetime.timedelta(days=1)
    return Rows(rows, True)

  def in_window(self, table, columns, key, order_by, limit, equal=None) -> Rows:
    bucket = table.day_bucket
    clustering = [name for name, _ in self._clustering(table)]
    first = table.primary_key[0]
    # The partition (first key column, day of the window) and the
    # clustering columns up to the window's start by equality: one slice
    # of one partition. Its clustering order is not `order_by`: the slice
    # is read whole (at most `scan_limit` rows) and sorted here.
    prefix = clustering[: clustering.index(bucket.source_column) + 1]
    if set(key) != {first, *prefix}:
      raise ValueError(f'{table.name}: give {first} and {", ".join(prefix)}, got {sorted(key)}')
    others = dict(equal or {})
    names = [first, bucket.column, *prefix, *others]
    params = [
      key[first],
      _utc_day(key[bucket.source_column]).isoformat(),
      *(key[name] for name in prefix),
      *others.values(),
    ]
    scanned = self._scan(
      f'SELECT {", ".join(columns)} FROM {self._keyspace}.{table.name} WHERE '
      + ' AND '.join(f'{name} = ?' for name in names)
      + (' ALLOW FILTERING' if others else ''),
      params,
    )
    rows = sorted(scanned.rows, key=lambda row: _sort_key(row, order_by))
    return Rows(rows[:limit], scanned.complete and len(rows) <= limit)

  def count(self, table, group_by, limit, time_column=None, since_ms=None) -> Counts:
    where, params = _where({}, time_column, since_ms)
    scanned = self._scan(
      f'SELECT {", ".join(group_by)} FROM {self._keyspace}.{table.name}'
      f'{where}{" ALLOW FILTERING" if where else ""}',
      params,
    )
    counts: Dict[Tuple[Any, ...], int] = {}
    for row in scanned.rows:
      group = tuple(row[name] for name in group_by)
      counts[group] = counts.get(group, 0) + 1
    return _top(counts, limit, scanned.complete)

  def _scan(self, cql: str, params: Sequence[Any]) -> Rows:
    rows = []
    for row in self._execute(cql, params):
      if len(rows) == self._scan_limit:
        return Rows(rows, False)
      rows.append(row._asdict())
    return Rows(rows, True)

  def close(self) -> None:
    self._cluster.shutdown()
