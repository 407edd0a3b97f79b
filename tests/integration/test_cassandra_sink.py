"""The Cassandra sink against the real Cassandra of scripts/stack.sh up.

Each test works in its own keyspace and drops it. They fail (never skip)
when Cassandra is down.
"""

import datetime
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.utils.timestamp import Duration
from cassandra import OperationTimedOut
from cassandra.cluster import NoHostAvailable

from pipelines import contact_center
from testing.datagen.calls import write_call_events
from testing.reference.calls import ROW_COLUMNS, comparable_rows, reference_call_metrics
from tests.conftest import streaming_options
from tests.support import alert_scenario
from tests.support.beam_metrics import committed_counters
from tests.support.cassandra_keyspace import fresh_keyspace, session_of, settings_of
from transforms.cassandra import (
  CassandraSink,
  CassandraWriteError,
  CassandraWriter,
)
from transforms.cassandra import migration as cassandra_migration
from transforms.cassandra import schema as cassandra_schema
from transforms.cassandra import writer as cassandra_writer
from transforms.cassandra.schema import PANE_TIMESTAMP_BASE_US
from transforms.records import CHAT, VOICE, AbandonMetrics, WindowContact
from transforms.schema import ABANDON_METRICS, TABLES, WINDOW_CONTACTS, Table
from transforms.sinks import WriteTables

SCRIPTS = os.path.join(os.path.dirname(__file__), '..', '..', 'scripts')
REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"


@pytest.fixture
def cassandra_args(cassandra_hosts, cassandra_port) -> List[str]:
  """Sink options for a fresh keyspace, dropped after the test."""
  with fresh_keyspace(cassandra_hosts, cassandra_port, 'it_sink') as args:
    yield args


@pytest.fixture
def session(cassandra_args):
  """A session of the test itself (the sink's settings, so it reconnects
  as fast as the sink after a restart)."""
  with session_of(cassandra_args) as session:
    yield session


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
      assert read_all(session, settings.keyspace, table) == [sample_row(table, 1)], table.name
      # The same key again: an upsert, not a second row.
      writer.upsert(table, [sample_row(table, 2)])
      assert read_all(session, settings.keyspace, table) == [sample_row(table, 2)], table.name
  finally:
    writer.close()
  [version] = session.execute(f'SELECT version FROM {settings.keyspace}.schema_version')
  assert version.version == cassandra_schema.SCHEMA_VERSION == 7


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
        assert read_all(session, settings.keyspace, table) == [sample_row(table, expected)], (
          table.name,
          pane,
        )
      [stamp] = session.execute(
        f'SELECT writetime({table.version_column}) AS t FROM {settings.keyspace}.{table.name}'
      )
      # A time version (late_events.reprocessed_at, ms) is the write time.
      assert stamp.t == (3000 if table.version_is_time else PANE_TIMESTAMP_BASE_US + 3)
      # Both in one upsert: one batch of their partition, each row with
      # its own write timestamp.
      writer.upsert(table, [sample_row(table, 5), sample_row(table, 4)])
      assert read_all(session, settings.keyspace, table) == [sample_row(table, 5)], table.name
  finally:
    writer.close()


def run_job(events: str, cassandra_args: List[str], *extra: str):
  """Runs the main job into Cassandra; returns its wall time in seconds."""
  return run_job_with(cassandra_args, f'--call_events={events}', *extra)


def run_job_with(cassandra_args: List[str], *flags: str) -> float:
  """Runs the main job with `flags` into Cassandra; returns its wall time
  in seconds."""
  started = time.monotonic()
  contact_center.run(['--sink=cassandra', *cassandra_args, *flags])
  return time.monotonic() - started


