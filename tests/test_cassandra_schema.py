"""The Cassandra sink without a Cassandra: the committed CQL schema against
the records, day buckets, pane timestamps, settings hygiene, the retry loop
and which errors are retried, rejected or fatal."""

import pickle
import re
import typing
from types import SimpleNamespace
from typing import NamedTuple

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from cassandra import AuthenticationFailed, InvalidRequest, OperationTimedOut, Unauthorized
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import SyntaxException

from transforms.cassandra import (
  CassandraSettings,
  CassandraSink,
  CassandraWriteError,
  CassandraWriter,
)
from transforms.cassandra import migration as cassandra_migration
from transforms.cassandra import schema as cassandra_schema
from transforms.cassandra import writer as cassandra_writer
from transforms.records import VOICE, AbandonMetrics, LateEvent, WindowContact
from transforms.schema import (
  ABANDON_METRICS,
  ALERT_DELIVERIES,
  ALERT_NOTIFICATIONS,
  ALERTS,
  DAILY_METRICS,
  DEAD_LETTERS,
  LATE_EVENTS,
  METRIC_REVISIONS,
  ROLLING_METRICS,
  TABLES,
  WINDOW_CONTACTS,
)
from transforms.sinks import Rejection

KEYSPACE = 'ks'
REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}"


def settings(*args: str) -> CassandraSettings:
  return CassandraSettings.from_options(PipelineOptions(list(args)))


def statements():
  return cassandra_schema.schema_statements(KEYSPACE, REPLICATION)


def test_committed_schema_matches_every_record():
  assert cassandra_schema.schema_mismatches(KEYSPACE, TABLES.values(), statements()) == []


def test_committed_schema_has_no_table_without_a_record():
  created = {
    m.group(1)
    for s in statements()
    for m in [re.match(rf'CREATE TABLE IF NOT EXISTS {KEYSPACE}\.(\w+)', s)]
    if m
  }
  assert created == set(TABLES) | {'schema_version'}


def test_schema_creates_the_keyspace_and_records_its_version():
  first, *_, last = statements()
  assert first == (f'CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = {REPLICATION}')
  assert re.match(
    rf'INSERT INTO {KEYSPACE}\.schema_version \(version, .*\)\s+'
    rf'VALUES \({cassandra_schema.SCHEMA_VERSION},',
    last,
  ), last


def test_late_events_and_dead_letters_are_partitioned_by_day_and_expire():
  for table in (LATE_EVENTS, DEAD_LETTERS):
    cql = cassandra_schema.create_table_cql(KEYSPACE, table)
    first, *rest = table.primary_key
    assert f'PRIMARY KEY (({first}, day), {", ".join(rest)}))' in cql, cql
    assert cql.endswith(' WITH default_time_to_live = 2592000'), cql
  assert 'time_to_live' not in cassandra_schema.create_table_cql(KEYSPACE, ABANDON_METRICS)


def _schema_tables(version):
  return {
    m.group(1): s
    for s in cassandra_schema.schema_statements(KEYSPACE, REPLICATION, version=version)
    for m in [re.match(rf'CREATE TABLE IF NOT EXISTS {KEYSPACE}\.(\w+)', s)]
    if m
  }


def test_v6_only_adds_the_alerting_tables_to_v5():
  # A v5 keyspace is migrated by applying v6 (record_version): nothing of
  # v5 may change, or its tables would need a rebuild step.
  v5, v6 = _schema_tables(5), _schema_tables(6)
  assert {name: v6[name] for name in v5} == v5
  assert set(v6) - set(v5) == {
    t.name for t in (ROLLING_METRICS, DAILY_METRICS, ALERTS, ALERT_NOTIFICATIONS, ALERT_DELIVERIES)
  }


def test_v7_adds_the_audit_tables_and_the_reprocessed_mark_to_v6():
  # A v6 keyspace is migrated by adding late_events.reprocessed_at
  # (add_missing_columns) and applying v7 (record_version): nothing else of
  # v6 may change.
  v6, v7 = _schema_tables(6), _schema_tables(7)
  changed = {name for name in v6 if v7[name] != v6[name]}
  assert changed == {LATE_EVENTS.name}
  added = r'\s*(record text|reprocessed_at bigint),'
  assert re.sub(added, '', v7[LATE_EVENTS.name]) == v6[LATE_EVENTS.name]
  assert set(v7) - set(v6) == {WINDOW_CONTACTS.name, METRIC_REVISIONS.name}
  assert cassandra_schema.SCHEMA_VERSION == 7


