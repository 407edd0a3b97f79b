"""The staffing half of the wallboard: agents by state per queue (table
agent_status) and agent time per window (agent_metrics).

Fast tests of the query layer over SQLite stores the project's sink
writes (agents summed over channels, the highlight of a queue whose
contacts wait with no agent available, the staffing panel's totals and
reasons, occupancy and AHT recomputed from summed seconds, producer values
out of range, stores without the agent tables), of the Cassandra store's
statements (a fake session: no Cassandra runs here) and of the trends
endpoint; then the page in headless Chromium: the staffing line on each
tile, a row written to the store on the page within 10 s, the highlight
coming and going, the staffing panel, the occupancy and AHT charts, the
drill-down's agents per channel, hostile reasons shown as text, and a
store without the agent tables."""

import http.client
import json
import threading
import time
from typing import Any, Dict, List

import pytest
from selenium.webdriver.common.by import By

from pipelines.wallboard import queries as queries_module
from pipelines.wallboard.queries import (
  MAX_REASONS_JSON,
  MAX_REASONS_KEPT,
  MAX_TEXT,
  Thresholds,
  WallboardQueries,
  agent_window,
  parse_reasons,
)
from pipelines.wallboard.server import Filter, SnapshotFeed, _delta, make_server
from pipelines.wallboard.stores import AGENT_TABLES, LIVE_TABLES, SqliteStore
from tests.support.wallboard_helpers import (
  LIVE_UPDATE_TIMEOUT_S,
  WINDOW_MS,
  agent_metrics_row,
  agent_status_row,
  assert_no_console_errors,
  assert_nothing_executed,
  chromium,
  current_window_start,
  no_agent_queues,
  queue_status_row,
  screenshot,
  staffing_lines,
  tile,
  tiles,
  wait_for,
  wallboard,
  window_row,
)
from tests.test_wallboard_live import cassandra_store
from transforms.schema import (
  ABANDON_METRICS,
  AGENT_METRICS,
  AGENT_STATUS,
  QUEUE_STATUS,
  TABLES,
)
from transforms.sqlite_sink import SqliteSink, SqliteWriter

THRESHOLDS = Thresholds(0.05, 0.10, 0.80, 60.0, 120.0)
NOW_MS = 1_800_000_000_000
START = current_window_start(NOW_MS / 1000)
HOSTILE_REASON = '<img src=x onerror="window.__xss=6">'


def new_store(path: str, agents: bool = True) -> SqliteWriter:
  """A fresh SQLite store (without the agent tables, as an earlier release
  or a job given no agent events left it, when not `agents`) and an open
  writer."""
  tables = [t for t in TABLES.values() if agents or t.name not in AGENT_TABLES]
  SqliteSink(path).prepare(tables)
  writer = SqliteWriter(path)
  writer.open()
  return writer


def queries_on(path: str, now_ms: int = NOW_MS) -> WallboardQueries:
  return WallboardQueries(SqliteStore(path), THRESHOLDS, 10_000, clock=lambda: now_ms / 1000)


