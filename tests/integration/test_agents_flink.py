"""Agents through Kafka on the Flink cluster into Cassandra.

The main job reads a fresh agent-events topic unbounded on the local Flink
cluster (scripts/submit_flink.sh cluster --detach, EXTERNAL workers,
RocksDB checkpoints) and writes Cassandra. Two agents log in to a queue;
the test waits for agent_status to count them available, moves one onto a
contact and the other on a break, and waits for each change to show
within seconds; then one logs out.

Needs Kafka, Cassandra, the expansion service (scripts/stack.sh up) and the
cluster (scripts/flink.sh); nothing skips. Run it under the cluster's lock:

  flock /tmp/flink.lock .venv/bin/python -m pytest tests/integration/test_agents_flink.py
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

QUEUE = 'Q-AGENTS'
# How long the job may take to show each change (generous for a loaded
# 2-core machine; the change itself is one stateful step per agent and
# one per queue).
WAIT_S = 120


def _agent(agent_id: str, state: str, at_ms: int, reason: str = '', contact: str = '') -> bytes:
  return json.dumps(
    {
      'event_type': 'AGENT_STATE',
      'agent_id': agent_id,
      'timestamp': at_ms,
      'state': state,
      'reason': reason or None,
      'queues': [QUEUE],
      'contact_id': contact or None,
    }
  ).encode()


def _status(session, keyspace):
  rows = list(
    session.execute(
      'SELECT logged_in, available, on_contact, after_contact_work, not_ready, '
      f'not_ready_reasons FROM {keyspace}.agent_status '
      f"WHERE queue_id = '{QUEUE}' AND channel = 'voice'"
    )
  )
  if not rows:
    return None
  r = rows[0]
  return (
    r.logged_in,
    r.available,
    r.on_contact,
    r.after_contact_work,
    r.not_ready,
    json.loads(r.not_ready_reasons),
  )


def test_agents_by_state_follow_their_events_on_flink(
  flink_standalone, topic, fresh_keyspace, cassandra_session, kafka_bootstrap, expansion_service
):
  group = f'it-{topic}'
  wait_cluster_free()
  job = Submitted(
    f'it-agents-{topic}',
    [
      *recovery_job_args(topic, fresh_keyspace, group),
      '--kafka_call_events_topic=',
      f'--kafka_agent_events_topic={topic}',
    ],
  )
  try:
    wait_until('all tasks running', lambda: all_tasks_running(job.jid), WAIT_S)
    t0 = int(time.time() * 1000)

    def shows(what, expected):
      wait_until(what, lambda: _status(cassandra_session, fresh_keyspace) == expected, WAIT_S)

    produce_lines(
      [_agent('A-1', 'available', t0), _agent('A-2', 'available', t0 + 100)],
      topic,
      kafka_bootstrap,
    )
    shows('two agents available', (2, 2, 0, 0, 0, {}))
    produce_lines(
      [
        _agent('A-1', 'on_contact', t0 + 2000, contact='c-1'),
        _agent('A-2', 'not_ready', t0 + 2100, reason='Break'),
      ],
      topic,
      kafka_bootstrap,
    )
    shows('one on a contact, one on a break', (2, 0, 1, 0, 1, {'Break': 1}))
    produce_lines([_agent('A-2', 'logged_out', t0 + 4000)], topic, kafka_bootstrap)
    shows('the other logged out', (1, 0, 1, 0, 0, {}))
  finally:
    job.cancel()
