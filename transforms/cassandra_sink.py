"""CassandraSink: the result tables as idempotent upserts into Apache Cassandra.

The keyspace and tables come from a versioned CQL schema
(`transforms/cql/v<N>_schema.cql`), applied when the job starts. Every row is
an INSERT (an upsert in Cassandra) of all columns, so re-delivered rows
rewrite the same values. Rows of a table with a version column (the pane
index) carry a write timestamp derived from it, so a later pane wins over an
earlier one in whatever order they arrive.

Tables with a day bucket (late events, dead letters) have it in their
partition key, so no partition grows without bound, and a default TTL
(docs/cassandra_schema.md).

Writes run asynchronously with bounded concurrency. Each failure is
classified (`classify_error`): timeouts and an unavailable cluster are
retried with exponential backoff, and a batch that still fails raises, so
the runner retries the bundle: rows are never dropped. A row Cassandra
refuses for good (a key over 64 KiB, a value it cannot take) is returned as
rejected and becomes a dead letter. An error no retry can fix (credentials,
permissions, a missing keyspace or table, TLS) fails at once with one line
saying so.

The password is read from an environment variable on the machine that
connects (launcher and workers) and is never part of the pickled pipeline,
a repr or a log line. TLS material is given as file paths: the CA, and for
nodes that require client certificates a certificate and key. A failure a
retry cannot fix (rejected credentials, an untrusted or mismatched
certificate, a missing password variable or certificate file) raises
CassandraConnectError at once, with one line saying what to fix
(describe_connect_error); at launch the job stops with that line.
"""

import functools
import itertools
import logging
import os
import random
import re
import ssl
import struct
import time
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions
from cassandra import (
  AuthenticationFailed,
  ConsistencyLevel,
  DriverException,
  InvalidRequest,
  OperationTimedOut,
  ProtocolVersion,
  Unavailable,
  WriteTimeout,
)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import (
  EXEC_PROFILE_DEFAULT,
  Cluster,
  ExecutionProfile,
  NoHostAvailable,
  Session,
)
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.connection import ConnectionException
from cassandra.policies import (
  DCAwareRoundRobinPolicy,
  ExponentialReconnectionPolicy,
  TokenAwarePolicy,
)
from cassandra.protocol import ErrorMessage, IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.query import PreparedStatement

from options.cassandra_options import CassandraOptions
from transforms.schema import Table
from transforms.sinks import Rejection, ResultSink, RowWriter, WriteRows

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 5
SCHEMA_DIR = os.path.join(os.path.dirname(__file__), 'cql')
CQL_TYPES = {str: 'text', int: 'bigint', float: 'double', bool: 'boolean'}

# Write timestamp (microseconds) of a versioned row = this base + pane index.
# Cassandra keeps, cell by cell, the value with the highest write timestamp,
# and every write sets every column, so:
# - a higher pane always wins, whatever order the writes arrive in, also
#   across job restarts and reprocessing runs: the timestamp depends only on
#   the pane, never on when or by which worker it was written;
# - a replayed pane has the same timestamp and the same values: a no-op.
# A fixed base (2020-01-01T00:00:00Z) rather than the wall clock is what
# makes this hold across runs. Its price: a DELETE or UPDATE without USING
# TIMESTAMP gets "now", which outranks every pane forever, so a deleted row
# is never re-created by the pipeline. To reprocess, TRUNCATE the table (it
# ignores timestamps) or use a new keyspace. writetime(col) - base = pane.
PANE_TIMESTAMP_BASE_US = 1_577_836_800_000_000

# Default TTL of tables with a day bucket: 30 days (change it per table with
# ALTER TABLE ... WITH default_time_to_live, docs/cassandra_schema.md).
BUCKETED_TABLE_TTL_S = 30 * 24 * 3600

