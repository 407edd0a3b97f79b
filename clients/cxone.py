"""A small NICE CXone client for the job's start-up check.

In: a ``CxoneConfig`` (URLs, client id, data action id; the client secret
read from an environment variable, never from a flag).
Out: the Data Action's JSON (``validate_on_startup``), or a ``CxoneError``
subclass whose message says what to fix: bad credentials, missing scope,
wrong action id, rate limiting, an unreachable or failing service, or a
malformed response.

The client secret (and the access token) never appear in messages, reprs or
log records: requests are logged by method and URL only, and the one piece
of server-provided text that ends up in messages (the OAuth ``error`` code)
is scrubbed of the secret in case a server echoes it.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import os
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional
from urllib.parse import quote, urlsplit

import requests
from apache_beam.options.pipeline_options import PipelineOptions

from options.cxone_options import DEFAULT_SECRET_ENV, CxoneOptions

_LOGGER = logging.getLogger(__name__)

REQUIRED_SCOPE = 'data_actions:read'
DEFAULT_EXPIRES_IN_SECONDS = 3600
# RFC 6750 b64token: anything else cannot go into a header safely, and
# requests would echo the offending value in its exception message.
_TOKEN_RE = re.compile(r'^[A-Za-z0-9\-._~+/]+=*$')
# OAuth error codes are short ASCII identifiers; cap what we echo.
_ERROR_CODE_RE = re.compile(r'^[\x21-\x7e]{1,64}$')


class CxoneError(Exception):
  """Base class of every error the CXone client raises.

  ``status`` is the HTTP status behind the error, if there was one.
  """

  def __init__(self, message: str, status: Optional[int] = None) -> None:
    super().__init__(message)
    self.status = status


class CxoneConfigError(CxoneError):
  """Missing or invalid configuration (flags or environment)."""


class CxoneAuthError(CxoneError):
  """CXone rejected the client credentials or the access token (401)."""


class CxoneScopeError(CxoneError):
  """The OAuth client lacks the ``data_actions:read`` scope (403)."""


class CxoneNotFoundError(CxoneError):
  """The Data Action id does not exist in this tenant (404)."""

  def __init__(self, message: str, action_id: str) -> None:
    super().__init__(message, status=404)
    self.action_id = action_id


class CxoneRateLimitError(CxoneError):
  """Still HTTP 429 after the whole retry budget."""


class CxoneUnavailableError(CxoneError):
  """CXone unreachable or answering 5xx after the whole retry budget."""


class CxoneTimeoutError(CxoneUnavailableError):
  """Every attempt timed out."""


class CxoneResponseError(CxoneError):
  """CXone answered something unusable: a malformed body or an unexpected
  status (often a sign that a URL points at the wrong service)."""


@dataclass(frozen=True)
class CxoneConfig:
  """Everything the client needs; ``client_secret`` is excluded from repr.

  ``client_secret_env`` only names where the secret came from, so error
  messages can say which variable to fix.
  """

  base_url: str
  token_url: str
  client_id: str
  client_secret: str = field(repr=False)
  action_id: str
  client_secret_env: str = DEFAULT_SECRET_ENV
  timeout_seconds: float = 10.0
  max_retries: int = 4
  backoff_base_seconds: float = 0.5
  backoff_cap_seconds: float = 8.0
  max_retry_after_seconds: float = 30.0
  token_expiry_margin_seconds: float = 60.0

  def __post_init__(self) -> None:
    _check_url(self.base_url, '--cxone_base_url')
    _check_url(self.token_url, '--cxone_token_url')
    # Normalised so f"{base_url}/api/..." never produces "//".
    object.__setattr__(self, 'base_url', self.base_url.rstrip('/'))
    for name in ('client_id', 'client_secret', 'action_id'):
      if not getattr(self, name):
        raise CxoneConfigError(f'CxoneConfig.{name} must not be empty')
    if not self.timeout_seconds > 0:
      raise CxoneConfigError(f'--cxone_timeout_seconds must be > 0, got {self.timeout_seconds}')
    if self.max_retries < 0:
      raise CxoneConfigError(f'--cxone_max_retries must be >= 0, got {self.max_retries}')

  @classmethod
  def from_options(
    cls, options: PipelineOptions, environ: Optional[Mapping[str, str]] = None
  ) -> 'CxoneConfig':
    """Builds the config from ``CxoneOptions`` flags.

    The secret is read from the environment variable named by
    ``--cxone_client_secret_env`` (``os.environ`` unless ``environ`` is
    given). Raises ``CxoneConfigError`` listing every missing value.
    """
    opts = options.view_as(CxoneOptions)
    env = os.environ if environ is None else environ
    secret_env = opts.cxone_client_secret_env
    secret = _read_secret(env, secret_env)
    _require(
      {
        '--cxone_base_url': opts.cxone_base_url,
        '--cxone_token_url': opts.cxone_token_url,
        '--cxone_client_id': opts.cxone_client_id,
        '--cxone_action_id': opts.cxone_action_id,
        f'environment variable {secret_env}': secret,
      }
    )
    return cls(
      base_url=opts.cxone_base_url,
      token_url=opts.cxone_token_url,
      client_id=opts.cxone_client_id,
      client_secret=secret,
      action_id=opts.cxone_action_id,
      client_secret_env=secret_env,
      timeout_seconds=opts.cxone_timeout_seconds,
      max_retries=opts.cxone_max_retries,
    )

  @classmethod
  def from_env(
    cls, environ: Optional[Mapping[str, str]] = None, secret_env: str = DEFAULT_SECRET_ENV
  ) -> 'CxoneConfig':
    """Builds the config from ``CXONE_BASE_URL``, ``CXONE_TOKEN_URL``,
    ``CXONE_CLIENT_ID``, ``CXONE_ACTION_ID`` and the secret variable
    ``secret_env``; other settings keep their defaults.

    Raises ``CxoneConfigError`` listing every missing variable.
    """
    env = os.environ if environ is None else environ
    fields = {
      'base_url': 'CXONE_BASE_URL',
      'token_url': 'CXONE_TOKEN_URL',
      'client_id': 'CXONE_CLIENT_ID',
      'action_id': 'CXONE_ACTION_ID',
    }
    values = {name: env.get(var, '').strip() for name, var in fields.items()}
    values['client_secret'] = _read_secret(env, secret_env)
    fields['client_secret'] = secret_env
    _require({f'environment variable {fields[name]}': value for name, value in values.items()})
    return cls(**values, client_secret_env=secret_env)


def _read_secret(env: Mapping[str, str], name: str) -> str:
  # Secrets mounted from files often carry a trailing newline, which would
  # otherwise surface as a puzzling 401.
  return env.get(name, '').strip()


def _require(values: Mapping[str, Optional[str]]) -> None:
  missing = [name for name, value in values.items() if not value]
  if missing:
    raise CxoneConfigError(
      'CXone validation needs: '
      + ', '.join(missing)
      + ' (the secret is read from the environment only, never a flag)'
    )


def _check_url(url: str, flag: str) -> None:
  parts = urlsplit(url)
  if parts.scheme not in ('http', 'https') or not parts.hostname:
    raise CxoneConfigError(f'{flag} must be an http(s) URL with a host, got {url!r}')
  # Plain http would send the client secret in clear text; allow it only
  # for loopback (local fakes and tests).
  if parts.scheme == 'http' and not _is_loopback(parts.hostname):
    raise CxoneConfigError(
      f'{flag} must use https (credentials would travel in clear text), got {url!r}'
    )


def _is_loopback(host: str) -> bool:
  if host == 'localhost':
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


@dataclass
class _Token:
  value: str = field(repr=False)
  refresh_at: float


class CxoneClient:
  """OAuth client-credentials client for the CXone Data Actions API.

  The access token is cached and refreshed ``token_expiry_margin_seconds``
  before it expires. Requests retry on 429 (honouring ``Retry-After``),
  5xx, timeouts and connection errors with capped exponential backoff and
  full jitter, at most ``max_retries`` times. ``clock``, ``sleep`` and
  ``rng`` are injectable for tests. Not thread-safe: meant for start-up.
  """

  def __init__(
    self,
    config: CxoneConfig,
    session: Optional[requests.Session] = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rng: Optional[random.Random] = None,
  ) -> None:
    self._config = config
    self._session = session or requests.Session()
    self._clock = clock
    self._sleep = sleep
    self._rng = rng or random.Random()
    self._token: Optional[_Token] = None

  def __repr__(self) -> str:
    return f'CxoneClient(base_url={self._config.base_url!r}, client_id={self._config.client_id!r})'

  def __enter__(self) -> 'CxoneClient':
    return self

  def __exit__(self, *exc_info: object) -> None:
    self.close()

  def close(self) -> None:
    """Closes the HTTP session, including one passed in."""
    self._session.close()

  def validate_data_action(self, action_id: str) -> dict[str, Any]:
    """GETs ``/api/v2/data-actions/{action_id}`` and returns its JSON.

    Raises a ``CxoneError`` subclass saying what to fix otherwise.
    """
    url = f'{self._config.base_url}/api/v2/data-actions/{quote(action_id, safe="")}'
    what = f'the request for data action {action_id!r}'
    # A cached token may have been revoked server-side: one retry with a
    # fresh token tells that apart from a token this API never accepts.
    reused = self._has_valid_token()
    response = self._get(url, what)
    if response.status_code == 401 and reused:
      _LOGGER.info('CXone rejected the cached access token; fetching a new one')
      self._token = None
      response = self._get(url, what)

    status = response.status_code
    if status == 200:
      body = _json_or_none(response)
      if not isinstance(body, dict):
        raise CxoneResponseError(
          f'{url} returned HTTP 200 but not a JSON object; check '
          'that --cxone_base_url points at the CXone API',
          status,
        )
      _LOGGER.info('CXone data action %r is readable', action_id)
      return body
    if status == 401:
      raise CxoneAuthError(
        f'the CXone API at {self._config.base_url} rejected a fresh '
        f'access token from {self._config.token_url} (HTTP 401); '
        'check that --cxone_base_url and --cxone_token_url belong to '
        'the same tenant and region',
        status,
      )
    if status == 403:
      raise CxoneScopeError(
        f'OAuth client {self._config.client_id!r} may not read '
        f'data action {action_id!r} (HTTP 403): grant the API '
        f'application the {REQUIRED_SCOPE} scope in CXone admin',
        status,
      )
    if status == 404:
      raise CxoneNotFoundError(
        f'CXone has no data action with id {action_id!r} at '
        f'{self._config.base_url} (HTTP 404); check '
        '--cxone_action_id against the Data Actions list in CXone',
        action_id,
      )
    raise CxoneResponseError(f'unexpected HTTP {status} from {url}; check --cxone_base_url', status)

  def _access_token(self) -> str:
    if not self._has_valid_token():
      self._token = self._fetch_token()
    return self._token.value

  def _has_valid_token(self) -> bool:
    return self._token is not None and self._clock() < self._token.refresh_at

  def _get(self, url: str, what: str) -> requests.Response:
    return self._send(
      'GET',
      url,
      what,
      headers={'Authorization': f'Bearer {self._access_token()}', 'Accept': 'application/json'},
    )

  def _fetch_token(self) -> _Token:
    cfg = self._config
    # Taken before the request so the token is never used past its
    # lifetime, however long the request took.
    requested_at = self._clock()
    _LOGGER.debug('requesting a CXone access token for client id %r', cfg.client_id)
    response = self._send(
      'POST',
      cfg.token_url,
      'the OAuth token request',
      auth=(cfg.client_id, cfg.client_secret),
      data={'grant_type': 'client_credentials'},
      headers={'Accept': 'application/json'},
    )
    status = response.status_code
    if status in (400, 401, 403):
      code = self._oauth_error_code(response)
      if code == 'invalid_scope':
        raise CxoneScopeError(
          f'the token endpoint refused the scope for client '
          f'{cfg.client_id!r} (HTTP {status}, invalid_scope): '
          f'grant the API application the {REQUIRED_SCOPE} scope',
          status,
        )
      raise CxoneAuthError(
        f'CXone rejected the client credentials for client id '
        f'{cfg.client_id!r} (HTTP {status}'
        + (f', {code}' if code else '')
        + f'); check --cxone_client_id and the secret in environment '
        f'variable {cfg.client_secret_env} (rotated or for another '
        'tenant?)',
        status,
      )
    if status != 200:
      raise CxoneResponseError(
        f'unexpected HTTP {status} from the token endpoint '
        f'{cfg.token_url}; check --cxone_token_url',
        status,
      )
    token = self._parse_token(response, requested_at)
    _LOGGER.debug(
      'CXone access token obtained; refreshing in %.0f s', token.refresh_at - requested_at
    )
    return token

  def _parse_token(self, response: requests.Response, requested_at: float) -> _Token:
    # Never echoes the body: it may hold a token.
    where = f'the token endpoint {self._config.token_url}'
    hint = '; check --cxone_token_url'
    body = _json_or_none(response)
    if not isinstance(body, dict):
      raise CxoneResponseError(f'{where} returned HTTP 200 but no JSON object{hint}', 200)
    value = body.get('access_token')
    if not isinstance(value, str) or not _TOKEN_RE.match(value):
      raise CxoneResponseError(f'{where} returned no usable access_token{hint}', 200)
    token_type = body.get('token_type', 'Bearer')
    if not isinstance(token_type, str) or token_type.lower() != 'bearer':
      raise CxoneResponseError(
        f'{where} returned token_type {token_type!r}, expected Bearer{hint}', 200
      )
    expires_in = body.get('expires_in', DEFAULT_EXPIRES_IN_SECONDS)
    try:
      lifetime = float(expires_in)
    except (TypeError, ValueError):
      lifetime = math.nan
    if isinstance(expires_in, bool) or not (math.isfinite(lifetime) and lifetime > 0):
      raise CxoneResponseError(
        f'{where} returned expires_in {expires_in!r}, expected a positive number of seconds{hint}',
        200,
      )
    # Short-lived tokens would otherwise be "expired" on arrival.
    margin = min(self._config.token_expiry_margin_seconds, lifetime / 2)
    return _Token(value=value, refresh_at=requested_at + lifetime - margin)

  def _oauth_error_code(self, response: requests.Response) -> str:
    body = _json_or_none(response)
    code = body.get('error') if isinstance(body, dict) else None
    if not isinstance(code, str) or not _ERROR_CODE_RE.match(code):
      return ''
    return code.replace(self._config.client_secret, '***')

  def _send(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
    """Sends one request with retries; returns the first response that
    is neither 429 nor 5xx, or raises once the budget is spent."""
    cfg = self._config
    attempts = cfg.max_retries + 1
    for attempt in range(1, attempts + 1):
      response = None
      failure: Optional[requests.RequestException] = None
      try:
        # No redirects: one means a misconfigured URL, better reported
        # than followed with credentials (or with POST turned GET).
        response = self._session.request(
          method,
          url,
          timeout=(cfg.timeout_seconds, cfg.timeout_seconds),
          allow_redirects=False,
          **kwargs,
        )
      except (requests.Timeout, requests.ConnectionError) as exc:
        failure = exc
      except requests.RequestException as exc:
        raise CxoneError(f'{what} to {url} failed: {type(exc).__name__}') from exc
      if response is not None and not _retryable(response.status_code):
        return response
      if attempt == attempts:
        break
      delay = self._retry_delay(attempt, response)
      _LOGGER.warning(
        'CXone %s %s: %s; retry %d/%d in %.2f s',
        method,
        url,
        f'HTTP {response.status_code}' if response is not None else type(failure).__name__,
        attempt,
        cfg.max_retries,
        delay,
      )
      self._sleep(delay)

    if response is not None and response.status_code == 429:
      raise CxoneRateLimitError(
        f'CXone kept rate-limiting {what} (HTTP 429 on all '
        f'{attempts} attempts); start the job again later or raise '
        '--cxone_max_retries',
        429,
      )
    if response is not None:
      raise CxoneUnavailableError(
        f'CXone answered HTTP {response.status_code} to {what} on all '
        f'{attempts} attempts; the service is failing, retry later',
        response.status_code,
      )
    if isinstance(failure, requests.Timeout):
      raise CxoneTimeoutError(
        f'{what} to {url} timed out after {cfg.timeout_seconds} s on '
        f'all {attempts} attempts; check network reachability or '
        'raise --cxone_timeout_seconds'
      ) from failure
    raise CxoneUnavailableError(
      f'cannot reach {url} for {what} ({type(failure).__name__} on all '
      f'{attempts} attempts); check the URL, DNS, proxy and '
      'firewall'
    ) from failure

  def _retry_delay(self, attempt: int, response: Optional[requests.Response]) -> float:
    cfg = self._config
    if response is not None and response.status_code == 429:
      retry_after = _retry_after_seconds(response)
      if retry_after is not None:
        return min(retry_after, cfg.max_retry_after_seconds)
    # Full jitter keeps many job launches from retrying in lockstep.
    ceiling = min(cfg.backoff_cap_seconds, cfg.backoff_base_seconds * 2 ** (attempt - 1))
    return self._rng.uniform(0, ceiling)


def _retryable(status: int) -> bool:
  return status == 429 or status >= 500


def _retry_after_seconds(response: requests.Response) -> Optional[float]:
  # Only the delta-seconds form; an HTTP-date falls back to backoff.
  try:
    seconds = float(response.headers.get('Retry-After', ''))
  except ValueError:
    return None
  return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _json_or_none(response: requests.Response) -> Any:
  try:
    return response.json()
  except ValueError:
    return None


def validate_on_startup(
  config: CxoneConfig, client: Optional[CxoneClient] = None
) -> dict[str, Any]:
  """Checks, before the pipeline is submitted, that the tenant is usable:
  the credentials yield a token and ``config.action_id`` is readable.

  Returns the Data Action's JSON; raises a ``CxoneError`` subclass with an
  actionable message otherwise. A given ``client`` is used (and left
  open); otherwise one is created and closed here.
  """
  if client is not None:
    return client.validate_data_action(config.action_id)
  with CxoneClient(config) as own_client:
    return own_client.validate_data_action(config.action_id)
