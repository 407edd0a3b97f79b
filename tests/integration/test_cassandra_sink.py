"""The Cassandra sink against the real Cassandra of scripts/stack.sh up.

Each test works in its own keyspace and drops it. They fail (never skip)
when Cassandra is down.
"""
import logging
import os
import subprocess
import threading
import time
import uuid
from typing import Dict, List

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable

from pipelines import contact_center
from scripts.generate_events import write_call_events
from scripts.reference import reference_call_metrics
from tests.integration.test_services import _assert_reachable
from tests.test_pipeline_e2e import ROW_COLUMNS, reference_rows
from transforms import cassandra_sink
from transforms.cassandra_sink import (PANE_TIMESTAMP_BASE_US,
                                       CassandraSettings, CassandraSink,
                                       CassandraWriter, connect)
from transforms.schema import TABLES, Table

SCRIPTS = os.path.join(os.path.dirname(__file__), '..', '..', 'scripts')


@pytest.fixture
def cassandra_args(cassandra_hosts, cassandra_port) -> List[str]:
  """Sink options for a fresh keyspace, dropped after the test."""
  _assert_reachable(cassandra_hosts[0], cassandra_port, 'Cassandra')
  args = [
      f'--cassandra_hosts={",".join(cassandra_hosts)}',
      f'--cassandra_port={cassandra_port}',
      f'--cassandra_keyspace=it_sink_{uuid.uuid4().hex[:12]}'
  ]
  yield args
  cluster, session = connect(settings_of(args))
  try:
    session.execute(
        f'DROP KEYSPACE IF EXISTS {settings_of(args).keyspace}', timeout=60)
  finally:
    cluster.shutdown()


def settings_of(args: List[str]) -> CassandraSettings:
  return CassandraSettings.from_options(PipelineOptions(args))


@pytest.fixture
def session(cassandra_args):
  """A session of the test itself (the sink's settings, so it reconnects
  as fast as the sink after a restart)."""
  cluster, session = connect(settings_of(cassandra_args))
  yield session
  cluster.shutdown()


def sample_row(table: Table, version: int) -> tuple:
  """A record of `table` with the same key for every `version` and other
  values that differ between versions (the pane index is the version)."""
  values = {}
  for name, kind in table.columns:
    tag = 'key' if name in table.primary_key else version
    if name == table.version_column:
      values[name] = version
    elif kind is str:
      values[name] = f'{name}-{tag}'
    elif kind is bool:
      values[name] = bool(version % 2)
    elif kind is float:
      values[name] = 0.25 + (0 if tag == 'key' else version)
    else:
      values[name] = 1_000 + (0 if tag == 'key' else version)
  return table.record_type(**values)


def read_all(session, keyspace: str, table: Table) -> List[tuple]:
  names = ', '.join(name for name, _ in table.columns)
  return [
      table.record_type(*row)
      for row in session.execute(f'SELECT {names} FROM {keyspace}.{table.name}')
  ]


def test_writer_upserts_every_table(cassandra_args, session):
  settings = settings_of(cassandra_args)
  CassandraSink(settings).prepare(TABLES.values())
  writer = CassandraWriter(settings)
  writer.open()
  try:
    for table in TABLES.values():
      writer.upsert(table, [sample_row(table, 1)])
      assert read_all(session, settings.keyspace, table) == [
          sample_row(table, 1)], table.name
      # The same key again: an upsert, not a second row.
      writer.upsert(table, [sample_row(table, 2)])
      assert read_all(session, settings.keyspace, table) == [
          sample_row(table, 2)], table.name
  finally:
    writer.close()
  [version] = session.execute(
      f'SELECT version FROM {settings.keyspace}.schema_version')
  assert version.version == cassandra_sink.SCHEMA_VERSION


def test_a_later_pane_wins_whatever_the_write_order(cassandra_args, session):
  settings = settings_of(cassandra_args)
  versioned = [t for t in TABLES.values() if t.version_column]
  assert versioned, 'no table has a version column'
  CassandraSink(settings).prepare(versioned)
  writer = CassandraWriter(settings)
  try:
    for table in versioned:
      for pane, expected in ((2, 2), (1, 2), (2, 2), (0, 2), (3, 3)):
        writer.upsert(table, [sample_row(table, pane)])
        assert read_all(session, settings.keyspace, table) == [
            sample_row(table, expected)], (table.name, pane)
      [stamp] = session.execute(
          f'SELECT writetime({table.version_column}) AS t '
          f'FROM {settings.keyspace}.{table.name}')
      assert stamp.t == PANE_TIMESTAMP_BASE_US + 3
  finally:
    writer.close()


