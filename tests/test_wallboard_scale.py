"""The wallboard of a big contact center and of hostile clients: 100,000
queues, interaction channels and dead-letter reasons within a bounded
response size, filters and queue groups, range-checked parameters, the
connection cap and the whole-request deadline. Times are measured by
scripts/bench/wallboard.py, not here."""

import http.client
import json
import select
import socket
import time
import urllib.parse

import pytest

from pipelines.wallboard import server as server_module
from pipelines.wallboard.config import load_queue_groups
from pipelines.wallboard.queries import COUNT_LIMIT, DEFAULT_TILES, MAX_SERIES
from scripts.bench.wallboard import build_store, queue_id, serving
from tests.test_wallboard_server import read_event

QUEUES = 100_000
MAX_RESPONSE_BYTES = 2_000_000
GROUP = [queue_id(i) for i in range(0, 5_000, 5)]  # 1,000 queues


@pytest.fixture(scope='module')
def big(tmp_path_factory):
  """A server over a store of 100,000 queues (two windows each), channels
  and reasons, with a group of 1,000 queues."""
  path = str(tmp_path_factory.mktemp('big') / 'wallboard.db')
  build_store(path, QUEUES, windows=2)
  with serving(path, {'floor-1': GROUP}) as (server, feed):
    yield server, feed


def get(server, path: str):
  conn = http.client.HTTPConnection('127.0.0.1', server.server_address[1], timeout=60)
  conn.request('GET', path)
  response = conn.getresponse()
  body = response.read()
  conn.close()
  return response.status, body


def get_json(server, path: str) -> dict:
  status, body = get(server, path)
  assert status == 200, body[:300]
  assert len(body) < MAX_RESPONSE_BYTES, (path, len(body))
  return json.loads(body)


def test_the_snapshot_shows_the_worst_queues_and_sums_up_the_rest(big):
  server, feed = big
  snapshot = get_json(server, '/api/snapshot')
  queues = snapshot['queues']
  ranks = feed.current().board.ranks
  assert queues['selected'] == len(ranks) == QUEUES
  worst = sorted(ranks, key=lambda q: ranks[q].key)
  assert [t['queue_id'] for t in queues['tiles']] == worst[:DEFAULT_TILES]
  assert all(t['status'] == 'alert' for t in queues['tiles'])
  rates = [t['abandon_rate'] for t in queues['tiles']]
  assert rates == sorted(rates, reverse=True)
  rest = queues['rest']
  assert rest['queues'] == QUEUES - DEFAULT_TILES
  assert sum(rest['statuses'].values()) == rest['queues']
  assert rest['offered'] == sum(ranks[q].offered for q in worst[DEFAULT_TILES:])
  # The volume chart draws the busiest channels, the counts the largest
  # reasons; both say how many more there are.
  volumes = snapshot['volumes']
  assert len(volumes['series']) == MAX_SERIES and volumes['more'] == QUEUES - MAX_SERIES
  dead = snapshot['health']['dead_letters']
  assert (len(dead['counts']), dead['groups'], dead['total']) == (COUNT_LIMIT, QUEUES, QUEUES)


def test_every_response_stays_small_at_100000_queues(big):
  server, _ = big
  for path in (
    '/api/snapshot?tiles=500',
    '/api/trends?hours=24&tiles=500',
    f'/api/queue?id={queue_id(0)}&hours=24',
    '/api/snapshot?group=floor-1&tiles=500',
    '/api/snapshot?queues=' + ','.join(queue_id(i) for i in range(1000)),
  ):
    get_json(server, path)
  conn = http.client.HTTPConnection('127.0.0.1', server.server_address[1], timeout=60)
  conn.request('GET', '/api/events?tiles=500')
  response = conn.getresponse()
  first = read_event(response)
  conn.close()
  assert len(first['data']) < MAX_RESPONSE_BYTES
  assert len(json.loads(first['data'])['queues']['tiles']) == 500


def test_a_group_or_a_list_of_queues_filters_the_tiles_and_trends(big):
  server, _ = big
  grouped = get_json(server, '/api/snapshot?group=floor-1')['queues']
  assert grouped['selected'] == len(GROUP)
  assert {t['queue_id'] for t in grouped['tiles']} <= set(GROUP)
  chosen = [queue_id(7), queue_id(3), 'Q-NONE']
  listed = get_json(server, '/api/snapshot?queues=' + ','.join(chosen))['queues']
  # Few enough to show all: by queue id, and the unknown one counted.
  assert [t['queue_id'] for t in listed['tiles']] == [queue_id(3), queue_id(7)]
  assert (listed['selected'], listed['missing'], listed['rest']['queues']) == (2, 1, 0)
  trends = get_json(server, '/api/trends?hours=1&queues=' + ','.join(chosen))
  assert [s['key'] for s in trends['series']] == [queue_id(3), queue_id(7)]
  worst = get_json(server, '/api/trends?hours=1&group=floor-1')
  # A line for each of the group's worst queues, in queue id order.
  shown = [t['queue_id'] for t in grouped['tiles']]
  assert [s['key'] for s in worst['series']] == sorted(shown[:MAX_SERIES])


