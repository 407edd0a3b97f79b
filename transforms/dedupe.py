"""DedupeByKey: drop re-deliveries of the same record (at-least-once sources)."""
from typing import Any, Callable, Iterator, List, Tuple

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.transforms.window import TimestampedValue

from transforms.batching import BatchPerKey
from transforms.event_time import ceil_to_grid
from transforms.sharding import shard_of


class _DedupeFn(beam.DoFn):
  # The ids of one shard (see transforms/sharding.py): (seen id -> expiry in
  # epoch ms, the latest event time the shard has seen, when to sweep next).
  SEEN = ReadModifyWriteStateSpec('seen', PickleCoder())

  def __init__(self, key_fn: Callable[[Any], str],
               event_time_ms: Callable[[Any], int], ttl_seconds: int,
               metrics_namespace: str):
    self._key_fn = key_fn
    self._event_time_ms = event_time_ms
    self._ttl_ms = ttl_seconds * 1000
    self._sweep_step_ms = max(self._ttl_ms // 10, 1)
    self._duplicates = Metrics.counter(metrics_namespace, 'duplicates')

  def process(
      self,
      batch: Tuple[int, List[Any]],
      seen_state=beam.DoFn.StateParam(SEEN)) -> Iterator[Any]:
    seen, latest_ms, sweep_at_ms = seen_state.read() or ({}, None, None)
    duplicates = 0
    expired_on_arrival = set()
    for element in batch[1]:
      event_ms = self._event_time_ms(element)
      if latest_ms is None or event_ms > latest_ms:
        latest_ms = event_ms
      record_id = self._key_fn(element)
      if record_id in seen or record_id in expired_on_arrival:
        duplicates += 1
        continue
      expiry_ms = event_ms + self._ttl_ms
      if expiry_ms > latest_ms:
        seen[record_id] = expiry_ms
      else:
        # Already expired by the shard's clock (it has seen records a TTL
        # later): remembered for this batch only. Stored, it would wait for
        # the next sweep, and after one far-future timestamp in a shard no
        # sweep comes for years: the state would grow without bound.
        expired_on_arrival.add(record_id)
      yield TimestampedValue(element, event_ms / 1000)
    if duplicates:
      self._duplicates.inc(duplicates)
    # Expiry by the shard's own event-time progress, swept on a grid of a
    # tenth of the TTL. No timers: an event-time timer holds the step's
    # output watermark, and a chain of eviction timers behind a fast-moving
    # watermark (a backlog) held every downstream window back one sweep per
    # runner round trip.
    if sweep_at_ms is None or latest_ms >= sweep_at_ms:
      seen = {k: v for k, v in seen.items() if v > latest_ms}
      sweep_at_ms = ceil_to_grid(latest_ms + 1, self._sweep_step_ms)
    seen_state.write((seen, latest_ms, sweep_at_ms))


class DedupeByKey(beam.PTransform):
  """Keeps the first arrival of each record id; later arrivals are dropped.

  Input: PCollection[T] in the global window; `event_time_ms(T)` is a
  record's event time in epoch ms.
  Output: PCollection[T], the first arrival of each id, timestamped with its
  event time.
  An id is remembered until records of its shard (1/32 of the ids) with an
  event time `ttl_seconds` past its first arrival's have been seen, and at
  most a tenth of the TTL longer: at least `ttl_seconds` of event time,
  whatever the watermark does (an id whose shard has already seen records
  a TTL later is remembered for its bundle only). Every dropped duplicate
  increments the `<metrics_namespace>/duplicates` counter. State per shard
  is bounded by the ids of one TTL (plus a tenth) of its event time, also
  after a far-future timestamp.
  """
  def __init__(
      self,
      key_fn: Callable[[Any], str],
      event_time_ms: Callable[[Any], int],
      ttl_seconds: int,
      metrics_namespace: str):
    super().__init__()
    if ttl_seconds <= 0:
      raise ValueError(f'dedupe TTL must be > 0, got {ttl_seconds}')
    self._key_fn = key_fn
    self._fn = _DedupeFn(key_fn, event_time_ms, ttl_seconds, metrics_namespace)

  def expand(self, pcoll):
    key_fn = self._key_fn
    return (
        pcoll
        | 'BatchPerShard' >> BatchPerKey(lambda e: shard_of(key_fn(e)), int)
        | 'DropDuplicates' >> beam.ParDo(self._fn).with_output_types(
            pcoll.element_type))
