"""The wallboard's alerts and today figures: the active alerts (table
`alerts`) at the top of the page, an alert's history (tables
`alert_notifications` and `alert_deliveries`) on drill-down, and each
tile's figures since local midnight (table `daily_metrics`).

Fast tests of the query layer over SQLite stores the project's sink
writes, of the Cassandra store's statements (a fake session: no Cassandra
runs here), of the API; then the page in headless Chromium: an alert
written while the page is open appears at the top without a reload, its
drill-down lists its history with deliveries, the tiles show today's
figures, and rule and queue names of HTML show as text."""

import collections
import http.client
import json
import operator
import re
import threading
import time
import urllib.parse
from typing import Any, Dict, List, Optional

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from selenium.webdriver.common.by import By

from pipelines.wallboard import stores
from pipelines.wallboard.queries import (
  HISTORY_LIMIT,
  MAX_ACTIVE_SHOWN,
  Thresholds,
  WallboardQueries,
  metric_unit,
)
from pipelines.wallboard.server import Filter, SnapshotFeed, _delta, make_server
from pipelines.wallboard.stores import ALERTING_TABLES, CassandraStore, SqliteStore
from tests.support.wallboard_helpers import (
  LIVE_UPDATE_TIMEOUT_S,
  assert_no_console_errors,
  assert_nothing_executed,
  chromium,
  current_window_start,
  screenshot,
  tile,
  wait_for,
  wallboard,
  window_row,
)
from transforms.abandon_rate import rounded_ratio
from transforms.cassandra import CassandraSettings
from transforms.metric_definitions import DEFAULT_ABANDON_RATE, DEFAULT_SERVICE_LEVEL
from transforms.records import (
  ALERT_FIRING,
  ALERT_PENDING,
  ALERT_RESOLVED,
  NOTIFY_FIRING,
  NOTIFY_REMINDER,
  NOTIFY_RESTATED,
  Alert,
  AlertDelivery,
  AlertNotification,
  DailyMetrics,
)
from transforms.schema import (
  ABANDON_METRICS,
  ALERT_DELIVERIES,
  ALERT_NOTIFICATIONS,
  ALERTS,
  DAILY_METRICS,
  TABLES,
)
from transforms.sqlite_sink import SqliteSink, SqliteWriter

THRESHOLDS = Thresholds(0.05, 0.10, 0.80)
NOW_MS = 1_800_000_000_000
DAY_MS = 86_400_000
HOSTILE_RULE = '<img src=x onerror="window.__xss=6">'
HOSTILE_QUEUE = '"><script>window.__xss=7</script>'
HOSTILE_MESSAGE = '<b>abandon</b> <script>window.__xss=8</script>'


def alert_row(
  rule: str,
  queue_id: str,
  state: str,
  since: int,
  severity: str = 'warning',
  value: float = 0.12,
  threshold: float = 0.10,
  channel: str = 'voice',
  metric: str = 'abandon_rate',
  delivery: str = 'delivered',
  updated_at: Optional[int] = None,
  revision: int = 2,
  name: str = '',
) -> Alert:
  """One alerts row as the job writes it."""
  return Alert(
    rule,
    queue_id,
    channel,
    state,
    severity,
    metric,
    '15m',
    value,
    threshold,
    since,
    None,
    f'n-{rule}-{queue_id}',
    NOTIFY_FIRING,
    delivery,
    since if updated_at is None else updated_at,
    revision,
    name,
  )


def notification_row(
  rule: str,
  queue_id: str,
  kind: str,
  created_at: int,
  value: float,
  previous: Optional[float] = None,
  message: str = '',
  notification_id: Optional[str] = None,
  channel: str = 'voice',
) -> AlertNotification:
  return AlertNotification(
    notification_id or f'{rule}|{queue_id}|{kind}|{created_at}',
    rule,
    queue_id,
    channel,
    kind,
    'warning',
    'abandon_rate',
    '15m',
    value,
    0.10,
    previous,
    created_at,
    message or f'{kind} {value}',
    '["ops"]',
    created_at,
    '',
  )


