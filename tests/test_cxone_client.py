"""Tests of clients.cxone against a real HTTP server on 127.0.0.1.

In: a fake CXone (token endpoint + data-actions endpoint) served by
``http.server.ThreadingHTTPServer`` on an ephemeral port, optionally with
scripted responses (status, headers, body, delay) served first.
Out: assertions on what the client returns, raises, sleeps and logs.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, Optional
from urllib.parse import parse_qs

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from clients.cxone import (
  CxoneAuthError,
  CxoneClient,
  CxoneConfig,
  CxoneConfigError,
  CxoneError,
  CxoneNotFoundError,
  CxoneRateLimitError,
  CxoneResponseError,
  CxoneScopeError,
  CxoneTimeoutError,
  CxoneUnavailableError,
  validate_on_startup,
)
from options.cxone_options import CxoneOptions

CLIENT_ID = 'cc-analytics'
SECRET = 'Sup3r-Secret-Value_4b9d'
ACTION_ID = 'da-123'
ACTION = {'id': ACTION_ID, 'name': 'interaction events', 'status': 'active'}


@dataclass
class Scripted:
  """One canned response, served before the fake's normal behaviour."""

  status: int
  body: bytes = b'{}'
  headers: dict = field(default_factory=dict)
  delay: float = 0.0


@dataclass
class FakeCxone:
  """State of the fake tenant; the handler reads and updates it."""

  url: str = ''
  expires_in: Optional[int] = 3600
  scope_granted: bool = True
  token_script: collections.deque = field(default_factory=collections.deque)
  action_script: collections.deque = field(default_factory=collections.deque)
  token_calls: int = 0
  action_calls: int = 0
  issued: list = field(default_factory=list)
  bearers_seen: list = field(default_factory=list)
  token_requests: list = field(default_factory=list)
  release: threading.Event = field(default_factory=threading.Event)
  lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
  fake: FakeCxone  # set per server

  def log_message(self, *args) -> None:  # keep pytest output quiet
    pass

  def _reply(self, status: int, body: bytes, headers: dict = ()) -> None:
    self.send_response(status)
    self.send_header('Content-Type', 'application/json')
    self.send_header('Content-Length', str(len(body)))
    for name, value in dict(headers).items():
      self.send_header(name, value)
    self.end_headers()
    self.wfile.write(body)

  def _scripted(self, script: collections.deque) -> bool:
    with self.fake.lock:
      item = script.popleft() if script else None
    if item is None:
      return False
    if item.delay:
      # An Event, so teardown can cut a slow response short.
      self.fake.release.wait(item.delay)
    try:
      self._reply(item.status, item.body, item.headers)
    except OSError:
      pass  # the client gave up (timeout) and closed the socket
    return True

  def do_POST(self) -> None:
    fake = self.fake
    length = int(self.headers.get('Content-Length', 0))
    form = parse_qs(self.rfile.read(length).decode())
    with fake.lock:
      fake.token_calls += 1
      fake.token_requests.append(
        (self.path, self.headers.get('Authorization'), self.headers.get('Content-Type'), form)
      )
    if self.path != '/oauth/token' or self._scripted(fake.token_script):
      return
    expected = 'Basic ' + base64.b64encode(f'{CLIENT_ID}:{SECRET}'.encode()).decode()
    if self.headers.get('Authorization') != expected:
      self._reply(401, b'{"error": "invalid_client"}')
      return
    if form.get('grant_type') != ['client_credentials']:
      self._reply(400, b'{"error": "unsupported_grant_type"}')
      return
    with fake.lock:
      token = f'tok-{len(fake.issued) + 1}'
      fake.issued.append(token)
    body = {'access_token': token, 'token_type': 'bearer'}
    if fake.expires_in is not None:
      body['expires_in'] = fake.expires_in
    self._reply(200, json.dumps(body).encode())

  def do_GET(self) -> None:
    fake = self.fake
    bearer = (self.headers.get('Authorization') or '').removeprefix('Bearer ')
    with fake.lock:
      fake.action_calls += 1
      fake.bearers_seen.append(bearer)
    if self._scripted(fake.action_script):
      return
    prefix = '/api/v2/data-actions/'
    if bearer not in fake.issued:
      self._reply(401, b'{"error": "invalid_token"}')
    elif not fake.scope_granted:
      self._reply(403, b'{"error": "insufficient_scope"}')
    elif self.path != prefix + ACTION_ID:
      self._reply(404, b'{"error": "not_found"}')
    else:
      self._reply(200, json.dumps(ACTION).encode())


