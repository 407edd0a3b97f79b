"""Connecting to Cassandra: the driver's Cluster and Session, TLS, and what a
failed connection means.

In: the frozen `CassandraSettings` (options/config.py), which carry no
password. Out: a connected (Cluster, Session) for the sink's writer
(transforms/cassandra/writer.py), the launch step (sink.py, migration.py)
and the wallboard's reader (pipelines/wallboard/stores.py).

The password is read from an environment variable here, on the machine that
connects (launcher and workers), so it is never part of the pickled
pipeline, a repr or a log line. TLS material is given as file paths: the
CA, and for nodes that require client certificates a certificate and key. A
failure a retry cannot fix (rejected credentials, an untrusted or mismatched
certificate, a missing password variable or certificate file) raises
CassandraConnectError at once, with one line saying what to fix
(describe_connect_error); at launch the job stops with that line.
"""

import logging
import os
import re
import ssl
from typing import Dict, List, Optional, Tuple

from cassandra import AuthenticationFailed, ConsistencyLevel, DriverException
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
  EXEC_PROFILE_DEFAULT,
  Cluster,
  ExecutionProfile,
  NoHostAvailable,
  Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import (
  DCAwareRoundRobinPolicy,
  ExponentialReconnectionPolicy,
  TokenAwarePolicy,
)

from options.config import CassandraSettings

REQUEST_TIMEOUT_S = 10.0
# The driver's default reconnection schedule grows to 10 minutes; after a
# node restart the writer would keep failing long after the node is back.
RECONNECTION_POLICY = ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0)


class _DriverConnectionLog(logging.Filter):
  """Keeps the driver's connection logging to one line per event.

  Drops the "Downgrading core protocol version" warnings: with the version
  negotiated (no --cassandra_protocol_version) every connection to Cassandra
  4 or later logs two, one per DSE version the driver tries first, and every
  worker connects. Folds the traceback of a failed connection attempt into
  its line: connect() raises the error itself, saying what to fix, and a
  launch must not end in tracebacks.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    if record.getMessage().startswith('Downgrading core protocol version'):
      return False
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, (OSError, AuthenticationFailed, NoHostAvailable, ConnectionException)):
      record.msg, record.args = f'{record.getMessage()} {error!r}', ()
      record.exc_info = record.exc_text = None
    return True


for _name in ('cassandra.cluster', 'cassandra.connection', 'cassandra.pool'):
  logging.getLogger(_name).addFilter(_DriverConnectionLog())


class CassandraConnectError(ValueError):
  """Connecting failed for a reason that retrying cannot fix; the message
  is one line saying what to fix."""


def connect(settings: CassandraSettings) -> Tuple[Cluster, Session]:
  """A connected (Cluster, Session); the caller shuts the Cluster down.

  Raises CassandraConnectError when retrying cannot help (see
  describe_connect_error), NoHostAvailable when no contact point answers.
  """
  auth_provider = None
  if settings.username:
    # Read here, on the machine that connects, so that the password never
    # travels inside the pickled pipeline.
    password = os.environ.get(settings.password_env)
    if password is None:
      raise CassandraConnectError(
        f'environment variable {settings.password_env} '
        '(--cassandra_password_env) is not set in this process: the '
        'launcher and every worker need it (docs/secured_clusters.md)'
      )
    auth_provider = PlainTextAuthProvider(settings.username, password)
  ssl_context, ssl_options = _tls(settings)
  # Negotiated unless pinned: the driver starts at its newest version and
  # steps down on the node's protocol error.
  version = (
    {} if settings.protocol_version is None else {'protocol_version': settings.protocol_version}
  )
  profile = ExecutionProfile(
    load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=settings.local_dc)),
    consistency_level=ConsistencyLevel.name_to_value[settings.consistency],
    request_timeout=REQUEST_TIMEOUT_S,
  )
  cluster = Cluster(
    list(settings.hosts),
    port=settings.port,
    execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    auth_provider=auth_provider,
    ssl_context=ssl_context,
    ssl_options=ssl_options,
    reconnection_policy=RECONNECTION_POLICY,
    connect_timeout=REQUEST_TIMEOUT_S,
    **version,
  )
  try:
    return cluster, cluster.connect()
  except NoHostAvailable as e:
    cluster.shutdown()
    if _unfixable_by_retry(e):
      raise CassandraConnectError(describe_connect_error(e, settings)) from e
    raise
  except BaseException:
    cluster.shutdown()
    raise


def _tls(settings: CassandraSettings) -> Tuple[Optional[ssl.SSLContext], Optional[Dict[str, str]]]:
  """The driver's ssl_context and ssl_options; (None, None) without TLS."""
  if not settings.ssl_ca_file:
    return None, None
  try:
    # Verifies each node's certificate and that it names the address the
    # driver connects to (nodes found through discovery are IP addresses),
    # or ssl_server_hostname for certificates issued to a DNS name.
    context = ssl.create_default_context(cafile=settings.ssl_ca_file)
    if settings.ssl_cert_file:
      context.load_cert_chain(settings.ssl_cert_file, settings.ssl_key_file)
  except (OSError, ssl.SSLError) as e:
    raise CassandraConnectError(
      'Cassandra TLS files: cannot load --cassandra_ssl_ca_file / '
      f'--cassandra_ssl_cert_file / --cassandra_ssl_key_file here '
      f'({getattr(e, "strerror", None) or e}); every worker needs them at '
      'the same paths'
    ) from e
  options = (
    {'server_hostname': settings.ssl_server_hostname} if settings.ssl_server_hostname else None
  )
  return context, options


