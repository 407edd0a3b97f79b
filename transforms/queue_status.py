"""LiveQueueStatus: who waits in each queue now, and for how long.

The live half of the floor (docs/design.md, "The live floor"): from the
contacts entering and leaving queues (QueueTransition, each input format's
lifecycle events), one state per queue and channel, its natural key, holding
the contacts waiting now. No windows: a row per key is replaced as the state
changes.

The rules, which the reference (testing/reference/queue_status.py) follows
on its own:
- Per contact the latest transition by event time wins, so a start and an
  end that arrive out of order, or twice, leave the same state: an entry at
  or before the contact's known exit is stale; an exit at or after its
  latest entry removes it and stays as a tombstone, so the entry arriving
  after its own exit adds nothing. A waiting contact waits since its
  earliest entry seen, whatever the order they came in. An exit of a
  contact the key has not seen removes nothing and is counted
  (`exits_without_entry`: lost entries, and exits that overtook their
  entry).
- The key's clock is the latest event time among its own transitions (never
  other keys'): the `as_of` of its rows. A waiting contact whose entry is
  more than `max_queue_wait` behind the clock lost its exit: it is dropped,
  counted (`lost_exits`) and output on `lost_contacts`. A tombstone is
  forgotten once `tombstone_ttl` behind the clock (the job passes
  `--dedupe_ttl_seconds`, the horizon of every re-delivery it recognises): a busy
  queue then holds the exits of minutes, not of hours. So the state is
  bounded by the contacts waiting, at most `max_queue_wait`, and the exits
  of the last `tombstone_ttl` per key; a key with nothing left holds no
  state.
- While contacts wait, the key refreshes its row every `status_interval` of
  processing time: the clock extrapolated by the processing time since it
  last advanced, so a quiet queue's longest wait keeps growing, and its lost
  exits expire, without new events. (The local runner fires no
  processing-time timers outside TestStream; its replays refresh on events.)
"""

import json
from typing import Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Duration, Timestamp

from options.config import millis
from transforms.batching import BatchPerKey
from transforms.records import (
  QUEUE_ENTERED,
  QUEUE_LEFT,
  QueueStatus,
  QueueTransition,
  WaitingContacts,
)
from transforms.state_coders import VersionedStateCoder

WAITING_CONTACTS = 'waiting_contacts'
LOST_CONTACTS = 'lost_contacts'
_KEY_SEPARATOR = '|'


def status_key(transition: QueueTransition) -> str:
  """The step's key of a transition: its channel and queue."""
  return f'{transition.channel}{_KEY_SEPARATOR}{transition.queue_id}'


def _split_key(key: str) -> Tuple[str, str]:
  channel, _, queue_id = key.partition(_KEY_SEPARATOR)
  return queue_id, channel


class _Contact:
  """One contact's latest transition: waiting (`entered`) since `since`, or
  gone (a tombstone) at `at`."""

  __slots__ = ('entered', 'at', 'since')

  def __init__(self, entered: bool, at: int, since: int):
    self.entered = entered
    self.at = at
    self.since = since


class _QueueState:
  """One queue and channel: its contacts, clock and what was last written."""

  __slots__ = (
    'contacts',
    'clock',
    'clock_seen_at',
    'last_status',
    'last_listed',
    'refresh_at',
    'revision',
  )

  def __init__(self):
    self.contacts: Dict[str, _Contact] = {}
    # The latest event time of the key's transitions (ms), and the
    # processing time (ms) it was reached at: the refresh extrapolates.
    self.clock: Optional[int] = None
    self.clock_seen_at: int = 0
    # (waiting, oldest since, as_of) of the last QueueStatus row, and the
    # (waiting, listed contacts) of the last WaitingContacts row.
    self.last_status: Optional[list] = None
    self.last_listed: Optional[list] = None
    # The processing time (ms) the refresh timer is armed at, None when not.
    self.refresh_at: Optional[int] = None
    # The `revision` of the key's last rows (processing time in us, made
    # strictly increasing): sinks keep the highest, and Cassandra resolves
    # two writes with one timestamp by their values, not their order.
    self.revision: int = 0


