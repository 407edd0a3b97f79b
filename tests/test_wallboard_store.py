"""The local store across reruns, restarts and upgrades, with the wallboard
reading it: the SQLite sink migrating stores of earlier releases (a primary
key that gained `channel`), the wallboard on stores as each earlier schema
left them, a store replaced at its path, and real job runs with a real
wallboard process open on the store."""

import json
import logging
import os
import pathlib
import sqlite3
import subprocess
import sys
import time
import urllib.request
from typing import Dict, List, Sequence

import pytest

from pipelines.wallboard.queries import Thresholds, WallboardQueries
from pipelines.wallboard.stores import SqliteStore, StoreError
from tests.support.wallboard_helpers import REPO, WINDOW_MS, wallboard, window_row
from transforms.records import AbandonMetrics
from transforms.schema import ABANDON_METRICS, DEAD_LETTERS, TABLES
from transforms.sqlite_sink import SqliteSink, SqliteWriter, publish, stored_primary_key

THRESHOLDS = Thresholds(0.05, 0.10, 0.80)
START = 1_790_000_000_000 // WINDOW_MS * WINDOW_MS
SQL_TYPES = {str: 'TEXT', int: 'INTEGER', float: 'REAL', bool: 'INTEGER'}
# abandon_metrics as the first release made it (12 columns) and as the
# vendor-format release did (20, still keyed by queue and window start).
V1_ABANDON_COLUMNS = AbandonMetrics._fields[:12]
V2_ABANDON_COLUMNS = AbandonMetrics._fields[:20]
OLD_KEY = ('queue_id', 'window_start')


def create_old_store(path: str, abandon_columns: Sequence[str], received_at: bool) -> None:
  """Tables as an earlier release created them: abandon_metrics with
  `abandon_columns` keyed by (queue_id, window_start), dead_letters with or
  without `received_at`, the other tables as now."""
  types = dict(ABANDON_METRICS.columns)
  with sqlite3.connect(path) as conn:
    columns = ', '.join(f'{name} {SQL_TYPES[types[name]]}' for name in abandon_columns)
    conn.execute(f'CREATE TABLE abandon_metrics ({columns}, PRIMARY KEY (queue_id, window_start))')
    for table in TABLES.values():
      if table is ABANDON_METRICS:
        continue
      kept = [(n, t) for n, t in table.columns if received_at or n != 'received_at']
      columns = ', '.join(f'{name} {SQL_TYPES[kind]}' for name, kind in kept)
      conn.execute(
        f'CREATE TABLE {table.name} ({columns}, PRIMARY KEY ({", ".join(table.primary_key)}))'
      )


def insert_old_rows(path: str, rows: Sequence[AbandonMetrics], columns: Sequence[str]) -> None:
  with sqlite3.connect(path) as conn:
    marks = ', '.join('?' * len(columns))
    conn.executemany(
      f'INSERT INTO abandon_metrics ({", ".join(columns)}) VALUES ({marks})',
      [row[: len(columns)] for row in rows],
    )
    conn.execute(
      'INSERT INTO dead_letters (source, origin, reason, detail, raw, raw_size) '
      "VALUES ('cc-call-logs', 'calls.jsonl:3', 'malformed_json', 'x', '{', 1)"
    )


def v1_rows() -> List[AbandonMetrics]:
  return [
    window_row('Q-1', START - WINDOW_MS, 10, 5, 4, 100.0),
    window_row('Q-1', START, 16, 1, 13, 160.0),
    window_row('Q-2', START, 20, 4, 10, 400.0),
  ]


def v1_store(path: str) -> str:
  """A store of the first release, as it left it."""
  create_old_store(path, V1_ABANDON_COLUMNS, received_at=False)
  insert_old_rows(path, v1_rows(), V1_ABANDON_COLUMNS)
  return path


def v2_upgraded_store(path: str) -> str:
  """A first-release store after the vendor-format release's job ran on it:
  the new columns added as NULL to the old rows, then rows of its own."""
  v1_store(path)
  with sqlite3.connect(path) as conn:
    types = dict(ABANDON_METRICS.columns)
    for name in V2_ABANDON_COLUMNS[12:]:
      conn.execute(f'ALTER TABLE abandon_metrics ADD COLUMN {name} {SQL_TYPES[types[name]]}')
    conn.execute('ALTER TABLE dead_letters ADD COLUMN received_at INTEGER')
  newer = window_row('Q-3', START, 30, 3, 24, 300.0)._replace(
    answered_calls=27, answered_wait_seconds=270.0
  )
  with sqlite3.connect(path) as conn:
    conn.execute(
      f'INSERT INTO abandon_metrics ({", ".join(V2_ABANDON_COLUMNS)}) '
      f'VALUES ({", ".join("?" * len(V2_ABANDON_COLUMNS))})',
      newer[: len(V2_ABANDON_COLUMNS)],
    )
  return path