def by_queue(view: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
  return {t['queue_id']: t for t in view['queues']['tiles']}


@pytest.fixture
def agents_db(tmp_path) -> str:
  """Q-1: windows, contacts waiting, agents on voice and chat; Q-2: nobody
  waiting, no agent available; Q-3: contacts waiting, no agent available
  (highlighted); Q-4: contacts waiting, no agent row at all (highlighted);
  Q-STAFF: agents only (no window, no live row), named."""
  path = str(tmp_path / 'agents.db')
  writer = new_store(path)
  writer.upsert(
    ABANDON_METRICS,
    [window_row(q, START, 10, 0, 10, 10.0) for q in ('Q-1', 'Q-2', 'Q-3', 'Q-4')],
  )
  writer.upsert(
    QUEUE_STATUS,
    [
      queue_status_row('Q-1', 2, NOW_MS - 5_000, NOW_MS, NOW_MS),
      queue_status_row('Q-2', 0, None, NOW_MS, NOW_MS),
      queue_status_row('Q-3', 1, NOW_MS - 5_000, NOW_MS, NOW_MS),
      queue_status_row('Q-4', 1, NOW_MS - 5_000, NOW_MS, NOW_MS),
    ],
  )
  writer.upsert(
    AGENT_STATUS,
    [
      agent_status_row('Q-1', 2, 3, 1, {'Break': 1, HOSTILE_REASON: 2}, NOW_MS, NOW_MS),
      agent_status_row('Q-1', 1, 1, 0, {}, NOW_MS, NOW_MS, 'chat'),
      agent_status_row('Q-2', 0, 2, 0, {'Lunch': 1}, NOW_MS, NOW_MS),
      agent_status_row('Q-3', 0, 1, 1, {'Training': 2}, NOW_MS, NOW_MS),
      agent_status_row('Q-STAFF', 4, 0, 0, {}, NOW_MS, NOW_MS, name='Staffed'),
    ],
  )
  writer.upsert(
    AGENT_METRICS,
    [
      agent_metrics_row('Q-1', START - WINDOW_MS, 4, 400.0, 40.0, 80.0, 480.0),
      agent_metrics_row('Q-1', START, 5, 500.0, 0.0, 100.0, 400.0),
      agent_metrics_row('Q-1', START, 1, 100.0, 0.0, 0.0, 900.0, channel='chat'),
      agent_metrics_row('Q-2', START, 0, 0.0, 0.0, 0.0, 0.0, not_ready=300.0),
    ],
  )
  writer.close()
  return path


# --- the query layer --------------------------------------------------------


def test_tiles_carry_their_agents_by_state_summed_over_channels(agents_db):
  view = queries_on(agents_db).snapshot()
  assert view['queues']['agents'] == {'available': True, 'complete': True}
  tiles_ = by_queue(view)
  assert tiles_['Q-1']['agents'] == {
    'logged_in': 11,
    'available': 3,
    'on_contact': 4,
    'after_contact_work': 1,
    'not_ready': 3,
    'channels': ['chat', 'voice'],
  }
  assert tiles_['Q-4']['agents'] is None
  # A queue with agents only has a tile too, named by its agent row.
  staffed = tiles_['Q-STAFF']
  assert (staffed['window_start'], staffed['live'], staffed['queue_name']) == (
    None,
    None,
    'Staffed',
  )
  assert staffed['agents']['available'] == 4


def test_a_queue_with_contacts_waiting_and_no_agent_available_is_highlighted(agents_db):
  queries = queries_on(agents_db)
  board = queries.read()
  view = queries.view(board, None, 60)
  highlighted = sorted(q for q, t in by_queue(view).items() if t['no_agent'])
  # no agent available but nobody waits; Q-4: nobody logged in.
  assert highlighted == ['Q-3', 'Q-4']
  # They go first when the tiles are the worst N: nobody will answer them.
  worst = queries.view(board, None, 2)
  assert sorted(t['queue_id'] for t in worst['queues']['tiles']) == ['Q-3', 'Q-4']
  assert worst['queues']['rest']['no_agent'] == 0
  one = queries.view(board, None, 1)
  assert one['queues']['rest']['no_agent'] == 1


def test_an_unknown_count_or_a_partial_read_highlights_nothing(tmp_path, monkeypatch):
  path = str(tmp_path / 'unknown.db')
  writer = new_store(path)
  writer.upsert(
    QUEUE_STATUS,
    [
      queue_status_row('Q-1', 1, NOW_MS - 5_000, NOW_MS, NOW_MS),
      queue_status_row('Q-2', 1, NOW_MS - 5_000, NOW_MS, NOW_MS),
    ],
  )
  writer.upsert(
    AGENT_STATUS,
    [agent_status_row('Q-1', 0, 1, 0, {}, NOW_MS, NOW_MS)._replace(available=-1)],
  )
  writer.close()
  queries = queries_on(path)
  tiles_ = by_queue(queries.snapshot())
  assert tiles_['Q-1']['agents']['available'] is None
  assert not tiles_['Q-1']['no_agent']
  assert tiles_['Q-2']['no_agent']  # no agent row, every row read
  # Beyond the rows a read holds, a queue without a row read may have
  # agents available: no highlight, and the panel says it is partial.
  monkeypatch.setattr(queries_module, 'MAX_AGENT_ROWS', 1)
  view = queries.snapshot()
  assert view['queues']['agents'] == {'available': True, 'complete': False}
  assert not by_queue(view)['Q-2']['no_agent']
  assert view['staffing']['complete'] is False


def test_the_staffing_panel_totals_the_views_queues(agents_db):
  queries = queries_on(agents_db)
  staffing = queries.snapshot()['staffing']
  assert staffing['available'] and staffing['complete']
  assert (staffing['queues'], staffing['no_agent_queues']) == (4, 2)
  assert staffing['totals'] == {
    'logged_in': 22,
    'available': 7,
    'on_contact': 7,
    'after_contact_work': 2,
    'not_ready': 6,
  }
  assert staffing['reasons'] == [
    {'reason': HOSTILE_REASON, 'agents': 2},
    {'reason': 'Training', 'agents': 2},
    {'reason': 'Break', 'agents': 1},
    {'reason': 'Lunch', 'agents': 1},
  ]
  assert (staffing['more_reasons'], staffing['more_agents'], staffing['unknown']) == (0, 0, 0)
  # A filter's panel: its queues only.
  chosen = queries.view(queries.read(), ('Q-2', 'Q-3'), 60)['staffing']
  assert (chosen['queues'], chosen['no_agent_queues'], chosen['totals']['logged_in']) == (2, 1, 7)
  assert [r['reason'] for r in chosen['reasons']] == ['Training', 'Lunch']


def test_the_panel_lists_the_reasons_with_most_agents_and_sums_the_rest(tmp_path):
  path = str(tmp_path / 'reasons.db')
  writer = new_store(path)
  reasons = {f'reason-{i:02}': i + 1 for i in range(30)}
  writer.upsert(AGENT_STATUS, [agent_status_row('Q-1', 1, 0, 0, reasons, NOW_MS, NOW_MS)])
  writer.close()
  staffing = queries_on(path).snapshot()['staffing']
  assert [r['reason'] for r in staffing['reasons']] == [f'reason-{i}' for i in range(29, 21, -1)]
  assert staffing['more_reasons'] == 30 - 8
  assert staffing['more_agents'] == sum(range(1, 23))
  assert staffing['totals']['not_ready'] == sum(range(1, 31))


def test_the_drill_down_lists_agents_and_reasons_per_channel(agents_db):
  queries = queries_on(agents_db)
  agents = queries.queue_detail('Q-1', 4)['agents']
  assert agents['available'] and agents['complete']
  channels = [
    (c['channel'], c['logged_in'], c['available'], c['not_ready']) for c in agents['channels']
  ]
  assert channels == [('chat', 2, 1, 0), ('voice', 9, 2, 3)]
  assert agents['channels'][1]['reasons'] == [
    {'reason': HOSTILE_REASON, 'agents': 2},
    {'reason': 'Break', 'agents': 1},
  ]
  # A queue with agents only has a drill-down.
  assert queries.queue_exists('Q-STAFF') and not queries.queue_exists('Q-NONE')


def test_occupancy_and_aht_are_recomputed_from_the_channels_summed_seconds(agents_db):
  queries = queries_on(agents_db)
  board = queries.read()
  trends = queries.agent_trends(4, ['Q-1', 'Q-2'], board.newest_window_end)
  assert trends['available'] and trends['x'] == [START - WINDOW_MS, START]
  series = {s['key']: s for s in trends['series']}
  # Q-1 before: 520 s busy of 1,000, 4 contacts; then voice and chat:
  # 700 s busy of 2,000, 6 contacts.
  assert series['Q-1']['occupancy'] == [pytest.approx(0.52), pytest.approx(0.35)]
  assert series['Q-1']['aht_seconds'] == [pytest.approx(130.0), pytest.approx(700 / 6)]
  # Q-2 handled nothing and was never available: no figure, not 0.
  assert (series['Q-2']['occupancy'], series['Q-2']['aht_seconds']) == ([None, None], [None, None])
  # A store with agents but no call windows: the agents' newest window end.
  alone = queries.agent_trends(1, ['Q-1'], None)
  assert (alone['until_ms'], alone['x']) == (START + WINDOW_MS, [START - WINDOW_MS, START])


def test_agent_seconds_out_of_range_read_as_unknown():
  row = agent_metrics_row('Q-1', START, 2, 100.0, 0.0, 20.0, 80.0)._asdict()
  assert agent_window([row]) == {
    'window_start': START,
    'occupancy': pytest.approx(0.6),
    'aht_seconds': pytest.approx(60.0),
  }
  for column, value in (
    ('talk_seconds', float('nan')),
    ('hold_seconds', -1.0),
    ('available_seconds', float('inf')),
    ('after_contact_work_seconds', True),
  ):
    assert agent_window([{**row, column: value}])['occupancy'] is None, column
  assert agent_window([{**row, 'handled_contacts': 2.5}])['aht_seconds'] is None
  assert agent_window([{**row, 'handled_contacts': 0}])['aht_seconds'] is None


def test_reasons_json_is_parsed_within_bounds():
  parsed = parse_reasons(json.dumps({'Break': 2, 'x' * 1000: 1, 'bad': -1, 'half': 0.5, '': 3}))
  assert parsed.kept == (('Break', 2), ('x' * (MAX_TEXT - 1) + '…', 1))
  assert (parsed.other_agents, parsed.other_reasons, parsed.unreadable) == (0, 0, 3)
  many = parse_reasons(json.dumps({f'r{i:03}': 1 for i in range(100)}))
  assert len(many.kept) == MAX_REASONS_KEPT
  assert (many.other_agents, many.other_reasons) == (100 - MAX_REASONS_KEPT,) * 2
  assert parse_reasons('') == ((), 0, 0, 0)
  assert parse_reasons('{}') == ((), 0, 0, 0)
  assert parse_reasons('[' * 100_000) is None  # deeper than the parser goes
  assert parse_reasons(' ' * (MAX_REASONS_JSON + 1) + '{}') is None
  assert parse_reasons('["Break"]') is None
  assert parse_reasons('not json') is None
  assert parse_reasons(None) is None


def test_producer_counts_out_of_range_read_as_unknown(tmp_path):
  path = str(tmp_path / 'garbage.db')
  writer = new_store(path)
  writer.upsert(
    AGENT_STATUS,
    [
      agent_status_row('Q-1', 1, 0, 0, {}, NOW_MS, NOW_MS)._replace(on_contact=2**60),
      agent_status_row('Q-1', 1, 0, 0, {}, NOW_MS, NOW_MS, 'chat')._replace(
        not_ready_reasons='{"broken'
      ),
    ],
  )
  writer.close()
  queries = queries_on(path)
  [tile_] = queries.snapshot()['queues']['tiles']
  assert (tile_['agents']['available'], tile_['agents']['on_contact']) == (2, None)
  staffing = queries.snapshot()['staffing']
  # The unknown count is left out of the totals and said.
  assert (staffing['totals']['on_contact'], staffing['unknown'], staffing['unreadable']) == (
    0,
    1,
    1,
  )
  channels = queries.queue_agents('Q-1')['channels']
  assert [c['unreadable'] for c in channels] == [1, 0]


def test_a_changed_agent_row_changes_the_data_version_and_is_in_the_next_delta(agents_db):
  feed = SnapshotFeed(queries_on(agents_db), refresh_seconds=3600)
  feed.refresh()
  page = Filter(None, 60)
  before = feed.view(feed.current(), page)
  writer = SqliteWriter(agents_db)
  writer.open()
  writer.upsert(AGENT_STATUS, [agent_status_row('Q-3', 1, 1, 1, {}, NOW_MS, NOW_MS + 1)])
  writer.close()
  feed.refresh()
  after = feed.view(feed.current(), page)
  assert after['data_version'] != before['data_version']
  delta = _delta(before, after)
  assert [t['queue_id'] for t in delta['queues']['changed']] == ['Q-3']
  changed = delta['queues']['changed'][0]
  assert (changed['agents']['available'], changed['no_agent']) == (1, False)
  assert delta['staffing']['no_agent_queues'] == 1


def test_a_store_without_the_agent_tables_shows_no_staffing(tmp_path):
  path = str(tmp_path / 'older.db')
  writer = new_store(path, agents=False)
  writer.upsert(ABANDON_METRICS, [window_row('Q-1', START, 10, 1, 9, 10.0)])
  writer.upsert(QUEUE_STATUS, [queue_status_row('Q-1', 2, NOW_MS - 5_000, NOW_MS, NOW_MS)])
  writer.close()
  queries = queries_on(path)
  view = queries.snapshot()
  assert view['queues']['agents'] == {'available': False, 'complete': True}
  assert view['staffing']['available'] is False
  [tile_] = view['queues']['tiles']
  assert (tile_['agents'], tile_['no_agent'], tile_['live']['waiting']) == (None, False, 2)
  assert queries.queue_detail('Q-1', 4)['agents'] == {
    'available': False,
    'channels': [],
    'complete': True,
  }
  assert queries.agent_trends(4, ['Q-1'], view['queues']['newest_window_end'])['available'] is False


def test_empty_agent_tables_show_no_staffing(tmp_path):
  # A job whose input has no agent events yet: no dashes, no highlight.
  path = str(tmp_path / 'empty.db')
  writer = new_store(path)
  writer.upsert(QUEUE_STATUS, [queue_status_row('Q-1', 2, NOW_MS - 5_000, NOW_MS, NOW_MS)])
  writer.close()
  view = queries_on(path).snapshot()
  assert view['staffing']['available'] is False
  assert by_queue(view)['Q-1']['no_agent'] is False


def test_the_trends_endpoint_draws_occupancy_and_aht_of_the_same_queues(agents_db):
  queries = queries_on(agents_db)
  feed = SnapshotFeed(queries, refresh_seconds=3600)
  server = make_server('127.0.0.1', 0, queries, feed)
  feed.start()
  thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05})
  thread.start()
  try:

    def get(path: str):
      conn = http.client.HTTPConnection('127.0.0.1', server.server_address[1], timeout=30)
      conn.request('GET', path)
      response = conn.getresponse()
      body = json.loads(response.read())
      conn.close()
      return response.status, body

    status, trends = get('/api/trends?hours=1')
    assert status == 200
    assert [s['key'] for s in trends['series']] == ['Q-1', 'Q-2', 'Q-3', 'Q-4']
    # The worst queues with agents: Q-4 has none, Q-STAFF no window.
    assert [s['key'] for s in trends['agents']['series']] == ['Q-1', 'Q-2', 'Q-3', 'Q-STAFF']
    assert trends['agents']['available'] is True
    status, detail = get('/api/queue?id=Q-STAFF')
    assert status == 200 and detail['agents']['channels'][0]['available'] == 4
  finally:
    server.shutdown()
    server.server_close()
    feed.stop()
    thread.join()