def test_expiring_rows_are_written_with_the_ttl():
  cql = cassandra_schema.insert_cql(KEYSPACE, WINDOW_CONTACTS)
  assert cql.endswith(' USING TTL ?'), cql
  revision = cassandra_schema.insert_cql(KEYSPACE, LATE_EVENTS)
  assert revision.endswith(' USING TIMESTAMP ?'), revision
  row = WindowContact('Q1', VOICE, 0, 'c-1', 'ABANDONED', 12.5, 1000, 0, 'ON_TIME', 'Q1')
  assert cassandra_schema.bind_values(WINDOW_CONTACTS, row, 3600)[-2:] == ('1970-01-01', 3600)


def test_alert_history_is_partitioned_by_rule_and_day_and_expires():
  # One rule's notifications of one day per partition, newest last within
  # a queue and channel: the wallboard reads an alert's history a day at
  # a time, newest day first.
  assert cassandra_schema.key_layout(ALERT_NOTIFICATIONS) == cassandra_schema.KeyLayout(
    ('rule', 'day'), ('queue_id', 'channel', 'created_at', 'notification_id')
  )
  cql = cassandra_schema.create_table_cql(KEYSPACE, ALERT_NOTIFICATIONS)
  assert cql.endswith(' WITH default_time_to_live = 2592000'), cql
  # The state of each rule, its deliveries and the figures: replaced by
  # version, kept until replaced.
  for table in (ALERTS, ALERT_DELIVERIES, ROLLING_METRICS, DAILY_METRICS):
    assert cassandra_schema.insert_cql(KEYSPACE, table).endswith(' USING TIMESTAMP ?'), table.name
    assert 'time_to_live' not in cassandra_schema.create_table_cql(KEYSPACE, table)
  assert 'USING TIMESTAMP' not in cassandra_schema.insert_cql(KEYSPACE, ALERT_NOTIFICATIONS)


def test_abandon_metrics_is_one_partition_per_queue_clustered_by_channel_and_window():
  assert cassandra_schema.key_layout(ABANDON_METRICS) == cassandra_schema.KeyLayout(
    ('queue_id',), ('channel', 'window_start')
  )
  cql = cassandra_schema.create_table_cql(KEYSPACE, ABANDON_METRICS)
  assert cql.endswith(
    ', channel text, queue_name text, PRIMARY KEY (queue_id, channel, window_start))'
  ), cql
  # v2 stays as released: the migration and its tests create v2 keyspaces.
  [v2_create] = [
    s
    for s in cassandra_schema.schema_statements(KEYSPACE, REPLICATION, version=2)
    if '.abandon_metrics (' in s
  ]
  assert 'channel' not in v2_create and 'PRIMARY KEY (queue_id, window_start)' in v2_create


def test_the_migration_rebuilds_abandon_metrics_before_adding_columns():
  # add_missing_columns first would add channel to the old layout as a
  # regular column; the rebuild must see the table without it.
  assert [step.__name__ for step in cassandra_migration.MIGRATION_STEPS] == [
    'rebuild_with_key(late_events)',
    'rebuild_with_key(dead_letters)',
    'rebuild_with_key(abandon_metrics)',
    *(f'add_missing_columns({name})' for name in TABLES),
    'record_version',
  ]


def v2_row(row: AbandonMetrics) -> dict:
  """`row` as a v2 keyspace holds it: every column but channel."""
  return {name: value for name, value in row._asdict().items() if name != 'channel'}


# The fills of the v2 -> v3 rebuild of abandon_metrics.
CHANNEL_FILL = {'channel': cassandra_migration.record_default(ABANDON_METRICS, 'channel')}


def test_a_v2_row_is_migrated_as_the_sink_writes_a_voice_row():
  row = AbandonMetrics('Q', 0, 300_000, 3, 1, 0, 2, 9.5, 1 / 3, 2 / 3, 4, 'LATE')
  assert row.channel == VOICE
  written_us = cassandra_schema.PANE_TIMESTAMP_BASE_US + 4

  for old in (v2_row(row), {**v2_row(row), 'channel': None}):
    migrated = cassandra_migration.migrated_values(ABANDON_METRICS, old, written_us, CHANNEL_FILL)
    assert migrated == cassandra_schema.bind_values(ABANDON_METRICS, row)


def test_a_row_without_a_pane_keeps_its_write_time():
  # Written by hand (the sink always sets the pane): its timestamp stays.
  old = {'queue_id': 'Q-old', 'window_start': 0, 'total_calls': 7}
  migrated = cassandra_migration.migrated_values(ABANDON_METRICS, old, 1_234, CHANNEL_FILL)
  columns = tuple(VOICE if name == 'channel' else old.get(name) for name in AbandonMetrics._fields)
  assert migrated == (*columns, 1_234)
  assert len(migrated) == cassandra_schema.insert_cql(KEYSPACE, ABANDON_METRICS).count('?')


