"""DetectCallbackPatterns: three consecutive failed interactions followed by
a callback request within 30 s, per customer, in event-time order.

A port of the Flink CEP pattern
    begin("failure").where(failed).times(3).consecutive()
        .next("callback").where(callback_requested)
        .within(Time.seconds(30))
with its real semantics:
  * strict contiguity per customer: any other interaction of that customer
    between the failures, or between the last failure and the callback,
    breaks the run (a success between failures starts the count again);
  * no-skip matching: every failure starts a partial match, so four failures
    then a callback is one match (the last three failures and the callback),
    the earlier partial match having been broken by the fourth failure;
  * `within` is measured from the first failure of the match to the
    callback, and like Flink a partial match is timed out when
    `callback - first failure >= within` (exactly 30 s does not match);
  * Kafka does not deliver in order, CEP sorts: interactions are buffered
    and processed in (event time, arrival) order once the watermark passes
    them (the source watermark minus `max_out_of_orderness`, the
    bounded out-of-orderness), at the next multiple of `tick` of
    event time after them. An interaction that arrives after later
    interactions of the same customer were already processed is routed to
    the `late` output (Flink CEP drops it).
Partial matches need only the current run of failures. Customers are
spread over shard keys (transforms/sharding.py), each shard holding its
active customers with one timer. A customer's state is dropped once the
watermark passes the tick `within` after the first failure of its current
run (the run can no longer match), or, with no run, `within` after its last
processed interaction; so state stays bounded by the customers active in
the last `within`. An interaction of a dropped customer is never late: it
starts the customer afresh and joins no earlier partial match
(testing/reference/interactions.py states the same rule).
"""

from typing import Dict, FrozenSet, Iterator, List, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration
from apache_beam.utils.windowed_value import WindowedValue

from options.config import checked_millis
from transforms.batching import BatchPerKey
from transforms.change_log import InstanceCopies, new_token
from transforms.event_time import DelayedClock, at_event_time, ceil_to_grid
from transforms.operator_metrics import set_live_state_entries
from transforms.records import Interaction, PatternMatch
from transforms.sharding import DEFAULT_STATE_SHARDS, shard_of
from transforms.state_coders import (
  VersionedStateCoder,
  compact_json,
  record_from_plain,
  record_to_plain,
)
from transforms.windowing import LateArrival

# The customers a shard holds (transforms/operator_metrics.py).
LIVE_STATE_STEP = 'callback_patterns_customers'

LATE = 'late'
ALERT_TYPE = 'REPEATED_FAILURE_CALLBACK'
FAILURES_IN_PATTERN = 3
# Buffered interactions are processed when the watermark reaches the next
# tick of event time after them, not at each millisecond: one wake-up per
# tick instead of one per interaction. Each wake-up costs a timer firing, and
# when the watermark jumps several ticks at once the wake-ups follow one
# another (a timer only tells that the watermark passed it), so the tick
# bounds that cost. Order and matches do not depend on it.
DEFAULT_TICK = Duration(seconds=5)


class _CustomerState:
  """Buffered interactions, the current run of failures and the time up to
  which this customer's interactions were processed."""

  __slots__ = ('buffer', 'arrivals', 'run', 'processed_through', 'encoded', 'deadline_ms')

  def __init__(self):
    self.buffer: List[Tuple[int, int, Interaction]] = []
    self.arrivals = 0
    self.run: List[Interaction] = []
    self.processed_through: Optional[int] = None
    # Derived, None when the customer may have changed since (see
    # changed()): its item of the shard's JSON object in the state format
    # ("id":[...]), and its deadline (_DetectFn._deadline).
    self.encoded: Optional[str] = None
    self.deadline_ms: Optional[int] = None

  def changed(self) -> None:
    """Called before any change of the customer's state."""
    self.encoded = self.deadline_ms = None


def _customer_to_plain(c: _CustomerState) -> list:
  return [
    [[ts, arrival, record_to_plain(i)] for ts, arrival, i in c.buffer],
    c.arrivals,
    [record_to_plain(i) for i in c.run],
    c.processed_through,
  ]


def _customers_to_plain(customers: Dict[str, _CustomerState]) -> dict:
  return {customer_id: _customer_to_plain(c) for customer_id, c in customers.items()}


def _customers_to_json(customers: Dict[str, _CustomerState]) -> str:
  """compact_json(_customers_to_plain(customers)), encoding only the
  customers changed since their last encoding: a shard's state is written
  at every batch and wake-up, and most of its customers did not change."""
  items = []
  for customer_id, c in customers.items():
    if c.encoded is None:
      c.encoded = f'{compact_json(customer_id)}:{compact_json(_customer_to_plain(c))}'
    items.append(c.encoded)
  return '{' + ','.join(items) + '}'


