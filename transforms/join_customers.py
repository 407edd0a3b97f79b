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
    record or update for that customer (checked when its shard compacts,
    on a grid of a tenth of the TTL shared by all shards, so at most that
    much later), so state stays bounded with millions of customers.
"""

from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Tuple, Type

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
from transforms.event_time import DelayedClock, at_event_time, ceil_to_grid
from transforms.records import CustomerProfile
from transforms.sharding import DEFAULT_STATE_SHARDS, KeyByShard
from transforms.state_coders import VersionedStateCoder, record_from_plain, record_to_plain

UNKNOWN = 'UNKNOWN'
_RECORD = 'r'
_PROFILE = 'p'


def unknown_profile(customer_id: str, timestamp: int) -> CustomerProfile:
  return CustomerProfile(customer_id, UNKNOWN, UNKNOWN, timestamp)


class _Activity(NamedTuple):
  """What compaction keeps of a customer's records: when it was active."""

  customer_id: str
  timestamp: int


def _profile_entry_from_plain_v1(plain: list) -> Tuple[str, Any]:
  kind, value = plain
  return kind, record_from_plain(CustomerProfile if kind == _PROFILE else _Activity, value)


# Format v1: [kind, record as a field-name map], kind "p" (a profile) or
# "r" (a customer's activity marker).
PROFILES_CODER = VersionedStateCoder(
  'customer join profiles',
  1,
  lambda entry: [entry[0], record_to_plain(entry[1])],
  {1: _profile_entry_from_plain_v1},
)
# Format v1: {customer_id: [waiting record as a field-name map, ...]}.
WAITING_CODER = VersionedStateCoder('customer join waiting', 1, dict, {1: dict})
# Format v1: the next compaction time (epoch ms).
COMPACT_AT_CODER = VersionedStateCoder('customer join compaction', 1, int, {1: int})