def _state_to_plain(state: _QueueState) -> list:
  return [
    {c: [int(x.entered), x.at, x.since] for c, x in state.contacts.items()},
    state.clock,
    state.clock_seen_at,
    state.last_status,
    state.last_listed,
    state.refresh_at,
    state.revision,
  ]


def _state_from_plain_v1(plain: list) -> _QueueState:
  state = _QueueState()
  contacts, state.clock, state.clock_seen_at, state.last_status, state.last_listed = plain[:5]
  state.refresh_at, state.revision = plain[5:7]
  state.contacts = {c: _Contact(bool(e), at, since) for c, (e, at, since) in contacts.items()}
  return state


# Format v1: [{contact id: [entered 0/1, at, since]}, clock, clock seen at,
# last status [waiting, oldest, as_of] or null, last listed [waiting,
# [[contact id, since], ...]] or null, refresh at or null, revision]
# (docs/upgrades.md).
QUEUE_STATE_CODER = VersionedStateCoder(
  'queue status', 1, _state_to_plain, {1: _state_from_plain_v1}
)

# The last timestamp a timer of the global window can have: only the end of
# input passes it.
_END_OF_INPUT = GlobalWindow().max_timestamp()


class _Settings(NamedTuple):
  max_queue_wait_ms: int
  tombstone_ttl_ms: int
  status_interval_ms: int
  max_waiting_listed: int
  queue_names: Mapping[str, str]


