"""Poison records on the real stack: produced to Kafka between valid events of both sources,
read by the unbounded main job on the local Flink cluster (EXTERNAL Python workers, RocksDB
checkpoints). The job stays RUNNING without a single restart, its rows equal the plain-Python
references, and every poison record is one dead letter with its reason, in the dead-letter
table and on the dead-letter topic. Also: the broker itself refuses a far-future record
timestamp, which would otherwise move KafkaIO's CreateTime watermark (scripts/stack/kafka.sh).

  .venv/bin/python -m pytest tests/integration/test_flink_poison.py -v -s
"""

import json
import random
import time

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from kafka import KafkaProducer
from kafka.errors import InvalidTimestampError

from pipelines import contact_center
from scripts.produce_events import produce_lines, read_lines, rebase_lines
from testing.datagen.calls import write_call_events
from testing.datagen.data_actions import write_data_actions
from testing.reference.calls import ROW_COLUMNS, comparable_rows, reference_call_metrics
from testing.reference.interactions import reference_interactions
from tests.integration.test_kafka_flink import (  # noqa: F401  (fixtures)
  cluster_job_args,
  consume_from,
  flink_cluster,
  new_topic,
  root_exception,
  sqlite_table,
  stop_cluster_job,
  topic_end_offsets,
  wait_for_free_slots,
)
from tests.support.flink_rest import completed_checkpoints, rest
from tests.support.poison import DAY_MS, POISON_CALLS, POISON_DATA_ACTIONS
from transforms.kafka_io import TOPICS


def poisoned_lines(lines, poison, seed):
  """`lines` rebased to now, with the poison records (whose times are now already) at random
  places, never first."""
  lines, _ = rebase_lines(lines, int(time.time() * 1000))
  rng = random.Random(seed)
  for raw, _ in poison:
    lines.insert(rng.randrange(1, len(lines)), raw)
  return lines


def _produce(tmp, name, lines, topic, bootstrap):
  path = tmp / f'{name}.produced.jsonl'
  path.write_bytes(b''.join(line + b'\n' for line in lines))
  result = produce_lines(lines, topic, bootstrap, keep_metadata=True)
  assert result['count'] == len(lines)
  return path, lines, result['records']


def _expected_dead(topic, lines, records, poison):
  reasons = dict(poison)
  return {
    f'{topic}/{p}@{o}': reasons[line] for line, (p, o, _) in zip(lines, records) if line in reasons
  }


def test_the_broker_refuses_a_far_future_record_timestamp(kafka_bootstrap, new_topic):
  topic = new_topic('it-future')
  producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, retries=0)
  try:
    future = producer.send(topic, b'{}', timestamp_ms=int(time.time() * 1000) + 30 * DAY_MS)
    with pytest.raises(InvalidTimestampError):
      future.get(timeout=30)
  finally:
    producer.close()


