"""Alerts on Flink: the main job reads the alerting scenario's calls from
Kafka on embedded Flink (LOOPBACK workers, so the receivers' variables are
this process's environment, as they would be the worker pool's on a
cluster) and delivers to the real receivers on loopback
(tests/support/alert_scenario.py): a queue breaches and recovers, and each
receiver gets the firing and the resolved notification once per
idempotency key, the webhook's signed.

Needs Kafka and the expansion service (scripts/stack.sh up) and the Flink
job-server jar; nothing skips. The restatement by late calls is left to
tests/test_alerts_e2e.py: a bounded Kafka read gives no control over when
the watermark passes a window, so which calls are late is not fixed here.
"""

import json
import sqlite3
import time

import pytest

from pipelines import contact_center
from scripts.produce_events import produce_lines, rebase_lines
from tests.integration.test_kafka_flink import (  # noqa: F401 (new_topic: a fixture)
  consume_from,
  new_topic,
  topic_end_offsets,
)
from tests.support import alert_scenario
from transforms.kafka_io import TOPICS


@pytest.fixture
def running_receivers(tmp_path, monkeypatch):
  with alert_scenario.receivers(tmp_path, monkeypatch) as running:
    yield running


def test_a_breach_and_its_recovery_reach_every_receiver_on_flink(
  tmp_path,
  running_receivers,
  new_topic,  # noqa: F811 (the fixture imported above)
  kafka_bootstrap,
  expansion_service,
  flink_job_server_jar,
):
  hook, slack, smtp = running_receivers
  topic = new_topic('it-alerts')
  # Event time near now: the broker keeps records by their timestamps.
  lines, _ = rebase_lines(
    [line.encode() for line in alert_scenario.breach_and_recovery()], int(time.time() * 1000)
  )
  produced = produce_lines(lines, topic, kafka_bootstrap, keep_metadata=True)
  assert produced['count'] == len(lines)
  db = tmp_path / 'out.db'
  alerts_topic = TOPICS['alerts']
  before = topic_end_offsets(kafka_bootstrap, alerts_topic)
  result = contact_center.run(
    [
      '--runner=FlinkRunner',
      '--flink_master=[local]',
      f'--flink_job_server_jar={flink_job_server_jar}',
      '--environment_type=LOOPBACK',
      '--source=kafka',
      f'--kafka_bootstrap_servers={kafka_bootstrap}',
      f'--kafka_expansion_service={expansion_service}',
      f'--kafka_call_events_topic={topic}',
      '--kafka_data_actions_topic=',
      f'--kafka_max_num_records={len(lines)}',
      f'--kafka_consumer_group=it-{topic}',
      '--sink=sqlite',
      '--sink=kafka',
      f'--sqlite_path={db}',
      f'--alert_rules={alert_scenario.write_rules(tmp_path, smtp.port)}',
      *alert_scenario.JOB_FLAGS,
    ]
  )
  assert str(result.state).endswith('DONE'), result.state

  with sqlite3.connect(db) as conn:
    notifications = conn.execute(
      'SELECT notification_id, kind, value FROM alert_notifications ORDER BY created_at'
    ).fetchall()
    alert = conn.execute(
      'SELECT state, delivery_status FROM alerts WHERE rule = ?', (alert_scenario.RULE,)
    ).fetchone()
  assert [(kind, value) for _, kind, value in notifications] == [
    ('firing', 0.4),
    ('resolved', 0.0),
  ]
  assert alert == ('resolved', 'delivered')
  ids = sorted(n[0] for n in notifications)
  assert sorted(hook.accepted) == ids and hook.rejected_signatures == 0
  assert sorted(slack.accepted) == ids
  assert len(smtp.messages) == 2 and all(tls for *_, tls in smtp.messages)
  # The alert's rows on its compacted topic, keyed by rule, queue and
  # channel; the newest says what the table says.
  records = [
    (json.loads(key), json.loads(value))
    for key, value in consume_from(kafka_bootstrap, before)
    if json.loads(key) == [alert_scenario.RULE, 'Q-1', 'voice']
  ]
  assert records, f'no alert row on {alerts_topic}'
  newest = max((value for _, value in records), key=lambda v: v['revision'])
  assert (newest['state'], newest['delivery_status']) == ('resolved', 'delivered')