# --- the Cassandra store: its statements, against a fake session ------------


def test_cassandra_reads_agent_status_whole_and_a_queues_partition(monkeypatch):
  status = agent_status_row('Q-1', 0, 2, 0, {'Break': 1}, NOW_MS, NOW_MS)._asdict()
  waiting = queue_status_row('Q-1', 1, NOW_MS - 1_000, NOW_MS, NOW_MS)._asdict()
  store, session = cassandra_store(
    monkeypatch,
    list(TABLES.values()),
    {'agent_status': [status], 'queue_status': [waiting]},
  )
  queries = WallboardQueries(store, THRESHOLDS, 10_000, clock=lambda: NOW_MS / 1000)
  [tile_] = queries.snapshot()['queues']['tiles']
  assert (tile_['agents']['on_contact'], tile_['no_agent']) == (2, True)
  reads = [(cql, p) for cql, p in session.run if 'cc.agent_status' in cql]
  # One read of the whole table (a row per queue and channel), no filter.
  assert reads == [
    (
      'SELECT queue_id, channel, logged_in, available, on_contact, after_contact_work, '
      'not_ready, not_ready_reasons, as_of, updated_at, queue_name FROM cc.agent_status',
      [],
    )
  ]
  session.run.clear()
  assert queries.queue_agents('Q-1')['channels'][0]['reasons'] == [{'reason': 'Break', 'agents': 1}]
  # The queue's partition only.
  assert session.run == [
    (
      'SELECT queue_id, channel, logged_in, available, on_contact, after_contact_work, '
      'not_ready, not_ready_reasons, as_of, updated_at FROM cc.agent_status '
      'WHERE queue_id = ? ALLOW FILTERING',
      ['Q-1'],
    )
  ]


