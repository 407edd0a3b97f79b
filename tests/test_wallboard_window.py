"""The wallboard's drill-down of one window: its contacts (table
`window_contacts`) and its revisions (table `metric_revisions`), and the
windows of a queue marked "restated".

Fast tests of the query layer over SQLite stores the project's sink
writes, of the Cassandra store's statements (a fake session: no Cassandra
runs here), of the API and its bad requests; then the page in headless
Chromium: a click on a window lists its abandoned contacts with their
waits, all its contacts on demand and its revision history, a contact id
of HTML as text."""

import http.client
import json
import threading
import time
import urllib.parse

import pytest

from pipelines.wallboard import queries as queries_module
from pipelines.wallboard.queries import (
  MAX_REVISION_CONTACTS,
  Thresholds,
  WallboardQueries,
  parse_contact_ids,
)
from pipelines.wallboard.server import ROUTES, SnapshotFeed, make_server
from pipelines.wallboard.stores import AUDIT_TABLES, SqliteStore
from tests.support.wallboard_helpers import (
  DRILL_QUEUE,
  HTML_CONTACT,
  WINDOW_MS,
  check_window_drill_down,
  chromium,
  current_window_start,
  revision_row,
  wallboard,
  window_contact_row,
  window_row,
  write_window_rows,
)
from tests.test_wallboard_alerts import cassandra_store
from transforms.schema import ABANDON_METRICS, METRIC_REVISIONS, TABLES, WINDOW_CONTACTS
from transforms.sqlite_sink import SqliteSink, SqliteWriter

THRESHOLDS = Thresholds(0.05, 0.10, 0.80)
START_MS = current_window_start(1_800_000_000)
RESTATED_MS = START_MS - WINDOW_MS


def new_store(path: str, audit: bool = True) -> SqliteWriter:
  """A fresh SQLite store (without the audit tables, as a release before
  them left it, when not `audit`)."""
  tables = [t for t in TABLES.values() if audit or t.name not in AUDIT_TABLES]
  SqliteSink(path).prepare(tables)
  writer = SqliteWriter(path)
  writer.open()
  return writer


def queries_on(path: str) -> WallboardQueries:
  return WallboardQueries(SqliteStore(path), THRESHOLDS, 10_000)


@pytest.fixture
def window_db(tmp_path) -> str:
  path = str(tmp_path / 'window.db')
  writer = new_store(path)
  write_window_rows(writer, START_MS)
  writer.close()
  return path


def ids(listed: dict) -> list:
  return [c['contact_id'] for c in listed['contacts']]


def test_a_window_lists_its_abandoned_contacts_by_event_time_with_their_wait(window_db):
  detail = queries_on(window_db).window_detail(DRILL_QUEUE, 'voice', RESTATED_MS)
  assert detail['window']['offered'] == 10
  assert detail['window']['abandoned'] == 3
  assert detail['window']['abandon_rate'] == 0.3
  assert detail['window']['pane_timing'] == 'RESTATED'
  assert detail['window']['revised'] is True
  listed = detail['contacts']
  assert listed['available'] and listed['complete'] and listed['which'] == 'abandoned'
  assert listed['contacts'] == [
    {
      'contact_id': 'c-a1',
      'outcome': 'ABANDONED',
      'wait_seconds': 12.0,
      'event_timestamp': RESTATED_MS + 10_000,
      'pane_index': 0,
      'pane_timing': 'ON_TIME',
    },
    {
      'contact_id': 'c-a3',
      'outcome': 'ABANDONED',
      'wait_seconds': None,  # the source did not tell it
      'event_timestamp': RESTATED_MS + 20_000,
      'pane_index': 1,
      'pane_timing': 'LATE',
    },
    {
      'contact_id': HTML_CONTACT,
      'outcome': 'ABANDONED',
      'wait_seconds': 45.5,
      'event_timestamp': RESTATED_MS + 30_000,
      'pane_index': 2,
      'pane_timing': 'RESTATED',
    },
  ]


