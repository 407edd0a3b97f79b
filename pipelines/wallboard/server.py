"""The wallboard's web server: one page, its static files and JSON endpoints.

- `GET /`: the page (static/index.html), which loads static/wallboard.js;
- `GET /api/snapshot`: the active alerts, tiles (with each queue's live
  figures: contacts waiting, longest wait; its agents by state; its
  figures today), the staffing panel, volumes, pattern alerts and health
  (queries.py);
- `GET /api/events`: the same as server-sent events: the whole view first,
  then after every read of the store (`--refresh_seconds`) what changed;
- `GET /api/trends?hours=H`: abandon rate and calls offered of the worst
  queues of the view, and occupancy and AHT of its worst queues with
  agents (`agents`);
- `GET /api/queue?id=Q&hours=H&page=P`: one queue's windows, late events,
  waiting contacts and agents by state per channel;
- `GET /api/alert?rule=R&queue=Q&channel=C`: one alert's state and its
  newest notifications with their deliveries;
- `GET /api/window?queue_id=Q&channel=C&window_start=MS&contacts=abandoned|all`:
  one window's figures, its abandoned (or all) contacts with their waits
  and its revisions;
- `GET /metrics`: the server's own metrics for Prometheus (metrics.py).

The page, the snapshot, the events and the trends take a filter:
`queues=Q1,Q2` or `group=G` (a group of `--queue_groups`), and `tiles=N`
(how many tiles at most; beyond, the worst N and a summary of the rest).

A background thread reads the store and publishes a `Board`; requests
build their view of it (cached per read and filter) and never wait on each
other's queries for it. Connections are capped, each has a whole-request
deadline, and the listen backlog takes a wall of screens reconnecting at
once. Every response carries a strict
Content-Security-Policy (scripts and styles only from this server, nothing
inline) and nosniff. Bad parameters get a 400 with a message; an unexpected
failure a 500 whose details stay in the server log. When the server listens
on a loopback address it answers only requests addressed to a loopback name,
so a web page elsewhere cannot read it through DNS rebinding.
"""

import collections
import http.server
import ipaddress
import json
import logging
import pathlib
import socket
import socketserver
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Sequence, Tuple

from pipelines.metrics_server import CONTENT_TYPE as METRICS_CONTENT_TYPE
from pipelines.wallboard.metrics import OTHER_ROUTE, WallboardMetrics
from pipelines.wallboard.queries import (
  CONTACT_FILTERS,
  DEFAULT_TILES,
  MAX_SERIES,
  MAX_TEXT,
  MAX_TILES,
  MAX_TREND_HOURS,
  MAX_WHOLE,
  Board,
  WallboardQueries,
)

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = pathlib.Path(__file__).parent / 'static'
STATIC_ROUTE = '/static/'
# The routes of _Handler._route, the only values of the metrics' route label.
ROUTES = (
  '/',
  '/api/snapshot',
  '/api/events',
  '/api/trends',
  '/api/queue',
  '/api/alert',
  '/api/window',
  '/metrics',
)
CONTENT_TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '': 'text/plain; charset=utf-8',  # LICENSE
}
SECURITY_HEADERS = (
  (
    'Content-Security-Policy',
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
  ),
  ('X-Content-Type-Options', 'nosniff'),
  ('X-Frame-Options', 'DENY'),
  ('Referrer-Policy', 'no-referrer'),
  ('Cross-Origin-Opener-Policy', 'same-origin'),
  ('Cross-Origin-Resource-Policy', 'same-origin'),
)
DEFAULT_HOURS = 4
MAX_QUEUE_ID_LENGTH = MAX_TEXT
MAX_FILTER_QUEUES = 1_000
MAX_PAGE = 10_000
# A wall of screens: every page holds an event stream and fetches a few
# more things at a time.
MAX_EVENT_STREAMS = 200
MAX_CONNECTIONS = 256
LISTEN_BACKLOG = 256
KEEPALIVE_SECONDS = 15
# Per read or write of a socket, and for a whole request (all but an
# event stream, once it streams): a client that trickles bytes is cut off.
REQUEST_TIMEOUT_SECONDS = 10
REQUEST_DEADLINE_SECONDS = 30
# Views kept per (read, filter): pages of the same filter share one.
VIEW_CACHE_SIZE = 64