def delivery_row(notification: AlertNotification, receiver: str, status: str, attempts: int):
  return AlertDelivery(
    notification.notification_id,
    receiver,
    notification.rule,
    notification.queue_id,
    notification.channel,
    notification.kind,
    status,
    attempts,
    '200 ok' if status == 'delivered' else 'HTTP 503: <html>down</html>',
    notification.created_at + 1_000,
  )


def daily_row(
  queue_id: str,
  local_date: str,
  offered: int,
  abandoned: int,
  answered_within_sl: int,
  channel: str = 'voice',
  as_of: int = NOW_MS,
) -> DailyMetrics:
  """One daily_metrics row, rates derived like the job's (default
  definitions)."""
  return DailyMetrics(
    queue_id,
    channel,
    local_date,
    'Europe/Berlin',
    as_of - as_of % DAY_MS,
    as_of - as_of % DAY_MS + DAY_MS,
    as_of,
    offered,
    abandoned,
    0,
    offered - abandoned,
    0,
    answered_within_sl,
    0,
    0,
    0,
    10.0 * offered,
    8.0 * offered,
    rounded_ratio(abandoned, offered),
    rounded_ratio(answered_within_sl, offered),
    8.0,
    DEFAULT_ABANDON_RATE,
    DEFAULT_SERVICE_LEVEL,
    4,
    4,
    '',
  )


def new_store(path: str, alerting: bool = True) -> SqliteWriter:
  """A fresh SQLite store (without the alerting tables, as a release
  before them or a job without rules left it, when not `alerting`)."""
  tables = [t for t in TABLES.values() if alerting or t.name not in ALERTING_TABLES]
  SqliteSink(path).prepare(tables)
  writer = SqliteWriter(path)
  writer.open()
  return writer


def queries_on(path: str) -> WallboardQueries:
  return WallboardQueries(SqliteStore(path), THRESHOLDS, 10_000, clock=lambda: NOW_MS / 1000)


@pytest.fixture
def alert_db(tmp_path) -> str:
  """Alerts of several states and severities; a history of Q-1's
  abandon alert; today's figures of Q-1 (voice and chat) and Q-2, and an
  older day of Q-3."""
  path = str(tmp_path / 'alerts.db')
  writer = new_store(path)
  writer.upsert(
    ALERTS,
    [
      alert_row('abandon', 'Q-1', ALERT_FIRING, NOW_MS - 600_000, name='Sales'),
      alert_row('abandon', 'Q-2', ALERT_FIRING, NOW_MS - 60_000),
      alert_row('wait', 'Q-1', ALERT_FIRING, NOW_MS - 900_000, severity='critical'),
      alert_row('abandon', 'Q-3', ALERT_PENDING, NOW_MS - 30_000, severity='critical'),
      alert_row('old', 'Q-1', ALERT_RESOLVED, NOW_MS - 7_200_000),
      alert_row(
        'dead letters', '*', ALERT_FIRING, NOW_MS - 120_000, channel='*', metric='dead_letters'
      ),
    ],
  )
  fired = notification_row('abandon', 'Q-1', NOTIFY_FIRING, NOW_MS - 600_000, 0.12)
  restated = notification_row('abandon', 'Q-1', NOTIFY_RESTATED, NOW_MS - 300_000, 0.09, 0.12)
  # The day before: Cassandra reads it from another partition.
  reminder = notification_row('abandon', 'Q-1', NOTIFY_REMINDER, NOW_MS - DAY_MS, 0.11)
  writer.upsert(
    ALERT_NOTIFICATIONS,
    [
      fired,
      restated,
      reminder,
      notification_row('abandon', 'Q-2', NOTIFY_FIRING, NOW_MS - 60_000, 0.2),
    ],
  )
  writer.upsert(
    ALERT_DELIVERIES,
    [
      delivery_row(fired, 'ops', 'delivered', 1),
      delivery_row(fired, 'slack', 'failed', 5),
      delivery_row(restated, 'ops', 'delivered', 2),
    ],
  )
  writer.upsert(
    DAILY_METRICS,
    [
      daily_row('Q-1', '2027-01-15', 100, 4, 90),
      daily_row('Q-1', '2027-01-15', 20, 6, 10, channel='chat'),
      daily_row('Q-1', '2027-01-14', 500, 100, 100),  # yesterday: not shown
      daily_row('Q-2', '2027-01-15', 10, 0, 10),
      daily_row('Q-3', '2027-01-14', 50, 1, 49),
    ],
  )
  writer.upsert(
    ABANDON_METRICS,
    [
      window_row(q, current_window_start(NOW_MS / 1000), 10, 1, 9, 10.0)
      for q in ('Q-1', 'Q-2', 'Q-3')
    ],
  )
  writer.close()
  return path