def test_a_keyspace_without_the_agent_tables_opens_and_shows_no_staffing(monkeypatch):
  older = [t for t in TABLES.values() if t.name not in AGENT_TABLES | LIVE_TABLES]
  store, session = cassandra_store(monkeypatch, older, {})
  queries = WallboardQueries(store, THRESHOLDS, 10_000, clock=lambda: NOW_MS / 1000)
  assert queries.snapshot()['staffing']['available'] is False
  assert queries.queue_agents('Q-1')['available'] is False
  assert queries.agent_trends(4, ['Q-1'], NOW_MS)['available'] is False
  assert not [cql for cql, _ in session.run if 'agent_' in cql]


# --- the page in headless Chromium -----------------------------------------


def staffing_totals(driver) -> Dict[str, str]:
  """State -> the staffing panel's figure."""
  selector = '#staffing-totals .staffing-{} .staffing-figure'
  return {
    key: driver.find_element(By.CSS_SELECTOR, selector.format(key)).text
    for key in ('logged_in', 'available', 'on_contact', 'after_contact_work', 'not_ready')
  }


def reason_rows(driver, selector: str) -> List[List[str]]:
  return [
    [td.text for td in tr.find_elements(By.TAG_NAME, 'td')]
    for tr in driver.find_elements(By.CSS_SELECTOR, f'{selector} tbody tr')
  ]


