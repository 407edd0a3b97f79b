"""Failure recovery and savepoints of the Kafka -> Flink -> Cassandra job on the standalone
Flink cluster (scripts/flink.sh), submitted with scripts/submit_flink.sh.

Needs (nothing here skips; a missing piece is a failure): Kafka 127.0.0.1:9092, Cassandra
127.0.0.1:9042 and the KafkaIO expansion service 127.0.0.1:8097 (scripts/stack.sh up), java,
the Flink job-server jar (scripts/stack/fetch_flink.sh). The cluster is started if needed and
stopped again only if this module started it.

Data: a generated call-event file (no too-late events, jitter 5 s below the 10 s watermark
delay) split in two halves; each half is rebased to the moment it is produced (exactly: newest
event = now), so no event is behind the processing-time watermark KafkaIO's CreateTime policy
moves idle partitions to. 10 s windows and 300 s allowed lateness (the reference uses the same),
so the final rows do not depend on watermark timing; they must equal `reference_call_metrics`
of exactly what was produced: no loss, no double counting.

  .venv/bin/python -m pytest tests/integration/test_flink_recovery.py -v -s
"""

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka import errors as kafka_errors
from kafka.admin import NewTopic

from scripts.produce_events import produce_lines, read_lines, rebase_lines
from testing.datagen.calls import DEFAULT_START_MS, write_call_events
from testing.reference.calls import abandon_rate, reference_call_metrics, service_level
from tests.integration.conftest import REPO, RUN_DIR, assert_reachable, flink_script, service_pid
from tests.support.flink_rest import checkpoint_stats, completed_checkpoints, rest

PARTITIONS = 2
CALLS = 1500  # ~1,600 lines; at 100 calls/s around midday, ~18 s of event time a half
WINDOW_S = 10
LATENESS_S = 300
SUBMIT = str(REPO / 'scripts' / 'submit_flink.sh')


# --- helpers -----------------------------------------------------------------------------------
def flink_job(jid: str) -> dict:
  return rest(f'/jobs/{jid}')


def restored_checkpoints(jid: str) -> int:
  stats = checkpoint_stats(jid)
  return stats['counts']['restored'] if stats else 0


def all_tasks_running(jid: str) -> bool:
  job = flink_job(jid)
  return job['state'] == 'RUNNING' and all(v['status'] == 'RUNNING' for v in job['vertices'])


def wait_until(what: str, predicate, timeout: float, interval: float = 0.5):
  deadline = time.monotonic() + timeout
  while True:
    value = predicate()
    if value:
      return value
    assert time.monotonic() < deadline, f'not within {timeout:.0f} s: {what}'
    time.sleep(interval)


def committed_offsets(bootstrap: str, group: str, attempts: int = 30) -> Dict[int, int]:
  """partition -> committed offset of the consumer group (kafka-python admin).

  On a fresh broker the group coordinator (and __consumer_offsets) comes up
  on first use: COORDINATOR_NOT_AVAILABLE / LOAD_IN_PROGRESS are retried.
  """
  transient = (
    kafka_errors.CoordinatorNotAvailableError,
    kafka_errors.CoordinatorLoadInProgressError,
    kafka_errors.NotCoordinatorError,
  )
  for attempt in range(attempts):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
      # kafka-python 2.0 names it list_consumer_group_offsets, 2.1+ list_group_offsets
      list_offsets = getattr(admin, 'list_consumer_group_offsets', None)
      offsets = (
        list_offsets(group) if list_offsets else admin.list_group_offsets(group).get(group, {})
      )
      break
    except transient:
      if attempt == attempts - 1:
        raise
      time.sleep(1)
    finally:
      admin.close()
  return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def topic_end_offsets(bootstrap: str, topic: str) -> Dict[int, int]:
  consumer = KafkaConsumer(bootstrap_servers=bootstrap)
  try:
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
  finally:
    consumer.close()


