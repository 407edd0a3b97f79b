"""The live half of the wallboard: contacts waiting now and the longest wait
per queue (tables queue_status and waiting_contacts), and the open window's
early panes marked "so far".

Fast tests of the query layer over SQLite stores the project's sink
writes, of the Cassandra store's statements (a fake session: no Cassandra
runs here) and of the options; then the page in headless Chromium: the
live figures first on each tile, the longest wait ticking between rows, a
row written to the store on the page within 10 s, the waiting contacts in
the drill-down, the colours of the longest wait, and hostile contact ids
and queue names shown as text."""

import collections
import json
import re
import time
from typing import Any, Dict, List

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from selenium.webdriver.common.by import By

from pipelines.wallboard import stores
from pipelines.wallboard.config import WallboardConfig
from pipelines.wallboard.queries import (
  MAX_CONTACTS_JSON,
  MAX_TEXT,
  MAX_WAITING_LISTED,
  Thresholds,
  WallboardQueries,
  longest_wait_status,
  parse_contacts,
)
from pipelines.wallboard.server import Filter, SnapshotFeed, _delta
from pipelines.wallboard.stores import LIVE_TABLES, CassandraStore, SqliteStore
from tests.support.wallboard_helpers import (
  LIVE_UPDATE_TIMEOUT_S,
  WINDOW_MS,
  assert_no_console_errors,
  assert_nothing_executed,
  chromium,
  clock_seconds,
  current_window_start,
  live_figures,
  queue_status_row,
  screenshot,
  tile,
  tiles,
  wait_for,
  waiting_contacts_row,
  wallboard,
  window_row,
)
from transforms.cassandra import CassandraSettings
from transforms.schema import ABANDON_METRICS, QUEUE_STATUS, TABLES, WAITING_CONTACTS
from transforms.sqlite_sink import SqliteSink, SqliteWriter

THRESHOLDS = Thresholds(0.05, 0.10, 0.80, 60.0, 120.0)
NOW_MS = 1_800_000_000_000
START = current_window_start(NOW_MS / 1000)
HOSTILE_CONTACT = '<img src=x onerror="window.__xss=5">'
HOSTILE_NAME = '<b>Sales</b>'


def new_store(path: str, live: bool = True) -> SqliteWriter:
  """A fresh SQLite store (without the live tables, as a release before
  them left it, when not `live`) and an open writer."""
  tables = [t for t in TABLES.values() if live or t.name not in LIVE_TABLES]
  SqliteSink(path).prepare(tables)
  writer = SqliteWriter(path)
  writer.open()
  return writer


def queries_on(path: str, now_ms: int = NOW_MS, thresholds=THRESHOLDS) -> WallboardQueries:
  return WallboardQueries(SqliteStore(path), thresholds, 10_000, clock=lambda: now_ms / 1000)


@pytest.fixture
def live_db(tmp_path) -> str:
  """Q-1: windows, voice and chat waiting; Q-2: windows, nobody waiting;
  Q-LIVE: contacts waiting, no window yet, a name of HTML; Q-OLD: windows
  only."""
  path = str(tmp_path / 'live.db')
  writer = new_store(path)
  writer.upsert(
    ABANDON_METRICS,
    [
      window_row('Q-1', START, 10, 0, 10, 10.0),
      window_row('Q-2', START, 10, 0, 10, 10.0),
      window_row('Q-OLD', START, 10, 0, 10, 10.0),
    ],
  )
  writer.upsert(
    QUEUE_STATUS,
    [
      # voice: 30 s as of the row, written now; chat: 50 s as of a row
      # written 5 s ago, so 55 s now: the longest.
      queue_status_row('Q-1', 2, NOW_MS - 30_000, NOW_MS, NOW_MS),
      queue_status_row('Q-1', 1, NOW_MS - 55_000, NOW_MS - 5_000, NOW_MS - 5_000, 'chat'),
      queue_status_row('Q-2', 0, None, NOW_MS, NOW_MS),
      queue_status_row('Q-LIVE', 3, NOW_MS - 200_000, NOW_MS, NOW_MS, name=HOSTILE_NAME),
    ],
  )
  writer.upsert(
    WAITING_CONTACTS,
    [
      waiting_contacts_row(
        'Q-1', [('c-1', NOW_MS - 30_000), (HOSTILE_CONTACT, NOW_MS - 10_000)], NOW_MS, NOW_MS
      ),
      waiting_contacts_row('Q-1', [('c-chat', NOW_MS - 55_000)], NOW_MS - 5_000, NOW_MS, 'chat'),
    ],
  )
  writer.close()
  return path