def test_tiles_show_agents_the_highlight_the_panel_and_the_trends_live(tmp_path):
  db = str(tmp_path / 'page.db')
  writer = new_store(db)
  try:
    now = int(time.time() * 1000)
    start = current_window_start(now / 1000)
    writer.upsert(
      ABANDON_METRICS, [window_row(q, start, 10, 0, 10, 10.0) for q in ('Q-1', 'Q-2', 'Q-3')]
    )
    writer.upsert(
      QUEUE_STATUS,
      [
        queue_status_row('Q-1', 2, now - 5_000, now, now),
        queue_status_row('Q-2', 0, None, now, now),
        queue_status_row('Q-3', 1, now - 5_000, now, now),
      ],
    )
    writer.upsert(
      AGENT_STATUS,
      [
        agent_status_row('Q-1', 2, 3, 1, {'Break': 1, HOSTILE_REASON: 2}, now, now),
        agent_status_row('Q-1', 1, 1, 0, {}, now, now, 'chat'),
        agent_status_row('Q-2', 0, 2, 0, {'Lunch': 1}, now, now),
        agent_status_row('Q-3', 0, 1, 1, {'Training': 2}, now, now),
      ],
    )
    writer.upsert(
      AGENT_METRICS,
      [
        agent_metrics_row('Q-1', start - WINDOW_MS, 4, 400.0, 40.0, 80.0, 480.0),
        agent_metrics_row('Q-1', start, 5, 500.0, 0.0, 100.0, 400.0),
        agent_metrics_row('Q-2', start, 2, 200.0, 0.0, 40.0, 60.0),
      ],
    )
    with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.5']) as url, chromium() as driver:
      driver.get(url)
      expected = {
        'Q-1': ('3', '4', '1', '3'),
        'Q-2': ('0', '2', '0', '1'),
        'Q-3': ('0', '1', '1', '2'),
      }
      wait_for(driver, lambda d: staffing_lines(d) == expected, 30, 'no staffing lines')
      # After the live figures, before the window's.
      line = tile(driver, 'Q-1').find_element(By.CLASS_NAME, 'tile-agents')
      captions = [c.text for c in line.find_elements(By.CLASS_NAME, 'tile-caption')]
      assert captions == ['available', 'on contact', 'ACW', 'not ready']
      order = driver.execute_script(
        'const t = arguments[0]; return [".tile-live", ".tile-agents", ".tile-rate"].map('
        's => [...t.children].indexOf(t.querySelector(s)))',
        tile(driver, 'Q-1'),
      )
      assert order == sorted(order) and -1 not in order, order
      assert no_agent_queues(driver) == ['Q-3']
      marker = tile(driver, 'Q-3').find_element(By.CLASS_NAME, 'tile-no-agent')
      assert marker.is_displayed() and 'no agent available' in marker.text
      assert staffing_totals(driver) == {
        'logged_in': '18',
        'available': '3',
        'on_contact': '7',
        'after_contact_work': '2',
        'not_ready': '6',
      }
      assert reason_rows(driver, '#reasons') == [
        [HOSTILE_REASON, '2'],
        ['Training', '2'],
        ['Break', '1'],
        ['Lunch', '1'],
      ]
      assert 'queue has contacts waiting' in driver.find_element(By.ID, 'staffing-no-agent').text
      # Occupancy and AHT of the trend queues.
      wait_for(
        driver,
        lambda d: (
          d.find_elements(By.CSS_SELECTOR, '#chart-occupancy canvas')
          and d.find_elements(By.CSS_SELECTOR, '#chart-aht canvas')
        ),
        10,
        'the occupancy and AHT charts did not show',
      )
      labels = [
        n.text for n in driver.find_elements(By.CSS_SELECTOR, '#chart-occupancy .u-legend .u-label')
      ]
      assert {'Q-1', 'Q-2'} <= set(labels), labels
      assert_nothing_executed(driver)
      screenshot(driver, 'wallboard-agents.png')

      # A new row (Q-2's chat agents): on the page without a reload.
      driver.execute_script('window.__sameDocument = true')
      later = int(time.time() * 1000)
      writer.upsert(AGENT_STATUS, [agent_status_row('Q-2', 0, 1, 0, {}, later, later, 'chat')])
      wait_for(
        driver,
        lambda d: (
          staffing_lines(d)['Q-2'] == ('0', '3', '0', '1')
          and staffing_totals(d)['logged_in'] == '19'
        ),
        LIVE_UPDATE_TIMEOUT_S,
        f'the new agent_status row did not show within {LIVE_UPDATE_TIMEOUT_S} s',
      )
      # Contacts start waiting in Q-2, none of its agents available.
      later = int(time.time() * 1000)
      writer.upsert(QUEUE_STATUS, [queue_status_row('Q-2', 2, later - 1_000, later, later)])
      wait_for(
        driver,
        lambda d: no_agent_queues(d) == ['Q-2', 'Q-3'],
        LIVE_UPDATE_TIMEOUT_S,
        'the highlight did not appear',
      )
      # An agent of Q-3 becomes available.
      later = int(time.time() * 1000)
      writer.upsert(AGENT_STATUS, [agent_status_row('Q-3', 1, 1, 0, {'Training': 2}, later, later)])
      wait_for(
        driver,
        lambda d: no_agent_queues(d) == ['Q-2'] and staffing_lines(d)['Q-3'][0] == '1',
        LIVE_UPDATE_TIMEOUT_S,
        'the highlight did not disappear',
      )
      assert not tile(driver, 'Q-3').find_elements(By.CLASS_NAME, 'tile-no-agent')
      assert driver.execute_script('return window.__sameDocument') is True

      # The drill-down: the queue's agents per channel, reasons as text.
      tile(driver, 'Q-1').click()
      wait_for(
        driver,
        lambda d: len(reason_rows(d, '#detail-agents-table')) == 2,
        10,
        'the drill-down did not list the agents',
      )
      rows = reason_rows(driver, '#detail-agents-table')
      assert rows[0] == ['chat', '2', '1', '1', '0', '0', '–']
      assert rows[1][:6] == ['voice', '9', '2', '3', '1', '3']
      assert rows[1][6] == f'{HOSTILE_REASON} 2 · Break 1'
      assert_nothing_executed(driver)
      assert_no_console_errors(driver)
      screenshot(driver, 'wallboard-agents-detail.png')
  finally:
    writer.close()