@pytest.fixture
def fake() -> Iterator[FakeCxone]:
  state = FakeCxone()
  handler = type('Handler', (_Handler,), {'fake': state})
  server = ThreadingHTTPServer(('127.0.0.1', 0), handler)
  state.url = f'http://127.0.0.1:{server.server_address[1]}'
  # A short poll interval keeps shutdown() (and so each test) fast.
  thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
  thread.start()
  yield state
  state.release.set()
  server.shutdown()
  server.server_close()


class FakeClock:
  def __init__(self) -> None:
    self.now = 1000.0

  def __call__(self) -> float:
    return self.now


def make_config(url: str, **overrides) -> CxoneConfig:
  values = dict(
    base_url=url,
    token_url=f'{url}/oauth/token',
    client_id=CLIENT_ID,
    client_secret=SECRET,
    action_id=ACTION_ID,
    timeout_seconds=2.0,
    max_retries=3,
    backoff_base_seconds=0.01,
    backoff_cap_seconds=0.05,
    max_retry_after_seconds=5.0,
  )
  values.update(overrides)
  return CxoneConfig(**values)


def make_client(
  config: CxoneConfig, sleeps: list, clock: Optional[FakeClock] = None
) -> CxoneClient:
  return CxoneClient(config, clock=clock or FakeClock(), sleep=sleeps.append)


def test_success_sends_client_credentials_and_returns_action(fake):
  sleeps = []
  client = make_client(make_config(fake.url), sleeps)

  result = validate_on_startup(make_config(fake.url), client)

  assert result == ACTION
  assert (fake.token_calls, fake.action_calls) == (1, 1)
  path, auth, content_type, form = fake.token_requests[0]
  assert path == '/oauth/token'
  assert auth == 'Basic ' + base64.b64encode(f'{CLIENT_ID}:{SECRET}'.encode()).decode()
  assert content_type == 'application/x-www-form-urlencoded'
  assert form == {'grant_type': ['client_credentials']}
  assert fake.bearers_seen == ['tok-1']
  assert sleeps == []


def test_validate_on_startup_without_client_uses_real_defaults(fake):
  assert validate_on_startup(make_config(fake.url)) == ACTION


def test_cached_token_is_reused_across_validations(fake):
  client = make_client(make_config(fake.url), [])

  client.validate_data_action(ACTION_ID)
  client.validate_data_action(ACTION_ID)

  assert fake.token_calls == 1
  assert fake.action_calls == 2
  assert fake.bearers_seen == ['tok-1', 'tok-1']


def test_token_refreshed_shortly_before_expiry(fake):
  fake.expires_in = 600
  clock = FakeClock()
  client = make_client(make_config(fake.url), [], clock)

  client.validate_data_action(ACTION_ID)
  clock.now += 600 - 60 - 1  # inside the 60 s safety margin: still cached
  client.validate_data_action(ACTION_ID)
  assert fake.token_calls == 1
  clock.now += 2  # past expires_in - margin
  client.validate_data_action(ACTION_ID)

  assert fake.token_calls == 2
  assert fake.bearers_seen == ['tok-1', 'tok-1', 'tok-2']


def test_missing_expires_in_defaults_to_3600(fake):
  fake.expires_in = None
  clock = FakeClock()
  client = make_client(make_config(fake.url), [], clock)

  client.validate_data_action(ACTION_ID)
  clock.now += 3600 - 60 - 1
  client.validate_data_action(ACTION_ID)
  assert fake.token_calls == 1
  clock.now += 2
  client.validate_data_action(ACTION_ID)
  assert fake.token_calls == 2


def test_revoked_cached_token_is_replaced_once(fake):
  client = make_client(make_config(fake.url), [])
  client.validate_data_action(ACTION_ID)
  fake.action_script.append(Scripted(401, b'{"error": "invalid_token"}'))

  assert client.validate_data_action(ACTION_ID) == ACTION
  assert fake.token_calls == 2
  assert fake.bearers_seen == ['tok-1', 'tok-1', 'tok-2']


