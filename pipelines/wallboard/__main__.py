"""python -m pipelines.wallboard: serves the SLA wallboard until stopped.

    python -m pipelines.wallboard --sqlite_path=output/contact_center.db
    python -m pipelines.wallboard --sink=cassandra --cassandra_hosts=HOST

Prints the page's address once it listens; `--help` lists the options.
Exits with a one-line message (no traceback) on bad options or a store it
cannot open.
"""

import logging
import signal
import sys
from typing import List, Optional

from apache_beam.options.pipeline_options import PipelineOptions
from cassandra.cluster import NoHostAvailable

from options import options_parser
from pipelines.wallboard.config import OPTIONS, WallboardConfig
from pipelines.wallboard.queries import WallboardQueries
from pipelines.wallboard.server import SnapshotFeed, make_server
from pipelines.wallboard.stores import StoreError

PROG = 'python -m pipelines.wallboard'
DESCRIPTION = (
  "The live SLA wallboard over the job's result tables. Give it the job's "
  'flags: it reads the first --sink it can (sqlite: the file of '
  '--sqlite_path; cassandra: the keyspace of the --cassandra_* connection '
  'options, their write settings ignored) and needs '
  '--max_out_of_orderness_seconds as the job had it.'
)


def serve(config: WallboardConfig) -> None:
  """Opens the store and serves the page until interrupted."""
  store = config.open_store()
  # A stop by the service manager (SIGTERM) cleans up like Ctrl-C.
  previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
  try:
    queries = WallboardQueries(store, config.thresholds, config.max_out_of_orderness_ms)
    feed = SnapshotFeed(queries, config.refresh_seconds)
    server = make_server(config.host, config.port, queries, feed, config.queue_groups)
    feed.start()
    try:
      print(f'Wallboard on {server.url} (Ctrl-C stops it)', flush=True)
      server.serve_forever()
    finally:
      server.server_close()
      feed.stop()
  finally:
    signal.signal(signal.SIGTERM, previous)
    store.close()


def main(argv: Optional[List[str]] = None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  parser = options_parser(OPTIONS, PROG, DESCRIPTION)
  if {'-h', '--help'} & set(argv):
    print(parser.format_help())
    return
  _, unknown = parser.parse_known_args(argv)
  if unknown:
    sys.exit(f'error: unknown option {unknown[0]!r} (see --help)')
  # force: importing Beam already gave the root logger a handler at WARNING,
  # which would swallow the INFO lines (store reopened, readable again).
  logging.basicConfig(
    level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s', force=True
  )
  try:
    serve(WallboardConfig.from_options(PipelineOptions(argv)))
  except KeyboardInterrupt:
    pass
  except (ValueError, StoreError, NoHostAvailable, OSError) as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  main()
