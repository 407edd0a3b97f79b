"""The main job reading REAL Kafka through cross-language KafkaIO on the portable FlinkRunner
(embedded Flink, `--flink_master=[local]`, LOOPBACK Python workers), end to end.

Needs: Kafka on 127.0.0.1:9092 and the KafkaIO expansion service on 127.0.0.1:8097 (both from
scripts/stack.sh up), java, and the Flink job-server jar with KafkaIO shaded in (the
flink_job_server_jar fixture runs scripts/stack/fetch_flink.sh). Nothing here skips: a missing piece
is a failure.

One embedded-Flink job (~40-80 s here, most of it JVM/Flink start-up, not data) serves the
first tests: a generated call-event file (no too-late events, jitter below the watermark delay,
rebased to now) is produced to a fresh 2-partition topic with record timestamp = event time, and
the job reads exactly that many records (`--kafka_max_num_records`: KafkaIO's bounded reader,
so the job ends and, as nothing is late, its final rows do not depend on watermark timing),
writing to SQLite AND Kafka (`--sink=sqlite --sink=kafka`).

The last test runs the same job UNBOUNDED on the local Flink cluster (scripts/flink.sh, started
if needed and then stopped again) with EXTERNAL Python workers, RocksDB checkpoints every 5 s
and offsets committed on checkpoints; it polls until the rows are right, then cancels the job.

  .venv/bin/python -m pytest tests/integration/test_kafka_flink.py -v -s
"""

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from typing import Dict, List, Tuple

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from pipelines import contact_center
from scripts.produce_events import produce_lines, read_lines, rebase_lines
from testing.datagen.calls import write_call_events
from testing.reference.calls import (
  ROW_COLUMNS,
  comparable_rows,
  parse_valid_event,
  reference_call_metrics,
)
from tests.integration.conftest import REPO, RUN_DIR, assert_reachable
from tests.support.flink_rest import completed_checkpoints, rest
from transforms.kafka_io import TOPICS, ReadKafkaRecords

CALLS = 2000  # distinct calls; ~2,130 lines with duplicates, other types, malformed
PARTITIONS = 2
WORKER_POOL = '127.0.0.1:50000'


@pytest.fixture(scope='module')
def new_topic(kafka_bootstrap):
  """Creates fresh topics with PARTITIONS partitions; deletes them afterwards."""
  assert_reachable(kafka_bootstrap, 'Kafka', 'start it with scripts/stack.sh up')
  admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30000)
  created = []

  def create(prefix):
    name = f'{prefix}-{uuid.uuid4().hex[:10]}'
    admin.create_topics(
      [NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)], timeout_ms=30000
    )
    created.append(name)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
      deadline = time.monotonic() + 30
      while len(consumer.partitions_for_topic(name) or ()) < PARTITIONS:
        assert time.monotonic() < deadline, f'topic {name} has no {PARTITIONS} partitions'
        time.sleep(0.2)
    finally:
      consumer.close()
    return name

  yield create
  try:
    admin.delete_topics(created, timeout_ms=30000)
  except Exception as exc:  # pylint: disable=broad-except
    print(f'could not delete topics {created}: {exc}')
  admin.close()


@pytest.fixture(scope='module')
def topic(new_topic):
  return new_topic('it-calls')


@pytest.fixture(scope='module')
def produced(tmp_path_factory, topic, kafka_bootstrap):
  """The generated file, rebased to now, produced in file order to `topic`."""
  work = tmp_path_factory.mktemp('kafka_flink')
  generated = work / 'calls.jsonl'
  counts = write_call_events(
    str(generated),
    CALLS,
    seed=23,
    events_per_second=5,
    jitter_seconds=5.0,
    too_late_share=0.0,
    late_within_lateness_share=0.0,
  )
  lines, shift_ms = rebase_lines(read_lines(str(generated)), int(time.time() * 1000))
  path = work / 'calls.produced.jsonl'  # exactly what the topic holds
  path.write_bytes(b''.join(line + b'\n' for line in lines))
  result = produce_lines(lines, topic, kafka_bootstrap, keep_metadata=True)
  print(
    f'\nproduced {result["count"]} records to {topic} ({PARTITIONS} partitions) in '
    f'{result["seconds"]:.2f} s ({result["rate"]:.0f}/s); event times shifted by '
    f'{shift_ms / 86400000:+.1f} days'
  )
  assert result['count'] == len(lines) == counts['lines']
  assert len({p for p, _, _ in result['records']}) == PARTITIONS
  return {
    'path': path,
    'lines': lines,
    'records': result['records'],
    'counts': counts,
    'work': work,
  }


