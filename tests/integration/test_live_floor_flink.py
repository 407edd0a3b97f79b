"""The live floor through Kafka on the Flink cluster into Cassandra.

The main job reads a fresh call-events topic unbounded on the local Flink
cluster (scripts/submit_flink.sh cluster --detach, EXTERNAL workers,
RocksDB checkpoints) and writes Cassandra. Two contacts enter a queue; the
test waits for queue_status and waiting_contacts to show them, then sees
the longest wait grow with no new event (the processing-time refresh, which
the local runner never fires), then answers one and abandons the other and
waits for each to leave both tables.

Needs Kafka, Cassandra, the expansion service (scripts/stack.sh up) and the
cluster (scripts/flink.sh); nothing skips. Run it under the cluster's lock:

  flock /tmp/flink.lock .venv/bin/python -m pytest tests/integration/test_live_floor_flink.py
"""

import json
import time

from scripts.produce_events import produce_lines
from tests.integration.test_flink_recovery import (
  Submitted,
  all_tasks_running,
  recovery_job_args,
  topic,  # noqa: F401 (a fixture the tests take as an argument)
  wait_cluster_free,
  wait_until,
)

QUEUE = 'Q-LIVE'
STATUS_INTERVAL_S = 2
# How long the job may take to show each change (a changed row reaches the
# sink within a bundle and a checkpoint-independent write; generous for a
# loaded 2-core machine).
WAIT_S = 120


def _event(call_uuid: str, event_type: str, at_ms: int, abandoned: bool = False) -> bytes:
  return json.dumps(
    {
      'call_uuid': call_uuid,
      'event_type': event_type,
      'timestamp': at_ms,
      'queue_id': QUEUE,
      'abandoned': abandoned,
      'wait_time_seconds': 0,
      'agent_id': None,
    }
  ).encode()


def _status(session, keyspace):
  rows = list(
    session.execute(
      f'SELECT waiting, oldest_waiting_since, longest_wait_seconds, as_of, updated_at '
      f"FROM {keyspace}.queue_status WHERE queue_id = '{QUEUE}' AND channel = 'voice'"
    )
  )
  return rows[0] if rows else None


def _listed(session, keyspace):
  rows = list(
    session.execute(
      f'SELECT contacts FROM {keyspace}.waiting_contacts '
      f"WHERE queue_id = '{QUEUE}' AND channel = 'voice'"
    )
  )
  return [c['contact_id'] for c in json.loads(rows[0].contacts)] if rows else None


def test_a_queued_contact_enters_and_leaves_the_live_floor_on_flink(
  flink_standalone, topic, fresh_keyspace, cassandra_session, kafka_bootstrap, expansion_service
):
  group = f'it-{topic}'
  wait_cluster_free()
  job = Submitted(
    f'it-live-{topic}',
    [
      *recovery_job_args(topic, fresh_keyspace, group),
      f'--status_interval_seconds={STATUS_INTERVAL_S}',
    ],
  )
  try:
    wait_until('all tasks running', lambda: all_tasks_running(job.jid), WAIT_S)
    queued_at = int(time.time() * 1000)
    produce_lines(
      [_event('c-1', 'CALL_QUEUED', queued_at), _event('c-2', 'CALL_QUEUED', queued_at + 1000)],
      topic,
      kafka_bootstrap,
    )
    status = wait_until(
      'both contacts waiting',
      lambda: (s := _status(cassandra_session, fresh_keyspace)) and s.waiting == 2 and s,
      WAIT_S,
    )
    assert status.oldest_waiting_since == queued_at
    assert wait_until(
      'both listed, oldest first',
      lambda: _listed(cassandra_session, fresh_keyspace) == ['c-1', 'c-2'],
      WAIT_S,
    )
    # No new event: the refresh moves the row on, extrapolating its clock.
    refreshed = wait_until(
      'a refreshed row',
      lambda: (s := _status(cassandra_session, fresh_keyspace)) and s.as_of > status.as_of and s,
      WAIT_S,
    )
    assert refreshed.waiting == 2
    assert refreshed.longest_wait_seconds > status.longest_wait_seconds
    assert refreshed.updated_at > status.updated_at

    produce_lines([_event('c-1', 'CALL_ANSWERED', queued_at + 3000)], topic, kafka_bootstrap)
    status = wait_until(
      'the answered contact gone',
      lambda: (s := _status(cassandra_session, fresh_keyspace)) and s.waiting == 1 and s,
      WAIT_S,
    )
    assert status.oldest_waiting_since == queued_at + 1000
    assert wait_until(
      'only the other listed', lambda: _listed(cassandra_session, fresh_keyspace) == ['c-2'], WAIT_S
    )

    produce_lines(
      [_event('c-2', 'CALL_ENDED', queued_at + 6000, abandoned=True)], topic, kafka_bootstrap
    )
    status = wait_until(
      'nobody waiting',
      lambda: (s := _status(cassandra_session, fresh_keyspace)) and s.waiting == 0 and s,
      WAIT_S,
    )
    assert status.oldest_waiting_since is None and status.longest_wait_seconds == 0
    assert wait_until(
      'none listed', lambda: _listed(cassandra_session, fresh_keyspace) == [], WAIT_S
    )
  finally:
    job.cancel()
