"""The alert senders against real receivers on loopback: one attempt each,
its answer's ok/retryable/text, and no secret in the answer."""

import json

import pytest

from clients.alert_receivers import (
  MAX_ANSWER_CHARS,
  SMTP_CA_FILE_ENV,
  idempotency_key,
  message_id,
  send,
  webhook_body,
)
from options.alert_config import EMAIL, SLACK, WEBHOOK, ReceiverConfig
from tests.support.receivers import (
  LOOPBACK,
  HttpReceiver,
  SmtpReceiver,
  free_port,
  notification,
  self_signed_certificate,
  silent_listener,
)

SECRET = 'hmac-key-of-the-test'
WEBHOOK_RECEIVER = ReceiverConfig('ops-hook', WEBHOOK, url_env='HOOK_URL', secret_env='HOOK_KEY')
SLACK_RECEIVER = ReceiverConfig('ops-slack', SLACK, url_env='SLACK_URL')
SMTP_USER, SMTP_PASSWORD = 'alerts@example.test', 'smtp-password-of-the-test'


def email_receiver(port: int) -> ReceiverConfig:
  return ReceiverConfig(
    'ops-mail',
    EMAIL,
    smtp_host=LOOPBACK,
    smtp_port=port,
    sender='alerts@example.test',
    recipients=('floor@example.test', 'lead@example.test'),
    username_env='SMTP_USER',
    password_env='SMTP_PASSWORD',
  )


@pytest.fixture
def hook():
  with HttpReceiver(secret=SECRET) as receiver:
    yield receiver


def hook_env(receiver: HttpReceiver, secret: str = SECRET) -> dict:
  return {'HOOK_URL': receiver.url, 'HOOK_KEY': secret}


def test_a_webhook_gets_the_signed_body_with_its_idempotency_key(hook):
  answer = send(WEBHOOK_RECEIVER, notification('n-1'), hook_env(hook), 5)

  assert answer.ok and not answer.retryable
  assert answer.text == 'HTTP 200 ok'
  assert hook.accepted['n-1'] == webhook_body(notification('n-1'))
  assert json.loads(hook.accepted['n-1']) == notification('n-1')._asdict()
  assert hook.headers['n-1']['Content-Type'] == 'application/json'


def test_any_text_is_sent_as_ascii_json_and_read_back_as_it_was(hook):
  text = 'Abandon 25 % — Vertrieb Süd, 営業 \U0001f4de, broken \ud800'
  sent = notification('n-1 Süd/営業')._replace(message=text, queue_name='Süd')
  answer = send(WEBHOOK_RECEIVER, sent, hook_env(hook), 5)

  assert answer.ok
  [(key, body)] = hook.accepted.items()
  assert key == 'n-1 S%C3%BCd/%E5%96%B6%E6%A5%AD' == idempotency_key(sent)
  assert body.isascii()
  assert json.loads(body)['message'] == text


def test_a_body_signed_with_another_key_is_rejected_by_the_receiver(hook):
  answer = send(WEBHOOK_RECEIVER, notification('n-1'), hook_env(hook, 'not-the-key'), 5)

  assert not answer.ok and not answer.retryable
  assert answer.text == 'HTTP 401 invalid signature'
  assert hook.rejected_signatures == 1 and not hook.accepted


def test_an_unsigned_body_is_rejected_when_the_receiver_has_no_secret_configured(hook):
  unsigned = ReceiverConfig('ops-hook', WEBHOOK, url_env='HOOK_URL')
  answer = send(unsigned, notification('n-1'), hook_env(hook), 5)
  assert not answer.ok and 'X-Signature' not in hook.headers['n-1']
  assert hook.rejected_signatures == 1


def test_slack_gets_an_incoming_webhook_message():
  with HttpReceiver() as slack:
    answer = send(SLACK_RECEIVER, notification('n-1'), {'SLACK_URL': slack.url}, 5)
    assert answer.ok
    payload = json.loads(slack.accepted['n-1'])

  assert payload['text'] == '[CRITICAL] abandon-high firing: queue Sales (voice)'
  header, details = payload['blocks']
  assert header['type'] == 'section' and header['text']['type'] == 'mrkdwn'
  assert notification().message in header['text']['text']
  assert details['type'] == 'section'
  assert all(field['type'] == 'mrkdwn' for field in details['fields'])
  assert '*Value*\n0.25 (threshold 0.1)' in [field['text'] for field in details['fields']]


