"""Kafka start-up check: log in with the job's client settings first.

In: the Kafka client settings the job's consumers and producers get (with
`${env:NAME}` placeholders, see options/kafka_options.py) and a classpath
holding kafka-clients (the Flink job-server jar).
Out: nothing, or a KafkaCheckError whose message is one line saying what to
fix. Without it a misconfigured client is noticed only where the job server
or a TaskManager creates it, as a Java exception inside the submission or
the running job, and a plaintext client against a TLS listener does not fail
at all but retries until its API timeout.

Two steps:
- a protocol probe of the first reachable bootstrap server: a plaintext
  Kafka request (ApiVersions) when the settings say plaintext, a TLS
  handshake when they say TLS; a plaintext client against a TLS listener
  otherwise only times out;
- `KafkaCheck.java` (beside this file) on the JVM with the given classpath:
  the same client library as the job, resolving the same placeholders from
  this process's environment, lists the topics (whether the job's topics
  exist is not checked: a broker may create them on first use). The
  settings go to it on stdin, never on its command line; it is compiled
  once per user into $XDG_CACHE_HOME (default ~/.cache)/contact-center.

Messages never contain a setting's value: the values of the environment
variables the placeholders name are scrubbed from whatever Kafka reports.
"""

import hashlib
import logging
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

_LOGGER = logging.getLogger(__name__)

CHECK_SOURCE = Path(__file__).with_name('KafkaCheck.java')
CHECK_TIMEOUT_MS = 15000
CONNECT_TIMEOUT_S = 5.0
_PLACEHOLDER = re.compile(r'\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}')
_TLS_PROTOCOLS = ('SSL', 'SASL_SSL')
_JAAS_PASSWORD = re.compile(r'password\s*=\s*"([^"]*)"')


class KafkaCheckError(ValueError):
  """Kafka refused or could not be reached with the job's settings; the
  message says what to fix."""


def check_kafka(
  config: Mapping[str, str],
  classpath: Optional[str],
  secret_sources: Optional[Mapping[str, str]] = None,
) -> None:
  """Raises KafkaCheckError unless a client with `config` logs in to the
  brokers and lists the topics. `secret_sources` maps a setting to where
  its value comes from (for the messages). Without `classpath` only the
  connection and the TLS probe run."""
  servers = _servers(config.get('bootstrap.servers', ''))
  protocol = config.get('security.protocol', 'PLAINTEXT').upper()
  address = _reachable(servers)
  if protocol not in _TLS_PROTOCOLS:
    if not _answers_plaintext(address) and _speaks_tls(address):
      raise KafkaCheckError(
        f'Kafka at {_fmt(address)} expects TLS but security.protocol is '
        f'{protocol}: set --kafka_config=security.protocol=SASL_SSL (or '
        'SSL) and the truststore settings'
      )
  elif not _speaks_tls(address):
    raise KafkaCheckError(
      f'Kafka at {_fmt(address)} does not speak TLS but security.protocol '
      f"is {protocol}: use the broker's TLS listener or a plaintext "
      'security.protocol'
    )
  if not classpath:
    _LOGGER.info('Kafka check: no --flink_job_server_jar, login not checked')
    return
  java = _java()
  if java is None:
    _LOGGER.warning('Kafka check: no java found, login not checked')
    return
  kind, detail = _run_check(java, classpath, config)
  if kind != 'ok':
    raise KafkaCheckError(
      _scrub(_explain(kind, detail, address, config, secret_sources or {}), _secret_values(config))
    )


def _servers(bootstrap: str) -> List[Tuple[str, int]]:
  servers = []
  for item in bootstrap.split(','):
    host, sep, port = item.strip().rpartition(':')
    if not sep or not port.isdigit():
      raise KafkaCheckError(f'--kafka_bootstrap_servers: expected host:port,..., got {item!r}')
    servers.append((host.strip('[]'), int(port)))
  return servers


def _fmt(address: Tuple[str, int]) -> str:
  return f'{address[0]}:{address[1]}'


def _reachable(servers: List[Tuple[str, int]]) -> Tuple[str, int]:
  problems = []
  for address in servers:
    try:
      socket.create_connection(address, timeout=CONNECT_TIMEOUT_S).close()
      return address
    except OSError as e:
      problems.append(f'{_fmt(address)} ({e.strerror or e})')
  raise KafkaCheckError(
    f'no Kafka broker reachable: {", ".join(problems)}; check --kafka_bootstrap_servers'
  )


def _answers_plaintext(address: Tuple[str, int]) -> bool:
  """Whether a plaintext ApiVersions v0 request gets a Kafka answer (a TLS
  listener drops it). Brokers answer it before any SASL exchange."""
  correlation = 0x63630001
  client = b'cc-kafka-check'
  body = struct.pack('>hhih', 18, 0, correlation, len(client)) + client
  try:
    with socket.create_connection(address, timeout=CONNECT_TIMEOUT_S) as sock:
      sock.sendall(struct.pack('>i', len(body)) + body)
      header = b''
      while len(header) < 8:
        chunk = sock.recv(8 - len(header))
        if not chunk:
          return False
        header += chunk
  except OSError:
    return False
  return struct.unpack('>ii', header)[1] == correlation


def _speaks_tls(address: Tuple[str, int]) -> bool:
  """Whether a TLS handshake (no verification: only the protocol matters
  here) completes. A plaintext listener closes the connection on the
  ClientHello or never answers it."""
  context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
  context.check_hostname = False
  context.verify_mode = ssl.CERT_NONE
  try:
    with socket.create_connection(address, timeout=CONNECT_TIMEOUT_S) as sock:
      with context.wrap_socket(sock):
        return True
  except (OSError, ssl.SSLError):
    return False