def topic_end_offsets(bootstrap: str, topic: str) -> Dict[TopicPartition, int]:
  consumer = KafkaConsumer(bootstrap_servers=bootstrap)
  try:
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    assert partitions, f'topic {topic} does not exist (scripts/stack/kafka.sh creates it)'
    return consumer.end_offsets(partitions)
  finally:
    consumer.close()


def consume_from(bootstrap: str, start: Dict[TopicPartition, int]) -> List[Tuple[bytes, bytes]]:
  """(key, value) of every record from `start` to the current end, in offset order."""
  end = topic_end_offsets(bootstrap, next(iter(start)).topic)
  consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
  out = []
  try:
    consumer.assign(list(start))
    for tp, offset in start.items():
      consumer.seek(tp, offset)
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < end[tp] for tp in start):
      assert time.monotonic() < deadline, 'could not read the sink topic to its end in 60 s'
      for tp, records in consumer.poll(timeout_ms=1000).items():
        out.extend((r.key, r.value) for r in records if r.offset < end[tp])
  finally:
    consumer.close()
  return out


@pytest.fixture(scope='module')
def kafka_job(produced, topic, kafka_bootstrap, expansion_service, flink_job_server_jar):
  """Runs the main job once on embedded Flink; returns the SQLite path and the sink-topic
  offsets from before the job."""
  db = produced['work'] / 'out.db'
  sink_topics = (TOPICS['abandon_metrics'], TOPICS['dead_letters'])
  before = {t: topic_end_offsets(kafka_bootstrap, t) for t in sink_topics}
  args = [
    '--runner=FlinkRunner',
    '--flink_master=[local]',
    f'--flink_job_server_jar={flink_job_server_jar}',
    '--environment_type=LOOPBACK',
    '--source=kafka',
    f'--kafka_bootstrap_servers={kafka_bootstrap}',
    f'--kafka_expansion_service={expansion_service}',
    f'--kafka_call_events_topic={topic}',
    '--kafka_data_actions_topic=',
    f'--kafka_max_num_records={len(produced["lines"])}',
    f'--kafka_consumer_group=it-{topic}',
    '--sink=sqlite',
    '--sink=kafka',
    f'--sqlite_path={db}',
  ]
  t0 = time.monotonic()
  result = contact_center.run(args)
  wall = time.monotonic() - t0
  print(f'\nFlink [local] job: {result.state} in {wall:.1f} s\n  ' + ' '.join(args))
  assert str(result.state).endswith('DONE'), result.state
  return {'db': db, 'before': before, 'wall': wall}


def sqlite_table(db, name) -> List[dict]:
  conn = sqlite3.connect(db)
  conn.row_factory = sqlite3.Row
  try:
    return [dict(r) for r in conn.execute(f'SELECT * FROM {name}')]
  finally:
    conn.close()


def test_call_metrics_from_kafka_match_the_reference(kafka_job, produced):
  ref = reference_call_metrics(str(produced['path']))
  assert not ref.late, 'the produced file must have no late events (see module doc)'
  rows = {
    (r['queue_id'], r['window_start']): [r[c] for c in ROW_COLUMNS]
    for r in sqlite_table(kafka_job['db'], 'abandon_metrics')
  }
  assert rows == comparable_rows(ref)
  assert sum(r[0] for r in rows.values()) == produced['counts']['valid'] == CALLS
  assert sqlite_table(kafka_job['db'], 'late_events') == []


def test_malformed_records_are_dead_letters_with_their_offsets(kafka_job, produced, topic):
  expected = {
    f'{topic}/{p}@{o}'
    for line, (p, o, _) in zip(produced['lines'], produced['records'])
    if parse_valid_event(line) is None
  }
  assert len(expected) == produced['counts']['malformed'] > 0
  dead = sqlite_table(kafka_job['db'], 'dead_letters')
  assert {d['origin'] for d in dead} == expected
  assert len(dead) == len(expected)
  assert {d['source'] for d in dead} == {topic}


