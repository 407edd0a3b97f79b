"""JoinCustomers: enrich records of a customer with the customer's latest
profile, through keyed state (keyed by customerId, never by interaction id).

Semantics:
  * the latest profile by EVENT time wins (an update delivered late never
    overwrites a newer one; equal times: the later arrival wins);
  * a record that arrives while a profile is known is emitted at once with
    it;
  * a record that arrives before any profile waits for one for
    `profile_wait` of event time (an event-time timer at record time +
    wait), then goes on with tier and region `UNKNOWN`;
  * a profile expires after `customer_state_ttl` of event time without any
    record or update for that customer, so state stays bounded with millions
    of customers.
"""
from typing import Any, Callable, Iterator, List, Optional, Tuple

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.transforms.userstate import TimerSpec
from apache_beam.transforms.userstate import on_timer
from apache_beam.utils.timestamp import Timestamp

from transforms.records import CustomerProfile

UNKNOWN = 'UNKNOWN'
_RECORD = 'r'
_PROFILE = 'p'


def unknown_profile(customer_id: str, timestamp: int) -> CustomerProfile:
  return CustomerProfile(customer_id, UNKNOWN, UNKNOWN, timestamp)


class _JoinFn(beam.DoFn):
  PROFILE = ReadModifyWriteStateSpec('profile', PickleCoder())
  WAITING = ReadModifyWriteStateSpec('waiting', PickleCoder())
  LAST_ACTIVE = ReadModifyWriteStateSpec('last_active', PickleCoder())
  WAIT = TimerSpec('wait', TimeDomain.WATERMARK)
  EXPIRE = TimerSpec('expire', TimeDomain.WATERMARK)

  def __init__(
      self, enrich: Callable[[Any, CustomerProfile], Any],
      profile_wait_ms: int, ttl_ms: int, delay_ms: int):
    self._enrich = enrich
    # Waiting is measured on the delayed watermark, like every other
    # event-time decision of the pipeline.
    self._wait_ms = profile_wait_ms + delay_ms
    self._ttl_ms = ttl_ms
    self._unknown = Metrics.counter('join_customers', 'emitted_unknown')
    self._expired = Metrics.counter('join_customers', 'profiles_expired')

  def _emit(self, record, profile: CustomerProfile):
    return beam.window.TimestampedValue(
        self._enrich(record, profile), record.timestamp / 1000)

  def process(
      self,
      keyed,
      profile_state=beam.DoFn.StateParam(PROFILE),
      waiting_state=beam.DoFn.StateParam(WAITING),
      last_active_state=beam.DoFn.StateParam(LAST_ACTIVE),
      wait=beam.DoFn.TimerParam(WAIT),
      expire=beam.DoFn.TimerParam(EXPIRE)) -> Iterator:
    _, (kind, value) = keyed
    profile: Optional[CustomerProfile] = profile_state.read()
    last_active = max(last_active_state.read() or value.timestamp,
                      value.timestamp)
    last_active_state.write(last_active)
    expire.set(Timestamp(micros=(last_active + self._ttl_ms) * 1000))
    if kind == _PROFILE:
      if profile is None or value.timestamp >= profile.timestamp:
        profile = value
        profile_state.write(profile)
      waiting: List = waiting_state.read() or []
      for record in waiting:
        yield self._emit(record, profile)
      waiting_state.clear()
    elif profile is not None:
      yield self._emit(value, profile)
    else:
      waiting = waiting_state.read() or []
      waiting.append(value)
      waiting_state.write(waiting)
      wait.set(
          Timestamp(
              micros=(min(r.timestamp for r in waiting) + self._wait_ms) *
              1000))

  @on_timer(WAIT)
  def on_wait(
      self,
      fired=beam.DoFn.TimestampParam,
      waiting_state=beam.DoFn.StateParam(WAITING),
      wait=beam.DoFn.TimerParam(WAIT)) -> Iterator:
    deadline_ms = fired.micros // 1000 - self._wait_ms
    waiting = waiting_state.read() or []
    expired = [r for r in waiting if r.timestamp <= deadline_ms]
    still_waiting = [r for r in waiting if r.timestamp > deadline_ms]
    for record in expired:
      self._unknown.inc()
      yield self._emit(record, unknown_profile(record.customer_id,
                                               record.timestamp))
    if still_waiting:
      waiting_state.write(still_waiting)
      wait.set(
          Timestamp(
              micros=(min(r.timestamp for r in still_waiting) + self._wait_ms)
              * 1000))
    else:
      waiting_state.clear()

  @on_timer(EXPIRE)
  def on_expire(
      self,
      fired=beam.DoFn.TimestampParam,
      profile_state=beam.DoFn.StateParam(PROFILE),
      waiting_state=beam.DoFn.StateParam(WAITING),
      last_active_state=beam.DoFn.StateParam(LAST_ACTIVE)):
    last_active = last_active_state.read()
    # A newer timer replaced this one if the customer was active since; the
    # waiting records have their own, earlier deadline.
    if last_active is None or last_active + self._ttl_ms > fired.micros // 1000:
      return
    if waiting_state.read():
      return
    if profile_state.read() is not None:
      self._expired.inc()
    profile_state.clear()
    last_active_state.clear()


class JoinCustomers(beam.PTransform):
  """Joins records with the latest customer profile (see module docstring).

  Input: a pair (records, profiles): PCollection of NamedTuples with
  `customer_id` and `timestamp` (epoch ms), and PCollection[CustomerProfile],
  both event-timed.
  Output: PCollection of `enrich(record, profile)`, timestamped at the
  record's time; `profile` has tier/region `UNKNOWN` when none arrived
  within `profile_wait_seconds`.
  """
  def __init__(
      self,
      enrich: Callable[[Any, CustomerProfile], Any],
      profile_wait_seconds: int,
      customer_state_ttl_seconds: int,
      watermark_delay_seconds: int = 0):
    super().__init__()
    if customer_state_ttl_seconds <= profile_wait_seconds:
      raise ValueError(
          'customer state TTL must exceed the profile wait: '
          f'{customer_state_ttl_seconds} <= {profile_wait_seconds}')
    self._fn = _JoinFn(
        enrich, profile_wait_seconds * 1000, customer_state_ttl_seconds * 1000,
        watermark_delay_seconds * 1000)

  def expand(self, inputs: Tuple[beam.PCollection, beam.PCollection]):
    records, profiles = inputs
    tagged_records = records | 'TagRecords' >> beam.Map(
        lambda r: (r.customer_id, (_RECORD, r)))
    tagged_profiles = profiles | 'TagProfiles' >> beam.Map(
        lambda p: (p.customer_id, (_PROFILE, p)))
    return ((tagged_records, tagged_profiles)
            | 'Merge' >> beam.Flatten()
            | 'Join' >> beam.ParDo(self._fn).with_input_types(
                Tuple[str, Tuple[str, Any]]))