def assert_rows_match_reference(session, keyspace: str, events: str, **reference_args) -> None:
  rows = {
    (q, ws): list(rest)
    for q, channel, ws, *rest in session.execute(
      f'SELECT queue_id, channel, window_start, {", ".join(ROW_COLUMNS)} '
      f'FROM {keyspace}.abandon_metrics'
    )
    if channel == VOICE  # the seed format's calls; any other channel fails below
  }
  assert session.execute(f'SELECT count(*) FROM {keyspace}.abandon_metrics').one()[0] == len(rows)
  late = [r.event_id for r in session.execute(f'SELECT event_id FROM {keyspace}.late_events')]
  dead = [r.reason for r in session.execute(f'SELECT reason FROM {keyspace}.dead_letters')]
  ref = reference_call_metrics(events, **reference_args)
  assert rows == comparable_rows(ref)
  assert sorted(late) == sorted(ref.late)
  assert len(dead) == ref.dead_letter_count


def test_main_job_writes_the_reference_rows(cassandra_args, session, tmp_path):
  events = str(tmp_path / 'calls.jsonl')
  counts = write_call_events(events, 4000, seed=11, events_per_second=4, oversized=True)
  seconds = run_job(events, cassandra_args, '--short_abandon_threshold_seconds=5')
  print(f'main job, 4000 calls into Cassandra: {seconds:.1f} s')

  assert_rows_match_reference(
    session, settings_of(cassandra_args).keyspace, events, short_abandon_threshold_s=5
  )
  assert counts['malformed'] > 0
  # The contacts behind the windows: one row per counted call, each
  # expiring --contact_detail_ttl_seconds (7 days) after it was written.
  keyspace = settings_of(cassandra_args).keyspace
  offered = sum(
    r.total_calls for r in session.execute(f'SELECT total_calls FROM {keyspace}.abandon_metrics')
  )
  contacts = list(
    session.execute(f'SELECT contact_id, TTL(outcome) AS ttl FROM {keyspace}.window_contacts')
  )
  assert len(contacts) == offered
  assert all(7 * 24 * 3600 - 600 < c.ttl <= 7 * 24 * 3600 for c in contacts)


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
    subprocess.run(
      [os.path.join(SCRIPTS, 'stack', 'cassandra.sh'), action],
      check=True,
      timeout=300,
      env=self._env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
    )


