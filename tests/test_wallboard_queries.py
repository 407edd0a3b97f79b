"""The wallboard's query layer (pipelines/wallboard/queries.py) over a SQLite
store written by the main job from the committed samples, compared with
direct SQL on the same file."""

import sqlite3

import pytest

from pipelines import contact_center
from pipelines.wallboard.queries import (
  ALERT_LIMIT,
  COUNT_LIMIT,
  HOUR_MS,
  Thresholds,
  WallboardQueries,
  abandon_status,
  service_level_status,
)
from pipelines.wallboard.stores import SqliteStore, StoreError
from tests.support.wallboard_helpers import REPO, WINDOW_MS, window_row
from transforms.schema import ABANDON_METRICS, TABLES
from transforms.sqlite_sink import SqliteSink, SqliteWriter

THRESHOLDS = Thresholds(0.05, 0.10, 0.80)
DELAY_MS = 10_000
# Extra rows beside the job's: a queue whose newest window is two hours
# older than the others', and a queue with a window without calls.
OLD_QUEUE, EMPTY_QUEUE = 'Q-OLD', 'Q-EMPTY'


@pytest.fixture(scope='module')
def db(tmp_path_factory) -> str:
  path = str(tmp_path_factory.mktemp('wallboard') / 'results.db')
  contact_center.run(
    [
      f'--call_events={REPO / "samples" / "call_events.jsonl"}',
      f'--data_actions={REPO / "samples" / "data_actions.jsonl"}',
      f'--sqlite_path={path}',
    ]
  )
  with sqlite3.connect(path) as conn:
    [newest_start] = conn.execute('SELECT MAX(window_start) FROM abandon_metrics').fetchone()
  writer = SqliteWriter(path)
  writer.open()
  writer.upsert(
    ABANDON_METRICS,
    [
      window_row(OLD_QUEUE, newest_start - 2 * HOUR_MS, 20, 2, 15, 200.0),
      window_row(EMPTY_QUEUE, newest_start, 0, 0, 0, 0.0),
    ],
  )
  writer.close()
  return path


def copy_db(source: str, target: str) -> None:
  """A consistent copy, WAL included (a file copy may miss the WAL)."""
  with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
    src.backup(dst)


def queries_on(path: str, now_ms: int = 0) -> WallboardQueries:
  return WallboardQueries(SqliteStore(path), THRESHOLDS, DELAY_MS, clock=lambda: now_ms / 1000)


def sql(path: str, query: str, *params) -> list:
  with sqlite3.connect(path) as conn:
    conn.row_factory = sqlite3.Row
    return [dict(row) for row in conn.execute(query, params)]


def points(aligned: dict, field: str) -> dict:
  """(key, window_start) -> value of the non-empty points of `_aligned`
  series."""
  return {
    (s['key'], x): value
    for s in aligned['series']
    for x, value in zip(aligned['x'], s[field])
    if value is not None
  }


def test_tiles_are_the_newest_window_of_each_queue(db):
  tiles = queries_on(db).latest_windows()
  expected = sql(
    db,
    'SELECT * FROM abandon_metrics m WHERE window_start = '
    '(SELECT MAX(window_start) FROM abandon_metrics '
    ' WHERE queue_id = m.queue_id) ORDER BY queue_id',
  )
  assert len(expected) == 10, 'eight sample queues and two extra ones'
  assert [t['queue_id'] for t in tiles['tiles']] == [r['queue_id'] for r in expected]
  for tile, row in zip(tiles['tiles'], expected):
    assert (
      tile['window_start'],
      tile['window_end'],
      tile['offered'],
      tile['abandoned'],
      tile['abandon_rate'],
      tile['service_level'],
      tile['pane_index'],
      tile['pane_timing'],
    ) == (
      row['window_start'],
      row['window_end'],
      row['total_calls'],
      row['abandoned_calls'],
      row['abandon_rate'],
      row['service_level'],
      row['pane_index'],
      row['pane_timing'],
    )
    answered = row['answered_calls'] - row['answered_wait_unknown_calls']
    if answered:
      assert tile['wait_seconds'] == pytest.approx(row['answered_wait_seconds'] / answered)
    assert tile['current'] == (row['queue_id'] != OLD_QUEUE)
  assert tiles['wait_label'] == 'ASA'
  [newest_end] = [r['m'] for r in sql(db, 'SELECT MAX(window_end) AS m FROM abandon_metrics')]
  assert tiles['newest_window_end'] == newest_end


