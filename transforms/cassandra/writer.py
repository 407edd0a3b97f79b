"""CassandraWriter: batches of rows upserted with bounded concurrency, and
what each failure calls for.

In: a table's rows, one batch at a time (transforms/sinks.py's WriteRows).
Out: the rows written, but those Cassandra refuses for good, which are
returned as rejections and become dead letters.

The rows of one partition go to Cassandra as one unlogged batch: one
request, one response and one mutation instead of one per row, which is
what the workers spent most of their time on (docs/benchmarks.md,
"Figures"). A batch Cassandra refuses as a whole is written again row
by row, so only the refused rows become dead letters.

Each failure is classified (`classify_error`): timeouts and an unavailable
cluster are retried with exponential backoff, and a batch that still fails
raises, so the runner retries the bundle: rows are never dropped. A row
Cassandra refuses for good (a key over 64 KiB, a value it cannot take) is
rejected. An error no retry can fix (credentials, permissions, a missing
keyspace or table, TLS) fails at once with one line saying so.
"""

import itertools
import logging
import random
import re
import ssl
import struct
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Duration
from cassandra import (
  AuthenticationFailed,
  InvalidRequest,
  OperationTimedOut,
  Unavailable,
  WriteTimeout,
)
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent
from cassandra.connection import ConnectionException
from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage
from cassandra.query import BatchStatement, BatchType, PreparedStatement, Statement

from options.config import CassandraSettings
from transforms.cassandra.connection import CassandraConnectError, connect
from transforms.cassandra.schema import bind_values, insert_cql, partition_key_positions
from transforms.schema import Table
from transforms.sinks import Rejection, RowWriter

_LOGGER = logging.getLogger(__name__)

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
# Rows per batch of one partition. Cassandra checks no size threshold on a
# single-partition batch (batch_size_warn/fail_threshold concern batches
# spanning partitions); the cap keeps a batch's request far below the
# native protocol's 16 MiB frame: the widest rows, dead letters, carry at
# most 4,096 characters of their record (transforms/parsing.py).
PARTITION_BATCH_ROWS = 100


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


class _Request(NamedTuple):
  """One request of a write: a row alone, or rows of one partition."""

  rows: List[Tuple[int, tuple]]  # (index in the batch given to upsert, bound values)
  statement: Statement  # a BoundStatement, or an unlogged BatchStatement of them


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

  def __init__(self, settings: CassandraSettings, row_ttl: Duration = Duration(0)):
    self._settings = settings
    # Rows of expiring tables (window_contacts) are written USING TTL.
    self._row_ttl_s = row_ttl.micros // 1_000_000
    self._cluster: Optional[Cluster] = None
    self._session: Optional[Session] = None
    self._statements: Dict[str, PreparedStatement] = {}
    # The namespace is the metric's public name: pipelines/metrics_server.py
    # exports it as sink_write_retries_total{sink="cassandra"}.
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
        pending.append((index, bind_values(table, row, self._row_ttl_s)))
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
    rows_per_request: int = PARTITION_BATCH_ROWS,
  ) -> Tuple[List[Tuple[int, tuple]], Optional[Exception]]:
    """Writes each pending row once, up to `rows_per_request` rows of one
    partition per request; returns the rows that failed with a retryable
    error and the first such error, adds the rows Cassandra refused for
    good to `rejected`. Raises for a fatal error."""
    requests = self._requests(table, statement, pending, rejected, rows_per_request)
    results = execute_concurrent(
      self._session,
      [(request.statement, None) for request in requests],
      concurrency=self._settings.write_concurrency,
      raise_on_first_error=False,
    )
    failed, first_error, refused_batches = [], None, []
    for request, (ok, outcome) in zip(requests, results):
      if ok:
        continue
      kind = classify_error(outcome, per_row=True)
      if kind == FATAL:
        raise self._refused(table, outcome) from outcome
      if kind == REJECT and len(request.rows) > 1:
        refused_batches.extend(request.rows)  # which row? written alone below
      elif kind == REJECT:
        reason = 'rejected_by_sink' if isinstance(outcome, InvalidRequest) else 'not_encodable'
        rejected.append(Rejection(request.rows[0][0], reason, error_summary(outcome)))
      else:
        failed.extend(request.rows)
        first_error = first_error or outcome
    if refused_batches:
      alone_failed, alone_error = self._write_once(
        table, statement, refused_batches, rejected, rows_per_request=1
      )
      failed.extend(alone_failed)
      first_error = first_error or alone_error
    return failed, first_error

  @staticmethod
  def _requests(
    table: Table,
    statement: PreparedStatement,
    pending: List[Tuple[int, tuple]],
    rejected: List[Rejection],
    rows_per_request: int,
  ) -> List[_Request]:
    """The pending rows bound and grouped by partition into requests of at
    most `rows_per_request` rows; a row whose values cannot be encoded is
    added to `rejected` instead."""
    positions = partition_key_positions(table)
    partitions: Dict[object, List[Tuple[int, tuple]]] = {}
    for index, values in pending:
      key = tuple(values[i] for i in positions)
      try:
        partitions.setdefault(key, []).append((index, values))
      except TypeError:  # an unhashable value, which binding refuses below
        partitions[object()] = [(index, values)]
    requests = []
    for rows in partitions.values():
      for start in range(0, len(rows), rows_per_request):
        bound = []
        for index, values in rows[start : start + rows_per_request]:
          try:
            bound.append(((index, values), statement.bind(values)))
          except _ENCODING_ERRORS as e:
            rejected.append(Rejection(index, 'not_encodable', str(e)))
        if len(bound) == 1:
          requests.append(_Request([bound[0][0]], bound[0][1]))
        elif bound:
          batch = BatchStatement(BatchType.UNLOGGED)
          for _, bound_statement in bound:
            batch.add(bound_statement)
          batch.is_idempotent = True  # as its rows' statement (_statement)
          requests.append(_Request([row for row, _ in bound], batch))
    return requests

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
