"""Alerts end to end: a supervisor's rule file, the main job on a call
stream, and real receivers on loopback (tests/support/alert_scenario.py).
A queue breaches, recovers, and then late calls change the story of the
breach: every notification reaches every receiver once per idempotency
key, and the follow-up says what changed."""

import json
import sqlite3

import pytest

from pipelines import contact_center
from tests.support.alert_scenario import (
  RULE,
  SECRET,
  SMTP_PASSWORD,
  SMTP_USER,
  receivers,
  write_inputs,
)


@pytest.fixture
def running_receivers(tmp_path, monkeypatch):
  with receivers(tmp_path, monkeypatch) as running:
    yield running


def test_a_breach_its_recovery_and_its_restatement_reach_every_receiver(
  tmp_path, running_receivers
):
  hook, slack, smtp = running_receivers
  db = tmp_path / 'out.db'
  contact_center.run([*write_inputs(tmp_path, smtp.port), f'--sqlite_path={db}'])

  with sqlite3.connect(db) as conn:
    notifications = conn.execute(
      'SELECT notification_id, kind, value, previous_value, message FROM alert_notifications '
      'ORDER BY created_at, kind'
    ).fetchall()
    alert = conn.execute(
      'SELECT state, delivery_status, last_notification_kind FROM alerts '
      "WHERE rule = ? AND queue_id = 'Q-1' AND channel = 'voice'",
      (RULE,),
    ).fetchone()
    deliveries = conn.execute(
      'SELECT receiver, status, COUNT(*) FROM alert_deliveries GROUP BY receiver, status'
    ).fetchall()

  kinds = [(kind, value, previous) for _, kind, value, previous, _ in notifications]
  assert kinds == [('firing', 0.4, None), ('restated', 0.25, 0.4), ('resolved', 0.0, None)], (
    notifications
  )
  assert alert[:2] == ('resolved', 'delivered')
  assert sorted(deliveries) == [
    ('floor-slack', 'delivered', 3),
    ('ops-webhook', 'delivered', 3),
    ('supervisors-mail', 'delivered', 3),
  ]

  ids = [n[0] for n in notifications]
  # Once per idempotency key, signed with the secret.
  assert sorted(hook.accepted) == sorted(ids) and hook.rejected_signatures == 0
  assert all(len(hook.bodies[i]) == 1 for i in ids)
  restated = json.loads(hook.accepted[ids[1]])
  assert (restated['kind'], restated['value'], restated['previous_value']) == (
    'restated',
    0.25,
    0.4,
  )
  # Slack's incoming-webhook format: the text a channel shows.
  assert sorted(slack.accepted) == sorted(ids)
  assert all(json.loads(body)['text'] for body in slack.accepted.values())
  # E-mail over STARTTLS after a login, one per notification.
  assert len(smtp.messages) == 3 and all(tls for *_, tls in smtp.messages)
  assert smtp.logins == [SMTP_USER] * 3
  subjects = [message['Subject'] for _, _, message, _ in smtp.messages]
  assert all(RULE in subject for subject in subjects), subjects
  # No secret in any row the job wrote.
  with sqlite3.connect(db) as conn:
    dump = '\n'.join(conn.iterdump())
  for secret in (SECRET, SMTP_PASSWORD, hook.url, slack.url):
    assert secret not in dump
