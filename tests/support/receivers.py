"""Real receivers on loopback for the alert senders' tests.

- `HttpReceiver`: an HTTP server in a thread standing in for a webhook
  receiver or Slack. It verifies `X-Signature` over the exact body bytes
  with its secret (401 when wrong or missing), records every body by its
  Idempotency-Key, and can be told to answer an error status to the next
  N requests, to hang before answering, or to read a request and close the
  connection without an answer (an answer lost in transit).
- `SmtpReceiver`: aiosmtpd's SMTP server in a thread, requiring STARTTLS
  before anything else and a login, recording every message it accepts.
- `self_signed_certificate`: a certificate and key for 127.0.0.1 and
  localhost, made at test time (no key is committed).
"""

import contextlib
import datetime
import hashlib
import hmac
import http.server
import ipaddress
import json
import socket
import ssl
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from transforms.records import AlertNotification

LOOPBACK = '127.0.0.1'


def free_port() -> int:
  """A loopback port nothing listens on now (the kernel's choice)."""
  with socket.socket() as probe:
    probe.bind((LOOPBACK, 0))
    return probe.getsockname()[1]


def self_signed_certificate(directory: Path) -> Tuple[Path, Path]:
  """(certificate, key) PEM files in `directory`: a self-signed EC
  certificate for 127.0.0.1 and localhost, valid for a day, that is its own
  CA, so a client given the certificate as its CA file verifies it."""
  key = ec.generate_private_key(ec.SECP256R1())
  name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'alert-receivers-test')])
  now = datetime.datetime.now(datetime.timezone.utc)
  certificate = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(minutes=5))
    .not_valid_after(now + datetime.timedelta(days=1))
    .add_extension(
      x509.SubjectAlternativeName(
        [x509.DNSName('localhost'), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
      ),
      critical=False,
    )
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
  )
  cert_path, key_path = directory / 'receiver-cert.pem', directory / 'receiver-key.pem'
  cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
  key_path.write_bytes(
    key.private_bytes(
      serialization.Encoding.PEM,
      serialization.PrivateFormat.PKCS8,
      serialization.NoEncryption(),
    )
  )
  return cert_path, key_path


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
  """A loopback port that takes connections and never says a word (the
  kernel completes the handshake; nothing accepts): a hung server."""
  with socket.socket() as listener:
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    yield listener.getsockname()[1]


class _QuietServer(http.server.ThreadingHTTPServer):
  daemon_threads = True

  def handle_error(self, request, client_address):
    # A dropped connection fails the handler's final flush: expected here.
    pass