def board_on(path: str) -> WallboardQueries:
  return WallboardQueries(SqliteStore(path), THRESHOLDS, 10_000, clock=lambda: START / 1000)


@pytest.mark.parametrize('make', [v1_store, v2_upgraded_store])
def test_the_board_renders_stores_of_earlier_releases(tmp_path, make):
  path = make(str(tmp_path / 'old.db'))
  queries = board_on(path)
  snapshot = queries.snapshot()
  tiles = {t['queue_id']: t for t in snapshot['queues']['tiles']}
  assert {q: t['abandon_rate'] for q, t in tiles.items() if q != 'Q-3'} == {
    'Q-1': 0.0625,
    'Q-2': 0.2,
  }
  # Without received_at the dead letters of all time; with it NULL in an
  # old row, that row has no time in the last hour.
  assert snapshot['health']['dead_letters']['total'] == (make is v1_store)
  if make is v2_upgraded_store:
    # Rows from before the ASA columns hold NULL there: no wait, no crash.
    assert snapshot['queues']['wait_label'] == 'ASA'
    assert tiles['Q-1']['wait_seconds'] is None
    assert tiles['Q-3']['wait_seconds'] == pytest.approx(10.0)
  else:
    assert snapshot['queues']['wait_label'] == 'avg wait'
    assert tiles['Q-1']['wait_seconds'] == pytest.approx(10.0)
  detail = queries.queue_detail('Q-1', 4)
  assert [w['abandon_rate'] for w in detail['windows']] == [0.0625, 0.5]
  assert [c['channel'] for c in detail['windows'][0]['channels']] == ['voice']
  trends = queries.queue_trends(4, ['Q-1', 'Q-2'], snapshot['queues']['newest_window_end'])
  assert [s['key'] for s in trends['series']] == ['Q-1', 'Q-2']


@pytest.mark.parametrize('make', [v1_store, v2_upgraded_store])
def test_the_sink_migrates_an_earlier_store_keeping_its_rows_as_voice(tmp_path, make, caplog):
  path = make(str(tmp_path / 'old.db'))
  before = board_on(path).snapshot()['queues']['tiles']
  caplog.set_level(logging.INFO, logger='transforms.sqlite_sink')
  SqliteSink(path).prepare(TABLES.values())
  [logged] = [r.getMessage() for r in caplog.records]
  assert 'abandon_metrics rebuilt with primary key (queue_id, channel, window_start)' in logged
  SqliteSink(path).prepare(TABLES.values())  # again: nothing to do
  with sqlite3.connect(path) as conn:
    assert stored_primary_key(conn, ABANDON_METRICS) == ABANDON_METRICS.primary_key
    assert {row[0] for row in conn.execute('SELECT channel FROM abandon_metrics')} == {'voice'}
  after = board_on(path).snapshot()['queues']['tiles']
  # The same numbers; ASA columns the old rows lacked took the record's
  # defaults (no wait known) in the rebuild.
  strip = ('wait_seconds', 'channels')
  assert [{k: v for k, v in t.items() if k not in strip} for t in after] == [
    {k: v for k, v in t.items() if k not in strip} for t in before
  ]
  # A second channel of a migrated window is a row of its own.
  writer = SqliteWriter(path)
  writer.open()
  writer.upsert(ABANDON_METRICS, [window_row('Q-1', START, 4, 3, 1, 8.0)._replace(channel='chat')])
  writer.close()
  with sqlite3.connect(path) as conn:
    assert conn.execute(
      "SELECT channel, total_calls FROM abandon_metrics WHERE queue_id = 'Q-1' "
      'AND window_start = ? ORDER BY channel',
      (START,),
    ).fetchall() == [('chat', 4), ('voice', 16)]


def test_a_fresh_store_is_keyed_by_queue_channel_and_window(tmp_path):
  path = str(tmp_path / 'new.db')
  SqliteSink(path).prepare(TABLES.values())
  with sqlite3.connect(path) as conn:
    assert stored_primary_key(conn, ABANDON_METRICS) == ('queue_id', 'channel', 'window_start')
    assert stored_primary_key(conn, DEAD_LETTERS) == DEAD_LETTERS.primary_key