def test_the_day_bucket_is_the_utc_day_of_the_record():
  # 2026-11-02T23:59:59.999Z and one millisecond later.
  event = LateEvent(
    'cc-call-logs', 'c1', 'Q-1', 1793663999999, 0, 300000, 0, 'window_expired', '{}'
  )

  def late_day(late):
    # The day, then the write timestamp of the version (reprocessed_at).
    return cassandra_schema.bind_values(LATE_EVENTS, late)[-2]

  assert late_day(event) == '2026-11-02'
  assert late_day(event._replace(event_timestamp=1793664000000)) == ('2026-11-03')
  assert cassandra_schema.insert_cql(KEYSPACE, LATE_EVENTS).startswith(
    f'INSERT INTO {KEYSPACE}.late_events (source, event_id, key, '
    'event_timestamp, window_start, window_end, watermark, reason, raw, '
    'record, reprocessed_at, day) VALUES ('
  )


def test_a_field_added_without_a_schema_change_is_reported():
  grown = NamedTuple(
    'AbandonMetrics', [*typing.get_type_hints(AbandonMetrics).items(), ('hold_seconds', float)]
  )
  table = ABANDON_METRICS._replace(record_type=grown)

  [problem] = cassandra_schema.schema_mismatches(KEYSPACE, [table], statements())
  assert problem.startswith('abandon_metrics:')
  assert 'hold_seconds double' in problem
  sink = CassandraSink(settings())
  with pytest.raises(ValueError, match='hold_seconds'):
    sink.prepare([table])  # refuses before connecting anywhere


def test_a_higher_pane_gets_a_later_write_timestamp():
  row = AbandonMetrics('Q', 0, 300_000, 3, 1, 0, 2, 9.5, 1 / 3, 2 / 3, 0, 'ON_TIME')
  stamps = [
    cassandra_schema.bind_values(ABANDON_METRICS, row._replace(pane_index=p))[-1]
    for p in (0, 1, 1, 7)
  ]
  assert stamps[0] < stamps[1] == stamps[2] < stamps[3]
  assert stamps[3] - cassandra_schema.PANE_TIMESTAMP_BASE_US == 7
  assert cassandra_schema.insert_cql(KEYSPACE, ABANDON_METRICS).endswith(' USING TIMESTAMP ?')
  assert 'USING TIMESTAMP' not in cassandra_schema.insert_cql(KEYSPACE, DEAD_LETTERS)


def test_the_password_stays_in_the_environment(monkeypatch):
  monkeypatch.setenv('CC_TEST_CASSANDRA_PW', 's3cr3t-value')
  sink = CassandraSink(
    settings('--cassandra_username=analytics', '--cassandra_password_env=CC_TEST_CASSANDRA_PW')
  )
  assert 's3cr3t' not in repr(sink)
  assert b's3cr3t' not in pickle.dumps(sink.write(ABANDON_METRICS))


def test_a_username_without_its_password_variable_fails_at_launch(monkeypatch):
  monkeypatch.delenv('CC_TEST_CASSANDRA_PW', raising=False)
  with pytest.raises(ValueError, match='CC_TEST_CASSANDRA_PW'):
    settings('--cassandra_username=analytics', '--cassandra_password_env=CC_TEST_CASSANDRA_PW')


@pytest.mark.parametrize(
  'arg',
  [
    '--cassandra_keyspace=drop table x',
    '--cassandra_keyspace=1ks',
    "--cassandra_replication='class': 'SimpleStrategy'",
    '--cassandra_write_concurrency=0',
    '--cassandra_hosts= , ',
  ],
)
def test_unusable_settings_fail_at_launch(arg):
  with pytest.raises(ValueError):
    settings(arg)


class FakePrepared:
  def __init__(self, cql):
    self.cql = cql

  def bind(self, values):
    return SimpleNamespace(values=values)


class FakeSession:
  def prepare(self, cql):
    return FakePrepared(cql)


class FakeCluster:
  def shutdown(self):
    pass


