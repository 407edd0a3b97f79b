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
    them (the source watermark minus `watermark_delay_seconds`, the
    bounded out-of-orderness). An interaction that arrives after later interactions of the same
    customer were already processed is routed to the `late` output (Flink
    CEP drops it).
Partial matches need only the current run of failures. A customer's state
is dropped by an event-time timer once the watermark is `within` past its
last processed interaction, so state stays bounded by the customers active
in the last `within`; an interaction arriving even later than that (behind
the watermark by more than `within`) can no longer be told late nor join a
partial match that was already dropped.
"""
from typing import FrozenSet, Iterator, List, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.transforms.userstate import TimerSpec
from apache_beam.transforms.userstate import on_timer
from apache_beam.utils.timestamp import Timestamp

from transforms.records import Interaction, PatternMatch
from transforms.windowing import LateArrival

LATE = 'late'
ALERT_TYPE = 'REPEATED_FAILURE_CALLBACK'
FAILURES_IN_PATTERN = 3


class _CustomerState:
  """Buffered interactions, the current run of failures and the time up to
  which this customer's interactions were processed."""
  __slots__ = ('buffer', 'arrivals', 'run', 'processed_through')

  def __init__(self):
    self.buffer: List[Tuple[int, int, Interaction]] = []
    self.arrivals = 0
    self.run: List[Interaction] = []
    self.processed_through: Optional[int] = None

  def __getstate__(self):
    return (self.buffer, self.arrivals, self.run, self.processed_through)

  def __setstate__(self, state):
    self.buffer, self.arrivals, self.run, self.processed_through = state


class CallbackPatternMatcher:
  """The pattern's state machine over one customer's ordered interactions."""
  def __init__(
      self,
      failure_statuses: FrozenSet[str],
      callback_statuses: FrozenSet[str],
      within_ms: int):
    self._failures = failure_statuses
    self._callbacks = callback_statuses
    self._within_ms = within_ms

  def advance(self, run: List[Interaction],
              interaction: Interaction) -> Optional[PatternMatch]:
    """Feeds one interaction; updates `run` in place; returns a match."""
    if interaction.status in self._failures:
      run.append(interaction)
      # Only the last three failures can still be followed by `next`.
      del run[:-FAILURES_IN_PATTERN]
      return None
    match = None
    if interaction.status in self._callbacks and len(
        run) == FAILURES_IN_PATTERN:
      first = run[0]
      if interaction.timestamp - first.timestamp < self._within_ms:
        match = PatternMatch(
            customer_id=interaction.customer_id,
            channel=interaction.channel,
            timestamp=interaction.timestamp,
            failure_count=FAILURES_IN_PATTERN,
            alert_type=ALERT_TYPE,
            first_failure_timestamp=first.timestamp,
            interaction_ids=','.join(
                i.interaction_id for i in (*run, interaction)))
    run.clear()
    return match

  def prune(self, run: List[Interaction], processed_through: int) -> None:
    """Drops failures that can no longer start a match: every interaction
    still to come has an event time >= processed_through."""
    while run and processed_through - run[0].timestamp >= self._within_ms:
      run.pop(0)


class _DetectFn(beam.DoFn):
  STATE = ReadModifyWriteStateSpec('customer', PickleCoder())
  FLUSH = TimerSpec('flush', TimeDomain.WATERMARK)

  def __init__(
      self, matcher: CallbackPatternMatcher, within_ms: int, delay_ms: int):
    self._matcher = matcher
    self._within_ms = within_ms
    self._delay_ms = delay_ms
    self._late = Metrics.counter('callback_patterns', 'late_interactions')
    self._matches = Metrics.counter('callback_patterns', 'matches')

  def process(
      self,
      keyed,
      state=beam.DoFn.StateParam(STATE),
      flush=beam.DoFn.TimerParam(FLUSH)) -> Iterator:
    interaction: Interaction = keyed[1]
    customer = state.read() or _CustomerState()
    if (customer.processed_through is not None and
        interaction.timestamp < customer.processed_through):
      self._late.inc()
      yield beam.pvalue.TaggedOutput(
          LATE,
          LateArrival(
              interaction.customer_id, interaction, interaction.timestamp,
              interaction.timestamp, interaction.timestamp,
              customer.processed_through))
      return
    customer.buffer.append(
        (interaction.timestamp, customer.arrivals, interaction))
    customer.arrivals += 1
    state.write(customer)
    self._set(flush, min(customer.buffer)[0])

  def _set(self, timer, effective_ms: int) -> None:
    timer.set(Timestamp(micros=(effective_ms + self._delay_ms) * 1000))

  @on_timer(FLUSH)
  def on_flush(
      self,
      fired=beam.DoFn.TimestampParam,
      state=beam.DoFn.StateParam(STATE),
      flush=beam.DoFn.TimerParam(FLUSH)) -> Iterator:
    customer = state.read()
    if customer is None:
      return
    watermark_ms = fired.micros // 1000 - self._delay_ms
    customer.buffer.sort()
    ready = [item for item in customer.buffer if item[0] <= watermark_ms]
    customer.buffer = customer.buffer[len(ready):]
    for event_ms, _, interaction in ready:
      customer.processed_through = event_ms
      match = self._matcher.advance(customer.run, interaction)
      if match is not None:
        self._matches.inc()
        yield beam.window.TimestampedValue(match, match.timestamp / 1000)
    if customer.processed_through is not None:
      self._matcher.prune(customer.run, customer.processed_through)
    if customer.buffer:
      state.write(customer)
      self._set(flush, customer.buffer[0][0])
      return
    # Keep the run and `processed_through` until the watermark is `within`
    # past them: until then a callback may still complete the run, and a
    # straggler can still be told late. Then forget the customer.
    start = (
        customer.run[0].timestamp
        if customer.run else customer.processed_through)
    expiry_ms = start + self._within_ms
    if expiry_ms > watermark_ms:
      state.write(customer)
      self._set(flush, expiry_ms)
    else:
      state.clear()


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
      within_seconds: int = 30,
      watermark_delay_seconds: int = 0):
    super().__init__()
    if failure_statuses & callback_statuses:
      raise ValueError(
          'a status cannot be both a failure and a callback: '
          f'{sorted(failure_statuses & callback_statuses)}')
    within_ms = within_seconds * 1000
    self._fn = _DetectFn(
        CallbackPatternMatcher(failure_statuses, callback_statuses, within_ms),
        within_ms, watermark_delay_seconds * 1000)

  def expand(self, interactions):
    detected = (
        interactions
        | 'KeyByCustomer' >> beam.Map(lambda i: (i.customer_id, i)).
        with_output_types(Tuple[str, Interaction])
        | 'Detect' >> beam.ParDo(self._fn).with_outputs(LATE, main='matches'))
    return {'matches': detected.matches, 'late': detected.late}
