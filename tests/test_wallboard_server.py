"""The wallboard's HTTP server and options: routes, security headers, bad
requests, the event stream, a store that stops answering, the server's own
/metrics."""

import http.client
import json
import logging
import re
import shutil
import subprocess
import threading
import urllib.parse

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from options import deprecation
from pipelines.wallboard import __main__ as wallboard_main
from pipelines.wallboard.config import WallboardConfig
from pipelines.wallboard.queries import Thresholds, WallboardQueries
from pipelines.wallboard.server import SnapshotFeed, make_server
from pipelines.wallboard.stores import SqliteStore, Store
from tests.support.wallboard_helpers import (
  HTML_QUEUE_IMG,
  current_window_start,
  window_row,
  write_page_rows,
)
from transforms.schema import ABANDON_METRICS, TABLES
from transforms.sqlite_sink import SqliteSink, SqliteWriter

START_MS = current_window_start(1_800_000_000)


class SwitchableStore(Store):
  """A store that can be made to fail, as a database going down does."""

  def __init__(self, store: Store):
    self.store = store
    self.down = False

  def _check(self):
    if self.down:
      raise ConnectionError('store down')

  def check(self):
    self._check()
    self.store.check()

  def columns(self, table):
    self._check()
    return self.store.columns(table)

  def latest(self, *args, **kwargs):
    self._check()
    return self.store.latest(*args, **kwargs)

  def newest(self, *args, **kwargs):
    self._check()
    return self.store.newest(*args, **kwargs)

  def count(self, *args, **kwargs):
    self._check()
    return self.store.count(*args, **kwargs)

  def close(self):
    self.store.close()


@pytest.fixture
def served(tmp_path):
  """(host:port, writer, feed, store) of a server over a fresh SQLite store.
  The feed refreshes only when the test says so."""
  db = str(tmp_path / 'results.db')
  SqliteSink(db).prepare(TABLES.values())
  writer = SqliteWriter(db)
  writer.open()
  write_page_rows(writer, START_MS)
  store = SwitchableStore(SqliteStore(db))
  queries = WallboardQueries(store, Thresholds(0.05, 0.1, 0.8), 10_000)
  feed = SnapshotFeed(queries, refresh_seconds=3600)
  server = make_server('127.0.0.1', 0, queries, feed)
  feed.start()
  thread = threading.Thread(
    target=server.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True
  )
  thread.start()
  yield f'127.0.0.1:{server.server_address[1]}', writer, feed, store
  server.shutdown()
  server.server_close()
  feed.stop()
  thread.join()
  store.close()
  writer.close()


def get(address: str, path: str, method: str = 'GET', host: str = None):
  conn = http.client.HTTPConnection(address, timeout=30)
  headers = {} if host is None else {'Host': host}
  conn.request(method, path, headers=headers)
  response = conn.getresponse()
  body = response.read()
  conn.close()
  return response, body


def test_page_and_assets_come_with_strict_headers(served):
  address = served[0]
  response, body = get(address, '/')
  assert response.status == 200
  assert response.getheader('Content-Type') == 'text/html; charset=utf-8'
  csp = response.getheader('Content-Security-Policy')
  assert "script-src 'self'" in csp and "default-src 'none'" in csp
  assert 'unsafe' not in csp
  assert response.getheader('X-Content-Type-Options') == 'nosniff'
  assert response.getheader('X-Frame-Options') == 'DENY'
  assert response.getheader('Server') == 'wallboard'
  html = body.decode()
  assert '<script>' not in html and ' style=' not in html
  assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
  types = {'.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg'}
  assert len(assets) == 5
  for asset in assets:
    response, body = get(address, asset)
    assert response.status == 200, asset
    assert response.getheader('Content-Type').startswith(types[asset[asset.rindex('.') :]]), asset
    assert response.getheader('Content-Security-Policy') == csp
  assert b'innerHTML' not in get(address, '/static/wallboard.js')[1]


def test_snapshot_is_json_with_every_queue(served):
  response, body = get(served[0], '/api/snapshot')
  assert response.status == 200
  assert response.getheader('Content-Type') == 'application/json'
  assert response.getheader('Cache-Control') == 'no-store'
  snapshot = json.loads(body)
  assert {t['queue_id'] for t in snapshot['queues']['tiles']} == {
    'Q-1',
    'Q-2',
    HTML_QUEUE_IMG,
    '"><script>window.__xss=1</script>',
  }