# --- the query layer --------------------------------------------------------


def keys(alerts: List[Dict[str, Any]]) -> List[tuple]:
  return [(a['rule'], a['queue_id'], a['state']) for a in alerts]


def test_active_alerts_list_firing_then_pending_most_severe_then_newest(alert_db):
  active = queries_on(alert_db).snapshot()['active_alerts']
  assert keys(active['alerts']) == [
    ('wait', 'Q-1', 'firing'),  # critical
    ('abandon', 'Q-2', 'firing'),  # warning, since 1 min
    ('dead letters', '*', 'firing'),  # warning, since 2 min
    ('abandon', 'Q-1', 'firing'),  # warning, since 10 min
    ('abandon', 'Q-3', 'pending'),  # critical, but only pending
  ]
  assert (active['firing'], active['pending'], active['more']) == (4, 1, 0)
  assert (active['available'], active['complete']) == (True, True)
  first = active['alerts'][3]
  assert first == {
    'rule': 'abandon',
    'queue_id': 'Q-1',
    'channel': 'voice',
    'span': '15m',
    'queue_name': 'Sales',
    'state': 'firing',
    'severity': 'warning',
    'metric': 'abandon_rate',
    'unit': 'fraction',
    'value': 0.12,
    'threshold': 0.10,
    'since': NOW_MS - 600_000,
    'updated_at': NOW_MS - 600_000,
    'last_notification_kind': 'firing',
    'delivery_status': 'delivered',
  }


def test_a_filtered_view_lists_its_queues_alerts_and_the_jobs(alert_db):
  queries = queries_on(alert_db)
  view = queries.view(queries.read(), ('Q-3',), 60)
  assert keys(view['active_alerts']['alerts']) == [
    ('dead letters', '*', 'firing'),
    ('abandon', 'Q-3', 'pending'),
  ]
  assert (view['active_alerts']['firing'], view['active_alerts']['pending']) == (1, 1)


def test_a_view_lists_at_most_so_many_alerts_and_counts_the_rest(tmp_path):
  path = str(tmp_path / 'many.db')
  writer = new_store(path)
  writer.upsert(
    ALERTS,
    [alert_row('abandon', f'Q-{i:03}', ALERT_FIRING, NOW_MS - i) for i in range(70)],
  )
  writer.close()
  active = queries_on(path).snapshot()['active_alerts']
  assert len(active['alerts']) == MAX_ACTIVE_SHOWN
  assert (active['firing'], active['more']) == (70, 70 - MAX_ACTIVE_SHOWN)
  assert active['alerts'][0]['queue_id'] == 'Q-000'  # the newest


def test_tiles_carry_todays_figures_of_the_newest_local_date(alert_db):
  tiles_ = {t['queue_id']: t for t in queries_on(alert_db).snapshot()['queues']['tiles']}
  # voice and chat summed, rates from the sums (10 of 120, 100 of 120).
  assert tiles_['Q-1']['today'] == {
    'local_date': '2027-01-15',
    'offered': 120,
    'abandoned': 10,
    'abandon_rate': rounded_ratio(10, 120),
    'service_level': rounded_ratio(100, 120),
    'abandon_status': 'warn',
    'service_level_status': 'ok',
  }
  assert tiles_['Q-2']['today']['offered'] == 10
  # Q-3's newest day is yesterday: nothing today.
  assert tiles_['Q-3']['today'] is None
  assert queries_on(alert_db).snapshot()['queues']['today'] == {
    'available': True,
    'local_date': '2027-01-15',
  }