# Failures that say "not now" rather than "never": the rows are retried.
# ConnectionException covers a node closing connections while it shuts down.
# (A NoHostAvailable of bad credentials or TLS is fatal: classify_error.)
RETRYABLE_ERRORS = (
  WriteTimeout,
  Unavailable,
  OperationTimedOut,
  NoHostAvailable,
  ConnectionException,
  OverloadedErrorMessage,
  IsBootstrappingErrorMessage,
)
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 20.0
REQUEST_TIMEOUT_S = 10.0
DDL_TIMEOUT_S = 60.0
# The driver's default reconnection schedule grows to 10 minutes; after a
# node restart the writer would keep failing long after the node is back.
RECONNECTION_POLICY = ExponentialReconnectionPolicy(base_delay=0.5, max_delay=5.0)

_KEYSPACE_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]{0,47}')


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


class CassandraSettings(NamedTuple):
  """Connection and write settings; picklable, and without the password.

  `password_env` names the environment variable read when connecting. TLS
  is on when `ssl_ca_file` is set; `ssl_cert_file` and `ssl_key_file` add a
  client certificate, `ssl_server_hostname` is the name the nodes'
  certificates must carry (default: the address connected to).
  `protocol_version` None negotiates the highest version both sides speak.
  """

  hosts: Tuple[str, ...]
  port: int
  keyspace: str
  replication: str
  consistency: str
  username: Optional[str]
  password_env: str
  ssl_ca_file: Optional[str]
  ssl_cert_file: Optional[str]
  ssl_key_file: Optional[str]
  ssl_server_hostname: Optional[str]
  protocol_version: Optional[int]
  local_dc: Optional[str]
  write_concurrency: int
  max_retries: int

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'CassandraSettings':
    """Validated settings from `CassandraOptions`; raises ValueError."""
    o = options.view_as(CassandraOptions)
    settings = cls(
      hosts=tuple(h.strip() for h in o.cassandra_hosts.split(',') if h.strip()),
      port=o.cassandra_port,
      keyspace=o.cassandra_keyspace,
      replication=o.cassandra_replication.strip(),
      consistency=o.cassandra_consistency,
      username=o.cassandra_username,
      password_env=o.cassandra_password_env,
      ssl_ca_file=o.cassandra_ssl_ca_file,
      ssl_cert_file=o.cassandra_ssl_cert_file,
      ssl_key_file=o.cassandra_ssl_key_file,
      ssl_server_hostname=o.cassandra_ssl_server_hostname,
      protocol_version=o.cassandra_protocol_version,
      local_dc=o.cassandra_local_dc,
      write_concurrency=o.cassandra_write_concurrency,
      max_retries=o.cassandra_max_retries,
    )
    settings.validate()
    return settings

  def validate(self) -> None:
    """Raises ValueError for settings that cannot work, before any worker
    starts. The keyspace and replication are spliced into CQL, hence the
    strict checks."""
    if not self.hosts:
      raise ValueError('--cassandra_hosts: no host given')
    if not _KEYSPACE_NAME.fullmatch(self.keyspace):
      raise ValueError(
        f'--cassandra_keyspace={self.keyspace!r}: a keyspace name is a '
        'letter then up to 47 letters, digits or underscores'
      )
    if not (
      self.replication.startswith('{')
      and self.replication.endswith('}')
      and ';' not in self.replication
    ):
      raise ValueError(
        '--cassandra_replication must be a CQL map such as '
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
      )
    if self.consistency not in ConsistencyLevel.name_to_value:
      raise ValueError(f'unknown consistency level {self.consistency!r}')
    if self.write_concurrency < 1 or self.max_retries < 0:
      raise ValueError(
        '--cassandra_write_concurrency must be >= 1 and --cassandra_max_retries >= 0'
      )
    if self.username and self.password_env not in os.environ:
      raise ValueError(
        f'--cassandra_username is set but the environment variable '
        f'{self.password_env} (--cassandra_password_env) is not'
      )
    for flag, path in (
      ('ca', self.ssl_ca_file),
      ('cert', self.ssl_cert_file),
      ('key', self.ssl_key_file),
    ):
      if path and not os.path.isfile(path):
        raise ValueError(f'--cassandra_ssl_{flag}_file={path}: no such file')
    if not self.ssl_ca_file and (
      self.ssl_cert_file or self.ssl_key_file or self.ssl_server_hostname
    ):
      raise ValueError(
        '--cassandra_ssl_cert_file, --cassandra_ssl_key_file and '
        '--cassandra_ssl_server_hostname need TLS: give '
        '--cassandra_ssl_ca_file too'
      )
    if self.ssl_key_file and not self.ssl_cert_file:
      raise ValueError('--cassandra_ssl_key_file needs --cassandra_ssl_cert_file')
    if (
      self.protocol_version is not None
      and self.protocol_version not in ProtocolVersion.SUPPORTED_VERSIONS
    ):
      raise ValueError(
        f'--cassandra_protocol_version={self.protocol_version}: the driver '
        f'speaks {sorted(ProtocolVersion.SUPPORTED_VERSIONS)}'
      )


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