def test_main_job_rides_out_a_cassandra_restart(
  cassandra_args, session, tmp_path, cassandra_hosts, cassandra_port, caplog
):
  events = str(tmp_path / 'calls.jsonl')
  write_call_events(events, 20000, seed=5, events_per_second=4)
  keyspace = settings_of(cassandra_args).keyspace

  def rows_are_being_written():
    try:
      return session.execute(f'SELECT count(*) FROM {keyspace}.abandon_metrics').one()[0] > 0
    except Exception:  # pylint: disable=broad-except
      return False  # the keyspace does not exist yet

  caplog.set_level(logging.WARNING, logger=cassandra_writer.__name__)
  job_done = threading.Event()
  restart = CassandraRestart(
    rows_are_being_written,
    job_done,
    dict(os.environ, CASSANDRA_HOST=cassandra_hosts[0], CASSANDRA_PORT=str(cassandra_port)),
  )
  restart.start()
  try:
    seconds = run_job(events, cassandra_args)
  finally:
    job_done.set()
    restart.join(timeout=600)

  assert restart.error is None, restart.error
  assert restart.stopped_at is not None, 'the job ended before the restart'
  print(
    f'Cassandra down for {restart.started_at - restart.stopped_at:.1f} s of a {seconds:.1f} s job'
  )
  # The retry log lines, not Beam metrics: the local runner's metric
  # results miss most bundles' updates.
  retries = [
    r for r in caplog.records if r.name == cassandra_writer.__name__ and 'retry' in r.getMessage()
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


def metrics_row(queue_id: str) -> AbandonMetrics:
  return AbandonMetrics(queue_id, 0, 300_000, 3, 1, 0, 2, 9.5, 1 / 3, 2 / 3, 0, 'ON_TIME')


def utc_day_now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d')


def test_a_row_cassandra_refuses_becomes_a_dead_letter(cassandra_args, session):
  # Built here, not parsed: the parsers cap ids far below 64 KiB.
  oversized = metrics_row('Q' * (70 * 1024))
  settings = settings_of(cassandra_args)
  pipeline = beam.Pipeline(options=streaming_options())
  rows = (
    pipeline
    | TestStream().add_elements([metrics_row('Q-1'), oversized]).advance_watermark_to_infinity()
  )
  write = WriteTables([CassandraSink(settings)], TABLES)
  _ = {'abandon_metrics': rows} | write
  write.prepare(['abandon_metrics'])
  day = utc_day_now()
  result = pipeline.run()
  result.wait_until_finish()

  keyspace = settings.keyspace
  assert [
    r.queue_id for r in session.execute(f'SELECT queue_id FROM {keyspace}.abandon_metrics')
  ] == ['Q-1']
  # Read as an operator would: one source's dead letters of one day.
  [letter] = session.execute(
    f'SELECT origin, reason, detail, raw_size, received_at, '
    f'TTL(reason) AS ttl FROM {keyspace}.dead_letters '
    "WHERE source = 'sink:cassandra' AND day = %s",
    (day,),
  )
  assert letter.reason == 'rejected_by_sink'
  assert 'Key length of 71680 is longer than maximum of 65535' in (letter.detail)
  assert letter.origin.startswith('abandon_metrics:["QQQ')
  assert len(letter.origin) < 300
  assert letter.raw_size > 70 * 1024
  assert 0 < letter.ttl <= cassandra_schema.BUCKETED_TABLE_TTL_S
  assert committed_counters(result, 'sink')['abandon_metrics_rejected_rejected_by_sink'] == 1


def contact_row(queue_id: str, contact_id: str) -> WindowContact:
  return WindowContact(
    queue_id, VOICE, 300_000, contact_id, 'ANSWERED', 12.5, 310_000, 0, 'ON_TIME'
  )


def test_a_row_refused_inside_a_partition_batch_is_the_only_dead_letter(cassandra_args, session):
  # The rows of one partition go as one batch, which Cassandra refuses as
  # a whole for one bad row; the writer then writes them one by one.
  settings = settings_of(cassandra_args)
  CassandraSink(settings).prepare([WINDOW_CONTACTS])
  crowded = [
    contact_row('Q-1', f'C-{n}') for n in range(cassandra_writer.PARTITION_BATCH_ROWS * 2 + 7)
  ]
  oversized = contact_row('Q-1', 'C' * (70 * 1024))  # a clustering key over 64 KiB
  rows = [*crowded[:150], oversized, *crowded[150:], contact_row('Q-2', 'C-alone')]
  writer = CassandraWriter(settings, row_ttl=Duration(3600))
  try:
    rejections = writer.upsert(WINDOW_CONTACTS, rows)
  finally:
    writer.close()

  assert [(r.index, r.reason) for r in rejections] == [(150, 'rejected_by_sink')]
  # The clustering key's length, its other columns included.
  assert re.search(r'Key length of 71\d\d\d is longer than maximum of 65535', rejections[0].detail)
  stored = {
    (r.queue_id, r.contact_id): r.ttl
    for r in session.execute(
      f'SELECT queue_id, contact_id, TTL(outcome) AS ttl FROM {settings.keyspace}.window_contacts'
    )
  }
  assert sorted(stored) == sorted((r.queue_id, r.contact_id) for r in [*crowded, rows[-1]])
  assert all(0 < ttl <= 3600 for ttl in stored.values())


def test_an_unknown_keyspace_fails_at_once_without_retrying(cassandra_args, caplog):
  # Never prepared: the keyspace does not exist. With 8 retries the backoff
  # alone would wait over a minute.
  settings = settings_of([*cassandra_args, '--cassandra_max_retries=8'])
  caplog.set_level(logging.WARNING, logger=cassandra_writer.__name__)
  writer = CassandraWriter(settings)
  try:
    with pytest.raises(CassandraWriteError) as raised:
      writer.upsert(TABLES['abandon_metrics'], [metrics_row('Q-1')])
  finally:
    writer.close()
  assert str(raised.value) == (
    f'Cassandra refuses writes to {settings.keyspace}.abandon_metrics, not '
    'retried: InvalidRequest: Error from server: code=2200 [Invalid query] '
    f'message="keyspace {settings.keyspace} does not exist"'
  )
  assert [r for r in caplog.records if 'retry' in r.getMessage()] == []


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_a_launch_against_an_unreachable_cassandra_is_one_error_line(tmp_path):
  port = free_port()  # nothing listens there
  job = subprocess.run(
    [
      sys.executable,
      '-m',
      'pipelines.contact_center',
      '--call_events=samples/call_events.jsonl',
      '--sink=cassandra',
      '--cassandra_hosts=127.0.0.1',
      f'--cassandra_port={port}',
    ],
    cwd=os.path.join(SCRIPTS, '..'),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert job.returncode == 1
  assert 'Traceback' not in job.stderr, job.stderr
  assert job.stderr.splitlines()[-1].startswith(
    f'error: Cassandra at 127.0.0.1:{port}: connection refused; check '
    '--cassandra_hosts, --cassandra_port'
  ), job.stderr


def create_v1_keyspace(session, keyspace: str) -> None:
  """The keyspace as the release with schema v1 created it, with rows."""
  for statement in cassandra_schema.schema_statements(keyspace, REPLICATION, version=1):
    session.execute(statement, timeout=60)
  for i in range(3):
    session.execute(
      f'INSERT INTO {keyspace}.late_events (source, event_id, key, '
      'event_timestamp, window_start, window_end, watermark, reason, raw) '
      "VALUES ('cc-call-logs', %s, 'Q-1', %s, 0, 300000, 400000, "
      "'window_expired', '{}')",
      (f'late-{i}', 1793606400000 + i * 86_400_000),
    )
    session.execute(
      f'INSERT INTO {keyspace}.dead_letters (source, origin, reason, '
      "detail, raw, raw_size) VALUES ('cc-call-logs', %s, 'malformed_json', "
      "'x', '{', 1) USING TIMESTAMP %s",
      (f'calls.jsonl:{i}', 1793606400000_000 + i),
    )
  session.execute(
    f'INSERT INTO {keyspace}.abandon_metrics (queue_id, window_start, '
    "total_calls) VALUES ('Q-old', 0, 7)"
  )


def migrate_command(cassandra_args) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, '-m', 'scripts.migrate_cassandra', *cassandra_args],
    cwd=os.path.join(SCRIPTS, '..'),
    capture_output=True,
    text=True,
    timeout=600,
  )


