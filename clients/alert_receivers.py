"""Alert receivers: one attempt to deliver one notification to one receiver.

In: a ReceiverConfig (options/alert_config.py), an AlertNotification, the
environment to read the receiver's secrets from and the attempt's timeout.
Out: an `Answer` (ok, retryable, text); `send` never raises.

- webhook: POST of `webhook_body` (the notification's fields as a JSON
  object, keys sorted, ASCII) with `Content-Type: application/json`,
  `Idempotency-Key: <notification_id>` (`idempotency_key`) and, when the
  receiver has a `secret_env`, `X-Signature: sha256=<hex HMAC-SHA256 of the exact body
  bytes, keyed with the secret's UTF-8 bytes>`. A receiver verifies the
  signature over the bytes it received, before parsing them, and dedupes
  by the key: a retry, or a job restarted from a checkpoint, sends the same
  key and body again.
- slack: POST of an incoming-webhook message (`slack_payload`) to the URL,
  which holds Slack's token. Slack ignores the Idempotency-Key header, so a
  retry after an answer lost in transit can post twice.
- email: SMTP, STARTTLS with a default SSL context (certificate and host
  name verified) unless the receiver says `starttls: false`, login when the
  receiver names credentials, then one message (`email_message`) to all
  recipients, its Message-ID derived from the notification id.

Secrets (the URLs, the HMAC key, the SMTP credentials) are read from
`environ` when sending, and never appear in an Answer, a log record or an
exception: the answer's text is written here, not taken from an exception
message (requests' and smtplib's can quote the URL or the server's echo),
and a receiver's own text is scrubbed of every secret before it is kept.

Retryable: HTTP 5xx, 408, 429, SMTP 4xx replies, timeouts and connection
errors. Not retryable: any other HTTP status but 2xx (3xx included: a
webhook is not followed to another address), SMTP 5xx replies, a
certificate that does not verify, a missing variable or a malformed URL.

`ALERT_SMTP_CA_FILE` (SMTP_CA_FILE_ENV), when set in the environment, names
a PEM file of CA certificates trusted for STARTTLS in addition to the
system's: for a relay with a private CA, and for the tests' loopback server.
"""

import hashlib
import hmac
import json
import smtplib
import ssl
import string
import time
from email.message import EmailMessage
from typing import Iterable, Mapping, NamedTuple, Optional, Tuple
from urllib.parse import quote, urlsplit

import requests
import urllib3

from options.alert_config import EMAIL, SLACK, WEBHOOK, ReceiverConfig
from transforms.records import AlertNotification

SMTP_CA_FILE_ENV = 'ALERT_SMTP_CA_FILE'
SIGNATURE_HEADER = 'X-Signature'
IDEMPOTENCY_HEADER = 'Idempotency-Key'
# How much of a receiver's answer is kept (AlertDelivery.answer).
MAX_ANSWER_CHARS = 200
# Of a body only this much is read: the answer keeps 200 characters, and a
# receiver streaming a large page must not hold the attempt.
_MAX_BODY_BYTES = 4096
_RETRYABLE_HTTP = frozenset({408, 429})
# Kept as they are in the Idempotency-Key; '%' is escaped so the encoding
# is unambiguous.
_PRINTABLE_ASCII = ''.join(c for c in string.punctuation if c != '%') + ' '

_SCRUBBED = '[redacted]'
# Block Kit's limits of a section's text and of a field's (slack_payload).
_SLACK_TEXT_CHARS = 3000
_SLACK_FIELD_CHARS = 2000
# A secret shorter than this is not scrubbed from a receiver's text: a
# one-letter password would blank out every occurrence of its letter.
_MIN_SCRUBBED_CHARS = 4


class Answer(NamedTuple):
  """One attempt's outcome: `ok` delivered; `retryable` worth another
  attempt; `text` the status and at most 200 characters of the receiver's
  answer, or the error class and a message written here, never a secret."""

  ok: bool
  retryable: bool
  text: str


class _Refused(Exception):
  """The receiver's configuration or environment makes sending impossible;
  its message names what to fix (a variable's name, never its value)."""


def webhook_body(notification: AlertNotification) -> bytes:
  """The webhook's JSON body: every field of the notification (see
  AlertNotification), `receivers` as the JSON text it is, keys sorted, no
  spaces, ASCII (other characters as \\u escapes, so any text encodes).
  The signature covers exactly these bytes."""
  return json.dumps(notification._asdict(), sort_keys=True, separators=(',', ':')).encode('ascii')