def _json(value: Any) -> bytes:
  return json.dumps(value, separators=(',', ':'), allow_nan=False).encode()


class Published(NamedTuple):
  """One read of the store: `sequence` grows with every read; `board` is
  the last good read (None before any), `error` why this read failed."""

  sequence: int
  board: Optional[Board]
  error: Optional[str]


class Filter(NamedTuple):
  """A page's choice of queues (None: all) and its number of tiles."""

  queues: Optional[Tuple[str, ...]]
  tiles: int


class SnapshotFeed:
  """Reads `queries.read()` every `refresh_seconds` in a thread (or as
  often as a read takes, if longer, so reading a big store never takes
  more than half a core) and wakes the event streams waiting for it.

  When a read fails (the store is down or being replaced), the last board
  is published again with an `error`, so pages keep their numbers and say
  why they stopped moving.
  """

  def __init__(self, queries: WallboardQueries, refresh_seconds: float):
    self._queries = queries
    self._refresh = refresh_seconds
    self._changed = threading.Condition()
    self._published = Published(0, None, None)
    self._views: 'collections.OrderedDict[Tuple[int, Filter], Dict[str, Any]]' = (
      collections.OrderedDict()
    )
    self._views_lock = threading.Lock()
    self._failing = False
    self._read_seconds = 0.0
    self.metrics = WallboardMetrics()
    self._stopped = threading.Event()
    self._thread = threading.Thread(target=self._run, name='wallboard-feed', daemon=True)

  def start(self) -> None:
    """Publishes a first read, then keeps refreshing in the thread."""
    self.refresh()
    self._thread.start()

  def stop(self) -> None:
    self._stopped.set()
    with self._changed:
      self._changed.notify_all()
    if self._thread.is_alive():
      self._thread.join()

  @property
  def stopped(self) -> bool:
    return self._stopped.is_set()

  def current(self) -> Published:
    with self._changed:
      return self._published

  def wait_newer(self, sequence: int, timeout: float) -> Published:
    """The first read after `sequence`, or the current one after
    `timeout` seconds or when the feed stops."""
    with self._changed:
      self._changed.wait_for(lambda: self._published.sequence > sequence or self.stopped, timeout)
      return self._published

  def view(self, published: Published, page: Filter) -> Dict[str, Any]:
    """`queries.view` of a published read for a page's filter (shared by
    the pages of the same filter), with `store_error` when the read
    failed."""
    key = (published.sequence, page)
    with self._views_lock:
      cached = self._views.get(key)
    if cached is None:
      cached = {}
      if published.board is not None:
        cached = self._queries.view(published.board, page.queues, page.tiles)
      if published.error:
        cached = {**cached, 'store_error': published.error}
      with self._views_lock:
        self._views[key] = cached
        while len(self._views) > VIEW_CACHE_SIZE:
          self._views.popitem(last=False)
    return cached

  def refresh(self) -> None:
    """Reads the store once and publishes the result."""
    started = time.monotonic()
    board, error = self._published.board, None
    try:
      board = self._queries.read()
      if self._failing:
        _LOGGER.info('the store is readable again')
      self._failing = False
    except Exception as e:  # pylint: disable=broad-except
      if not self._failing:  # one traceback per outage, not one per read
        _LOGGER.exception('reading the store failed; retrying every %.1f s', self._refresh)
      self._failing = True
      error = f'{type(e).__name__}: {e}'[:300]
    self._read_seconds = time.monotonic() - started
    self.metrics.store_read(self._read_seconds, error is not None)
    with self._changed:
      self._published = Published(self._published.sequence + 1, board, error)
      self._changed.notify_all()

  def _run(self) -> None:
    while not self._stopped.wait(max(self._refresh, self._read_seconds)):
      self.refresh()


