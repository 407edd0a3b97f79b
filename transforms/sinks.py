"""The sink interface: how result tables reach a store.

A `ResultSink` turns a `Table` into a PTransform that consumes that table's
records. Stores written row by row (SQLite, Cassandra) implement the smaller
`RowWriter` and get batching and the worker lifecycle from `WriteRows`.

Contract for every sink: writes are idempotent upserts by primary key; for a
table with a version column an older version never overwrites a newer one;
a batch that cannot be made durable raises, so the runner retries the bundle
instead of dropping rows. A row the store refuses for good (too large,
invalid for it) cannot be made durable by any retry: it is rejected instead,
and its write transform outputs it as a DeadLetter, which `WriteTables`
writes to the same sink's dead_letters table. A bundle never fails forever
on one row.
"""

import abc
import hashlib
import json
import logging
from typing import Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence

import apache_beam as beam
from apache_beam import typehints
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow, GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue

from transforms.parsing import InvalidRecord, dead_letter
from transforms.records import DeadLetter, SourceRecord
from transforms.schema import DEAD_LETTERS, Table

_LOGGER = logging.getLogger(__name__)

# The tagged output of a write transform's DoFn: rows the store rejected.
REJECTED = 'rejected'
# dead_letters.origin is a key column (stores bound keys: 64 KiB in
# Cassandra); longer row keys are cut and made unique again by a digest.
MAX_ORIGIN_KEY_CHARS = 256


class Rejection(NamedTuple):
  """A row of a batch that the store refused for good.

  `index` is the row's position in the batch given to `RowWriter.upsert`;
  `reason` a stable code (`rejected_by_sink`, `not_encodable`, ...);
  `detail` the store's message.
  """

  index: int
  reason: str
  detail: str


class ResultSink(abc.ABC):
  """A store that receives result tables.

  Building a sink and its write transforms does no I/O: a graph can be
  built, inspected or pickled anywhere. `prepare` is the one step that
  touches the store, called by the launcher after the graph is built and
  before the job is submitted (`pipelines/contact_center.py`).
  """

  def prepare(self, tables: Iterable[Table]) -> None:  # noqa: B027 (optional)
    """Creates the tables before the job starts, so the workers and the
    readers find them even when a table never receives a row; raises
    ValueError, in one line, when the store refuses the job. Runs where
    the job is launched."""

  @abc.abstractmethod
  def write(self, table: Table) -> beam.PTransform:
    """A PTransform from PCollection[table.record_type] to
    PCollection[DeadLetter]: the rows the store rejected (see
    `rejected_row`)."""


class RowWriter(abc.ABC):
  """Upserts rows into one store; one instance per DoFn instance (worker)."""

  @abc.abstractmethod
  def open(self) -> None:
    """Connects to the store."""

  @abc.abstractmethod
  def upsert(self, table: Table, rows: Sequence[tuple]) -> List[Rejection]:
    """Writes rows durably, except those it returns as rejected, or raises
    (then the whole batch is written again)."""

  @abc.abstractmethod
  def close(self) -> None:
    """Releases connections."""


def primary_key_json(table: Table, row: tuple) -> str:
  """The row's primary-key values as a compact JSON array, e.g.
  `["Q-1",1793606400000]`: unambiguous whatever characters the values hold,
  unlike a separator-joined string. Raises ValueError for a value that is
  not strict JSON (NaN, infinity)."""
  return json.dumps(
    [getattr(row, k) for k in table.primary_key],
    separators=(',', ':'),
    ensure_ascii=False,
    allow_nan=False,
  )


def _origin(table: Table, row: tuple) -> str:
  """'table:key' for a rejected row; ASCII, bounded, the same for the same
  key (a re-delivered row upserts the same dead letter)."""
  key = json.dumps([getattr(row, k) for k in table.primary_key], separators=(',', ':'), default=str)
  if len(key) > MAX_ORIGIN_KEY_CHARS:
    digest = hashlib.sha256(key.encode('ascii')).hexdigest()[:32]
    key = f'{key[: MAX_ORIGIN_KEY_CHARS - 48]}...sha256:{digest}'
  return f'{table.name}:{key}'


def rejected_row(
  sink: str, table: Table, row: tuple, reason: str, detail: str
) -> Optional[DeadLetter]:
  """The dead letter of `row` rejected by `sink` ('cassandra', ...) for
  `reason`, counted per table and reason (namespace `sink`,
  `<table>_rejected_<reason>`).

  None for a rejected dead letter: it becomes no further dead letter (that
  could loop), it is logged without its raw record, and counted.
  """
  Metrics.counter('sink', f'{table.name}_rejected_{reason}').inc()
  if table.record_type is DeadLetter:
    _LOGGER.error(
      '%s sink rejected the dead letter %.256r from %.256r (reason %.64r), not stored: %s: %.500s',
      sink,
      row.origin,
      row.source,
      row.reason,
      reason,
      detail,
    )
    return None
  raw = json.dumps(row._asdict(), default=str).encode('ascii')
  return dead_letter(
    SourceRecord(f'sink:{sink}', _origin(table, row), raw), InvalidRecord(reason, detail)
  )