def idempotency_key(notification: AlertNotification) -> str:
  """The Idempotency-Key header: the notification id, percent-encoded
  (UTF-8) when it holds anything but printable ASCII, which a header cannot
  carry as it is."""
  return quote(notification.notification_id, safe=_PRINTABLE_ASCII)


def signature(secret: str, body: bytes) -> str:
  """The X-Signature header's value: `sha256=` and the hex HMAC-SHA256 of
  `body` keyed with the secret's UTF-8 bytes."""
  digest = hmac.new(secret.encode('utf-8'), body, hashlib.sha256).hexdigest()
  return f'sha256={digest}'


def _where(notification: AlertNotification) -> str:
  queue = notification.queue_name or notification.queue_id
  return f'queue {queue} ({notification.channel})'


def summary(notification: AlertNotification) -> str:
  """One line: severity, rule, kind and queue (the email's subject and
  Slack's fallback text). Line breaks become spaces: a header must not hold
  one."""
  line = (
    f'[{notification.severity.upper()}] {notification.rule} {notification.kind}: '
    f'{_where(notification)}'
  )
  return ' '.join(line.split())


def _details(notification: AlertNotification) -> Iterable[Tuple[str, str]]:
  yield 'Metric', f'{notification.metric} over {notification.span}'
  yield 'Value', f'{notification.value:g} (threshold {notification.threshold:g})'
  if notification.previous_value is not None:
    yield 'Notified before', f'{notification.previous_value:g}'
  yield 'Notification', notification.notification_id


def _clipped(text: str, limit: int) -> str:
  return text if len(text) <= limit else text[: limit - 1] + '…'


def _slack_text(text: str) -> str:
  """`text` as Slack shows it literally: queue names and messages come from
  producers, and Slack reads `<!channel>`, `<@user>` or `<url|label>` in
  mrkdwn as a mention or a link unless &, < and > are escaped
  (https://api.slack.com/reference/surfaces/formatting#escaping)."""
  return text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')


def slack_payload(notification: AlertNotification) -> dict:
  """An incoming-webhook message: `text`, the notification as one line
  (shown in notifications and by clients without blocks), and `blocks`: a
  section with the message and a section of the figures' fields.

  Slack's documented format: a JSON POST with `Content-type:
  application/json` whose `text` is the message, `blocks` optional Block Kit
  layout, `text` then the fallback (https://api.slack.com/incoming-webhooks,
  https://docs.slack.dev/tools/node-slack-sdk/reference/webhook/interfaces/IncomingWebhookSendArguments).
  Slack answers 200 `ok`, or 400/403/404/410 with an error string and 500
  for its own failures
  (https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks).
  A section's text holds at most 3000 characters, a field's 2000
  (https://api.slack.com/reference/block-kit/blocks#section): longer ones
  are cut, else Slack would refuse the message for good (400
  invalid_payload).
  """
  fields = [
    {'type': 'mrkdwn', 'text': _clipped(f'*{name}*\n{_slack_text(value)}', _SLACK_FIELD_CHARS)}
    for name, value in _details(notification)
  ]
  line = _slack_text(summary(notification))
  return {
    'text': line,
    'blocks': [
      {
        'type': 'section',
        'text': {
          'type': 'mrkdwn',
          'text': _clipped(f'*{line}*\n{_slack_text(notification.message)}', _SLACK_TEXT_CHARS),
        },
      },
      {'type': 'section', 'fields': fields},
    ],
  }


def message_id(notification: AlertNotification, sender: str) -> str:
  """The email's Message-ID: a hash of the notification id (which may hold
  characters a msg-id may not) at the sender's domain, so a resend after a
  restart carries the same Message-ID and mail clients thread or drop it."""
  digest = hashlib.sha256(notification.notification_id.encode('utf-8')).hexdigest()[:40]
  domain = sender.rpartition('@')[2] or 'localhost'
  return f'<alert-{digest}@{domain}>'


def email_message(receiver: ReceiverConfig, notification: AlertNotification) -> EmailMessage:
  """The email of a notification: subject `summary`, plain-text body of the
  message and the figures, Message-ID `message_id`."""
  message = EmailMessage()
  message['From'] = receiver.sender
  message['To'] = ', '.join(receiver.recipients)
  message['Subject'] = summary(notification)
  message['Message-ID'] = message_id(notification, receiver.sender)
  lines = [notification.message, '']
  lines += [f'{name}: {value}' for name, value in _details(notification)]
  message.set_content('\n'.join(lines) + '\n')
  return message


def _variable(environ: Mapping[str, str], name: str, what: str) -> str:
  value = environ.get(name, '')
  if not value:
    raise _Refused(f'environment variable {name} ({what}) is not set')
  return value