def test_all_contacts_on_demand_and_bounded(window_db, monkeypatch):
  queries = queries_on(window_db)
  listed = queries.window_detail(DRILL_QUEUE, 'voice', RESTATED_MS, 'all')['contacts']
  assert listed['which'] == 'all' and listed['complete']
  assert ids(listed) == ['c-a1', 'c-a3', HTML_CONTACT, *(f'c-n{i}' for i in range(1, 8))]
  # The other window's contacts are not this one's.
  other = queries.window_detail(DRILL_QUEUE, 'voice', START_MS, 'all')['contacts']
  assert ids(other) == ['c-b1', 'c-m1', 'c-m2', 'c-m3', 'c-m4']
  monkeypatch.setattr(queries_module, 'MAX_WINDOW_CONTACTS', 4)
  listed = queries.window_detail(DRILL_QUEUE, 'voice', RESTATED_MS, 'all')['contacts']
  assert ids(listed) == ['c-a1', 'c-a3', HTML_CONTACT, 'c-n1']  # the first by event time
  assert listed['complete'] is False
  with pytest.raises(ValueError, match='contacts must be one of abandoned, all'):
    queries.window_detail(DRILL_QUEUE, 'voice', RESTATED_MS, 'some')


def test_a_windows_revisions_old_and_new_by_pane(window_db):
  revisions = queries_on(window_db).window_detail(DRILL_QUEUE, 'voice', RESTATED_MS)['revisions']
  assert revisions['available'] and revisions['complete']
  late, restated = revisions['revisions']
  assert late == {
    'pane_index': 1,
    'pane_timing': 'LATE',
    'previous_pane_index': 0,
    'revised_at': START_MS + 60_000,
    'offered': {'old': 8, 'new': 9},
    'abandoned': {'old': 1, 'new': 2},
    'answered': {'old': 7, 'new': 7},
    'abandon_rate': {'old': 0.125, 'new': 0.2222},
    'service_level': {'old': 0.75, 'new': 0.6667},
    'contact_ids': ['c-a3'],
    'more_contacts': 0,
    'contacts_unreadable': False,
  }
  assert restated['pane_timing'] == 'RESTATED'
  assert restated['abandon_rate'] == {'old': 0.2222, 'new': 0.3}
  assert restated['contact_ids'] == [HTML_CONTACT]
  # The window on time has none and is not marked.
  current = queries_on(window_db).window_detail(DRILL_QUEUE, 'voice', START_MS)
  assert current['revisions']['revisions'] == []
  assert current['window']['revised'] is False


def test_the_queues_windows_are_marked_when_revised(tmp_path):
  path = str(tmp_path / 'marks.db')
  writer = new_store(path)
  write_window_rows(writer, START_MS)
  older = RESTATED_MS - WINDOW_MS
  writer.upsert(
    ABANDON_METRICS,
    [
      # Revised (a revision row) but its pane is on time: a revision that
      # came with no late pane of this channel (e.g. a row of chat only).
      window_row(DRILL_QUEUE, older, 4, 0, 4, 10.0),
      window_row(DRILL_QUEUE, older, 2, 1, 1, 10.0)._replace(channel='chat'),
    ],
  )
  writer.upsert(
    METRIC_REVISIONS,
    [revision_row(DRILL_QUEUE, older, 1, 'LATE', 0, (1, 0, 1), (2, 1, 1), ['x'], START_MS, 'chat')],
  )
  writer.close()
  windows = queries_on(path).queue_detail(DRILL_QUEUE, 4)['windows']
  assert [(w['window_start'], w['revised']) for w in windows] == [
    (START_MS, False),
    (RESTATED_MS, True),  # its pane is RESTATED
    (older, True),
  ]
  assert {c['channel']: c['revised'] for c in windows[2]['channels']} == {
    'chat': True,
    'voice': False,
  }


def test_a_store_without_the_audit_tables_lists_nothing(tmp_path):
  path = str(tmp_path / 'old.db')
  writer = new_store(path, audit=False)
  writer.upsert(ABANDON_METRICS, [window_row(DRILL_QUEUE, START_MS, 5, 1, 4, 40.0)])
  writer.close()
  queries = queries_on(path)  # the store opens
  detail = queries.window_detail(DRILL_QUEUE, 'voice', START_MS, 'all')
  assert detail['contacts'] == {
    'available': False,
    'which': 'all',
    'contacts': [],
    'complete': True,
  }
  assert detail['revisions'] == {'available': False, 'revisions': [], 'complete': True}
  assert detail['window']['revised'] is False
  assert queries.queue_detail(DRILL_QUEUE, 4)['windows'][0]['revised'] is False
  # No such window (another channel, another start): none.
  assert queries.window_detail(DRILL_QUEUE, 'chat', START_MS) is None
  assert queries.window_detail(DRILL_QUEUE, 'voice', START_MS + WINDOW_MS) is None