def by_queue(snapshot: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
  return {t['queue_id']: t for t in snapshot['queues']['tiles']}


# --- the query layer --------------------------------------------------------


def test_tiles_carry_waiting_now_and_the_longest_waits_row(live_db):
  snapshot = queries_on(live_db).snapshot()
  assert snapshot['queues']['live'] == {'available': True, 'complete': True}
  tiles_ = by_queue(snapshot)
  assert set(tiles_) == {'Q-1', 'Q-2', 'Q-LIVE', 'Q-OLD'}
  # Channels summed; the longest wait is chat's row (55 s at NOW_MS).
  assert tiles_['Q-1']['live'] == {
    'waiting': 3,
    'wait_ms': 50_000,
    'ticking': True,
    'oldest_waiting_since': NOW_MS - 55_000,
    'as_of': NOW_MS - 5_000,
    'updated_at': NOW_MS - 5_000,
    'channels': ['chat', 'voice'],
  }
  assert tiles_['Q-2']['live']['waiting'] == 0
  assert (tiles_['Q-2']['live']['wait_ms'], tiles_['Q-2']['live']['ticking']) == (0, False)
  assert tiles_['Q-OLD']['live'] is None
  # A queue with contacts waiting and no window yet has a tile, named.
  live_only = tiles_['Q-LIVE']
  assert (live_only['window_start'], live_only['status'], live_only['current']) == (
    None,
    'idle',
    False,
  )
  assert live_only['queue_name'] == HOSTILE_NAME
  assert live_only['live']['waiting'] == 3
  assert snapshot['thresholds']['longest_wait_warn'] == 60.0
  assert snapshot['thresholds']['longest_wait_alert'] == 120.0


def test_the_worst_first_counts_the_longest_wait_now(live_db):
  queries = queries_on(live_db)
  board = queries.read()
  # Q-LIVE's contact has waited 200 s: alert, the worst; Q-1's 55 s: ok.
  assert [board.ranks[q].status for q in ('Q-LIVE', 'Q-1', 'Q-2')] == ['alert', 'ok', 'ok']
  view = queries.view(board, None, 1)
  assert [t['queue_id'] for t in view['queues']['tiles']] == ['Q-LIVE']
  assert view['queues']['rest']['waiting'] == 3  # Q-1's 3, Q-2's 0
  # 10 s later Q-1's chat contact has waited 65 s: warn, by the server's
  # clock since the row was written, not by event time.
  later = queries_on(live_db, NOW_MS + 10_000).read()
  assert later.ranks['Q-1'].status == 'warn'


def test_filters_and_the_drill_down_take_live_only_queues(live_db):
  queries = queries_on(live_db)
  board = queries.read()
  view = queries.view(board, ('Q-LIVE', 'Q-NONE'), 60)
  assert [t['queue_id'] for t in view['queues']['tiles']] == ['Q-LIVE']
  assert view['queues']['missing'] == 1
  assert queries.queue_exists('Q-LIVE') and not queries.queue_exists('Q-NONE')
  # The worst queue (Q-LIVE) has no window to draw: the charts skip it.
  assert queries.worst(board, None, 2) == ['Q-1', 'Q-2']
  detail = queries.queue_detail('Q-LIVE', 4)
  assert (detail['windows'], detail['pages']) == ([], 0)


def test_the_drill_down_lists_waiting_contacts_oldest_first(live_db):
  waiting = queries_on(live_db).queue_detail('Q-1', 4)['waiting']
  assert waiting['available'] and waiting['complete']
  assert waiting['waiting'] == 3
  assert [(c['contact_id'], c['channel'], c['since']) for c in waiting['contacts']] == [
    ('c-chat', 'chat', NOW_MS - 55_000),
    ('c-1', 'voice', NOW_MS - 30_000),
    (HOSTILE_CONTACT, 'voice', NOW_MS - 10_000),
  ]
  # Each with its row's times, from which the page ticks its wait.
  assert (waiting['contacts'][0]['as_of'], waiting['contacts'][0]['updated_at']) == (
    NOW_MS - 5_000,
    NOW_MS,
  )


def test_the_drill_down_lists_at_most_the_oldest_hundred(tmp_path):
  path = str(tmp_path / 'many.db')
  writer = new_store(path)
  rows = [
    waiting_contacts_row(
      'Q-1', [(f'{ch}-{i}', NOW_MS - 1_000 * (2 * i + k)) for i in range(80)], NOW_MS, NOW_MS, ch
    )
    for k, ch in enumerate(('voice', 'chat'))
  ]
  writer.upsert(WAITING_CONTACTS, rows)
  writer.close()
  waiting = queries_on(path).waiting_contacts('Q-1')
  assert (waiting['waiting'], len(waiting['contacts']), waiting['complete']) == (
    160,
    MAX_WAITING_LISTED,
    False,
  )
  sinces = [c['since'] for c in waiting['contacts']]
  assert sinces == sorted(sinces) and sinces[0] == NOW_MS - 1_000 * 159


def test_a_changed_row_changes_the_data_version_and_is_in_the_next_delta(live_db):
  queries = queries_on(live_db)
  feed = SnapshotFeed(queries, refresh_seconds=3600)
  feed.refresh()
  page = Filter(None, 60)
  before = feed.view(feed.current(), page)
  feed.refresh()
  assert feed.view(feed.current(), page)['data_version'] == before['data_version']
  writer = SqliteWriter(live_db)
  writer.open()
  writer.upsert(QUEUE_STATUS, [queue_status_row('Q-2', 4, NOW_MS, NOW_MS + 1, NOW_MS + 1)])
  writer.close()
  feed.refresh()
  after = feed.view(feed.current(), page)
  assert after['data_version'] != before['data_version']
  delta = _delta(before, after)
  assert [t['queue_id'] for t in delta['queues']['changed']] == ['Q-2']
  assert delta['queues']['changed'][0]['live']['waiting'] == 4


def test_empty_live_tables_show_no_live_figures(tmp_path):
  # A job (or an input format) that reports no live floor yet: no dashes.
  path = str(tmp_path / 'empty.db')
  writer = new_store(path)
  writer.upsert(ABANDON_METRICS, [window_row('Q-1', START, 10, 1, 9, 10.0)])
  writer.close()
  snapshot = queries_on(path).snapshot()
  assert snapshot['queues']['live'] == {'available': False, 'complete': True}
  assert queries_on(path).queue_detail('Q-1', 4)['waiting']['available'] is True


def test_a_store_without_the_live_tables_shows_no_live_figures(tmp_path):
  path = str(tmp_path / 'older.db')
  writer = new_store(path, live=False)
  writer.upsert(ABANDON_METRICS, [window_row('Q-1', START, 10, 1, 9, 10.0)])
  writer.close()
  queries = queries_on(path)
  snapshot = queries.snapshot()
  assert snapshot['queues']['live'] == {'available': False, 'complete': True}
  assert [(t['queue_id'], t['live']) for t in snapshot['queues']['tiles']] == [('Q-1', None)]
  assert queries.queue_detail('Q-1', 4)['waiting']['available'] is False
  assert not queries.queue_exists('Q-NONE')


def test_an_early_pane_on_any_channel_makes_the_tile_so_far(tmp_path):
  path = str(tmp_path / 'early.db')
  writer = new_store(path)
  writer.upsert(
    ABANDON_METRICS,
    [
      window_row('Q-1', START, 10, 1, 9, 10.0, pane=3)._replace(pane_timing='EARLY'),
      window_row('Q-1', START, 4, 0, 4, 4.0)._replace(channel='chat'),
    ],
  )
  writer.close()
  [tile_] = queries_on(path).snapshot()['queues']['tiles']
  assert (tile_['offered'], tile_['pane_timing']) == (14, 'EARLY')


def test_producer_values_out_of_range_read_as_unknown(tmp_path):
  path = str(tmp_path / 'garbage.db')
  writer = new_store(path)
  writer.upsert(
    QUEUE_STATUS,
    [
      queue_status_row('Q-1', 2, NOW_MS - 5_000, NOW_MS, NOW_MS)._replace(waiting=-3),
      # No oldest time: the row's longest wait, not ticking past unknowns.
      queue_status_row('Q-2', 1, None, NOW_MS, NOW_MS)._replace(longest_wait_seconds=7.0),
      queue_status_row('Q-3', 1, None, NOW_MS, NOW_MS)._replace(longest_wait_seconds=float('nan')),
    ],
  )
  writer.upsert(
    WAITING_CONTACTS,
    [
      waiting_contacts_row('Q-1', [], NOW_MS, NOW_MS)._replace(contacts='{"not": "a list"}'),
      waiting_contacts_row('Q-1', [('ok-1', NOW_MS - 1)], NOW_MS, NOW_MS, 'chat'),
    ],
  )
  writer.close()
  queries = queries_on(path)
  tiles_ = by_queue(queries.snapshot())
  assert tiles_['Q-1']['live']['waiting'] is None  # -3 is no count
  assert tiles_['Q-1']['live']['wait_ms'] == 5_000
  assert tiles_['Q-2']['live']['wait_ms'] == 7_000
  assert tiles_['Q-3']['live']['wait_ms'] is None
  waiting = queries.waiting_contacts('Q-1')
  assert [c['contact_id'] for c in waiting['contacts']] == ['ok-1']
  assert (waiting['unreadable'], waiting['complete']) == (1, False)


def test_contacts_json_is_parsed_within_bounds():
  good = json.dumps(
    [{'contact_id': 'a', 'since': 5}, {'contact_id': 'x' * 1000, 'since': 6}, {'since': 7}, 3]
  )
  contacts, skipped = parse_contacts(good)
  assert [c['since'] for c in contacts] == [5, 6] and skipped == 2
  assert len(contacts[1]['contact_id']) == MAX_TEXT and contacts[1]['contact_id'].endswith('…')
  assert parse_contacts('[' * 100_000) is None  # deeper than the parser goes
  assert parse_contacts(' ' * (MAX_CONTACTS_JSON + 1) + '[]') is None
  assert parse_contacts('{"contact_id": "a"}') is None
  assert parse_contacts('not json') is None
  assert parse_contacts(None) is None
  assert parse_contacts(json.dumps([{'contact_id': 'a', 'since': True}])) == ([], 1)


@pytest.mark.parametrize(
  'seconds, expected', [(None, 'idle'), (0, 'ok'), (59.9, 'ok'), (60, 'warn'), (120, 'alert')]
)
def test_longest_wait_status_at_the_edges(seconds, expected):
  assert longest_wait_status(seconds, THRESHOLDS) == expected


def config(*flags: str) -> WallboardConfig:
  return WallboardConfig.from_options(PipelineOptions(list(flags)))


def test_longest_wait_options():
  assert config().thresholds[3:] == (60.0, 120.0)
  assert config('--longest_wait_warn_seconds=30', '--longest_wait_alert_seconds=45').thresholds[
    3:
  ] == (30.0, 45.0)


@pytest.mark.parametrize(
  'flags, message',
  [
    (['--longest_wait_warn_seconds=200'], 'is above --longest_wait_alert_seconds=120.0'),
    (['--longest_wait_warn_seconds=-1'], 'seconds from 0 to 86400'),
    (['--longest_wait_alert_seconds=nan'], 'seconds from 0 to 86400'),
  ],
)
def test_bad_longest_wait_options_are_refused(flags, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    config(*flags)


# --- the Cassandra store: its statements, against a fake session ------------

Column = collections.namedtuple('Column', 'column_name kind position clustering_order')
TableName = collections.namedtuple('TableName', 'table_name')


class FakePrepared:
  def __init__(self, cql: str):
    self.cql = cql
    self.fetch_size = None


class FakeSession:
  """Answers the schema queries from `tables` (Table -> its CQL key as
  v4_schema.cql has it) and any SELECT of a table from `rows`, filtered by
  the bound `col = ?` terms; records the statements run."""

  def __init__(self, tables, rows: Dict[str, List[Dict[str, Any]]]):
    self.tables = tables
    self.rows = rows
    self.run: List[tuple] = []

  def prepare(self, cql: str) -> FakePrepared:
    return FakePrepared(cql)

  def execute(self, statement, params=()):
    if isinstance(statement, str):  # system_schema.tables
      return [TableName(t.name) for t in self.tables]
    if not isinstance(statement, FakePrepared):  # system_schema.columns
      found = [t for t in self.tables if t.name == params[1]]
      if not found:
        return []
      key = found[0].primary_key
      table = found[0]
      return (
        [Column(key[0], 'partition_key', 0, 'none')]
        + [Column(name, 'clustering', i, 'asc') for i, name in enumerate(key[1:])]
        + [Column(name, 'regular', -1, 'none') for name, _ in table.columns if name not in key]
      )
    cql = statement.cql
    self.run.append((cql, list(params)))
    selected = re.match(r'SELECT (?:DISTINCT )?(.*?) FROM', cql).group(1)
    names = [n.strip() for n in selected.split(',')]
    table = re.search(r'FROM \w+\.(\w+)', cql).group(1)
    terms = re.findall(r'(\w+) = \?', cql)
    Row = collections.namedtuple('Row', names)
    return [
      Row(*(row.get(n) for n in names))
      for row in self.rows.get(table, [])
      if all(row.get(term) == value for term, value in zip(terms, params))
    ]


class FakeCluster:
  def shutdown(self) -> None:
    pass


def cassandra_store(monkeypatch, tables, rows) -> tuple:
  session = FakeSession(tables, rows)
  monkeypatch.setattr(stores, 'connect', lambda settings: (FakeCluster(), session))
  settings = CassandraSettings.from_options(PipelineOptions(['--cassandra_keyspace=cc']))
  return CassandraStore(settings), session


def test_cassandra_reads_the_live_tables_by_their_keys(monkeypatch):
  status = queue_status_row('Q-1', 2, NOW_MS - 30_000, NOW_MS, NOW_MS)._asdict()
  contacts = waiting_contacts_row('Q-1', [('c-1', NOW_MS - 30_000)], NOW_MS, NOW_MS)._asdict()
  # A row without updated_at (a regular column: null is possible) reads
  # last, and its wait does not tick.
  unordered = queue_status_row('Q-2', 1, NOW_MS - 9_000, NOW_MS, 0)._asdict()
  unordered['updated_at'] = None
  store, session = cassandra_store(
    monkeypatch,
    list(TABLES.values()),
    {'queue_status': [unordered, status], 'waiting_contacts': [contacts]},
  )
  queries = WallboardQueries(store, THRESHOLDS, 10_000, clock=lambda: NOW_MS / 1000)
  tiles_ = by_queue(queries.snapshot())
  assert (tiles_['Q-1']['live']['waiting'], tiles_['Q-1']['live']['wait_ms']) == (2, 30_000)
  assert (tiles_['Q-2']['live']['wait_ms'], tiles_['Q-2']['live']['updated_at']) == (9_000, None)
  live_reads = [(cql, p) for cql, p in session.run if 'cc.queue_status' in cql]
  # One read of the whole table (a row per queue and channel), no filter.
  assert live_reads == [
    (
      'SELECT queue_id, channel, waiting, oldest_waiting_since, longest_wait_seconds, '
      'as_of, updated_at, queue_name FROM cc.queue_status',
      [],
    )
  ]
  session.run.clear()
  waiting = queries.waiting_contacts('Q-1')
  assert [c['contact_id'] for c in waiting['contacts']] == ['c-1']
  # The queue's partition only.
  assert session.run == [
    (
      'SELECT queue_id, channel, contacts, waiting, as_of, updated_at FROM cc.waiting_contacts '
      'WHERE queue_id = ? ALLOW FILTERING',
      ['Q-1'],
    )
  ]


def test_a_keyspace_without_the_live_tables_opens_and_shows_no_live_figures(monkeypatch):
  older = [t for t in TABLES.values() if t.name not in LIVE_TABLES]
  store, session = cassandra_store(monkeypatch, older, {})
  queries = WallboardQueries(store, THRESHOLDS, 10_000, clock=lambda: NOW_MS / 1000)
  snapshot = queries.snapshot()
  assert snapshot['queues']['live'] == {'available': False, 'complete': True}
  assert queries.waiting_contacts('Q-1')['available'] is False
  assert not [cql for cql, _ in session.run if 'queue_status' in cql or 'waiting_c' in cql]


# --- the page in headless Chromium -----------------------------------------


def longest(driver, queue_id: str) -> int:
  return clock_seconds(live_figures(driver)[queue_id][1])


def test_tiles_show_waiting_and_a_longest_wait_that_ticks_and_updates(tmp_path):
  db = str(tmp_path / 'page.db')
  writer = new_store(db)
  try:
    now = int(time.time() * 1000)
    start = current_window_start(now / 1000)
    writer.upsert(
      ABANDON_METRICS,
      [window_row('Q-1', start, 10, 0, 10, 10.0), window_row('Q-2', start, 10, 0, 10, 10.0)],
    )
    writer.upsert(
      QUEUE_STATUS,
      [
        queue_status_row('Q-1', 2, now - 20_000, now, now),
        queue_status_row('Q-1', 1, now - 5_000, now, now, 'chat'),
        queue_status_row('Q-2', 0, None, now, now),
        queue_status_row('Q-LIVE', 3, now - 10_000, now, now, name=HOSTILE_NAME),
      ],
    )
    flags = [f'--sqlite_path={db}', '--refresh_seconds=0.5', '--longest_wait_warn_seconds=3600']
    with wallboard(flags + ['--longest_wait_alert_seconds=7200']) as url, chromium() as driver:
      driver.get(url)
      wait_for(driver, lambda d: len(live_figures(d)) == 3, 30, 'the live figures did not show')
      figures = live_figures(driver)
      assert (figures['Q-1'][0], figures['Q-2'], figures['Q-LIVE'][0]) == ('3', ('0', '0:00'), '3')
      # The first figures of a tile, after its name and id.
      classes = tile(driver, 'Q-1').find_element(By.XPATH, './div[2]').get_attribute('class')
      assert classes == 'tile-live'
      elapsed = (time.time() * 1000 - now) / 1000
      assert 20 <= longest(driver, 'Q-1') <= 20 + elapsed + 1
      # A queue without a window yet: its live figures, its name as text.
      live_only = tile(driver, 'Q-LIVE')
      assert live_only.find_element(By.CLASS_NAME, 'tile-window').text == 'no window yet'
      assert live_only.find_element(By.CLASS_NAME, 'tile-name').text == HOSTILE_NAME

      # The longest wait moves on without a new row.
      driver.execute_script('window.__sameDocument = true')
      first = longest(driver, 'Q-1')
      wait_for(
        driver,
        lambda d: longest(d, 'Q-1') >= first + 2,
        5,
        'the longest wait did not tick',
      )
      assert figures['Q-1'][0] == live_figures(driver)['Q-1'][0]

      # A new row: on the page within the bound, without a reload.
      later = int(time.time() * 1000)
      writer.upsert(QUEUE_STATUS, [queue_status_row('Q-2', 4, later - 90_000, later, later)])
      wait_for(
        driver,
        lambda d: (
          live_figures(d)['Q-2'][0] == '4' and 90 <= longest(d, 'Q-2') <= 90 + LIVE_UPDATE_TIMEOUT_S
        ),
        LIVE_UPDATE_TIMEOUT_S,
        f'the new queue_status row did not show within {LIVE_UPDATE_TIMEOUT_S} s',
      )
      # The open window's early pane: its figures so far.
      writer.upsert(
        ABANDON_METRICS,
        [window_row('Q-1', start + WINDOW_MS, 4, 1, 3, 4.0, pane=2)._replace(pane_timing='EARLY')],
      )
      wait_for(
        driver,
        lambda d: tile(d, 'Q-1').find_element(By.CLASS_NAME, 'tile-window').text.endswith('so far'),
        LIVE_UPDATE_TIMEOUT_S,
        'the early pane was not marked so far',
      )
      assert tiles(driver)['Q-1'] == '25.0 %'
      assert 'abandon rate so far' in tile(driver, 'Q-1').text
      assert driver.execute_script('return window.__sameDocument') is True
      assert_nothing_executed(driver)
      assert_no_console_errors(driver)
      screenshot(driver, 'wallboard-live.png')
  finally:
    writer.close()


def test_the_longest_wait_turns_amber_then_red_past_the_thresholds(tmp_path):
  db = str(tmp_path / 'colours.db')
  writer = new_store(db)
  try:
    start = current_window_start(time.time())
    # Queues all green by their window: the colour comes from the wait.
    # Q-2 has a live row, Q-1 none yet: dashes.
    writer.upsert(
      ABANDON_METRICS,
      [window_row('Q-1', start, 10, 0, 10, 10.0), window_row('Q-2', start, 10, 0, 10, 10.0)],
    )
    now = int(time.time() * 1000)
    writer.upsert(QUEUE_STATUS, [queue_status_row('Q-2', 0, None, now, now)])
    flags = [f'--sqlite_path={db}', '--refresh_seconds=0.5']
    flags += ['--longest_wait_warn_seconds=4', '--longest_wait_alert_seconds=8']
    with wallboard(flags) as url, chromium() as driver:
      driver.get(url)
      wait_for(
        driver,
        lambda d: live_figures(d) == {'Q-1': ('–', '–'), 'Q-2': ('0', '0:00')},
        30,
        'the figures did not show',
      )
      now = int(time.time() * 1000)
      writer.upsert(QUEUE_STATUS, [queue_status_row('Q-1', 1, now, now, now)])

      def colour(d) -> str:
        node = tile(d, 'Q-1').find_element(By.CLASS_NAME, 'tile-longest')
        return node.get_attribute('class')

      wait_for(
        driver,
        lambda d: live_figures(d)['Q-1'][0] == '1' and 'level-ok' in colour(d),
        4,
        'the new wait was not shown green',
      )
      assert 'status-ok' in tile(driver, 'Q-1').get_attribute('class')
      wait_for(driver, lambda d: 'level-warn' in colour(d), 6, 'the wait did not turn amber')
      assert longest(driver, 'Q-1') >= 4
      assert 'status-warn' in tile(driver, 'Q-1').get_attribute('class')
      wait_for(driver, lambda d: 'level-alert' in colour(d), 6, 'the wait did not turn red')
      assert longest(driver, 'Q-1') >= 8
      assert 'status-alert' in tile(driver, 'Q-1').get_attribute('class')
      assert_no_console_errors(driver)
  finally:
    writer.close()


def test_the_drill_down_lists_the_waiting_contacts_as_text(tmp_path):
  db = str(tmp_path / 'contacts.db')
  writer = new_store(db)
  try:
    now = int(time.time() * 1000)
    start = current_window_start(now / 1000)
    writer.upsert(ABANDON_METRICS, [window_row('Q-1', start, 10, 0, 10, 10.0)])
    contacts = [('c-1', now - 40_000), (HOSTILE_CONTACT, now - 25_000), ('c-3', now - 2_000)]
    writer.upsert(QUEUE_STATUS, [queue_status_row('Q-1', 3, now - 40_000, now, now)])
    writer.upsert(WAITING_CONTACTS, [waiting_contacts_row('Q-1', contacts, now, now)])
    with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.5']) as url, chromium() as driver:
      driver.get(url)
      wait_for(driver, lambda d: 'Q-1' in live_figures(d), 30, 'the tile did not show')
      tile(driver, 'Q-1').click()

      def rows(d) -> List[List[str]]:
        return [
          [td.text for td in tr.find_elements(By.TAG_NAME, 'td')]
          for tr in d.find_elements(By.CSS_SELECTOR, '#detail-waiting tbody tr')
        ]

      wait_for(driver, lambda d: len(rows(d)) == 3, 10, 'the waiting contacts did not show')
      listed = rows(driver)
      assert [r[0] for r in listed] == ['c-1', HOSTILE_CONTACT, 'c-3']  # oldest first
      assert [r[1] for r in listed] == ['voice'] * 3
      scope = driver.find_element(By.ID, 'detail-waiting-scope').text
      assert scope == '· 3 waiting'
      # Waiting since: the browser's time zone, to the second.
      since = driver.execute_script(
        "return new Intl.DateTimeFormat(undefined, {hour: '2-digit', minute: '2-digit', "
        "second: '2-digit', hourCycle: 'h23'}).format(new Date(arguments[0]))",
        now - 40_000,
      )
      assert listed[0][2] == since

      def wait_of(d, row: int) -> int:
        text = rows(d)[row][3]  # "40 s", "1 min 05 s"
        parts = [int(n) for n in re.findall(r'\d+', text)]
        return parts[0] if len(parts) == 1 else parts[0] * 60 + parts[1]

      first = wait_of(driver, 0)
      assert first >= 40
      wait_for(driver, lambda d: wait_of(d, 0) >= first + 2, 5, 'the waits did not tick')
      assert_nothing_executed(driver)
      assert_no_console_errors(driver)
      screenshot(driver, 'wallboard-live-detail.png')
  finally:
    writer.close()


def test_a_page_on_a_store_without_the_live_tables_shows_no_live_figures(tmp_path):
  db = str(tmp_path / 'older.db')
  writer = new_store(db, live=False)
  try:
    start = current_window_start(time.time())
    writer.upsert(ABANDON_METRICS, [window_row('Q-1', start, 16, 1, 13, 160.0)])
    with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.5']) as url, chromium() as driver:
      driver.get(url)
      wait_for(driver, lambda d: tiles(d) == {'Q-1': '6.3 %'}, 30, 'the tile did not show')
      assert driver.find_elements(By.CSS_SELECTOR, '.tile-live') == []
      tile(driver, 'Q-1').click()
      wait_for(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, '#detail-windows tbody tr')) == 1,
        10,
        'the drill-down did not show',
      )
      assert not driver.find_element(By.ID, 'detail-live').is_displayed()
      assert_no_console_errors(driver)
  finally:
    writer.close()