def test_401_bad_credentials(fake):
  config = make_config(fake.url, client_secret='wrong-secret', client_secret_env='MY_CXONE_SECRET')
  client = make_client(config, [])

  with pytest.raises(CxoneAuthError) as info:
    client.validate_data_action(ACTION_ID)

  message = str(info.value)
  assert info.value.status == 401
  assert 'invalid_client' in message
  assert repr(CLIENT_ID) in message
  assert '--cxone_client_id' in message and 'MY_CXONE_SECRET' in message
  assert fake.action_calls == 0


def test_403_missing_scope(fake):
  fake.scope_granted = False
  client = make_client(make_config(fake.url), [])

  with pytest.raises(CxoneScopeError) as info:
    client.validate_data_action(ACTION_ID)

  assert info.value.status == 403
  assert 'data_actions:read' in str(info.value)
  assert repr(CLIENT_ID) in str(info.value)


def test_invalid_scope_at_token_endpoint_is_a_scope_error(fake):
  fake.token_script.append(Scripted(400, b'{"error": "invalid_scope"}'))
  client = make_client(make_config(fake.url), [])

  with pytest.raises(CxoneScopeError, match='data_actions:read'):
    client.validate_data_action(ACTION_ID)


def test_404_names_the_wrong_action_id(fake):
  client = make_client(make_config(fake.url), [])

  with pytest.raises(CxoneNotFoundError) as info:
    client.validate_data_action('da-typo')

  assert info.value.action_id == 'da-typo'
  assert info.value.status == 404
  assert "'da-typo'" in str(info.value)
  assert '--cxone_action_id' in str(info.value)


def test_action_id_is_escaped_into_one_path_segment(fake):
  client = make_client(make_config(fake.url), [])

  with pytest.raises(CxoneNotFoundError):
    # Unescaped, "../da-123" would resolve to the existing action.
    client.validate_data_action('x/../' + ACTION_ID)


def test_429_honours_retry_after_then_succeeds(fake):
  fake.action_script.append(Scripted(429, headers={'Retry-After': '2'}))
  sleeps = []
  client = make_client(make_config(fake.url), sleeps)

  assert client.validate_data_action(ACTION_ID) == ACTION
  assert sleeps == [2.0]
  assert fake.action_calls == 2


def test_retry_after_is_capped(fake):
  fake.token_script.append(Scripted(429, headers={'Retry-After': '3600'}))
  sleeps = []
  client = make_client(make_config(fake.url, max_retry_after_seconds=7.0), sleeps)

  assert client.validate_data_action(ACTION_ID) == ACTION
  assert sleeps == [7.0]


def test_429_until_retry_budget_exhausted(fake):
  config = make_config(fake.url, max_retries=2)
  fake.action_script.extend(Scripted(429, headers={'Retry-After': '1'}) for _ in range(5))
  sleeps = []
  client = make_client(config, sleeps)

  with pytest.raises(CxoneRateLimitError) as info:
    client.validate_data_action(ACTION_ID)

  assert info.value.status == 429
  assert '3 attempts' in str(info.value)
  assert fake.action_calls == 3
  assert sleeps == [1.0, 1.0]


def test_5xx_backs_off_exponentially_then_succeeds(fake):
  fake.action_script.extend([Scripted(503), Scripted(502), Scripted(500)])
  sleeps = []
  config = make_config(fake.url, backoff_base_seconds=0.01, backoff_cap_seconds=0.025)
  client = make_client(config, sleeps)

  assert client.validate_data_action(ACTION_ID) == ACTION
  assert fake.action_calls == 4
  assert len(sleeps) == 3
  # Full jitter within base * 2**n, capped.
  for delay, ceiling in zip(sleeps, [0.01, 0.02, 0.025]):
    assert 0 <= delay <= ceiling


def test_5xx_until_budget_exhausted_is_unavailable(fake):
  fake.token_script.extend(Scripted(503) for _ in range(3))
  client = make_client(make_config(fake.url, max_retries=2), [])

  with pytest.raises(CxoneUnavailableError) as info:
    client.validate_data_action(ACTION_ID)

  assert info.value.status == 503
  assert fake.token_calls == 3