def test_tile_colours_follow_the_thresholds(db):
  by_queue = {t['queue_id']: t for t in queries_on(db).latest_windows()['tiles']}
  for tile in by_queue.values():
    if tile['offered'] == 0:
      continue
    assert tile['abandon_status'] == abandon_status(tile['abandon_rate'], THRESHOLDS)
    assert tile['service_level_status'] == service_level_status(tile['service_level'], THRESHOLDS)
  # Q-101's newest window: 6.25 % abandoned (warn), 75 % in service level.
  assert by_queue['Q-101']['abandon_status'] == 'warn'
  assert by_queue['Q-101']['status'] == 'alert'
  assert by_queue[EMPTY_QUEUE]['status'] == 'idle'
  assert by_queue[EMPTY_QUEUE]['wait_seconds'] is None


@pytest.mark.parametrize(
  'rate, expected',
  [(0.0499, 'ok'), (0.05, 'warn'), (0.0999, 'warn'), (0.10, 'alert'), (1.0, 'alert')],
)
def test_abandon_status_at_the_edges(rate, expected):
  assert abandon_status(rate, THRESHOLDS) == expected


@pytest.mark.parametrize('level, expected', [(0.7999, 'alert'), (0.80, 'ok'), (1.0, 'ok')])
def test_service_level_status_at_the_edges(level, expected):
  assert service_level_status(level, THRESHOLDS) == expected


@pytest.mark.parametrize('hours', [1, 4, 24])
def test_trends_are_the_windows_of_the_last_hours(db, hours):
  q = queries_on(db)
  board = q.read()
  trends = q.queue_trends(hours, sorted(board.queues), board.newest_window_end)
  [until] = [r['m'] for r in sql(db, 'SELECT MAX(window_end) AS m FROM abandon_metrics')]
  rows = sql(
    db,
    'SELECT queue_id, window_start, abandon_rate, total_calls '
    'FROM abandon_metrics WHERE window_start >= ?',
    until - hours * HOUR_MS,
  )
  assert trends['until_ms'] == until
  assert points(trends, 'abandon_rate') == {
    (r['queue_id'], r['window_start']): r['abandon_rate'] for r in rows
  }
  assert points(trends, 'total_calls') == {
    (r['queue_id'], r['window_start']): r['total_calls'] for r in rows
  }
  assert trends['x'] == sorted({r['window_start'] for r in rows})
  # The old queue's window is two hours before the others.
  assert any(r['queue_id'] == OLD_QUEUE for r in rows) == (hours > 2)


def test_channel_volumes_are_the_last_hour_of_windows(db):
  volumes = queries_on(db).channel_volumes()
  [until] = [r['m'] for r in sql(db, 'SELECT MAX(window_end) AS m FROM interaction_volumes')]
  rows = sql(
    db,
    'SELECT channel, window_start, volume FROM interaction_volumes WHERE window_start >= ?',
    until - HOUR_MS,
  )
  assert len(rows) > 200
  assert points(volumes, 'volume') == {(r['channel'], r['window_start']): r['volume'] for r in rows}


def test_pattern_alerts_are_the_newest_first(db):
  alerts = queries_on(db).pattern_alerts()
  expected = sql(
    db,
    'SELECT customer_id, channel, timestamp, failure_count, alert_type, '
    'tier, region FROM pattern_alerts ORDER BY timestamp DESC LIMIT ?',
    ALERT_LIMIT,
  )
  assert len(expected) == 8
  assert alerts == {'alerts': expected, 'complete': True}


