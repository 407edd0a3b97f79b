"""The project's Cassandra library: the result tables as idempotent upserts
into a keyspace, and what the wallboard and the migration need to reach it.

In: the frozen `CassandraSettings` (options/config.py, built once from
--cassandra_*; no password, which is read from the environment where a
connection is made). Out, by module:

- connection.py: a connected Cluster and Session, TLS, and one line saying
  what to fix when connecting cannot succeed (CassandraConnectError);
- schema.py: the versioned CQL schema (cql/v<N>_schema.cql), the upsert of a
  row and its pane timestamp, what a keyspace holds and whether a job may
  write to it (docs/cassandra_schema.md);
- migration.py: brings a keyspace of an older release to this schema
  (scripts/migrate_cassandra.py);
- writer.py: batched writes with retries, rejections and fatal errors;
- sink.py: the `ResultSink` of `--sink=cassandra`.

Users outside the package import from here: the sink registry
(transforms/sink_registry.py), the wallboard (pipelines/wallboard/),
scripts/migrate_cassandra.py and the tests.
"""

from options.config import CassandraSettings
from transforms.cassandra.connection import (
  CassandraConnectError,
  connect,
  connect_at_launch,
  describe_connect_error,
)
from transforms.cassandra.migration import migrate
from transforms.cassandra.schema import SCHEMA_VERSION
from transforms.cassandra.sink import CassandraSink
from transforms.cassandra.writer import CassandraWriteError, CassandraWriter

__all__ = [
  'SCHEMA_VERSION',
  'CassandraConnectError',
  'CassandraSettings',
  'CassandraSink',
  'CassandraWriteError',
  'CassandraWriter',
  'connect',
  'connect_at_launch',
  'describe_connect_error',
  'migrate',
]