def _others_running(own: Optional[str] = None) -> List[str]:
  return [
    f'{j["name"]} ({j["state"]})'
    for j in rest('/jobs/overview')['jobs']
    if j['jid'] != own and j['state'] not in ('CANCELED', 'FINISHED', 'FAILED')
  ]


def wait_cluster_free(own: Optional[str] = None, timeout: float = 900):
  """The cluster has 2 slots and one TaskManager: another job would take the slots and be
  killed with the TaskManager, so wait until ours is the only one."""
  deadline = time.monotonic() + timeout
  while _others_running(own):
    assert time.monotonic() < deadline, f'cluster busy with {_others_running(own)}'
    time.sleep(5)


def cassandra_rows(session, keyspace: str) -> Optional[dict]:
  try:
    result = session.execute(f'SELECT * FROM {keyspace}.abandon_metrics', timeout=30)
  except Exception:  # pylint: disable=broad-except
    return None  # keyspace/table not created yet
  return {
    (r.queue_id, r.window_start): (
      r.total_calls,
      r.abandoned_calls,
      r.short_abandoned_calls,
      r.answered_within_sl,
      round(r.total_wait_seconds, 6),
      r.window_end,
      r.abandon_rate,
      r.service_level,
    )
    for r in result
  }


def count_rows(session, keyspace: str, table: str) -> int:
  try:
    return session.execute(f'SELECT COUNT(*) FROM {keyspace}.{table}', timeout=30).one()[0]
  except Exception:  # pylint: disable=broad-except
    return -1


def wait_offsets_committed(bootstrap: str, group: str) -> None:
  """Until the group has committed offsets: a checkpoint completed after the job read."""
  wait_until(
    'offsets committed after a checkpoint',
    lambda: sum(committed_offsets(bootstrap, group).values()) > 0,
    120,
  )


def assert_only_the_input_was_refused(session, keyspace: str, data, expected: dict) -> None:
  """Every valid call counted, the dead letters only the file's malformed lines (one more
  would be a row the sink gave up on) and no late event."""
  assert sum(v[0] for v in expected.values()) == data.counts['valid']
  assert count_rows(session, keyspace, 'dead_letters') == data.counts['malformed']
  assert count_rows(session, keyspace, 'late_events') == 0


def reference_rows(path: Path) -> dict:
  ref = reference_call_metrics(str(path), window_size_s=WINDOW_S, allowed_lateness_s=LATENESS_S)
  assert not ref.late, 'the produced data must have no late events (see module doc)'
  return {
    key: (
      r['total_calls'],
      r['abandoned_calls'],
      r['short_abandoned_calls'],
      r['answered_within_sl'],
      round(float(r['total_wait_seconds']), 6),
      r['window_end_ms'],
      float(abandon_rate(r)),
      float(service_level(r)),
    )
    for key, r in ref.rows.items()
  }


def rows_diff(rows: Optional[dict], expected: dict) -> str:
  rows = rows or {}
  missing = [k for k in expected if k not in rows]
  wrong = [k for k in expected if k in rows and rows[k] != expected[k]]
  extra = [k for k in rows if k not in expected]
  sample = {k: (rows[k], expected[k]) for k in wrong[:3]}
  return (
    f'{len(rows)} rows for {len(expected)} expected: {len(missing)} missing, '
    f'{len(wrong)} differ {sample}, {len(extra)} unexpected'
  )


def wait_for_rows(
  session, keyspace: str, expected: dict, jid: Optional[str] = None, timeout: float = 300
) -> None:
  """Waits until the Cassandra rows equal `expected`; with `jid`, fails as soon as that job is
  no longer running or recovering."""
  last = {}

  def converged():
    last['rows'] = cassandra_rows(session, keyspace)
    if jid is not None:
      assert flink_job(jid)['state'] in ('RUNNING', 'RESTARTING', 'INITIALIZING'), flink_job(jid)
    return last['rows'] == expected

  try:
    wait_until('rows equal the reference', converged, timeout, 1)
  except AssertionError as exc:
    raise AssertionError(f'{exc}: {rows_diff(last.get("rows"), expected)}') from None


