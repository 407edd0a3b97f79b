"""SqliteSink: the embedded default store, for local runs with no services.

The store is one SQLite file in WAL mode. `--sqlite_path` may name it or a
symbolic link to it: `new_run_path` and `publish` build a store under a
fresh file and swap the stable name to it in one atomic rename, so readers
(the wallboard) never see an empty or half-written store and never share a
write-ahead log with another run (SQLite names the `-wal` and `-shm` files
after the resolved file). `python -m transforms.sqlite_sink` runs them for
scripts/run_local.sh.
"""

import argparse
import contextlib
import datetime
import logging
import os
import pathlib
import sqlite3
import sys
import time
from typing import Iterable, List, Optional, Sequence, Tuple

from apache_beam.utils.timestamp import Duration

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
RUNS_SUFFIX = '.runs'
# The column of an expiring table (Table.expiring) holding when its row
# expires (epoch ms): SQLite has no TTL, so writers delete expired rows
# themselves, at most once per table every PRUNE_INTERVAL_S.
EXPIRES_AT = 'expires_at'
PRUNE_INTERVAL_S = 60.0
_LOGGER = logging.getLogger(__name__)


def stored_columns(table: Table) -> Tuple[Tuple[str, type], ...]:
  """The record's columns, then EXPIRES_AT for an expiring table."""
  return (*table.columns, (EXPIRES_AT, int)) if table.expiring else table.columns


def create_table_sql(table: Table) -> str:
  columns = ', '.join(f'{name} {_SQL_TYPES[kind]}' for name, kind in stored_columns(table))
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
    for name, kind in stored_columns(table)
    if name not in have
  ]


def stored_primary_key(conn: sqlite3.Connection, table: Table) -> Tuple[str, ...]:
  """The primary key of `table` as the file has it (empty if no table)."""
  info = conn.execute(f'PRAGMA table_info({table.name})').fetchall()
  # Column 5 is the column's 1-based position in the key, 0 outside it.
  return tuple(column[1] for column in sorted((c for c in info if c[5]), key=lambda c: c[5]))


def rebuild_table(conn: sqlite3.Connection, table: Table) -> int:
  """Recreates `table` with the record's columns and primary key and copies
  its rows, in the caller's transaction; returns the number of rows.

  For a table whose key changed (SQLite cannot alter a primary key). A
  column the old table lacks takes the record's default for every old row
  (e.g. abandon_metrics.channel 'voice': the earlier releases counted voice
  calls only), NULL where the record has none.
  """
  have = {column[1] for column in conn.execute(f'PRAGMA table_info({table.name})')}
  defaults = table.record_type._field_defaults
  names = [name for name, _ in stored_columns(table)]
  values, params = [], []
  for name in names:
    if name in have:
      values.append(name)
    else:
      values.append('?')
      params.append(defaults.get(name))
  rebuilt = f'{table.name}__rebuilt'
  conn.execute(f'DROP TABLE IF EXISTS {rebuilt}')
  conn.execute(create_table_sql(table._replace(name=rebuilt)))
  copied = conn.execute(
    f'INSERT INTO {rebuilt} ({", ".join(names)}) SELECT {", ".join(values)} FROM {table.name}',
    params,
  ).rowcount
  conn.execute(f'DROP TABLE {table.name}')
  conn.execute(f'ALTER TABLE {rebuilt} RENAME TO {table.name}')
  return copied


def upsert_sql(table: Table) -> str:
  names = [name for name, _ in stored_columns(table)]
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
  """Upserts into a SQLite file, creating it and its tables on demand. Rows
  of expiring tables expire `row_ttl` after they are written."""

  def __init__(self, path: str, row_ttl: Duration = Duration(0)):
    self._path = path
    self._conn = None
    self._row_ttl_ms = row_ttl.micros // 1000
    self._pruned_at = {}

  def open(self) -> None:
    # Several DoFn instances may write the same file from different threads;
    # WAL (set once by SqliteSink.prepare) plus a busy timeout lets them take
    # turns instead of failing.
    self._conn = sqlite3.connect(os.path.realpath(self._path), timeout=60, check_same_thread=False)
    # Per connection. In WAL mode NORMAL never corrupts the file; a power
    # cut may roll back the last commits, which the source re-delivers and
    # the upserts rewrite. FULL syncs every bundle's commit: 0.18 against
    # 0.03 ms per commit (scripts/bench/micro.py), thousands per run.
    self._conn.execute('PRAGMA synchronous=NORMAL')

  def upsert(self, table: Table, rows: Sequence[tuple]) -> List[Rejection]:
    sql = upsert_sql(table)
    if table.expiring:
      now_ms = int(time.time() * 1000)
      rows = [(*row, now_ms + self._row_ttl_ms) for row in rows]
      self._prune(table, now_ms)
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

  def _prune(self, table: Table, now_ms: int) -> None:
    """Deletes the table's expired rows, at most every PRUNE_INTERVAL_S."""
    if now_ms - self._pruned_at.get(table.name, -PRUNE_INTERVAL_S * 1000) < PRUNE_INTERVAL_S * 1000:
      return
    self._pruned_at[table.name] = now_ms
    with self._conn:
      self._conn.execute(f'DELETE FROM {table.name} WHERE {EXPIRES_AT} < ?', (now_ms,))

  def close(self) -> None:
    if self._conn is not None:
      self._conn.close()
      self._conn = None