def test_an_alerts_history_is_its_newest_notifications_with_deliveries(alert_db):
  history = queries_on(alert_db).alert_history('abandon', 'Q-1', 'voice')
  assert history['alert']['state'] == 'firing' and history['complete']
  listed = [(n['kind'], n['value'], n['previous_value']) for n in history['notifications']]
  assert listed == [('restated', 0.09, 0.12), ('firing', 0.12, None), ('reminder', 0.11, None)]
  deliveries = {
    n['kind']: [(d['receiver'], d['status'], d['attempts']) for d in n['deliveries']]
    for n in history['notifications']
  }
  assert sorted(deliveries['firing']) == [('ops', 'delivered', 1), ('slack', 'failed', 5)]
  assert deliveries['restated'] == [('ops', 'delivered', 2)]
  assert deliveries['reminder'] == []
  assert queries_on(alert_db).alert_history('abandon', 'Q-9', 'voice') is None


def test_an_alerts_history_is_bounded(tmp_path):
  path = str(tmp_path / 'long.db')
  writer = new_store(path)
  writer.upsert(ALERTS, [alert_row('abandon', 'Q-1', ALERT_FIRING, NOW_MS)])
  writer.upsert(
    ALERT_NOTIFICATIONS,
    [
      notification_row('abandon', 'Q-1', NOTIFY_REMINDER, NOW_MS - i * 60_000, 0.1)
      for i in range(HISTORY_LIMIT + 10)
    ],
  )
  writer.close()
  history = queries_on(path).alert_history('abandon', 'Q-1', 'voice')
  assert len(history['notifications']) == HISTORY_LIMIT and not history['complete']
  assert history['notifications'][0]['created_at'] == NOW_MS


def test_a_store_without_the_alerting_tables_has_no_alerts_nor_today(tmp_path):
  path = str(tmp_path / 'older.db')
  writer = new_store(path, alerting=False)
  writer.upsert(ABANDON_METRICS, [window_row('Q-1', 0, 10, 1, 9, 10.0)])
  writer.close()
  queries = queries_on(path)
  snapshot = queries.snapshot()
  assert snapshot['active_alerts'] == {
    'available': False,
    'complete': True,
    'firing': 0,
    'pending': 0,
    'alerts': [],
    'more': 0,
  }
  assert snapshot['queues']['today'] == {'available': False, 'local_date': None}
  assert [t['today'] for t in snapshot['queues']['tiles']] == [None]
  assert queries.alert_history('abandon', 'Q-1', 'voice') is None


def test_producer_values_out_of_range_read_as_unknown(tmp_path):
  path = str(tmp_path / 'garbage.db')
  writer = new_store(path)
  writer.upsert(
    ALERTS,
    [
      alert_row('abandon', 'Q-1', ALERT_FIRING, NOW_MS, value=float('nan'))._replace(
        since=-5, rule='r' * 1000
      )
    ],
  )
  writer.close()
  [alert] = queries_on(path).snapshot()['active_alerts']['alerts']
  assert (alert['value'], alert['since']) == (None, None)
  assert len(alert['rule']) == 256 and alert['rule'].endswith('…')


def test_daily_counts_out_of_range_read_as_unknown(tmp_path):
  path = str(tmp_path / 'daily.db')
  writer = new_store(path)
  writer.upsert(
    DAILY_METRICS,
    [
      daily_row('Q-1', '2027-01-15', 100, 4, 90),
      daily_row('Q-1', '2027-01-15', 20, 6, 10, channel='chat')._replace(total_calls='many'),
      daily_row('Q-2', '2027-01-15', 10, 1, 9)._replace(abandon_rate=float('inf')),
    ],
  )
  writer.close()
  today = queries_on(path).read().today
  assert today['Q-1'] == ('2027-01-15', None, 10, None, None)
  assert today['Q-2'] == ('2027-01-15', 10, 1, None, 0.9)


@pytest.mark.parametrize(
  'metric, unit',
  [
    ('abandon_rate', 'fraction'),
    ('service_level', 'fraction'),
    ('forecast_service_level', 'fraction'),
    ('longest_wait_seconds', 'seconds'),
    ('asa_seconds', 'seconds'),
    ('waiting', 'seconds'),
    ('dead_letters', 'count'),
  ],
)
def test_metric_units(metric, unit):
  assert metric_unit(metric) == unit


