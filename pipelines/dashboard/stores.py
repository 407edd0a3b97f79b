"""Read-only access to the result tables, for the wallboard.

`Store` is the small interface the query layer (pipelines/dashboard/
queries.py) needs; `SqliteStore` and `CassandraStore` implement it over the
tables of transforms/schema.py. Columns are always selected by name, so
tables that gain columns keep working. Table and column names come from
transforms/schema.py and the query layer, never from a request; values are
bound parameters.

Cassandra answers "newest rows of one partition" from its clustering order
(abandon_metrics and interaction_volumes are clustered by window_start);
any other question is a scan, filtered by the server, of at most
`scan_limit` rows, reported as incomplete when it stops there.
"""

import abc
import heapq
import pathlib
import sqlite3
import threading
from typing import Any, Dict, FrozenSet, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from cassandra.query import SimpleStatement

from transforms.cassandra_sink import CassandraSettings, connect
from transforms.schema import TABLES, Table

Row = Dict[str, Any]

DEFAULT_SCAN_LIMIT = 100_000
_FETCH_SIZE = 5_000


class StoreError(RuntimeError):
  """The store cannot be read as a result store (missing file or table)."""


class Rows(NamedTuple):
  """Rows, newest first; `complete` is False when a scan stopped at the
  store's scan limit, so the rows are the newest of those scanned only."""

  rows: List[Row]
  complete: bool


class Counts(NamedTuple):
  """Row counts per group; `complete` as in `Rows`."""

  counts: Dict[Tuple[Any, ...], int]
  complete: bool


class Store(abc.ABC):
  """The result tables, read-only."""

  @abc.abstractmethod
  def columns(self, table: Table) -> FrozenSet[str]:
    """The table's columns as the store has them now."""

  @abc.abstractmethod
  def keys(self, table: Table) -> List[str]:
    """Distinct values of the table's first primary-key column, sorted."""

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
    and `time_column >= since_ms`, largest `time_column` first."""

  @abc.abstractmethod
  def count(
    self,
    table: Table,
    group_by: Sequence[str],
    time_column: Optional[str] = None,
    since_ms: Optional[int] = None,
  ) -> Counts:
    """Rows per distinct `group_by` values (with `time_column >=
    since_ms` when given)."""

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


class SqliteStore(Store):
  """The SQLite file of the embedded sink, opened read-only.

  One connection, shared by the server's threads in turn. Each read sees
  the last commit of the job writing the file (WAL mode).
  """

  def __init__(self, path: str):
    file = pathlib.Path(path).resolve()
    if not file.is_file():
      raise StoreError(
        f'--sqlite_path={path}: no such file; run the job first (e.g. scripts/run_local.sh)'
      )
    # mode=ro: the wallboard can never write the job's results.
    self._conn = sqlite3.connect(
      f'{file.as_uri()}?mode=ro', uri=True, check_same_thread=False, timeout=10
    )
    self._conn.row_factory = sqlite3.Row
    self._lock = threading.Lock()
    try:
      present = {
        name for (name,) in self._read("SELECT name FROM sqlite_master WHERE type = 'table'")
      }
    except sqlite3.DatabaseError as e:
      self._conn.close()
      raise StoreError(f'--sqlite_path={path}: not a SQLite database ({e})') from e
    missing = sorted(set(TABLES) - present)
    if missing:
      self._conn.close()
      raise StoreError(
        f'--sqlite_path={path}: not a result store of the job, it has no table {", ".join(missing)}'
      )

  def _read(self, sql: str, params: Sequence[Any] = ()) -> List[sqlite3.Row]:
    with self._lock:
      return self._conn.execute(sql, params).fetchall()

  def columns(self, table: Table) -> FrozenSet[str]:
    return frozenset(row['name'] for row in self._read(f'PRAGMA table_info({table.name})'))

  def keys(self, table: Table) -> List[str]:
    key = table.primary_key[0]
    return [row[0] for row in self._read(f'SELECT DISTINCT {key} FROM {table.name} ORDER BY {key}')]

  def newest(self, table, columns, time_column, limit, equal=None, since_ms=None) -> Rows:
    where, params = _where(equal or {}, time_column, since_ms)
    rows = self._read(
      f'SELECT {", ".join(columns)} FROM {table.name}{where} ORDER BY {time_column} DESC LIMIT ?',
      [*params, limit],
    )
    return Rows([dict(row) for row in rows], True)

  def count(self, table, group_by, time_column=None, since_ms=None) -> Counts:
    where, params = _where({}, time_column, since_ms)
    names = ', '.join(group_by)
    rows = self._read(f'SELECT {names}, COUNT(*) FROM {table.name}{where} GROUP BY {names}', params)
    return Counts({tuple(row)[:-1]: row[-1] for row in rows}, True)

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
    missing = sorted(set(TABLES) - present)
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

  def columns(self, table: Table) -> FrozenSet[str]:
    return frozenset(
      row.column_name
      for row in self._session.execute(
        SimpleStatement(
          'SELECT column_name FROM system_schema.columns '
          'WHERE keyspace_name = %s AND table_name = %s'
        ),
        (self._keyspace, table.name),
      )
    )

  def keys(self, table: Table) -> List[str]:
    key = table.primary_key[0]
    return sorted(
      row[0]
      for row in self._execute(f'SELECT DISTINCT {key} FROM {self._keyspace}.{table.name}', [])
    )

  def newest(self, table, columns, time_column, limit, equal=None, since_ms=None) -> Rows:
    equal = dict(equal or {})
    where, params = _where(equal, time_column, since_ms)
    select = f'SELECT {", ".join(columns)} FROM {self._keyspace}.{table.name}'
    partition, clustering = table.primary_key[0], table.primary_key[1:2]
    if set(equal) == {partition} and clustering == (time_column,):
      # One partition, read backwards along its clustering order.
      rows = self._execute(f'{select}{where} ORDER BY {time_column} DESC LIMIT ?', [*params, limit])
      return Rows([row._asdict() for row in rows], True)
    scanned = self._scan(f'{select}{where}{" ALLOW FILTERING" if where else ""}', params)
    newest = heapq.nlargest(limit, scanned.rows, key=lambda row: row[time_column])
    return Rows(newest, scanned.complete)

  def count(self, table, group_by, time_column=None, since_ms=None) -> Counts:
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
    return Counts(counts, scanned.complete)

  def _scan(self, cql: str, params: Sequence[Any]) -> Rows:
    rows = []
    for row in self._execute(cql, params):
      if len(rows) == self._scan_limit:
        return Rows(rows, False)
      rows.append(row._asdict())
    return Rows(rows, True)

  def close(self) -> None:
    self._cluster.shutdown()