def abandon_metrics_rebuilt(rows: int) -> List[str]:
  """What the migration prints when it gives abandon_metrics (of v1 or v2,
  holding `rows` rows) the v3 key; the vendor numerators of v2 come with
  it."""
  return [
    f'abandon_metrics: {rows} rows copied to abandon_metrics_migrating, table dropped',
    'abandon_metrics: created with PRIMARY KEY (queue_id, channel, window_start), '
    f'{rows} rows copied back',
  ]


def test_a_v1_keyspace_is_refused_then_migrated_then_written(cassandra_args, session, tmp_path):
  settings = settings_of(cassandra_args)
  keyspace = settings.keyspace
  create_v1_keyspace(session, keyspace)

  with pytest.raises(ValueError) as refused:
    CassandraSink(settings).prepare(TABLES.values())
  message = str(refused.value)
  assert message.startswith(f'Cassandra keyspace {keyspace} has schema v1, not v7 ('), message
  assert (
    'late_events has PRIMARY KEY (source, event_id, reason), not ((source, day), event_id, reason);'
  ) in message
  assert (f'"python -m scripts.migrate_cassandra --cassandra_keyspace={keyspace}"') in message

  migrated = migrate_command(cassandra_args)
  assert migrated.returncode == 0, migrated.stderr
  assert migrated.stdout.splitlines() == [
    'late_events: 3 rows copied to late_events_migrating, table dropped',
    'late_events: created with PRIMARY KEY ((source, day), event_id, reason), 3 rows copied back',
    'dead_letters: 3 rows copied to dead_letters_migrating, table dropped',
    'dead_letters: created with PRIMARY KEY ((source, day), origin), 3 rows copied back',
    *abandon_metrics_rebuilt(1),
    'schema version 7 recorded',
    f'keyspace {keyspace} is at schema v7',
  ]
  late = sorted(
    session.execute(f'SELECT event_id, day, event_timestamp FROM {keyspace}.late_events')
  )
  assert [(r.event_id, r.day) for r in late] == [
    ('late-0', '2026-11-02'),
    ('late-1', '2026-11-03'),
    ('late-2', '2026-11-04'),
  ]
  # received_at of the old dead letters: their write time (docs).
  dead = sorted(session.execute(f'SELECT origin, received_at, day FROM {keyspace}.dead_letters'))
  assert [(r.origin, r.received_at, r.day) for r in dead] == [
    (f'calls.jsonl:{i}', 1793606400000, '2026-11-02') for i in range(3)
  ]
  assert [
    tuple(r)
    for r in session.execute(
      f'SELECT queue_id, channel, total_calls FROM {keyspace}.abandon_metrics'
    )
  ] == [('Q-old', VOICE, 7)]
  assert sorted(
    r.version for r in session.execute(f'SELECT version FROM {keyspace}.schema_version')
  ) == [1, 7]

  again = migrate_command(cassandra_args)
  assert again.returncode == 0, again.stderr
  assert again.stdout.splitlines() == [
    f'keyspace {keyspace} is at schema v7 already: nothing to do'
  ]

  events = str(tmp_path / 'calls.jsonl')
  write_call_events(events, 300, seed=3, events_per_second=4)
  run_job(events, cassandra_args)
  assert session.execute(f'SELECT count(*) FROM {keyspace}.abandon_metrics').one()[0] > 1
  assert session.execute(f'SELECT count(*) FROM {keyspace}.dead_letters').one()[0] > 3


