"""PairAcdSessions: Genesys acd.start and acd.end events of one session to one
offered call with its time in queue.

Semantics, per session (`call_id` = conversationId:sessionId):
  * whichever of the start and the end arrives second completes the pair:
    the offered call is emitted at once, at the end's event time, with
    wait = end eventTime - start eventTime (None, counted in
    `negative_waits`, if the end is earlier than the start), and `raw`
    the start's and the end's records as JSON lines (the end's alone for
    an end without its start);
  * an end whose start has not arrived waits until the watermark (minus
    the out-of-orderness bound, as everywhere) reaches the end's event time,
    rounded up to the next TICK_SECONDS: by then every event of the stream
    older than the end, its start included, has arrived unless it broke the
    bound. It then counts as offered with its wait unknown
    (`ends_without_start`). When a replayed input ends, the ends still
    waiting (those of its last few seconds) are released as the windows
    close; the local runner routes them to the late output (counted, not
    lost);
  * a start waits for its end until the watermark is `max_queue_wait` past
    it (`callback_max_queue_wait` for a callback: callbacks routinely wait
    hours for an agent), rounded up to the tick, then it is dropped
    (`starts_without_end`):
    the call is still in queue after that long, or its end was lost; if the
    end comes later it counts with its wait unknown.
So state is bounded by the sessions in queue within `max_queue_wait`
plus the ends of the last out-of-orderness bound, each with its record as
delivered (what the call's late event keeps).

State is per shard of call ids (transforms/sharding.py): a map of waiting
starts and one of waiting ends, with explicit coders, and one event-time
timer at the shard's earliest deadline, on the tick grid
(transforms/event_time.py) so that all shards wake in the same rounds when
the watermark jumps.
"""

from typing import Dict, Iterator, List, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration

from options.config import checked_millis
from transforms.batching import BatchPerKey
from transforms.event_time import DelayedClock, at_event_time, ceil_to_grid
from transforms.operator_metrics import set_live_state_entries
from transforms.records import ACD_START, CALLBACK, VOICE, AcdEvent, OfferedCall
from transforms.sharding import DEFAULT_STATE_SHARDS, shard_of
from transforms.state_coders import VersionedStateCoder

# Grid of the wake-ups (seconds of event time): an unpaired end counts at
# most this much after the watermark passed it.
TICK_SECONDS = 5
TICK_MS = TICK_SECONDS * 1000

# call_id -> (start eventTime ms, channel, raw record).
_Start = Tuple[int, str, str]
_Starts = Dict[str, _Start]
# call_id -> (end eventTime ms, queue_id, outcome, channel, raw record).
_End = Tuple[int, str, str, str, str]
_Ends = Dict[str, _End]


def _tuples(plain: dict) -> dict:
  return {k: tuple(v) for k, v in plain.items()}


# Format v3 (transforms/state_coders.py): {call_id: [start_ms, channel,
# raw]}; v2 lacks the raw record (written before late events kept it: ''),
# v1 ({call_id: start_ms}) the channel too (written before channels: voice).
STARTS_CODER = VersionedStateCoder(
  'acd pairing starts',
  3,
  dict,
  {
    1: lambda plain: {k: (v, VOICE, '') for k, v in plain.items()},
    2: lambda plain: {k: (*v, '') for k, v in plain.items()},
    3: _tuples,
  },
)
# Format v3: {call_id: [end_ms, queue_id, outcome, channel, raw]}; v2 lacks
# the raw record (''), v1 the channel too (voice).
ENDS_CODER = VersionedStateCoder(
  'acd pairing ends',
  3,
  dict,
  {
    1: lambda plain: {k: (*v, VOICE, '') for k, v in plain.items()},
    2: lambda plain: {k: (*v, '') for k, v in plain.items()},
    3: _tuples,
  },
)


def _offered(call_id: str, end: _End, start: Optional[_Start]) -> OfferedCall:
  end_ms, queue_id, outcome, channel, end_raw = end
  wait = None
  raw = end_raw
  if start is not None:
    start_ms, _, start_raw = start
    if end_ms >= start_ms:
      wait = (end_ms - start_ms) / 1000
    # JSON lines, the start's first; a half held by a v2 state cell has no
    # record to give.
    raw = '\n'.join(r for r in (start_raw, end_raw) if r)
  return OfferedCall(call_id, queue_id, end_ms, outcome, wait, channel, raw=raw)


