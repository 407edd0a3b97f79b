"""Growing without losing state, on the standalone Flink cluster with two TaskManagers
(scripts/flink.sh start --taskmanagers 2), Kafka -> Flink -> Cassandra:

* rescale up and down: run at one parallelism, stop with a savepoint mid-stream, resume from it
  at another (2 -> 4 across both TaskManagers, 4 -> 2): rows equal the reference of everything
  produced, nothing counted twice, nothing late lost;
* kill -9 one of two TaskManagers mid-stream: the job recovers from its last checkpoint;
* more Kafka partitions than parallelism, one of them idle for minutes: windows still close.

Data and helpers as in tests/integration/test_flink_recovery.py (halves rebased to the moment
they are produced, 10 s windows, 300 s allowed lateness, so rows do not depend on timing).
The cluster goes back to one TaskManager afterwards (the other cluster tests assume one).

  .venv/bin/python -m pytest tests/integration/test_flink_rescale.py -v -s
"""

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from scripts.produce_events import key_and_timestamp, rebase_lines
from tests.integration.conftest import flink_script, service_pid
from tests.integration.test_flink_recovery import (
  LATENESS_S,
  WINDOW_S,
  Halves,
  Submitted,
  all_tasks_running,
  assert_only_the_input_was_refused,
  committed_offsets,
  count_rows,
  flink_job,
  recovery_job_args,
  reference_rows,
  restored_checkpoints,
  stop_with_savepoint,
  topic,  # noqa: F401 (a fixture the tests take as an argument)
  topic_end_offsets,
  wait_cluster_free,
  wait_for_rows,
  wait_offsets_committed,
  wait_until,
)
from tests.support.flink_rest import completed_checkpoints, rest


@pytest.fixture(scope='module')
def two_taskmanagers(flink_job_server_jar):
  """Four slots on two TaskManagers; afterwards back to one TaskManager, or no cluster at
  all if this fixture started it."""
  was_running = flink_script('status').returncode == 0
  start = flink_script('start', '--taskmanagers', '2')
  assert start.returncode == 0, f'flink.sh start failed:\n{start.stderr[-4000:]}'
  wait_until('two TaskManagers registered', lambda: rest('/overview')['taskmanagers'] >= 2, 120)
  yield
  stop = flink_script('stop-taskmanager', '2') if was_running else flink_script('stop')
  assert stop.returncode == 0, stop.stderr[-2000:]


def _parallelism(jid: str) -> set:
  return {v['parallelism'] for v in flink_job(jid)['vertices']}


@pytest.mark.parametrize('before, after', [(2, 4), (4, 2)])
def test_rescale_from_a_savepoint_keeps_every_count(
  two_taskmanagers,
  topic,
  fresh_keyspace,
  cassandra_session,
  kafka_bootstrap,
  expansion_service,
  tmp_path,
  before,
  after,
):
  group = f'it-{topic}'
  data = Halves(tmp_path, seed=50 + before)
  args = recovery_job_args(topic, fresh_keyspace, group)
  wait_cluster_free()
  first = Submitted(f'it-scale{before}-{topic}', [*args, f'--parallelism={before}'])
  second = None
  try:
    assert _parallelism(first.jid) == {before}
    data.produce(0, topic, kafka_bootstrap)
    wait_offsets_committed(kafka_bootstrap, group)
    location = stop_with_savepoint(first.jid)
    wait_until('first job FINISHED', lambda: flink_job(first.jid)['state'] == 'FINISHED', 60)
    wait_until('first client exited', lambda: not first.client_alive(), 60)
    data.produce(1, topic, kafka_bootstrap)
    second = Submitted(
      f'it-scale{after}-{topic}', [*args, f'--parallelism={after}', f'--savepoint_path={location}']
    )
    restored = rest(f'/jobs/{second.jid}/checkpoints')['latest']['restored']
    assert restored and restored['is_savepoint'], restored
    assert _parallelism(second.jid) == {after}
    t0 = time.monotonic()
    expected = reference_rows(data.path)
    wait_for_rows(cassandra_session, fresh_keyspace, expected)
    end = topic_end_offsets(kafka_bootstrap, topic)
    wait_until(
      'offsets committed to the end',
      lambda: committed_offsets(kafka_bootstrap, group) == end,
      60,
      1,
    )
    print(
      f'\n  rescaled {before} -> {after} from {location}: rows exact ({len(expected)} rows, '
      f'{sum(v[0] for v in expected.values())} calls) {time.monotonic() - t0:.1f} s after '
      f'the resumed job ran'
    )
    assert_only_the_input_was_refused(cassandra_session, fresh_keyspace, data, expected)
  finally:
    for job in (first, second):
      if job is not None:
        job.cancel()


