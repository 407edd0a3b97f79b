"""Migrates a Cassandra keyspace written by an older release to the schema
this release writes (`schema.SCHEMA_VERSION`).

    python -m scripts.migrate_cassandra --cassandra_keyspace=K [the job's
        other --cassandra_* options]

Stop the jobs writing to the keyspace first: a job of this release refuses
an outdated keyspace (`CassandraSink.prepare`), but one of an older release
would go on writing the old layout.

`MIGRATION_STEPS` runs in order. Each step looks at what the keyspace holds
and does only what is left, so the migration is idempotent and a run that
was interrupted is finished by running it again. A step is a function
(session, settings) -> descriptions of what it did; a column added to a
record needs no new step (`add_missing_columns` covers every table), a
changed primary key needs `rebuild_with_key` for its table.
"""

import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from cassandra.cluster import Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import SimpleStatement

from options.config import CassandraSettings
from transforms.cassandra.connection import connect_at_launch
from transforms.cassandra.schema import (
  CQL_TYPES,
  DDL_TIMEOUT_S,
  SCHEMA_VERSION,
  StoredTable,
  bind_values,
  cassandra_columns,
  create_table_cql,
  insert_cql,
  key_cql,
  key_layout,
  schema_refusal,
  schema_statements,
  stored_schema_version,
  stored_table,
)
from transforms.schema import ABANDON_METRICS, DEAD_LETTERS, LATE_EVENTS, TABLES, Table

Step = Callable[[Session, CassandraSettings], List[str]]
# A value for a column the old table lacks or holds null: f(old row's
# columns, the row's write time in microseconds or None).
Fill = Callable[[Dict[str, Any], Optional[int]], Any]

COPY_PAGE_ROWS = 1000
STAGING_SUFFIX = '_migrating'


def _rows(
  session: Session, keyspace: str, name: str, stored: StoredTable
) -> Iterator[Tuple[Dict[str, Any], Optional[int]]]:
  """Every row of `keyspace.name` with its write time: the latest of its
  regular columns' (None for a row of key columns only)."""
  names = list(stored.columns)
  keys = set(stored.key.partition_key) | set(stored.key.clustering)
  regular = [n for n in names if n not in keys]
  select = ', '.join(names + [f'writetime({n})' for n in regular])
  statement = SimpleStatement(f'SELECT {select} FROM {keyspace}.{name}', fetch_size=COPY_PAGE_ROWS)
  for row in session.execute(statement, timeout=DDL_TIMEOUT_S):
    times = [t for t in row[len(names) :] if t is not None]
    yield dict(zip(names, row[: len(names)])), max(times, default=None)


def _write_all(
  session: Session, settings: CassandraSettings, cql: str, params: Iterator[Sequence]
) -> int:
  """Executes `cql` once per parameter tuple; returns how many."""
  results = execute_concurrent_with_args(
    session,
    session.prepare(cql),
    params,
    concurrency=settings.write_concurrency,
    raise_on_first_error=True,
    results_generator=True,
  )
  return sum(1 for _ in results)


def _copy_as_is(
  session: Session, settings: CassandraSettings, name: str, stored: StoredTable, target: str
) -> int:
  """Copies every row of `name` into `target` (same layout), keeping its
  write time."""
  keyspace = settings.keyspace
  names = list(stored.columns)
  cql = (
    f'INSERT INTO {keyspace}.{target} ({", ".join(names)}) '
    f'VALUES ({", ".join("?" for _ in names)}) USING TIMESTAMP ?'
  )
  now_us = int(time.time() * 1e6)
  return _write_all(
    session,
    settings,
    cql,
    (
      (*values.values(), written or now_us)
      for values, written in _rows(session, keyspace, name, stored)
    ),
  )


def migrated_values(
  table: Table,
  values: Dict[str, Any],
  written_us: Optional[int],
  fills: Mapping[str, Fill],
) -> tuple:
  """The parameters of `insert_cql(table)` for an old row (`values`, its
  write time `written_us`): the record the sink would write, with the
  columns the old row lacks or holds null taken from `fills`, else null. A
  versioned row without its version (written by hand; the sink always sets
  it) keeps its own write time, or now."""

  def column(name: str) -> Any:
    value = values.get(name)
    if value is None and name in fills:
      return fills[name](values, written_us)
    return value

  record = table.record_type(**{name: column(name) for name, _ in table.columns})
  if table.version_column is None or getattr(record, table.version_column) is not None:
    return bind_values(table, record)
  unversioned = bind_values(table._replace(version_column=None), record)
  return (*unversioned, written_us or int(time.time() * 1e6))


def _copy_as_records(
  session: Session,
  settings: CassandraSettings,
  table: Table,
  staging: str,
  stored: StoredTable,
  fills: Mapping[str, Fill],
) -> int:
  """Copies every row of `staging` into `table` as the sink writes it
  (migrated_values)."""
  return _write_all(
    session,
    settings,
    insert_cql(settings.keyspace, table),
    (
      migrated_values(table, values, written, fills)
      for values, written in _rows(session, settings.keyspace, staging, stored)
    ),
  )