def _scrub(text: str, secrets: Iterable[str]) -> str:
  for secret in secrets:
    if len(secret) >= _MIN_SCRUBBED_CHARS:
      text = text.replace(secret, _SCRUBBED)
  return text


def _answer_text(head: str, body: str, secrets: Iterable[str]) -> str:
  body = ' '.join(_scrub(body, secrets).split())
  return f'{head} {body[:MAX_ANSWER_CHARS]}'.rstrip()


def _url_secrets(url: str) -> Tuple[str, ...]:
  # The whole URL and its path: Slack's token is the path, and a proxy's
  # error page may quote either.
  try:
    path = urlsplit(url).path
  except ValueError:
    return (url,)
  return (url, path) if len(path) > 1 else (url,)


def _read_body(response: requests.Response, deadline: float) -> str:
  """At most _MAX_BODY_BYTES of the body, stopping at the deadline."""
  chunks, size = [], 0
  for chunk in response.iter_content(chunk_size=1024):
    chunks.append(chunk)
    size += len(chunk)
    if size >= _MAX_BODY_BYTES or time.monotonic() > deadline:
      break
  return b''.join(chunks)[:_MAX_BODY_BYTES].decode('utf-8', errors='replace')


def _post(
  url: str,
  body: bytes,
  headers: Mapping[str, str],
  timeout_seconds: float,
  secrets: Tuple[str, ...],
) -> Answer:
  secrets = secrets + _url_secrets(url)
  deadline = time.monotonic() + timeout_seconds
  try:
    # Not followed: a redirect would send the body, and the signature, to
    # an address the configuration does not name.
    with requests.post(
      url,
      data=body,
      headers=dict(headers),
      # total: connecting and the wait for the answer share one budget.
      timeout=urllib3.Timeout(total=timeout_seconds),
      allow_redirects=False,
      stream=True,
    ) as response:
      text = _read_body(response, deadline)
      status = response.status_code
  except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as error:
    return Answer(False, False, f'{type(error).__name__}: the URL is not an http(s) URL')
  except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader, ValueError) as error:
    # ValueError: urllib's parser on a malformed host such as '[::1'.
    return Answer(False, False, f'{type(error).__name__}: the URL or a header is malformed')
  except requests.exceptions.Timeout as error:
    return Answer(False, True, f'{type(error).__name__}: no answer within {timeout_seconds:g} s')
  except requests.exceptions.ConnectionError as error:
    return Answer(False, True, f'{type(error).__name__}: connection failed or was closed')
  except requests.exceptions.RequestException as error:
    return Answer(False, True, f'{type(error).__name__}: the request failed')
  ok = 200 <= status < 300
  retryable = status >= 500 or status in _RETRYABLE_HTTP
  return Answer(ok, not ok and retryable, _answer_text(f'HTTP {status}', text, secrets))


def _send_webhook(
  receiver: ReceiverConfig,
  notification: AlertNotification,
  environ: Mapping[str, str],
  timeout_seconds: float,
) -> Answer:
  url = _variable(environ, receiver.url_env, 'the webhook URL')
  body = webhook_body(notification)
  headers = {'Content-Type': 'application/json', IDEMPOTENCY_HEADER: idempotency_key(notification)}
  secrets: Tuple[str, ...] = ()
  if receiver.secret_env:
    secret = _variable(environ, receiver.secret_env, 'the HMAC key')
    headers[SIGNATURE_HEADER] = signature(secret, body)
    secrets = (secret,)
  return _post(url, body, headers, timeout_seconds, secrets)


def _send_slack(
  receiver: ReceiverConfig,
  notification: AlertNotification,
  environ: Mapping[str, str],
  timeout_seconds: float,
) -> Answer:
  url = _variable(environ, receiver.url_env, 'the Slack webhook URL')
  body = json.dumps(slack_payload(notification)).encode('ascii')
  headers = {'Content-Type': 'application/json', IDEMPOTENCY_HEADER: idempotency_key(notification)}
  return _post(url, body, headers, timeout_seconds, ())


def _smtp_reply(error: smtplib.SMTPResponseException, secrets: Tuple[str, ...]) -> Answer:
  code = error.smtp_code
  reply = error.smtp_error
  if isinstance(reply, bytes):
    reply = reply.decode('utf-8', errors='replace')
  text = _answer_text(f'{type(error).__name__}: SMTP {code}', str(reply), secrets)
  return Answer(False, 400 <= code < 500, text)


