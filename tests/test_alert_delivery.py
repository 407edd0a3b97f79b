"""DeliverNotifications on the local runner, against real receivers on
loopback: what each receiver got, the alert rows, deliveries and dead
letters the composite wrote, and its counters."""

import dataclasses
import json
import threading
from typing import Dict, List, Tuple

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration, Timestamp

from clients.alert_receivers import SMTP_CA_FILE_ENV, webhook_body
from options.alert_config import EMAIL, SLACK, WEBHOOK, ReceiverConfig
from tests.conftest import streaming_options
from tests.support.beam_metrics import committed_counters
from tests.support.receivers import (
  LOOPBACK,
  HttpReceiver,
  SmtpReceiver,
  free_port,
  notification,
  self_signed_certificate,
)
from transforms.alert_delivery import (
  ALERT_DELIVERIES,
  ALERTS,
  ATTEMPTS_EXHAUSTED,
  BAD_RECEIVERS,
  DEAD_LETTERS,
  METRICS_NAMESPACE,
  NOT_RETRYABLE,
  UNKNOWN_RECEIVER,
  DeliverNotifications,
  worst_case_delivery,
)
from transforms.records import Alert, AlertDelivery, AlertNotification, DeadLetter

SECRET = 'delivery-test-hmac-key'
SMTP_USER, SMTP_PASSWORD = 'alerts@example.test', 'delivery-test-smtp-password'
NOW_MS = 1793607400000
RECEIVERS = (
  ReceiverConfig('hook', WEBHOOK, url_env='DELIVERY_HOOK_URL', secret_env='DELIVERY_HOOK_KEY'),
  ReceiverConfig('slack', SLACK, url_env='DELIVERY_SLACK_URL'),
  ReceiverConfig(
    'keyless', WEBHOOK, url_env='DELIVERY_HOOK_URL', secret_env='DELIVERY_NO_SUCH_KEY'
  ),
)


def _now() -> Timestamp:
  return Timestamp(micros=NOW_MS * 1000)


def alert(notification_id: str) -> Alert:
  return Alert(
    rule='abandon-high',
    queue_id='Q-1',
    channel='voice',
    state='firing',
    severity='critical',
    metric='abandon_rate',
    span='15m',
    value=0.25,
    threshold=0.1,
    since=1793607000000,
    resolved_at=None,
    last_notification_id=notification_id,
    last_notification_kind='firing',
    delivery_status='queued',
    updated_at=1793607300000,
    revision=2,
    queue_name='Sales',
  )


def pair(notification_id: str, *receivers: str) -> Tuple[Alert, AlertNotification]:
  return alert(notification_id), notification(notification_id, receivers)


def delivered_row(notification_id: str, status: str) -> Alert:
  return alert(notification_id)._replace(delivery_status=status, revision=3)


def delivery(notification_id: str, receiver: str, status: str, attempts: int, answer: str):
  return AlertDelivery(
    notification_id,
    receiver,
    'abandon-high',
    'Q-1',
    'voice',
    'firing',
    status,
    attempts,
    answer,
    NOW_MS,
  )


def dead_letter(sent: AlertNotification, receiver: str, reason: str, detail: str) -> DeadLetter:
  raw = webhook_body(sent)
  return DeadLetter(
    source='alert_delivery',
    origin=f'alert_deliveries:{json.dumps([sent.notification_id, receiver])}',
    reason=reason,
    detail=detail,
    raw=raw.decode(),
    raw_size=len(raw),
    received_at=NOW_MS,
  )


def run(
  pairs: List[Tuple[Alert, AlertNotification]],
  receivers=RECEIVERS,
  expected_alerts=None,
  expected_deliveries=None,
  expected_dead_letters=None,
  attempts: int = 3,
  attempt_timeout: Duration = Duration(seconds=2),
  backoff_cap: Duration = Duration(seconds=60),
) -> Dict[str, int]:
  """Runs the composite on `pairs`, checks the outputs given, returns its
  counters."""
  p = beam.Pipeline(options=streaming_options())
  outputs = (
    p
    | beam.Create(pairs)
    | DeliverNotifications(
      receivers,
      attempts=attempts,
      attempt_timeout=attempt_timeout,
      backoff_base=Duration(seconds=0.05),
      backoff_cap=backoff_cap,
      processing_clock=_now,
    )
  )
  for tag, expected in (
    (ALERTS, expected_alerts),
    (ALERT_DELIVERIES, expected_deliveries),
    (DEAD_LETTERS, expected_dead_letters),
  ):
    if expected is not None:
      assert_that(outputs[tag], equal_to(expected), label=f'Check {tag}')
  result = p.run()
  result.wait_until_finish()
  return committed_counters(result, METRICS_NAMESPACE)