def rebuild_with_key(table: Table, fills: Optional[Mapping[str, Fill]] = None) -> Step:
  """A step rebuilding `table` if the keyspace holds it with another
  primary key, which Cassandra cannot change: its rows are copied to
  `<table>_migrating`, the table is dropped, created anew and the rows are
  copied back, with the new columns computed (the day bucket from the
  record; others by `fills`). Dropping happens only after a complete copy;
  an interrupted run resumes from what exists."""
  fills = dict(fills or {})

  def step(session: Session, settings: CassandraSettings) -> List[str]:
    keyspace, staging = settings.keyspace, table.name + STAGING_SUFFIX
    done = []
    current = stored_table(session, keyspace, table.name)
    if current is not None and current.key != key_layout(table):
      columns = ', '.join(f'{n} {t}' for n, t in current.columns.items())
      session.execute(
        f'CREATE TABLE IF NOT EXISTS {keyspace}.{staging} ({columns}, '
        f'PRIMARY KEY {key_cql(current.key)})',
        timeout=DDL_TIMEOUT_S,
      )
      copied = _copy_as_is(session, settings, table.name, current, staging)
      session.execute(f'DROP TABLE {keyspace}.{table.name}', timeout=DDL_TIMEOUT_S)
      done.append(f'{table.name}: {copied} rows copied to {staging}, table dropped')
    old = stored_table(session, keyspace, staging)
    if old is not None:
      session.execute(create_table_cql(keyspace, table), timeout=DDL_TIMEOUT_S)
      copied = _copy_as_records(session, settings, table, staging, old, fills)
      session.execute(f'DROP TABLE {keyspace}.{staging}', timeout=DDL_TIMEOUT_S)
      done.append(
        f'{table.name}: created with PRIMARY KEY '
        f'{key_cql(key_layout(table))}, {copied} rows copied back'
      )
    return done

  step.__name__ = f'rebuild_with_key({table.name})'
  return step


def add_missing_columns(table: Table) -> Step:
  """A step adding the columns of `table`'s record that the stored table
  lacks (its rows get null there)."""

  def step(session: Session, settings: CassandraSettings) -> List[str]:
    stored = stored_table(session, settings.keyspace, table.name)
    if stored is None:
      return []  # created by record_version
    missing = [
      (name, CQL_TYPES[kind])
      for name, kind in cassandra_columns(table)
      if name not in stored.columns
    ]
    for name, cql_type in missing:
      session.execute(
        f'ALTER TABLE {settings.keyspace}.{table.name} ADD {name} {cql_type}', timeout=DDL_TIMEOUT_S
      )
    return [f'{table.name}: added {n} {t}' for n, t in missing]

  step.__name__ = f'add_missing_columns({table.name})'
  return step


def record_version(session: Session, settings: CassandraSettings) -> List[str]:
  """Applies this release's schema file (the tables still missing, the
  schema_version row) unless the version is recorded already."""
  version = stored_schema_version(session, settings.keyspace)
  if version is not None and version >= SCHEMA_VERSION:
    return []
  for statement in schema_statements(settings.keyspace, settings.replication):
    session.execute(statement, timeout=DDL_TIMEOUT_S)
  return [f'schema version {SCHEMA_VERSION} recorded']


def written_at_ms(values: Dict[str, Any], written_us: Optional[int]) -> int:
  """received_at of a dead letter from before v2, which did not keep it:
  when it was last written (a re-delivered record: its last delivery), in
  epoch ms; 0 if unknown."""
  del values  # the write time says it all
  return 0 if written_us is None else written_us // 1000


def record_default(table: Table, column: str) -> Fill:
  """The record's default for `column`, for rows written before the column
  existed (the default says what they held)."""
  value = table.record_type._field_defaults[column]
  return lambda values, written_us: value


MIGRATION_STEPS: Tuple[Step, ...] = (
  # v1 -> v2: day buckets in the partition keys, dead letters' received_at.
  rebuild_with_key(LATE_EVENTS),
  rebuild_with_key(DEAD_LETTERS, {'received_at': written_at_ms}),
  # v2 -> v3: channel in the key of abandon_metrics; older rows are voice.
  # Before add_missing_columns, which would add channel to the old layout
  # as a regular column, null in every row.
  rebuild_with_key(ABANDON_METRICS, {'channel': record_default(ABANDON_METRICS, 'channel')}),
  # v3 -> v4: queue_status and waiting_contacts; v4 -> v5: agent_status,
  # agent_metrics and agent_activity; v5 -> v6: rolling_metrics,
  # daily_metrics, alerts, alert_notifications and alert_deliveries: new
  # tables that record_version creates; v6 -> v7: late_events.reprocessed_at
  # (null in older rows: never reprocessed), and window_contacts and
  # metric_revisions, new tables.
  *(add_missing_columns(table) for table in TABLES.values()),
  record_version,
)


def migrate(settings: CassandraSettings) -> List[str]:
  """Runs MIGRATION_STEPS on `settings.keyspace`; returns what was done
  ([] when the keyspace was up to date). Raises ValueError when the
  keyspace does not exist, is newer than this release, or when Cassandra
  cannot be reached."""
  keyspace = settings.keyspace
  cluster, session = connect_at_launch(settings)
  try:
    if not list(
      session.execute(
        'SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s', (keyspace,)
      )
    ):
      raise ValueError(
        f'keyspace {keyspace} does not exist: nothing to migrate (a job '
        'creates it with the current schema)'
      )
    version = stored_schema_version(session, keyspace)
    if version is not None and version > SCHEMA_VERSION:
      raise ValueError(
        f'keyspace {keyspace} has schema v{version}, newer than the '
        f'v{SCHEMA_VERSION} of this release'
      )
    done = [line for step in MIGRATION_STEPS for line in step(session, settings)]
    refusal = schema_refusal(session, keyspace, TABLES.values())
    if refusal:
      raise RuntimeError(f'keyspace {keyspace} still outdated: {refusal}')
    return done
  finally:
    cluster.shutdown()
