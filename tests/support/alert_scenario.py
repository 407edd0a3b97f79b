"""An alerting scenario shared by the end-to-end tests (tests/test_alerts_e2e.py,
tests/integration/test_cassandra_sink.py): a rule file with a signed
webhook, a Slack incoming webhook and an SMTP receiver with STARTTLS and
login, the real receivers on loopback (tests/support/receivers.py), and a
call stream in which a queue breaches, recovers, and late calls change the
story of the breach."""

import contextlib
import json
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from tests.support.receivers import HttpReceiver, SmtpReceiver, self_signed_certificate

B = 1793606400000  # 2026-11-02T08:00:00Z, a Monday
S = 1000
SECRET = 'hook-secret-for-tests'
SMTP_USER, SMTP_PASSWORD = 'alerts', 'smtp-password-for-tests'
RULE = 'abandon-window'
# The job's flags the scenario is written for.
JOB_FLAGS = [
  '--window_seconds=300',
  '--allowed_lateness_seconds=3600',
  '--max_out_of_orderness_seconds=10',
  '--replay_poll_size=2',
  '--early_firing_seconds=0',
]

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


def breach_and_recovery() -> list:
  """Q-1: 4 of 10 calls abandoned in [08:00, 08:05) (40 %, fires); none of
  10 in [08:05, 08:10) (resolves); calls up to 08:16 carry the watermark
  past both windows."""
  lines = [call(f'a-{i}', B + (10 + 20 * i) * S, 'Q-1', i < 4) for i in range(10)]
  lines += [call(f'b-{i}', B + (310 + 20 * i) * S, 'Q-1', False) for i in range(10)]
  lines += [call(f'c-{i}', B + (610 + 30 * i) * S, 'Q-1', False) for i in range(12)]
  return lines


def breach_then_late_calls() -> list:
  """breach_and_recovery, then 6 answered calls of the first window arrive
  late (4 of 16: 25 %, no longer above the threshold, so the breach
  notified at 40 % is restated, once, whatever panes the late calls come
  in)."""
  late = [call(f'late-{i}', B + (15 + 20 * i) * S, 'Q-1', False) for i in range(6)]
  return breach_and_recovery() + late


@contextlib.contextmanager
def receivers(
  directory: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Tuple[HttpReceiver, HttpReceiver, SmtpReceiver]]:
  """The three receivers running, and the environment the rule file names
  pointing at them: (webhook, Slack, SMTP)."""
  cert, key = self_signed_certificate(directory)
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


def write_rules(directory: Path, smtp_port: int) -> Path:
  """The rule file, in `directory`, its e-mail receiver on `smtp_port`."""
  rules = directory / 'rules.yaml'
  rules.write_text(RULES.format(smtp_port=smtp_port))
  return rules


def write_inputs(directory: Path, smtp_port: int) -> List[str]:
  """The rule file and the call stream written in `directory`; the job's
  flags that read them."""
  events = directory / 'calls.jsonl'
  events.write_text('\n'.join(breach_then_late_calls()) + '\n')
  return [
    f'--call_events={events}',
    f'--alert_rules={write_rules(directory, smtp_port)}',
    *JOB_FLAGS,
  ]