def test_poison_records_on_flink_leave_the_job_running_and_the_rows_exact(
  flink_cluster, new_topic, tmp_path, kafka_bootstrap, expansion_service, flink_job_server_jar
):
  generated_calls = tmp_path / 'calls.jsonl'
  generated_actions = tmp_path / 'actions.jsonl'
  write_call_events(
    str(generated_calls),
    800,
    seed=31,
    events_per_second=5,
    jitter_seconds=5.0,
    too_late_share=0.0,
    late_within_lateness_share=0.0,
  )
  write_data_actions(str(generated_actions), 1500, seed=32, too_late_share=0.0)
  calls_topic, actions_topic = new_topic('it-poison-calls'), new_topic('it-poison-actions')
  calls_path, call_lines, call_records = _produce(
    tmp_path,
    'calls',
    poisoned_lines(read_lines(str(generated_calls)), POISON_CALLS, 3),
    calls_topic,
    kafka_bootstrap,
  )
  actions_path, action_lines, action_records = _produce(
    tmp_path,
    'actions',
    poisoned_lines(read_lines(str(generated_actions)), POISON_DATA_ACTIONS, 4),
    actions_topic,
    kafka_bootstrap,
  )
  expected_dead = _expected_dead(calls_topic, call_lines, call_records, POISON_CALLS)
  expected_dead.update(
    _expected_dead(actions_topic, action_lines, action_records, POISON_DATA_ACTIONS)
  )
  assert len(expected_dead) == len(POISON_CALLS) + len(POISON_DATA_ACTIONS)

  calls_ref = reference_call_metrics(str(calls_path))
  assert not calls_ref.late
  expected_rows = comparable_rows(calls_ref)
  actions_ref = reference_interactions(str(actions_path))
  dead_topic_start = topic_end_offsets(kafka_bootstrap, TOPICS['dead_letters'])

  db = tmp_path / 'poison.db'
  job_name = f'it-poison-{calls_topic}'
  args = cluster_job_args(
    job_name,
    flink_job_server_jar,
    kafka_bootstrap,
    expansion_service,
    f'--kafka_call_events_topic={calls_topic}',
    f'--kafka_data_actions_topic={actions_topic}',
    f'--kafka_consumer_group=it-{calls_topic}',
    '--sink=sqlite',
    '--sink=kafka',
    f'--sqlite_path={db}',
  )
  wait_for_free_slots(2)
  options = PipelineOptions(args)
  pipeline = beam.Pipeline(options=options)
  prepare_sinks = contact_center.build(pipeline, options)
  prepare_sinks()
  t0 = time.monotonic()
  result = pipeline.run()
  jid, observed = None, {}
  try:
    deadline = time.monotonic() + 400
    while True:
      jobs = [j for j in rest('/jobs/overview')['jobs'] if j['name'] == job_name]
      if jobs:
        jid = jobs[0]['jid']
        assert jobs[0]['state'] in ('CREATED', 'INITIALIZING', 'RUNNING'), (
          f'job {jobs[0]["state"]}: {root_exception(jid)}'
        )
        restarts = rest(f'/jobs/{jid}/metrics?get=numRestarts')
        assert all(int(m['value']) == 0 for m in restarts), (
          f'the job restarted: {root_exception(jid)}'
        )
      try:
        observed = {
          'rows': {
            (r['queue_id'], r['window_start']): [r[c] for c in ROW_COLUMNS]
            for r in sqlite_table(db, 'abandon_metrics')
          },
          'volumes': {
            (r['channel'], r['window_start']): r['volume']
            for r in sqlite_table(db, 'interaction_volumes')
          },
          'alerts': {
            (r['customer_id'], r['channel'], r['timestamp'])
            for r in sqlite_table(db, 'pattern_alerts')
          },
          'dead': {r['origin']: r['reason'] for r in sqlite_table(db, 'dead_letters')},
        }
      except Exception:  # pylint: disable=broad-except
        observed = {}  # no tables yet
      if (
        observed.get('rows') == expected_rows
        and observed.get('volumes') == actions_ref.volumes
        and observed.get('alerts') == actions_ref.alerts
        and {o: observed['dead'].get(o) for o in expected_dead} == expected_dead
        and jid
        and completed_checkpoints(jid) >= 1
      ):
        break
      assert time.monotonic() < deadline, (
        f'after 400 s: {len(observed.get("rows") or {})} of {len(expected_rows)} rows, '
        f'{len(observed.get("volumes") or {})} of {len(actions_ref.volumes)} volumes, '
        f'{len(observed.get("alerts") or ())} of {len(actions_ref.alerts)} alerts, '
        f'{sum(o in observed.get("dead", {}) for o in expected_dead)} of '
        f'{len(expected_dead)} poison dead letters'
      )
      time.sleep(3)
    print(
      f'\npoison on Flink: rows, volumes, alerts exact, {len(expected_dead)} poison dead '
      f'letters, 0 restarts after {time.monotonic() - t0:.1f} s'
    )
  finally:
    stop_cluster_job(job_name, result)

  on_topic = [json.loads(value) for _, value in consume_from(kafka_bootstrap, dead_topic_start)]
  topic_reasons = {d['origin']: d['reason'] for d in on_topic}
  assert {o: topic_reasons.get(o) for o in expected_dead} == expected_dead