def test_a_producers_text_reaches_slack_as_text_not_mentions_or_links():
  hostile = notification('n-1')._replace(
    queue_name='<!channel> & <https://evil.example|Sales>', message='call <@U123> now'
  )
  with HttpReceiver() as slack:
    assert send(SLACK_RECEIVER, hostile, {'SLACK_URL': slack.url}, 5).ok
    payload = json.loads(slack.accepted['n-1'])
  texts = [payload['text'], payload['blocks'][0]['text']['text']]
  texts += [field['text'] for field in payload['blocks'][1]['fields']]
  assert not any('<' in text or '>' in text for text in texts), texts
  assert '&lt;!channel&gt; &amp; &lt;https://evil.example|Sales&gt;' in payload['text']
  assert 'call &lt;@U123&gt; now' in payload['blocks'][0]['text']['text']


def test_a_long_message_is_cut_to_what_a_slack_section_holds():
  with HttpReceiver() as slack:
    long = notification('n-1')._replace(message='x' * 5000)
    assert send(SLACK_RECEIVER, long, {'SLACK_URL': slack.url}, 5).ok
    header = json.loads(slack.accepted['n-1'])['blocks'][0]
  assert len(header['text']['text']) == 3000 and header['text']['text'].endswith('x…')


@pytest.mark.parametrize(
  'status, retryable',
  [(500, True), (503, True), (408, True), (429, True), (404, False), (400, False)],
)
def test_statuses_the_receiver_may_recover_from_are_retryable(hook, status, retryable):
  hook.fail_next(1, status, b'no')
  answer = send(WEBHOOK_RECEIVER, notification('n-1'), hook_env(hook), 5)
  assert (answer.ok, answer.retryable, answer.text) == (False, retryable, f'HTTP {status} no')


def test_the_answer_keeps_200_characters_of_the_body_without_the_url_or_key(hook):
  echo = f'error at {hook.url} with {SECRET} ' + 'x' * 500
  hook.fail_next(1, 502, echo.encode())
  answer = send(WEBHOOK_RECEIVER, notification('n-1'), hook_env(hook), 5)

  assert answer.retryable
  assert answer.text.startswith('HTTP 502 error at [redacted] with [redacted] xxx')
  assert len(answer.text) == len('HTTP 502 ') + MAX_ANSWER_CHARS
  assert 'T0SECRETPATH' not in answer.text and SECRET not in answer.text


def test_a_hanging_receiver_times_out_and_may_be_retried(hook):
  hook.hang_next(1, 5)
  answer = send(WEBHOOK_RECEIVER, notification('n-1'), hook_env(hook), 0.3)
  assert (answer.ok, answer.retryable) == (False, True)
  assert answer.text == 'ReadTimeout: no answer within 0.3 s'


def test_a_closed_port_may_be_retried_and_the_url_is_not_quoted():
  url = f'http://{LOOPBACK}:{free_port()}/hook/T0SECRETPATH'
  answer = send(WEBHOOK_RECEIVER, notification('n-1'), {'HOOK_URL': url, 'HOOK_KEY': SECRET}, 2)
  assert (answer.ok, answer.retryable) == (False, True)
  assert answer.text == 'ConnectionError: connection failed or was closed'


@pytest.mark.parametrize(
  'environ, text',
  [
    ({'HOOK_KEY': SECRET}, 'not sent: environment variable HOOK_URL (the webhook URL) is not set'),
    ({'HOOK_URL': 'http://x'}, 'not sent: environment variable HOOK_KEY (the HMAC key) is not set'),
    (
      {'HOOK_URL': 'hooks.example/T0SECRET', 'HOOK_KEY': SECRET},
      'MissingSchema: the URL is not an http(s) URL',
    ),
    (
      {'HOOK_URL': 'http://[::1', 'HOOK_KEY': SECRET},
      'InvalidURL: the URL or a header is malformed',
    ),
  ],
)
def test_a_missing_variable_or_malformed_url_is_not_retried(environ, text):
  answer = send(WEBHOOK_RECEIVER, notification('n-1'), environ, 2)
  assert (answer.ok, answer.retryable, answer.text) == (False, False, text)