class BadRequest(ValueError):
  """A request the server refuses; the message is shown to the caller."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status


def _params(query: str, allowed: Tuple[str, ...]) -> Dict[str, str]:
  """The query string as name -> value; raises BadRequest for unknown,
  repeated or malformed parameters."""
  try:
    pairs = urllib.parse.parse_qsl(
      query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=len(allowed) + 1
    )
  except ValueError:
    raise BadRequest(400, 'malformed query string') from None
  params: Dict[str, str] = {}
  for name, value in pairs:
    if name not in allowed:
      raise BadRequest(
        400, f'unknown parameter {name[:40]!r}; this endpoint takes {", ".join(allowed) or "none"}'
      )
    if name in params:
      raise BadRequest(400, f'parameter {name!r} given twice')
    params[name] = value
  return params


def _whole_number(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
  """The parameter `name` (or `default`) as an int from `low` to `high`;
  BadRequest otherwise. Digits are counted before converting: Python
  refuses to convert thousands of them."""
  value = params.get(name, str(default))
  digits = value.lstrip('0') or '0'
  if not (
    value.isascii()
    and value.isdigit()
    and len(digits) <= len(str(high))
    and low <= int(digits) <= high
  ):
    raise BadRequest(400, f'{name} must be a whole number from {low} to {high}, got {value[:40]!r}')
  return int(digits)


def _hours(params: Mapping[str, str]) -> int:
  return _whole_number(params, 'hours', DEFAULT_HOURS, 1, MAX_TREND_HOURS)


FILTER_PARAMS = ('queues', 'group', 'tiles')


def _filter(params: Mapping[str, str], groups: Mapping[str, Sequence[str]]) -> Filter:
  """A page's filter from `queues=Q1,Q2` or `group=G`, and `tiles=N`."""
  tiles = _whole_number(params, 'tiles', DEFAULT_TILES, 1, MAX_TILES)
  if 'queues' in params and 'group' in params:
    raise BadRequest(400, 'give queues or group, not both')
  if 'group' in params:
    name = params['group']
    if name not in groups:
      known = ', '.join(sorted(groups)[:10]) or 'none: start the wallboard with --queue_groups'
      raise BadRequest(400, f'no queue group {name[:80]!r}; groups: {known}')
    return Filter(tuple(groups[name]), tiles)
  if 'queues' in params:
    queues = tuple(q for q in params['queues'].split(',') if q)
    if not queues:
      raise BadRequest(400, 'queues: give queue ids separated by commas')
    if len(queues) > MAX_FILTER_QUEUES:
      raise BadRequest(
        400, f'queues: at most {MAX_FILTER_QUEUES} ids, got {len(queues)}; use a group'
      )
    if max(len(q) for q in queues) > MAX_QUEUE_ID_LENGTH:
      raise BadRequest(400, f'queues: an id longer than {MAX_QUEUE_ID_LENGTH} characters')
    return Filter(queues, tiles)
  return Filter(None, tiles)


def _queue_id(params: Dict[str, str]) -> str:
  value = params.get('id')
  if not value:
    raise BadRequest(400, 'give the queue: /api/queue?id=QUEUE_ID')
  if len(value) > MAX_QUEUE_ID_LENGTH:
    raise BadRequest(400, f'queue id longer than {MAX_QUEUE_ID_LENGTH} characters')
  return value


ALERT_PARAMS = ('rule', 'queue', 'channel')


def _alert_key(params: Mapping[str, str]) -> Tuple[str, str, str]:
  """(rule, queue id, channel) of /api/alert; all three are needed (a
  job-wide alert's queue and channel are '*')."""
  missing = [name for name in ALERT_PARAMS if not params.get(name)]
  if missing:
    raise BadRequest(400, 'give the alert: /api/alert?rule=RULE&queue=QUEUE_ID&channel=CHANNEL')
  if max(len(params[name]) for name in ALERT_PARAMS) > MAX_TEXT:
    raise BadRequest(400, f'rule, queue and channel are at most {MAX_TEXT} characters')
  rule, queue, channel = (params[name] for name in ALERT_PARAMS)
  return rule, queue, channel


WINDOW_PARAMS = ('queue_id', 'channel', 'window_start', 'contacts')


def _window_key(params: Mapping[str, str]) -> Tuple[str, str, int, str]:
  """(queue id, channel, window start, which contacts) of /api/window;
  the first three are needed, contacts is 'abandoned' (the default) or
  'all'."""
  if not all(params.get(name) for name in WINDOW_PARAMS[:3]):
    raise BadRequest(
      400, 'give the window: /api/window?queue_id=QUEUE_ID&channel=CHANNEL&window_start=EPOCH_MS'
    )
  if max(len(params[name]) for name in WINDOW_PARAMS[:2]) > MAX_TEXT:
    raise BadRequest(400, f'queue_id and channel are at most {MAX_TEXT} characters')
  start = _whole_number(params, 'window_start', 0, 0, MAX_WHOLE)
  contacts = params.get('contacts', CONTACT_FILTERS[0])
  if contacts not in CONTACT_FILTERS:
    raise BadRequest(400, f'contacts must be {" or ".join(CONTACT_FILTERS)}, got {contacts[:40]!r}')
  return params['queue_id'], params['channel'], start, contacts