def test_kafka_sink_writes_rows_keyed_by_row_key(kafka_job, kafka_bootstrap, topic):
  """--sink=kafka: every abandon_metrics row is on cc-abandon-metrics as JSON keyed by
  `["<queue_id>","<channel>",<window_start>]` (last record per key = the row), dead
  letters on cc-dead-letters keyed by `["<source>","<origin>"]`."""
  rows = {
    (r['queue_id'], r['channel'], r['window_start']): r
    for r in sqlite_table(kafka_job['db'], 'abandon_metrics')
  }
  latest = {}
  for key, value in consume_from(kafka_bootstrap, kafka_job['before'][TOPICS['abandon_metrics']]):
    latest[tuple(json.loads(key))] = json.loads(value)
  ours = {k: v for k, v in latest.items() if k in rows}
  assert ours == rows, f'{len(ours)} of {len(rows)} rows on the topic, or values differ'

  dead_keys = {
    tuple(json.loads(key))
    for key, _ in consume_from(kafka_bootstrap, kafka_job['before'][TOPICS['dead_letters']])
  }
  dead = {(d['source'], d['origin']) for d in sqlite_table(kafka_job['db'], 'dead_letters')}
  assert dead and dead <= dead_keys


def test_expansion_service_gives_embedded_java_and_a_native_unbounded_read(
  expansion_service, kafka_bootstrap
):
  """The service's settings the Flink jobs depend on (scripts/stack/expansion_service.sh): Java
  transforms in the EMBEDDED environment (DOCKER fails here), and an unbounded read expanded to
  the native Read primitive (use_deprecated_read), as the SDF read fails on checkpoints."""
  pipeline = beam.Pipeline(options=PipelineOptions(['--streaming']))
  _ = pipeline | ReadKafkaRecords('probe', kafka_bootstrap, 'probe', expansion_service)
  proto = pipeline.to_runner_api()
  envs = proto.components.environments
  read = {
    t.spec.urn: t
    for t in proto.components.transforms.values()
    if 'ReadFromKafka' in t.unique_name and not t.subtransforms
  }
  java_envs = {envs[t.environment_id].urn for t in read.values() if t.environment_id}
  assert java_envs == {'EMBEDDED'}, java_envs
  assert 'beam:transform:read:v1' in read, sorted(read)


# --- the same job, unbounded, on the local Flink cluster ---------------------------------------
@pytest.fixture(scope='module')
def flink_cluster(flink_job_server_jar):
  """scripts/flink.sh start (JobManager, TaskManager, Python worker pool); stopped afterwards
  if this fixture started it."""
  env = dict(os.environ, RUN_DIR=str(RUN_DIR))
  env['PATH'] = f'{os.path.dirname(sys.executable)}{os.pathsep}{env.get("PATH", "")}'
  env.setdefault('BEAM_PYTHON', sys.executable)  # the worker pool runs this interpreter
  script = str(REPO / 'scripts' / 'flink.sh')
  was_running = (
    subprocess.run([script, 'status'], cwd=REPO, env=env, capture_output=True).returncode == 0
  )
  start = subprocess.run(
    [script, 'start'], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
  )
  assert start.returncode == 0, f'flink.sh start failed:\n{start.stderr[-4000:]}'
  yield
  if not was_running:
    subprocess.run([script, 'stop'], cwd=REPO, env=env, capture_output=True, timeout=300)


def _cancel_flink_job(job_name, timeout=60):
  """Cancels the job through Flink's REST API and waits until it is terminal. The portable
  PipelineResult.cancel() is not enough: on a remote cluster it only stops the job server's
  submission thread, and the Flink job keeps running (and holding its slots)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    live = [
      j
      for j in rest('/jobs/overview')['jobs']
      if j['name'] == job_name and j['state'] not in ('CANCELED', 'FAILED', 'FINISHED')
    ]
    if not live:
      return
    for job in live:
      if job['state'] != 'CANCELLING':
        try:
          rest(f'/jobs/{job["jid"]}?mode=cancel', method='PATCH')
        except OSError:
          pass  # it may have become terminal meanwhile
    time.sleep(1)
  raise AssertionError(f'Flink job {job_name} still not cancelled after {timeout} s')


def stop_cluster_job(job_name, result):
  """Cancels the cluster job (Flink REST) and ends the submitting side's portable job."""
  try:
    _cancel_flink_job(job_name)
  finally:
    result.cancel()
    try:
      result.wait_until_finish()
    except Exception:  # pylint: disable=broad-except
      pass  # a cancelled portable job ends as CANCELLED or FAILED


def root_exception(jid):
  try:
    text = rest(f'/jobs/{jid}/exceptions').get('root-exception') or ''
  except OSError:
    return ''
  return '\n'.join(line for line in text.splitlines() if 'Exception' in line or 'Error' in line)[
    :2000
  ]