def _tls_context(environ: Mapping[str, str]) -> ssl.SSLContext:
  context = ssl.create_default_context()
  ca_file = environ.get(SMTP_CA_FILE_ENV, '')
  if ca_file:
    try:
      context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as error:
      raise _Refused(
        f'{SMTP_CA_FILE_ENV} does not name a readable PEM file ({type(error).__name__})'
      ) from None
  return context


class _Deadline:
  """One attempt's time budget, shared by its SMTP commands: smtplib's
  timeout bounds each socket operation, not the conversation."""

  def __init__(self, seconds: float):
    self._end = time.monotonic() + seconds

  def expired(self) -> bool:
    return time.monotonic() >= self._end

  def left(self) -> float:
    left = self._end - time.monotonic()
    if left <= 0:
      raise TimeoutError('attempt deadline passed')
    return left

  def bound(self, smtp: smtplib.SMTP) -> None:
    """Bounds the next command's socket operations by the time left."""
    smtp.sock.settimeout(self.left())


def _send_email(
  receiver: ReceiverConfig,
  notification: AlertNotification,
  environ: Mapping[str, str],
  timeout_seconds: float,
) -> Answer:
  if not (receiver.smtp_host and receiver.sender and receiver.recipients):
    raise _Refused('the receiver needs smtp_host, sender and recipients')
  credentials: Optional[Tuple[str, str]] = None
  if receiver.username_env or receiver.password_env:
    credentials = (
      _variable(environ, receiver.username_env, 'the SMTP user name'),
      _variable(environ, receiver.password_env, 'the SMTP password'),
    )
  context = _tls_context(environ) if receiver.starttls else None
  secrets = credentials or ()
  message = email_message(receiver, notification)
  deadline = _Deadline(timeout_seconds)
  try:
    with smtplib.SMTP(receiver.smtp_host, receiver.smtp_port, timeout=deadline.left()) as smtp:
      deadline.bound(smtp)
      smtp.ehlo()
      if context is not None:
        # Raises SMTPNotSupportedError when the server offers no STARTTLS:
        # credentials and the message are never sent in the clear.
        deadline.bound(smtp)
        smtp.starttls(context=context)
        deadline.bound(smtp)
        smtp.ehlo()
      if credentials is not None:
        deadline.bound(smtp)
        smtp.login(*credentials)
      deadline.bound(smtp)
      refused = smtp.send_message(message)
  except smtplib.SMTPNotSupportedError as error:
    return Answer(False, False, f'{type(error).__name__}: the server offers no STARTTLS or AUTH')
  except smtplib.SMTPRecipientsRefused as error:
    codes = sorted({code for code, _ in error.recipients.values()})
    retryable = all(400 <= code < 500 for code in codes)
    return Answer(False, retryable, f'{type(error).__name__}: SMTP {codes} for every recipient')
  except smtplib.SMTPResponseException as error:
    return _smtp_reply(error, secrets)
  except ssl.SSLCertVerificationError as error:
    return Answer(False, False, f'{type(error).__name__}: {error.verify_message}')
  except (smtplib.SMTPException, OSError) as error:
    # smtplib reports a timed-out read as SMTPServerDisconnected.
    if isinstance(error, TimeoutError) or deadline.expired():
      return Answer(False, True, f'TimeoutError: no answer within {timeout_seconds:g} s')
    # Connection refused or reset, DNS failures, TLS handshake errors.
    return Answer(False, True, f'{type(error).__name__}: connection failed or was closed')
  if refused:
    return Answer(True, False, f'sent; {len(refused)} of {len(receiver.recipients)} refused')
  return Answer(True, False, f'sent to {len(receiver.recipients)}')


_SENDERS = {WEBHOOK: _send_webhook, SLACK: _send_slack, EMAIL: _send_email}


def send(
  receiver: ReceiverConfig,
  notification: AlertNotification,
  environ: Mapping[str, str],
  timeout_seconds: float,
) -> Answer:
  """One attempt to deliver `notification` to `receiver`, its secrets read
  from `environ` now; never raises. The attempt is bounded by
  `timeout_seconds`: HTTP connecting and waiting for the answer share it
  (urllib3's total timeout), as do the SMTP conversation's commands; only a
  receiver that keeps sending a byte at a time, just within the time left,
  can hold one read past it."""
  sender = _SENDERS.get(receiver.kind)
  if sender is None:
    return Answer(False, False, f'unknown receiver kind {receiver.kind!r}')
  try:
    return sender(receiver, notification, environ, timeout_seconds)
  except _Refused as error:
    return Answer(False, False, f'not sent: {error}')
  except Exception as error:  # pylint: disable=broad-except
    # A bug or an unforeseen library error: its message may quote a secret.
    return Answer(False, False, f'{type(error).__name__}: unexpected error while sending')