def test_a_failed_migration_leaves_the_store_as_it_was(tmp_path):
  path = v1_store(str(tmp_path / 'old.db'))
  with sqlite3.connect(path) as conn:
    # The rebuild's working name taken by a view: it fails midway.
    conn.execute('CREATE VIEW abandon_metrics__rebuilt AS SELECT 1')
  with pytest.raises(sqlite3.DatabaseError):
    SqliteSink(path).prepare(TABLES.values())
  with sqlite3.connect(path) as conn:
    assert stored_primary_key(conn, ABANDON_METRICS) == OLD_KEY
    assert conn.execute('SELECT COUNT(*) FROM abandon_metrics').fetchone() == (3,)


def test_the_tile_sums_the_channels_of_its_newest_window(tmp_path):
  path = str(tmp_path / 'channels.db')
  SqliteSink(path).prepare(TABLES.values())
  writer = SqliteWriter(path)
  writer.open()
  writer.upsert(
    ABANDON_METRICS,
    [
      window_row('Q-1', START, 16, 1, 13, 160.0),  # voice 6.25 %
      window_row('Q-1', START, 4, 3, 1, 8.0, pane=2)._replace(channel='chat'),  # 75 %
      # An older chat window does not join the newest one.
      window_row('Q-1', START - WINDOW_MS, 100, 100, 0, 0.0)._replace(channel='chat'),
    ],
  )
  writer.close()
  queries = board_on(path)
  [tile] = queries.snapshot()['queues']['tiles']
  # (1 + 3) / (16 + 4), not the mean of 6.25 % and 75 %.
  assert (tile['offered'], tile['abandoned'], tile['abandon_rate']) == (20, 4, 0.2)
  assert tile['service_level'] == 0.7  # (13 + 1) / 20
  assert (tile['channels'], tile['pane_index'], tile['pane_timing']) == (
    ['chat', 'voice'],
    2,
    'LATE',
  )
  newest, older = queries.queue_detail('Q-1', 4)['windows']
  assert [(c['channel'], c['abandon_rate']) for c in newest['channels']] == [
    ('voice', 0.0625),
    ('chat', 0.75),
  ]
  assert (older['abandon_rate'], [c['channel'] for c in older['channels']]) == (1.0, ['chat'])


def test_a_store_replaced_at_its_path_is_reopened_and_said_so(tmp_path, caplog):
  first, second = str(tmp_path / 'a.db'), str(tmp_path / 'b.db')
  for path, total in ((first, 10), (second, 40)):
    SqliteSink(path).prepare(TABLES.values())
    writer = SqliteWriter(path)
    writer.open()
    writer.upsert(ABANDON_METRICS, [window_row('Q-1', START, total, 1, 1, 1.0)])
    writer.close()
  live = str(tmp_path / 'live.db')
  os.link(first, live)
  queries = board_on(live)
  assert queries.snapshot()['queues']['tiles'][0]['offered'] == 10
  os.unlink(live)  # deleted, then a new one copied in (not yet)
  with pytest.raises(StoreError, match='the file is gone'):
    queries.snapshot()
  caplog.set_level(logging.INFO, logger='pipelines.wallboard.stores')
  os.link(second, live)
  assert queries.snapshot()['queues']['tiles'][0]['offered'] == 40
  assert [r.getMessage() for r in caplog.records] == [
    f'the store {live} is another file now ({live}); reopened it'
  ]


SAMPLE = REPO / 'samples' / 'call_events.jsonl'
ACTIONS = REPO / 'samples' / 'data_actions.jsonl'


def sample_part(tmp_path: pathlib.Path, source: pathlib.Path, name: str, lines: slice) -> str:
  path = tmp_path / name
  # Bytes: the sample has malformed lines on purpose (invalid UTF-8).
  path.write_bytes(b''.join(source.read_bytes().splitlines(keepends=True)[lines]))
  return str(path)