def _route_label(request_path: str) -> str:
  """The route a request path is served by, for the metrics' label."""
  path = urllib.parse.urlsplit(request_path).path
  if path in ROUTES:
    return path
  return STATIC_ROUTE if path.startswith(STATIC_ROUTE) else OTHER_ROUTE


def _is_loopback(host: str) -> bool:
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return host == 'localhost'


class WallboardServer(http.server.ThreadingHTTPServer):
  """Serves the page and the API of one `WallboardQueries`; `groups` are
  the queue groups of `?group=`."""

  daemon_threads = True
  request_queue_size = LISTEN_BACKLOG

  def __init__(
    self,
    address: Tuple[str, int],
    queries: WallboardQueries,
    feed: SnapshotFeed,
    groups: Optional[Mapping[str, Sequence[str]]] = None,
  ):
    if ':' in address[0]:
      self.address_family = socket.AF_INET6
    self.queries = queries
    self.feed = feed
    self.groups = dict(groups or {})
    self.event_streams = threading.BoundedSemaphore(MAX_EVENT_STREAMS)
    self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
    # Loaded once: the only files served, whatever path is asked for.
    self.static: Dict[str, bytes] = {
      path.relative_to(STATIC_DIR).as_posix(): path.read_bytes()
      for path in STATIC_DIR.rglob('*')
      if path.is_file()
    }
    super().__init__(address, _Handler)
    self.loopback_only = _is_loopback(address[0])

  def server_bind(self) -> None:
    # HTTPServer.server_bind also resolves the host's FQDN, which waits on
    # DNS; the name is not used.
    socketserver.TCPServer.server_bind(self)
    self.server_name, self.server_port = self.server_address[:2]

  def process_request(self, request: socket.socket, client_address: Any) -> None:
    # Beyond the cap a connection is answered at once, without a thread.
    if not self.connections.acquire(blocking=False):
      self.feed.metrics.refused()
      try:
        request.settimeout(1)
        request.sendall(_refusal())
      except OSError:
        pass
      self.shutdown_request(request)
      return
    try:
      super().process_request(request, client_address)
    except BaseException:
      self.connections.release()
      raise

  def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
    try:
      super().process_request_thread(request, client_address)
    finally:
      self.connections.release()

  @property
  def url(self) -> str:
    host, port = self.server_address[:2]
    return f'http://{f"[{host}]" if ":" in host else host}:{port}/'


def _refusal() -> bytes:
  body = _json({'error': f'more than {MAX_CONNECTIONS} connections open; retry shortly'})
  return (
    b'HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n'
    b'Retry-After: 2\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' % (len(body), body)
  )


def _delta(before: Dict[str, Any], after: Dict[str, Any]) -> Dict[str, Any]:
  """What changed from view `before` to view `after`: the sections that
  changed, and of the tiles only those that changed (`changed`), the ids
  no longer shown (`removed`) and the order of all shown (`order`)."""
  delta = {
    name: value for name, value in after.items() if name != 'queues' and before.get(name) != value
  }
  delta['data_version'] = after.get('data_version')
  delta['health'] = after.get('health')  # the clock moved
  if 'store_error' in before and 'store_error' not in after:
    delta['store_error'] = None
  old, new = before.get('queues'), after.get('queues')
  if new is not None and old != new:
    shown = {tile['queue_id']: tile for tile in (old or {}).get('tiles', [])}
    delta['queues'] = {
      **{name: value for name, value in new.items() if name != 'tiles'},
      'changed': [tile for tile in new['tiles'] if shown.get(tile['queue_id']) != tile],
      'removed': sorted(set(shown) - {tile['queue_id'] for tile in new['tiles']}),
      'order': [tile['queue_id'] for tile in new['tiles']],
    }
  return delta


