"""BatchPerKey on its own: per bundle, one (key, elements) per key with the
key's elements in arrival order, stamped with the bundle's earliest event
time, in the global window; typed output so a stateful step can follow.

Each TestStream `add_elements` is a bundle of its own on the local runner
(tests/test_call_events.py relies on the same)."""

from typing import Any, List, NamedTuple, Tuple

import apache_beam as beam
from apache_beam import typehints
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.transforms.window import GlobalWindow, TimestampedValue

from tests.conftest import BASE_S
from transforms.batching import BatchPerKey

BASE_MS = BASE_S * 1000

_COLLECTED: List[Any] = []


def _collect(element, output):
  _COLLECTED.append((output, element))
  return ()


class Rec(NamedTuple):
  key: str
  id: str
  ts: int


def rec(key: str, id_: str, at_s: int) -> TimestampedValue:
  ms = BASE_MS + at_s * 1000
  return TimestampedValue(Rec(key, id_, ms), ms / 1000)


def key_of(r: Rec) -> str:
  return r.key


def event_ms(r: Rec) -> int:
  return r.ts


def _stamped(batch, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
  key, elements = batch
  return key, [e.id for e in elements], timestamp.micros // 1000 - BASE_MS, window


def run(stream, options, key_fn=key_of, key_type=str):
  """(key, ids in order, timestamp - BASE_MS, window) per batch emitted."""
  _COLLECTED.clear()
  p = beam.Pipeline(options=options)
  batches = p | stream | BatchPerKey(key_fn, event_ms, key_type)
  _ = batches | beam.Map(_stamped) | beam.FlatMap(_collect, 'batches')
  p.run().wait_until_finish()
  out = [element for _, element in _COLLECTED]
  _COLLECTED.clear()
  return out


def test_one_batch_per_key_per_bundle_in_arrival_order(options):
  stream = (
    TestStream()
    .add_elements([rec('A', 'a1', 30), rec('B', 'b1', 10), rec('A', 'a2', 5), rec('A', 'a3', 40)])
    .advance_watermark_to_infinity()
  )
  batches = run(stream, options)
  assert sorted((key, ids) for key, ids, _, _ in batches) == [
    ('A', ['a1', 'a2', 'a3']),
    ('B', ['b1']),
  ]


def test_every_batch_of_a_bundle_carries_the_bundles_earliest_event_time(options):
  """Never ahead of any element it carries: B's batch holds only an element
  at 10 s but is stamped 5 s, A's earliest."""
  stream = (
    TestStream()
    .add_elements([rec('A', 'a1', 30), rec('B', 'b1', 10), rec('A', 'a2', 5)])
    .advance_watermark_to_infinity()
  )
  batches = run(stream, options)
  assert sorted((key, ts) for key, _, ts, _ in batches) == [('A', 5000), ('B', 5000)]
  assert all(window == GlobalWindow() for *_, window in batches)


def test_bundles_are_never_merged(options):
  stream = (
    TestStream()
    .add_elements([rec('A', 'a1', 10), rec('A', 'a2', 20)])
    .advance_watermark_to(BASE_S + 100)
    .add_elements([rec('A', 'a3', 200)])
    .add_elements([rec('A', 'a4', 150), rec('B', 'b1', 300)])
    .advance_watermark_to_infinity()
  )
  batches = run(stream, options)
  assert sorted((key, ids, ts) for key, ids, ts, _ in batches) == [
    ('A', ['a1', 'a2'], 10_000),
    ('A', ['a3'], 200_000),
    ('A', ['a4'], 150_000),
    ('B', ['b1'], 150_000),
  ]


def test_every_element_is_in_exactly_one_batch(options):
  stream = TestStream()
  ids = []
  for bundle in range(5):
    elements = []
    for n in range(bundle + 1):
      id_ = f'{bundle}-{n}'
      ids.append(id_)
      elements.append(rec(f'K{n % 3}', id_, bundle * 10 + n))
    stream = stream.add_elements(elements)
  batches = run(stream.advance_watermark_to_infinity(), options)
  assert sorted(i for _, batch_ids, _, _ in batches for i in batch_ids) == sorted(ids)
  # Within a bundle, no key twice.
  seen = [(key, batch_ids[0].split('-')[0]) for key, batch_ids, _, _ in batches]
  assert len(seen) == len(set(seen))


def test_the_output_is_typed_with_the_key_type():
  p = beam.Pipeline()
  records = p | beam.Create([Rec('A', 'a1', BASE_MS)]).with_output_types(Rec)
  batches = records | BatchPerKey(lambda r: len(r.key), event_ms, int)
  assert batches.element_type == typehints.Tuple[int, typehints.List[Rec]]


class _CountPerKey(beam.DoFn):
  """A stateful consumer: it needs a deterministic key coder."""

  COUNT = ReadModifyWriteStateSpec('count', beam.coders.VarIntCoder())

  def process(self, batch: Tuple[int, List[Rec]], count=beam.DoFn.StateParam(COUNT)):
    key, elements = batch
    total = (count.read() or 0) + len(elements)
    count.write(total)
    yield key, total


def test_a_stateful_step_can_consume_the_batches(options):
  _COLLECTED.clear()
  stream = (
    TestStream()
    .add_elements([rec('A', 'a1', 10), rec('BB', 'b1', 20), rec('CC', 'c1', 30)])
    .add_elements([rec('A', 'a2', 40)])
    .advance_watermark_to_infinity()
  )
  p = beam.Pipeline(options=options)
  _ = (
    p
    | stream
    | BatchPerKey(lambda r: len(r.key), event_ms, int)
    | beam.ParDo(_CountPerKey())
    | beam.FlatMap(_collect, 'counts')
  )
  p.run().wait_until_finish()
  counts = sorted(element for _, element in _COLLECTED)
  _COLLECTED.clear()
  assert counts == [(1, 1), (1, 2), (2, 2)]
