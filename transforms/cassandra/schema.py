"""The Cassandra schema: the versioned CQL files, the tables the records
imply, the prepared upsert, and what a keyspace holds.

In: the result tables (transforms/schema.py) and a keyspace. Out: the DDL of
`cql/v<N>_schema.cql`, applied when the job starts (sink.py), the INSERT and
bound values of a row (writer.py), and a keyspace's stored layout and
version, which decide whether a job may write to it or it needs migrating
(migration.py, docs/cassandra_schema.md).

Every row is an INSERT (an upsert in Cassandra) of all columns, so
re-delivered rows rewrite the same values. Rows of a table with a version
column (the pane index) carry a write timestamp derived from it, so a later
pane wins over an earlier one in whatever order they arrive. Tables with a
day bucket (late events, dead letters) have it in their partition key, so no
partition grows without bound, and a default TTL.
"""

import os
import re
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from cassandra.cluster import Session

from transforms.schema import Table

SCHEMA_VERSION = 7
SCHEMA_DIR = os.path.join(os.path.dirname(__file__), 'cql')
CQL_TYPES = {str: 'text', int: 'bigint', float: 'double', bool: 'boolean'}

# Write timestamp (microseconds) of a versioned row = this base + pane index.
# Cassandra keeps, cell by cell, the value with the highest write timestamp,
# and every write sets every column, so:
# - a higher pane always wins, whatever order the writes arrive in, also
#   across job restarts and reprocessing runs: the timestamp depends only on
#   the pane, never on when or by which worker it was written;
# - a replayed pane has the same timestamp and the same values: a no-op.
# A fixed base (2020-01-01T00:00:00Z) rather than the wall clock is what
# makes this hold across runs. Its price: a DELETE or UPDATE without USING
# TIMESTAMP gets "now", which outranks every pane forever, so a deleted row
# is never re-created by the pipeline. To reprocess, TRUNCATE the table (it
# ignores timestamps) or use a new keyspace. writetime(col) - base = pane.
PANE_TIMESTAMP_BASE_US = 1_577_836_800_000_000

# Default TTL of tables with a day bucket: 30 days (change it per table with
# ALTER TABLE ... WITH default_time_to_live, docs/cassandra_schema.md).
BUCKETED_TABLE_TTL_S = 30 * 24 * 3600
DDL_TIMEOUT_S = 60.0


def schema_statements(keyspace: str, replication: str, version: int = SCHEMA_VERSION) -> List[str]:
  """The statements of `cql/v<version>_schema.cql` for this keyspace, in
  file order, without comments or the trailing semicolons."""
  path = os.path.join(SCHEMA_DIR, f'v{version}_schema.cql')
  with open(path, encoding='utf-8') as f:
    text = '\n'.join(line for line in f.read().splitlines() if not line.lstrip().startswith('--'))
  return [
    s.strip().format(keyspace=keyspace, replication=replication)
    for s in text.split(';')
    if s.strip()
  ]


class KeyLayout(NamedTuple):
  """A table's primary key in Cassandra: partition key, clustering columns."""

  partition_key: Tuple[str, ...]
  clustering: Tuple[str, ...]


def cassandra_columns(table: Table) -> Tuple[Tuple[str, type], ...]:
  """The record's columns, then the day bucket's if the table has one."""
  if table.day_bucket is None:
    return table.columns
  return (*table.columns, (table.day_bucket.column, str))


def key_layout(table: Table) -> KeyLayout:
  """The first primary-key column is the partition key, with the day bucket
  if any; the others are clustering columns."""
  first, *rest = table.primary_key
  bucket = () if table.day_bucket is None else (table.day_bucket.column,)
  return KeyLayout((first, *bucket), tuple(rest))


def partition_key_positions(table: Table) -> Tuple[int, ...]:
  """Where the partition key's columns are in `bind_values(table, row)`."""
  names = [name for name, _ in cassandra_columns(table)]
  return tuple(names.index(name) for name in key_layout(table).partition_key)


def key_cql(layout: KeyLayout) -> str:
  """The layout as in PRIMARY KEY: `(a, b)` or `((a, day), b)`."""
  partition = ', '.join(layout.partition_key)
  if len(layout.partition_key) > 1:
    partition = f'({partition})'
  return f'({", ".join((partition, *layout.clustering))})'


def create_table_cql(keyspace: str, table: Table) -> str:
  """The CREATE TABLE statement that `table`'s record type implies."""
  columns = ', '.join(f'{name} {CQL_TYPES[kind]}' for name, kind in cassandra_columns(table))
  cql = (
    f'CREATE TABLE IF NOT EXISTS {keyspace}.{table.name} ({columns}, '
    f'PRIMARY KEY {key_cql(key_layout(table))})'
  )
  if table.day_bucket is not None:
    cql += f' WITH default_time_to_live = {BUCKETED_TABLE_TTL_S}'
  return cql


def _normalized(cql: str) -> str:
  """CQL without layout: runs of whitespace become one space, and none is
  left around parentheses and commas."""
  return re.sub(r'\s*([(),])\s*', r'\1', ' '.join(cql.split()))