def test_a_page_on_a_store_without_the_agent_tables_shows_no_staffing(tmp_path):
  db = str(tmp_path / 'older.db')
  writer = new_store(db, agents=False)
  try:
    now = int(time.time() * 1000)
    start = current_window_start(now / 1000)
    writer.upsert(ABANDON_METRICS, [window_row('Q-1', start, 16, 1, 13, 160.0)])
    writer.upsert(QUEUE_STATUS, [queue_status_row('Q-1', 2, now - 5_000, now, now)])
    with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.5']) as url, chromium() as driver:
      driver.get(url)
      wait_for(driver, lambda d: tiles(d) == {'Q-1': '6.3 %'}, 30, 'the tile did not show')
      assert driver.find_elements(By.CSS_SELECTOR, '.tile-live')
      assert staffing_lines(driver) == {} and no_agent_queues(driver) == []
      assert not driver.find_element(By.ID, 'staffing').is_displayed()
      tile(driver, 'Q-1').click()
      wait_for(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, '#detail-windows tbody tr')) == 1,
        10,
        'the drill-down did not show',
      )
      assert not driver.find_element(By.ID, 'detail-agents').is_displayed()
      driver.find_element(By.ID, 'detail-close').click()

      # A job with agent events creates the tables while the page is open.
      SqliteSink(db).prepare(TABLES.values())
      later = int(time.time() * 1000)
      writer.upsert(AGENT_STATUS, [agent_status_row('Q-1', 0, 2, 0, {}, later, later)])
      wait_for(
        driver,
        lambda d: (
          staffing_lines(d) == {'Q-1': ('0', '2', '0', '0')} and no_agent_queues(d) == ['Q-1']
        ),
        LIVE_UPDATE_TIMEOUT_S,
        'the staffing did not show once the tables came',
      )
      assert driver.find_element(By.ID, 'staffing').is_displayed()
      assert_no_console_errors(driver)
  finally:
    writer.close()
