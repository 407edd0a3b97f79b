"""DedupeByKey: drop re-deliveries of the same record (at-least-once sources)."""

from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
  BagStateSpec,
  ReadModifyWriteStateSpec,
  TimerSpec,
  on_timer,
)
from apache_beam.utils.timestamp import Duration

from options.config import checked_millis
from transforms.batching import BatchPerKey
from transforms.change_log import InstanceCopies, LogSize, append, merged, new_token
from transforms.event_time import DelayedClock, at_event_time
from transforms.operator_metrics import set_live_state_entries
from transforms.sharding import DEFAULT_STATE_SHARDS, shard_of
from transforms.state_coders import VersionedStateCoder

# Besides the TTL of event time, an id is remembered until this many later
# records of its shard have arrived. Event time alone fails when a shard's
# clock is driven by another, faster source partition (reading a backlog:
# the clock can be hours ahead of a slow partition, whose ids were then
# forgotten on arrival and their re-deliveries, a few records later, counted
# again), or has jumped to a far-future timestamp. Re-deliveries of an
# at-least-once source come within a few records of the original; 1,000 per
# shard is about 32,000 records of the stream.
MIN_RECORDS_REMEMBERED = 1000


class _ShardClock(NamedTuple):
  """The small part of a shard's state, read at every batch."""

  # Changes at every write; the DoFn instance's copy of the ids is current
  # only while it carries the same token (random, so that a state restored
  # from a checkpoint or a retried bundle never matches a later copy).
  token: bytes
  # The latest event time the shard has seen (epoch ms).
  latest_ms: int
  # Records the shard has seen (the arrival number of the last one).
  arrivals: int
  # Ids in the bag, forgotten ones included, and ids kept by the last
  # compaction.
  stored: int
  kept: int


_NO_DELAY = DelayedClock(0)


def _clock_from_plain_v1(plain: list) -> _ShardClock:
  token, latest_ms, arrivals, stored, kept = plain
  return _ShardClock(bytes.fromhex(token), latest_ms, arrivals, stored, kept)


# Format v1: [token as hex, latest_ms, arrivals, stored, kept].
CLOCK_CODER = VersionedStateCoder(
  'dedupe clock', 1, lambda c: [c.token.hex(), *c[1:]], {1: _clock_from_plain_v1}
)
# Format v1: {id: [expiry_ms, arrival]}; kept as lists (read by index only).
IDS_CODER = VersionedStateCoder('dedupe ids', 1, dict, {1: dict})

# id -> (expiry in epoch ms of event time, arrival number of its first
# arrival).
_Ids = Dict[str, Tuple[int, int]]


