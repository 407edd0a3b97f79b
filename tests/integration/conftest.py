"""Fixtures for tests that talk to the real local stack (scripts/stack.sh up).

These tests never skip: if Kafka, Cassandra or the KafkaIO expansion service is not running,
or the Flink job-server jar cannot be fetched, they fail.
"""

import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scripts.bench.flink import service_pid as stack_service_pid


@pytest.fixture(scope='session')
def kafka_bootstrap() -> str:
  """Kafka bootstrap servers, e.g. "127.0.0.1:9092" (env KAFKA_BOOTSTRAP)."""
  return os.environ.get('KAFKA_BOOTSTRAP', '127.0.0.1:9092')


@pytest.fixture(scope='session')
def cassandra_hosts() -> list:
  """Cassandra contact points (env CASSANDRA_HOSTS, comma separated)."""
  hosts = os.environ.get('CASSANDRA_HOSTS', '127.0.0.1')
  return [h.strip() for h in hosts.split(',') if h.strip()]


@pytest.fixture(scope='session')
def cassandra_port() -> int:
  """Cassandra native-protocol port (env CASSANDRA_PORT)."""
  return int(os.environ.get('CASSANDRA_PORT', '9042'))


# --- cross-language KafkaIO on the portable FlinkRunner --------------------------------------
REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get('RUN_DIR', REPO / '.run'))


def service_pid(service: str) -> int:
  """The pid the project's scripts recorded for `service`, checked by its marker
  (scripts/bench/flink.py's service_pid); fails when it does not run."""
  pid = stack_service_pid(service)
  assert pid is not None, f'{service} does not run (no live pid in {RUN_DIR / "pids"})'
  return pid


def assert_reachable(address: str, what: str, hint: str) -> None:
  """Fail fast, with a hint, when nothing listens on host:port."""
  host, _, port = address.split(',')[0].rpartition(':')
  try:
    socket.create_connection((host, int(port)), timeout=5).close()
  except OSError as exc:
    raise AssertionError(f'{what} not reachable at {address} ({exc}); {hint}') from None


@pytest.fixture(scope='session')
def expansion_service() -> str:
  """Address of the running KafkaIO expansion service (env KAFKA_EXPANSION_SERVICE,
  default 127.0.0.1:8097, started by scripts/stack.sh up / scripts/stack/expansion_service.sh)."""
  address = os.environ.get('KAFKA_EXPANSION_SERVICE', '127.0.0.1:8097')
  assert_reachable(
    address,
    'KafkaIO expansion service',
    'start it with scripts/stack.sh up or scripts/stack/expansion_service.sh start',
  )
  return address


@pytest.fixture(scope='session')
def flink_job_server_jar() -> str:
  """The Beam Flink job-server jar, with KafkaIO inside (for EMBEDDED Java transforms).

  Runs scripts/stack/fetch_flink.sh (idempotent: cached, rebuilds only when
  scripts/stack/flink_pom.xml changed); env FLINK_JOB_SERVER_JAR overrides it.
  """
  jar = os.environ.get('FLINK_JOB_SERVER_JAR')
  if not jar:
    env = dict(os.environ, RUN_DIR=str(RUN_DIR))
    env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env.get("PATH", "")}'
    fetch = subprocess.run(
      [str(REPO / 'scripts' / 'stack' / 'fetch_flink.sh')],
      cwd=REPO,
      env=env,
      capture_output=True,
      text=True,
      timeout=1800,
    )
    assert fetch.returncode == 0, f'scripts/stack/fetch_flink.sh failed:\n{fetch.stderr[-4000:]}'
    env_file = RUN_DIR / 'jars' / 'flink-job-server' / 'flink.env'
    values = dict(
      line.split('=', 1)
      for line in env_file.read_text().splitlines()
      if '=' in line and not line.startswith('#')
    )
    jar = values['FLINK_JOB_SERVER_JAR'].strip('"')
  assert Path(jar).is_file(), f'Flink job-server jar missing: {jar} (scripts/stack/fetch_flink.sh)'
  with zipfile.ZipFile(jar) as z:
    names = set(z.namelist())
    # The source's metrics patch (scripts/stack/flink_pom.xml): a stock class refreshes every
    # metric after each record read, a fifth of the TaskManager's CPU (docs/benchmarks.md).
    reader = z.read('org/apache/beam/runners/flink/metrics/ReaderInvocationUtil.class')
  for cls in (
    'org/apache/beam/sdk/io/kafka/KafkaIO.class',
    'org/apache/kafka/clients/consumer/KafkaConsumer.class',
    'org/github/jamm/MemoryMeter.class',
  ):
    assert cls in names, (
      f'{jar} lacks {cls}: EMBEDDED KafkaIO cannot run in it; rebuild it with '
      'FORCE=1 scripts/stack/fetch_flink.sh (scripts/stack/flink_pom.xml shades KafkaIO in)'
    )
  assert b'updateMetricsAtMostEverySecond' in reader, (
    f'{jar} has the stock ReaderInvocationUtil: rebuild it with FORCE=1 '
    'scripts/stack/fetch_flink.sh (scripts/stack/flink_pom.xml patches it)'
  )
  return jar


# --- the standalone Flink cluster and fresh Cassandra keyspaces --------------------------------
def script_env() -> dict:
  env = dict(os.environ, RUN_DIR=str(RUN_DIR))
  env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env.get("PATH", "")}'
  env.setdefault('BEAM_PYTHON', sys.executable)  # the worker pool runs this interpreter
  return env


def flink_script(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
  """Runs scripts/flink.sh <args> (e.g. "start": starts whatever of JobManager, TaskManager
  and worker pool is not running, so it also brings a killed TaskManager back)."""
  return subprocess.run(
    [str(REPO / 'scripts' / 'flink.sh'), *args],
    cwd=REPO,
    env=script_env(),
    capture_output=True,
    text=True,
    timeout=timeout,
  )


@pytest.fixture(scope='module')
def flink_standalone(flink_job_server_jar):
  """scripts/flink.sh start; stopped afterwards only if this fixture started it (another
  job may be using a cluster that was already up)."""
  was_running = flink_script('status').returncode == 0
  start = flink_script('start')
  assert start.returncode == 0, f'flink.sh start failed:\n{start.stderr[-4000:]}'
  yield
  if not was_running:
    flink_script('stop')


@pytest.fixture(scope='module')
def cassandra_session(cassandra_hosts, cassandra_port):
  """A driver session on the local Cassandra; fails (never skips) when it is not up."""
  from cassandra.cluster import Cluster  # pylint: disable=import-outside-toplevel

  assert_reachable(
    f'{cassandra_hosts[0]}:{cassandra_port}', 'Cassandra', 'start it with scripts/stack.sh up'
  )
  cluster = Cluster(cassandra_hosts, port=cassandra_port)
  session = cluster.connect()
  yield session
  cluster.shutdown()


@pytest.fixture
def fresh_keyspace(cassandra_session):
  """A keyspace name nobody used before (the job creates it); dropped afterwards."""
  import uuid  # pylint: disable=import-outside-toplevel

  name = f'it_{uuid.uuid4().hex[:12]}'
  yield name
  try:
    cassandra_session.execute(f'DROP KEYSPACE IF EXISTS {name}', timeout=60)
  except Exception as exc:  # pylint: disable=broad-except
    print(f'could not drop keyspace {name}: {exc}')
