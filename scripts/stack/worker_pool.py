"""Beam's Python SDK worker pool (EXTERNAL environment) on one address only.

    python -m scripts.stack.worker_pool --host=127.0.0.1 --service_port=50000

Beam's `apache_beam.runners.worker.worker_pool_main` binds `[::]:<port>`,
every interface, and has no flag for the address; its pool starts an SDK
worker for whoever asks, pointed at the caller's control endpoint, without
authentication. This starts the same servicer (BeamFnExternalWorkerPoolServicer
with use_process=True: one `python` process per worker, which inherits this
process's environment, e.g. the Cassandra password variable) on `--host`
only. scripts/flink.sh runs it.

`--state_cache_mb` sizes each worker's cache of user state: the pipeline's own
`--max_cache_memory_usage_mb` never reaches workers started by a pool (the
pool passes its own size to every SdkHarness, and Beam's pool passes 0: no
cache, every state read of every bundle is a round trip to Flink).
"""

import argparse
import atexit
import logging
import sys
import time

import grpc
from apache_beam.portability.api import beam_fn_api_pb2_grpc
from apache_beam.runners.worker import worker_pool_main
from apache_beam.utils import thread_pool_executor

_LOGGER = logging.getLogger(__name__)


def serve(host: str, port: int, state_cache_mb: int = 0) -> None:
  """Serves the pool on host:port until interrupted; workers cache state_cache_mb."""
  server = grpc.server(
    thread_pool_executor.shared_unbounded_instance(),
    # as worker_pool_main: the runner keeps idle connections open
    options=[('grpc.http2.max_pings_without_data', 0), ('grpc.http2.max_ping_strikes', 0)],
  )
  bound = server.add_insecure_port(f'{host}:{port}')
  if not bound:
    sys.exit(f'worker pool: cannot listen on {host}:{port}')
  pool = worker_pool_main.BeamFnExternalWorkerPoolServicer(
    use_process=True, state_cache_size=state_cache_mb << 20
  )
  beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
  server.start()
  # pylint: disable=protected-access
  atexit.register(
    lambda: [worker_pool_main.kill_process_gracefully(p) for p in pool._worker_processes.values()]
  )
  _LOGGER.info('Listening for workers at %s:%d', host, bound)
  try:
    while True:
      time.sleep(3600)
  except KeyboardInterrupt:
    server.stop(0)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--host', default='127.0.0.1')
  parser.add_argument('--service_port', type=int, required=True)
  parser.add_argument(
    '--state_cache_mb',
    type=int,
    default=0,
    help="MiB of user state each SDK worker caches across bundles (0: none, as Beam's own pool)",
  )
  args, _ = parser.parse_known_args(argv)
  logging.getLogger().setLevel(logging.INFO)
  serve(args.host, args.service_port, args.state_cache_mb)


if __name__ == '__main__':
  main()
