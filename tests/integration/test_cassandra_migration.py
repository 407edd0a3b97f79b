"""Cassandra schema v2 against the real Cassandra of scripts/stack.sh up: a
keyspace created by schema v1 is migrated in place when a v2 job starts,
keeps its rows, and takes the v2 rows. Fails (never skips) when Cassandra is
down."""
from transforms import cassandra_sink
from transforms.cassandra_sink import (CassandraSink, CassandraWriter,
                                       schema_statements)
from transforms.records import AbandonMetrics
from transforms.schema import ABANDON_METRICS, TABLES
from tests.integration.test_cassandra_sink import (  # noqa: F401 (fixtures)
    cassandra_args, read_all, sample_row, session, settings_of)

V1_COLUMNS = (
    'queue_id', 'window_start', 'window_end', 'total_calls', 'abandoned_calls',
    'short_abandoned_calls', 'answered_within_sl', 'total_wait_seconds',
    'abandon_rate', 'service_level', 'pane_index', 'pane_timing')


def test_a_v1_keyspace_is_migrated_when_a_v2_job_starts(cassandra_args, session):
  settings = settings_of(cassandra_args)
  keyspace = settings.keyspace
  for statement in schema_statements(keyspace, settings.replication, 1):
    session.execute(statement, timeout=60)
  session.execute(
      f'INSERT INTO {keyspace}.abandon_metrics ({", ".join(V1_COLUMNS)}) '
      f'VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)',
      ('Q-1', 0, 300_000, 4, 1, 0, 3, 40.0, 0.25, 0.75, 0, 'ON_TIME'))

  CassandraSink(settings).prepare(TABLES.values())
  CassandraSink(settings).prepare(TABLES.values())  # idempotent

  columns = {r.column_name for r in session.execute(
      'SELECT column_name FROM system_schema.columns '
      'WHERE keyspace_name = %s AND table_name = %s',
      (keyspace, 'abandon_metrics'))}
  assert columns == set(AbandonMetrics._fields)
  versions = sorted(r.version for r in session.execute(
      f'SELECT version FROM {keyspace}.schema_version'))
  assert versions == [1, cassandra_sink.SCHEMA_VERSION] == [1, 2]
  [old] = session.execute(
      f'SELECT total_calls, answered_calls, abandon_rate_definition '
      f'FROM {keyspace}.abandon_metrics WHERE queue_id = %s', ('Q-1',))
  assert (old.total_calls, old.answered_calls,
          old.abandon_rate_definition) == (4, None, None)

  writer = CassandraWriter(settings)
  try:
    row = sample_row(ABANDON_METRICS, 1)
    writer.upsert(ABANDON_METRICS, [row])
  finally:
    writer.close()
  assert row in read_all(session, keyspace, ABANDON_METRICS)