def test_an_interrupted_migration_finishes_when_run_again(cassandra_args, session, monkeypatch):
  settings = settings_of(cassandra_args)
  keyspace = settings.keyspace
  create_v1_keyspace(session, keyspace)
  # pylint: disable=protected-access
  copy_back = cassandra_migration._copy_as_records

  def crash_after_half(session_, settings_, table, *args):
    if table.name == 'dead_letters':
      raise KeyboardInterrupt('operator pressed ^C')
    return copy_back(session_, settings_, table, *args)

  monkeypatch.setattr(cassandra_migration, '_copy_as_records', crash_after_half)
  with pytest.raises(KeyboardInterrupt):
    cassandra_migration.migrate(settings)
  # dead_letters is gone, its rows only in the staging table: the job must
  # not start on this.
  with pytest.raises(ValueError, match='has schema v1'):
    CassandraSink(settings).prepare(TABLES.values())

  monkeypatch.setattr(cassandra_migration, '_copy_as_records', copy_back)
  assert cassandra_migration.migrate(settings) == [
    'dead_letters: created with PRIMARY KEY ((source, day), origin), 3 rows copied back',
    *abandon_metrics_rebuilt(1),
    'schema version 7 recorded',
  ]
  assert session.execute(f'SELECT count(*) FROM {keyspace}.dead_letters').one()[0] == 3
  assert session.execute(f'SELECT count(*) FROM {keyspace}.late_events').one()[0] == 3
  CassandraSink(settings).prepare(TABLES.values())


# abandon_metrics as schema v2 has it: every column of the record but those
# schema v3 added.
V2_ABANDON_METRICS_COLUMNS = [
  name for name in AbandonMetrics._fields if name not in ('channel', 'queue_name')
]