def _java() -> Optional[str]:
  home = os.environ.get('JAVA_HOME')
  if home and os.access(os.path.join(home, 'bin', 'java'), os.X_OK):
    return os.path.join(home, 'bin', 'java')
  return shutil.which('java')


def _compiled(java: str, classpath: str) -> Optional[str]:
  """A directory with KafkaCheck.class for this source and classpath, or
  None (then the source runs through Java's source launcher, slower)."""
  javac = os.path.join(os.path.dirname(os.path.realpath(java)), 'javac')
  if not os.access(javac, os.X_OK):
    return None
  key = hashlib.sha256(CHECK_SOURCE.read_bytes() + classpath.encode()).hexdigest()[:16]
  cache = Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache')
  target = cache / 'contact-center' / f'kafka-check-{key}'
  if (target / 'KafkaCheck.class').is_file():
    return str(target)
  try:
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    subprocess.run(
      [javac, '-nowarn', '-cp', classpath, '-d', str(target), str(CHECK_SOURCE)],
      check=True,
      capture_output=True,
      timeout=120,
    )
  except (OSError, subprocess.SubprocessError):
    return None
  return str(target)


def _properties(config: Mapping[str, str]) -> str:
  """java.util.Properties text (values escaped)."""

  def escape(value: str) -> str:
    return value.replace('\\', '\\\\').replace('\n', '\\n').replace('\r', '\\r')

  return ''.join(f'{k}={escape(v)}\n' for k, v in config.items())


def _run_check(java: str, classpath: str, config: Mapping[str, str]) -> Tuple[str, str]:
  classes = _compiled(java, classpath)
  if classes:
    main = ['-cp', f'{classes}{os.pathsep}{classpath}', 'KafkaCheck']
  else:
    main = ['-cp', classpath, str(CHECK_SOURCE)]
  command = [
    java,
    '-XX:TieredStopAtLevel=1',
    '-XX:+UseSerialGC',
    '-Xmx128m',
    '-Dorg.slf4j.simpleLogger.defaultLogLevel=off',
    *main,
    str(CHECK_TIMEOUT_MS),
  ]
  try:
    done = subprocess.run(
      command,
      input=_properties(config),
      text=True,
      capture_output=True,
      timeout=CHECK_TIMEOUT_MS / 1000 + 60,
    )
  except subprocess.TimeoutExpired:
    return 'timeout', 'the check did not finish'
  lines = [line for line in done.stdout.splitlines() if line.strip()]
  if not lines:
    return 'error', f'the check produced no result (exit {done.returncode})'
  kind, _, detail = lines[-1].partition('\t')
  return kind, detail


def _explain(
  kind: str,
  detail: str,
  address: Tuple[str, int],
  config: Mapping[str, str],
  sources: Mapping[str, str],
) -> str:
  where = f'Kafka at {_fmt(address)}'
  jaas_from = sources.get('sasl.jaas.config', 'sasl.jaas.config')
  if kind == 'auth':
    return (
      f'{where} rejected the SASL login '
      f'({config.get("sasl.mechanism", "GSSAPI")}): check the user and '
      f'password in {jaas_from} ({detail})'
    )
  if kind == 'denied':
    return f'{where}: the user lacks a permission the job needs ({detail})'
  if kind == 'tls':
    trust = config.get('ssl.truststore.location', 'the JVM default truststore')
    if 'certification path' in detail or 'PKIX' in detail:
      return (
        f'TLS handshake with {where} failed: its certificate is not '
        f'signed by a CA in {trust}; set ssl.truststore.location '
        '(ssl.truststore.type=PEM for a PEM file) to the CA that '
        'issued it'
      )
    if 'subject alternative' in detail.lower() or 'No name matching' in detail:
      return (
        f'TLS handshake with {where} failed: its certificate does not '
        'name this address; connect by a name it carries, or set '
        'ssl.endpoint.identification.algorithm= (empty) to skip the '
        'check'
      )
    return f'TLS handshake with {where} failed: {detail}'
  if kind == 'config':
    unresolved = sorted(
      {n for v in config.values() for n in _PLACEHOLDER.findall(v) if n not in os.environ}
    )
    if unresolved:
      return f'Kafka client settings: environment variable(s) {", ".join(unresolved)} not set'
    return f'Kafka client settings rejected: {detail}'
  if kind == 'timeout':
    return (
      f'{where} did not answer within {CHECK_TIMEOUT_MS // 1000} s '
      f'({detail}); check --kafka_bootstrap_servers and '
      'security.protocol'
    )
  return f'{where}: {detail}'


def _secret_values(config: Mapping[str, str]) -> List[str]:
  """The values the placeholders stand for, and the passwords inside them
  (a JAAS config quotes its password)."""
  values = [
    os.environ[n] for v in config.values() for n in _PLACEHOLDER.findall(v) if os.environ.get(n)
  ]
  return values + [p for v in values for p in _JAAS_PASSWORD.findall(v) if p]


def _scrub(message: str, secrets: List[str]) -> str:
  for value in secrets:
    message = message.replace(value, '***')
  return message


def settings_sources(secret_env_pairs: Optional[List[str]]) -> Dict[str, str]:
  """Setting -> '$ENV_VAR (--kafka_secret_config_env)' for the messages."""
  sources = {}
  for pair in secret_env_pairs or []:
    key, _, env_name = pair.partition('=')
    sources[key.strip()] = f'${env_name} (--kafka_secret_config_env)'
  return sources