def run_job(events: str, cassandra_args: List[str], *extra: str):
  """Runs the main job into Cassandra; returns its wall time in seconds."""
  started = time.monotonic()
  contact_center.run([
      f'--call_events={events}', '--sink=cassandra', *cassandra_args, *extra
  ])
  return time.monotonic() - started


def assert_rows_match_reference(session, keyspace: str, events: str,
                                **reference_args) -> None:
  rows = {(q, ws): list(rest)
          for q, ws, *rest in session.execute(
              f'SELECT queue_id, window_start, {ROW_COLUMNS} '
              f'FROM {keyspace}.abandon_metrics')}
  late = [r.event_id for r in session.execute(
      f'SELECT event_id FROM {keyspace}.late_events')]
  dead = [r.reason for r in session.execute(
      f'SELECT reason FROM {keyspace}.dead_letters')]
  ref = reference_call_metrics(events, **reference_args)
  assert rows == reference_rows(ref)
  assert sorted(late) == sorted(ref.late)
  assert len(dead) == ref.dead_letter_count


def test_main_job_writes_the_reference_rows(cassandra_args, session, tmp_path):
  events = str(tmp_path / 'calls.jsonl')
  counts = write_call_events(
      events, 4000, seed=11, events_per_second=4, oversized=True)
  seconds = run_job(events, cassandra_args, '--short_abandon_threshold=5')
  print(f'main job, 4000 calls into Cassandra: {seconds:.1f} s')

  assert_rows_match_reference(
      session, settings_of(cassandra_args).keyspace, events,
      short_abandon_threshold_s=5)
  assert counts['malformed'] > 0


class CassandraRestart(threading.Thread):
  """Restarts Cassandra once `ready()` holds (rows are being written), unless
  `job_done` is set first; records when the node was down."""
  def __init__(self, ready, job_done: threading.Event, env: Dict[str, str]):
    super().__init__(daemon=True)
    self._ready = ready
    self._job_done = job_done
    self._env = env
    self.stopped_at = self.started_at = None
    self.error = None

  def run(self):
    try:
      while not self._ready():
        if self._job_done.wait(0.5):
          return
      self._script('stop')
      self.stopped_at = time.monotonic()
    except Exception as e:  # pylint: disable=broad-except
      self.error = e
    finally:
      # Whatever happened, leave Cassandra running for the next tests.
      try:
        self._script('start')
        self.started_at = time.monotonic()
      except Exception as e:  # pylint: disable=broad-except
        self.error = self.error or e

  def _script(self, action):
    subprocess.run([os.path.join(SCRIPTS, 'cassandra.sh'), action],
                   check=True, timeout=300, env=self._env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_main_job_rides_out_a_cassandra_restart(
    cassandra_args, session, tmp_path, cassandra_hosts, cassandra_port,
    caplog):
  events = str(tmp_path / 'calls.jsonl')
  write_call_events(events, 20000, seed=5, events_per_second=4)
  keyspace = settings_of(cassandra_args).keyspace

  def rows_are_being_written():
    try:
      return session.execute(
          f'SELECT count(*) FROM {keyspace}.abandon_metrics').one()[0] > 0
    except Exception:  # pylint: disable=broad-except
      return False  # the keyspace does not exist yet

  caplog.set_level(logging.WARNING, logger=cassandra_sink.__name__)
  job_done = threading.Event()
  restart = CassandraRestart(
      rows_are_being_written, job_done,
      dict(os.environ, CASSANDRA_HOST=cassandra_hosts[0],
           CASSANDRA_PORT=str(cassandra_port)))
  restart.start()
  try:
    seconds = run_job(events, cassandra_args)
  finally:
    job_done.set()
    restart.join(timeout=600)

  assert restart.error is None, restart.error
  assert restart.stopped_at is not None, 'the job ended before the restart'
  print(f'Cassandra down for {restart.started_at - restart.stopped_at:.1f} s '
        f'of a {seconds:.1f} s job')
  # The retry log lines, not Beam metrics: the local runner's metric
  # results miss most bundles' updates.
  retries = [
      r for r in caplog.records
      if r.name == cassandra_sink.__name__ and 'retry' in r.getMessage()
  ]
  assert retries, 'no write met the outage: the test proved nothing'
  # The test's own session reconnects on the driver's backoff (up to 5 s
  # between attempts); the job can finish before it has.
  wait_until_answering(session, timeout_s=120)
  assert_rows_match_reference(session, keyspace, events)


def wait_until_answering(session, timeout_s: float) -> None:
  deadline = time.monotonic() + timeout_s
  while True:
    try:
      session.execute('SELECT release_version FROM system.local')
      return
    except (NoHostAvailable, OperationTimedOut):
      if time.monotonic() > deadline:
        raise
      time.sleep(1)
