"""The wallboard at 10, 1,000 and 100,000 queues: response sizes and times.

    .venv/bin/python -m scripts.bench.wallboard [--queues 10 1000 100000]

For each count it writes a SQLite store with that many queues (12 windows
of 5 minutes each, every tenth queue with a chat channel beside voice),
as many interaction channels (6 windows of 10 s) and as many dead-letter
reasons, starts the wallboard's server in this process and prints, per
request, the response size and the best time of `--repeat` tries, each
right after a read of the store (so the page's view is built, not taken
from the cache); the time of one read of the store (the feed's refresh);
and the resident memory of the process after serving. A benchmark, not a
test: tests/test_wallboard_scale.py checks the numbers and the size bound.
"""

import argparse
import contextlib
import http.client
import os
import resource
import sqlite3
import tempfile
import threading
import time
from typing import Iterator, List, Sequence, Tuple

from pipelines.wallboard.queries import Thresholds, WallboardQueries
from pipelines.wallboard.server import SnapshotFeed, WallboardServer, make_server
from pipelines.wallboard.stores import SqliteStore
from transforms.records import AbandonMetrics, DeadLetter, InteractionVolume
from transforms.schema import ABANDON_METRICS, DEAD_LETTERS, INTERACTION_VOLUMES, TABLES
from transforms.sqlite_sink import SqliteSink

WINDOW_MS = 300_000
VOLUME_WINDOW_MS = 10_000
WINDOWS = 12
VOLUME_WINDOWS = 6
# The newest window ends 10 minutes before the store is written.
END_MS = (int(time.time() * 1000) - 600_000) // WINDOW_MS * WINDOW_MS


def queue_id(i: int) -> str:
  return f'Q-{i:06d}'


def _abandon_rows(queues: int, windows: int) -> Iterator[tuple]:
  for q in range(queues):
    for w in range(windows):
      start = END_MS - (w + 1) * WINDOW_MS
      for channel in ('voice', 'chat') if q % 10 == 0 else ('voice',):
        total = 40 + q % 7
        abandoned = (q * 7 + w) % 9
        within = total - abandoned - (q % 5)
        yield AbandonMetrics(
          queue_id(q),
          start,
          start + WINDOW_MS,
          total,
          abandoned,
          0,
          within,
          total * 20.0,
          round(abandoned / total, 4),
          round(within / total, 4),
          0,
          'ON_TIME',
          answered_calls=total - abandoned,
          answered_wait_seconds=(total - abandoned) * 15.0,
          abandon_rate_definition='abandoned_over_offered',
          service_level_definition='answered_within_over_offered',
          channel=channel,
        )


def build_store(path: str, queues: int, windows: int = WINDOWS) -> None:
  """A store with `queues` queues of `windows` windows, as many interaction
  channels and dead-letter reasons (see the module's docstring)."""
  SqliteSink(path).prepare(TABLES.values())
  now_ms = int(time.time() * 1000)
  with contextlib.closing(sqlite3.connect(path)) as conn, conn:

    def insert(table, rows):
      names = [name for name, _ in table.columns]
      conn.executemany(
        f'INSERT INTO {table.name} ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})',
        rows,
      )

    insert(ABANDON_METRICS, _abandon_rows(queues, windows))
    volume_end = END_MS // VOLUME_WINDOW_MS * VOLUME_WINDOW_MS
    insert(
      INTERACTION_VOLUMES,
      (
        InteractionVolume(
          f'channel-{c:06d}',
          volume_end - (w + 1) * VOLUME_WINDOW_MS,
          volume_end - w * VOLUME_WINDOW_MS,
          1 + (c * 13 + w) % 50,
          0,
          'ON_TIME',
        )
        for c in range(queues)
        for w in range(VOLUME_WINDOWS)
      ),
    )
    insert(
      DEAD_LETTERS,
      (
        DeadLetter('cc-call-logs', f'calls.jsonl:{r}', f'reason-{r:06d}', 'x', '{', 1, now_ms)
        for r in range(queues)
      ),
    )


@contextlib.contextmanager
def serving(path: str, groups=None) -> Iterator[Tuple[WallboardServer, SnapshotFeed]]:
  """The wallboard's server over the store at `path`, in this process (its
  feed refreshes only when told)."""
  store = SqliteStore(path)
  queries = WallboardQueries(store, Thresholds(0.05, 0.10, 0.80), 10_000)
  feed = SnapshotFeed(queries, refresh_seconds=3600)
  feed.start()
  server = make_server('127.0.0.1', 0, queries, feed, groups)
  thread = threading.Thread(target=server.serve_forever, kwargs={'poll_interval': 0.05})
  thread.start()
  try:
    yield server, feed
  finally:
    server.shutdown()
    server.server_close()
    feed.stop()
    thread.join()
    store.close()


def fetch(server: WallboardServer, path: str) -> Tuple[int, bytes]:
  """GET `path`: (status, body); of /api/events the first event."""
  conn = http.client.HTTPConnection('127.0.0.1', server.server_address[1], timeout=60)
  try:
    conn.request('GET', path)
    response = conn.getresponse()
    if path.startswith('/api/events'):
      body = b''
      while not body.endswith(b'\n\n'):
        body += response.fp.readline()
      return response.status, body
    return response.status, response.read()
  finally:
    conn.close()


REQUESTS = (
  '/api/snapshot',
  '/api/events',
  '/api/snapshot?group=first-1000',
  '/api/trends?hours=24',
  f'/api/queue?id={queue_id(0)}&hours=24',
)


def measure(queues: int, repeat: int) -> List[Tuple[str, int, float]]:
  """(what, bytes, best seconds) of one store of `queues` queues."""
  with tempfile.TemporaryDirectory() as directory:
    path = os.path.join(directory, 'wallboard.db')
    build_store(path, queues)
    groups = {'first-1000': [queue_id(i) for i in range(min(queues, 1000))]}
    with serving(path, groups) as (server, feed):
      results = []
      refresh = min(_timed(feed.refresh) for _ in range(repeat))
      results.append(('read of the store (refresh)', 0, refresh))
      for request in REQUESTS:
        times, size = [], 0
        for _ in range(repeat):
          feed.refresh()
          started = time.perf_counter()
          status, body = fetch(server, request)
          times.append(time.perf_counter() - started)
          assert status == 200, (request, body[:300])
          size = len(body)
        results.append((request, size, min(times)))
      results.append(('resident memory (MiB)', _resident_mib(), 0.0))
  return results


def _resident_mib() -> int:
  with open('/proc/self/statm', encoding='ascii') as statm:
    return int(statm.read().split()[1]) * resource.getpagesize() // 2**20


def _timed(action) -> float:
  started = time.perf_counter()
  action()
  return time.perf_counter() - started


def main(argv: Sequence[str] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--queues', type=int, nargs='+', default=[10, 1_000, 100_000])
  parser.add_argument('--repeat', type=int, default=3)
  args = parser.parse_args(argv)
  print(f'{"queues":>8}  {"request":<44} {"bytes":>10} {"seconds":>8}')
  for queues in args.queues:
    for what, size, seconds in measure(queues, args.repeat):
      print(f'{queues:>8}  {what:<44} {size:>10,} {seconds:>8.3f}')
  print(f'cores: {os.cpu_count()}')


if __name__ == '__main__':
  main()
