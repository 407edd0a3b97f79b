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
  state. Nor does a key with nobody waiting once the watermark passes its
  clock + `tombstone_ttl` (its tombstones would all have expired had its
  clock moved): queue ids that rotate out leave nothing behind. A forgotten
  key's next transition starts it over.
- While contacts wait, the key refreshes its row every `status_interval` of
  processing time: the clock extrapolated by the processing time since it
  last advanced, so a quiet queue's longest wait keeps growing, and its lost
  exits expire, without new events. (The local runner fires no
  processing-time timers outside TestStream; its replays refresh on events.)
"""

import heapq
import json
from typing import Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import (
  BagStateSpec,
  ReadModifyWriteStateSpec,
  TimerSpec,
  on_timer,
)
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Duration, Timestamp

from options.config import millis
from transforms.batching import BatchPerKey
from transforms.change_log import (
  MIN_CHANGES_BEFORE_COMPACTION,
  InstanceCopies,
  LogSize,
  append,
  merged,
  new_token,
)
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

  def plain(self) -> list:
    return [int(self.entered), self.at, self.since]


class _Head(NamedTuple):
  """The small part of a key's state, read and written at every batch."""

  # Changes at every write: the DoFn instance's copy of the contacts is
  # current only while it carries the same token (random, so a state
  # restored from a checkpoint or a retried bundle never matches a later
  # copy; transforms/dedupe.py does the same).
  token: bytes
  # The latest event time of the key's transitions (ms), and the processing
  # time (ms) it was reached at: the refresh extrapolates.
  clock: Optional[int]
  clock_seen_at: int
  # (waiting, oldest since, as_of) of the last QueueStatus row, and the
  # (waiting, listed contacts) of the last WaitingContacts row.
  last_status: Optional[list]
  last_listed: Optional[list]
  # The processing time (ms) the refresh timer is armed at, None when not.
  refresh_at: Optional[int]
  # The `revision` of the key's last rows (processing time in us, made
  # strictly increasing): sinks keep the highest, and Cassandra resolves
  # two writes with one timestamp by their values, not their order.
  revision: int
  # Contact changes in the bag (superseded ones included), and contacts
  # kept by its last compaction.
  stored: int
  kept: int


class _Contacts:
  """A key's contacts, with what answers "who waits" and "what expires
  next" without a scan: the waiting ones (id -> since), and a heap of
  (the clock past which it expires, id) with an entry per change, stale
  entries skipped as they surface."""

  __slots__ = ('by_id', 'waiting', 'due')

  def __init__(self, by_id: Dict[str, _Contact], settings: '_Settings'):
    self.by_id = by_id
    self.waiting = {c: x.since for c, x in by_id.items() if x.entered}
    self.due = [(_due(x, settings), c) for c, x in by_id.items()]
    heapq.heapify(self.due)


def _due(contact: _Contact, settings: '_Settings') -> int:
  """The clock past which `contact` expires."""
  if contact.entered:
    return contact.since + settings.max_queue_wait_ms
  return contact.at + settings.tombstone_ttl_ms


def _head_from_plain_v1(plain: list) -> _Head:
  token, *rest = plain
  return _Head(bytes.fromhex(token), *rest)


# Format v1: [token as hex, clock, clock seen at, last status [waiting,
# oldest, as_of] or null, last listed [waiting, [[contact id, since], ...]]
# or null, refresh at or null, revision, stored, kept] (docs/upgrades.md).
HEAD_CODER = VersionedStateCoder(
  'queue status head', 1, lambda h: [h.token.hex(), *h[1:]], {1: _head_from_plain_v1}
)
# Format v1: {contact id: [entered 0/1, at, since], or null once it
# expired}, one map per batch that changed contacts; later maps win
# (transforms/change_log.py).
CONTACTS_CODER = VersionedStateCoder('queue status contacts', 1, dict, {1: dict})

# The last timestamp a timer of the global window can have: only the end of
# input passes it.
_END_OF_INPUT = GlobalWindow().max_timestamp()