def test_a_new_alert_changes_the_data_version_and_is_in_the_next_delta(alert_db):
  feed = SnapshotFeed(queries_on(alert_db), refresh_seconds=3600)
  feed.refresh()
  page = Filter(None, 60)
  before = feed.view(feed.current(), page)
  writer = SqliteWriter(alert_db)
  writer.open()
  writer.upsert(ALERTS, [alert_row('abandon', 'Q-2', ALERT_RESOLVED, NOW_MS, revision=4)])
  writer.close()
  feed.refresh()
  after = feed.view(feed.current(), page)
  assert after['data_version'] != before['data_version']
  delta = _delta(before, after)
  assert ('abandon', 'Q-2', 'firing') not in keys(delta['active_alerts']['alerts'])
  assert delta['active_alerts']['firing'] == 3


# --- the API ------------------------------------------------------------------


def get(address: str, path: str):
  conn = http.client.HTTPConnection(address, timeout=30)
  conn.request('GET', path)
  response = conn.getresponse()
  body = json.loads(response.read())
  conn.close()
  return response.status, body


def test_the_alert_endpoint(alert_db):
  queries = queries_on(alert_db)
  feed = SnapshotFeed(queries, refresh_seconds=3600)
  server = make_server('127.0.0.1', 0, queries, feed)
  feed.start()
  thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05})
  thread.start()
  address = f'127.0.0.1:{server.server_address[1]}'
  try:
    query = urllib.parse.urlencode({'rule': 'abandon', 'queue': 'Q-1', 'channel': 'voice'})
    status, body = get(address, '/api/alert?' + query)
    assert status == 200 and len(body['notifications']) == 3
    query = urllib.parse.urlencode({'rule': 'dead letters', 'queue': '*', 'channel': '*'})
    assert get(address, '/api/alert?' + query)[0] == 200
    status, body = get(address, '/api/alert?rule=abandon&queue=Q-1')
    assert (status, body['error']) == (
      400,
      'give the alert: /api/alert?rule=RULE&queue=QUEUE_ID&channel=CHANNEL',
    )
    status, body = get(address, '/api/alert?rule=abandon&queue=Q-9&channel=voice')
    assert status == 404 and "no alert 'abandon' for queue 'Q-9'" in body['error']
    assert get(address, f'/api/alert?rule={"r" * 300}&queue=Q&channel=c')[0] == 400
    assert get(address, '/api/alert?rule=a&queue=Q&channel=c&x=1')[0] == 400
  finally:
    server.shutdown()
    server.server_close()
    feed.stop()
    thread.join()


# --- the Cassandra store: its statements, against a fake session ------------

Column = collections.namedtuple('Column', 'column_name kind position clustering_order')
TableName = collections.namedtuple('TableName', 'table_name')


class FakePrepared:
  def __init__(self, cql: str):
    self.cql = cql
    self.fetch_size = None


class FakeSession:
  """Answers the schema queries from the tables' v6 layouts and a SELECT
  from `rows` (table -> rows as the keyspace holds them): the bound terms
  (`=`, `>`, `>=`, `<=`) filter, rows come in clustering order or by
  ORDER BY (descending), DISTINCT and LIMIT apply; records the statements
  run."""

  def __init__(self, rows: Dict[str, List[Dict[str, Any]]]):
    self.rows = rows
    self.run: List[tuple] = []

  def prepare(self, cql: str) -> FakePrepared:
    return FakePrepared(cql)

  def execute(self, statement, params=()):
    if isinstance(statement, str):  # system_schema.tables
      return [TableName(name) for name in TABLES]
    if not isinstance(statement, FakePrepared):  # system_schema.columns
      table = TABLES[params[1]]
      first, *clustering = table.primary_key
      partition = [first] + ([table.day_bucket.column] if table.day_bucket else [])
      return (
        [Column(name, 'partition_key', i, 'none') for i, name in enumerate(partition)]
        + [Column(name, 'clustering', i, 'asc') for i, name in enumerate(clustering)]
        + [
          Column(name, 'regular', -1, 'none')
          for name, _ in table.columns
          if name not in table.primary_key
        ]
      )
    cql, params = statement.cql, list(params)
    self.run.append((cql, list(params)))
    distinct = cql.startswith('SELECT DISTINCT ')
    names = [
      n.strip() for n in re.match(r'SELECT (?:DISTINCT )?(.*?) FROM', cql).group(1).split(',')
    ]
    table = TABLES[re.search(r'FROM \w+\.(\w+)', cql).group(1)]
    limit = params.pop() if cql.endswith('LIMIT ?') else None
    tests = {'=': operator.eq, '>': operator.gt, '>=': operator.ge, '<=': operator.le}
    terms = re.findall(r'(\w+) (=|>|>=|<=) \?', cql)
    found = [
      row
      for row in self.rows.get(table.name, [])
      if all(tests[op](row.get(name), value) for (name, op), value in zip(terms, params))
    ]
    found.sort(key=lambda row: tuple(row[name] for name in table.primary_key))
    if ' ORDER BY ' in cql:
      found.reverse()  # every clustering column is declared ascending
    Row = collections.namedtuple('Row', names)
    out = [Row(*(row.get(n) for n in names)) for row in found]
    if distinct:
      out = list(dict.fromkeys(out))
    return out[:limit]