def create_v2_keyspace(session, keyspace: str, rows: List[AbandonMetrics]) -> None:
  """The keyspace as the release with schema v2 created it, with `rows`
  written as its sink wrote them (pane timestamps, no channel)."""
  for statement in cassandra_schema.schema_statements(keyspace, REPLICATION, version=2):
    session.execute(statement, timeout=60)
  names = V2_ABANDON_METRICS_COLUMNS
  insert = session.prepare(
    f'INSERT INTO {keyspace}.abandon_metrics ({", ".join(names)}) '
    f'VALUES ({", ".join("?" for _ in names)}) USING TIMESTAMP ?'
  )
  for row in rows:
    session.execute(
      insert, [*(getattr(row, n) for n in names), PANE_TIMESTAMP_BASE_US + row.pane_index]
    )


def v2_rows() -> List[AbandonMetrics]:
  """Rows of two queues and two windows, with the vendor numerators set."""
  return [
    metrics_row(queue)._replace(
      window_start=start,
      window_end=start + 300_000,
      pane_index=pane,
      answered_calls=2,
      abandon_rate_definition='genesys',
    )
    for queue, start, pane in (('Q-1', 0, 0), ('Q-1', 300_000, 2), ('Q-2', 0, 1))
  ]


def test_a_v2_keyspace_is_refused_naming_the_migration(cassandra_args, session):
  settings = settings_of(cassandra_args)
  keyspace = settings.keyspace
  create_v2_keyspace(session, keyspace, v2_rows())

  with pytest.raises(ValueError) as refused:
    CassandraSink(settings).prepare(TABLES.values())
  assert str(refused.value) == (
    f'Cassandra keyspace {keyspace} has schema v2, not v7 (abandon_metrics has '
    'PRIMARY KEY (queue_id, window_start), not (queue_id, channel, window_start); '
    'abandon_metrics lacks channel, queue_name; late_events lacks record, reprocessed_at): '
    'stop the jobs writing to it and migrate it '
    f'with "python -m scripts.migrate_cassandra --cassandra_keyspace={keyspace}" '
    "and the job's other --cassandra_* options (docs/cassandra_schema.md)"
  )
  # Refused before applying anything: the table keeps its v2 layout.
  assert (
    'channel' not in cassandra_schema.stored_table(session, keyspace, 'abandon_metrics').columns
  )


def test_a_v2_keyspace_is_migrated_with_its_rows_as_voice(cassandra_args, session):
  settings = settings_of(cassandra_args)
  keyspace = settings.keyspace
  rows = v2_rows()
  create_v2_keyspace(session, keyspace, rows)

  migrated = migrate_command(cassandra_args)
  assert migrated.returncode == 0, migrated.stderr
  assert migrated.stdout.splitlines() == [
    *abandon_metrics_rebuilt(3),
    'late_events: added record text',
    'late_events: added reprocessed_at bigint',
    'schema version 7 recorded',
    f'keyspace {keyspace} is at schema v7',
  ]
  assert all(row.channel == VOICE for row in rows)
  # Written before queue names existed: null there, as v3_schema.cql says.
  migrated_rows = [row._replace(queue_name=None) for row in rows]
  assert sorted(read_all(session, keyspace, ABANDON_METRICS)) == sorted(migrated_rows)
  # Each row keeps its pane's write timestamp, so later panes still win.
  stamps = {
    (r.queue_id, r.window_start): r.t
    for r in session.execute(
      f'SELECT queue_id, window_start, writetime(total_calls) AS t FROM {keyspace}.abandon_metrics'
    )
  }
  assert stamps == {
    (r.queue_id, r.window_start): PANE_TIMESTAMP_BASE_US + r.pane_index for r in rows
  }
  assert sorted(
    r.version for r in session.execute(f'SELECT version FROM {keyspace}.schema_version')
  ) == [2, 7]

  again = migrate_command(cassandra_args)
  assert again.returncode == 0, again.stderr
  assert again.stdout.splitlines() == [
    f'keyspace {keyspace} is at schema v7 already: nothing to do'
  ]

  CassandraSink(settings).prepare(TABLES.values())
  writer = CassandraWriter(settings)
  try:
    newest = rows[1]  # pane 2
    # An earlier pane of a migrated row loses; the same window of another
    # channel is a row of its own.
    writer.upsert(
      ABANDON_METRICS,
      [newest._replace(pane_index=1, total_calls=99), newest._replace(channel=CHAT)],
    )
  finally:
    writer.close()
  assert sorted(read_all(session, keyspace, ABANDON_METRICS)) == sorted(
    [*migrated_rows, newest._replace(channel=CHAT)]
  )