@pytest.fixture
def hook(monkeypatch):
  with HttpReceiver(secret=SECRET) as receiver:
    monkeypatch.setenv('DELIVERY_HOOK_URL', receiver.url)
    monkeypatch.setenv('DELIVERY_HOOK_KEY', SECRET)
    monkeypatch.delenv('DELIVERY_NO_SUCH_KEY', raising=False)
    yield receiver


def test_webhook_slack_and_email_all_get_the_notification(hook, monkeypatch, tmp_path):
  cert, key = self_signed_certificate(tmp_path)
  mail = ReceiverConfig(
    'mail',
    EMAIL,
    smtp_host=LOOPBACK,
    sender='alerts@example.test',
    recipients=('floor@example.test',),
    username_env='DELIVERY_SMTP_USER',
    password_env='DELIVERY_SMTP_PASSWORD',
  )
  monkeypatch.setenv('DELIVERY_SMTP_USER', SMTP_USER)
  monkeypatch.setenv('DELIVERY_SMTP_PASSWORD', SMTP_PASSWORD)
  monkeypatch.setenv(SMTP_CA_FILE_ENV, str(cert))
  with HttpReceiver() as slack, SmtpReceiver(cert, key, SMTP_USER, SMTP_PASSWORD) as smtp:
    monkeypatch.setenv('DELIVERY_SLACK_URL', slack.url)
    receivers = {r.name: r for r in RECEIVERS + (dataclasses.replace(mail, smtp_port=smtp.port),)}
    counters = run(
      [pair('n-1', 'hook', 'slack', 'mail')],
      receivers,
      expected_alerts=[delivered_row('n-1', 'delivered')],
      expected_deliveries=[
        delivery('n-1', 'hook', 'delivered', 1, 'HTTP 200 ok'),
        delivery('n-1', 'slack', 'delivered', 1, 'HTTP 200 ok'),
        delivery('n-1', 'mail', 'delivered', 1, 'sent to 1'),
      ],
      expected_dead_letters=[],
    )

  assert list(hook.accepted) == ['n-1'] and list(slack.accepted) == ['n-1']
  assert [(to, tls) for _, to, _, tls in smtp.messages] == [(['floor@example.test'], True)]
  assert counters == {
    'deliveries_ok_webhook': 1,
    'deliveries_ok_slack': 1,
    'deliveries_ok_email': 1,
    'attempts': 3,
    'retries': 0,
  }


def test_server_errors_are_retried_until_the_receiver_takes_it(hook):
  hook.fail_next(2, 500)
  counters = run(
    [pair('n-1', 'hook')],
    expected_alerts=[delivered_row('n-1', 'delivered')],
    expected_deliveries=[delivery('n-1', 'hook', 'delivered', 3, 'HTTP 200 ok')],
    expected_dead_letters=[],
  )
  assert len(hook.bodies['n-1']) == 3
  assert counters == {'deliveries_ok_webhook': 1, 'attempts': 3, 'retries': 2}


def test_a_receiver_listed_twice_gets_one_delivery(hook):
  run(
    [pair('n-1', 'hook', 'hook')],
    expected_alerts=[delivered_row('n-1', 'delivered')],
    expected_deliveries=[delivery('n-1', 'hook', 'delivered', 1, 'HTTP 200 ok')],
  )
  assert len(hook.bodies['n-1']) == 1


def test_a_hanging_receiver_times_out_and_the_retry_gets_through(hook):
  hook.hang_next(1, 10)
  run(
    [pair('n-1', 'hook')],
    attempt_timeout=Duration(seconds=0.5),
    expected_deliveries=[delivery('n-1', 'hook', 'delivered', 2, 'HTTP 200 ok')],
  )
  assert len(hook.bodies['n-1']) == 2 and list(hook.accepted) == ['n-1']


def test_a_receiver_down_then_up_gets_each_notification_once_per_key(monkeypatch):
  """The port is closed when delivery starts; the receiver comes up half a
  second later and drops its first two connections after reading them (an
  answer lost in transit), so some notifications arrive twice: with the
  same key, which the receiver dedupes by."""
  receiver = HttpReceiver(secret=SECRET, port=free_port())
  receiver.drop_next(2)
  monkeypatch.setenv('DELIVERY_HOOK_URL', receiver.url)
  monkeypatch.setenv('DELIVERY_HOOK_KEY', SECRET)
  ids = [f'n-{i}' for i in range(6)]
  # 30 attempts with waits up to 0.5 s each: seconds of retrying, far past
  # the half second the receiver is down.
  coming_up = threading.Timer(0.5, receiver.start)
  coming_up.start()
  try:
    run(
      [pair(i, 'hook') for i in ids],
      attempts=30,
      backoff_cap=Duration(seconds=0.5),
      expected_alerts=[delivered_row(i, 'delivered') for i in ids],
      expected_dead_letters=[],
    )
  finally:
    coming_up.join()
    receiver.stop()

  assert sorted(receiver.bodies) == ids == sorted(receiver.accepted)
  assert receiver.requests_received() == len(ids) + 2
  for key, bodies in receiver.bodies.items():
    assert set(bodies) == {receiver.accepted[key]}