class _LiveQueueStatusFn(beam.DoFn):
  STATE = ReadModifyWriteStateSpec('queue_state', QUEUE_STATE_CODER)
  REFRESH = TimerSpec('refresh', TimeDomain.REAL_TIME)
  END = TimerSpec('end', TimeDomain.WATERMARK)

  def __init__(
    self,
    settings: _Settings,
    processing_clock: Callable[[], Timestamp],
    metrics_namespace: str,
  ):
    self._settings = settings
    self._processing_clock = processing_clock
    self._exits_without_entry = Metrics.counter(metrics_namespace, 'exits_without_entry')
    self._stale_transitions = Metrics.counter(metrics_namespace, 'stale_transitions')
    self._lost_exits = Metrics.counter(metrics_namespace, 'lost_exits')
    # Contacts held (waiting or tombstones) across all keys: a counter of
    # increments and decrements, as a per-key gauge would have a label per
    # queue.
    self._contacts_held = Metrics.counter(metrics_namespace, 'contacts_held')

  def process(
    self,
    batch: Tuple[str, List[QueueTransition]],
    state=beam.DoFn.StateParam(STATE),
    refresh=beam.DoFn.TimerParam(REFRESH),
    end=beam.DoFn.TimerParam(END),
  ) -> Iterator:
    key, transitions = batch
    queue = state.read()
    if queue is None:
      queue = _QueueState()
      end.set(_END_OF_INPUT)
    now_ms = self._now_ms()
    held = len(queue.contacts)
    lost: List[QueueTransition] = []
    # The earliest clock at which something expires: a scan of the
    # contacts per batch, not per transition (a busy queue holds thousands).
    next_due = self._next_due(queue)
    for transition in transitions:
      self._apply(queue, transition)
      touched = queue.contacts.get(transition.contact_id)
      if touched is not None:
        next_due = min(next_due, self._due(touched))
      if queue.clock is None or transition.timestamp > queue.clock:
        queue.clock = transition.timestamp
        queue.clock_seen_at = now_ms
      if queue.clock > next_due:
        lost.extend(self._expire(key, queue, queue.clock))
        next_due = self._next_due(queue)
    yield from self._outputs(key, queue, queue.clock, now_ms, lost)
    self._contacts_held.inc(len(queue.contacts) - held)
    self._keep(queue, state, refresh, now_ms)

  @on_timer(REFRESH)
  def on_refresh(
    self,
    key=beam.DoFn.KeyParam,
    fired=beam.DoFn.TimestampParam,
    state=beam.DoFn.StateParam(STATE),
    refresh=beam.DoFn.TimerParam(REFRESH),
  ) -> Iterator:
    queue = state.read()
    if queue is None or queue.refresh_at is None:
      return  # the input ended (on_end)
    now_ms = max(self._now_ms(), fired.micros // 1000)
    queue.refresh_at = None
    if not any(x.entered for x in queue.contacts.values()):
      # Nobody waits since the timer was armed: the last row says so.
      state.write(queue)
      return
    held = len(queue.contacts)
    as_of = queue.clock + max(0, now_ms - queue.clock_seen_at)
    lost = self._expire(key, queue, as_of)
    yield from self._outputs(key, queue, as_of, now_ms, lost, refreshed=True)
    self._contacts_held.inc(len(queue.contacts) - held)
    self._keep(queue, state, refresh, now_ms)

  @on_timer(END)
  def on_end(
    self, state=beam.DoFn.StateParam(STATE), refresh=beam.DoFn.TimerParam(REFRESH)
  ) -> None:
    # The input ended (a bounded read): the state stays for the final rows,
    # and the armed refresh goes. A processing-time timer holds the step's
    # output watermark until it fires, and Flink fires none once the input
    # ended: the job would never finish.
    queue = state.read()
    if queue is not None and queue.refresh_at is not None:
      queue.refresh_at = None
      state.write(queue)
    refresh.clear()

  def _now_ms(self) -> int:
    return self._processing_clock().micros // 1000

  def _apply(self, queue: _QueueState, transition: QueueTransition) -> None:
    contact_id, at = transition.contact_id, transition.timestamp
    known = queue.contacts.get(contact_id)
    if transition.kind == QUEUE_ENTERED:
      if known is not None and known.entered:
        known.since = min(known.since, at)
        known.at = max(known.at, at)
      elif known is not None and known.at >= at:
        self._stale_transitions.inc()
      else:
        queue.contacts[contact_id] = _Contact(True, at, at)
    elif transition.kind == QUEUE_LEFT:
      if known is None:
        self._exits_without_entry.inc()
        queue.contacts[contact_id] = _Contact(False, at, at)
      elif known.at > at:
        self._stale_transitions.inc()
      else:
        known.entered, known.at = False, at

  def _due(self, contact: _Contact) -> int:
    """The clock past which `contact` expires."""
    if contact.entered:
      return contact.since + self._settings.max_queue_wait_ms
    return contact.at + self._settings.tombstone_ttl_ms

  def _next_due(self, queue: _QueueState) -> float:
    return min((self._due(c) for c in queue.contacts.values()), default=float('inf'))

  def _expire(self, key: str, queue: _QueueState, as_of: int) -> List[QueueTransition]:
    """Drops what is more than max_queue_wait behind `as_of`: waiting
    contacts (their exit was lost; returned) and tombstones."""
    waited_since = as_of - self._settings.max_queue_wait_ms
    left_since = as_of - self._settings.tombstone_ttl_ms
    gone = [
      c
      for c, x in queue.contacts.items()
      if (x.since < waited_since if x.entered else x.at < left_since)
    ]
    lost = []
    queue_id, channel = _split_key(key)
    for contact_id in gone:
      contact = queue.contacts.pop(contact_id)
      if contact.entered:
        self._lost_exits.inc()
        lost.append(QueueTransition(contact_id, queue_id, channel, QUEUE_ENTERED, contact.since))
    return lost

  def _outputs(
    self,
    key: str,
    queue: _QueueState,
    as_of: int,
    now_ms: int,
    lost: List[QueueTransition],
    refreshed: bool = False,
  ) -> Iterator:
    for transition in lost:
      yield beam.pvalue.TaggedOutput(LOST_CONTACTS, transition)
    waiting = sorted((x.since, c) for c, x in queue.contacts.items() if x.entered)
    oldest = waiting[0][0] if waiting else None
    status = [len(waiting), oldest, as_of]
    queue_id, channel = _split_key(key)
    listed = [
      len(waiting),
      [[c, since] for since, c in waiting[: self._settings.max_waiting_listed]],
    ]
    if not (refreshed or status != queue.last_status or listed != queue.last_listed):
      return
    revision = queue.revision = max(self._processing_clock().micros, queue.revision + 1)
    if refreshed or status != queue.last_status:
      queue.last_status = status
      yield QueueStatus(
        queue_id=queue_id,
        channel=channel,
        waiting=len(waiting),
        oldest_waiting_since=oldest,
        longest_wait_seconds=0.0 if oldest is None else max(0, as_of - oldest) / 1000,
        as_of=as_of,
        updated_at=now_ms,
        queue_name=self._settings.queue_names.get(queue_id, queue_id),
        revision=revision,
      )
    if listed != queue.last_listed:
      queue.last_listed = listed
      yield beam.pvalue.TaggedOutput(
        WAITING_CONTACTS,
        WaitingContacts(
          queue_id=queue_id,
          channel=channel,
          contacts=json.dumps(
            [{'contact_id': c, 'since': since} for c, since in listed[1]], separators=(',', ':')
          ),
          waiting=len(waiting),
          as_of=as_of,
          updated_at=now_ms,
          revision=revision,
        ),
      )

  def _keep(self, queue: _QueueState, state, refresh, now_ms: int) -> None:
    """Writes the state (clears it when nothing is left) and arms the
    refresh while contacts wait."""
    if not queue.contacts:
      # The last rows say "none waiting"; a key that comes back starts over
      # and writes its rows again.
      state.clear()
      return
    if queue.refresh_at is None and any(x.entered for x in queue.contacts.values()):
      queue.refresh_at = now_ms + self._settings.status_interval_ms
      refresh.set(Timestamp(micros=queue.refresh_at * 1000))
    state.write(queue)


class LiveQueueStatus(beam.PTransform):
  """The contacts waiting in each queue now, and the longest wait.

  Input: PCollection[QueueTransition] in the global window, each
  timestamped with its event time (every format's `queue_transitions`,
  transforms/formats/).
  Outputs (dict):
    `queue_status`: PCollection[QueueStatus], a row per (queue, channel)
      whenever its waiting count, oldest entry or clock changes, and every
      `status_interval` of processing time while contacts wait.
    `waiting_contacts`: PCollection[WaitingContacts], a row per (queue,
      channel) whenever the waiting contacts change: the
      `max_waiting_listed` oldest.
    `lost_contacts`: PCollection[QueueTransition], the entry of each
      contact dropped after `max_queue_wait` without an exit.
  `tombstone_ttl`: how long an exit is remembered to judge its entry
  arriving after it (default `max_queue_wait`). The rules are in the module
  docstring. `processing_clock`: the
  processing time (tests give a fixed one; TestStream's clock is not the
  wall clock).
  """

  def __init__(
    self,
    *,
    max_queue_wait: Duration,
    tombstone_ttl: Optional[Duration] = None,
    status_interval: Duration,
    max_waiting_listed: int,
    queue_names: Mapping[str, str],
    metrics_namespace: str = 'queue_status',
    processing_clock: Callable[[], Timestamp] = Timestamp.now,
  ):
    super().__init__()
    if max_waiting_listed < 0:
      raise ValueError(f'max_waiting_listed must be >= 0, got {max_waiting_listed}')
    self._fn = _LiveQueueStatusFn(
      _Settings(
        max_queue_wait_ms=millis(max_queue_wait),
        tombstone_ttl_ms=millis(max_queue_wait if tombstone_ttl is None else tombstone_ttl),
        status_interval_ms=millis(status_interval),
        max_waiting_listed=max_waiting_listed,
        queue_names=dict(queue_names),
      ),
      processing_clock,
      metrics_namespace,
    )

  def expand(self, transitions):
    outputs = (
      transitions
      | 'BatchPerQueue' >> BatchPerKey(status_key, lambda t: t.timestamp, str)
      | 'QueueState'
      >> beam.ParDo(self._fn)
      .with_output_types(
        QueueStatus, **{WAITING_CONTACTS: WaitingContacts, LOST_CONTACTS: QueueTransition}
      )
      .with_outputs(WAITING_CONTACTS, LOST_CONTACTS, main='queue_status')
    )
    return {
      'queue_status': outputs.queue_status,
      WAITING_CONTACTS: outputs[WAITING_CONTACTS],
      LOST_CONTACTS: outputs[LOST_CONTACTS],
    }
