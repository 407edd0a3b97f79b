"""DedupeByKey: drop re-deliveries of the same record (at-least-once sources)."""
from typing import Any, Callable, Iterator, List, Tuple

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.transforms.userstate import TimerSpec
from apache_beam.transforms.userstate import on_timer
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Timestamp

from transforms.batching import BatchPerKey
from transforms.event_time import ceil_to_grid
from transforms.sharding import shard_of

class _DedupeFn(beam.DoFn):
  # The ids of one shard (see transforms/sharding.py): (seen id -> expiry
  # in epoch ms, eviction timer time or None).
  SEEN = ReadModifyWriteStateSpec('seen', PickleCoder())
  EVICT = TimerSpec('evict', TimeDomain.WATERMARK)

  def __init__(self, key_fn: Callable[[Any], str],
               event_time_ms: Callable[[Any], int], ttl_seconds: int,
               metrics_namespace: str):
    self._key_fn = key_fn
    self._event_time_ms = event_time_ms
    self._ttl_ms = ttl_seconds * 1000
    self._evict_step_ms = max(self._ttl_ms // 10, 1)
    self._duplicates = Metrics.counter(metrics_namespace, 'duplicates')

  def process(
      self,
      batch: Tuple[int, List[Any]],
      seen_state=beam.DoFn.StateParam(SEEN),
      evict=beam.DoFn.TimerParam(EVICT)) -> Iterator[Any]:
    seen, armed_at = seen_state.read() or ({}, None)
    earliest_expiry_ms = None
    duplicates = 0
    for element in batch[1]:
      record_id = self._key_fn(element)
      if record_id in seen:
        duplicates += 1
        continue
      # Event-time expiry keeps state bounded by the ids of the last `ttl`
      # of event time, however long the job runs.
      event_ms = self._event_time_ms(element)
      expiry_ms = event_ms + self._ttl_ms
      seen[record_id] = expiry_ms
      if earliest_expiry_ms is None or expiry_ms < earliest_expiry_ms:
        earliest_expiry_ms = expiry_ms
      yield TimestampedValue(element, event_ms / 1000)
    if duplicates:
      self._duplicates.inc(duplicates)
    if earliest_expiry_ms is None:
      return  # nothing new: state unchanged
    evict_ms = self._on_grid(earliest_expiry_ms)
    if armed_at is None or evict_ms < armed_at:
      armed_at = evict_ms
      evict.set(Timestamp(micros=armed_at * 1000))
    seen_state.write((seen, armed_at))

  def _on_grid(self, ms: int) -> int:
    """Evictions happen on a grid of a tenth of the TTL: a bounded number
    of firings per TTL, shared by all shards (see ceil_to_grid)."""
    return ceil_to_grid(ms, self._evict_step_ms)

  @on_timer(EVICT)
  def on_evict(
      self,
      fired=beam.DoFn.TimestampParam,
      seen_state=beam.DoFn.StateParam(SEEN),
      evict=beam.DoFn.TimerParam(EVICT)):
    seen, _ = seen_state.read() or ({}, None)
    now_ms = fired.micros // 1000
    seen = {k: v for k, v in seen.items() if v > now_ms}
    if not seen:
      seen_state.clear()
      return
    next_ms = self._on_grid(max(min(seen.values()), now_ms + 1))
    evict.set(Timestamp(micros=next_ms * 1000))
    seen_state.write((seen, next_ms))


class DedupeByKey(beam.PTransform):
  """Keeps the first arrival of each record id; later arrivals are dropped.

  Input: PCollection[T] in the global window; `event_time_ms(T)` is a
  record's event time in epoch ms.
  Output: PCollection[T], the first arrival of each id, timestamped with its
  event time.
  An id is remembered for `ttl_seconds` of event time after its first
  arrival's event time (and at most a tenth of that longer); every dropped
  duplicate increments the `<metrics_namespace>/duplicates` counter.
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