def test_two_channels_of_one_queue_and_window_are_two_rows(cassandra_args, session):
  settings = settings_of(cassandra_args)
  keyspace = settings.keyspace
  CassandraSink(settings).prepare(TABLES.values())
  voice = metrics_row('Q-1')
  chat = voice._replace(channel=CHAT, total_calls=5, abandoned_calls=0)
  writer = CassandraWriter(settings)
  try:
    writer.upsert(ABANDON_METRICS, [voice, chat])
    # A later pane of one channel updates that channel's row only.
    writer.upsert(ABANDON_METRICS, [chat._replace(pane_index=1, total_calls=6)])
  finally:
    writer.close()

  # One partition per queue, its rows clustered by channel, then window.
  assert [
    (r.channel, r.window_start, r.total_calls)
    for r in session.execute(
      f'SELECT channel, window_start, total_calls FROM {keyspace}.abandon_metrics '
      "WHERE queue_id = 'Q-1'"
    )
  ] == [(CHAT, 0, 6), (VOICE, 0, 3)]


def test_alerts_and_their_figures_land_in_cassandra(cassandra_args, session, tmp_path, monkeypatch):
  """The alerting scenario (tests/support/alert_scenario.py) into
  Cassandra: the alert's final row as delivered, its history in the
  day-bucketed notifications, every delivery, and the rolling and daily
  figures it rests on."""
  keyspace = settings_of(cassandra_args).keyspace
  with alert_scenario.receivers(tmp_path, monkeypatch) as (hook, _, smtp):
    run_job_with(cassandra_args, *alert_scenario.write_inputs(tmp_path, smtp.port))

  alert = session.execute(
    f'SELECT state, delivery_status, revision FROM {keyspace}.alerts '
    "WHERE rule = %s AND queue_id = 'Q-1' AND channel = 'voice'",
    (alert_scenario.RULE,),
  ).one()
  assert (alert.state, alert.delivery_status) == ('resolved', 'delivered')
  history = sorted(
    (r.created_at, r.kind, r.day)
    for r in session.execute(f'SELECT created_at, kind, day FROM {keyspace}.alert_notifications')
  )
  assert [(kind, day) for _, kind, day in history] == [
    ('firing', '2026-11-02'),
    ('restated', '2026-11-02'),
    ('resolved', '2026-11-02'),
  ]
  deliveries = list(session.execute(f'SELECT status FROM {keyspace}.alert_deliveries'))
  assert [d.status for d in deliveries] == ['delivered'] * 9
  assert len(hook.accepted) == 3
  daily = session.execute(
    f'SELECT local_date, total_calls, abandoned_calls FROM {keyspace}.daily_metrics '
    "WHERE queue_id = 'Q-1'"
  ).one()
  # 10 + 6 late calls of the first window, 10 of the second, 12 after.
  assert tuple(daily) == ('2026-11-02', 38, 4)
  rolling = {
    r.span: (r.total_calls, r.abandoned_calls)
    for r in session.execute(
      f'SELECT span, span_end, total_calls, abandoned_calls FROM {keyspace}.rolling_metrics '
      "WHERE queue_id = 'Q-1' AND channel = 'voice' AND span = '15m' "
      f'AND span_end = {alert_scenario.B + 900 * alert_scenario.S}'
    )
  }
  # The three windows to 08:15: 16 + 10 + 10 calls (two came after 08:15).
  assert rolling == {'15m': (36, 4)}