class _WriteRowsFn(beam.DoFn):
  def __init__(
    self, writer_factory: Callable[[], RowWriter], table: Table, batch_size: int, sink: str
  ):
    self._writer_factory = writer_factory
    self._table = table
    self._batch_size = batch_size
    self._sink = sink
    self._rows_written = Metrics.counter('sink', f'{table.name}_rows')
    self._writer = None
    self._batch: List[tuple] = []
    self._timestamps: List = []

  def setup(self):
    self._writer = self._writer_factory()
    self._writer.open()

  def start_bundle(self):
    self._batch = []
    self._timestamps = []

  def process(self, row, timestamp=beam.DoFn.TimestampParam):
    self._batch.append(row)
    self._timestamps.append(timestamp)
    if len(self._batch) >= self._batch_size:
      yield from self._flush()

  def finish_bundle(self):
    # Flushing before the bundle commits is what makes the sink at-least-once:
    # a failure here fails the bundle and the runner replays it.
    yield from self._flush()

  def teardown(self):
    if self._writer is not None:
      self._writer.close()

  def _flush(self) -> Iterator[beam.pvalue.TaggedOutput]:
    if not self._batch:
      return
    rows, timestamps = self._batch, self._timestamps
    self._batch, self._timestamps = [], []
    rejections = self._writer.upsert(self._table, rows)
    self._rows_written.inc(len(rows) - len(rejections))
    for index, reason, detail in rejections:
      letter = rejected_row(self._sink, self._table, rows[index], reason, detail)
      if letter is not None:
        # Explicitly windowed: finish_bundle has no input element to take
        # the window from (WriteRows puts the output in the global window).
        yield beam.pvalue.TaggedOutput(
          REJECTED, WindowedValue(letter, timestamps[index], (GlobalWindow(),))
        )


class WriteRows(beam.PTransform):
  """Writes a table's records with a RowWriter, in batches per bundle.

  Input: PCollection[table.record_type]. Output: PCollection[DeadLetter] in
  the global window, the rows the store rejected (the DoFn's `rejected`
  tagged output), with source `sink:<sink>` and origin `table:key`.
  """

  def __init__(
    self, writer_factory: Callable[[], RowWriter], table: Table, sink: str, batch_size: int = 500
  ):
    super().__init__()
    self._fn = _WriteRowsFn(writer_factory, table, batch_size, sink)

  def expand(self, rows):
    outputs = rows | 'Upsert' >> beam.ParDo(self._fn).with_output_types(
      typehints.Any, **{REJECTED: DeadLetter}
    ).with_outputs(REJECTED)
    # Re-windowed because the elements are global but the declared windowing
    # is the input's, and Flatten with other dead letters needs it equal.
    return outputs[REJECTED] | 'Rejected' >> beam.WindowInto(GlobalWindows())


class WriteTables(beam.PTransform):
  """Writes every result table to every configured sink.

  Input: dict table name -> PCollection of that table's records (applied as
  `tables | WriteTables(sinks, TABLES)`); `TABLES` must hold dead_letters.
  Each sink's rejected rows (of every other table) go to that sink's
  dead_letters table along with the input's dead letters.
  Applying this transform prepares nothing: `prepare` must run before the
  pipeline does.
  """

  def __init__(self, sinks: Iterable[ResultSink], tables: Dict[str, Table]):
    super().__init__()
    self._sinks = list(sinks)
    self._tables = tables

  def prepare(self, names: Iterable[str]) -> None:
    """The launch step for inputs called `names`: every sink creates those
    tables and dead_letters (where its rejected rows go). Raises
    ValueError, in one line, when a sink refuses the job."""
    dead_letters = self._tables[DEAD_LETTERS.name]
    tables = [*(self._tables[name] for name in names if name != dead_letters.name), dead_letters]
    for sink in self._sinks:
      sink.prepare(tables)

  # Unannotated: Beam takes an expand() input hint for one PCollection's
  # type and warns on a dict of them (the docstring says what comes in).
  def expand(self, pcolls):
    dead_letters = self._tables[DEAD_LETTERS.name]
    others = [name for name in pcolls if name != dead_letters.name]
    pipeline = next(iter(pcolls.values())).pipeline
    for sink in self._sinks:
      label = type(sink).__name__
      letters = [pcolls[n] for n in pcolls if n == dead_letters.name]
      for name in others:
        letters.append(pcolls[name] | f'{label}[{name}]' >> sink.write(self._tables[name]))
      _ = (
        letters
        | f'{label}[rejected]' >> beam.Flatten(pipeline=pipeline)
        | f'{label}[dead_letters]' >> sink.write(dead_letters)
      )
    return beam.pvalue.PDone(pipeline)
