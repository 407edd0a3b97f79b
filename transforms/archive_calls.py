"""ReadArchiveCalls: the calls of raw call-event files, for a reprocessing
run's backfill (pipelines/reprocess.py)."""

import os
from typing import Iterator, Sequence, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from options.config import CallMetricsConfig
from transforms.formats import registry
from transforms.records import OfferedCall, SourceRecord
from transforms.stored_rows import METRICS_NAMESPACE


class _ReadLinesFn(beam.DoFn):
  """A file's path to its lines as SourceRecords, as the replay reads them
  (transforms/replay.py): raw bytes, `origin` "file:line"."""

  def __init__(self, source: str):
    self._source = source

  def process(self, path: str) -> Iterator[SourceRecord]:
    name = os.path.basename(path)
    with open(path, 'rb') as f:
      for line_no, line in enumerate(f):
        yield SourceRecord(self._source, f'{name}:{line_no}', line.rstrip(b'\n'))


class ReadArchiveCalls(beam.PTransform):
  """The calls of archive files whose event time is in [from_ms, to_ms).

  Input: the pipeline (PBegin). `paths`: files in `config.call_event_format`,
  parsed and de-duplicated as the main job does
  (transforms/formats/registry.py `offered_calls`); `config`: the call
  metrics' settings; only the channels it counts are kept.
  Outputs (a dict):
    `calls`: PCollection[(OfferedCall, None)], RestateWindows' candidates
      (transforms/restatement.py);
    `dead_letters`: PCollection[DeadLetter], the lines that do not parse.
  """

  def __init__(
    self,
    paths: Sequence[str],
    config: CallMetricsConfig,
    source_name: str,
    from_ms: int,
    to_ms: int,
  ):
    super().__init__()
    config = CallMetricsConfig.checked(config)
    self._paths = list(paths)
    self._source_name = source_name
    self._offered_calls = registry.call_event_format(config.call_event_format).offered_calls(config)
    self._channels = frozenset(config.channels)
    self._range = (from_ms, to_ms)

  def expand(self, pipeline):
    calls = (
      pipeline
      | 'Paths' >> beam.Create(self._paths)
      | 'Lines' >> beam.ParDo(_ReadLinesFn(self._source_name))
      # Spreads one file's lines over the workers.
      | 'Spread' >> beam.Reshuffle()
      | 'OfferedCalls' >> self._offered_calls
    )
    kept = calls['offered'] | 'InRange' >> beam.ParDo(_InRangeFn(self._range, self._channels))
    return {'calls': kept, 'dead_letters': calls['dead_letters']}


class _InRangeFn(beam.DoFn):
  def __init__(self, time_range: Tuple[int, int], channels: frozenset):
    self._from_ms, self._to_ms = time_range
    self._channels = channels
    self._kept = Metrics.counter(METRICS_NAMESPACE, 'archive_calls')

  def process(self, call: OfferedCall):
    if self._from_ms <= call.timestamp < self._to_ms and call.channel in self._channels:
      self._kept.inc()
      yield call, None
