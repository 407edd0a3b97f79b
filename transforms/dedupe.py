"""DedupeByKey: drop re-deliveries of the same record (at-least-once sources)."""
from typing import Any, Callable

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.transforms.userstate import TimerSpec
from apache_beam.transforms.userstate import on_timer
from apache_beam.utils.timestamp import Timestamp

from transforms.sharding import KeyByShard

class _DedupeFn(beam.DoFn):
  # The ids of one shard (see transforms/sharding.py): (seen id -> expiry
  # in epoch ms, eviction timer time or None).
  SEEN = ReadModifyWriteStateSpec('seen', PickleCoder())
  EVICT = TimerSpec('evict', TimeDomain.WATERMARK)

  def __init__(self, key_fn: Callable[[Any], str], ttl_seconds: int,
               metrics_namespace: str):
    self._key_fn = key_fn
    self._ttl_ms = ttl_seconds * 1000
    self._duplicates = Metrics.counter(metrics_namespace, 'duplicates')

  def process(
      self,
      sharded,
      timestamp=beam.DoFn.TimestampParam,
      seen_state=beam.DoFn.StateParam(SEEN),
      evict=beam.DoFn.TimerParam(EVICT)):
    element = sharded[1]
    record_id = self._key_fn(element)
    seen, armed_at = seen_state.read() or ({}, None)
    if record_id in seen:
      self._duplicates.inc()
      return
    # Event-time expiry keeps state bounded by the ids of the last `ttl` of
    # event time, however long the job runs.
    expiry_ms = timestamp.micros // 1000 + self._ttl_ms
    seen[record_id] = expiry_ms
    if armed_at is None or expiry_ms < armed_at:
      armed_at = expiry_ms
      evict.set(Timestamp(micros=armed_at * 1000))
    seen_state.write((seen, armed_at))
    yield element

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
    # Evict in steps of a tenth of the TTL rather than at every expiry, so
    # the timer fires a bounded number of times per TTL.
    next_ms = max(min(seen.values()), now_ms + max(self._ttl_ms // 10, 1))
    evict.set(Timestamp(micros=next_ms * 1000))
    seen_state.write((seen, next_ms))


class DedupeByKey(beam.PTransform):
  """Keeps the first arrival of each record id; later arrivals are dropped.

  Input: PCollection[T], timestamped by event time.
  Output: PCollection[T], same elements and timestamps minus duplicates.
  An id is remembered for `ttl_seconds` of event time after its first
  arrival's timestamp (and at most a tenth of that longer); every dropped
  duplicate increments the `<metrics_namespace>/duplicates` counter.
  """
  def __init__(
      self,
      key_fn: Callable[[Any], str],
      ttl_seconds: int,
      metrics_namespace: str):
    super().__init__()
    if ttl_seconds <= 0:
      raise ValueError(f'dedupe TTL must be > 0, got {ttl_seconds}')
    self._key_fn = key_fn
    self._fn = _DedupeFn(key_fn, ttl_seconds, metrics_namespace)

  def expand(self, pcoll):
    return (
        pcoll
        | 'Shard' >> KeyByShard(self._key_fn)
        | 'DropDuplicates' >> beam.ParDo(self._fn))
