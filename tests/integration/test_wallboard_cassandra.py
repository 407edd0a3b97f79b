"""The wallboard over the real Cassandra of scripts/stack.sh up: the page in
headless Chromium, and the query layer giving the same numbers as over
SQLite for the same rows. Each test writes a fresh keyspace with the
project's CassandraSink/CassandraWriter. Fails (never skips) when Cassandra
is down."""

import sqlite3
import time

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import contact_center
from pipelines.wallboard.queries import Thresholds, WallboardQueries
from pipelines.wallboard.stores import CassandraStore, SqliteStore, StoreError
from tests.integration.conftest import assert_reachable
from tests.support.wallboard_helpers import (
  DRILL_QUEUE,
  REPO,
  WINDOW_MS,
  check_page,
  check_window_drill_down,
  chromium,
  current_window_start,
  wallboard,
  window_row,
  write_page_rows,
  write_window_rows,
)
from transforms.cassandra import CassandraSettings, CassandraSink, CassandraWriter
from transforms.schema import ABANDON_METRICS, DEAD_LETTERS, TABLES
from transforms.sqlite_sink import SqliteSink, SqliteWriter

THRESHOLDS = Thresholds(0.05, 0.10, 0.80)


@pytest.fixture
def flags(cassandra_hosts, cassandra_port, fresh_keyspace):
  assert_reachable(
    f'{cassandra_hosts[0]}:{cassandra_port}', 'Cassandra', 'start it with scripts/stack.sh up'
  )
  return [
    f'--cassandra_hosts={",".join(cassandra_hosts)}',
    f'--cassandra_port={cassandra_port}',
    f'--cassandra_keyspace={fresh_keyspace}',
  ]


@pytest.fixture
def writer(flags):
  """A writer into the fresh keyspace, its schema applied by the sink."""
  settings = CassandraSettings.from_options(PipelineOptions(flags))
  CassandraSink(settings).prepare(TABLES.values())
  writer = CassandraWriter(settings)
  writer.open()
  yield writer
  writer.close()


def test_page_over_cassandra(flags, writer):
  start = current_window_start(time.time())
  expected = write_page_rows(writer, start)
  with (
    wallboard(['--sink=cassandra', *flags, '--refresh_seconds=0.5']) as url,
    chromium() as driver,
  ):
    check_page(driver, url, writer, start, expected, 'wallboard-cassandra')


