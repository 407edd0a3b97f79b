"""Secrets stay out of flags, logs and error messages; connection errors say what to fix.

No services needed: a refused port and a local TLS listener stand in for misconfigured brokers
(tests/integration/test_secured_stack.py runs the same checks against the secured stack).
"""

import os
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from cassandra import AuthenticationFailed
from cassandra.cluster import NoHostAvailable

from clients.kafka_check import (
  KafkaCheckError,
  _explain,
  _properties,
  _scrub,
  _secret_values,
  check_kafka,
)
from options import reject_secret_flags
from pipelines import contact_center
from transforms.cassandra import (
  CassandraConnectError,
  CassandraSettings,
  connect,
  describe_connect_error,
)

REPO = Path(__file__).resolve().parent.parent
SECRET = 'hunter2-the-secret'


# --- flags ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
  'argv',
  [
    [f'--cassandra_password={SECRET}'],
    ['--kafka_sasl_jaas', SECRET],
    [f'--cxone_client_secret={SECRET}'],
    [f'--api_token={SECRET}'],
  ],
)
def test_unknown_secret_looking_flag_is_refused_without_its_value(argv):
  with pytest.raises(ValueError) as error:
    reject_secret_flags(argv)
  assert SECRET not in str(error.value)
  assert argv[0].split('=')[0] in str(error.value)


def test_known_flags_and_other_unknown_flags_pass():
  reject_secret_flags(
    [
      '--cassandra_password_env=CASSANDRA_PASSWORD',
      '--cxone_client_secret_env=X',
      '--kafka_secret_config_env=sasl.jaas.config=KAFKA_SASL_JAAS_CONFIG',
      '--checkpointing_interval=5000',  # a Flink pass-through flag: unknown to Python, fine
      'positional',
    ]
  )


def test_the_job_refuses_the_flag_before_beam_parses_it():
  with pytest.raises(ValueError) as error:
    contact_center.run(['--call_events=x.jsonl', f'--cassandra_password={SECRET}'])
  assert 'looks like a secret' in str(error.value) and SECRET not in str(error.value)


def _redact(*args: str) -> str:
  done = subprocess.run(
    ['bash', '-c', 'source scripts/stack/lib.sh; redact_argv "$@"', 'redact', *args],
    cwd=REPO,
    env=dict(os.environ, RUN_DIR=os.environ.get('RUN_DIR', str(REPO / '.run'))),
    capture_output=True,
    text=True,
    check=True,
  )
  return done.stdout.strip()


def test_scripts_mask_secret_looking_values_in_argv():
  jaas = f'org.apache.kafka.common.security.scram.ScramLoginModule required password="{SECRET}";'
  out = _redact(
    f'--cassandra_password={SECRET}',
    '--db_token',
    SECRET,
    f'--kafka_config=sasl.jaas.config={jaas}',
    f'--kafka_config=ssl.truststore.password={SECRET}',
    '--kafka_secret_config_env=sasl.jaas.config=KAFKA_SASL_JAAS_CONFIG',
    '--cassandra_password_env=CASSANDRA_PASSWORD',
    '--sink=kafka',
  )
  assert SECRET not in out
  assert out == (
    '--cassandra_password=*** --db_token *** --kafka_config=sasl.jaas.config=*** '
    '--kafka_config=ssl.truststore.password=*** '
    '--kafka_secret_config_env=sasl.jaas.config=KAFKA_SASL_JAAS_CONFIG '
    '--cassandra_password_env=CASSANDRA_PASSWORD --sink=kafka'
  )


# --- Cassandra ------------------------------------------------------------------------------------
def _settings(tmp_path, **changes) -> CassandraSettings:
  ca = tmp_path / 'ca.crt'
  ca.write_text('not read by validate()')
  base = dict(
    hosts=('127.0.0.1',),
    port=9,
    keyspace='ks',
    replication="{'class': 'SimpleStrategy', 'replication_factor': 1}",
    consistency='ONE',
    username='cc_pipeline',
    password_env='IT_UNIT_CASSANDRA_PW',
    ssl_ca_file=str(ca),
    ssl_cert_file=None,
    ssl_key_file=None,
    ssl_server_hostname=None,
    protocol_version=None,
    local_dc=None,
    write_concurrency=1,
    max_retries=0,
  )
  base.update(changes)
  return CassandraSettings(**base)


@pytest.mark.parametrize(
  'changes, message',
  [
    ({'ssl_ca_file': None, 'ssl_server_hostname': 'db.example'}, 'need TLS'),
    ({'ssl_key_file': __file__}, 'needs --cassandra_ssl_cert_file'),
    ({'ssl_cert_file': '/nonexistent/client.crt'}, 'no such file'),
    ({'protocol_version': 9}, '--cassandra_protocol_version=9'),
  ],
)
def test_invalid_tls_settings_are_refused(tmp_path, monkeypatch, changes, message):
  monkeypatch.setenv('IT_UNIT_CASSANDRA_PW', SECRET)
  with pytest.raises(ValueError) as error:
    _settings(tmp_path, **changes).validate()
  assert message in str(error.value)


def test_connect_without_the_password_variable_fails_at_once_naming_it(tmp_path, monkeypatch):
  monkeypatch.delenv('IT_UNIT_CASSANDRA_PW', raising=False)
  with pytest.raises(CassandraConnectError) as error:
    connect(_settings(tmp_path, ssl_ca_file=None))
  assert 'IT_UNIT_CASSANDRA_PW (--cassandra_password_env) is not set' in str(error.value)