class _Settings(NamedTuple):
  max_queue_wait_ms: int
  tombstone_ttl_ms: int
  status_interval_ms: int
  max_waiting_listed: int
  queue_names: Mapping[str, str]


class _Batch:
  """A key's state while one batch or timer is applied: the head's fields,
  the contacts, and the changes the bag must record."""

  __slots__ = (
    'clock',
    'clock_seen_at',
    'last_status',
    'last_listed',
    'refresh_at',
    'revision',
    'stored',
    'kept',
    'contacts',
    'changed',
  )

  def __init__(self, head: Optional[_Head], contacts: _Contacts):
    if head is None:
      self.clock, self.clock_seen_at, self.last_status, self.last_listed = None, 0, None, None
      self.refresh_at, self.revision, self.stored, self.kept = None, 0, 0, 0
    else:
      self.clock, self.clock_seen_at = head.clock, head.clock_seen_at
      self.last_status, self.last_listed = head.last_status, head.last_listed
      self.refresh_at, self.revision = head.refresh_at, head.revision
      self.stored, self.kept = head.stored, head.kept
    self.contacts = contacts
    self.changed: Dict[str, Optional[list]] = {}


class _KeyTimers(NamedTuple):
  """A key's timers, armed and cleared together by `_keep`."""

  refresh: Any  # processing time: the next refresh while contacts wait
  end: Any  # the end of input (a bounded read)
  idle: Any  # event time: the key's clock + tombstone_ttl, while nobody waits