def test_producer_values_are_checked(tmp_path):
  path = str(tmp_path / 'odd.db')
  writer = new_store(path)
  writer.upsert(ABANDON_METRICS, [window_row(DRILL_QUEUE, START_MS, 5, 1, 4, 40.0)])
  writer.upsert(
    WINDOW_CONTACTS,
    [
      window_contact_row(DRILL_QUEUE, START_MS, 'x' * 1_000, 'ABANDONED', -3.0, START_MS + 1),
      window_contact_row(DRILL_QUEUE, START_MS, 'nan', 'ABANDONED', float('nan'), START_MS + 2),
    ],
  )
  odd = revision_row(DRILL_QUEUE, START_MS, 1, 'LATE', 0, (4, 0, 4), (5, 1, 4), [], START_MS)
  writer.upsert(
    METRIC_REVISIONS,
    [
      odd._replace(contact_ids='not json'),
      odd._replace(pane_index=2, contact_ids=json.dumps([f'c{i}' for i in range(150)] + [7])),
    ],
  )
  writer.close()
  detail = queries_on(path).window_detail(DRILL_QUEUE, 'voice', START_MS)
  long, nan = detail['contacts']['contacts']
  assert len(long['contact_id']) == 256 and long['contact_id'].endswith('…')
  assert long['wait_seconds'] is None and nan['wait_seconds'] is None
  unreadable, many = detail['revisions']['revisions']
  assert unreadable['contacts_unreadable'] and unreadable['contact_ids'] == []
  assert len(many['contact_ids']) == MAX_REVISION_CONTACTS
  assert many['more_contacts'] == 51  # 50 ids and a number
  assert parse_contact_ids('{"a": 1}') is None
  assert parse_contact_ids('[[[[') is None


def test_cassandra_reads_a_window_from_one_partition_slice(monkeypatch):
  day = time.strftime('%Y-%m-%d', time.gmtime(RESTATED_MS / 1000))
  contacts = [
    {**window_contact_row(DRILL_QUEUE, RESTATED_MS, cid, outcome, 1.0, at)._asdict(), 'day': day}
    for cid, outcome, at in (
      # In id order (the clustering order), not in event time order.
      ('a', 'ANSWERED', RESTATED_MS + 3_000),
      ('b', 'ABANDONED', RESTATED_MS + 2_000),
      ('c', 'ABANDONED', RESTATED_MS + 1_000),
    )
  ]
  revision = revision_row(DRILL_QUEUE, RESTATED_MS, 1, 'LATE', 0, (2, 1, 1), (3, 2, 1), ['b'], 0)
  rows = {
    'abandon_metrics': [window_row(DRILL_QUEUE, RESTATED_MS, 3, 2, 1, 3.0)._asdict()],
    'window_contacts': contacts,
    'metric_revisions': [{**revision._asdict(), 'day': day}],
  }
  store, session = cassandra_store(monkeypatch, rows)
  queries = WallboardQueries(store, THRESHOLDS, 10_000)
  detail = queries.window_detail(DRILL_QUEUE, 'voice', RESTATED_MS)
  assert ids(detail['contacts']) == ['c', 'b']
  assert [r['pane_index'] for r in detail['revisions']['revisions']] == [1]
  reads = [(cql, p) for cql, p in session.run if 'window_contacts' in cql or 'revisions' in cql]
  key = [DRILL_QUEUE, day, 'voice', RESTATED_MS]
  assert reads == [
    (
      'SELECT contact_id, outcome, wait_seconds, event_timestamp, pane_index, pane_timing '
      'FROM cc.window_contacts WHERE queue_id = ? AND day = ? AND channel = ? AND '
      'window_start = ? AND outcome = ? ALLOW FILTERING',
      [*key, 'ABANDONED'],
    ),
    (
      'SELECT window_end, pane_index, pane_timing, previous_pane_index, old_total_calls, '
      'new_total_calls, old_abandoned_calls, new_abandoned_calls, old_answered_calls, '
      'new_answered_calls, old_abandon_rate, new_abandon_rate, old_service_level, '
      'new_service_level, contact_ids, revised_at FROM cc.metric_revisions WHERE '
      'queue_id = ? AND day = ? AND channel = ? AND window_start = ?',
      key,
    ),
  ]
  session.run.clear()
  assert ids(queries.window_detail(DRILL_QUEUE, 'voice', RESTATED_MS, 'all')['contacts']) == [
    'c',
    'b',
    'a',
  ]
  assert 'ALLOW FILTERING' not in session.run[-2][0]
  with pytest.raises(ValueError, match='give queue_id and channel, window_start'):
    store.in_window(WINDOW_CONTACTS, ('contact_id',), {'queue_id': 'Q'}, ('contact_id',), 5)
  # The queue's windows: revisions read by channel and day, never a scan.
  session.run.clear()
  [window] = queries.queue_detail(DRILL_QUEUE, 4)['windows']
  assert window['revised'] is True
  revision_reads = [cql for cql, _ in session.run if 'metric_revisions' in cql]
  assert revision_reads and not [cql for cql in revision_reads if 'ALLOW FILTERING' in cql]