class _JoinFn(beam.DoFn):
  """Keyed by shard (transforms/sharding.py).

  Profile updates are appended to a bag (O(1) per update: most customers
  only ever send updates); the bag is read only when a record needs a
  profile, which is rare (records are alerts), and compacted by a timer
  that keeps the latest profile per active customer and drops the
  customers inactive for the TTL. Records waiting for a first profile sit
  in a small map with one timer at the earliest deadline.
  """

  PROFILES = BagStateSpec('profiles', PROFILES_CODER)
  WAITING = ReadModifyWriteStateSpec('waiting', WAITING_CODER)
  COMPACT_AT = ReadModifyWriteStateSpec('compact_at', COMPACT_AT_CODER)
  WAIT = TimerSpec('wait', TimeDomain.WATERMARK)
  COMPACT = TimerSpec('compact', TimeDomain.WATERMARK)

  def __init__(
    self,
    enrich: Callable[[Any, CustomerProfile], Any],
    record_type: Type[NamedTuple],
    profile_wait_ms: int,
    ttl_ms: int,
    max_out_of_orderness_ms: int,
  ):
    self._enrich = enrich
    self._record_type = record_type
    self._wait_ms = profile_wait_ms
    self._ttl_ms = ttl_ms
    self._compact_step_ms = max(ttl_ms // 10, 1)
    self._event_time = DelayedClock(max_out_of_orderness_ms)
    self._unknown = Metrics.counter('join_customers', 'emitted_unknown')
    self._expired = Metrics.counter('join_customers', 'customers_expired')

  def _emit(self, record, profile: CustomerProfile):
    return at_event_time(self._enrich(record, profile), record.timestamp)

  def _read_waiting(self, waiting_state) -> Dict[str, List]:
    # Kept as field-name maps (state_coders.py): the coder is declared on
    # the class, the record type is this instance's.
    return {
      customer_id: [record_from_plain(self._record_type, r) for r in records]
      for customer_id, records in (waiting_state.read() or {}).items()
    }

  @staticmethod
  def _write_waiting(waiting_state, waiting: Dict[str, List]) -> None:
    waiting_state.write(
      {
        customer_id: [record_to_plain(r) for r in records]
        for customer_id, records in waiting.items()
      }
    )

  def process(
    self,
    sharded,
    profiles=beam.DoFn.StateParam(PROFILES),
    waiting_state=beam.DoFn.StateParam(WAITING),
    compact_at=beam.DoFn.StateParam(COMPACT_AT),
    wait=beam.DoFn.TimerParam(WAIT),
    compact=beam.DoFn.TimerParam(COMPACT),
  ) -> Iterator:
    kind, value = sharded[1]
    # Records count as activity too, so they go in the bag as markers.
    profiles.add(
      (kind, value if kind == _PROFILE else _Activity(value.customer_id, value.timestamp))
    )
    if compact_at.read() is None:
      first_ms = self._compaction_time(value.timestamp + self._ttl_ms)
      compact_at.write(first_ms)
      self._event_time.set(compact, first_ms)
    waiting = self._read_waiting(waiting_state)
    if kind == _PROFILE:
      released = waiting.pop(value.customer_id, [])
      if released:
        # Nobody had a profile when these arrived: this update is the
        # latest known one.
        self._write_waiting(waiting_state, waiting)
        for record in released:
          yield self._emit(record, value)
      return
    profile = _latest_profiles(profiles.read()).get(value.customer_id)
    if profile is not None:
      yield self._emit(value, profile)
      return
    waiting.setdefault(value.customer_id, []).append(value)
    self._write_waiting(waiting_state, waiting)
    self._event_time.set(wait, _earliest(waiting) + self._wait_ms)

  @on_timer(WAIT)
  def on_wait(
    self,
    fired=beam.DoFn.TimestampParam,
    waiting_state=beam.DoFn.StateParam(WAITING),
    wait=beam.DoFn.TimerParam(WAIT),
  ) -> Iterator:
    deadline_ms = self._event_time.fired_ms(fired) - self._wait_ms
    waiting = self._read_waiting(waiting_state)
    for customer_id in sorted(waiting):
      records = waiting[customer_id]
      for record in [r for r in records if r.timestamp <= deadline_ms]:
        self._unknown.inc()
        yield self._emit(record, unknown_profile(customer_id, record.timestamp))
      waiting[customer_id] = [r for r in records if r.timestamp > deadline_ms]
      if not waiting[customer_id]:
        del waiting[customer_id]
    if waiting:
      self._write_waiting(waiting_state, waiting)
      self._event_time.set(wait, _earliest(waiting) + self._wait_ms)
    else:
      waiting_state.clear()

  def _compaction_time(self, expiry_ms: int) -> int:
    return ceil_to_grid(expiry_ms, self._compact_step_ms)

  @on_timer(COMPACT)
  def on_compact(
    self,
    fired=beam.DoFn.TimestampParam,
    profiles=beam.DoFn.StateParam(PROFILES),
    compact_at=beam.DoFn.StateParam(COMPACT_AT),
    compact=beam.DoFn.TimerParam(COMPACT),
  ):
    now_ms = self._event_time.fired_ms(fired)
    entries = list(profiles.read())
    latest = _latest_profiles(entries)
    last_active: Dict[str, int] = {}
    for _, value in entries:
      last_active[value.customer_id] = max(
        last_active.get(value.customer_id, value.timestamp), value.timestamp
      )
    alive = {c for c, t in last_active.items() if t + self._ttl_ms > now_ms}
    self._expired.inc(len(last_active) - len(alive))
    profiles.clear()
    for customer_id in sorted(alive):
      # One marker keeps the customer's activity time, one entry its latest
      # profile (if any).
      if customer_id in latest:
        profiles.add((_PROFILE, latest[customer_id]))
      if customer_id not in latest or latest[customer_id].timestamp < (last_active[customer_id]):
        profiles.add((_RECORD, _Activity(customer_id, last_active[customer_id])))
    if alive:
      # On the grid: one compaction per step drops every customer expired
      # by then, instead of one wake-up per customer's own expiry time.
      next_ms = self._compaction_time(min(last_active[c] for c in alive) + self._ttl_ms)
      compact_at.write(next_ms)
      self._event_time.set(compact, next_ms)
    else:
      compact_at.clear()


def _latest_profiles(entries: Iterable[Tuple[str, Any]]) -> Dict[str, CustomerProfile]:
  """The latest profile by event time per customer; among equal times the
  later arrival wins."""
  latest: Dict[str, CustomerProfile] = {}
  for kind, value in entries:
    if kind != _PROFILE:
      continue
    current = latest.get(value.customer_id)
    if current is None or value.timestamp >= current.timestamp:
      latest[value.customer_id] = value
  return latest


def _earliest(waiting: Dict[str, List]) -> int:
  return min(r.timestamp for records in waiting.values() for r in records)


class JoinCustomers(beam.PTransform):
  """Joins records with the latest customer profile (see module docstring).

  Input: a pair (records, profiles): PCollection[record_type], NamedTuples
  with `customer_id` and `timestamp` (epoch ms), and
  PCollection[CustomerProfile], both event-timed.
  Output: PCollection of `enrich(record, profile)`, timestamped at the
  record's time; `profile` has tier/region `UNKNOWN` when none arrived
  within `profile_wait`.
  """

  def __init__(
    self,
    enrich: Callable[[Any, CustomerProfile], Any],
    record_type: Type[NamedTuple],
    profile_wait: Duration,
    customer_state_ttl: Duration,
    max_out_of_orderness: Duration = Duration(0),
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    self._shards = shards
    profile_wait_ms = checked_millis(profile_wait, 'profile wait', zero_ok=True)
    customer_state_ttl_ms = checked_millis(customer_state_ttl, 'customer state TTL', zero_ok=True)
    if customer_state_ttl_ms <= profile_wait_ms:
      raise ValueError(
        'customer state TTL must exceed the profile wait: '
        f'{customer_state_ttl!r} <= {profile_wait!r}'
      )
    self._fn = _JoinFn(
      enrich,
      record_type,
      profile_wait_ms,
      customer_state_ttl_ms,
      checked_millis(max_out_of_orderness, 'max out-of-orderness', zero_ok=True),
    )

  # Unannotated: Beam takes an expand() input hint for one PCollection's
  # type and warns on a pair of them (the docstring says what comes in).
  def expand(self, inputs):
    records, profiles = inputs
    tagged_records = records | 'TagRecords' >> beam.Map(lambda r: (_RECORD, r))
    tagged_profiles = profiles | 'TagProfiles' >> beam.Map(lambda p: (_PROFILE, p))
    return (
      (tagged_records, tagged_profiles)
      | 'Merge' >> beam.Flatten()
      | 'Shard' >> KeyByShard(lambda tagged: tagged[1].customer_id, self._shards)
      | 'Join' >> beam.ParDo(self._fn)
    )
