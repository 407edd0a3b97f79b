"""Alerts end to end: a supervisor's rule file, the main job on a call
stream, and real receivers on loopback (tests/support/receivers.py): a
signed webhook, a Slack incoming webhook and an SMTP server with STARTTLS
and login. A queue breaches, recovers, and then late calls change the
story of the breach: every notification reaches every receiver once per
idempotency key, and the follow-up says what changed."""

import json
import sqlite3

import pytest

from pipelines import contact_center
from tests.support.receivers import HttpReceiver, SmtpReceiver, self_signed_certificate

B = 1793606400000  # 2026-11-02T08:00:00Z, a Monday
S = 1000
SECRET = 'hook-secret-for-tests'
SMTP_USER, SMTP_PASSWORD = 'alerts', 'smtp-password-for-tests'

RULES = """
receivers:
  ops-webhook:
    kind: webhook
    url_env: E2E_WEBHOOK_URL
    secret_env: E2E_WEBHOOK_SECRET
  floor-slack:
    kind: slack
    url_env: E2E_SLACK_URL
  supervisors-mail:
    kind: email
    smtp_host: 127.0.0.1
    smtp_port: {smtp_port}
    sender: alerts@example.com
    recipients: [supervisors@example.com]
    username_env: E2E_SMTP_USER
    password_env: E2E_SMTP_PASSWORD
rules:
  - name: abandon-window
    metric: abandon_rate
    span: window
    scope:
      queues: [Q-*]
    condition: above
    threshold: "25%"
    clear_threshold: "20%"
    min_volume: 5
    severity: critical
    receivers: [ops-webhook, floor-slack, supervisors-mail]
    repeat_interval_seconds: 0
"""


def call(call_id: str, at_ms: int, queue: str, abandoned: bool) -> str:
  return json.dumps(
    {
      'call_uuid': call_id,
      'event_type': 'CALL_ENDED',
      'timestamp': at_ms,
      'queue_id': queue,
      'abandoned': abandoned,
      'wait_time_seconds': 40 if abandoned else 12,
      'agent_id': None if abandoned else 'a-1',
    }
  )


def breach_then_late_calls() -> list:
  """Q-1: 4 of 10 calls abandoned in [08:00, 08:05) (40 %, fires); none of
  10 in [08:05, 08:10) (resolves); calls up to 08:16 carry the watermark
  past both windows; then 6 answered calls of the first window arrive
  late (4 of 16: 25 %, no longer above the threshold, so the breach
  notified at 40 % is restated, once, whatever panes the late calls come
  in)."""
  lines = [call(f'a-{i}', B + (10 + 20 * i) * S, 'Q-1', i < 4) for i in range(10)]
  lines += [call(f'b-{i}', B + (310 + 20 * i) * S, 'Q-1', False) for i in range(10)]
  lines += [call(f'c-{i}', B + (610 + 30 * i) * S, 'Q-1', False) for i in range(12)]
  lines += [call(f'late-{i}', B + (15 + 20 * i) * S, 'Q-1', False) for i in range(6)]
  return lines


@pytest.fixture
def receivers(tmp_path, monkeypatch):
  cert, key = self_signed_certificate(tmp_path)
  with (
    HttpReceiver(secret=SECRET) as hook,
    HttpReceiver() as slack,
    SmtpReceiver(cert, key, SMTP_USER, SMTP_PASSWORD) as smtp,
  ):
    monkeypatch.setenv('E2E_WEBHOOK_URL', hook.url)
    monkeypatch.setenv('E2E_WEBHOOK_SECRET', SECRET)
    monkeypatch.setenv('E2E_SLACK_URL', slack.url)
    monkeypatch.setenv('E2E_SMTP_USER', SMTP_USER)
    monkeypatch.setenv('E2E_SMTP_PASSWORD', SMTP_PASSWORD)
    monkeypatch.setenv('ALERT_SMTP_CA_FILE', str(cert))
    yield hook, slack, smtp


def test_a_breach_its_recovery_and_its_restatement_reach_every_receiver(tmp_path, receivers):
  hook, slack, smtp = receivers
  rules = tmp_path / 'rules.yaml'
  rules.write_text(RULES.format(smtp_port=smtp.port))
  events = tmp_path / 'calls.jsonl'
  events.write_text('\n'.join(breach_then_late_calls()) + '\n')
  db = tmp_path / 'out.db'
  contact_center.run(
    [
      f'--call_events={events}',
      f'--sqlite_path={db}',
      f'--alert_rules={rules}',
      '--window_seconds=300',
      '--allowed_lateness_seconds=3600',
      '--max_out_of_orderness_seconds=10',
      '--replay_poll_size=2',
      '--early_firing_seconds=0',
    ]
  )

  with sqlite3.connect(db) as conn:
    notifications = conn.execute(
      'SELECT notification_id, kind, value, previous_value, message FROM alert_notifications '
      'ORDER BY created_at, kind'
    ).fetchall()
    alert = conn.execute(
      'SELECT state, delivery_status, last_notification_kind FROM alerts '
      "WHERE rule = 'abandon-window' AND queue_id = 'Q-1' AND channel = 'voice'"
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
  assert all('abandon-window' in subject for subject in subjects), subjects
  # No secret in any row the job wrote.
  with sqlite3.connect(db) as conn:
    dump = '\n'.join(conn.iterdump())
  for secret in (SECRET, SMTP_PASSWORD, hook.url, slack.url):
    assert secret not in dump
