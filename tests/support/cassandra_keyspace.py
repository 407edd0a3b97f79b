"""A fresh Cassandra keyspace per test, on the real node of scripts/stack.sh
up: the job's Cassandra options naming it, dropped afterwards."""

import contextlib
import uuid
from typing import Iterator, List, Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from tests.integration.conftest import assert_reachable
from transforms.cassandra import CassandraSettings, connect


def settings_of(args: Sequence[str]) -> CassandraSettings:
  return CassandraSettings.from_options(PipelineOptions(list(args)))


@contextlib.contextmanager
def fresh_keyspace(hosts: Sequence[str], port: int, prefix: str) -> Iterator[List[str]]:
  """The `--cassandra_*` options of a new keyspace named `prefix` and a
  random suffix; fails (never skips) when Cassandra is not reachable."""
  assert_reachable(f'{hosts[0]}:{port}', 'Cassandra', 'start it with scripts/stack.sh up')
  args = [
    f'--cassandra_hosts={",".join(hosts)}',
    f'--cassandra_port={port}',
    f'--cassandra_keyspace={prefix}_{uuid.uuid4().hex[:12]}',
  ]
  try:
    yield args
  finally:
    cluster, session = connect(settings_of(args))
    try:
      session.execute(f'DROP KEYSPACE IF EXISTS {settings_of(args).keyspace}', timeout=60)
    finally:
      cluster.shutdown()


@contextlib.contextmanager
def session_of(args: Sequence[str]):
  """A session of the test itself, with the sink's settings."""
  cluster, session = connect(settings_of(args))
  try:
    yield session
  finally:
    cluster.shutdown()