def test_connect_with_an_unreadable_ca_file_says_so(tmp_path, monkeypatch):
  monkeypatch.setenv('IT_UNIT_CASSANDRA_PW', SECRET)
  with pytest.raises(CassandraConnectError) as error:
    connect(_settings(tmp_path))  # the CA file holds no certificate
  assert '--cassandra_ssl_ca_file' in str(error.value) and SECRET not in str(error.value)


def _nha(error: BaseException) -> NoHostAvailable:
  return NoHostAvailable('Unable to connect to any servers', {'10.0.0.1:9142': error})


@pytest.mark.parametrize(
  'error, expected',
  [
    (
      AuthenticationFailed(
        'Failed to authenticate to 10.0.0.1:9142: Error from server: code=0100 '
        '[Bad credentials] message="Provided username cc_pipeline and/or '
        'password are incorrect"'
      ),
      "Cassandra at 10.0.0.1:9142 rejected the user name or password of role 'cc_pipeline': "
      'check --cassandra_username and $IT_UNIT_CASSANDRA_PW (--cassandra_password_env)',
    ),
    (AuthenticationFailed('Remote end requires authentication'), 'requires authentication'),
    (
      PermissionError(
        1,
        "Tried connecting to [('10.0.0.1', 9142)]. Last error: [SSL: "
        'CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get '
        'local issuer certificate (_ssl.c:1006)',
      ),
      'is not signed by the CA in',
    ),
    (
      PermissionError(
        1,
        'Last error: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: '
        "IP address mismatch, certificate is not valid for '10.0.0.1'.",
      ),
      '--cassandra_ssl_server_hostname',
    ),
    (
      ssl.SSLError(1, '[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required'),
      'requires a client certificate',
    ),
    (
      PermissionError(1, 'Last error: [SSL: WRONG_VERSION_NUMBER] wrong version number'),
      'the port does not speak TLS',
    ),
  ],
)
def test_connect_errors_become_one_line_saying_what_to_fix(tmp_path, error, expected):
  message = describe_connect_error(_nha(error), _settings(tmp_path))
  assert expected in message and '\n' not in message and SECRET not in message


def test_a_reset_without_tls_suggests_tls(tmp_path):
  message = describe_connect_error(
    _nha(ConnectionResetError(104, 'Connection reset by peer')),
    _settings(tmp_path, ssl_ca_file=None),
  )
  assert 'requires TLS' in message and '--cassandra_ssl_ca_file' in message


# --- Kafka ----------------------------------------------------------------------------------------
def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_kafka_check_names_the_unreachable_brokers():
  port = _free_port()
  with pytest.raises(KafkaCheckError) as error:
    check_kafka({'bootstrap.servers': f'127.0.0.1:{port}'}, None)
  assert str(error.value).startswith(f'no Kafka broker reachable: 127.0.0.1:{port}')


@pytest.fixture
def tls_listener(tmp_path):
  """A TLS server on a free loopback port that completes handshakes (a TLS Kafka listener as
  a plaintext client sees it)."""
  cert, key = tmp_path / 'srv.crt', tmp_path / 'srv.key'
  subprocess.run(
    [
      'openssl',
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-noenc',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-keyout',
      str(key),
      '-out',
      str(cert),
    ],
    check=True,
    capture_output=True,
  )
  context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
  context.load_cert_chain(cert, key)
  server = socket.create_server(('127.0.0.1', 0))
  stop = threading.Event()

  def serve():
    server.settimeout(0.2)
    while not stop.is_set():
      try:
        conn, _ = server.accept()
      except OSError:
        continue
      try:
        with context.wrap_socket(conn, server_side=True) as tls:
          tls.settimeout(1)
          tls.recv(1)
      except OSError:
        pass

  thread = threading.Thread(target=serve, daemon=True)
  thread.start()
  yield server.getsockname()[1]
  stop.set()
  thread.join()
  server.close()


def test_plaintext_settings_against_a_tls_listener_fail_at_once(tls_listener):
  with pytest.raises(KafkaCheckError) as error:
    check_kafka({'bootstrap.servers': f'127.0.0.1:{tls_listener}'}, None)
  assert 'expects TLS but security.protocol is PLAINTEXT' in str(error.value)


def test_check_messages_never_carry_the_secret(monkeypatch):
  monkeypatch.setenv('IT_UNIT_JAAS', f'x required username="u" password="{SECRET}";')
  config = {'sasl.jaas.config': '${env:IT_UNIT_JAAS}', 'sasl.mechanism': 'SCRAM-SHA-512'}
  message = _scrub(
    _explain(
      'auth',
      f'login failed for password {SECRET}',
      ('127.0.0.1', 9094),
      config,
      {'sasl.jaas.config': '$IT_UNIT_JAAS (--kafka_secret_config_env)'},
    ),
    _secret_values(config),
  )
  assert SECRET not in message
  assert message.startswith(
    'Kafka at 127.0.0.1:9094 rejected the SASL login (SCRAM-SHA-512): '
    'check the user and password in $IT_UNIT_JAAS'
  )


def test_settings_reach_the_java_check_as_escaped_properties():
  text = _properties({'a.b': 'x\\y', 'c': 'line1\nline2', 'd': '${env:X}'})
  assert text == 'a.b=x\\\\y\nc=line1\\nline2\nd=${env:X}\n'
