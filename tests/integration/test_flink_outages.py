"""Outages under the Kafka -> Flink -> Cassandra job on the standalone Flink cluster
(scripts/flink.sh): the Kafka broker stopped for 60 s, Cassandra stopped for 5 minutes, the
Python SDK workers and their pool killed. Each time the job must come back by itself (or once
a supervisor restarts what was killed) and the Cassandra rows must end equal to the reference
of everything produced: nothing lost, nothing counted twice, no dead letter for a row that
was only delayed.

Same data, job and checks as tests/integration/test_flink_recovery.py (its helpers are used
here): a generated call file produced in parts, each rebased to the moment it is produced.
The jobs use the cluster's restart strategy (exponential delay, never giving up: the
production setting), not the recovery tests' 10 fixed retries, which a 5-minute outage
would use up. Every service stopped here is started again in a `finally`.

  .venv/bin/python -m pytest tests/integration/test_flink_outages.py -v -s
"""

import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

import pytest

from tests.integration.conftest import (
  REPO,
  RUN_DIR,
  assert_reachable,
  flink_script,
  script_env,
  service_pid,
)
from tests.integration.test_cassandra_sink import wait_until_answering
from tests.integration.test_flink_recovery import (  # noqa: F401 (topic: a fixture)
  Halves,
  Submitted,
  all_tasks_running,
  assert_only_the_input_was_refused,
  cassandra_rows,
  committed_offsets,
  flink_job,
  recovery_job_args,
  reference_rows,
  restored_checkpoints,
  topic,
  topic_end_offsets,
  wait_cluster_free,
  wait_for_rows,
  wait_offsets_committed,
  wait_until,
)
from tests.support.flink_rest import completed_checkpoints, rest

KAFKA_DOWN_S = 60
CASSANDRA_DOWN_S = 300
# Every test here runs a job on the cluster, whose Kafka source needs the expansion service.
pytestmark = pytest.mark.usefixtures('flink_standalone', 'expansion_service')


@pytest.fixture(scope='module')
def cassandra_session(cassandra_hosts, cassandra_port):
  """conftest's session, reconnecting every second for as long as it takes: the driver's
  default backoff grows to 10 minutes, and a constant one gives up after 64 attempts, so after
  a 5-minute outage the tests' own session stayed away (NoHostAvailable) while the job, whose
  writers connect anew when it restarts, was writing again."""
  from cassandra.cluster import Cluster  # pylint: disable=import-outside-toplevel
  from cassandra.policies import ConstantReconnectionPolicy  # pylint: disable=import-outside-toplevel

  assert_reachable(
    f'{cassandra_hosts[0]}:{cassandra_port}', 'Cassandra', 'start it with scripts/stack.sh up'
  )
  every_second = ConstantReconnectionPolicy(1.0, max_attempts=None)
  cluster = Cluster(cassandra_hosts, port=cassandra_port, reconnection_policy=every_second)
  session = cluster.connect()
  yield session
  cluster.shutdown()


def outage_job_args(topic: str, keyspace: str, group: str) -> List[str]:
  """The recovery tests' job, restarted by the cluster's own strategy."""
  return [
    a
    for a in recovery_job_args(topic, keyspace, group)
    if not a.startswith(('--number_of_execution_retries=', '--execution_retry_delay='))
  ]


