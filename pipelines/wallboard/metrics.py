"""The wallboard server's own Prometheus metrics (GET /metrics).

What an operator needs to see the wall's server struggle: requests by
route and status, connections refused at the cap, open event streams, and
the reads of the store behind every page (how many, how long, how many
failed). Labels take values from a fixed set only (the routes of
pipelines/wallboard/server.py, HTTP status codes), never from a request's
path or a queue id, so a scan of random URLs cannot grow the series.
The job's own metrics are pipelines/metrics_server.py's.
"""

import collections
import contextlib
import threading
from typing import Dict, Iterator, List, Tuple

from pipelines.metrics_server import family_lines, number
from transforms.operator_metrics import series

PREFIX = 'contact_center_wallboard_'
# The route label of a path that is none of the server's routes.
OTHER_ROUTE = 'other'


class WallboardMetrics:
  """Thread-safe counters of one wallboard server; `exposition()` is the
  Prometheus text format of them."""

  def __init__(self):
    self._lock = threading.Lock()
    self._requests: Dict[Tuple[str, int], int] = collections.Counter()
    self._refused = 0
    self._streams = 0
    self._reads = 0
    self._read_seconds = 0.0
    self._read_errors = 0

  def request(self, route: str, status: int) -> None:
    """One answer of `status` on `route` (a route of the server, or
    OTHER_ROUTE)."""
    with self._lock:
      self._requests[(route, status)] += 1

  def refused(self) -> None:
    """A connection answered 503 at the connection cap."""
    with self._lock:
      self._refused += 1

  @contextlib.contextmanager
  def streaming(self) -> Iterator[None]:
    """Counts an event stream as open while the block runs."""
    with self._lock:
      self._streams += 1
    try:
      yield
    finally:
      with self._lock:
        self._streams -= 1

  def store_read(self, seconds: float, failed: bool) -> None:
    """One read of the store that took `seconds`."""
    with self._lock:
      self._reads += 1
      self._read_seconds += seconds
      self._read_errors += failed

  def exposition(self) -> str:
    """The metrics in the Prometheus text format (version 0.0.4)."""
    with self._lock:
      requests = dict(self._requests)
      refused, streams = self._refused, self._streams
      reads, read_seconds, read_errors = self._reads, self._read_seconds, self._read_errors
    families: List[Tuple[str, str, str, List[str]]] = [
      (
        'requests_total',
        'counter',
        'HTTP requests answered, by route and status.',
        [
          f'{series(PREFIX + "requests_total", route=route, status=str(status))} {count}'
          for (route, status), count in requests.items()
        ],
      ),
      (
        'refused_connections_total',
        'counter',
        'Connections answered 503 because the connection cap was reached.',
        [f'{PREFIX}refused_connections_total {refused}'],
      ),
      (
        'open_event_streams',
        'gauge',
        'Pages holding an event stream (/api/events) open.',
        [f'{PREFIX}open_event_streams {streams}'],
      ),
      (
        'store_read_seconds',
        'summary',
        'Reads of the result store behind every page, and their time.',
        [
          f'{PREFIX}store_read_seconds_count {reads}',
          f'{PREFIX}store_read_seconds_sum {number(read_seconds)}',
        ],
      ),
      (
        'store_read_errors_total',
        'counter',
        'Reads of the result store that failed (the pages keep the last numbers).',
        [f'{PREFIX}store_read_errors_total {read_errors}'],
      ),
    ]
    lines: List[str] = []
    for name, kind, text, samples in families:
      lines += family_lines(PREFIX + name, kind, text, samples)
    return '\n'.join(lines) + '\n'