@pytest.mark.parametrize(
  'path, status, message',
  [
    ('/api/trends?hours=0', 400, 'hours must be a whole number from 1 to 24'),
    ('/api/trends?hours=25', 400, 'from 1 to 24'),
    ('/api/trends?hours=1.5', 400, "got '1.5'"),
    ('/api/trends?hours=%D9%A3', 400, 'hours must be'),  # Arabic-Indic 3
    ('/api/trends?hours=', 400, "got ''"),
    ('/api/trends?hours=4&hours=5', 400, "'hours' given twice"),
    ('/api/trends?days=1', 400, "unknown parameter 'days'"),
    ('/api/trends?hours', 400, 'malformed query string'),
    ('/api/queue', 400, 'give the queue'),
    ('/api/queue?id=' + 'x' * 300, 400, 'longer than 256'),
    ('/api/queue?id=Q-404', 404, "no windows for queue 'Q-404'"),
    ('/api/snapshot?x=1', 400, "unknown parameter 'x'"),
    ('/nothing', 404, 'no such page'),
    ('/static/../server.py', 404, 'no such'),
    ('/static/vendor', 404, 'no such file'),
  ],
)
def test_bad_requests_get_a_status_and_a_message(served, path, status, message):
  response, body = get(served[0], path)
  assert response.status == status
  error = json.loads(body)['error']
  assert message in error
  assert 'Traceback' not in error


def test_only_get_is_served(served):
  response, body = get(served[0], '/api/snapshot', method='POST')
  assert response.status == 405
  assert response.getheader('Allow') == 'GET'
  assert json.loads(body) == {'error': 'only GET is served here'}


def test_a_loopback_server_answers_loopback_names_only(served):
  for host in ('localhost:1', '127.0.0.1', '[::1]:8050'):
    assert get(served[0], '/api/snapshot', host=host)[0].status == 200, host
  for host in ('evil.example:8050', 'wallboard.internal', '[', ''):
    response, body = get(served[0], '/api/snapshot', host=host)
    assert response.status == 421, host
    assert 'loopback' in json.loads(body)['error']


def test_queue_detail_and_trends(served):
  response, body = get(
    served[0], '/api/queue?' + urllib.parse.urlencode({'id': HTML_QUEUE_IMG, 'hours': 1})
  )
  assert response.status == 200
  detail = json.loads(body)
  assert detail['queue_id'] == HTML_QUEUE_IMG
  assert [w['abandon_rate'] for w in detail['windows']] == [0.1]
  trends = json.loads(get(served[0], '/api/trends?hours=1')[1])
  assert trends['hours'] == 1 and len(trends['series']) == 4


def read_event(response) -> dict:
  """The next `snapshot` event of a server-sent event stream."""
  fields = {}
  while True:
    line = response.fp.readline().decode()
    assert line, 'the event stream ended'
    if line == '\n':
      if 'data' in fields:
        return fields
      continue
    name, _, value = line.rstrip('\n').partition(': ')
    fields[name] = value


def test_the_event_stream_pushes_what_changed_at_every_refresh(served):
  address, writer, feed, _ = served
  conn = http.client.HTTPConnection(address, timeout=30)
  conn.request('GET', '/api/events')
  response = conn.getresponse()
  assert response.status == 200
  assert response.getheader('Content-Type').startswith('text/event-stream')
  first = read_event(response)
  assert first['event'] == 'snapshot'
  assert len(json.loads(first['data'])['queues']['tiles']) == 4
  writer.upsert(ABANDON_METRICS, [window_row('Q-NEW', START_MS, 40, 2, 30, 400.0)])
  feed.refresh()
  second = read_event(response)
  assert int(second['id']) > int(first['id'])
  assert second['event'] == 'delta'
  delta = json.loads(second['data'])
  # Only the new queue's tile: the others did not change.
  assert [t['queue_id'] for t in delta['queues']['changed']] == ['Q-NEW']
  assert delta['queues']['removed'] == []
  assert 'Q-NEW' in delta['queues']['order'] and len(delta['queues']['order']) == 5
  assert delta['data_version'] != json.loads(first['data'])['data_version']
  assert 'alerts' not in delta and 'volumes' not in delta
  feed.refresh()  # nothing new: the clock only
  third = json.loads(read_event(response)['data'])
  assert set(third) == {'data_version', 'health'}
  conn.close()


def test_a_store_that_fails_keeps_the_last_numbers_and_says_why(served):
  address, _, feed, store = served
  before = json.loads(get(address, '/api/snapshot')[1])
  store.down = True
  feed.refresh()
  during = json.loads(get(address, '/api/snapshot')[1])
  assert during['store_error'] == 'ConnectionError: store down'
  assert during['queues'] == before['queues']
  response, body = get(address, '/api/trends?hours=4')
  assert response.status == 500
  assert json.loads(body) == {'error': 'internal error; the details are in the server log'}
  store.down = False
  feed.refresh()
  assert 'store_error' not in json.loads(get(address, '/api/snapshot')[1])


def config(*flags: str) -> WallboardConfig:
  return WallboardConfig.from_options(PipelineOptions(list(flags)))


def test_options_become_a_frozen_config():
  c = config(
    '--sqlite_path=/x.db',
    '--abandon_rate_warn=4',
    '--abandon_rate_alert=8',
    '--service_level_target=90',
    '--max_out_of_orderness_seconds=7',
    '--port=9000',
  )
  assert c.thresholds == Thresholds(0.04, 0.08, 0.9)
  assert (c.sink, c.sqlite_path, c.cassandra, c.host, c.port) == (
    'sqlite',
    '/x.db',
    None,
    '127.0.0.1',
    9000,
  )
  assert c.max_out_of_orderness_ms == 7000
  with pytest.raises(AttributeError):
    c.port = 1  # pylint: disable=attribute-defined-outside-init