class _DedupeFn(beam.DoFn):
  # Per shard (see transforms/sharding.py): the clock, and the ids as a bag
  # of _Ids maps, one appended per batch that added ids. Appending keeps the
  # state written per batch proportional to the new ids; the ids are read
  # back only when this instance has no current copy of them (first batch
  # of a shard here, after a restore, after another instance wrote the
  # shard), not decoded and encoded whole at every batch.
  CLOCK = ReadModifyWriteStateSpec('clock', CLOCK_CODER)
  IDS = BagStateSpec('ids', IDS_CODER)
  # Fires when the watermark passes the shard's latest event time + TTL:
  # every id it holds has expired, so the shard's state is dropped whole.
  # One timer per shard, moved forward as the shard's clock moves, so it
  # never fires behind a moving watermark, and a shard that stops receiving
  # records (a flood of ids that ended) leaves nothing behind.
  EXPIRE = TimerSpec('expire', TimeDomain.WATERMARK)

  def __init__(
    self,
    key_fn: Callable[[Any], str],
    event_time_ms: Callable[[Any], int],
    ttl_ms: int,
    metrics_namespace: str,
  ):
    self._key_fn = key_fn
    self._event_time_ms = event_time_ms
    self._ttl_ms = ttl_ms
    self._duplicates = Metrics.counter(metrics_namespace, 'duplicates')
    self._expired_shards = Metrics.counter(metrics_namespace, 'dedupe_shards_expired')
    self._state_step = f'{metrics_namespace}_dedupe'
    self._copies: InstanceCopies[_Ids] = InstanceCopies()

  def _read_ids(self, shard: int, clock: Optional[_ShardClock], ids_state) -> _Ids:
    copy = self._copies.take(shard, clock and clock.token)
    if clock is None:
      return {}
    return copy if copy is not None else merged(ids_state.read())

  def process(
    self,
    batch: Tuple[int, List[Any]],
    clock_state=beam.DoFn.StateParam(CLOCK),
    ids_state=beam.DoFn.StateParam(IDS),
    expire=beam.DoFn.TimerParam(EXPIRE),
  ) -> Iterator[Any]:
    shard, elements = batch
    clock = clock_state.read()
    seen = self._read_ids(shard, clock, ids_state)
    latest_ms = clock.latest_ms if clock else None
    arrivals = clock.arrivals if clock else 0
    added: _Ids = {}
    duplicates = 0
    # Names bound once: looked up per element.
    event_time_ms, key_fn, ttl_ms = self._event_time_ms, self._key_fn, self._ttl_ms
    known_id = seen.get
    for element in elements:
      arrivals += 1
      event_ms = event_time_ms(element)
      if latest_ms is None or event_ms > latest_ms:
        latest_ms = event_ms
      record_id = key_fn(element)
      # Expiry by the shard's own event-time progress and arrivals, not by
      # timers: an event-time timer holds the step's output watermark, and a
      # chain of eviction timers behind a fast-moving watermark (a backlog)
      # held every downstream window back one step per runner round trip.
      known = known_id(record_id)
      if known is not None and (
        known[0] > latest_ms or known[1] > arrivals - MIN_RECORDS_REMEMBERED
      ):
        duplicates += 1
        continue
      seen[record_id] = added[record_id] = (event_ms + ttl_ms, arrivals)
      yield at_event_time(element, event_ms)
    if duplicates:
      self._duplicates.inc(duplicates)
    remembered_since = arrivals - MIN_RECORDS_REMEMBERED

    def remembered() -> _Ids:
      # Compaction forgets the ids past both horizons.
      nonlocal seen
      seen = {k: v for k, v in seen.items() if v[0] > latest_ms or v[1] > remembered_since}
      return seen

    stored, kept = append(
      ids_state, added, LogSize(clock.stored, clock.kept) if clock else LogSize(), remembered
    )
    token = new_token()
    clock_state.write(_ShardClock(token, latest_ms, arrivals, stored, kept))
    # The ids the state holds, forgotten ones until the next compaction.
    set_live_state_entries(self._state_step, shard, stored)
    self._copies.keep(shard, token, seen)
    if clock is None or latest_ms > clock.latest_ms:
      _NO_DELAY.set(expire, latest_ms + self._ttl_ms)

  @on_timer(EXPIRE)
  def on_expire(
    self,
    key=beam.DoFn.KeyParam,
    clock_state=beam.DoFn.StateParam(CLOCK),
    ids_state=beam.DoFn.StateParam(IDS),
  ) -> None:
    self._copies.drop(key)
    clock_state.clear()
    ids_state.clear()
    self._expired_shards.inc()
    set_live_state_entries(self._state_step, key, 0)


class DedupeByKey(beam.PTransform):
  """Keeps the first arrival of each record id; later arrivals are dropped.

  Input: PCollection[T] in the global window; `event_time_ms(T)` is a
  record's event time in epoch ms.
  Output: PCollection[T], the first arrival of each id, timestamped with its
  event time.
  An id is remembered until its shard (1/32 of the ids) has both seen a
  record with an event time `ttl` past the id's first arrival and
  received MIN_RECORDS_REMEMBERED records after it: at least `ttl`
  of event time, whatever the watermark does, and at least the next
  records whatever the shard's clock does (another source partition far
  ahead, a far-future timestamp). Every dropped duplicate increments the
  `<metrics_namespace>/duplicates` counter. State per shard is bounded: at
  most twice the ids remembered at its last compaction or
  MIN_CHANGES_BEFORE_COMPACTION ids (transforms/change_log.py), whichever
  is more, plus one batch; and
  once the watermark passes the shard's latest event time + TTL, all of it
  is dropped (a re-delivery that late is behind every window's lateness).
  """

  def __init__(
    self,
    key_fn: Callable[[Any], str],
    event_time_ms: Callable[[Any], int],
    ttl: Duration,
    metrics_namespace: str,
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    self._shards = shards
    self._key_fn = key_fn
    self._event_time_ms = event_time_ms
    self._fn = _DedupeFn(
      key_fn, event_time_ms, checked_millis(ttl, 'dedupe TTL', zero_ok=False), metrics_namespace
    )

  def expand(self, pcoll):
    key_fn, shards = self._key_fn, self._shards
    return (
      pcoll
      | 'BatchPerShard'
      >> BatchPerKey(lambda e: shard_of(key_fn(e), shards), self._event_time_ms, int)
      | 'DropDuplicates' >> beam.ParDo(self._fn).with_output_types(pcoll.element_type)
    )