def schema_statements(keyspace: str, replication: str, version: int = SCHEMA_VERSION) -> List[str]:
  """The statements of `cql/v<version>_schema.cql` for this keyspace, in
  file order, without comments or the trailing semicolons."""
  path = os.path.join(SCHEMA_DIR, f'v{version}_schema.cql')
  with open(path, encoding='utf-8') as f:
    text = '\n'.join(line for line in f.read().splitlines() if not line.lstrip().startswith('--'))
  return [
    s.strip().format(keyspace=keyspace, replication=replication)
    for s in text.split(';')
    if s.strip()
  ]


class KeyLayout(NamedTuple):
  """A table's primary key in Cassandra: partition key, clustering columns."""

  partition_key: Tuple[str, ...]
  clustering: Tuple[str, ...]


def cassandra_columns(table: Table) -> Tuple[Tuple[str, type], ...]:
  """The record's columns, then the day bucket's if the table has one."""
  if table.day_bucket is None:
    return table.columns
  return (*table.columns, (table.day_bucket.column, str))


def key_layout(table: Table) -> KeyLayout:
  """The first primary-key column is the partition key, with the day bucket
  if any; the others are clustering columns."""
  first, *rest = table.primary_key
  bucket = () if table.day_bucket is None else (table.day_bucket.column,)
  return KeyLayout((first, *bucket), tuple(rest))


def key_cql(layout: KeyLayout) -> str:
  """The layout as in PRIMARY KEY: `(a, b)` or `((a, day), b)`."""
  partition = ', '.join(layout.partition_key)
  if len(layout.partition_key) > 1:
    partition = f'({partition})'
  return f'({", ".join((partition, *layout.clustering))})'


def create_table_cql(keyspace: str, table: Table) -> str:
  """The CREATE TABLE statement that `table`'s record type implies."""
  columns = ', '.join(f'{name} {CQL_TYPES[kind]}' for name, kind in cassandra_columns(table))
  cql = (
    f'CREATE TABLE IF NOT EXISTS {keyspace}.{table.name} ({columns}, '
    f'PRIMARY KEY {key_cql(key_layout(table))})'
  )
  if table.day_bucket is not None:
    cql += f' WITH default_time_to_live = {BUCKETED_TABLE_TTL_S}'
  return cql


def _normalized(cql: str) -> str:
  """CQL without layout: runs of whitespace become one space, and none is
  left around parentheses and commas."""
  return re.sub(r'\s*([(),])\s*', r'\1', ' '.join(cql.split()))


def schema_mismatches(
  keyspace: str, tables: Iterable[Table], statements: Sequence[str]
) -> List[str]:
  """One message per table whose record implies a CREATE TABLE that is not
  among `statements` (the schema for `keyspace`); [] when all match."""
  present = {_normalized(s) for s in statements}
  return [
    f'{table.name}: the CQL schema v{SCHEMA_VERSION} lacks "{create_table_cql(keyspace, table)}"'
    for table in tables
    if _normalized(create_table_cql(keyspace, table)) not in present
  ]


def insert_cql(keyspace: str, table: Table) -> str:
  """The prepared upsert of a full row (and its day bucket); versioned
  tables bind the write timestamp as the last parameter."""
  names = [name for name, _ in cassandra_columns(table)]
  cql = (
    f'INSERT INTO {keyspace}.{table.name} ({", ".join(names)}) '
    f'VALUES ({", ".join("?" for _ in names)})'
  )
  if table.version_column:
    cql += ' USING TIMESTAMP ?'
  return cql