def stack_script(service: str, action: str, timeout: float = 300) -> None:
  """scripts/stack/<service>.sh <action> on the stack of $RUN_DIR."""
  proc = subprocess.run(
    [str(REPO / 'scripts' / 'stack' / f'{service}.sh'), action],
    cwd=REPO,
    env=script_env(),
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  assert proc.returncode == 0, f'{service}.sh {action} failed:\n{proc.stderr[-3000:]}'


def port_open(port: int) -> bool:
  try:
    socket.create_connection(('127.0.0.1', port), timeout=1).close()
    return True
  except OSError:
    return False


class JobWatch(threading.Thread):
  """Polls the job's state every 0.5 s: which states it went through while a service was
  away (a permanent failure would show as FAILED)."""

  def __init__(self, jid: str):
    super().__init__(daemon=True)
    self.jid = jid
    self.states: List[str] = []
    self._halt = threading.Event()

  def run(self):
    while not self._halt.wait(0.5):
      try:
        state = flink_job(self.jid)['state']
      except Exception:  # pylint: disable=broad-except
        continue  # the JobManager is busy restarting the job: the next poll will tell
      if not self.states or self.states[-1] != state:
        self.states.append(state)

  def stop(self) -> List[str]:
    self._halt.set()
    self.join()
    return self.states


def failures(jid: str) -> List[str]:
  """The job's failures (Flink's exception history), oldest first, one line each."""
  entries = rest(f'/jobs/{jid}/exceptions?maxExceptions=50').get('exceptionHistory', {})
  return [str(e.get('exceptionName', '?'))[:160] for e in reversed(entries.get('entries', []))]


def rows_written(session, keyspace: str) -> int:
  return len(cassandra_rows(session, keyspace) or {})


def finish_exact(job, data, session, keyspace, bootstrap, group, t_back: float) -> float:
  """Waits for rows equal to the reference and offsets committed to the end; checks dead
  letters (only the file's malformed lines) and late events (none); returns the seconds from
  `t_back` to exact rows."""
  expected = reference_rows(data.path)
  wait_for_rows(session, keyspace, expected, job.jid, timeout=420)
  t_rows = time.monotonic() - t_back
  end = topic_end_offsets(bootstrap, job.topic)
  wait_until(
    'offsets committed to the end', lambda: committed_offsets(bootstrap, group) == end, 120, 1
  )
  assert_only_the_input_was_refused(session, keyspace, data, expected)
  assert flink_job(job.jid)['state'] == 'RUNNING'
  print(f'  rows exact ({len(expected)} rows) {t_rows:.1f} s after the service was back')
  return t_rows


def submit(topic: str, keyspace: str, group: str, name: str) -> Submitted:
  wait_cluster_free()
  job = Submitted(f'it-{name}-{topic}', outage_job_args(topic, keyspace, group))
  job.topic = topic
  return job


@dataclass(frozen=True)
class ServiceOutage:
  """A service of the stack stopped under the running job."""

  service: str  # scripts/stack/<service>.sh
  port: int
  down_s: float
  # The second part of the calls is produced while the service is down (their rows can only
  # wait), or once it is back (the broker has to be there to take them).
  produce_while_down: bool
  seed: int


OUTAGES = [
  ServiceOutage('kafka', 9092, KAFKA_DOWN_S, produce_while_down=False, seed=51),
  ServiceOutage('cassandra', 9042, CASSANDRA_DOWN_S, produce_while_down=True, seed=53),
]


@pytest.mark.parametrize('outage', OUTAGES, ids=lambda o: o.service)
def test_service_down_mid_stream(
  outage, topic, fresh_keyspace, cassandra_session, kafka_bootstrap, tmp_path
):
  """The Kafka broker stopped for 60 s while the job reads it, or Cassandra for 5 minutes
  while it writes: the job goes on by itself, or restarts from its checkpoint once a bundle
  has used up the sink's retries, without failing for good; once the service is back it
  catches up, rows exact, and no dead letter for a row that was only delayed."""
  t_test = time.monotonic()
  group = f'it-{topic}'
  data = Halves(tmp_path, seed=outage.seed)
  job = submit(topic, fresh_keyspace, group, outage.service)
  watch = JobWatch(job.jid)
  try:
    data.produce(0, topic, kafka_bootstrap)
    wait_offsets_committed(kafka_bootstrap, group)
    wait_until('rows written', lambda: rows_written(cassandra_session, fresh_keyspace) > 0, 120)
    ckpts_before = completed_checkpoints(job.jid)
    watch.start()
    t_stop = time.monotonic()
    stack_script(outage.service, 'stop')
    assert not port_open(outage.port), f'{outage.service} still answers: the test proved nothing'
    print(f'  {outage.service} stopped; down for {outage.down_s} s')
    if outage.produce_while_down:
      data.produce(1, topic, kafka_bootstrap)
    time.sleep(max(0.0, outage.down_s - (time.monotonic() - t_stop)))
    ckpts_down = completed_checkpoints(job.jid) - ckpts_before
    states_down = list(watch.states)
    stack_script(outage.service, 'start')
    t_back = time.monotonic()
    print(
      f'  {outage.service} back after {t_back - t_stop:.1f} s; meanwhile job states '
      f'{states_down}, {ckpts_down} checkpoints completed'
    )
    if not outage.produce_while_down:
      data.produce(1, topic, kafka_bootstrap)
    wait_until_answering(cassandra_session, timeout_s=120)
    finish_exact(job, data, cassandra_session, fresh_keyspace, kafka_bootstrap, group, t_back)
    states = watch.stop()
    history = failures(job.jid)
    print(
      f'  job states: {states}; restored {restored_checkpoints(job.jid)} times; '
      f'{len(history)} failures: {history[:4]}; test {time.monotonic() - t_test:.0f} s'
    )
    assert 'FAILED' not in states
  finally:
    if watch.is_alive():
      watch.stop()
    if not port_open(outage.port):
      stack_script(outage.service, 'start')
    job.cancel()


def sdk_workers(pool: int) -> List[int]:
  """The SDK worker processes of the pool: its process group (flink.sh starts it with
  setsid), but the pool itself."""
  out = []
  for d in Path('/proc').iterdir():
    if d.name.isdigit() and int(d.name) != pool:
      try:
        if os.getpgid(int(d.name)) == pool:
          out.append(int(d.name))
      except ProcessLookupError:
        pass
  return out


class Thirds(Halves):
  """The generated file in three parts: one before each kill and one after."""

  def __init__(self, work: Path, seed: int):
    super().__init__(work, seed)
    lines = self.parts[0] + self.parts[1]
    third = len(lines) // 3
    self.parts = [lines[:third], lines[third : 2 * third], lines[2 * third :]]


def test_worker_pool_killed_job_restarts_from_checkpoint(
  topic, fresh_keyspace, cassandra_session, kafka_bootstrap, tmp_path
):
  """kill -9 of the SDK workers (the pool lives): the job restarts from its checkpoint with
  workers the pool starts anew. Then kill -9 of the pool and its workers (the TaskManager
  lives): the job restarts once a supervisor (here flink.sh start) has the pool back. Rows
  exact after both."""
  t_test = time.monotonic()
  group = f'it-{topic}'
  data = Thirds(tmp_path, seed=57)
  job = submit(topic, fresh_keyspace, group, 'workers')
  tm = (RUN_DIR / 'pids' / 'flink-taskmanager.pid').read_text().strip()
  try:
    for part, kill_pool in ((0, False), (1, True)):
      data.produce(part, topic, kafka_bootstrap)
      restored = restored_checkpoints(job.jid)
      ckpts = completed_checkpoints(job.jid)
      # a checkpoint after the part was produced: the restart resumes from it
      wait_until('a checkpoint', lambda c=ckpts: completed_checkpoints(job.jid) >= c + 2, 120)
      pool = service_pid('flink-worker-pool')
      workers = sdk_workers(pool)
      assert workers, f'the pool {pool} runs no SDK worker: the job cannot be using it'
      t_kill = time.monotonic()
      for pid in workers + ([pool] if kill_pool else []):
        os.kill(pid, signal.SIGKILL)
      what = f'pool {pool} and its workers {workers}' if kill_pool else f'SDK workers {workers}'
      wait_until('killed', lambda w=workers: not any(Path(f'/proc/{p}').exists() for p in w), 10)
      if kill_pool:
        start = flink_script('start')  # a supervisor's job: starts only what is down
        assert start.returncode == 0, f'flink.sh start failed:\n{start.stderr[-4000:]}'
      wait_until(
        'job RUNNING again from a checkpoint',
        lambda r=restored: restored_checkpoints(job.jid) > r and all_tasks_running(job.jid),
        300,
        0.5,
      )
      t_running = time.monotonic() - t_kill
      expected = reference_rows(data.path)
      wait_for_rows(cassandra_session, fresh_keyspace, expected, job.jid)
      print(
        f'  killed {what}: job RUNNING again from checkpoint '
        f'#{rest(f"/jobs/{job.jid}/checkpoints")["latest"]["restored"]["id"]} after '
        f'{t_running:.1f} s, rows exact after {time.monotonic() - t_kill:.1f} s'
      )
    assert (RUN_DIR / 'pids' / 'flink-taskmanager.pid').read_text().strip() == tm
    assert Path(f'/proc/{tm}').exists(), 'the TaskManager died with the workers'
    data.produce(2, topic, kafka_bootstrap)
    finish_exact(
      job, data, cassandra_session, fresh_keyspace, kafka_bootstrap, group, time.monotonic()
    )
    print(f'  failures {failures(job.jid)}; test {time.monotonic() - t_test:.0f} s')
  finally:
    # whatever happened, the pool runs again for the next tests
    if flink_script('status').returncode != 0:
      flink_script('start')
    job.cancel()