def test_timeout(fake):
  fake.action_script.extend(Scripted(200, delay=2.0) for _ in range(2))
  sleeps = []
  client = make_client(make_config(fake.url, timeout_seconds=0.1, max_retries=1), sleeps)

  started = time.monotonic()
  with pytest.raises(CxoneTimeoutError) as info:
    client.validate_data_action(ACTION_ID)

  assert time.monotonic() - started < 1.5
  assert '--cxone_timeout_seconds' in str(info.value)
  assert fake.action_calls == 2
  assert len(sleeps) == 1


def test_unreachable_host():
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
  # Nothing listens on the port any more: connections are refused.
  sleeps = []
  client = make_client(make_config(f'http://127.0.0.1:{port}', max_retries=1), sleeps)

  with pytest.raises(CxoneUnavailableError) as info:
    client.validate_data_action(ACTION_ID)

  assert not isinstance(info.value, CxoneTimeoutError)
  assert 'cannot reach' in str(info.value)
  assert len(sleeps) == 1


@pytest.mark.parametrize(
  'body',
  [
    b'<html>login</html>',
    b'["tok"]',
    b'{"token_type": "bearer", "expires_in": 3600}',
    b'{"access_token": "tok\\nX-Evil: 1", "expires_in": 3600}',
    b'{"access_token": "tok", "expires_in": "soon"}',
    b'{"access_token": "tok", "expires_in": 0}',
    b'{"access_token": "tok", "token_type": "mac"}',
  ],
  ids=[
    'not-json',
    'not-object',
    'no-token',
    'header-injection',
    'bad-expiry',
    'zero-expiry',
    'not-bearer',
  ],
)
def test_malformed_token_response(fake, body):
  fake.token_script.append(Scripted(200, body))
  client = make_client(make_config(fake.url), [])

  with pytest.raises(CxoneResponseError) as info:
    client.validate_data_action(ACTION_ID)

  assert 'token endpoint' in str(info.value)
  assert '--cxone_token_url' in str(info.value)
  assert fake.action_calls == 0


def test_non_json_data_action_response(fake):
  fake.action_script.append(Scripted(200, b'<html></html>'))
  client = make_client(make_config(fake.url), [])

  with pytest.raises(CxoneResponseError, match='--cxone_base_url'):
    client.validate_data_action(ACTION_ID)


def test_redirect_is_not_followed(fake):
  fake.token_script.append(Scripted(302, headers={'Location': 'http://127.0.0.1:9/steal'}))
  client = make_client(make_config(fake.url), [])

  with pytest.raises(CxoneResponseError, match='HTTP 302'):
    client.validate_data_action(ACTION_ID)
  assert fake.token_calls == 1


def _exception_texts(exc: BaseException) -> list:
  texts = []
  while exc is not None:
    texts += [str(exc), repr(exc), repr(exc.args)]
    exc = exc.__cause__ or exc.__context__
  return texts


def test_secret_never_leaks(fake, caplog, capsys):
  caplog.set_level(logging.DEBUG)  # root: includes urllib3's own logs
  basic = base64.b64encode(f'{CLIENT_ID}:{SECRET}'.encode()).decode()
  texts = []
  config = make_config(fake.url, timeout_seconds=0.1, max_retries=1)
  texts += [str(config), repr(config)]

  client = make_client(config, [])
  texts += [str(client), repr(client)]
  client.validate_data_action(ACTION_ID)  # success path logs too

  scenarios = [
    (fake.token_script, Scripted(401, b'{"error": "invalid_client"}')),
    # A server echoing the secret back must not get it into messages.
    (fake.token_script, Scripted(400, json.dumps({'error': SECRET}).encode())),
    (fake.token_script, Scripted(200, json.dumps({'access_token': SECRET + ' x'}).encode())),
    (fake.token_script, Scripted(200, b'not json')),
    (fake.action_script, Scripted(403)),
    (fake.action_script, Scripted(404)),
  ]
  for script, response in scenarios:
    script.append(response)
    with pytest.raises(CxoneError) as info:
      make_client(config, []).validate_data_action(ACTION_ID)
    texts += _exception_texts(info.value)

  for script, responses in [
    (fake.token_script, [Scripted(429)] * 2),
    (fake.token_script, [Scripted(500)] * 2),
    (fake.token_script, [Scripted(200, delay=1.0)] * 2),
  ]:
    script.extend(responses)
    with pytest.raises(CxoneError) as info:
      make_client(config, []).validate_data_action(ACTION_ID)
    texts += _exception_texts(info.value)

  with pytest.raises(CxoneConfigError) as info:
    make_config('http://example.com')
  texts += _exception_texts(info.value)

  # The secret really was sent, so its absence below means something.
  assert fake.token_requests[0][1] == 'Basic ' + basic
  assert caplog.records, 'expected the client to log something'
  texts += [r.getMessage() for r in caplog.records]
  texts += [caplog.text]
  captured = capsys.readouterr()
  texts += [captured.out, captured.err]
  leaks = [t for t in texts if SECRET in t or basic in t]
  assert leaks == []
  assert any('***' in t for t in texts)  # the echoed code was scrubbed