@pytest.fixture
def fake_cassandra(monkeypatch):
  """Replaces the driver under CassandraWriter: `outcomes` is a list of
  functions, one per write attempt, mapping a row's bound values to the
  driver's (success, result or exception); records attempts and sleeps.
  The rows of these tests are each in a partition of their own, so each is
  a request of its own (the batches of a partition: tests/integration/
  test_cassandra_sink.py)."""
  calls = {'attempts': [], 'sleeps': [], 'outcomes': []}

  def execute(session, statements_and_params, concurrency, raise_on_first_error):
    assert not raise_on_first_error and concurrency == 32
    outcome = calls['outcomes'][len(calls['attempts'])]
    params = [statement.values for statement, _ in statements_and_params]
    calls['attempts'].append(params)
    return [outcome(p) for p in params]

  monkeypatch.setattr(cassandra_writer, 'connect', lambda s: (FakeCluster(), FakeSession()))
  monkeypatch.setattr(cassandra_writer, 'execute_concurrent', execute)
  monkeypatch.setattr(cassandra_writer.time, 'sleep', calls['sleeps'].append)
  return calls


def rows(n):
  return [
    AbandonMetrics(f'Q{i}', 0, 300_000, 1, 0, 0, 1, 2.0, 0.0, 1.0, 0, 'ON_TIME') for i in range(n)
  ]


def test_only_failed_rows_are_retried_after_a_backoff(fake_cassandra):
  fake_cassandra['outcomes'] = [
    lambda p: (p[0] != 'Q1', OperationTimedOut()),
    lambda p: (True, None),
  ]
  writer = CassandraWriter(settings())
  writer.upsert(ABANDON_METRICS, rows(3))

  assert [[p[0] for p in a] for a in fake_cassandra['attempts']] == [['Q0', 'Q1', 'Q2'], ['Q1']]
  [delay] = fake_cassandra['sleeps']
  assert 0.5 <= delay <= 1.0


def test_rows_still_failing_after_the_retries_raise(fake_cassandra):
  fake_cassandra['outcomes'] = [lambda p: (False, OperationTimedOut())] * 5
  writer = CassandraWriter(settings('--cassandra_max_retries=4'))
  with pytest.raises(CassandraWriteError, match='2 rows .* after 4 retries'):
    writer.upsert(ABANDON_METRICS, rows(2))

  sleeps = fake_cassandra['sleeps']
  assert len(sleeps) == 4 and len(fake_cassandra['attempts']) == 5
  assert all(
    cassandra_writer.BACKOFF_BASE_S * 2**i / 2 <= s <= cassandra_writer.BACKOFF_BASE_S * 2**i
    for i, s in enumerate(sleeps)
  )


KEY_TOO_LONG = InvalidRequest(
  'Error from server: code=2200 [Invalid query] message="Key length of '
  '71680 is longer than maximum of 65535"'
)


def test_a_row_cassandra_refuses_is_rejected_and_the_others_written(fake_cassandra):
  fake_cassandra['outcomes'] = [
    lambda p: (p[0] != 'Q1', KEY_TOO_LONG),
  ]
  rejected = CassandraWriter(settings()).upsert(ABANDON_METRICS, rows(3))

  assert rejected == [Rejection(1, 'rejected_by_sink', f'InvalidRequest: {KEY_TOO_LONG}')]
  assert len(fake_cassandra['attempts']) == 1
  assert fake_cassandra['sleeps'] == []


def test_a_row_the_driver_cannot_encode_is_rejected(fake_cassandra):
  fake_cassandra['outcomes'] = [
    lambda p: (
      p[0] != 'Q0',
      UnicodeEncodeError('utf-8', 'Q\ud800', 1, 2, 'surrogates not allowed'),
    ),
  ]
  [rejection] = CassandraWriter(settings()).upsert(ABANDON_METRICS, rows(2))
  assert rejection.index == 0 and rejection.reason == 'not_encodable'


def test_a_row_without_a_usable_day_is_rejected_before_writing(fake_cassandra):
  fake_cassandra['outcomes'] = [lambda p: (True, None)]
  event = LateEvent(
    'cc-call-logs', 'c1', 'Q-1', 1793606400000, 0, 300000, 0, 'window_expired', '{}'
  )
  rejected = CassandraWriter(settings()).upsert(
    LATE_EVENTS, [event._replace(event_timestamp=None), event]
  )

  assert [(r.index, r.reason) for r in rejected] == [(0, 'not_encodable')]
  [written] = fake_cassandra['attempts'][0]
  # Never reprocessed: the lowest write time, so a reprocessing mark wins.
  assert written[-2:] == ('2026-11-02', 0)


@pytest.mark.parametrize(
  'message',
  [
    'keyspace ks does not exist',
    'table abandon_metrics does not exist',
    'Undefined column name pane_timing in table ks.abandon_metrics',
  ],
)
def test_missing_schema_at_write_time_fails_at_once(fake_cassandra, message):
  fake_cassandra['outcomes'] = [lambda p: (False, InvalidRequest(message))]
  with pytest.raises(CassandraWriteError, match='not retried: .*' + message):
    CassandraWriter(settings()).upsert(ABANDON_METRICS, rows(2))
  assert fake_cassandra['sleeps'] == []