def received_at_range(path: str):
  [row] = sql(path, 'SELECT MIN(received_at) AS lo, MAX(received_at) AS hi FROM dead_letters')
  return row['lo'], row['hi']


def largest(counts: list) -> list:
  """The COUNT_LIMIT largest groups, most first, then by source and reason."""
  ranked = sorted(counts, key=lambda c: (-c['count'], c['source'], c['reason']))
  return ranked[:COUNT_LIMIT]


def test_health_counts_late_events_and_dead_letters_of_the_last_hour(db):
  now = received_at_range(db)[1] + 1000
  health = queries_on(db, now).health()
  [data_end] = [
    r['m']
    for r in sql(
      db,
      'SELECT MAX(m) AS m FROM (SELECT MAX(window_end) AS m FROM '
      'abandon_metrics UNION ALL SELECT MAX(window_end) FROM '
      'interaction_volumes)',
    )
  ]
  late = sql(
    db,
    'SELECT source, reason, COUNT(*) AS count FROM late_events '
    'WHERE watermark >= ? GROUP BY source, reason',
    data_end - HOUR_MS,
  )
  dead = sql(
    db,
    'SELECT source, reason, COUNT(*) AS count FROM dead_letters '
    'WHERE received_at >= ? GROUP BY source, reason',
    now - HOUR_MS,
  )
  assert health['late_events']['counts'] == largest(late)
  assert health['dead_letters']['counts'] == largest(dead)
  assert len(dead) > COUNT_LIMIT, 'the sample has more reasons than the page lists'
  assert health['dead_letters']['groups'] == len(dead)
  assert health['late_events']['total'] == sum(c['count'] for c in late) > 0
  assert health['late_events']['since_ms'] == data_end - HOUR_MS
  assert health['dead_letters']['since_ms'] == now - HOUR_MS
  [[total]] = [r.values() for r in sql(db, 'SELECT COUNT(*) FROM dead_letters')]
  assert health['dead_letters']['total'] == total > 0
  flows = {f['name']: f for f in health['flows']}
  for name, table, window_ms in (
    ('call metrics', 'abandon_metrics', 300_000),
    ('interaction volumes', 'interaction_volumes', 10_000),
  ):
    [newest] = [r['m'] for r in sql(db, f'SELECT MAX(window_end) AS m FROM {table}')]
    assert flows[name]['newest_window_end'] == newest
    assert flows[name]['window_ms'] == window_ms


def test_dead_letters_leave_the_count_an_hour_after_they_were_received(db):
  lo, hi = received_at_range(db)
  assert queries_on(db, lo + HOUR_MS).health()['dead_letters']['total'] >= 1
  assert queries_on(db, hi + HOUR_MS + 1).health()['dead_letters']['total'] == 0


def test_a_store_without_received_at_counts_dead_letters_of_all_time(db, tmp_path):
  path = str(tmp_path / 'v1.db')
  copy_db(db, path)
  with sqlite3.connect(path) as conn:
    conn.execute('ALTER TABLE dead_letters DROP COLUMN received_at')
    [[total]] = conn.execute('SELECT COUNT(*) FROM dead_letters')
  dead = queries_on(path, 10**13).health()['dead_letters']
  assert (dead['since_ms'], dead['total']) == (None, total)


def test_stale_after_two_windows_and_the_watermark_delay(db):
  [newest] = [r['m'] for r in sql(db, 'SELECT MAX(window_end) AS m FROM abandon_metrics')]
  limit = newest + 2 * WINDOW_MS + DELAY_MS
  [fresh] = queries_on(db, limit).health()['flows'][:1]
  [stale] = queries_on(db, limit + 1000).health()['flows'][:1]
  assert (fresh['stale'], fresh['lag_ms']) == (False, limit - newest)
  assert stale['stale']