def test_one_of_two_taskmanagers_killed_job_recovers_exactly(
  two_taskmanagers,
  topic,
  fresh_keyspace,
  cassandra_session,
  kafka_bootstrap,
  expansion_service,
  tmp_path,
):
  group = f'it-{topic}'
  data = Halves(tmp_path, seed=61)
  wait_cluster_free()
  # Parallelism 4 fills both TaskManagers, so the killed one surely runs part of the job.
  job = Submitted(
    f'it-tmkill-{topic}', [*recovery_job_args(topic, fresh_keyspace, group), '--parallelism=4']
  )
  try:
    data.produce(0, topic, kafka_bootstrap)
    wait_offsets_committed(kafka_bootstrap, group)
    ckpt = rest(f'/jobs/{job.jid}/checkpoints')['latest']['completed']
    tm = service_pid('flink-taskmanager-2')
    t_kill = time.monotonic()
    os.kill(tm, signal.SIGKILL)
    wait_until('TaskManager 2 gone', lambda: not Path(f'/proc/{tm}').exists(), 10, 0.05)
    start = flink_script('start', '--taskmanagers', '2')
    assert start.returncode == 0, f'flink.sh start failed:\n{start.stderr[-4000:]}'
    wait_until(
      'job RUNNING again from a checkpoint',
      lambda: all_tasks_running(job.jid) and restored_checkpoints(job.jid) >= 1,
      300,
      0.2,
    )
    t_running = time.monotonic() - t_kill
    restored = rest(f'/jobs/{job.jid}/checkpoints')['latest']['restored']
    assert restored['id'] >= ckpt['id'], restored
    data.produce(1, topic, kafka_bootstrap)
    expected = reference_rows(data.path)
    wait_for_rows(cassandra_session, fresh_keyspace, expected)
    t_rows = time.monotonic() - t_kill
    print(
      f'\n  one of two TaskManagers killed: job RUNNING again (checkpoint '
      f'#{restored["id"]} restored) {t_running:.1f} s after the kill, rows exact '
      f'({len(expected)} rows) {t_rows:.1f} s after it'
    )
    assert count_rows(cassandra_session, fresh_keyspace, 'late_events') == 0
  finally:
    job.cancel()


def test_more_partitions_than_parallelism_and_one_idle_for_minutes(
  two_taskmanagers, fresh_keyspace, cassandra_session, kafka_bootstrap, expansion_service, tmp_path
):
  """4 partitions read at parallelism 2. Every partition gets records from the first half;
  the second half goes to 3 of them and partition 3 stays idle from then on (minutes): its
  watermark follows processing time once it has no backlog (KafkaIO CreateTime policy), so
  the windows of the second half still close. Measured: how long after its end + watermark
  delay the last window's row appears."""
  topic = f'it-idle-{uuid.uuid4().hex[:10]}'
  admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30000)
  admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)], timeout_ms=30000)
  group = f'it-{topic}'
  data = Halves(tmp_path, seed=71)
  producer = KafkaProducer(
    bootstrap_servers=kafka_bootstrap, acks='all', max_in_flight_requests_per_connection=1
  )

  def produce(index, partitions):
    lines, _ = rebase_lines(data.parts[index], int(time.time() * 1000), align_ms=0)
    last_ts = None
    for i, line in enumerate(lines):
      _, ts = key_and_timestamp(line, None)
      last_ts = ts if ts is not None else last_ts
      producer.send(
        topic, value=line, partition=partitions[i % len(partitions)], timestamp_ms=last_ts
      )
    producer.flush()
    with open(data.path, 'ab') as f:
      f.write(b''.join(line + b'\n' for line in lines))
    return lines

  wait_cluster_free()
  job = Submitted(
    f'it-idle-{topic}', [*recovery_job_args(topic, fresh_keyspace, group), '--parallelism=2']
  )
  try:
    produce(0, [0, 1, 2, 3])
    wait_offsets_committed(kafka_bootstrap, group)
    lines = produce(1, [0, 1, 2])
    newest_ms = max(ts for ts in (key_and_timestamp(line, None)[1] for line in lines) if ts)
    last_window_end_ms = (newest_ms // (WINDOW_S * 1000) + 1) * WINDOW_S * 1000
    expected = reference_rows(data.path)
    wait_for_rows(cassandra_session, fresh_keyspace, expected, timeout=420)
    closed_ms = int(time.time() * 1000)
    # Data rebased to now: event time is wall-clock time, so this is how late the last window
    # closed after its end plus the watermark delay (--max_out_of_orderness_seconds, 10 s).
    lag_s = (closed_ms - last_window_end_ms) / 1000 - 10
    print(
      f'\n  4 partitions at parallelism 2, partition 3 idle: every window closed, the last '
      f'one {lag_s:.1f} s after its end + watermark delay (allowed lateness {LATENESS_S} s)'
    )
    assert lag_s < 180, f'the last window closed {lag_s:.0f} s late'
    assert completed_checkpoints(job.jid) >= 1
  finally:
    producer.close()
    job.cancel()
    try:
      admin.delete_topics([topic], timeout_ms=30000)
    finally:
      admin.close()