def test_a_drill_down_is_paginated_and_split_by_channel(big):
  server, _ = big
  detail = get_json(server, f'/api/queue?id={queue_id(0)}&hours=24')
  assert (detail['page'], detail['pages'], len(detail['windows'])) == (0, 1, 2)
  [window] = detail['windows'][:1]
  assert sorted(c['channel'] for c in window['channels']) == ['chat', 'voice']
  assert window['offered'] == sum(c['offered'] for c in window['channels'])
  status, body = get(server, f'/api/queue?id={queue_id(0)}&hours=24&page=1')
  assert status == 404 and 'no page 1' in json.loads(body)['error']


@pytest.mark.parametrize(
  'path, message',
  [
    ('/api/trends?hours=' + '9' * 4301, 'hours must be a whole number from 1 to 24'),
    ('/api/trends?hours=' + '0' * 4300 + '4', None),  # leading zeros: 4
    ('/api/queue?id=Q-000001&hours=1&page=' + '1' * 5000, 'page must be a whole number'),
    ('/api/queue?id=Q-000001&page=-1', 'page must be'),
    ('/api/snapshot?tiles=0', 'tiles must be a whole number from 1 to 500'),
    ('/api/snapshot?tiles=501', 'from 1 to 500'),
    ('/api/snapshot?tiles=1e3', "got '1e3'"),
    ('/api/events?tiles=' + '5' * 10_000, 'tiles must be'),
    ('/?tiles=%EF%BC%95', 'tiles must be'),  # a full-width 5
    ('/api/snapshot?group=nope', "no queue group 'nope'; groups: floor-1"),
    ('/api/snapshot?group=floor-1&queues=Q-1', 'not both'),
    ('/api/snapshot?queues=,', 'give queue ids'),
    ('/api/snapshot?queues=' + ','.join(['Q'] * 1001), 'at most 1000 ids'),
    ('/api/snapshot?queues=' + 'Q' * 300, 'longer than 256'),
  ],
)
def test_numeric_and_filter_parameters_are_range_checked(big, path, message):
  server, _ = big
  status, body = get(server, path)
  if message is None:
    assert status == 200
    return
  assert status == 400, body[:200]
  error = json.loads(body)['error']
  assert message in error and len(error) < 300


def test_queue_groups_file_errors_say_what_to_fix(tmp_path):
  path = tmp_path / 'groups.json'
  for content, message in (
    ('{"a": ["Q-1"', 'not JSON'),
    ('["Q-1"]', 'a JSON object of group name'),
    ('{"a": []}', "group 'a' must be a non-empty list"),
    ('{"a": [1]}', "group 'a' must be a non-empty list"),
    ('{"": ["Q-1"]}', 'a group name of 1 to 256 characters'),
  ):
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
      load_queue_groups(str(path))
  with pytest.raises(ValueError, match='No such file'):
    load_queue_groups(str(tmp_path / 'none.json'))
  path.write_text('{"floor 1": ["Q-1", "Q-2", "Q-1"]}')
  assert load_queue_groups(str(path)) == {'floor 1': ('Q-1', 'Q-2')}


def test_a_slow_client_is_cut_off_at_the_request_deadline(big, monkeypatch):
  server, _ = big
  monkeypatch.setattr(server_module, 'REQUEST_DEADLINE_SECONDS', 1.0)
  with socket.create_connection(('127.0.0.1', server.server_address[1]), timeout=10) as sock:
    started = time.monotonic()
    sock.sendall(b'GET /api/snapshot HTTP/1.1\r\n')
    closed = False
    while not closed and time.monotonic() - started < 5:
      # A header line now and then, each well within the per-read timeout.
      time.sleep(0.3)
      try:
        sock.sendall(b'X-Slow: 1\r\n')
        readable, _, _ = select.select([sock], [], [], 0)
        closed = bool(readable) and sock.recv(1) == b''
      except OSError:
        closed = True
  assert closed, 'the slow client was not cut off'
  assert 1.0 <= time.monotonic() - started < 5


def test_connections_beyond_the_cap_are_refused_at_once(big):
  server, _ = big
  assert server.request_queue_size == server_module.LISTEN_BACKLOG >= 128
  cap = server_module.MAX_CONNECTIONS
  held = [
    socket.create_connection(('127.0.0.1', server.server_address[1]), timeout=10)
    for _ in range(cap)
  ]
  try:
    deadline = time.monotonic() + 10
    while server.connections._value and time.monotonic() < deadline:  # pylint: disable=protected-access
      time.sleep(0.05)
    status, body = get(server, '/api/snapshot')
    assert status == 503 and 'connections open' in json.loads(body)['error']
  finally:
    for sock in held:
      sock.close()
  deadline = time.monotonic() + 10
  while get(server, '/api/snapshot')[0] != 200:
    assert time.monotonic() < deadline, 'the server did not take connections again'
    time.sleep(0.1)


def test_an_unknown_queue_with_a_long_hostile_name_is_a_404_not_a_crash(big):
  server, _ = big
  name = 'Q-\u202eLIVE<script>'
  status, body = get(server, '/api/queue?' + urllib.parse.urlencode({'id': name}))
  # The message names it with its invisible character escaped.
  assert status == 404 and "'Q-\\u202eLIVE<script>'" in json.loads(body)['error']
