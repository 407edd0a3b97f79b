"""The wallboard's web server: one page, its static files and JSON endpoints.

- `GET /`: the page (static/index.html), which loads static/wallboard.js;
- `GET /api/snapshot`: tiles, volumes, alerts and health (queries.py);
- `GET /api/events`: the same snapshot as server-sent events, pushed after
  every read of the store (`--refresh_seconds`);
- `GET /api/trends?hours=H`: abandon rate and calls offered per queue;
- `GET /api/queue?id=Q&hours=H`: one queue's windows and late events.

A background thread reads the store and publishes the snapshot; requests
never wait on each other's queries for it. Every response carries a strict
Content-Security-Policy (scripts and styles only from this server, nothing
inline) and nosniff. Bad parameters get a 400 with a message; an unexpected
failure a 500 whose details stay in the server log. When the server listens
on a loopback address it answers only requests addressed to a loopback name,
so a web page elsewhere cannot read it through DNS rebinding.
"""

import http.server
import ipaddress
import json
import logging
import pathlib
import socket
import socketserver
import threading
import urllib.parse
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

from pipelines.dashboard.queries import MAX_TREND_HOURS, WallboardQueries

_LOGGER = logging.getLogger(__name__)

STATIC_DIR = pathlib.Path(__file__).parent / 'static'
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
MAX_QUEUE_ID_LENGTH = 256
MAX_EVENT_STREAMS = 64
KEEPALIVE_SECONDS = 15
REQUEST_TIMEOUT_SECONDS = 30


def _json(value: Any) -> bytes:
  return json.dumps(value, separators=(',', ':'), allow_nan=False).encode()


class Published(NamedTuple):
  """One snapshot as sent: `sequence` grows with every read of the store."""

  sequence: int
  body: bytes


class SnapshotFeed:
  """Reads `queries.snapshot()` every `refresh_seconds` in a thread and
  wakes the event streams waiting for it.

  When a read fails (the store is down), the last snapshot is published
  again with a `store_error`, so pages keep their numbers and say why they
  stopped moving.
  """

  def __init__(self, queries: WallboardQueries, refresh_seconds: float):
    self._queries = queries
    self._refresh = refresh_seconds
    self._changed = threading.Condition()
    self._published = Published(0, b'')
    self._last_good: Optional[Dict[str, Any]] = None
    self._failing = False
    self._stopped = threading.Event()
    self._thread = threading.Thread(target=self._run, name='wallboard-feed', daemon=True)

  def start(self) -> None:
    """Publishes a first snapshot, then keeps refreshing in the thread."""
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
    """The first snapshot after `sequence`, or the current one after
    `timeout` seconds or when the feed stops."""
    with self._changed:
      self._changed.wait_for(lambda: self._published.sequence > sequence or self.stopped, timeout)
      return self._published

  def refresh(self) -> None:
    """Reads the store once and publishes the result."""
    try:
      snapshot = self._queries.snapshot()
      body = _json(snapshot)  # inside: a NaN read from the store raises
      self._last_good = snapshot
      if self._failing:
        _LOGGER.info('the store is readable again')
      self._failing = False
    except Exception as e:  # pylint: disable=broad-except
      if not self._failing:  # one traceback per outage, not one per read
        _LOGGER.exception('reading the store failed; retrying every %.1f s', self._refresh)
      self._failing = True
      body = _json({**(self._last_good or {}), 'store_error': f'{type(e).__name__}: {e}'[:300]})
    with self._changed:
      self._published = Published(self._published.sequence + 1, body)
      self._changed.notify_all()

  def _run(self) -> None:
    while not self._stopped.wait(self._refresh):
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


def _hours(params: Dict[str, str]) -> int:
  value = params.get('hours', str(DEFAULT_HOURS))
  if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_TREND_HOURS):
    raise BadRequest(
      400, f'hours must be a whole number from 1 to {MAX_TREND_HOURS}, got {value[:40]!r}'
    )
  return int(value)


def _queue_id(params: Dict[str, str]) -> str:
  value = params.get('id')
  if not value:
    raise BadRequest(400, 'give the queue: /api/queue?id=QUEUE_ID')
  if len(value) > MAX_QUEUE_ID_LENGTH:
    raise BadRequest(400, f'queue id longer than {MAX_QUEUE_ID_LENGTH} characters')
  return value


def _is_loopback(host: str) -> bool:
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return host == 'localhost'


class WallboardServer(http.server.ThreadingHTTPServer):
  """Serves the page and the API of one `WallboardQueries`."""

  daemon_threads = True

  def __init__(self, address: Tuple[str, int], queries: WallboardQueries, feed: SnapshotFeed):
    if ':' in address[0]:
      self.address_family = socket.AF_INET6
    self.queries = queries
    self.feed = feed
    self.event_streams = threading.BoundedSemaphore(MAX_EVENT_STREAMS)
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

  @property
  def url(self) -> str:
    host, port = self.server_address[:2]
    return f'http://{f"[{host}]" if ":" in host else host}:{port}/'


class _Handler(http.server.BaseHTTPRequestHandler):
  server: WallboardServer
  timeout = REQUEST_TIMEOUT_SECONDS

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

  def _route(self, path: str) -> Callable[[str], None]:
    routes = {
      '/': self._page,
      '/api/snapshot': self._snapshot,
      '/api/events': self._events,
      '/api/trends': self._trends,
      '/api/queue': self._queue,
    }
    if path in routes:
      return routes[path]
    if path.startswith('/static/'):
      return lambda query: self._static(path[len('/static/') :], query)
    raise BadRequest(404, f'no such page {path[:80]!r}')

  def _page(self, query: str) -> None:
    self._static('index.html', query)

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
    _params(query, ())
    self._send(self.server.feed.current().body, 'application/json')

  def _trends(self, query: str) -> None:
    hours = _hours(_params(query, ('hours',)))
    self._send_json(self.server.queries.queue_trends(hours))

  def _queue(self, query: str) -> None:
    params = _params(query, ('id', 'hours'))
    queue_id, hours = _queue_id(params), _hours(params)
    if not self.server.queries.queue_exists(queue_id):
      raise BadRequest(404, f'no windows for queue {queue_id[:80]!r}')
    self._send_json(self.server.queries.queue_detail(queue_id, hours))

  def _events(self, query: str) -> None:
    _params(query, ())
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
      feed = self.server.feed
      published = feed.current()
      self._write_event(published)
      while not feed.stopped:
        newer = feed.wait_newer(published.sequence, KEEPALIVE_SECONDS)
        if newer.sequence == published.sequence:
          self.wfile.write(b': keep-alive\n\n')  # proxies close idle streams
        else:
          published = newer
          self._write_event(published)
        self.wfile.flush()
    finally:
      self.server.event_streams.release()

  def _write_event(self, published: Published) -> None:
    # The JSON holds no raw newline (json.dumps escapes them), so it is
    # one `data:` line.
    self.wfile.write(
      b'retry: 3000\nid: %d\nevent: snapshot\ndata: %s\n\n' % (published.sequence, published.body)
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
  host: str, port: int, queries: WallboardQueries, feed: SnapshotFeed
) -> WallboardServer:
  """A bound server (port 0: any free port, see `.url`); call
  `serve_forever()`."""
  return WallboardServer((host, port), queries, feed)