class FakeCluster:
  def shutdown(self) -> None:
    pass


def cassandra_store(monkeypatch, rows: Dict[str, List[Dict[str, Any]]]) -> tuple:
  session = FakeSession(rows)
  monkeypatch.setattr(stores, 'connect', lambda settings: (FakeCluster(), session))
  settings = CassandraSettings.from_options(PipelineOptions(['--cassandra_keyspace=cc']))
  return CassandraStore(settings), session


def test_cassandra_reads_active_alerts_by_state_and_today_by_queue_partition(monkeypatch):
  alerts = [
    alert_row('abandon', 'Q-1', ALERT_FIRING, NOW_MS - 60_000)._asdict(),
    alert_row('abandon', 'Q-2', ALERT_RESOLVED, NOW_MS - 60_000)._asdict(),
    alert_row('wait', 'Q-1', ALERT_PENDING, NOW_MS - 1_000)._asdict(),
  ]
  daily = [
    daily_row('Q-1', '2027-01-14', 500, 100, 100)._asdict(),
    daily_row('Q-1', '2027-01-15', 100, 4, 90)._asdict(),
    daily_row('Q-1', '2027-01-15', 20, 6, 10, channel='chat')._asdict(),
  ]
  store, session = cassandra_store(monkeypatch, {'alerts': alerts, 'daily_metrics': daily})
  queries = WallboardQueries(store, THRESHOLDS, 10_000, clock=lambda: NOW_MS / 1000)
  snapshot = queries.snapshot()
  assert keys(snapshot['active_alerts']['alerts']) == [
    ('abandon', 'Q-1', 'firing'),
    ('wait', 'Q-1', 'pending'),
  ]
  alert_reads = [(cql, p) for cql, p in session.run if 'cc.alerts' in cql]
  assert alert_reads == [
    (
      'SELECT rule, queue_id, channel, state, severity, metric, span, value, threshold, since, '
      'last_notification_kind, delivery_status, updated_at, queue_name FROM cc.alerts '
      'WHERE state = ? ALLOW FILTERING',
      [state],
    )
    for state in ('firing', 'pending')
  ]
  # A queue with today's rows only has no tile; its figures are read from
  # its partition, a channel at a time, each at its newest local date.
  board = queries.read()
  assert board.today == {'Q-1': ('2027-01-15', 120, 10, rounded_ratio(10, 120), 0.8333)}
  daily_reads = [cql for cql, _ in session.run if 'cc.daily_metrics' in cql]
  assert 'SELECT DISTINCT queue_id FROM cc.daily_metrics' in daily_reads
  assert not [cql for cql in daily_reads if 'ALLOW FILTERING' in cql]
  session.run.clear()
  history = queries.alert_history('abandon', 'Q-1', 'voice')
  assert history['notifications'] == []
  assert session.run[0] == (
    'SELECT rule, queue_id, channel, state, severity, metric, span, value, threshold, since, '
    'last_notification_kind, delivery_status, updated_at, queue_name FROM cc.alerts '
    'WHERE rule = ? AND queue_id = ? AND channel = ? ALLOW FILTERING',
    ['abandon', 'Q-1', 'voice'],
  )
  # 30 days before the last evaluation and one after: 32 day partitions.
  assert len([cql for cql, _ in session.run if 'alert_notifications' in cql]) == 32