def test_exhausted_attempts_leave_a_dead_letter_with_the_receivers_answer(hook):
  hook.fail_next(3, 503, f'overloaded, retry {hook.url} later ({SECRET})'.encode())
  answer = 'HTTP 503 overloaded, retry [redacted] later ([redacted])'
  sent = pair('n-1', 'hook')
  counters = run(
    [sent],
    expected_alerts=[delivered_row('n-1', 'failed')],
    expected_deliveries=[delivery('n-1', 'hook', 'failed', 3, answer)],
    expected_dead_letters=[
      dead_letter(
        sent[1], 'hook', ATTEMPTS_EXHAUSTED, f"webhook receiver 'hook', 3 attempt(s): {answer}"
      )
    ],
  )
  assert len(hook.bodies['n-1']) == 3 and not hook.accepted
  assert counters == {
    'deliveries_failed_webhook': 1,
    'attempts': 3,
    'retries': 2,
    'dead_letters': 1,
    f'dead_letter_{ATTEMPTS_EXHAUSTED}': 1,
  }


def test_a_missing_secret_is_not_retried_and_its_variable_is_named(hook):
  answer = 'not sent: environment variable DELIVERY_NO_SUCH_KEY (the HMAC key) is not set'
  sent = pair('n-1', 'keyless')
  run(
    [sent],
    expected_alerts=[delivered_row('n-1', 'failed')],
    expected_deliveries=[delivery('n-1', 'keyless', 'failed', 1, answer)],
    expected_dead_letters=[
      dead_letter(
        sent[1], 'keyless', NOT_RETRYABLE, f"webhook receiver 'keyless', 1 attempt(s): {answer}"
      )
    ],
  )
  assert not hook.bodies


def test_an_unknown_receiver_fails_the_alert_while_the_others_deliver(hook):
  answer = "no receiver named 'pager' in the rule file"
  sent = pair('n-1', 'hook', 'pager')
  counters = run(
    [sent],
    expected_alerts=[delivered_row('n-1', 'failed')],
    expected_deliveries=[
      delivery('n-1', 'hook', 'delivered', 1, 'HTTP 200 ok'),
      delivery('n-1', 'pager', 'failed', 0, answer),
    ],
    expected_dead_letters=[
      dead_letter(
        sent[1], 'pager', UNKNOWN_RECEIVER, f"unknown receiver 'pager', 0 attempt(s): {answer}"
      )
    ],
  )
  assert list(hook.accepted) == ['n-1']
  assert counters['deliveries_failed_unknown'] == 1
  assert counters[f'dead_letter_{UNKNOWN_RECEIVER}'] == 1


def test_a_receivers_list_that_is_not_json_names_is_a_dead_letter(hook):
  broken = notification('n-1')._replace(receivers='hook, slack')
  empty = notification('n-2')
  counters = run(
    [(alert('n-1'), broken), (alert('n-2'), empty)],
    expected_alerts=[delivered_row('n-1', 'failed'), delivered_row('n-2', '')],
    expected_deliveries=[],
    expected_dead_letters=[
      dead_letter(broken, '', BAD_RECEIVERS, 'receivers is not a JSON list of names')
    ],
  )
  assert not hook.bodies
  assert counters == {
    'dead_letters': 1,
    f'dead_letter_{BAD_RECEIVERS}': 1,
    'notifications_without_receivers': 1,
  }


def test_the_worst_case_of_one_delivery_with_the_defaults():
  worst = worst_case_delivery(5, Duration(seconds=10), Duration(seconds=1), Duration(seconds=60))
  assert worst == Duration(seconds=50 + 1 + 2 + 4 + 8)
  capped = worst_case_delivery(5, Duration(seconds=10), Duration(seconds=1), Duration(seconds=3))
  assert capped == Duration(seconds=50 + 1 + 2 + 3 + 3)


@pytest.mark.parametrize(
  'receivers, kwargs, message',
  [
    (RECEIVERS, {'attempts': 0}, 'attempts must be >= 1'),
    (RECEIVERS, {'attempt_timeout': Duration(0)}, 'attempt_timeout must be > 0'),
    ({'other': RECEIVERS[0]}, {}, "receiver 'hook' is listed under the name 'other'"),
    (RECEIVERS + RECEIVERS[:1], {}, "two receivers are named 'hook'"),
  ],
)
def test_settings_that_cannot_work_are_refused(receivers, kwargs, message):
  settings = dict(attempts=3, attempt_timeout=Duration(seconds=1), backoff_base=Duration(0))
  with pytest.raises(ValueError, match=message):
    DeliverNotifications(receivers, **{**settings, **kwargs})
