"""Smoke tests against the real Kafka and Cassandra started by scripts/stack.sh up.

They fail (never skip) when a service is down, so CI notices a broken stack.
"""

import time
import uuid

from cassandra.cluster import Cluster
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.integration.conftest import assert_reachable
from transforms.kafka_io import TOPICS

# The inputs, and one topic per result table (transforms/kafka_io.py).
PROJECT_TOPICS = {'cc-call-logs', 'cxone-data-actions', *TOPICS.values()}


def _assert_kafka_reachable(bootstrap):
  assert_reachable(bootstrap, 'Kafka', 'start it with scripts/stack.sh up')


def _consumer(bootstrap):
  return KafkaConsumer(
    bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=15000
  )


def test_kafka_has_project_topics(kafka_bootstrap):
  _assert_kafka_reachable(kafka_bootstrap)
  consumer = _consumer(kafka_bootstrap)
  try:
    missing = PROJECT_TOPICS - consumer.topics()
    assert not missing, f'topics not created by scripts/stack/kafka.sh: {sorted(missing)}'
    assert consumer.partitions_for_topic('cc-call-logs'), 'cc-call-logs has no partitions'
  finally:
    consumer.close()


def test_kafka_produce_consume_round_trip(kafka_bootstrap):
  _assert_kafka_reachable(kafka_bootstrap)
  topic = 'cc-call-logs'
  key = f'it-{uuid.uuid4().hex}'.encode()
  value = b'{"event":"integration-test","key":"%s"}' % key
  producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks='all', request_timeout_ms=15000)
  try:
    meta = producer.send(topic, key=key, value=value).get(timeout=30)
  finally:
    producer.close()
  assert meta.topic == topic and meta.offset >= 0

  consumer = _consumer(kafka_bootstrap)
  try:
    tp = TopicPartition(topic, meta.partition)
    consumer.assign([tp])
    consumer.seek(tp, meta.offset)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
      for record in consumer.poll(timeout_ms=1000).get(tp, []):
        if record.key == key:
          assert record.value == value
          assert record.offset == meta.offset
          return
    raise AssertionError(f'record {key!r} not consumed back from {tp} within 30s')
  finally:
    consumer.close()


def test_cassandra_cql_round_trip(cassandra_hosts, cassandra_port):
  assert_reachable(
    f'{cassandra_hosts[0]}:{cassandra_port}', 'Cassandra', 'start it with scripts/stack.sh up'
  )
  cluster = Cluster(
    cassandra_hosts, port=cassandra_port, connect_timeout=10, control_connection_timeout=10
  )
  keyspace = f'it_{uuid.uuid4().hex[:16]}'
  try:
    session = cluster.connect()
    version = session.execute('SELECT release_version FROM system.local').one()
    assert version.release_version.startswith('5.'), version
    session.execute(
      f'CREATE KEYSPACE {keyspace} WITH replication = '
      "{'class': 'SimpleStrategy', 'replication_factor': 1}",
      timeout=60,
    )
    try:
      session.execute(
        f'CREATE TABLE {keyspace}.calls (queue text, call_id text, abandoned boolean, '
        'wait_s int, PRIMARY KEY (queue, call_id))',
        timeout=60,
      )
      insert = session.prepare(
        f'INSERT INTO {keyspace}.calls (queue, call_id, abandoned, wait_s) VALUES (?, ?, ?, ?)'
      )
      session.execute(insert, ('billing', 'c-1', True, 42))
      session.execute(insert, ('billing', 'c-2', False, 7))
      rows = list(
        session.execute(
          f'SELECT call_id, abandoned, wait_s FROM {keyspace}.calls WHERE queue = %s', ('billing',)
        )
      )
      assert [(r.call_id, r.abandoned, r.wait_s) for r in rows] == [
        ('c-1', True, 42),
        ('c-2', False, 7),
      ]
    finally:
      session.execute(f'DROP KEYSPACE IF EXISTS {keyspace}', timeout=60)
  finally:
    cluster.shutdown()