def test_queue_detail_is_its_windows_and_late_events(db):
  detail = queries_on(db).queue_detail('Q-101', 4)
  windows = sql(
    db,
    'SELECT window_start, total_calls, abandon_rate, pane_timing '
    "FROM abandon_metrics WHERE queue_id = 'Q-101' "
    'ORDER BY window_start DESC',
  )
  assert [
    (w['window_start'], w['offered'], w['abandon_rate'], w['pane_timing'])
    for w in detail['windows']
  ] == [tuple(r.values()) for r in windows]
  late = sql(
    db,
    'SELECT event_id, key, event_timestamp, window_start, window_end, '
    "watermark, reason, raw FROM late_events WHERE source = 'cc-call-logs' "
    "AND key = 'Q-101' ORDER BY watermark DESC, event_id",
  )
  assert len(late) == 3
  assert sorted(detail['late_events'], key=lambda e: (-e['watermark'], e['event_id'])) == late
  q = queries_on(db)
  assert q.queue_exists('Q-101') and not q.queue_exists('Q-999')


def test_one_hour_of_detail_leaves_the_older_windows_out(db):
  detail = queries_on(db).queue_detail(OLD_QUEUE, 1)
  assert len(detail['windows']) == 1


def test_a_store_without_answered_waits_shows_the_average_wait(db, tmp_path):
  # A store written by a release before the answered-wait columns.
  path = str(tmp_path / 'v1.db')
  copy_db(db, path)
  with sqlite3.connect(path) as conn:
    for column in ('answered_wait_seconds', 'answered_calls', 'answered_wait_unknown_calls'):
      conn.execute(f'ALTER TABLE abandon_metrics DROP COLUMN {column}')
  tiles = queries_on(path).latest_windows()
  assert tiles['wait_label'] == 'avg wait'
  by_queue = {t['queue_id']: t for t in tiles['tiles']}
  [row] = sql(
    path,
    'SELECT total_calls, total_wait_seconds FROM abandon_metrics '
    "WHERE queue_id = 'Q-101' ORDER BY window_start DESC LIMIT 1",
  )
  assert by_queue['Q-101']['wait_seconds'] == pytest.approx(
    row['total_wait_seconds'] / row['total_calls']
  )
  assert by_queue[EMPTY_QUEUE]['wait_seconds'] is None


def test_data_version_moves_with_the_data_not_the_clock(db, tmp_path):
  path = str(tmp_path / 'copy.db')
  copy_db(db, path)
  first = queries_on(path, 1).snapshot()
  assert queries_on(path, 2_000_000).snapshot()['data_version'] == first['data_version']
  writer = SqliteWriter(path)
  writer.open()
  tile = first['queues']['tiles'][0]
  writer.upsert(
    ABANDON_METRICS,
    [
      window_row(
        tile['queue_id'], tile['window_start'], 1000, 1, 1, 1.0, pane=tile['pane_index'] + 1
      )
    ],
  )
  writer.close()
  assert queries_on(path, 1).snapshot()['data_version'] != first['data_version']


def test_an_empty_store_has_no_windows_and_says_so(tmp_path):
  path = str(tmp_path / 'empty.db')
  SqliteSink(path).prepare(TABLES.values())
  snapshot = queries_on(path, 1).snapshot()
  assert snapshot['queues']['tiles'] == []
  assert snapshot['volumes']['series'] == []
  assert [f['stale'] for f in snapshot['health']['flows']] == [True, True]
  assert snapshot['health']['late_events']['since_ms'] is None
  assert queries_on(path).queue_trends(4, [], None)['series'] == []


def test_a_missing_file_or_a_foreign_database_is_a_clear_error(tmp_path):
  with pytest.raises(StoreError, match='no such file'):
    SqliteStore(str(tmp_path / 'nothing.db'))
  other = str(tmp_path / 'other.db')
  with sqlite3.connect(other) as conn:
    conn.execute('CREATE TABLE abandon_metrics (queue_id TEXT)')
  with pytest.raises(StoreError, match='no table dead_letters'):
    SqliteStore(other)


def test_the_store_cannot_write(db):
  store = SqliteStore(db)
  with pytest.raises(sqlite3.OperationalError, match='readonly'):
    # pylint: disable-next=protected-access
    store._conn.execute('DELETE FROM abandon_metrics')
  store.close()