# --- the API ------------------------------------------------------------------


def get(address: str, path: str):
  conn = http.client.HTTPConnection(address, timeout=30)
  conn.request('GET', path)
  response = conn.getresponse()
  body = json.loads(response.read())
  conn.close()
  return response.status, body


@pytest.fixture
def served(window_db):
  queries = queries_on(window_db)
  feed = SnapshotFeed(queries, refresh_seconds=3600)
  server = make_server('127.0.0.1', 0, queries, feed)
  feed.start()
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield '%s:%d' % server.server_address[:2]
  finally:
    server.shutdown()
    server.server_close()
    thread.join()
    feed.stop()


def window_path(**params) -> str:
  return '/api/window?' + urllib.parse.urlencode(params)


def test_the_window_endpoint(served):
  status, body = get(
    served, window_path(queue_id=DRILL_QUEUE, channel='voice', window_start=RESTATED_MS)
  )
  assert status == 200
  assert [c['contact_id'] for c in body['contacts']['contacts']] == ['c-a1', 'c-a3', HTML_CONTACT]
  assert len(body['revisions']['revisions']) == 2
  status, body = get(
    served,
    window_path(queue_id=DRILL_QUEUE, channel='voice', window_start=RESTATED_MS, contacts='all'),
  )
  assert status == 200 and len(body['contacts']['contacts']) == 10
  assert '/api/window' in ROUTES


@pytest.mark.parametrize(
  'params, status, message',
  [
    ({}, 400, 'give the window: /api/window?queue_id='),
    ({'queue_id': DRILL_QUEUE, 'channel': 'voice'}, 400, 'give the window'),
    ({'queue_id': '', 'channel': 'voice', 'window_start': '0'}, 400, 'give the window'),
    (
      {'queue_id': DRILL_QUEUE, 'channel': 'voice', 'window_start': '-5'},
      400,
      'window_start must be a whole number from 0 to 9007199254740991',
    ),
    (
      {'queue_id': DRILL_QUEUE, 'channel': 'voice', 'window_start': '1e9'},
      400,
      'window_start must be a whole number',
    ),
    (
      {'queue_id': DRILL_QUEUE, 'channel': 'voice', 'window_start': '9' * 40},
      400,
      'window_start must be a whole number',
    ),
    (
      {'queue_id': 'Q' * 257, 'channel': 'voice', 'window_start': '0'},
      400,
      'queue_id and channel are at most 256 characters',
    ),
    (
      {'queue_id': DRILL_QUEUE, 'channel': 'voice', 'window_start': '0', 'contacts': 'some'},
      400,
      "contacts must be abandoned or all, got 'some'",
    ),
    (
      {'queue_id': DRILL_QUEUE, 'channel': 'voice', 'window_start': '0', 'page': '1'},
      400,
      "unknown parameter 'page'",
    ),
    (
      {'queue_id': DRILL_QUEUE, 'channel': 'chat', 'window_start': str(RESTATED_MS)},
      404,
      "no window at %d for queue 'Q-7', channel 'chat'" % RESTATED_MS,
    ),
  ],
)
def test_bad_window_requests_get_a_status_and_a_message(served, params, status, message):
  got, body = get(served, window_path(**params))
  assert got == status
  assert message in body['error']


def test_a_repeated_window_parameter_is_refused(served):
  path = window_path(queue_id=DRILL_QUEUE, channel='voice', window_start=0) + '&channel=chat'
  status, body = get(served, path)
  assert status == 400 and body['error'] == "parameter 'channel' given twice"


# --- the page in headless Chromium -----------------------------------------


def test_a_click_on_a_window_lists_its_contacts_and_revisions(tmp_path):
  db = str(tmp_path / 'page.db')
  writer = new_store(db)
  try:
    write_window_rows(writer, current_window_start(time.time()))
    with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.5']) as url, chromium() as driver:
      check_window_drill_down(driver, url, 'wallboard-window')
  finally:
    writer.close()
