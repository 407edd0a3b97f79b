"""SqliteSink: the embedded default store, for local runs with no services."""

import contextlib
import os
import sqlite3
from typing import Iterable, List, Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from options.stream_options import SinkOptions
from transforms.schema import Table
from transforms.sinks import Rejection, ResultSink, RowWriter, WriteRows

_SQL_TYPES = {str: 'TEXT', int: 'INTEGER', float: 'REAL', bool: 'INTEGER'}

# Errors of one row's values, by reason: SQLite cannot hold them (an integer
# beyond 64 bits, text that is not valid Unicode) or refuses them (a
# constraint, a value over SQLITE_MAX_LENGTH). Others (locked, disk full)
# concern the whole batch.
_ROW_ERRORS = {
  'not_encodable': (OverflowError, UnicodeEncodeError),
  'rejected_by_sink': (sqlite3.IntegrityError, sqlite3.DataError),
}
_ANY_ROW_ERROR = tuple(e for errors in _ROW_ERRORS.values() for e in errors)


def create_table_sql(table: Table) -> str:
  columns = ', '.join(f'{name} {_SQL_TYPES[kind]}' for name, kind in table.columns)
  return (
    f'CREATE TABLE IF NOT EXISTS {table.name} ({columns}, '
    f'PRIMARY KEY ({", ".join(table.primary_key)}))'
  )


def missing_columns_sql(table: Table, existing: Iterable[str]) -> List[str]:
  """ALTER TABLE statements adding the record's columns that a table made
  by an older release lacks (its rows get NULL there)."""
  have = set(existing)
  return [
    f'ALTER TABLE {table.name} ADD COLUMN {name} {_SQL_TYPES[kind]}'
    for name, kind in table.columns
    if name not in have
  ]


def upsert_sql(table: Table) -> str:
  names = [name for name, _ in table.columns]
  updates = ', '.join(f'{n} = excluded.{n}' for n in names if n not in table.primary_key)
  sql = (
    f'INSERT INTO {table.name} ({", ".join(names)}) '
    f'VALUES ({", ".join("?" for _ in names)}) '
    f'ON CONFLICT ({", ".join(table.primary_key)}) DO UPDATE SET {updates}'
  )
  if table.version_column:
    v = table.version_column
    sql += f' WHERE excluded.{v} >= {table.name}.{v}'
  return sql


class SqliteWriter(RowWriter):
  """Upserts into a SQLite file, creating it and its tables on demand."""

  def __init__(self, path: str):
    self._path = path
    self._conn = None

  def open(self) -> None:
    # Several DoFn instances may write the same file from different threads;
    # WAL (set once by SqliteSink.prepare) plus a busy timeout lets them take
    # turns instead of failing.
    self._conn = sqlite3.connect(self._path, timeout=60, check_same_thread=False)
    # Per connection. In WAL mode NORMAL never corrupts the file; a power
    # cut may roll back the last commits, which the source re-delivers and
    # the upserts rewrite. FULL syncs every bundle's commit: 0.18 against
    # 0.03 ms per commit (scripts/bench/micro.py), thousands per run.
    self._conn.execute('PRAGMA synchronous=NORMAL')

  def upsert(self, table: Table, rows: Sequence[tuple]) -> List[Rejection]:
    sql = upsert_sql(table)
    try:
      with self._conn:
        self._conn.executemany(sql, rows)
      return []
    except _ANY_ROW_ERROR:
      pass  # rolled back; find the rows at fault, write the others
    rejected = []
    with self._conn:
      for index, row in enumerate(rows):
        try:
          self._conn.execute(sql, row)
        except _ANY_ROW_ERROR as e:
          reason = next(r for r, errors in _ROW_ERRORS.items() if isinstance(e, errors))
          rejected.append(Rejection(index, reason, f'{type(e).__name__}: {e}'))
    return rejected

  def close(self) -> None:
    if self._conn is not None:
      self._conn.close()
      self._conn = None


class SqliteSink(ResultSink):
  """Writes every table into one SQLite database file."""

  def __init__(self, path: str):
    self._path = path

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'SqliteSink':
    """The sink writing `--sqlite_path`."""
    return cls(options.view_as(SinkOptions).sqlite_path)

  def prepare(self, tables: Iterable[Table]) -> None:
    """Creates the file, its directory and the tables, and adds the
    columns a file of an older release lacks. Runs where the job is
    launched: the embedded sink serves workers on that machine (the local
    runner, a local Flink cluster)."""
    os.makedirs(os.path.dirname(os.path.abspath(self._path)), exist_ok=True)
    with contextlib.closing(sqlite3.connect(self._path)) as conn, conn:
      # Persistent in the file; switching it from parallel writers races.
      conn.execute('PRAGMA journal_mode=WAL')
      for table in tables:
        conn.execute(create_table_sql(table))
        # A file written by an older release: its tables get the columns
        # the records have grown since.
        existing = [column[1] for column in conn.execute(f'PRAGMA table_info({table.name})')]
        for statement in missing_columns_sql(table, existing):
          conn.execute(statement)

  def write(self, table: Table) -> WriteRows:
    path = self._path
    return WriteRows(lambda: SqliteWriter(path), table, 'sqlite')