class HttpReceiver:
  """A webhook receiver on 127.0.0.1 (`url`), started by `start` or `with`.

  `secret`: the HMAC key X-Signature must be made with (None: not checked).
  `bodies`: Idempotency-Key -> every body received with it, in order,
  including those whose answer was an error or lost; `headers`: key -> the
  latest request's headers; `accepted`: key -> the
  body of the first request answered 200 (the receiver's dedupe). `port`:
  fixed, for a receiver that comes up where a sender already points.
  """

  def __init__(self, secret: Optional[str] = None, port: int = 0):
    self.secret = secret
    self.port = port
    self.bodies: Dict[str, List[bytes]] = {}
    self.accepted: Dict[str, bytes] = {}
    self.headers: Dict[str, Dict[str, str]] = {}
    self.rejected_signatures = 0
    self._lock = threading.Lock()
    self._failures: List[Tuple[int, bytes]] = []
    self._hangs: List[float] = []
    self._drops = 0
    self._released = threading.Event()
    self._server: Optional[_QuietServer] = None
    self._thread: Optional[threading.Thread] = None

  @property
  def url(self) -> str:
    return f'http://{LOOPBACK}:{self.port}/hook/T0SECRETPATH'

  def fail_next(
    self, count: int, status: int = 500, body: bytes = b'temporarily unavailable'
  ) -> None:
    """Answer `status` with `body` to the next `count` requests."""
    with self._lock:
      self._failures += [(status, body)] * count

  def hang_next(self, count: int, seconds: float) -> None:
    """Wait `seconds` before answering each of the next `count` requests."""
    with self._lock:
      self._hangs += [seconds] * count

  def drop_next(self, count: int) -> None:
    """Read the next `count` requests, record them and close the
    connection without answering."""
    with self._lock:
      self._drops += count

  def requests_received(self) -> int:
    with self._lock:
      return sum(len(bodies) for bodies in self.bodies.values())

  def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
    body = handler.rfile.read(int(handler.headers.get('Content-Length', 0)))
    key = handler.headers.get('Idempotency-Key', '')
    with self._lock:
      self.bodies.setdefault(key, []).append(body)
      self.headers[key] = dict(handler.headers)
      hang = self._hangs.pop(0) if self._hangs else 0.0
      drop = self._drops > 0
      self._drops -= int(drop)
      failure = self._failures.pop(0) if self._failures and not drop else None
    if hang:
      self._released.wait(hang)
    if drop:
      handler.close_connection = True
      handler.connection.shutdown(socket.SHUT_RDWR)
      return
    if failure is not None:
      self._answer(handler, *failure)
      return
    if self.secret is not None:
      expected = 'sha256=' + hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
      if not hmac.compare_digest(handler.headers.get('X-Signature', ''), expected):
        with self._lock:
          self.rejected_signatures += 1
        self._answer(handler, 401, b'invalid signature')
        return
    with self._lock:
      self.accepted.setdefault(key, body)
    self._answer(handler, 200, b'ok')

  @staticmethod
  def _answer(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header('Content-Type', 'text/plain')
    handler.send_header('Content-Length', str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)

  def start(self) -> 'HttpReceiver':
    receiver = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def do_POST(self):  # noqa: N802 (http.server's name)
        receiver._handle(self)  # pylint: disable=protected-access

      def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass

    self._released.clear()
    self._server = _QuietServer((LOOPBACK, self.port), Handler)
    self.port = self._server.server_address[1]
    self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
    self._thread.start()
    return self

  def stop(self) -> None:
    self._released.set()
    if self._server is not None:
      self._server.shutdown()
      self._server.server_close()
      self._thread.join()
      self._server = None

  def __enter__(self) -> 'HttpReceiver':
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()


class _Recorder:
  def __init__(self, messages: List[Tuple[str, List[str], EmailMessage, bool]]):
    self._messages = messages

  async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook)
    message = message_from_bytes(envelope.original_content, policy=policy.default)
    tls = session.ssl is not None
    self._messages.append((envelope.mail_from, list(envelope.rcpt_tos), message, tls))
    return '250 Message accepted'


class SmtpReceiver:
  """An SMTP server on 127.0.0.1 (`port`) that requires STARTTLS with the
  certificate `cert`/`key` before any command but EHLO and a login as
  `username`/`password` (`starttls` False: a server that offers no
  STARTTLS, and so no AUTH). `messages`: (envelope sender, recipients, the
  parsed message, whether it came over TLS) per accepted message."""

  def __init__(self, cert: Path, key: Path, username: str, password: str, starttls: bool = True):
    self.username = username
    self.password = password
    self.messages: List[Tuple[str, List[str], EmailMessage, bool]] = []
    self.logins: List[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    self.port = free_port()
    self._controller = Controller(
      _Recorder(self.messages),
      hostname=LOOPBACK,
      port=self.port,
      tls_context=context if starttls else None,
      require_starttls=starttls,
      auth_required=True,
      auth_require_tls=True,
      authenticator=self._authenticate,
    )

  def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (
      isinstance(auth_data, LoginPassword)
      and auth_data.login.decode() == self.username
      and auth_data.password.decode() == self.password
    )
    if ok:
      self.logins.append(self.username)
    # handled=False: aiosmtpd answers 535 itself on a failure.
    return AuthResult(success=ok, handled=False)

  def __enter__(self) -> 'SmtpReceiver':
    self._controller.start()
    return self

  def __exit__(self, *exc) -> None:
    self._controller.stop()


def notification(
  notification_id: str = 'n-1', receivers: Tuple[str, ...] = ()
) -> AlertNotification:
  """A firing notification of rule `abandon-high` for queue Q-1 (voice)."""
  return AlertNotification(
    notification_id=notification_id,
    rule='abandon-high',
    queue_id='Q-1',
    channel='voice',
    kind='firing',
    severity='critical',
    metric='abandon_rate',
    span='15m',
    value=0.25,
    threshold=0.1,
    previous_value=None,
    figure_end=1793607300000,
    message='Abandon rate 25% over 15 minutes in Sales (threshold 10%).',
    receivers=json.dumps(list(receivers)),
    created_at=1793607300000,
    queue_name='Sales',
  )