def test_config_repr_hides_secret():
  config = make_config('https://cxone.example')
  assert SECRET not in repr(config)
  assert 'client_secret=' not in repr(config)


def test_from_options_reads_secret_from_named_env_var():
  options = PipelineOptions(
    [
      '--validate_cxone',
      '--cxone_base_url=https://api.cxone.example/',
      '--cxone_token_url=https://auth.cxone.example/oauth/token',
      '--cxone_client_id=' + CLIENT_ID,
      '--cxone_client_secret_env=TEAM_CXONE_SECRET',
      '--cxone_action_id=' + ACTION_ID,
      '--cxone_timeout_seconds=3.5',
      '--cxone_max_retries=7',
    ]
  )

  config = CxoneConfig.from_options(
    options, environ={'TEAM_CXONE_SECRET': SECRET + '\n', 'CXONE_CLIENT_SECRET': 'not-this-one'}
  )

  assert options.view_as(CxoneOptions).validate_cxone is True
  assert config.client_secret == SECRET
  assert config.client_secret_env == 'TEAM_CXONE_SECRET'
  assert config.base_url == 'https://api.cxone.example'
  assert (config.timeout_seconds, config.max_retries) == (3.5, 7)


def test_options_defaults_need_nothing_offline():
  opts = PipelineOptions([]).view_as(CxoneOptions)
  assert opts.validate_cxone is False
  assert opts.cxone_client_secret_env == 'CXONE_CLIENT_SECRET'


def test_from_options_lists_everything_missing():
  options = PipelineOptions(['--cxone_base_url=https://api.cxone.example'])

  with pytest.raises(CxoneConfigError) as info:
    CxoneConfig.from_options(options, environ={})

  message = str(info.value)
  for name in (
    '--cxone_token_url',
    '--cxone_client_id',
    '--cxone_action_id',
    'CXONE_CLIENT_SECRET',
  ):
    assert name in message
  assert '--cxone_base_url' not in message


def test_from_env():
  config = CxoneConfig.from_env(
    {
      'CXONE_BASE_URL': 'https://api.cxone.example',
      'CXONE_TOKEN_URL': 'https://auth.cxone.example/oauth/token',
      'CXONE_CLIENT_ID': CLIENT_ID,
      'CXONE_ACTION_ID': ACTION_ID,
      'CXONE_CLIENT_SECRET': SECRET,
    }
  )
  assert (config.client_id, config.action_id) == (CLIENT_ID, ACTION_ID)
  assert config.client_secret == SECRET

  with pytest.raises(CxoneConfigError, match='CXONE_TOKEN_URL'):
    CxoneConfig.from_env({'CXONE_BASE_URL': 'https://api.cxone.example'})


def test_plain_http_refused_except_loopback():
  with pytest.raises(CxoneConfigError, match='https'):
    make_config('http://api.cxone.example')
  assert make_config('http://localhost:8080').base_url == ('http://localhost:8080')


def test_secret_is_not_an_option():
  options = PipelineOptions(['--cxone_client_secret=' + SECRET])
  assert not hasattr(options.view_as(CxoneOptions), 'cxone_client_secret')
