#!/usr/bin/env python3
"""Users and readiness checks of the secured Kafka + Cassandra pair
(scripts/stack/kafka.sh --secure, scripts/stack/cassandra.sh --secure). Passwords are read from
the files scripts/stack/secure_pki.sh wrote (never from the command line, never printed); file
paths and user names come from its stack.env.

    secure_setup.py kafka-users --secure-dir D --broker 127.0.0.1:9096 --bootstrap 127.0.0.1:9094
        creates or updates the job's SCRAM-SHA-512 user over the broker-only listener (TLS with the
        broker's certificate), then logs in with it over SASL_SSL.
    secure_setup.py cassandra-ping --secure-dir D --port 9142
        prints the release version through TLS + client certificate + password (the admin role,
        else the default cassandra role of a node that was never set up); exit 1 if neither works.
    secure_setup.py cassandra-roles --secure-dir D --port 9142
        creates the superuser role cc_admin and the job's role cc_pipeline (CREATE on all
        keyspaces: it owns the keyspaces it creates) and drops the default cassandra role.

Needs kafka-python and cassandra-driver (the project's venv); nothing from the pipeline code.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import ssl
import sys
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

KAFKA_MECHANISM = 'SCRAM-SHA-512'
DEFAULT_CASSANDRA_ROLE = ('cassandra', 'cassandra')


def read_env_file(path: Path) -> Dict[str, str]:
  """KEY=value lines (values shell-quoted) as a dict; comments and blank lines skipped."""
  values = {}
  for line in path.read_text(encoding='utf-8').splitlines():
    if line.strip() and not line.lstrip().startswith('#'):
      key, _, raw = line.partition('=')
      parts = shlex.split(raw)
      values[key.strip()] = parts[0] if parts else ''
  return values


class Secure:
  """The files of one $RUN_DIR/secure directory."""

  def __init__(self, directory: str):
    self.dir = Path(directory)
    self.stack = read_env_file(self.dir / 'stack.env')

  def password(self, name: str) -> str:
    return (self.dir / 'passwords' / name).read_text(encoding='utf-8').strip()

  def cassandra_ssl(self) -> Tuple[ssl.SSLContext, dict]:
    context = ssl.create_default_context(cafile=self.stack['SECURE_CA_FILE'])
    context.load_cert_chain(self.stack['SECURE_CLIENT_CERT'], self.stack['SECURE_CLIENT_KEY'])
    return context, {'server_hostname': self.stack['SECURE_CASSANDRA_TLS_NAME']}


# --- Kafka ---------------------------------------------------------------------------------------
def kafka_users(secure: Secure, broker: str, bootstrap: str) -> None:
  from kafka import KafkaAdminClient  # pylint: disable=import-outside-toplevel
  from kafka.admin import UserScramCredentialUpsertion  # pylint: disable=import-outside-toplevel

  user = secure.stack['SECURE_KAFKA_USER']
  password = secure.password('kafka-pipeline')
  admin = KafkaAdminClient(
    bootstrap_servers=broker,
    security_protocol='SSL',
    ssl_cafile=secure.stack['SECURE_CA_FILE'],
    ssl_certfile=str(secure.dir / 'kafka-broker.crt'),
    ssl_keyfile=str(secure.dir / 'kafka-broker.key'),
    request_timeout_ms=30000,
  )
  try:
    admin.alter_user_scram_credentials(
      [UserScramCredentialUpsertion(user, KAFKA_MECHANISM, password)]
    )
  finally:
    admin.close()
  # The credential reaches the SASL listener through the metadata log: retry the first login.
  deadline = time.monotonic() + 30
  while True:
    try:
      client = KafkaAdminClient(
        bootstrap_servers=bootstrap,
        security_protocol='SASL_SSL',
        sasl_mechanism=KAFKA_MECHANISM,
        sasl_plain_username=user,
        sasl_plain_password=password,
        ssl_cafile=secure.stack['SECURE_CA_FILE'],
        request_timeout_ms=15000,
      )
      topics = client.list_topics()
      client.close()
      break
    except Exception as exc:  # pylint: disable=broad-except
      if time.monotonic() > deadline:
        raise SystemExit(
          f'kafka-users: SASL_SSL login of {user} on {bootstrap} failed: {type(exc).__name__}'
        ) from None
      time.sleep(1)
  print(
    f'kafka-users: {user} ({KAFKA_MECHANISM}) logs in on {bootstrap} over SASL_SSL; '
    f'{len(topics)} topics visible'
  )


# --- Cassandra -----------------------------------------------------------------------------------
def cassandra_session(secure: Secure, port: int, credentials: Tuple[str, str]):
  """(cluster, session) logged in with credentials over TLS with the client certificate."""
  from cassandra import ProtocolVersion  # pylint: disable=import-outside-toplevel
  from cassandra.auth import PlainTextAuthProvider  # pylint: disable=import-outside-toplevel
  from cassandra.cluster import Cluster  # pylint: disable=import-outside-toplevel

  context, options = secure.cassandra_ssl()
  cluster = Cluster(
    [secure.stack['SECURE_CASSANDRA_HOST']],
    port=port,
    ssl_context=context,
    ssl_options=options,
    auth_provider=PlainTextAuthProvider(*credentials),
    protocol_version=ProtocolVersion.V5,
    connect_timeout=5,
    control_connection_timeout=5,
  )
  try:
    return cluster, cluster.connect()
  except BaseException:
    cluster.shutdown()
    raise


def admin_credentials(secure: Secure) -> Tuple[str, str]:
  return secure.stack['SECURE_CASSANDRA_ADMIN_USER'], secure.password('cassandra-admin')


def cassandra_login(secure: Secure, port: int) -> Optional[Tuple[object, object, str]]:
  """(cluster, session, role) with the admin role, else the default role, else None."""
  from cassandra.cluster import NoHostAvailable  # pylint: disable=import-outside-toplevel

  for credentials in (admin_credentials(secure), DEFAULT_CASSANDRA_ROLE):
    try:
      cluster, session = cassandra_session(secure, port, credentials)
      return cluster, session, credentials[0]
    except NoHostAvailable:
      continue
  return None


def cassandra_ping(secure: Secure, port: int) -> int:
  login = cassandra_login(secure, port)
  if login is None:
    return 1
  cluster, session, role = login
  try:
    print(f'{session.execute("SELECT release_version FROM system.local").one()[0]} (as {role})')
  finally:
    cluster.shutdown()
  return 0


def cassandra_roles(secure: Secure, port: int) -> None:
  admin, admin_password = admin_credentials(secure)
  user = secure.stack['SECURE_CASSANDRA_USER']
  login = cassandra_login(secure, port)
  if login is None:
    raise SystemExit('cassandra-roles: neither the admin role nor the default role can log in')
  cluster, session, role = login
  try:
    if role != admin:
      # A node that was never set up: the default superuser creates ours, then goes.
      session.execute(
        f'CREATE ROLE IF NOT EXISTS {admin} WITH SUPERUSER = true AND LOGIN = true '
        'AND PASSWORD = %s',
        (admin_password,),
      )
      cluster.shutdown()
      cluster, session = _retry_login(secure, port, (admin, admin_password))
    session.execute(f'DROP ROLE IF EXISTS {DEFAULT_CASSANDRA_ROLE[0]}')
    password = secure.password('cassandra-pipeline')
    if not session.execute('SELECT role FROM system_auth.roles WHERE role = %s', (user,)).one():
      session.execute(f'CREATE ROLE {user} WITH LOGIN = true AND PASSWORD = %s', (password,))
    elif not _can_login(secure, port, (user, password)):  # the password file was regenerated
      session.execute(f'ALTER ROLE {user} WITH PASSWORD = %s', (password,))
    session.execute(f'GRANT CREATE ON ALL KEYSPACES TO {user}')
    roles = sorted(r.role for r in session.execute('SELECT role FROM system_auth.roles'))
  finally:
    cluster.shutdown()
  print(f'cassandra-roles: roles {roles}; default role removed')


def _can_login(secure: Secure, port: int, credentials: Tuple[str, str]) -> bool:
  from cassandra.cluster import NoHostAvailable  # pylint: disable=import-outside-toplevel

  try:
    cluster, _ = cassandra_session(secure, port, credentials)
  except NoHostAvailable:
    return False
  cluster.shutdown()
  return True


def _retry_login(secure: Secure, port: int, credentials: Tuple[str, str]):
  from cassandra.cluster import NoHostAvailable  # pylint: disable=import-outside-toplevel

  deadline = time.monotonic() + 30
  while True:
    try:
      return cassandra_session(secure, port, credentials)
    except NoHostAvailable:
      if time.monotonic() > deadline:
        raise
      time.sleep(1)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('command', choices=('kafka-users', 'cassandra-ping', 'cassandra-roles'))
  parser.add_argument('--secure-dir', required=True)
  parser.add_argument('--broker', help='kafka-users: the broker-only TLS listener')
  parser.add_argument('--bootstrap', help='kafka-users: the SASL_SSL listener')
  parser.add_argument('--port', type=int, help='Cassandra native port')
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.CRITICAL)  # the driver's connection noise
  secure = Secure(args.secure_dir)
  if args.command == 'kafka-users':
    kafka_users(secure, args.broker, args.bootstrap)
  elif args.command == 'cassandra-ping':
    return cassandra_ping(secure, args.port)
  else:
    cassandra_roles(secure, args.port)
  return 0


if __name__ == '__main__':
  sys.exit(main())