class _LiveQueueStatusFn(beam.DoFn):
  # Per queue and channel: the head, and the contacts as a log of changes
  # (transforms/change_log.py): a batch writes the contacts it touched, not
  # the thousands a busy queue holds (waiting, and the exits remembered for
  # `tombstone_ttl`).
  HEAD = ReadModifyWriteStateSpec('queue_head', HEAD_CODER)
  CONTACTS = BagStateSpec('queue_contacts', CONTACTS_CODER)
  REFRESH = TimerSpec('refresh', TimeDomain.REAL_TIME)
  END = TimerSpec('end', TimeDomain.WATERMARK)
  # Fires when the watermark passes the key's clock + tombstone_ttl with
  # nobody waiting: its tombstones would all have expired by its own clock
  # had it moved, so an idle queue (ids that rotate) leaves no state.
  IDLE = TimerSpec('idle', TimeDomain.WATERMARK)

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
    self._queues_idled = Metrics.counter(metrics_namespace, 'idle_queues_dropped')
    self._copies: InstanceCopies[_Contacts] = InstanceCopies()

  def _read(self, key: str, head: Optional[_Head], contacts_state) -> _Batch:
    copy = self._copies.take(key, head and head.token)
    if head is None:
      return _Batch(None, _Contacts({}, self._settings))
    if copy is not None:
      return _Batch(head, copy)
    by_id = {
      c: _Contact(bool(e), at, since) for c, (e, at, since) in merged(contacts_state.read()).items()
    }
    return _Batch(head, _Contacts(by_id, self._settings))

  def process(
    self,
    batch: Tuple[str, List[QueueTransition]],
    head_state=beam.DoFn.StateParam(HEAD),
    contacts_state=beam.DoFn.StateParam(CONTACTS),
    refresh=beam.DoFn.TimerParam(REFRESH),
    end=beam.DoFn.TimerParam(END),
    idle=beam.DoFn.TimerParam(IDLE),
  ) -> Iterator:
    key, transitions = batch
    head = head_state.read()
    if head is None:
      end.set(_END_OF_INPUT)
    queue = self._read(key, head, contacts_state)
    now_ms = self._now_ms()
    held = len(queue.contacts.by_id)
    lost: List[QueueTransition] = []
    for transition in transitions:
      self._apply(queue, transition)
      if queue.clock is None or transition.timestamp > queue.clock:
        queue.clock = transition.timestamp
        queue.clock_seen_at = now_ms
      if queue.clock > self._next_due(queue.contacts):
        lost.extend(self._expire(key, queue, queue.clock))
    yield from self._outputs(key, queue, queue.clock, now_ms, lost)
    self._contacts_held.inc(len(queue.contacts.by_id) - held)
    self._keep(key, queue, head_state, contacts_state, _KeyTimers(refresh, end, idle), now_ms)

  @on_timer(REFRESH)
  def on_refresh(
    self,
    key=beam.DoFn.KeyParam,
    fired=beam.DoFn.TimestampParam,
    head_state=beam.DoFn.StateParam(HEAD),
    contacts_state=beam.DoFn.StateParam(CONTACTS),
    refresh=beam.DoFn.TimerParam(REFRESH),
    end=beam.DoFn.TimerParam(END),
    idle=beam.DoFn.TimerParam(IDLE),
  ) -> Iterator:
    head = head_state.read()
    if head is None or head.refresh_at is None:
      return  # the input ended (on_end)
    queue = self._read(key, head, contacts_state)
    now_ms = max(self._now_ms(), fired.micros // 1000)
    queue.refresh_at = None
    timers = _KeyTimers(refresh, end, idle)
    if not queue.contacts.waiting:
      # Nobody waits since the timer was armed: the last row says so.
      self._keep(key, queue, head_state, contacts_state, timers, now_ms)
      return
    held = len(queue.contacts.by_id)
    as_of = queue.clock + max(0, now_ms - queue.clock_seen_at)
    lost = self._expire(key, queue, as_of)
    yield from self._outputs(key, queue, as_of, now_ms, lost, refreshed=True)
    self._contacts_held.inc(len(queue.contacts.by_id) - held)
    self._keep(key, queue, head_state, contacts_state, timers, now_ms)

  @on_timer(IDLE)
  def on_idle(
    self,
    key=beam.DoFn.KeyParam,
    fired=beam.DoFn.TimestampParam,
    head_state=beam.DoFn.StateParam(HEAD),
    contacts_state=beam.DoFn.StateParam(CONTACTS),
    refresh=beam.DoFn.TimerParam(REFRESH),
    end=beam.DoFn.TimerParam(END),
  ) -> None:
    head = head_state.read()
    if (
      head is None
      or head.last_status[0]
      or head.clock + self._settings.tombstone_ttl_ms > fired.micros // 1000
    ):
      # Emptied, someone waits again, or its clock moved on (the batch that
      # moved it armed this timer again if nobody waits).
      return
    # Its last rows already say nobody waits: its tombstones and timers go.
    queue = self._read(key, head, contacts_state)
    self._contacts_held.dec(len(queue.contacts.by_id))
    self._queues_idled.inc()
    head_state.clear()
    contacts_state.clear()
    refresh.clear()
    end.clear()

  @on_timer(END)
  def on_end(
    self,
    head_state=beam.DoFn.StateParam(HEAD),
    refresh=beam.DoFn.TimerParam(REFRESH),
  ) -> None:
    # The input ended (a bounded read): the state stays for the final rows,
    # and the armed refresh goes. A processing-time timer holds the step's
    # output watermark until it fires, and Flink fires none once the input
    # ended: the job would never finish. The token stays: the contacts did
    # not change.
    head = head_state.read()
    if head is not None and head.refresh_at is not None:
      head_state.write(head._replace(refresh_at=None))
    refresh.clear()

  def _now_ms(self) -> int:
    return self._processing_clock().micros // 1000

  def _apply(self, queue: _Batch, transition: QueueTransition) -> None:
    contact_id, at = transition.contact_id, transition.timestamp
    contacts = queue.contacts
    known = contacts.by_id.get(contact_id)
    if transition.kind == QUEUE_ENTERED:
      if known is not None and known.entered:
        known.since = min(known.since, at)
        known.at = max(known.at, at)
        contacts.waiting[contact_id] = known.since
      elif known is not None and known.at >= at:
        self._stale_transitions.inc()
        return
      else:
        known = contacts.by_id[contact_id] = _Contact(True, at, at)
        contacts.waiting[contact_id] = at
    elif transition.kind == QUEUE_LEFT:
      if known is None:
        self._exits_without_entry.inc()
        known = contacts.by_id[contact_id] = _Contact(False, at, at)
      elif known.at > at:
        self._stale_transitions.inc()
        return
      else:
        known.entered, known.at = False, at
        contacts.waiting.pop(contact_id, None)
    else:
      return
    heapq.heappush(contacts.due, (_due(known, self._settings), contact_id))
    queue.changed[contact_id] = known.plain()

  def _next_due(self, contacts: _Contacts) -> float:
    """The earliest clock past which a contact expires (stale heap entries,
    of contacts gone or changed since, are dropped on the way)."""
    due, by_id, settings = contacts.due, contacts.by_id, self._settings
    while due:
      at, contact_id = due[0]
      contact = by_id.get(contact_id)
      if contact is not None and _due(contact, settings) == at:
        return at
      heapq.heappop(due)
    return float('inf')

  def _expire(self, key: str, queue: _Batch, as_of: int) -> List[QueueTransition]:
    """Drops what expires before `as_of`: waiting contacts more than
    max_queue_wait behind it (their exit was lost; returned) and
    tombstones more than tombstone_ttl behind it."""
    contacts = queue.contacts
    lost = []
    queue_id, channel = _split_key(key)
    while self._next_due(contacts) < as_of:
      _, contact_id = heapq.heappop(contacts.due)
      contact = contacts.by_id.pop(contact_id)
      queue.changed[contact_id] = None
      if contact.entered:
        del contacts.waiting[contact_id]
        self._lost_exits.inc()
        lost.append(QueueTransition(contact_id, queue_id, channel, QUEUE_ENTERED, contact.since))
    return lost

  def _outputs(
    self,
    key: str,
    queue: _Batch,
    as_of: int,
    now_ms: int,
    lost: List[QueueTransition],
    refreshed: bool = False,
  ) -> Iterator:
    for transition in lost:
      yield beam.pvalue.TaggedOutput(LOST_CONTACTS, transition)
    waiting = sorted((since, c) for c, since in queue.contacts.waiting.items())
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

  def _keep(
    self, key: str, queue: _Batch, head_state, contacts_state, timers: _KeyTimers, now_ms: int
  ) -> None:
    """Writes the head and the batch's changes and arms the key's timers:
    the refresh while contacts wait, the idle timer while only tombstones
    are held; clears the key, timers included, when nothing is left."""
    contacts = queue.contacts
    if not contacts.by_id:
      # The last rows say "none waiting"; a key that comes back starts over
      # and writes its rows again.
      head_state.clear()
      contacts_state.clear()
      timers.refresh.clear()
      timers.end.clear()
      timers.idle.clear()
      return
    if queue.refresh_at is None and contacts.waiting:
      queue.refresh_at = now_ms + self._settings.status_interval_ms
      timers.refresh.set(Timestamp(micros=queue.refresh_at * 1000))
    if not contacts.waiting:
      timers.idle.set(Timestamp(micros=(queue.clock + self._settings.tombstone_ttl_ms) * 1000))
    stored, kept = append(
      contacts_state,
      queue.changed,
      LogSize(queue.stored, queue.kept),
      lambda: {c: x.plain() for c, x in contacts.by_id.items()},
    )
    if len(contacts.due) > 2 * max(len(contacts.by_id), MIN_CHANGES_BEFORE_COMPACTION):
      # Stale heap entries (contacts changed or gone) are dropped the same
      # way, so the copy stays bounded by the contacts held.
      contacts.due = [(_due(x, self._settings), c) for c, x in contacts.by_id.items()]
      heapq.heapify(contacts.due)
    token = new_token()
    head_state.write(
      _Head(
        token,
        queue.clock,
        queue.clock_seen_at,
        queue.last_status,
        queue.last_listed,
        queue.refresh_at,
        queue.revision,
        stored,
        kept,
      )
    )
    self._copies.keep(key, token, contacts)


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