def job(*args: str, env: Dict[str, str] = None) -> subprocess.CompletedProcess:
  """The main job (or scripts/run_local.sh with `args[0]` a path) as a
  process; fails the test with its output when it fails."""
  command = list(args) if args[0].endswith('.sh') else [sys.executable, '-m', *args]
  proc = subprocess.run(
    command,
    cwd=REPO,
    env={**os.environ, **(env or {})},
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def get_json(url: str) -> dict:
  with urllib.request.urlopen(url, timeout=30) as response:
    return json.loads(response.read())


def window_sizes(url: str) -> set:
  tiles = get_json(url + 'api/snapshot')['queues']['tiles']
  return {t['window_end'] - t['window_start'] for t in tiles}


def wait_until(condition, timeout: float, message: str):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    value = condition()
    if value:
      return value
    time.sleep(0.2)
  raise AssertionError(message)


def test_rerunning_run_local_with_the_wallboard_open(tmp_path):
  db = tmp_path / 'output' / 'contact_center.db'
  db.parent.mkdir()
  calls = sample_part(tmp_path, SAMPLE, 'calls.jsonl', slice(0, 1500))
  actions = sample_part(tmp_path, ACTIONS, 'actions.jsonl', slice(0, 300))
  # A store at the path as an earlier release left it: a plain file.
  job(
    'pipelines.contact_center',
    f'--call_events={calls}',
    f'--data_actions={actions}',
    f'--sqlite_path={db}',
  )
  log: List[str] = []
  with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.3'], log=log) as url:
    assert window_sizes(url) == {300_000}
    runs = []
    for window in (60, 120):  # rerun twice: each run has results of its own
      runs.append(
        job(
          str(REPO / 'scripts' / 'run_local.sh'),
          f'--call_events={calls}',
          f'--data_actions={actions}',
          f'--window_seconds={window}',
          env={'SQLITE_PATH': str(db)},
        )
      )
      wait_until(
        lambda w=window: window_sizes(url) == {w * 1000},
        10,
        f'the wallboard did not switch to the run with {window} s windows',
      )
      assert 'store_error' not in get_json(url + 'api/snapshot')
  swaps = [line for run in runs for line in run.stdout.splitlines() if 'sqlite store' in line]
  assert len(swaps) == 2 and all(f'sqlite store {db} is now ' in line for line in swaps)
  assert 'disk I/O error' not in ''.join(run.stderr for run in runs)
  reopened = [line for line in log if 'is another file now' in line]
  assert len(reopened) == 2, log
  # The stable name is a link to the newest run; older runs were removed
  # but the previous one.
  assert db.is_symlink() and len(list((db.parent / 'contact_center.db.runs').glob('*.db'))) == 2


def test_a_failed_run_leaves_the_published_store(tmp_path):
  db = tmp_path / 'contact_center.db'
  calls = sample_part(tmp_path, SAMPLE, 'calls.jsonl', slice(0, 300))
  actions = sample_part(tmp_path, ACTIONS, 'actions.jsonl', slice(0, 100))
  env = {'SQLITE_PATH': str(db)}
  job(
    str(REPO / 'scripts' / 'run_local.sh'),
    f'--call_events={calls}',
    f'--data_actions={actions}',
    env=env,
  )
  published = db.resolve()
  failed = subprocess.run(
    [str(REPO / 'scripts' / 'run_local.sh'), '--call_events=/nonexistent.jsonl'],
    cwd=REPO,
    env={**os.environ, **env},
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert failed.returncode != 0
  assert db.resolve() == published
  assert sorted(p.name for p in published.parent.iterdir()) == [published.name]


def test_publish_refuses_a_missing_run(tmp_path):
  with pytest.raises(FileNotFoundError, match='no such store to publish'):
    publish(str(tmp_path / 'x.db'), str(tmp_path / 'runs' / 'none.db'))


def test_a_job_restarted_on_its_store_keeps_the_earlier_rows(tmp_path):
  # A streaming job restarted (from a checkpoint or not) is given the same
  # --sqlite_path: it upserts on top of what the store has.
  db = tmp_path / 'stream.db'
  first = sample_part(tmp_path, SAMPLE, 'first.jsonl', slice(0, 2500))
  rest = sample_part(tmp_path, SAMPLE, 'rest.jsonl', slice(2500, None))
  actions = sample_part(tmp_path, ACTIONS, 'actions.jsonl', slice(0, 100))
  keys = 'SELECT queue_id, channel, window_start FROM abandon_metrics'
  job(
    'pipelines.contact_center',
    f'--call_events={first}',
    f'--data_actions={actions}',
    f'--sqlite_path={db}',
  )
  with sqlite3.connect(db) as conn:
    before = set(conn.execute(keys))
  identity = os.stat(db).st_ino
  with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.3']) as url:
    job(
      'pipelines.contact_center',
      f'--call_events={rest}',
      f'--data_actions={actions}',
      f'--sqlite_path={db}',
    )
    with sqlite3.connect(db) as conn:
      after = set(conn.execute(keys))
    wait_until(
      lambda: len(get_json(url + 'api/snapshot?tiles=500')['queues']['tiles']) == 8,
      10,
      'the wallboard does not show the restarted job',
    )
  assert before < after
  assert os.stat(db).st_ino == identity