def bind_values(table: Table, row: tuple) -> tuple:
  """The parameters of `insert_cql(table)` for one record. Raises TypeError,
  ValueError or OverflowError for a bucket or version column that is not an
  integer in range."""
  values = tuple(row)
  if table.day_bucket is not None:
    values += (table.day_bucket.value(row),)
  if table.version_column:
    values += (PANE_TIMESTAMP_BASE_US + getattr(row, table.version_column),)
  return values


class CassandraWriteError(RuntimeError):
  """Rows could not be written within the retries, or can never be (the
  message says which); the bundle must fail."""


# What a failed request calls for (classify_error).
RETRY = 'retry'  # the cluster may take it later
REJECT = 'reject'  # this row can never be written: a dead letter
FATAL = 'fatal'  # nothing this job writes can succeed: fail at once

# A per-row InvalidRequest naming missing schema is the keyspace's fault,
# not the row's (Cassandra 5: "keyspace k does not exist", "table t does
# not exist", "Undefined column name c in table k.t"; older servers say
# "unconfigured table").
_SCHEMA_MISSING = re.compile(r'does not exist|unconfigured table|undefined column', re.IGNORECASE)
# Raised by the driver while it serializes one row's values.
_ENCODING_ERRORS = (TypeError, ValueError, OverflowError, struct.error)


def _refused_connection(error: BaseException) -> bool:
  """A host's connection error that no retry can fix: bad credentials, or
  a TLS handshake failure (the driver re-raises an SSLError as an OSError
  keeping only its message)."""
  return (
    isinstance(error, (AuthenticationFailed, ssl.SSLError))
    or isinstance(error, OSError)
    and '[SSL' in str(error)
  )


def classify_error(error: BaseException, per_row: bool) -> str:
  """RETRY, REJECT or FATAL for a failed request: `per_row` when it is the
  outcome of one row's write (an InvalidRequest then concerns that row
  unless it names missing schema), otherwise of connecting or preparing
  (there an InvalidRequest means a missing keyspace or table)."""
  if isinstance(error, NoHostAvailable):
    causes = list(error.errors.values())
    if causes and all(_refused_connection(c) for c in causes):
      return FATAL
    return RETRY
  if isinstance(error, RETRYABLE_ERRORS):
    return RETRY
  if per_row and isinstance(error, InvalidRequest):
    return FATAL if _SCHEMA_MISSING.search(str(error)) else REJECT
  if per_row and isinstance(error, _ENCODING_ERRORS):
    return REJECT
  return FATAL


def error_summary(error: BaseException) -> str:
  """One line: the error's type and message; for NoHostAvailable each
  host's error."""
  if isinstance(error, NoHostAvailable) and error.errors:
    text = '; '.join(f'{host}: {type(e).__name__}: {e}' for host, e in error.errors.items())
  else:
    text = f'{type(error).__name__}: {error}'
  return ' '.join(text.split())


