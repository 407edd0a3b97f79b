"""The main job reading REAL Kafka through cross-language KafkaIO on the portable FlinkRunner
(embedded Flink, `--flink_master=[local]`, LOOPBACK Python workers), end to end.

Needs: Kafka on 127.0.0.1:9092 and the KafkaIO expansion service on 127.0.0.1:8097 (both from
scripts/stack.sh up), java, and the Flink job-server jar with KafkaIO shaded in (the
flink_job_server_jar fixture runs scripts/fetch_flink.sh). Nothing here skips: a missing piece
is a failure.

One Flink job (~40-70 s here, most of it Flink/JVM start-up, not data) serves all tests: a
generated call-event file (no too-late events, jitter below the watermark delay, rebased to now)
is produced to a fresh 2-partition topic with record timestamp = event time, and the job reads
exactly that many records (`--kafka_max_num_records`: KafkaIO's bounded reader, so the job ends
and, as nothing is late, its final rows do not depend on watermark timing), writing to SQLite
AND Kafka (`--sink=sqlite --sink=kafka`).

  .venv/bin/python -m pytest tests/integration/test_kafka_flink.py -v -s
"""
import json
import sqlite3
import time
import uuid
from typing import Dict, List, Tuple

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from tests.integration.conftest import assert_reachable
from pipelines import contact_center
from scripts.generate_events import write_call_events
from scripts.produce_events import produce_lines, read_lines, rebase_lines
from scripts.reference import (abandon_rate, parse_valid_event, reference_call_metrics,
                               service_level)
from transforms.kafka_io import TOPICS

CALLS = 2000         # distinct calls; ~2,130 lines with duplicates, other types, malformed
PARTITIONS = 2
ROW_COLUMNS = ('total_calls', 'abandoned_calls', 'short_abandoned_calls', 'answered_within_sl',
               'total_wait_seconds', 'window_end', 'abandon_rate', 'service_level')


# Portable runners send every pipeline option to the job server as a protobuf Struct; a set-
# valued option cannot be encoded ("ParseError: Value frozenset({'FAILED'}) has unexpected type
# <class 'frozenset'> at Struct.beam:option:failure_statuses:v1"). options/interaction_options.py
# parses --failure_statuses/--callback_statuses to frozensets, so `python -m
# pipelines.contact_center --runner=FlinkRunner` fails before submission. Until that is fixed
# there, encode sets as sorted lists (the flows receive their frozensets at construction time;
# the Struct copy is only informational). Does nothing once no option value is a set.
@pytest.fixture(scope='module', autouse=True)
def _encodable_set_options():
  from apache_beam.runners.job import utils as job_utils
  original = job_utils.dict_to_struct

  def dict_to_struct(values):
    return original({k: sorted(v) if isinstance(v, (set, frozenset)) else v
                     for k, v in values.items()})

  mp = pytest.MonkeyPatch()
  mp.setattr(job_utils, 'dict_to_struct', dict_to_struct)
  yield
  mp.undo()


@pytest.fixture(scope='module')
def topic(kafka_bootstrap):
  """A fresh topic with PARTITIONS partitions (deleted afterwards)."""
  assert_reachable(kafka_bootstrap, 'Kafka', 'start it with scripts/stack.sh up')
  name = f'it-calls-{uuid.uuid4().hex[:10]}'
  admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30000)
  try:
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)],
                        timeout_ms=30000)
    deadline = time.monotonic() + 30
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
      while len(consumer.partitions_for_topic(name) or ()) < PARTITIONS:
        assert time.monotonic() < deadline, f'topic {name} has no {PARTITIONS} partitions'
        time.sleep(0.2)
    finally:
      consumer.close()
    yield name
  finally:
    try:
      admin.delete_topics([name], timeout_ms=30000)
    except Exception as exc:  # pylint: disable=broad-except
      print(f'could not delete topic {name}: {exc}')
    admin.close()


@pytest.fixture(scope='module')
def produced(tmp_path_factory, topic, kafka_bootstrap):
  """The generated file, rebased to now, produced in file order to `topic`."""
  work = tmp_path_factory.mktemp('kafka_flink')
  generated = work / 'calls.jsonl'
  counts = write_call_events(
      str(generated), CALLS, seed=23, events_per_second=5, jitter_seconds=5.0,
      too_late_share=0.0, late_within_lateness_share=0.0)
  lines, shift_ms = rebase_lines(read_lines(str(generated)), int(time.time() * 1000))
  path = work / 'calls.produced.jsonl'  # exactly what the topic holds
  path.write_bytes(b''.join(line + b'\n' for line in lines))
  result = produce_lines(lines, topic, kafka_bootstrap, keep_metadata=True)
  print(f"\nproduced {result['count']} records to {topic} ({PARTITIONS} partitions) in "
        f"{result['seconds']:.2f} s ({result['rate']:.0f}/s); event times shifted by "
        f"{shift_ms / 86400000:+.1f} days")
  assert result['count'] == len(lines) == counts['lines']
  assert len({p for p, _, _ in result['records']}) == PARTITIONS
  return {'path': path, 'lines': lines, 'records': result['records'], 'counts': counts,
          'work': work}