def test_cassandra_reads_an_alerts_history_a_day_partition_at_a_time(monkeypatch):
  def stored(n: AlertNotification) -> Dict[str, Any]:
    day = time.strftime('%Y-%m-%d', time.gmtime(n.created_at / 1000))
    return {**n._asdict(), 'day': day}

  rows = [
    stored(notification_row('abandon', 'Q-1', NOTIFY_FIRING, NOW_MS - 1_000, 0.12)),
    stored(notification_row('abandon', 'Q-1', NOTIFY_REMINDER, NOW_MS - 2 * DAY_MS, 0.11)),
    stored(notification_row('abandon', 'Q-2', NOTIFY_FIRING, NOW_MS - 1_000, 0.5)),
  ]
  store, session = cassandra_store(monkeypatch, {'alert_notifications': rows})
  read = store.newest_by_day(
    ALERT_NOTIFICATIONS,
    ('kind', 'created_at'),
    2,
    {'rule': 'abandon', 'queue_id': 'Q-1', 'channel': 'voice'},
    NOW_MS - 30 * DAY_MS,
    NOW_MS,
  )
  assert [r['kind'] for r in read.rows] == ['firing', 'reminder']
  # Newest day first, one partition each, stopping once two rows are read.
  days = [params[1] for _, params in session.run]
  assert days == ['2027-01-15', '2027-01-14', '2027-01-13']
  assert session.run[0] == (
    'SELECT kind, created_at FROM cc.alert_notifications WHERE rule = ? AND day = ? AND '
    'queue_id = ? AND channel = ? AND created_at >= ? AND created_at <= ? ORDER BY '
    'queue_id DESC, channel DESC, created_at DESC, notification_id DESC LIMIT ?',
    ['abandon', '2027-01-15', 'Q-1', 'voice', NOW_MS - 30 * DAY_MS, NOW_MS, 2],
  )
  assert session.run[-1][1][-1] == 1  # only what is still missing
  with pytest.raises(ValueError, match='give rule and queue_id, channel'):
    store.newest_by_day(ALERT_NOTIFICATIONS, ('kind',), 2, {'rule': 'abandon'}, 0, NOW_MS)


# --- the page in headless Chromium -----------------------------------------


def alert_rows(driver) -> List[List[str]]:
  return [
    [td.text for td in tr.find_elements(By.TAG_NAME, 'td')]
    for tr in driver.find_elements(By.CSS_SELECTOR, '#active-alerts-table tbody tr.alert-row')
  ]


def today_text(driver, queue_id: str) -> str:
  return tile(driver, queue_id).find_element(By.CLASS_NAME, 'tile-today').text