def schema_mismatches(
  keyspace: str, tables: Iterable[Table], statements: Sequence[str]
) -> List[str]:
  """One message per table whose record implies a CREATE TABLE that is not
  among `statements` (the schema for `keyspace`); [] when all match."""
  present = {_normalized(s) for s in statements}
  return [
    f'{table.name}: the CQL schema v{SCHEMA_VERSION} lacks "{create_table_cql(keyspace, table)}"'
    for table in tables
    if _normalized(create_table_cql(keyspace, table)) not in present
  ]


def insert_cql(keyspace: str, table: Table) -> str:
  """The prepared upsert of a full row (and its day bucket); versioned
  tables bind the write timestamp, then expiring tables the TTL (seconds),
  as the last parameters."""
  names = [name for name, _ in cassandra_columns(table)]
  cql = (
    f'INSERT INTO {keyspace}.{table.name} ({", ".join(names)}) '
    f'VALUES ({", ".join("?" for _ in names)})'
  )
  using = [
    *(['TIMESTAMP ?'] if table.version_column else []),
    *(['TTL ?'] if table.expiring else []),
  ]
  if using:
    cql += f' USING {" AND ".join(using)}'
  return cql


def bind_values(table: Table, row: tuple, ttl_seconds: int = 0) -> tuple:
  """The parameters of `insert_cql(table)` for one record; `ttl_seconds`
  for an expiring table. Raises TypeError, ValueError or OverflowError for
  a bucket or version column that is not an integer in range."""
  values = tuple(row)
  if table.day_bucket is not None:
    values += (table.day_bucket.value(row),)
  if table.version_column:
    version = getattr(row, table.version_column)
    # A time version (late_events.reprocessed_at) is the write time itself:
    # a reprocessing mark outranks the rows an older release wrote at
    # their own time, and a live write (0) never outranks a mark.
    values += (version * 1000 if table.version_is_time else PANE_TIMESTAMP_BASE_US + version,)
  if table.expiring:
    values += (ttl_seconds,)
  return values


class StoredTable(NamedTuple):
  """A table as a keyspace holds it (system_schema.columns)."""

  columns: Dict[str, str]  # name -> CQL type
  key: KeyLayout


def stored_table(session: Session, keyspace: str, name: str) -> Optional[StoredTable]:
  """The table `keyspace.name` as stored; None when there is none."""
  rows = list(
    session.execute(
      'SELECT column_name, kind, position, type FROM system_schema.columns '
      'WHERE keyspace_name = %s AND table_name = %s',
      (keyspace, name),
    )
  )
  if not rows:
    return None

  def key_part(kind):
    return tuple(r.column_name for r in sorted(rows, key=lambda r: r.position) if r.kind == kind)

  return StoredTable(
    {r.column_name: r.type for r in rows},
    KeyLayout(key_part('partition_key'), key_part('clustering')),
  )


def stored_schema_version(session: Session, keyspace: str) -> Optional[int]:
  """The highest version recorded in `keyspace.schema_version`; None when
  none is."""
  if stored_table(session, keyspace, 'schema_version') is None:
    return None
  return max(
    (r.version for r in session.execute(f'SELECT version FROM {keyspace}.schema_version')),
    default=None,
  )


def outdated_tables(session: Session, keyspace: str, tables: Iterable[Table]) -> List[str]:
  """One message per table that `keyspace` holds in another layout than
  this release writes (another primary key, a missing column)."""
  problems = []
  for table in tables:
    stored = stored_table(session, keyspace, table.name)
    if stored is None:
      continue  # created by the schema
    if stored.key != key_layout(table):
      problems.append(
        f'{table.name} has PRIMARY KEY {key_cql(stored.key)}, not {key_cql(key_layout(table))}'
      )
    missing = [name for name, _ in cassandra_columns(table) if name not in stored.columns]
    if missing:
      problems.append(f'{table.name} lacks {", ".join(missing)}')
  return problems


def schema_refusal(session: Session, keyspace: str, tables: Iterable[Table]) -> Optional[str]:
  """Why the job must not write to `keyspace` as it is (written by another
  release, see docs/cassandra_schema.md), or None."""
  version = stored_schema_version(session, keyspace)
  if version is not None and version > SCHEMA_VERSION:
    return (
      f'Cassandra keyspace {keyspace} has schema v{version}, newer '
      f'than the v{SCHEMA_VERSION} of this release'
    )
  outdated = outdated_tables(session, keyspace, tables)
  if outdated or (version is not None and version < SCHEMA_VERSION):
    recorded = 'no recorded schema version' if version is None else f'schema v{version}'
    return (
      f'Cassandra keyspace {keyspace} has {recorded}, not '
      f'v{SCHEMA_VERSION} ({"; ".join(outdated) or "an older version"}): '
      'stop the jobs writing to it and migrate it with "python -m '
      f'scripts.migrate_cassandra --cassandra_keyspace={keyspace}" and the '
      "job's other --cassandra_* options (docs/cassandra_schema.md)"
    )
  return None