def _end_offsets(bootstrap: str, topic: str) -> Dict[TopicPartition, int]:
  consumer = KafkaConsumer(bootstrap_servers=bootstrap)
  try:
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    assert partitions, f'topic {topic} does not exist (scripts/kafka.sh creates it)'
    return consumer.end_offsets(partitions)
  finally:
    consumer.close()


def _consume(bootstrap: str, start: Dict[TopicPartition, int]) -> List[Tuple[bytes, bytes]]:
  """(key, value) of every record from `start` to the current end, in offset order."""
  end = _end_offsets(bootstrap, next(iter(start)).topic)
  consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
  out = []
  try:
    consumer.assign(list(start))
    for tp, offset in start.items():
      consumer.seek(tp, offset)
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < end[tp] for tp in start):
      assert time.monotonic() < deadline, 'could not read the sink topic to its end in 60 s'
      for records in consumer.poll(timeout_ms=1000).values():
        out.extend((r.key, r.value) for r in records if r.offset < end[TopicPartition(r.topic, r.partition)])
  finally:
    consumer.close()
  return out


@pytest.fixture(scope='module')
def kafka_job(produced, topic, kafka_bootstrap, expansion_service, flink_job_server_jar):
  """Runs the main job once on embedded Flink; returns the SQLite path and the sink-topic
  offsets from before the job."""
  db = produced['work'] / 'out.db'
  sink_topics = (TOPICS['abandon_metrics'], TOPICS['dead_letters'])
  before = {t: _end_offsets(kafka_bootstrap, t) for t in sink_topics}
  args = [
      '--runner=FlinkRunner', '--flink_master=[local]',
      f'--flink_job_server_jar={flink_job_server_jar}', '--environment_type=LOOPBACK',
      '--source=kafka', f'--kafka_bootstrap_servers={kafka_bootstrap}',
      f'--kafka_expansion_service={expansion_service}',
      f'--kafka_call_events_topic={topic}', '--kafka_data_actions_topic=',
      f"--kafka_max_num_records={len(produced['lines'])}",
      f'--kafka_consumer_group=it-{topic}',
      '--sink=sqlite', '--sink=kafka', f'--sqlite_path={db}',
  ]
  t0 = time.monotonic()
  result = contact_center.run(args)
  wall = time.monotonic() - t0
  print(f'\nFlink [local] job: {result.state} in {wall:.1f} s\n  ' + ' '.join(args))
  assert str(result.state).endswith('DONE'), result.state
  return {'db': db, 'before': before, 'wall': wall}


def _reference_rows(ref) -> Dict[tuple, list]:
  return {
      key: [r['total_calls'], r['abandoned_calls'], r['short_abandoned_calls'],
            r['answered_within_sl'], float(r['total_wait_seconds']), r['window_end_ms'],
            float(abandon_rate(r)), float(service_level(r))]
      for key, r in ref.rows.items()
  }


def _table(db, name) -> List[dict]:
  conn = sqlite3.connect(db)
  conn.row_factory = sqlite3.Row
  try:
    return [dict(r) for r in conn.execute(f'SELECT * FROM {name}')]
  finally:
    conn.close()


def test_call_metrics_from_kafka_match_the_reference(kafka_job, produced):
  ref = reference_call_metrics(str(produced['path']))
  assert not ref.late, 'the produced file must have no late events (see module doc)'
  rows = {(r['queue_id'], r['window_start']): [r[c] for c in ROW_COLUMNS]
          for r in _table(kafka_job['db'], 'abandon_metrics')}
  assert rows == _reference_rows(ref)
  assert sum(r[0] for r in rows.values()) == produced['counts']['valid'] == CALLS
  assert _table(kafka_job['db'], 'late_events') == []


def test_malformed_records_are_dead_letters_with_their_offsets(kafka_job, produced, topic):
  expected = {f'{topic}/{p}@{o}'
              for line, (p, o, _) in zip(produced['lines'], produced['records'])
              if parse_valid_event(line) is None}
  assert len(expected) == produced['counts']['malformed'] > 0
  dead = _table(kafka_job['db'], 'dead_letters')
  assert {d['origin'] for d in dead} == expected
  assert len(dead) == len(expected)
  assert {d['source'] for d in dead} == {topic}


def test_kafka_sink_writes_rows_keyed_by_row_key(kafka_job, kafka_bootstrap, topic):
  """--sink=kafka: every abandon_metrics row is on cc-abandon-metrics as JSON keyed by
  `queue_id|window_start` (last record per key = the row), dead letters on cc-dead-letters."""
  rows = {f"{r['queue_id']}|{r['window_start']}": r
          for r in _table(kafka_job['db'], 'abandon_metrics')}
  latest = {}
  for key, value in _consume(kafka_bootstrap, kafka_job['before'][TOPICS['abandon_metrics']]):
    latest[key.decode()] = json.loads(value)
  ours = {k: v for k, v in latest.items() if k in rows}
  assert ours == rows, f'{len(ours)} of {len(rows)} rows on the topic, or values differ'

  dead_keys = {key.decode() for key, _ in
               _consume(kafka_bootstrap, kafka_job['before'][TOPICS['dead_letters']])}
  dead = {f"{d['source']}|{d['origin']}" for d in _table(kafka_job['db'], 'dead_letters')}
  assert dead and dead <= dead_keys