class _Handler(http.server.BaseHTTPRequestHandler):
  server: WallboardServer
  timeout = REQUEST_TIMEOUT_SECONDS

  def setup(self) -> None:
    super().setup()
    # The whole request, headers to last byte: a per-read timeout alone
    # lets a client that sends a byte now and then hold the thread forever.
    self._deadline = threading.Timer(REQUEST_DEADLINE_SECONDS, self._cut_off)
    self._deadline.daemon = True
    self._deadline.start()

  def _cut_off(self) -> None:
    try:
      self.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
      pass

  def finish(self) -> None:
    self._deadline.cancel()
    try:
      super().finish()
    except OSError:
      pass  # cut off mid-response

  def version_string(self) -> str:
    return 'wallboard'  # not the Python version

  def end_headers(self) -> None:
    for name, value in SECURITY_HEADERS:
      self.send_header(name, value)
    super().end_headers()

  # pylint: disable-next=redefined-builtin
  def log_message(self, format: str, *args: Any) -> None:
    _LOGGER.debug('%s %s', self.address_string(), format % args)

  def do_GET(self) -> None:
    url = urllib.parse.urlsplit(self.path)
    try:
      self._check_host()
      route = self._route(url.path)
      route(url.query)
    except BadRequest as e:
      self._send_json({'error': str(e)}, e.status)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
      pass  # the client went away or stopped reading
    except Exception:  # pylint: disable=broad-except
      _LOGGER.exception('GET %s failed', url.path)
      self._send_json({'error': 'internal error; the details are in the server log'}, 500)

  def _method_not_allowed(self) -> None:
    self._send_json({'error': 'only GET is served here'}, 405, extra=(('Allow', 'GET'),))

  do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _method_not_allowed

  def _check_host(self) -> None:
    if not self.server.loopback_only:
      return
    try:
      host = urllib.parse.urlsplit('//' + self.headers.get('Host', '')).hostname
    except ValueError:  # e.g. an unclosed '[' of an IPv6 address
      host = None
    if not (host and _is_loopback(host)):
      raise BadRequest(
        421,
        'this wallboard listens on a loopback address and answers '
        'requests for localhost or 127.0.0.1 only',
      )

  def send_response(self, code: int, message: Optional[str] = None) -> None:
    self.server.feed.metrics.request(_route_label(self.path), code)
    super().send_response(code, message)

  def _route(self, path: str) -> Callable[[str], None]:
    routes = {
      '/': self._page,
      '/api/snapshot': self._snapshot,
      '/api/events': self._events,
      '/api/trends': self._trends,
      '/api/queue': self._queue,
      '/api/alert': self._alert,
      '/api/window': self._window,
      '/metrics': self._metrics,
    }
    if path in routes:
      return routes[path]
    if path.startswith(STATIC_ROUTE):
      return lambda query: self._static(path[len(STATIC_ROUTE) :], query)
    raise BadRequest(404, f'no such page {path[:80]!r}')

  def _metrics(self, query: str) -> None:
    _params(query, ())
    self._send(self.server.feed.metrics.exposition().encode('utf-8'), METRICS_CONTENT_TYPE)

  def _filter(self, query: str, *extra: str) -> Tuple[Filter, Dict[str, str]]:
    params = _params(query, (*FILTER_PARAMS, *extra))
    return _filter(params, self.server.groups), params

  def _page(self, query: str) -> None:
    self._filter(query)  # the page's script passes them on to the API
    self._static('index.html', '')

  def _static(self, name: str, query: str) -> None:
    _params(query, ())
    body = self.server.static.get(name)
    if body is None:
      raise BadRequest(404, f'no such file {name[:80]!r}')
    self._send(
      body,
      CONTENT_TYPES.get(pathlib.PurePosixPath(name).suffix, 'application/octet-stream'),
      cache='no-cache',
    )

  def _snapshot(self, query: str) -> None:
    page, _ = self._filter(query)
    feed = self.server.feed
    self._send_json(feed.view(feed.current(), page))

  def _trends(self, query: str) -> None:
    page, params = self._filter(query, 'hours')
    hours = _hours(params)
    board = self.server.feed.current().board
    if board is None:
      raise BadRequest(503, 'the store has not been read yet; retry shortly')
    queries = self.server.queries
    # A line for each of the worst queues of the view.
    queue_ids = sorted(queries.worst(board, page.queues, MAX_SERIES))
    trends = queries.queue_trends(hours, queue_ids, board.newest_window_end)
    # Occupancy and AHT over the same hours, of the worst queues with agents.
    staffed = sorted(queries.worst_staffed(board, page.queues, MAX_SERIES))
    trends['agents'] = queries.agent_trends(hours, staffed, board.newest_window_end)
    self._send_json(trends)

  def _queue(self, query: str) -> None:
    params = _params(query, ('id', 'hours', 'page'))
    queue_id, hours = _queue_id(params), _hours(params)
    page = _whole_number(params, 'page', 0, 0, MAX_PAGE)
    if not self.server.queries.queue_exists(queue_id):
      raise BadRequest(404, f'no windows for queue {queue_id[:80]!r}')
    detail = self.server.queries.queue_detail(queue_id, hours, page)
    if page and page >= detail['pages']:
      raise BadRequest(404, f'no page {page}: the queue has {detail["pages"]} pages of windows')
    self._send_json(detail)

  def _alert(self, query: str) -> None:
    rule, queue, channel = _alert_key(_params(query, ALERT_PARAMS))
    history = self.server.queries.alert_history(rule, queue, channel)
    if history is None:
      raise BadRequest(404, f'no alert {rule[:80]!r} for queue {queue[:80]!r}, {channel[:40]!r}')
    self._send_json(history)

  def _window(self, query: str) -> None:
    queue_id, channel, start, contacts = _window_key(_params(query, WINDOW_PARAMS))
    detail = self.server.queries.window_detail(queue_id, channel, start, contacts)
    if detail is None:
      raise BadRequest(
        404, f'no window at {start} for queue {queue_id[:80]!r}, channel {channel[:40]!r}'
      )
    self._send_json(detail)

  def _events(self, query: str) -> None:
    page, _ = self._filter(query)
    if not self.server.event_streams.acquire(blocking=False):
      raise BadRequest(
        503, f'more than {MAX_EVENT_STREAMS} pages are streaming; poll /api/snapshot instead'
      )
    try:
      self.send_response(200)
      self.send_header('Content-Type', 'text/event-stream; charset=utf-8')
      self.send_header('Cache-Control', 'no-store')
      self.end_headers()
      self.close_connection = True
      # A stream lives on: the per-write timeout bounds a stalled reader.
      self._deadline.cancel()
      feed = self.server.feed
      with feed.metrics.streaming():
        published = feed.current()
        view = feed.view(published, page)
        self._write_event(published.sequence, 'snapshot', view)
        while not feed.stopped:
          newer = feed.wait_newer(published.sequence, KEEPALIVE_SECONDS)
          if newer.sequence == published.sequence:
            self.wfile.write(b': keep-alive\n\n')  # proxies close idle streams
          else:
            published, before = newer, view
            view = feed.view(published, page)
            self._write_event(published.sequence, 'delta', _delta(before, view))
          self.wfile.flush()
    finally:
      self.server.event_streams.release()

  def _write_event(self, sequence: int, name: str, value: Any) -> None:
    # The JSON holds no raw newline (json.dumps escapes them), so it is
    # one `data:` line.
    self.wfile.write(
      b'retry: 3000\nid: %d\nevent: %s\ndata: %s\n\n' % (sequence, name.encode(), _json(value))
    )

  def _send_json(
    self, value: Any, status: int = 200, extra: Tuple[Tuple[str, str], ...] = ()
  ) -> None:
    self._send(_json(value), 'application/json', status, extra=extra)

  def _send(
    self,
    body: bytes,
    content_type: str,
    status: int = 200,
    cache: str = 'no-store',
    extra: Tuple[Tuple[str, str], ...] = (),
  ) -> None:
    self.send_response(status)
    self.send_header('Content-Type', content_type)
    self.send_header('Content-Length', str(len(body)))
    self.send_header('Cache-Control', cache)
    for name, value in extra:
      self.send_header(name, value)
    self.end_headers()
    if self.command != 'HEAD':
      self.wfile.write(body)


def make_server(
  host: str,
  port: int,
  queries: WallboardQueries,
  feed: SnapshotFeed,
  groups: Optional[Mapping[str, Sequence[str]]] = None,
) -> WallboardServer:
  """A bound server (port 0: any free port, see `.url`); call
  `serve_forever()`."""
  return WallboardServer((host, port), queries, feed, groups)