AUTH_FAILED = NoHostAvailable(
  'Unable to connect to any servers',
  {
    '10.0.0.1:9042': AuthenticationFailed(
      'Failed to authenticate to 10.0.0.1:9042: Error from server: '
      'code=0100 [Bad credentials] message="Provided username '
      'analytics and/or password are incorrect"'
    ),
    '10.0.0.2:9042': AuthenticationFailed('Bad credentials'),
  },
)
TLS_FAILED = NoHostAvailable(
  'Unable to connect to any servers',
  {
    '10.0.0.1:9042': PermissionError(
      1,
      "Tried connecting to [('10.0.0.1', 9042)]. Last error: [SSL: "
      'CERTIFICATE_VERIFY_FAILED] certificate verify failed',
    )
  },
)


@pytest.mark.parametrize(
  'error, says',
  [
    (AUTH_FAILED, '10.0.0.1:9042: AuthenticationFailed: Failed to authenticate'),
    (TLS_FAILED, 'CERTIFICATE_VERIFY_FAILED'),
    (
      Unauthorized('User analytics has no MODIFY permission on <table ks.t>'),
      'Unauthorized: User analytics has no MODIFY permission',
    ),
    (InvalidRequest('keyspace ks does not exist'), 'InvalidRequest: keyspace ks does not exist'),
    (SyntaxException(0x2000, 'line 1:20 no viable alternative', None), 'SyntaxException'),
  ],
  ids=['auth', 'tls', 'unauthorized', 'no-keyspace', 'syntax'],
)
def test_what_no_retry_can_fix_fails_at_once_in_one_line(fake_cassandra, monkeypatch, error, says):
  class RefusingSession:
    def prepare(self, cql):
      raise error

  def refuse(_):
    if isinstance(error, NoHostAvailable):
      raise error  # connecting fails
    return FakeCluster(), RefusingSession()  # preparing fails

  monkeypatch.setattr(cassandra_writer, 'connect', refuse)
  with pytest.raises(CassandraWriteError) as raised:
    CassandraWriter(settings()).upsert(ABANDON_METRICS, rows(1))
  message = str(raised.value)
  assert message.startswith(
    'Cassandra refuses writes to cxone_analytics.abandon_metrics, not retried: '
  ), message
  assert says in message and '\n' not in message
  assert fake_cassandra['sleeps'] == []


def test_a_cluster_that_does_not_answer_is_retried(fake_cassandra, monkeypatch):
  connects = []

  def refuse_once(_):
    connects.append(1)
    if len(connects) == 1:
      raise NoHostAvailable(
        'Unable to connect to any servers',
        {'127.0.0.1:9042': ConnectionRefusedError(111, 'Connection refused')},
      )
    return FakeCluster(), FakeSession()

  monkeypatch.setattr(cassandra_writer, 'connect', refuse_once)
  fake_cassandra['outcomes'] = [lambda p: (True, None)]
  assert CassandraWriter(settings()).upsert(ABANDON_METRICS, rows(1)) == []
  assert len(connects) == 2 and len(fake_cassandra['sleeps']) == 1


def test_a_rows_partition_key_is_found_among_its_bound_values():
  contact = WindowContact(
    'Q-1', VOICE, 86_400_000, 'C-1', 'ANSWERED', 3.0, 86_401_000, 0, 'ON_TIME'
  )
  values = cassandra_schema.bind_values(WINDOW_CONTACTS, contact, ttl_seconds=60)
  positions = cassandra_schema.partition_key_positions(WINDOW_CONTACTS)
  assert [values[i] for i in positions] == ['Q-1', '1970-01-02']
  assert cassandra_schema.partition_key_positions(ABANDON_METRICS) == (0,)


def test_the_day_bucket_is_the_utc_day_of_the_epoch_ms():
  bucket = WINDOW_CONTACTS.day_bucket
  contact = WindowContact('Q-1', VOICE, 0, 'C-1', 'ANSWERED', 3.0, 0, 0, 'ON_TIME')
  days = [bucket.value(contact._replace(window_start=ms)) for ms in (-1, 0, 86_399_999, 86_400_000)]
  assert days == ['1969-12-31', '1970-01-01', '1970-01-01', '1970-01-02']
  with pytest.raises(OverflowError):
    bucket.value(contact._replace(window_start=10**20))
