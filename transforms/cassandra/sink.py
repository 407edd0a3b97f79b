"""CassandraSink: the result tables as idempotent upserts into one Cassandra
keyspace.

In: the frozen `CassandraSettings` (options/config.py), built once from the
job's options (the sink registry, transforms/sink_registry.py). Out: at
launch the keyspace holds this release's schema (schema.py) or the launch
stops with one line saying why; on the workers each table's rows are written
by a CassandraWriter (writer.py).
"""

import functools
from typing import Iterable

from apache_beam.utils.timestamp import Duration
from cassandra import DriverException
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import ErrorMessage

from options.config import CassandraSettings
from transforms.cassandra.connection import connect_at_launch
from transforms.cassandra.schema import (
  DDL_TIMEOUT_S,
  SCHEMA_VERSION,
  schema_mismatches,
  schema_refusal,
  schema_statements,
)
from transforms.cassandra.writer import CassandraWriter, error_summary
from transforms.schema import Table
from transforms.sinks import ResultSink, WriteRows


def _where(settings: CassandraSettings) -> str:
  return f'Cassandra at {",".join(settings.hosts)}:{settings.port}'


class CassandraSink(ResultSink):
  """Writes every table into one Cassandra keyspace."""

  def __init__(self, settings: CassandraSettings, row_ttl: Duration = Duration(0)):
    settings.validate()
    self._settings = settings
    self._row_ttl = row_ttl

  def __repr__(self) -> str:
    return f'CassandraSink({self._settings!r})'

  def prepare(self, tables: Iterable[Table]) -> None:
    """Applies the versioned CQL schema (keyspace, tables, schema_version
    row). Raises ValueError, in one line, if a table's record no longer
    matches it, if Cassandra cannot be reached or refuses the job, or if
    the keyspace holds another schema version (schema_refusal)."""
    tables = list(tables)
    keyspace = self._settings.keyspace
    statements = schema_statements(keyspace, self._settings.replication)
    problems = schema_mismatches(keyspace, tables, statements)
    if problems:
      raise ValueError('; '.join(problems))
    cluster, session = connect_at_launch(self._settings)
    try:
      refusal = schema_refusal(session, keyspace, tables)
      if refusal:
        raise ValueError(refusal)
      for statement in statements:
        session.execute(statement, timeout=DDL_TIMEOUT_S)
    except (NoHostAvailable, DriverException, ErrorMessage) as e:
      raise ValueError(
        f'{_where(self._settings)}: cannot apply schema v{SCHEMA_VERSION} '
        f'to keyspace {keyspace}: {error_summary(e)}'
      ) from e
    finally:
      cluster.shutdown()

  def write(self, table: Table) -> WriteRows:
    return WriteRows(
      functools.partial(CassandraWriter, self._settings, self._row_ttl), table, 'cassandra'
    )