def test_alerts_show_at_the_top_live_with_their_history_and_tiles_show_today(tmp_path):
  db = str(tmp_path / 'page.db')
  writer = new_store(db)
  try:
    now = int(time.time() * 1000)
    start = current_window_start(now / 1000)
    today = time.strftime('%Y-%m-%d', time.localtime(now / 1000))
    writer.upsert(
      ABANDON_METRICS,
      [
        window_row('Q-1', start, 16, 1, 13, 160.0),
        window_row(HOSTILE_QUEUE, start, 10, 0, 10, 5.0),
      ],
    )
    writer.upsert(
      DAILY_METRICS,
      [
        daily_row('Q-1', today, 200, 10, 170, as_of=now),
        daily_row('Q-1', today, 40, 2, 38, 'chat'),
      ],
    )
    writer.upsert(
      ALERTS,
      [
        alert_row('abandon', 'Q-1', ALERT_PENDING, now - 60_000, value=0.0625, threshold=0.05),
        alert_row(HOSTILE_RULE, HOSTILE_QUEUE, ALERT_FIRING, now - 120_000, severity='critical'),
      ],
    )
    fired = notification_row(
      HOSTILE_RULE, HOSTILE_QUEUE, NOTIFY_FIRING, now - 120_000, 0.12, message=HOSTILE_MESSAGE
    )
    restated = notification_row(
      HOSTILE_RULE, HOSTILE_QUEUE, NOTIFY_RESTATED, now - 60_000, 0.08, previous=0.12
    )
    writer.upsert(ALERT_NOTIFICATIONS, [fired, restated])
    writer.upsert(
      ALERT_DELIVERIES,
      [delivery_row(fired, 'ops', 'delivered', 1), delivery_row(fired, 'slack', 'failed', 5)],
    )
    with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.5']) as url, chromium() as driver:
      driver.get(url)
      wait_for(driver, lambda d: len(alert_rows(d)) == 2, 30, 'the alerts did not show')
      # Above the tiles; firing first; names of HTML as text.
      assert driver.execute_script(
        "return document.getElementById('active-alerts').getBoundingClientRect().bottom <= "
        "document.getElementById('tiles').getBoundingClientRect().top"
      )
      first, second = alert_rows(driver)
      assert first[:4] == ['critical', HOSTILE_RULE, HOSTILE_QUEUE, 'voice']
      assert first[7:] == ['firing', 'delivered']
      assert second[1:6] == ['abandon', 'Q-1', 'voice', '6.3 %', '5.0 %']
      assert second[7] == 'pending'
      rows = driver.find_elements(By.CSS_SELECTOR, '#active-alerts-table tr.alert-row')
      assert float(rows[1].value_of_css_property('opacity')) < 1  # pending: dimmer
      assert {
        n.value_of_css_property('unicode-bidi')
        for n in driver.find_elements(By.CSS_SELECTOR, '#active-alerts-table td.alert-rule')
      } == {'isolate'}
      scope = driver.find_element(By.ID, 'active-alerts-scope').text
      assert scope == '1 firing · 1 pending'

      # Today beside the window: Q-1's channels summed (12 of 240, 208 of 240).
      assert today_text(driver, 'Q-1') == 'today 240 offered · 5.0 % abandon · 86.7 % SL'
      assert today_text(driver, HOSTILE_QUEUE) == 'today – offered · – abandon · – SL'

      # A new alert written while the page is open: at the top, no reload.
      driver.execute_script('window.__sameDocument = true')
      later = int(time.time() * 1000)
      writer.upsert(
        ALERTS,
        [
          alert_row(
            'service level', 'Q-1', ALERT_FIRING, later, severity='critical',
            metric='service_level', value=0.7, threshold=0.8, delivery='queued',
          )
        ],
      )  # fmt: skip
      wait_for(
        driver,
        lambda d: len(alert_rows(d)) == 3 and alert_rows(d)[0][1] == 'service level',
        LIVE_UPDATE_TIMEOUT_S,
        f'the new alert did not show within {LIVE_UPDATE_TIMEOUT_S} s',
      )
      assert alert_rows(driver)[0][4:6] == ['70.0 %', '80.0 %']
      assert alert_rows(driver)[0][8] == 'queued'
      assert driver.execute_script('return window.__sameDocument') is True

      # The drill-down: the HTML rule's history with its deliveries.
      driver.find_elements(By.CSS_SELECTOR, '#active-alerts-table tr.alert-row')[1].click()

      def history(d) -> List[List[str]]:
        return [
          [td.text for td in tr.find_elements(By.TAG_NAME, 'td')]
          for tr in d.find_elements(By.CSS_SELECTOR, '#alert-history tbody tr.notification')
        ]

      wait_for(driver, lambda d: len(history(d)) == 2, 10, 'the history did not show')
      assert driver.find_element(By.ID, 'alert-detail-rule').text == HOSTILE_RULE
      listed = history(driver)
      assert [row[1:5] for row in listed] == [
        ['restated', '8.0 %', '12.0 %', '10.0 %'],
        ['firing', '12.0 %', '', '10.0 %'],
      ]
      assert listed[1][5] == HOSTILE_MESSAGE
      assert listed[1][6].splitlines() == [
        'ops: delivered (1 attempt)',
        'slack: failed (5 attempts)',
      ]
      assert_nothing_executed(driver)
      assert_no_console_errors(driver)
      screenshot(driver, 'wallboard-alerts.png')
  finally:
    writer.close()