@pytest.mark.parametrize(
  'flags, message',
  [
    (['--abandon_rate_warn=12'], 'is above --abandon_rate_alert=10.0'),
    (['--service_level_target=120'], 'a percentage from 0 to 100'),
    (['--abandon_rate_alert=-1', '--abandon_rate_warn=-2'], 'a percentage'),
    (['--port=70000'], 'a TCP port'),
    (['--refresh_seconds=0'], 'at least 0.2'),
    (['--sink=cassandra', '--cassandra_consistency=ANY'], 'for writes only'),
    (['--sink=cassandra', '--cassandra_keyspace=a;b'], 'keyspace name'),
    (['--sink=kafka'], '--sink=kafka: the wallboard reads a sqlite or cassandra sink'),
  ],
)
def test_bad_options_are_refused_with_the_option_to_fix(flags, message):
  with pytest.raises(ValueError, match=re.escape(message)):
    config(*flags)


@pytest.mark.parametrize(
  'flags, sink',
  [
    ([], 'sqlite'),
    (['--sink=kafka', '--sink=cassandra', '--sink=sqlite'], 'cassandra'),
    (['--sink=kafka', '--store=sqlite'], 'sqlite'),
  ],
)
def test_the_wallboard_reads_the_first_sink_of_the_job_it_can_read(flags, sink):
  assert config(*flags).sink == sink


def test_store_is_an_old_name_of_sink(caplog, monkeypatch):
  monkeypatch.setattr(deprecation, '_REPORTED', set())
  caplog.set_level(logging.WARNING)
  assert config('--store=cassandra').sink == 'cassandra'
  assert config('--store=cassandra').sink == 'cassandra'
  notices = [r.getMessage() for r in caplog.records if r.name == deprecation.__name__]
  assert notices == ['--store is deprecated, use --sink']


def test_the_options_coexist_with_the_job_options():
  # Beam builds one parser of every options class it knows when a job
  # runs: a flag defined twice would break every pipeline of the process.
  PipelineOptions([]).get_all_options()


def test_unknown_flags_and_a_missing_store_stop_with_one_line(tmp_path, capsys):
  with pytest.raises(SystemExit, match="unknown option '--prot=1'"):
    wallboard_main.main(['--prot=1'])
  with pytest.raises(SystemExit, match='no such file; run the job first'):
    wallboard_main.main([f'--sqlite_path={tmp_path / "none.db"}'])
  wallboard_main.main(['--help'])
  assert '--abandon_rate_warn' in capsys.readouterr().out


def _metrics(address: str) -> dict:
  """The wallboard's /metrics as series -> value, checked by promtool."""
  response, body = get(address, '/metrics')
  assert response.status == 200
  assert response.getheader('Content-Type').startswith('text/plain; version=0.0.4')
  promtool = shutil.which('promtool')
  assert promtool, 'promtool not found: run scripts/stack/install_prometheus.sh'
  checked = subprocess.run(
    [promtool, 'check', 'metrics'], input=body, capture_output=True, timeout=60
  )
  assert checked.returncode == 0, checked.stderr.decode()
  return {
    name: float(value)
    for name, value in (
      line.rsplit(' ', 1) for line in body.decode().splitlines() if not line.startswith('#')
    )
  }


def test_metrics_count_requests_by_route_and_status_streams_and_store_reads(served):
  address, _, feed, store = served
  get(address, '/')
  get(address, '/api/snapshot')
  get(address, '/api/queue?id=Q-1&hours=99999999999')  # 400
  for i in range(5):  # a scan of paths adds no series
    get(address, f'/no/such/page/{i}')
  conn = http.client.HTTPConnection(address, timeout=30)
  conn.request('GET', '/api/events')
  stream = conn.getresponse()
  stream.readline()
  store.down = True
  feed.refresh()
  metrics = _metrics(address)
  assert metrics['contact_center_wallboard_requests_total{route="/",status="200"}'] == 1
  assert metrics['contact_center_wallboard_requests_total{route="/api/snapshot",status="200"}'] == 1
  assert metrics['contact_center_wallboard_requests_total{route="/api/queue",status="400"}'] == 1
  assert metrics['contact_center_wallboard_requests_total{route="other",status="404"}'] == 5
  assert metrics['contact_center_wallboard_requests_total{route="/api/events",status="200"}'] == 1
  assert metrics['contact_center_wallboard_open_event_streams'] == 1
  assert metrics['contact_center_wallboard_store_read_seconds_count'] == 2  # start + refresh
  assert metrics['contact_center_wallboard_store_read_seconds_sum'] > 0
  assert metrics['contact_center_wallboard_store_read_errors_total'] == 1
  assert not [name for name in metrics if 'no/such' in name]
  conn.close()