class CassandraWriter(RowWriter):
  """Upserts rows through its own Cluster and Session.

  Connects on the first non-empty batch rather than in `open()`: the local
  BundleBasedDirectRunner sets a DoFn up and tears it down for every bundle,
  mostly empty ones (measured: 171 setups but 16 non-empty batches for 4,000
  calls, at ~0.2 s per connection). A connection failure is then also
  retried like a write failure, unless no retry can fix it.
  """

  def __init__(self, settings: CassandraSettings):
    self._settings = settings
    self._cluster: Optional[Cluster] = None
    self._session: Optional[Session] = None
    self._statements: Dict[str, PreparedStatement] = {}
    self._retries = Metrics.counter('cassandra_sink', 'write_retries')

  def open(self) -> None:
    """Nothing to do until the first write (see the class docstring)."""

  def upsert(self, table: Table, rows: Sequence[tuple]) -> List[Rejection]:
    """Writes `rows` (records of `table`) but the rejected ones (returned),
    or raises CassandraWriteError: after `max_retries` retries, or at once
    for an error no retry can fix."""
    rejected: List[Rejection] = []
    pending: List[Tuple[int, tuple]] = []  # (index in rows, bound values)
    for index, row in enumerate(rows):
      try:
        pending.append((index, bind_values(table, row)))
      except _ENCODING_ERRORS as e:  # the bucket or pane of a bad record
        rejected.append(Rejection(index, 'not_encodable', str(e)))
    for attempt in itertools.count():
      if not pending:
        return rejected
      try:
        statement = self._statement(table)
      except CassandraConnectError:
        raise  # credentials, TLS: one line saying what to fix, never retried
      except Exception as e:  # pylint: disable=broad-except
        # Connecting or preparing failed: retried only if it may pass.
        if classify_error(e, per_row=False) != RETRY:
          raise self._refused(table, e) from e
        error = e
      else:
        pending, error = self._write_once(table, statement, pending, rejected)
        if not pending:
          return rejected
      if attempt == self._settings.max_retries:
        raise CassandraWriteError(
          f'{len(pending)} rows of {self._settings.keyspace}.{table.name} '
          f'not written after {attempt} retries'
        ) from error
      delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt) * random.uniform(
        0.5, 1.0
      )  # jitter: workers do not retry in step
      _LOGGER.warning(
        'Cassandra: %d rows of %s failed (%s: %s); retry %d/%d in %.1f s',
        len(pending),
        table.name,
        type(error).__name__,
        error,
        attempt + 1,
        self._settings.max_retries,
        delay,
      )
      self._retries.inc()
      time.sleep(delay)

  def close(self) -> None:
    """Shuts the Cluster down (its connections and threads)."""
    if self._cluster is not None:
      self._cluster.shutdown()
    self._cluster = self._session = None
    self._statements = {}

  def _write_once(
    self,
    table: Table,
    statement: PreparedStatement,
    pending: List[Tuple[int, tuple]],
    rejected: List[Rejection],
  ) -> Tuple[List[Tuple[int, tuple]], Optional[Exception]]:
    """Writes each pending row once; returns the rows that failed with a
    retryable error and the first such error, adds the rows Cassandra
    refused for good to `rejected`. Raises for a fatal error."""
    results = execute_concurrent_with_args(
      self._session,
      statement,
      [values for _, values in pending],
      concurrency=self._settings.write_concurrency,
      raise_on_first_error=False,
    )
    failed, first_error = [], None
    for (index, values), (ok, outcome) in zip(pending, results):
      if ok:
        continue
      kind = classify_error(outcome, per_row=True)
      if kind == FATAL:
        raise self._refused(table, outcome) from outcome
      if kind == REJECT:
        reason = 'rejected_by_sink' if isinstance(outcome, InvalidRequest) else 'not_encodable'
        rejected.append(Rejection(index, reason, error_summary(outcome)))
        continue
      failed.append((index, values))
      first_error = first_error or outcome
    return failed, first_error

  def _refused(self, table: Table, error: BaseException) -> CassandraWriteError:
    return CassandraWriteError(
      f'Cassandra refuses writes to {self._settings.keyspace}.{table.name}, '
      f'not retried: {error_summary(error)}'
    )

  def _statement(self, table: Table) -> PreparedStatement:
    if self._session is None:
      self._cluster, self._session = connect(self._settings)
    if table.name not in self._statements:
      statement = self._session.prepare(insert_cql(self._settings.keyspace, table))
      # Lets the driver itself retry or speculate on it: upserts of full
      # rows with fixed timestamps can be applied twice.
      statement.is_idempotent = True
      self._statements[table.name] = statement
    return self._statements[table.name]


class StoredTable(NamedTuple):
  """A table as a keyspace holds it (system_schema.columns)."""

  columns: Dict[str, str]  # name -> CQL type
  key: KeyLayout


def stored_table(session: Session, keyspace: str, name: str) -> Optional[StoredTable]:
  """The table `keyspace.name` as stored; None when there is none."""
  rows = list(
    session.execute(
      'SELECT column_name, kind, position, type FROM system_schema.columns '
      'WHERE keyspace_name = %s AND table_name = %s',
      (keyspace, name),
    )
  )
  if not rows:
    return None

  def key_part(kind):
    return tuple(r.column_name for r in sorted(rows, key=lambda r: r.position) if r.kind == kind)

  return StoredTable(
    {r.column_name: r.type for r in rows},
    KeyLayout(key_part('partition_key'), key_part('clustering')),
  )