class _PairFn(beam.DoFn):
  STARTS = ReadModifyWriteStateSpec('starts', STARTS_CODER)
  ENDS = ReadModifyWriteStateSpec('ends', ENDS_CODER)
  WAKE = TimerSpec('wake', TimeDomain.WATERMARK)

  def __init__(
    self,
    max_queue_wait_ms: int,
    max_out_of_orderness_ms: int,
    metrics_namespace: str,
    callback_max_queue_wait_ms: int,
  ):
    self._max_wait_ms = max_queue_wait_ms
    self._callback_max_wait_ms = callback_max_queue_wait_ms
    self._event_time = DelayedClock(max_out_of_orderness_ms)
    self._paired = Metrics.counter(metrics_namespace, 'paired')
    self._negative = Metrics.counter(metrics_namespace, 'negative_waits')
    self._ends_alone = Metrics.counter(metrics_namespace, 'ends_without_start')
    self._starts_alone = Metrics.counter(metrics_namespace, 'starts_without_end')
    self._repeated = Metrics.counter(metrics_namespace, 'repeated_in_pairing')
    self._state_step = f'{metrics_namespace}_pairing'

  def _deadline(self, start: _Start) -> int:
    start_ms, channel, _ = start
    return start_ms + (self._callback_max_wait_ms if channel == CALLBACK else self._max_wait_ms)

  def _emit(self, call_id: str, end: _End, start: Optional[_Start]):
    offered = _offered(call_id, end, start)
    if start is not None:
      self._paired.inc()
      if offered.wait_seconds is None:
        self._negative.inc()
    else:
      self._ends_alone.inc()
    return at_event_time(offered, offered.timestamp)

  def process(
    self,
    batch: Tuple[int, List[AcdEvent]],
    starts_state=beam.DoFn.StateParam(STARTS),
    ends_state=beam.DoFn.StateParam(ENDS),
    wake=beam.DoFn.TimerParam(WAKE),
  ) -> Iterator:
    starts: _Starts = starts_state.read() or {}
    ends: _Ends = ends_state.read() or {}
    shard = batch[0]
    for event in batch[1]:
      call_id = event.call_id
      if event.kind == ACD_START:
        if call_id in starts:
          self._repeated.inc()  # re-delivered past the de-duplication
          continue
        start = (event.timestamp, event.channel, event.raw)
        end = ends.pop(call_id, None)
        if end is None:
          starts[call_id] = start
        else:
          yield self._emit(call_id, end, start)
        continue
      end = (event.timestamp, event.queue_id, event.outcome, event.channel, event.raw)
      if call_id in ends:
        self._repeated.inc()
        continue
      start = starts.pop(call_id, None)
      if start is None:
        ends[call_id] = end
      else:
        yield self._emit(call_id, end, start)
    self._store(shard, starts_state, starts, ends_state, ends, wake)

  @on_timer(WAKE)
  def on_wake(
    self,
    fired=beam.DoFn.TimestampParam,
    shard=beam.DoFn.KeyParam,
    starts_state=beam.DoFn.StateParam(STARTS),
    ends_state=beam.DoFn.StateParam(ENDS),
    wake=beam.DoFn.TimerParam(WAKE),
  ) -> Iterator:
    now_ms = self._event_time.fired_ms(fired)
    starts: _Starts = starts_state.read() or {}
    ends: _Ends = ends_state.read() or {}
    # Sorted: the same order on every runner and replay.
    for call_id in sorted(c for c, end in ends.items() if end[0] <= now_ms):
      yield self._emit(call_id, ends.pop(call_id), None)
    expired = [c for c, start in starts.items() if self._deadline(start) <= now_ms]
    for call_id in expired:
      del starts[call_id]
    if expired:
      self._starts_alone.inc(len(expired))
    self._store(shard, starts_state, starts, ends_state, ends, wake)

  def _store(
    self, shard: int, starts_state, starts: _Starts, ends_state, ends: _Ends, wake
  ) -> None:
    """Writes the maps back (clears empty ones), counts the sessions held
    and arms the timer at the earliest deadline, on the grid."""
    set_live_state_entries(self._state_step, shard, len(starts) + len(ends))
    deadlines = [end[0] for end in ends.values()]
    if starts:
      deadlines.append(min(self._deadline(start) for start in starts.values()))
    for state, value in ((starts_state, starts), (ends_state, ends)):
      if value:
        state.write(value)
      else:
        state.clear()
    if deadlines:
      self._event_time.set(wake, ceil_to_grid(min(deadlines), TICK_MS))


class PairAcdSessions(beam.PTransform):
  """Pairs acd.start and acd.end of each session (see the module docstring).

  Input: PCollection[AcdEvent], de-duplicated, event-timed, in the global
  window.
  Output: PCollection[OfferedCall], one per acd.end, timestamped at its
  event time; `wait_seconds` None when the start was missing or later than
  the end; `raw` the records of both halves (the end's alone without its
  start).
  Counters in `metrics_namespace`: `paired`, `negative_waits`,
  `ends_without_start`, `starts_without_end`, `repeated_in_pairing`.
  A callback's start waits `callback_max_queue_wait` (default: the same as
  the others).
  """

  def __init__(
    self,
    max_queue_wait: Duration,
    max_out_of_orderness: Duration,
    metrics_namespace: str,
    callback_max_queue_wait: Optional[Duration] = None,
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    self._shards = shards
    if callback_max_queue_wait is None:
      callback_max_queue_wait = max_queue_wait
    self._fn = _PairFn(
      checked_millis(max_queue_wait, 'max queue wait (--genesys_max_queue_wait)', zero_ok=False),
      checked_millis(max_out_of_orderness, 'max out-of-orderness', zero_ok=True),
      metrics_namespace,
      checked_millis(
        callback_max_queue_wait,
        'max queue wait (--genesys_callback_max_queue_wait)',
        zero_ok=False,
      ),
    )

  def expand(self, events):
    shards = self._shards
    return (
      events
      | 'BatchPerShard'
      >> BatchPerKey(lambda e: shard_of(e.call_id, shards), lambda e: e.timestamp, int)
      | 'Pair' >> beam.ParDo(self._fn).with_output_types(OfferedCall)
    )
