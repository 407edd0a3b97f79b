"""ReplayFiles: JSON-lines files replayed as unbounded streams whose watermark
behaves like a Kafka consumer's.

A file is delivered in polls of `poll_size` consecutive lines (a consumer's
`max.poll.records`); file order is arrival order. Before each poll the
watermark advances to the largest valid event time delivered so far, which
is what KafkaIO's `CreateTime` policy gives a consumer of a producer that
sets record timestamps to event time. The bounded out-of-orderness
(`--max_out_of_orderness_seconds`) is applied by the event-time operators on top of
either source, so the events that would be late from Kafka are late here
too, and a run is deterministic for a given file.

The replay is a TestStream of small chunk descriptors (file, byte offset,
length), computed by one sequential scan at construction; the lines
themselves are read by a DoFn, so the pipeline graph stays small whatever the
file size. Several files are interleaved poll by poll, each with its own
watermark (TestStream output tags).

Progress: the scan counts the lines (`ReplayFiles.total_lines`); the reader
counts the lines it delivered (counter `replay/lines`) and the largest event
time among them (distribution `replay/event_time_ms`, its max), which a
launcher can poll from the running job's metrics (pipelines/progress.py).
"""

import itertools
import json
import os
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional

import apache_beam as beam
from apache_beam.metrics.metric import Metrics
from apache_beam.testing.test_stream import TestStream
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from transforms.records import SourceRecord

METRICS_NAMESPACE = 'replay'
LINES_COUNTER = 'lines'
EVENT_TIME_DISTRIBUTION = 'event_time_ms'


class ReplaySource(NamedTuple):
  """One file to replay. `event_time_ms(raw, above_ms)` returns a valid
  record's event time if it is above `above_ms` (None: any), else None:
  None for a record that must not advance the watermark."""

  name: str
  path: str
  event_time_ms: Callable[[bytes, Optional[int]], Optional[int]]


class _Chunk(NamedTuple):
  source: str
  path: str
  offset: int
  length: int
  first_line: int
  lines: int
  # The largest valid event time up to this poll's end (the watermark to
  # advance to after it), None before any.
  event_time_ms: Optional[int]


def _polls(source: ReplaySource, poll_size: int) -> List[_Chunk]:
  """Each poll's chunk."""
  polls = []
  max_event_ms: Optional[int] = None
  with open(source.path, 'rb') as f:
    line_no = 1
    while True:
      offset = f.tell()
      lines = list(itertools.islice(f, poll_size))
      if not lines:
        break
      # The poll's largest valid event time, whatever the order the lines
      # are looked at in; latest first, because a stream mostly arrives in
      # event-time order: the first valid line then bounds the rest, which
      # event_time_ms dismisses without parsing them.
      for line in reversed(lines):
        event_ms = source.event_time_ms(line.rstrip(b'\n'), max_event_ms)
        if event_ms is not None:
          max_event_ms = event_ms
      chunk = _Chunk(
        source.name, source.path, offset, f.tell() - offset, line_no, len(lines), max_event_ms
      )
      polls.append(chunk)
      line_no += len(lines)
  return polls


class _ReadChunkFn(beam.DoFn):
  def __init__(self):
    self._lines = Metrics.counter(METRICS_NAMESPACE, LINES_COUNTER)
    self._event_time = Metrics.distribution(METRICS_NAMESPACE, EVENT_TIME_DISTRIBUTION)

  def process(self, encoded: bytes) -> Iterator[SourceRecord]:
    chunk = _Chunk(*json.loads(encoded))
    name = os.path.basename(chunk.path)
    with open(chunk.path, 'rb') as f:
      f.seek(chunk.offset)
      data = f.read(chunk.length)
    lines = data.split(b'\n')
    if lines and lines[-1] == b'':
      lines.pop()
    for i, line in enumerate(lines):
      yield SourceRecord(chunk.source, f'{name}:{chunk.first_line + i}', line)
    self._lines.inc(len(lines))
    if chunk.event_time_ms is not None:
      self._event_time.update(chunk.event_time_ms)


class ReplayFiles(beam.PTransform):
  """Replays files as unbounded streams with a Kafka-like watermark.

  Input: the pipeline (PBegin).
  Output: dict source name -> PCollection[SourceRecord] (raw bytes, one per
  line, `origin` = "file:line"), unbounded, in the global window.
  """

  def __init__(self, sources: List[ReplaySource], poll_size: int):
    super().__init__()
    if poll_size <= 0:
      raise ValueError(f'poll size must be > 0, got {poll_size}')
    names = [s.name for s in sources]
    if not sources or len(set(names)) != len(names):
      raise ValueError(f'need distinct replay sources, got {names}')
    self._sources = sources
    self._poll_size = poll_size
    self._scanned: Optional[List[List[_Chunk]]] = None

  def _source_polls(self) -> List[List[_Chunk]]:
    """Each source's polls, from one scan of its file."""
    if self._scanned is None:
      self._scanned = [_polls(s, self._poll_size) for s in self._sources]
    return self._scanned

  @property
  def total_lines(self) -> int:
    """Lines the replay delivers, all sources together."""
    return sum(chunk.lines for polls in self._source_polls() for chunk in polls)

  def _test_stream(self) -> TestStream:
    # Chunks travel as JSON bytes: a runner that executes TestStream itself
    # (Flink) must decode the payload with a coder Java knows.
    stream = TestStream(coder=beam.coders.BytesCoder(), output_tags=[s.name for s in self._sources])
    per_source = self._source_polls()
    watermarks: Dict[str, Timestamp] = {}
    # Round-robin interleaving: deterministic, and no source starves another.
    for round_polls in _zip_longest(per_source):
      for chunk in round_polls:
        current = watermarks.get(chunk.source, MIN_TIMESTAMP)
        stream.add_elements(
          [beam.window.TimestampedValue(json.dumps(chunk).encode(), current)], tag=chunk.source
        )
        if chunk.event_time_ms is not None:
          new = Timestamp(micros=chunk.event_time_ms * 1000)
          if new > current:
            stream.advance_watermark_to(new, tag=chunk.source)
            watermarks[chunk.source] = new
    for source in self._sources:
      stream.advance_watermark_to_infinity(tag=source.name)
    return stream

  def expand(self, pbegin):
    streams = pbegin | 'Polls' >> self._test_stream()
    for polls in streams.values():
      # TestStream leaves multi-output coders to inference (pickling); the
      # runner and the SDK must both read these as plain bytes.
      polls.element_type = bytes
    return {
      s.name: streams[s.name] | f'Read[{s.name}]' >> beam.ParDo(_ReadChunkFn())
      for s in self._sources
    }


def _zip_longest(lists: List[List]) -> Iterator[List]:
  for i in range(max((len(items) for items in lists), default=0)):
    yield [items[i] for items in lists if i < len(items)]