def _customers_from_plain_v1(plain: dict) -> Dict[str, _CustomerState]:
  customers = {}
  for customer_id, (buffer, arrivals, run, processed_through) in plain.items():
    customer = customers[customer_id] = _CustomerState()
    customer.buffer = [
      (ts, arrival, record_from_plain(Interaction, i)) for ts, arrival, i in buffer
    ]
    customer.arrivals = arrivals
    customer.run = [record_from_plain(Interaction, i) for i in run]
    customer.processed_through = processed_through
  return customers


# Format v1: {customer_id: [[[event_ms, arrival, interaction], ...] buffered,
# arrivals, [interaction, ...] current run, processed_through]}.
CUSTOMERS_CODER = VersionedStateCoder(
  'callback patterns',
  1,
  _customers_to_plain,
  {1: _customers_from_plain_v1},
  to_json=_customers_to_json,
)
# Format v1: a random token as hex, new at every write of the customers.
TOKEN_CODER = VersionedStateCoder('callback patterns token', 1, bytes.hex, {1: bytes.fromhex})


class CallbackPatternMatcher:
  """The pattern's state machine over one customer's ordered interactions."""

  def __init__(
    self, failure_statuses: FrozenSet[str], callback_statuses: FrozenSet[str], within_ms: int
  ):
    self._failures = failure_statuses
    self._callbacks = callback_statuses
    self._within_ms = within_ms

  def advance(self, run: List[Interaction], interaction: Interaction) -> Optional[PatternMatch]:
    """Feeds one interaction; updates `run` in place; returns a match."""
    if interaction.status in self._failures:
      run.append(interaction)
      # Only the last three failures can still be followed by `next`.
      del run[:-FAILURES_IN_PATTERN]
      return None
    match = None
    if interaction.status in self._callbacks and len(run) == FAILURES_IN_PATTERN:
      first = run[0]
      if interaction.timestamp - first.timestamp < self._within_ms:
        match = PatternMatch(
          customer_id=interaction.customer_id,
          channel=interaction.channel,
          timestamp=interaction.timestamp,
          failure_count=FAILURES_IN_PATTERN,
          alert_type=ALERT_TYPE,
          first_failure_timestamp=first.timestamp,
          interaction_ids=','.join(i.interaction_id for i in (*run, interaction)),
        )
    run.clear()
    return match

  def prune(self, run: List[Interaction], processed_through: int) -> None:
    """Drops failures that can no longer start a match: every interaction
    still to come has an event time >= processed_through."""
    while run and processed_through - run[0].timestamp >= self._within_ms:
      run.pop(0)