def wait_for_free_slots(slots, timeout=180):
  """The cluster may be shared (another job holding the slots fails ours with
  NoResourceAvailableException after its restarts): wait for room, then fail clearly."""
  deadline = time.monotonic() + timeout
  while rest('/overview')['slots-available'] < slots:
    if time.monotonic() > deadline:
      running = [j['name'] for j in rest('/jobs/overview')['jobs'] if j['state'] == 'RUNNING']
      raise AssertionError(
        f'no {slots} free slots on the Flink cluster after {timeout} s; running jobs: {running}'
      )
    time.sleep(2)


def committed_offsets(bootstrap, group):
  admin = KafkaAdminClient(bootstrap_servers=bootstrap)
  try:
    return sum(meta.offset for meta in admin.list_group_offsets(group).get(group, {}).values())
  finally:
    admin.close()


def cluster_job_args(job_name, flink_job_server_jar, kafka_bootstrap, expansion_service, *job_args):
  """The main job reading Kafka unbounded on the local cluster: EXTERNAL workers of the
  pool, parallelism 2, RocksDB checkpoints every 5 s; `job_args` add topics and sinks."""
  return [
    '--runner=FlinkRunner',
    '--flink_master=127.0.0.1:8081',
    f'--flink_job_server_jar={flink_job_server_jar}',
    '--environment_type=EXTERNAL',
    f'--environment_config={WORKER_POOL}',
    '--parallelism=2',
    f'--job_name={job_name}',
    '--checkpointing_interval=5000',
    '--state_backend=rocksdb',
    f'--state_backend_storage_path=file://{RUN_DIR}/flink/checkpoints',
    '--finish_bundle_before_checkpointing',
    '--streaming',
    '--source=kafka',
    f'--kafka_bootstrap_servers={kafka_bootstrap}',
    f'--kafka_expansion_service={expansion_service}',
    *job_args,
  ]


def test_unbounded_job_on_the_flink_cluster_with_checkpoints(
  flink_cluster, new_topic, produced, kafka_bootstrap, expansion_service, flink_job_server_jar
):
  """Unbounded KafkaIO (native Read) on the cluster, EXTERNAL workers, RocksDB checkpoints:
  the rows converge to the reference, checkpoints complete, offsets are committed."""
  topic = new_topic('it-calls-cluster')
  produce_lines(produced['lines'], topic, kafka_bootstrap)
  db = produced['work'] / 'cluster.db'
  group = f'it-{topic}'
  job_name = f'it-kafka-{topic}'
  args = cluster_job_args(
    job_name,
    flink_job_server_jar,
    kafka_bootstrap,
    expansion_service,
    f'--kafka_call_events_topic={topic}',
    '--kafka_data_actions_topic=',
    f'--kafka_consumer_group={group}',
    f'--sqlite_path={db}',
  )
  expected = comparable_rows(reference_call_metrics(str(produced['path'])))
  wait_for_free_slots(2)
  t0 = time.monotonic()
  options = PipelineOptions(args)
  pipeline = beam.Pipeline(options=options)
  prepare_sinks = contact_center.build(pipeline, options)
  prepare_sinks()
  result = pipeline.run()
  state = {}
  try:
    deadline = time.monotonic() + 300
    while True:
      rows, ckpt = None, 0
      try:
        rows = {
          (r['queue_id'], r['window_start']): [r[c] for c in ROW_COLUMNS]
          for r in sqlite_table(db, 'abandon_metrics')
        }
      except sqlite3.OperationalError:
        pass  # no table yet
      jobs = [j for j in rest('/jobs/overview')['jobs'] if j['name'] == job_name]
      if jobs:
        state = jobs[0]
        # RESTARTING is tolerated until the deadline (e.g. waiting for free slots)
        assert state['state'] not in ('FAILED', 'CANCELED', 'FINISHED'), (
          f'job {state["state"]}: {root_exception(state["jid"])}'
        )
        ckpt = completed_checkpoints(state['jid'])
      committed = committed_offsets(kafka_bootstrap, group)
      if rows == expected and ckpt >= 1 and committed == len(produced['lines']):
        break
      assert time.monotonic() < deadline, (
        f'after 300 s: {len(rows or {})} of {len(expected)} rows '
        f'({"equal" if rows == expected else "differ"}), {ckpt} checkpoints, '
        f'{committed} of {len(produced["lines"])} offsets committed; job {state.get("state")}'
        f' {root_exception(state["jid"]) if state else ""}'
      )
      time.sleep(3)
    print(
      f'\nFlink cluster job: rows exact, {ckpt} checkpoints, {committed} offsets committed '
      f'after {time.monotonic() - t0:.1f} s\n  ' + ' '.join(args)
    )
  finally:
    stop_cluster_job(job_name, result)
  assert len(sqlite_table(db, 'dead_letters')) == produced['counts']['malformed']