def test_the_same_rows_give_the_same_numbers_as_sqlite(flags, writer, tmp_path):
  db = str(tmp_path / 'sample.db')
  contact_center.run(
    [
      f'--call_events={REPO / "samples" / "call_events.jsonl"}',
      f'--data_actions={REPO / "samples" / "data_actions.jsonl"}',
      f'--sqlite_path={db}',
    ]
  )
  # The keyspace has every table (the writer's sink made them); the run
  # made those of its flows only (no agent events here): the SQLite store
  # gets the others too, empty, so both stores hold the same tables.
  SqliteSink(db).prepare(TABLES.values())
  with sqlite3.connect(db) as conn:
    for table in TABLES.values():
      names = ', '.join(name for name, _ in table.columns)
      writer.upsert(
        table,
        [table.record_type(*row) for row in conn.execute(f'SELECT {names} FROM {table.name}')],
      )
    [(start,)] = conn.execute(
      "SELECT MAX(window_start) FROM abandon_metrics WHERE queue_id = 'Q-101'"
    )
  # A second and a third channel of Q-101's newest window, in both stores:
  # tiles sum them, drill-downs split them (v3: clustered by channel).
  channels = [
    window_row('Q-101', start, 4, 3, 1, 8.0)._replace(channel=channel)
    for channel in ('chat', 'email')
  ]
  writer.upsert(ABANDON_METRICS, channels)
  sqlite_writer = SqliteWriter(db)
  sqlite_writer.open()
  sqlite_writer.upsert(ABANDON_METRICS, channels)
  sqlite_writer.close()
  settings = CassandraSettings.from_options(PipelineOptions(flags))
  now = 1_800_000_000  # a fixed clock: lag and staleness compare too
  sqlite_store, cassandra_store = SqliteStore(db), CassandraStore(settings)
  try:
    on_sqlite, on_cassandra = (
      WallboardQueries(store, THRESHOLDS, 10_000, clock=lambda: now)
      for store in (sqlite_store, cassandra_store)
    )
    snapshot = on_sqlite.snapshot()
    assert len(snapshot['queues']['tiles']) == 8
    assert snapshot['health']['late_events']['total'] > 0
    [mixed] = [t for t in snapshot['queues']['tiles'] if t['queue_id'] == 'Q-101']
    assert mixed['channels'] == ['chat', 'email', 'voice']
    assert on_cassandra.snapshot() == snapshot
    queues, until = (
      [t['queue_id'] for t in snapshot['queues']['tiles']],
      snapshot['queues']['newest_window_end'],
    )
    for hours in (1, 24):
      assert on_cassandra.queue_trends(hours, queues, until) == on_sqlite.queue_trends(
        hours, queues, until
      )

    def by_watermark(detail):
      detail['late_events'].sort(key=lambda e: (-e['watermark'], e['event_id']))
      return detail

    detail = by_watermark(on_sqlite.queue_detail('Q-101', 4))
    assert len(detail['late_events']) == 3
    assert len(detail['windows'][0]['channels']) == 3
    assert by_watermark(on_cassandra.queue_detail('Q-101', 4)) == detail
    assert on_cassandra.queue_exists('Q-101')
    assert not on_cassandra.queue_exists('Q-999')
  finally:
    sqlite_store.close()
    cassandra_store.close()

  # A scan stops at the store's limit and says so.
  capped = CassandraStore(settings, scan_limit=5)
  try:
    counts = capped.count(DEAD_LETTERS, ('source', 'reason'), 100)
  finally:
    capped.close()
  assert (counts.total, sum(counts.counts.values()), counts.complete) == (5, 5, False)


def test_a_keyspace_without_the_tables_is_a_clear_error(flags):
  settings = CassandraSettings.from_options(PipelineOptions(flags))
  with pytest.raises(StoreError, match='run the job with --sink=cassandra'):
    CassandraStore(settings)


def test_a_windows_contacts_and_revisions_over_cassandra(flags, writer, tmp_path):
  """The window drill-down: the same answers as SQLite for the same rows
  (one partition slice per window), then the page."""
  start = current_window_start(time.time())
  write_window_rows(writer, start)
  db = str(tmp_path / 'window.db')
  SqliteSink(db).prepare(TABLES.values())
  sqlite_writer = SqliteWriter(db)
  sqlite_writer.open()
  write_window_rows(sqlite_writer, start)
  sqlite_writer.close()
  settings = CassandraSettings.from_options(PipelineOptions(flags))
  sqlite_store, cassandra_store = SqliteStore(db), CassandraStore(settings)
  try:
    on_sqlite, on_cassandra = (
      WallboardQueries(store, THRESHOLDS, 10_000) for store in (sqlite_store, cassandra_store)
    )
    for window_start in (start - WINDOW_MS, start):
      for contacts in ('abandoned', 'all'):
        detail = on_sqlite.window_detail(DRILL_QUEUE, 'voice', window_start, contacts)
        assert detail['contacts']['contacts']
        assert on_cassandra.window_detail(DRILL_QUEUE, 'voice', window_start, contacts) == detail
    restated = on_cassandra.window_detail(DRILL_QUEUE, 'voice', start - WINDOW_MS)
    assert [r['pane_timing'] for r in restated['revisions']['revisions']] == ['LATE', 'RESTATED']
    assert on_cassandra.window_detail(DRILL_QUEUE, 'chat', start) is None
    windows = on_sqlite.queue_detail(DRILL_QUEUE, 4)['windows']
    assert [w['revised'] for w in windows] == [False, True]
    assert on_cassandra.queue_detail(DRILL_QUEUE, 4)['windows'] == windows
  finally:
    sqlite_store.close()
    cassandra_store.close()
  with (
    wallboard(['--sink=cassandra', *flags, '--refresh_seconds=0.5']) as url,
    chromium() as driver,
  ):
    check_window_drill_down(driver, url, 'wallboard-window-cassandra')