def _host_errors(exc: BaseException) -> List[BaseException]:
  """The per-host errors a NoHostAvailable wraps, or [exc] itself."""
  if isinstance(exc, NoHostAvailable) and isinstance(exc.errors, dict):
    return [e for e in exc.errors.values() if isinstance(e, BaseException)]
  return [exc]


def _is_tls_failure(exc: BaseException) -> bool:
  # The driver re-raises a failed handshake as a plain OSError whose text
  # carries OpenSSL's reason, e.g. "[SSL: CERTIFICATE_VERIFY_FAILED] ...".
  return isinstance(exc, ssl.SSLError) or '[SSL' in str(exc)


def _is_tls_eof(exc: BaseException) -> bool:
  """The node closed the TLS connection mid-handshake: a client certificate
  it wanted and did not get (TLS 1.3 reports it after the handshake), or a
  node going down."""
  return isinstance(exc, ssl.SSLEOFError) or 'EOF occurred' in str(exc)


def _unfixable_by_retry(exc: NoHostAvailable) -> bool:
  errors = _host_errors(exc)
  return bool(errors) and all(
    isinstance(e, AuthenticationFailed) or (_is_tls_failure(e) and not _is_tls_eof(e))
    for e in errors
  )


def describe_connect_error(exc: BaseException, settings: Optional[CassandraSettings] = None) -> str:
  """One line saying what failed and what to fix, for a connection error
  (AuthenticationFailed, a TLS failure, a reset, a refusal, or a
  NoHostAvailable wrapping those). Never contains the password."""
  errors = _host_errors(exc)
  hosts = (
    sorted(str(h) for h in exc.errors) if isinstance(exc, NoHostAvailable) and exc.errors else []
  )
  where = f'Cassandra at {", ".join(hosts)}' if hosts else 'Cassandra'
  password_env = settings.password_env if settings else 'CASSANDRA_PASSWORD'
  for e in errors:
    text = str(e)
    if isinstance(e, AuthenticationFailed):
      if 'requires authentication' in text:
        return (
          f'{where} requires authentication: set --cassandra_username '
          f'and the password in ${password_env} '
          '(--cassandra_password_env)'
        )
      user = f' of role {settings.username!r}' if settings else ''
      return (
        f'{where} rejected the user name or password{user}: check '
        f'--cassandra_username and ${password_env} '
        '(--cassandra_password_env)'
      )
    if _is_tls_failure(e):
      no_cert = not (settings and settings.ssl_cert_file)
      if 'CERTIFICATE_REQUIRED' in text or (_is_tls_eof(e) and no_cert):
        return (
          f'{where} requires a client certificate: set '
          '--cassandra_ssl_cert_file and --cassandra_ssl_key_file'
        )
      if 'mismatch' in text or 'not valid for' in text:
        return (
          f"TLS with {where}: the node's certificate does not name "
          'the address connected to; set --cassandra_ssl_server_hostname '
          'to the name it was issued to'
        )
      if 'CERTIFICATE_VERIFY_FAILED' in text:
        ca = settings.ssl_ca_file if settings else 'the CA file'
        return (
          f"TLS with {where}: the node's certificate is not signed by "
          f'the CA in {ca} (--cassandra_ssl_ca_file); give the CA that '
          'issued it'
        )
      if 'WRONG_VERSION_NUMBER' in text:
        return (
          f'TLS with {where} failed: the port does not speak TLS; use '
          'the TLS port or drop --cassandra_ssl_ca_file'
        )
      if _is_tls_eof(e) or 'UNKNOWN_CA' in text or 'BAD_CERTIFICATE' in text:
        return (
          f'TLS with {where}: the node closed the handshake; check that '
          'it trusts the CA of --cassandra_ssl_cert_file'
        )
      return f'TLS with {where} failed: {_ssl_reason(text)}'
    if isinstance(e, ConnectionResetError) and not (settings and settings.ssl_ca_file):
      return (
        f'{where} closed the connection at the protocol handshake: the '
        'node probably requires TLS; give --cassandra_ssl_ca_file '
        '(and a client certificate if it asks for one)'
      )
    if isinstance(e, ConnectionRefusedError) or 'refused' in text.lower():
      return (
        f'{where}: connection refused; check --cassandra_hosts, '
        '--cassandra_port and that the node is up'
      )
  first = errors[0] if errors else exc
  return f'{where}: {type(first).__name__}: {first}'


def _ssl_reason(text: str) -> str:
  match = re.search(r'\[SSL: [A-Z0-9_]+\][^(]*', text)
  return match.group(0).strip() if match else text


def connect_at_launch(settings: CassandraSettings) -> Tuple[Cluster, Session]:
  """`connect`, where the job is launched: a Cassandra that cannot be
  reached or refuses the credentials is a ValueError in one line."""
  # The driver logs each failed attempt with a traceback; the ValueError
  # says the same in one line.
  driver_log = logging.getLogger('cassandra')
  level = driver_log.level
  driver_log.setLevel(logging.CRITICAL)
  try:
    return connect(settings)
  except CassandraConnectError:
    raise
  except (NoHostAvailable, DriverException, OSError) as e:
    # At launch even a node that is down ends the launch with one line.
    raise CassandraConnectError(describe_connect_error(e, settings)) from e
  finally:
    driver_log.setLevel(level)