class SqliteSink(ResultSink):
  """Writes every table into one SQLite database file."""

  def __init__(self, path: str, row_ttl: Duration = Duration(0)):
    self._path = path
    self._row_ttl = row_ttl

  def prepare(self, tables: Iterable[Table]) -> None:
    """Creates the file, its directory and the tables, or brings a file of
    an earlier release up to date in one transaction: columns the records
    have grown since are added (NULL in its rows), a table whose primary
    key changed is rebuilt (`rebuild_table`). An existing store keeps its
    rows, so a job restarted on it upserts on top of them. Runs where the
    job is launched: the embedded sink serves workers on that machine (the
    local runner, a local Flink cluster)."""
    path = os.path.realpath(self._path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # isolation_level None: the transaction below is explicit, DDL included.
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=60)) as conn:
      # Persistent in the file; switching it from parallel writers races.
      conn.execute('PRAGMA journal_mode=WAL')
      conn.execute('BEGIN IMMEDIATE')
      try:
        rebuilt = [self._prepare_table(conn, table) for table in tables]
        conn.execute('COMMIT')
      except BaseException:
        conn.execute('ROLLBACK')
        raise
    for table, rows in (r for r in rebuilt if r):
      # Warning: a migration must show at the job's default log level.
      _LOGGER.warning(
        'sqlite store %s: %s rebuilt with primary key (%s), %d rows kept',
        self._path,
        table.name,
        ', '.join(table.primary_key),
        rows,
      )

  @staticmethod
  def _prepare_table(conn: sqlite3.Connection, table: Table) -> Optional[Tuple[Table, int]]:
    """Creates or updates one table; (table, rows) when it was rebuilt."""
    key = stored_primary_key(conn, table)
    if key and key != table.primary_key:
      return table, rebuild_table(conn, table)
    conn.execute(create_table_sql(table))
    existing = [column[1] for column in conn.execute(f'PRAGMA table_info({table.name})')]
    for statement in missing_columns_sql(table, existing):
      conn.execute(statement)
    if table.expiring:
      conn.execute(
        f'CREATE INDEX IF NOT EXISTS {table.name}_{EXPIRES_AT} ON {table.name} ({EXPIRES_AT})'
      )
    return None

  def write(self, table: Table) -> WriteRows:
    path, row_ttl = self._path, self._row_ttl
    return WriteRows(lambda: SqliteWriter(path, row_ttl), table, 'sqlite')


def new_run_path(stable: str) -> str:
  """A fresh file for one run's store, next to `stable` in the directory
  STABLE.runs/ (created), named by the UTC time and the process id."""
  stable_path = pathlib.Path(stable)
  runs = stable_path.parent / (stable_path.name + RUNS_SUFFIX)
  runs.mkdir(parents=True, exist_ok=True)
  when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')
  return str(runs / f'{when}-{os.getpid()}.db')


def _remove_journals(path: pathlib.Path) -> None:
  for suffix in ('-wal', '-shm'):
    path.with_name(path.name + suffix).unlink(missing_ok=True)


def publish(stable: str, run_path: str) -> str:
  """Points `stable` at the store `run_path` (a symbolic link, replaced
  in one rename: a reader opens either the old store or the new one, whole)
  and removes the runs before the previous one, whose readers have had a
  whole run to move on. Returns the one line it logged."""
  stable_path, run = pathlib.Path(stable), pathlib.Path(run_path).resolve()
  if not run.is_file():
    raise FileNotFoundError(f'{run_path}: no such store to publish')
  previous = stable_path.resolve() if stable_path.exists() else None
  link = stable_path.with_name(f'.{stable_path.name}.{os.getpid()}.link')
  link.unlink(missing_ok=True)
  # Relative, so the directory can move with its runs.
  link.symlink_to(os.path.relpath(run, stable_path.parent.resolve()))
  os.replace(link, stable_path)
  keep = {run, previous}
  for old in run.parent.glob('*.db'):
    if old not in keep:
      old.unlink()
      _remove_journals(old)
  # Journals named after the stable name belong to a plain file it named
  # before (a store of an earlier release, now unlinked): a store created
  # there later must not pick them up (readers keep theirs open).
  _remove_journals(stable_path)
  line = f'sqlite store {stable} is now {run}' + (f' (was {previous})' if previous else '')
  _LOGGER.info(line)
  return line


def main(argv: Optional[Sequence[str]] = None) -> None:
  """`new STABLE`: prints a fresh run path; `publish STABLE RUN`: swaps
  STABLE to RUN and prints what it did."""
  parser = argparse.ArgumentParser(
    prog='python -m transforms.sqlite_sink',
    description='Builds a SQLite store under a fresh file and swaps a stable name to it.',
  )
  commands = parser.add_subparsers(dest='command', required=True)
  commands.add_parser('new', help='print a fresh file for a run').add_argument('stable')
  publish_args = commands.add_parser('publish', help='point STABLE at RUN atomically')
  publish_args.add_argument('stable')
  publish_args.add_argument('run')
  args = parser.parse_args(argv)
  if args.command == 'new':
    print(new_run_path(args.stable))
    return
  try:
    print(publish(args.stable, args.run))
  except OSError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  main()