def stored_schema_version(session: Session, keyspace: str) -> Optional[int]:
  """The highest version recorded in `keyspace.schema_version`; None when
  none is."""
  if stored_table(session, keyspace, 'schema_version') is None:
    return None
  return max(
    (r.version for r in session.execute(f'SELECT version FROM {keyspace}.schema_version')),
    default=None,
  )


def outdated_tables(session: Session, keyspace: str, tables: Iterable[Table]) -> List[str]:
  """One message per table that `keyspace` holds in another layout than
  this release writes (another primary key, a missing column)."""
  problems = []
  for table in tables:
    stored = stored_table(session, keyspace, table.name)
    if stored is None:
      continue  # created by the schema
    if stored.key != key_layout(table):
      problems.append(
        f'{table.name} has PRIMARY KEY {key_cql(stored.key)}, not {key_cql(key_layout(table))}'
      )
    missing = [name for name, _ in cassandra_columns(table) if name not in stored.columns]
    if missing:
      problems.append(f'{table.name} lacks {", ".join(missing)}')
  return problems


def schema_refusal(session: Session, keyspace: str, tables: Iterable[Table]) -> Optional[str]:
  """Why the job must not write to `keyspace` as it is (written by another
  release, see docs/cassandra_schema.md), or None."""
  version = stored_schema_version(session, keyspace)
  if version is not None and version > SCHEMA_VERSION:
    return (
      f'Cassandra keyspace {keyspace} has schema v{version}, newer '
      f'than the v{SCHEMA_VERSION} of this release'
    )
  outdated = outdated_tables(session, keyspace, tables)
  if outdated or (version is not None and version < SCHEMA_VERSION):
    recorded = 'no recorded schema version' if version is None else f'schema v{version}'
    return (
      f'Cassandra keyspace {keyspace} has {recorded}, not '
      f'v{SCHEMA_VERSION} ({"; ".join(outdated) or "an older version"}): '
      'stop the jobs writing to it and migrate it with "python -m '
      f'scripts.migrate_cassandra --cassandra_keyspace={keyspace}" and the '
      "job's other --cassandra_* options (docs/cassandra_schema.md)"
    )
  return None


def _where(settings: CassandraSettings) -> str:
  return f'Cassandra at {",".join(settings.hosts)}:{settings.port}'


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


class CassandraSink(ResultSink):
  """Writes every table into one Cassandra keyspace."""

  def __init__(self, settings: CassandraSettings):
    settings.validate()
    self._settings = settings

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'CassandraSink':
    """The sink configured by `CassandraOptions`; raises ValueError."""
    return cls(CassandraSettings.from_options(options))

  def __repr__(self) -> str:
    return f'CassandraSink({self._settings!r})'

  def prepare(self, tables: Iterable[Table]) -> None:
    """Applies the versioned CQL schema (keyspace, tables, schema_version
    row). Raises ValueError, in one line, if a table's record no longer
    matches it, if Cassandra cannot be reached or refuses the job, or if
    the keyspace holds another schema version (schema_refusal)."""
    tables = list(tables)
    keyspace = self._settings.keyspace
    statements = schema_statements(keyspace, self._settings.replication)
    problems = schema_mismatches(keyspace, tables, statements)
    if problems:
      raise ValueError('; '.join(problems))
    cluster, session = connect_at_launch(self._settings)
    try:
      refusal = schema_refusal(session, keyspace, tables)
      if refusal:
        raise ValueError(refusal)
      for statement in statements:
        session.execute(statement, timeout=DDL_TIMEOUT_S)
    except (NoHostAvailable, DriverException, ErrorMessage) as e:
      raise ValueError(
        f'{_where(self._settings)}: cannot apply schema v{SCHEMA_VERSION} '
        f'to keyspace {keyspace}: {error_summary(e)}'
      ) from e
    finally:
      cluster.shutdown()

  def write(self, table: Table) -> WriteRows:
    return WriteRows(functools.partial(CassandraWriter, self._settings), table, 'cassandra')