class Halves:
  """The generated file in two halves, each rebased to 'now' when it is produced; `path`
  accumulates exactly what the topic holds (the reference's input)."""

  def __init__(self, work: Path, seed: int):
    generated = work / 'calls.jsonl'
    self.counts = write_call_events(
      str(generated),
      CALLS,
      seed=seed,
      start_ms=DEFAULT_START_MS + 12 * 3600 * 1000,
      events_per_second=100,
      jitter_seconds=5.0,
      too_late_share=0.0,
      late_within_lateness_share=0.0,
    )
    lines = read_lines(str(generated))
    half = len(lines) // 2
    self.parts = [lines[:half], lines[half:]]
    self.path = work / 'produced.jsonl'
    self.path.write_bytes(b'')
    self.produced = 0

  def produce(self, index: int, topic: str, bootstrap: str) -> dict:
    lines, _ = rebase_lines(self.parts[index], int(time.time() * 1000), align_ms=0)
    result = produce_lines(lines, topic, bootstrap)
    with open(self.path, 'ab') as f:
      f.write(b''.join(line + b'\n' for line in lines))
    self.produced += result['count']
    print(f'  produced half {index + 1}: {result["count"]} records in {result["seconds"]:.2f} s')
    return result


@pytest.fixture
def topic(kafka_bootstrap):
  assert_reachable(kafka_bootstrap, 'Kafka', 'start it with scripts/stack.sh up')
  name = f'it-recovery-{uuid.uuid4().hex[:10]}'
  admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30000)
  admin.create_topics(
    [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=30000
  )
  yield name
  try:
    admin.delete_topics([name], timeout_ms=30000)
  except Exception as exc:  # pylint: disable=broad-except
    print(f'could not delete topic {name}: {exc}')
  admin.close()


class Submitted:
  """A job submitted with scripts/submit_flink.sh cluster --detach."""

  def __init__(self, name: str, args: List[str]):
    self.name = name
    t0 = time.monotonic()
    proc = subprocess.run(
      [SUBMIT, 'cluster', '--detach', f'--job_name={name}', *args],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=420,
      env=dict(os.environ, RUN_DIR=str(RUN_DIR)),
    )
    assert proc.returncode == 0, f'submit_flink.sh failed:\n{proc.stdout}\n{proc.stderr[-4000:]}'
    self.submit_s = time.monotonic() - t0
    self.client_pid = int((RUN_DIR / 'pids' / f'submit-{name}.pid').read_text())
    jobs = [j for j in rest('/jobs/overview')['jobs'] if j['name'] == name]
    jobs.sort(key=lambda j: j['start-time'])
    self.jid = jobs[-1]['jid']
    print(f'\n  submitted {name} (jid {self.jid}) in {self.submit_s:.1f} s:\n{proc.stdout}')

  def client_alive(self) -> bool:
    try:
      os.kill(self.client_pid, 0)
      return True
    except ProcessLookupError:
      return False

  def cancel(self):
    try:
      if flink_job(self.jid)['state'] not in ('CANCELED', 'FINISHED', 'FAILED'):
        rest(f'/jobs/{self.jid}?mode=cancel', method='PATCH')
      wait_until(
        'job cancelled',
        lambda: flink_job(self.jid)['state'] in ('CANCELED', 'FINISHED', 'FAILED'),
        60,
      )
    finally:
      deadline = time.monotonic() + 60
      while self.client_alive() and time.monotonic() < deadline:
        time.sleep(0.5)
      if self.client_alive():
        os.killpg(self.client_pid, signal.SIGTERM)


def recovery_job_args(topic: str, keyspace: str, group: str, interval_ms: int = 3000) -> List[str]:
  return [
    f'--kafka_call_events_topic={topic}',
    f'--kafka_consumer_group={group}',
    '--sink=cassandra',
    f'--cassandra_keyspace={keyspace}',
    f'--window_seconds={WINDOW_S}',
    f'--allowed_lateness_seconds={LATENESS_S}',
    f'--checkpointing_interval={interval_ms}',
    '--min_pause_between_checkpoints=1000',
    '--checkpoint_timeout_millis=60000',
    '--number_of_execution_retries=10',
    '--execution_retry_delay=2000',
  ]


# --- the tests -----------------------------------------------------------------------------------
def test_taskmanager_killed_job_recovers_from_checkpoint_exactly(
  flink_standalone,
  topic,
  fresh_keyspace,
  cassandra_session,
  kafka_bootstrap,
  expansion_service,
  tmp_path,
):
  """kill -9 of the TaskManager mid-run: Flink's restart strategy restores the last completed
  checkpoint on a TaskManager started again by this test; the rows end exact."""
  group = f'it-{topic}'
  data = Halves(tmp_path, seed=41)
  wait_cluster_free()
  job = Submitted(f'it-recovery-{topic}', recovery_job_args(topic, fresh_keyspace, group))
  try:
    t_p1 = time.monotonic()
    data.produce(0, topic, kafka_bootstrap)
    # a checkpoint has completed since part 1 was read: offsets committed on finalize
    wait_offsets_committed(kafka_bootstrap, group)
    assert completed_checkpoints(job.jid) >= 1
    committed_at_kill = committed_offsets(kafka_bootstrap, group)
    rows_at_kill = len(cassandra_rows(cassandra_session, fresh_keyspace) or {})
    ckpt_at_kill = rest(f'/jobs/{job.jid}/checkpoints')['latest']['completed']
    tm = service_pid('flink-taskmanager')
    assert not _others_running(job.jid), f'not killing the TaskManager of {_others_running()}'
    print(
      f'  kill -9 TaskManager pid {tm} {time.monotonic() - t_p1:.1f} s after half 1 was '
      f'produced: checkpoint #{ckpt_at_kill["id"]} completed, committed '
      f'{committed_at_kill}, {rows_at_kill} rows written'
    )
    t_kill = time.monotonic()
    os.kill(tm, signal.SIGKILL)
    wait_until('TaskManager gone', lambda: not Path(f'/proc/{tm}').exists(), 10, 0.05)
    # a supervisor's job: start a TaskManager again (flink.sh start starts only what is down)
    start = flink_script('start')
    assert start.returncode == 0, f'flink.sh start failed:\n{start.stderr[-4000:]}'
    t_tm = time.monotonic() - t_kill
    wait_until(
      'job noticed the failure',
      lambda: flink_job(job.jid)['state'] != 'RUNNING' or restored_checkpoints(job.jid) > 0,
      120,
      0.2,
    )
    t_detect = time.monotonic() - t_kill
    wait_until(
      'job RUNNING again with all tasks',
      lambda: all_tasks_running(job.jid) and restored_checkpoints(job.jid) >= 1,
      300,
      0.2,
    )
    t_running = time.monotonic() - t_kill
    restored = rest(f'/jobs/{job.jid}/checkpoints')['latest']['restored']
    assert restored and restored['id'] >= ckpt_at_kill['id'], restored
    data.produce(1, topic, kafka_bootstrap)
    expected = reference_rows(data.path)
    wait_for_rows(cassandra_session, fresh_keyspace, expected, job.jid)
    t_rows = time.monotonic() - t_kill
    # every record is read once the job is through: offsets committed up to the end
    end = topic_end_offsets(kafka_bootstrap, topic)
    wait_until(
      'offsets committed to the end',
      lambda: committed_offsets(kafka_bootstrap, group) == end,
      60,
      1,
    )
    final_committed = committed_offsets(kafka_bootstrap, group)
    assert all(final_committed[p] >= committed_at_kill.get(p, 0) for p in final_committed)
    dead = count_rows(cassandra_session, fresh_keyspace, 'dead_letters')
    late = count_rows(cassandra_session, fresh_keyspace, 'late_events')
    print(
      f'  recovery: TaskManager restarted {t_tm:.1f} s after the kill, failure seen at '
      f'{t_detect:.1f} s, job RUNNING again (all tasks, checkpoint #{restored["id"]} '
      f'restored) at {t_running:.1f} s, rows complete and exact ({len(expected)} rows, '
      f'{sum(v[0] for v in expected.values())} calls) at {t_rows:.1f} s after the kill\n'
      f'  offsets: committed at kill {committed_at_kill}, checkpoint restored '
      f'#{restored["id"]}, final {final_committed} = end {end}; dead letters {dead}, '
      f'late events {late}'
    )
    assert data.counts['valid'] == CALLS
    assert_only_the_input_was_refused(cassandra_session, fresh_keyspace, data, expected)
  finally:
    job.cancel()


def stop_with_savepoint(jid: str) -> str:
  target = f'file://{RUN_DIR}/flink/savepoints'
  trigger = rest(
    f'/jobs/{jid}/stop', method='POST', body={'targetDirectory': target, 'drain': False}
  )['request-id']

  def done():
    status = rest(f'/jobs/{jid}/savepoints/{trigger}')
    if status['status']['id'] != 'COMPLETED':
      return None
    operation = status['operation']
    assert 'failure-cause' not in operation, operation
    return operation['location']

  return wait_until('stop-with-savepoint completed', done, 180, 0.5)


def test_stop_with_savepoint_and_resume(
  flink_standalone,
  topic,
  fresh_keyspace,
  cassandra_session,
  kafka_bootstrap,
  expansion_service,
  tmp_path,
):
  """Stop with a savepoint (drain false) while windows are open, produce more, resubmit with
  --savepoint_path: the rows end equal to the reference of everything produced."""
  group = f'it-{topic}'
  data = Halves(tmp_path, seed=43)
  args = recovery_job_args(topic, fresh_keyspace, group)
  wait_cluster_free()
  first = Submitted(f'it-sp1-{topic}', args)
  second = None
  try:
    data.produce(0, topic, kafka_bootstrap)
    wait_offsets_committed(kafka_bootstrap, group)
    t0 = time.monotonic()
    location = stop_with_savepoint(first.jid)
    t_sp = time.monotonic() - t0
    wait_until('first job FINISHED', lambda: flink_job(first.jid)['state'] == 'FINISHED', 60)
    wait_until('first client exited', lambda: not first.client_alive(), 60)
    rows_at_stop = len(cassandra_rows(cassandra_session, fresh_keyspace) or {})
    committed_at_stop = committed_offsets(kafka_bootstrap, group)
    print(
      f'  savepoint {location} in {t_sp:.1f} s; {rows_at_stop} rows, committed {committed_at_stop}'
    )
    data.produce(1, topic, kafka_bootstrap)
    second = Submitted(f'it-sp2-{topic}', [*args, f'--savepoint_path={location}'])
    restored = rest(f'/jobs/{second.jid}/checkpoints')['latest']['restored']
    assert restored and restored['is_savepoint'], restored
    print(f'  resubmitted job restored {restored["external_path"]}')
    expected = reference_rows(data.path)
    t1 = time.monotonic()
    wait_for_rows(cassandra_session, fresh_keyspace, expected)
    end = topic_end_offsets(kafka_bootstrap, topic)
    wait_until(
      'offsets committed to the end',
      lambda: committed_offsets(kafka_bootstrap, group) == end,
      60,
      1,
    )
    print(
      f'  resumed from the savepoint: rows exact ({len(expected)}) {time.monotonic() - t1:.1f}'
      f' s after the resubmitted job ran; offsets {end}'
    )
    assert_only_the_input_was_refused(cassandra_session, fresh_keyspace, data, expected)
  finally:
    for job in (first, second):
      if job is not None:
        job.cancel()
