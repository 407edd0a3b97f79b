"""The sink interface: how result tables reach a store.

A `ResultSink` turns a `Table` into a PTransform that consumes that table's
records. Stores written row by row (SQLite, Cassandra) implement the smaller
`RowWriter` and get batching and the worker lifecycle from `WriteRows`.

Contract for every sink: writes are idempotent upserts by primary key; for a
table with a version column an older version never overwrites a newer one;
a batch that cannot be made durable raises, so the runner retries the bundle
instead of dropping rows.
"""
import abc
from typing import Callable, Dict, Iterable, List, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.schema import Table


class ResultSink(abc.ABC):
  """A store that receives result tables."""
  def prepare(self, tables: Iterable[Table]) -> None:
    """Creates the tables before the job starts, so readers find them even
    when a table never receives a row. Runs where the job is launched."""

  @abc.abstractmethod
  def write(self, table: Table) -> beam.PTransform:
    """A PTransform from PCollection[table.record_type] to nothing useful."""


class RowWriter(abc.ABC):
  """Upserts rows into one store; one instance per DoFn instance (worker)."""
  @abc.abstractmethod
  def open(self) -> None:
    """Connects to the store."""

  @abc.abstractmethod
  def upsert(self, table: Table, rows: Sequence[tuple]) -> None:
    """Writes rows durably or raises."""

  @abc.abstractmethod
  def close(self) -> None:
    """Releases connections."""


class _WriteRowsFn(beam.DoFn):
  def __init__(
      self, writer_factory: Callable[[], RowWriter], table: Table,
      batch_size: int):
    self._writer_factory = writer_factory
    self._table = table
    self._batch_size = batch_size
    self._rows_written = Metrics.counter('sink', f'{table.name}_rows')
    self._writer = None
    self._batch: List[tuple] = []

  def setup(self):
    self._writer = self._writer_factory()
    self._writer.open()

  def start_bundle(self):
    self._batch = []

  def process(self, row):
    self._batch.append(row)
    if len(self._batch) >= self._batch_size:
      self._flush()

  def finish_bundle(self):
    # Flushing before the bundle commits is what makes the sink at-least-once:
    # a failure here fails the bundle and the runner replays it.
    self._flush()

  def teardown(self):
    if self._writer is not None:
      self._writer.close()

  def _flush(self):
    if self._batch:
      self._writer.upsert(self._table, self._batch)
      self._rows_written.inc(len(self._batch))
      self._batch = []


class WriteRows(beam.PTransform):
  """Writes a table's records with a RowWriter, in batches per bundle.

  Input: PCollection[table.record_type]. Output: none (an empty PCollection).
  """
  def __init__(
      self,
      writer_factory: Callable[[], RowWriter],
      table: Table,
      batch_size: int = 500):
    super().__init__()
    self._fn = _WriteRowsFn(writer_factory, table, batch_size)

  def expand(self, rows):
    return rows | beam.ParDo(self._fn)


class WriteTables(beam.PTransform):
  """Writes every result table to every configured sink.

  Input: dict table name -> PCollection of that table's records (applied as
  `tables | WriteTables(sinks, TABLES)`).
  """
  def __init__(self, sinks: Iterable[ResultSink], tables: Dict[str, Table]):
    super().__init__()
    self._sinks = list(sinks)
    self._tables = tables

  # Unannotated: Beam takes an expand() input hint for one PCollection's
  # type and warns on a dict of them (the docstring says what comes in).
  def expand(self, pcolls):
    for sink in self._sinks:
      sink.prepare(self._tables[name] for name in pcolls)
    for name, rows in pcolls.items():
      table = self._tables[name]
      for sink in self._sinks:
        _ = rows | f'{type(sink).__name__}[{name}]' >> sink.write(table)
    return beam.pvalue.PDone(next(iter(pcolls.values())).pipeline)