class _DetectFn(beam.DoFn):
  """Keyed by shard (transforms/sharding.py): the state maps each active
  customer of the shard to its _CustomerState, with one timer at the
  earliest deadline among them.

  The map is written at every batch and wake-up, and read back only when
  this instance has no current copy of it (first batch of a shard here,
  after a restore, after another instance wrote the shard): the TOKEN cell
  changes at every write, and the instance's copy is current while it
  carries the same token (random, so that a restored state or a retried
  bundle never matches a later copy)."""

  CUSTOMERS = ReadModifyWriteStateSpec('customers', CUSTOMERS_CODER)
  TOKEN = ReadModifyWriteStateSpec('customers_token', TOKEN_CODER)
  WAKE = TimerSpec('wake', TimeDomain.WATERMARK)

  def __init__(
    self,
    matcher: CallbackPatternMatcher,
    within_ms: int,
    tick_ms: int,
    max_out_of_orderness_ms: int,
  ):
    self._matcher = matcher
    self._within_ms = within_ms
    self._tick_ms = tick_ms
    self._event_time = DelayedClock(max_out_of_orderness_ms)
    self._late = Metrics.counter('callback_patterns', 'late_interactions')
    self._matches = Metrics.counter('callback_patterns', 'matches')
    self._copies: InstanceCopies[Dict[str, _CustomerState]] = InstanceCopies()

  def _read(self, shard: int, state, token_state) -> Dict[str, _CustomerState]:
    copy = self._copies.take(shard, token_state.read())
    return copy if copy is not None else (state.read() or {})

  def _write(self, shard: int, state, token_state, customers: Dict[str, _CustomerState]) -> None:
    state.write(customers)
    token = new_token()
    token_state.write(token)
    self._copies.keep(shard, token, customers)
    set_live_state_entries(LIVE_STATE_STEP, shard, len(customers))

  def _deadline(self, customer: _CustomerState) -> int:
    """When the customer needs attention, in delayed event time: its oldest
    buffered interaction, else when its run and processed time expire."""
    if customer.deadline_ms is None:
      if customer.buffer:
        customer.deadline_ms = self._next_tick(min(customer.buffer)[0])
      else:
        start = customer.run[0].timestamp if customer.run else customer.processed_through
        customer.deadline_ms = self._next_tick(start + self._within_ms)
    return customer.deadline_ms

  def _next_tick(self, ms: int) -> int:
    return ceil_to_grid(ms, self._tick_ms)

  def _arm(self, wake, customers: Dict[str, _CustomerState]) -> None:
    if customers:
      self._event_time.set(wake, min(self._deadline(c) for c in customers.values()))

  def process(
    self,
    batch: Tuple[int, List[Interaction]],
    state=beam.DoFn.StateParam(CUSTOMERS),
    token_state=beam.DoFn.StateParam(TOKEN),
    wake=beam.DoFn.TimerParam(WAKE),
  ) -> Iterator:
    shard = batch[0]
    customers = self._read(shard, state, token_state)
    buffered = False
    for interaction in batch[1]:
      customer = customers.get(interaction.customer_id) or _CustomerState()
      if (
        customer.processed_through is not None
        and interaction.timestamp < customer.processed_through
      ):
        self._late.inc()
        yield beam.pvalue.TaggedOutput(
          LATE,
          LateArrival(
            interaction.customer_id,
            interaction,
            interaction.timestamp,
            interaction.timestamp,
            interaction.timestamp,
            customer.processed_through,
          ),
        )
        continue
      customer.changed()
      customer.buffer.append((interaction.timestamp, customer.arrivals, interaction))
      customer.arrivals += 1
      customers[interaction.customer_id] = customer
      buffered = True
    if buffered:
      self._write(shard, state, token_state, customers)
      self._arm(wake, customers)
    elif customers:
      # Unchanged: the copy is still current.
      self._copies.keep(shard, token_state.read(), customers)

  @on_timer(WAKE)
  def on_wake(
    self,
    shard=beam.DoFn.KeyParam,
    fired=beam.DoFn.TimestampParam,
    state=beam.DoFn.StateParam(CUSTOMERS),
    token_state=beam.DoFn.StateParam(TOKEN),
    wake=beam.DoFn.TimerParam(WAKE),
  ) -> Iterator:
    customers = self._read(shard, state, token_state)
    watermark_ms = self._event_time.fired_ms(fired)
    for customer_id in sorted(customers):
      customer = customers[customer_id]
      if self._deadline(customer) > watermark_ms:
        continue
      yield from self._flush(customer, watermark_ms)
      if not customer.buffer and self._deadline(customer) <= watermark_ms:
        # Nothing can match any more and no straggler can be told late
        # within `within`: forget the customer (bounded state).
        del customers[customer_id]
    if customers:
      self._write(shard, state, token_state, customers)
      self._arm(wake, customers)
    else:
      state.clear()
      token_state.clear()
      set_live_state_entries(LIVE_STATE_STEP, shard, 0)

  def _flush(self, customer: _CustomerState, watermark_ms: int) -> Iterator[WindowedValue]:
    """Feeds the buffered interactions the watermark passed, in (event
    time, arrival) order, to the matcher."""
    customer.changed()
    customer.buffer.sort()
    ready = [item for item in customer.buffer if item[0] <= watermark_ms]
    customer.buffer = customer.buffer[len(ready) :]
    for event_ms, _, interaction in ready:
      customer.processed_through = event_ms
      match = self._matcher.advance(customer.run, interaction)
      if match is not None:
        self._matches.inc()
        yield at_event_time(match, match.timestamp)
    if customer.processed_through is not None:
      self._matcher.prune(customer.run, customer.processed_through)


class DetectCallbackPatterns(beam.PTransform):
  """Three consecutive failures then a callback within `within`, per customer.

  Input: PCollection[Interaction] (deduplicated, event-timed).
  Outputs (a dict):
    `matches`: PCollection[PatternMatch], timestamped at the callback.
    `late`: PCollection[LateArrival] of interactions that arrived after
      later interactions of their customer had been processed.
  See the module docstring for the exact semantics.
  """

  def __init__(
    self,
    failure_statuses: FrozenSet[str],
    callback_statuses: FrozenSet[str],
    within: Duration = Duration(seconds=30),
    max_out_of_orderness: Duration = Duration(0),
    tick: Duration = DEFAULT_TICK,
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    self._shards = shards
    if failure_statuses & callback_statuses:
      raise ValueError(
        'a status cannot be both a failure and a callback: '
        f'{sorted(failure_statuses & callback_statuses)}'
      )
    within_ms = checked_millis(within, 'pattern within', zero_ok=True)
    self._fn = _DetectFn(
      CallbackPatternMatcher(failure_statuses, callback_statuses, within_ms),
      within_ms,
      checked_millis(tick, 'pattern tick', zero_ok=False),
      checked_millis(max_out_of_orderness, 'max out-of-orderness', zero_ok=True),
    )

  def expand(self, interactions):
    shards = self._shards
    detected = (
      interactions
      | 'BatchPerShard'
      >> BatchPerKey(lambda i: shard_of(i.customer_id, shards), lambda i: i.timestamp, int)
      | 'Detect' >> beam.ParDo(self._fn).with_outputs(LATE, main='matches')
    )
    return {'matches': detected.matches, 'late': detected.late}