@pytest.fixture(scope='module')
def certificate(tmp_path_factory):
  return self_signed_certificate(tmp_path_factory.mktemp('tls'))


def smtp_env(cert_path, password: str = SMTP_PASSWORD) -> dict:
  return {'SMTP_USER': SMTP_USER, 'SMTP_PASSWORD': password, SMTP_CA_FILE_ENV: str(cert_path)}


def test_an_email_arrives_over_starttls_after_a_login(certificate):
  cert, key = certificate
  with SmtpReceiver(cert, key, SMTP_USER, SMTP_PASSWORD) as smtp:
    answer = send(email_receiver(smtp.port), notification('n-1'), smtp_env(cert), 5)

  assert (answer.ok, answer.text) == (True, 'sent to 2')
  assert smtp.logins == [SMTP_USER]
  [(sender, recipients, message, over_tls)] = smtp.messages
  assert over_tls
  assert (sender, recipients) == (
    'alerts@example.test',
    ['floor@example.test', 'lead@example.test'],
  )
  assert message['Subject'] == '[CRITICAL] abandon-high firing: queue Sales (voice)'
  assert message['Message-ID'] == message_id(notification('n-1'), 'alerts@example.test')
  assert notification().message in message.get_content()


def test_an_email_server_whose_certificate_does_not_verify_gets_nothing(certificate):
  cert, key = certificate
  with SmtpReceiver(cert, key, SMTP_USER, SMTP_PASSWORD) as smtp:
    environ = {'SMTP_USER': SMTP_USER, 'SMTP_PASSWORD': SMTP_PASSWORD}
    answer = send(email_receiver(smtp.port), notification('n-1'), environ, 5)

  assert (answer.ok, answer.retryable) == (False, False)
  assert answer.text.startswith('SSLCertVerificationError: ')
  assert not smtp.logins and not smtp.messages


def test_a_refused_login_is_not_retried_and_not_quoted(certificate):
  cert, key = certificate
  with SmtpReceiver(cert, key, SMTP_USER, SMTP_PASSWORD) as smtp:
    wrong = 'wrong-password-value'
    answer = send(email_receiver(smtp.port), notification('n-1'), smtp_env(cert, wrong), 5)

  assert (answer.ok, answer.retryable) == (False, False)
  assert answer.text.startswith('SMTPAuthenticationError: SMTP 535')
  assert wrong not in answer.text and not smtp.messages


def test_an_email_to_a_closed_port_may_be_retried(certificate):
  cert, _ = certificate
  answer = send(email_receiver(free_port()), notification('n-1'), smtp_env(cert), 2)
  assert (answer.ok, answer.retryable) == (False, True)
  assert answer.text == 'ConnectionRefusedError: connection failed or was closed'


def test_an_email_server_without_starttls_gets_neither_credentials_nor_message(certificate):
  cert, key = certificate
  with SmtpReceiver(cert, key, SMTP_USER, SMTP_PASSWORD, starttls=False) as smtp:
    answer = send(email_receiver(smtp.port), notification('n-1'), smtp_env(cert), 5)

  assert (answer.ok, answer.retryable) == (False, False)
  assert answer.text == 'SMTPNotSupportedError: the server offers no STARTTLS or AUTH'
  assert not smtp.logins and not smtp.messages


def test_an_email_server_that_never_greets_times_out_and_may_be_retried(certificate):
  cert, _ = certificate
  with silent_listener() as port:
    answer = send(email_receiver(port), notification('n-1'), smtp_env(cert), 0.3)
  assert (answer.ok, answer.retryable) == (False, True)
  assert answer.text == 'TimeoutError: no answer within 0.3 s'
