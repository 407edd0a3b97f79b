#!/usr/bin/env python3
"""Independent reference for the call-metrics pipeline on the vendor formats
(``--call_event_format=genesys_cloud|amazon_connect|amazon_connect_events``):
the FINAL rows, in
plain Python, for a JSON-lines file replayed in polls of ``poll_size`` lines.

It shares no code with ``pipelines/`` or ``transforms/``; it reuses the
delivery model of ``testing/reference/calls.py`` (polls, watermark, per-key late
gate). Semantics:

* Validity (everything else is a dead letter): see ``parse_genesys`` and
  ``parse_connect``; ISO-8601 times need a full date-time with a UTC offset
  (``iso_ms``). Valid acd.start/acd.end notifications (Genesys) and valid
  queued contact records (Connect), duplicates included, advance the
  watermark with their event time (``eventTime``, ``Queue.DequeueTimestamp``).
* Genesys deliveries: an EventBridge event, a bare notification, or a bare
  event body (no ``topicName``): ``acdOutcome`` makes it an acd.end,
  ``userId`` or no ``queueId`` another topic, else an acd.start (or the
  kind ``trigger_kind`` names). ``mediaType`` is required and one of
  Genesys' documented values; its lower case is the channel.
* Connect: ``Channel`` (VOICE, CHAT, TASK, EMAIL) and ``InitiationMethod``
  are required and documented values. Offered: queued contacts of
  INBOUND, TRANSFER, QUEUE_TRANSFER, CALLBACK, WEBRTC_API, and API except
  on VOICE; the others are passed over. Channel: ``callback`` for
  CALLBACK, else ``Channel`` lower case. Outcome: answered with an agent
  connection; else flow-out when transferred (``TransferredToEndpoint``
  or ``NextContactId``) or disconnected otherwise than by the customer,
  or by the customer a second or more after the dequeue; abandoned when
  the customer disconnected in queue; unknown without
  ``DisconnectReason``. A copy whose ``LastUpdateTimestamp`` is more than
  ``dedupe_ttl_s`` after the contact ended (disconnect, or the end of
  after-contact work) is an update: never de-duplicated nor counted, it is
  routed late (``record_updates``) whatever the windows.
* Connect contact events (``parse_connect_event``): an EventBridge event
  (``detail-type`` "Amazon Connect Contact Event", ``detail`` an object) or
  a bare ``detail``; each field is read under its camelCase name, else its
  PascalCase one. Any ``eventType`` but QUEUED, CONNECTED_TO_AGENT,
  DISCONNECTED and COMPLETED is passed over unchecked. Those four need
  ``contactId``, ``initiationMethod`` (Connect's values), ``channel``
  (Connect's values in any case); ``queueInfo`` and ``agentInfo``
  objects or absent; ``agentInfo.connectedToAgentTimestamp`` and
  ``disconnectTimestamp`` ISO times, absent, or in the first second of
  1970 (Amazon's placeholder: none). No ``queueInfo``: passed over;
  else ``queueArn`` must end in
  ``/queue/<id>`` (the queue is that id, or the whole ARN with
  ``connect_queue_key='arn'``) and ``enqueueTimestamp`` is a required ISO
  time. Own legs (as for contact records): not inbound. QUEUED: enters
  the queue at ``enqueueTimestamp`` (moves the watermark, offers
  nothing). CONNECTED_TO_AGENT: offered, answered, at the connection
  (required). DISCONNECTED or COMPLETED with a connection: moves the
  watermark to the connection, offers nothing; without: offered
  at ``disconnectTimestamp`` (required), abandoned for ``disconnectReason``
  CUSTOMER_DISCONNECT, unknown without one, flow-out otherwise. The time
  left may not precede ``enqueueTimestamp``, the wait (their difference)
  is at most ``MAX_WAIT_S``. Channel ``callback`` for CALLBACK.
* De-duplication: first arrival per (topic, conversationId:sessionId)
  (Genesys) or per ``ContactId`` / ``contactId`` (Connect).
* Rows per (queue, channel, window); the late gate keys them by
  ``channel|queue`` as the pipeline does.
* Genesys pairing, per conversationId:sessionId: the second of start and
  end to arrive completes the call (wait = end - start, unknown if
  negative). An end still alone when the watermark reaches its eventTime
  rounded up to 5 s is counted with its wait unknown, at the START of the
  first poll whose watermark passed that point, judged by the late gate
  with that watermark before the poll's own records (and counted for the
  queues' clocks from that poll on); one that arrives already behind that
  point counts in its own poll. A start alone when the watermark reaches
  its eventTime + ``max_queue_wait_s`` (``callback_max_queue_wait_s``
  for a callback; rounded up to 5 s) is dropped.
  After the last poll the watermark moves once more (to the last event
  time, releasing as above), then to +inf: the ends still alone (the last
  few seconds of the input) are counted then, late for every queue with an
  established clock.
* Metrics per (queue, window) of the offered calls' event time (acd.end
  ``eventTime``, ``Queue.DequeueTimestamp``): offered, answered, abandoned,
  flow-outs, short abandons (abandoned, known wait < threshold), answered
  and abandoned within the service level (known wait <= target), unknown
  waits (all, and answered), wait sums over known waits (all, answered).
  Rates: ``rate(row, definition)``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import re
import sys
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Dict, List, Optional, Sequence, Set, Tuple

from testing.reference.calls import (
  MAX_TS_MS,
  MAX_WAIT_S,
  MIN_TS_MS,
  KeyedLateGate,
  Timing,
  add_delivery_arguments,
  iter_polls,
  latest_valid_ts_ms,
  load_json_object,
  record_delivery,
  timestamp_ms,
  valid_optional_text,
  valid_text,
  watermark_before_poll,
)

GENESYS = 'genesys_cloud'
CONNECT = 'amazon_connect'
CONNECT_EVENTS = 'amazon_connect_events'
FORMATS = (GENESYS, CONNECT, CONNECT_EVENTS)
TICK_MS = 5000
_FOUR = Decimal('0.0001')
_ACD_TOPIC = re.compile(r'v2\.detail\.events\.conversation\.([^.]+)\.(acd\.start|acd\.end)')
_ISO = re.compile(
  r'(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?'
  r'(Z|[+-]\d{2}:\d{2})'
)
_OUTCOMES = {
  'ANSWERED': 'ANSWERED',
  'ABANDON': 'ABANDONED',
  'FLOW_OUT': 'FLOW_OUT',
  'UNKNOWN': 'UNKNOWN',
}

# (call_id, queue_id, event time ms, outcome, wait seconds or None,
# channel, record update)
Offered = Tuple[str, str, int, str, Optional[float], str, bool]
MEDIA_TYPES = {
  m: m.lower()
  for m in ('VOICE', 'CHAT', 'EMAIL', 'CALLBACK', 'MESSAGE', 'VIDEO', 'COBROWSE', 'SCREENSHARE')
}
MEDIA_TYPES['UNKNOWN'] = 'unknown'
CONNECT_CHANNELS = {'VOICE': 'voice', 'CHAT': 'chat', 'TASK': 'task', 'EMAIL': 'email'}
CONNECT_OFFERED = {'INBOUND', 'TRANSFER', 'QUEUE_TRANSFER', 'CALLBACK', 'API', 'WEBRTC_API'}
CONNECT_OWN_LEGS = {'OUTBOUND', 'EXTERNAL_OUTBOUND', 'MONITOR', 'DISCONNECT', 'AGENT_REPLY', 'FLOW'}
ROW_FIELDS = (
  'total_calls',
  'answered_calls',
  'abandoned_calls',
  'short_abandoned_calls',
  'flow_out_calls',
  'answered_within_sl',
  'abandoned_within_sl',
  'wait_unknown_calls',
  'answered_wait_unknown_calls',
  'total_wait_seconds',
  'answered_wait_seconds',
)


_text = valid_text


def iso_ms(value: object) -> Optional[int]:
  """An ISO-8601 date-time string with a UTC offset as epoch ms (fraction
  truncated to ms), if valid and in [2000, 2100); else None."""
  if type(value) is not str or len(value) > 35:
    return None
  m = _ISO.fullmatch(value)
  if m is None:
    return None
  y, mo, d, h, mi, s, frac, off = m.groups()
  try:
    moment = datetime.datetime(
      int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=datetime.timezone.utc
    )
  except ValueError:
    return None
  offset_min = 0
  if off != 'Z':
    hours, minutes = int(off[1:3]), int(off[4:6])
    if hours > 23 or minutes > 59:
      return None
    offset_min = (hours * 60 + minutes) * (1 if off[0] == '+' else -1)
  seconds = int(moment.timestamp()) - offset_min * 60
  ms = seconds * 1000 + int((frac or '0').ljust(3, '0')[:3])
  return ms if MIN_TS_MS <= ms < MAX_TS_MS and ms <= latest_valid_ts_ms() else None


def parse_genesys(raw: bytes, trigger_kind: Optional[str] = None) -> Tuple[str, Optional[tuple]]:
  """``("dead", None)``, ``("other", None)`` for another topic, or
  ``("start"|"end", (call_id, queue_id, eventTime, outcome, channel))``.
  ``trigger_kind``: "start" or "end", the topic of bare bodies."""
  obj = load_json_object(raw)
  if obj is None:
    return 'dead', None
  note = obj.get('detail') if 'detail' in obj else obj
  if type(note) is not dict:
    return 'dead', None
  if 'topicName' not in note and 'eventBody' not in note:
    body = note
    if timestamp_ms(body.get('eventTime'), latest_valid_ts_ms()) is None or not _text(
      body.get('conversationId')
    ):
      return 'dead', None
    if trigger_kind is not None:
      kind = trigger_kind
    elif 'acdOutcome' in body:
      kind = 'end'
    elif 'userId' in body or 'queueId' not in body:
      return 'other', None
    else:
      kind = 'start'
    topic_conversation = body['conversationId']
  else:
    if not _text(note.get('topicName')):
      return 'dead', None
    match = _ACD_TOPIC.fullmatch(note['topicName'])
    if match is None:
      return ('other' if note['topicName'].startswith('v2.') else 'dead'), None
    body = note.get('eventBody')
    if type(body) is not dict:
      return 'dead', None
    topic_conversation = match.group(1)
    kind = 'start' if match.group(2) == 'acd.start' else 'end'
  ts = timestamp_ms(body.get('eventTime'), latest_valid_ts_ms())
  conversation, session, queue = (
    body.get('conversationId'),
    body.get('sessionId'),
    body.get('queueId'),
  )
  if (
    ts is None
    or not _text(conversation)
    or conversation != topic_conversation
    or not _text(session)
    or not _text(queue)
    or body.get('mediaType') not in MEDIA_TYPES
    or not all(valid_optional_text(body.get(k)) for k in ('participantId', 'disconnectType'))
  ):
    return 'dead', None
  outcome = None
  if kind == 'end':
    outcome = _OUTCOMES.get(body.get('acdOutcome')) if _text(body.get('acdOutcome')) else None
    if outcome is None:
      return 'dead', None
  return kind, (f'{conversation}:{session}', queue, ts, outcome, MEDIA_TYPES[body['mediaType']])


def parse_connect(
  raw: bytes, queue_key: str = 'Name', update_after_ms: Optional[int] = None
) -> Tuple[str, Optional[Offered]]:
  """``("dead", None)``, ``("never_queued"|"not_inbound", None)`` or
  ``("offered", offered)`` for one contact record; ``queue_key`` is
  ``Name`` or ``ARN``."""
  rec = load_json_object(raw)
  if (
    rec is None
    or not _text(rec.get('ContactId'))
    or rec.get('Channel') not in CONNECT_CHANNELS
    or rec.get('InitiationMethod') not in CONNECT_OFFERED | CONNECT_OWN_LEGS
  ):
    return 'dead', None
  if iso_ms(rec.get('InitiationTimestamp')) is None:
    return 'dead', None
  for name in ('DisconnectTimestamp', 'LastUpdateTimestamp'):
    if rec.get(name) is not None and iso_ms(rec[name]) is None:
      return 'dead', None
  if not valid_optional_text(rec.get('DisconnectReason')) or not valid_optional_text(
    rec.get('NextContactId')
  ):
    return 'dead', None
  queue, agent, transfer = rec.get('Queue'), rec.get('Agent'), rec.get('TransferredToEndpoint')
  if any(v is not None and type(v) is not dict for v in (queue, agent, transfer)):
    return 'dead', None
  connected = None if agent is None else agent.get('ConnectedToAgentTimestamp')
  if connected is not None and iso_ms(connected) is None:
    return 'dead', None
  acw_end = None if agent is None else agent.get('AfterContactWorkEndTimestamp')
  if acw_end is not None and iso_ms(acw_end) is None:
    return 'dead', None
  if queue is None:
    return 'never_queued', None
  other_key = 'ARN' if queue_key == 'Name' else 'Name'
  enq, deq, dur = (
    iso_ms(queue.get('EnqueueTimestamp')),
    iso_ms(queue.get('DequeueTimestamp')),
    queue.get('Duration'),
  )
  if (
    not _text(queue.get(queue_key))
    or not valid_optional_text(queue.get(other_key))
    or enq is None
    or deq is None
    or deq < enq
    or type(dur) not in (int, float)
    or not 0 <= dur <= MAX_WAIT_S
  ):
    return 'dead', None
  method = rec['InitiationMethod']
  if method in CONNECT_OWN_LEGS or (method == 'API' and rec['Channel'] == 'VOICE'):
    return 'not_inbound', None
  disconnected = (
    None if rec.get('DisconnectTimestamp') is None else iso_ms(rec['DisconnectTimestamp'])
  )
  reason = rec.get('DisconnectReason')
  if connected is not None:
    outcome = 'ANSWERED'
  elif transfer is not None or rec.get('NextContactId') is not None:
    outcome = 'FLOW_OUT'
  elif reason is None:
    outcome = 'UNKNOWN'
  elif reason != 'CUSTOMER_DISCONNECT':
    outcome = 'FLOW_OUT'
  elif disconnected is not None and disconnected - deq >= 1000:
    outcome = 'FLOW_OUT'
  else:
    outcome = 'ABANDONED'
  ends = [t for t in (disconnected, None if acw_end is None else iso_ms(acw_end)) if t is not None]
  updated = None if rec.get('LastUpdateTimestamp') is None else iso_ms(rec['LastUpdateTimestamp'])
  update = (
    update_after_ms is not None
    and updated is not None
    and bool(ends)
    and updated - max(ends) > update_after_ms
  )
  channel = 'callback' if method == 'CALLBACK' else CONNECT_CHANNELS[rec['Channel']]
  return 'offered', (rec['ContactId'], queue[queue_key], deq, outcome, dur, channel, update)


_QUEUE_ARN_TAIL = re.compile(r'.*/queue/([^/]+)')
_CONTACT_EVENT_TYPES = ('QUEUED', 'CONNECTED_TO_AGENT', 'DISCONNECTED', 'COMPLETED')


def _camel_or_pascal(obj: dict, camel: str) -> object:
  if camel in obj:
    return obj[camel]
  return obj.get(camel[0].upper() + camel[1:])


def _event_time(value: object) -> Tuple[bool, Optional[int]]:
  """(valid, ms or None) of an optional contact-event time."""
  if value is None or (type(value) is str and value.startswith('1970-01-01T00:00:00')):
    return True, None
  ms = iso_ms(value)
  return ms is not None, ms


def parse_connect_event(raw: bytes, queue_key: str = 'name') -> Tuple[str, Optional[tuple]]:
  """``("dead", None)``, ``(reason, None)`` for a valid event passed over
  (``other_event_types``, ``never_queued``, ``not_inbound``),
  ``("entered", (ts, contact, queue, channel))`` for a QUEUED event,
  ``("answered_before", (ts, contact, queue, channel))`` for the
  DISCONNECTED or COMPLETED of a contact an agent took (it left at ``ts``,
  counted by its CONNECTED_TO_AGENT) or ``("offered", offered)``;
  ``queue_key`` is ``name`` (the queue id of the ARN) or ``arn``."""
  rec = load_json_object(raw)
  if rec is None:
    return 'dead', None
  if 'detail-type' in rec:
    if rec['detail-type'] != 'Amazon Connect Contact Event' or type(rec.get('detail')) is not dict:
      return 'dead', None
    rec = rec['detail']
  event_type = _camel_or_pascal(rec, 'eventType')
  if not _text(event_type):
    return 'dead', None
  if event_type not in _CONTACT_EVENT_TYPES:
    return 'other_event_types', None
  contact_id = _camel_or_pascal(rec, 'contactId')
  method = _camel_or_pascal(rec, 'initiationMethod')
  channel = _camel_or_pascal(rec, 'channel')
  queue = _camel_or_pascal(rec, 'queueInfo')
  agent = _camel_or_pascal(rec, 'agentInfo')
  if (
    not _text(contact_id)
    or method not in CONNECT_OFFERED | CONNECT_OWN_LEGS
    or not _text(channel)
    or channel.upper() not in CONNECT_CHANNELS
    or any(v is not None and type(v) is not dict for v in (queue, agent))
  ):
    return 'dead', None
  ok_connected, connected = _event_time(
    None if agent is None else _camel_or_pascal(agent, 'connectedToAgentTimestamp')
  )
  ok_disconnected, disconnected = _event_time(_camel_or_pascal(rec, 'disconnectTimestamp'))
  reason = _camel_or_pascal(rec, 'disconnectReason')
  if not ok_connected or not ok_disconnected or not valid_optional_text(reason):
    return 'dead', None
  if queue is None:
    return 'never_queued', None
  arn = _camel_or_pascal(queue, 'queueArn')
  tail = _QUEUE_ARN_TAIL.fullmatch(arn) if _text(arn) else None
  enqueued = iso_ms(_camel_or_pascal(queue, 'enqueueTimestamp'))
  if tail is None or enqueued is None:
    return 'dead', None
  if method in CONNECT_OWN_LEGS or (method == 'API' and channel.upper() == 'VOICE'):
    return 'not_inbound', None
  queue_id = arn if queue_key == 'arn' else tail.group(1)
  channel_name = 'callback' if method == 'CALLBACK' else CONNECT_CHANNELS[channel.upper()]
  if event_type == 'QUEUED':
    return 'entered', (enqueued, contact_id, queue_id, channel_name)
  if event_type == 'CONNECTED_TO_AGENT':
    if connected is None:
      return 'dead', None
    left, outcome = connected, 'ANSWERED'
  elif connected is not None:
    if connected < enqueued or (connected - enqueued) / 1000 > MAX_WAIT_S:
      return 'dead', None
    return 'answered_before', (connected, contact_id, queue_id, channel_name)
  elif disconnected is None:
    return 'dead', None
  else:
    left = disconnected
    reason = reason if reason is None or reason.strip() else None
    outcome = (
      'UNKNOWN'
      if reason is None
      else 'ABANDONED'
      if reason == 'CUSTOMER_DISCONNECT'
      else 'FLOW_OUT'
    )
  if left < enqueued or (left - enqueued) / 1000 > MAX_WAIT_S:
    return 'dead', None
  return 'offered', (
    contact_id,
    queue_id,
    left,
    outcome,
    (left - enqueued) / 1000,
    channel_name,
    False,
  )


def connect_event_transitions(path: str, queue_key: str = 'name') -> List[dict]:
  """The queue transitions of a contact-event file, in arrival order: a
  QUEUED event enters its queue at its enqueue time, every event that
  tells a queued contact left leaves it at that time (re-deliveries
  included), as dicts with ``contact_id``, ``queue_id``, ``channel``,
  ``kind`` (ENTERED, LEFT) and ``timestamp``."""
  transitions = []
  with open(path, 'rb') as f:
    for raw in f:
      kind, event = parse_connect_event(raw.rstrip(b'\n'), queue_key)
      if kind == 'offered':
        contact, queue, ts, channel = event[0], event[1], event[2], event[5]
      elif kind in ('entered', 'answered_before'):
        ts, contact, queue, channel = event
      else:
        continue
      transitions.append(
        {
          'contact_id': contact,
          'queue_id': queue,
          'channel': channel,
          'kind': 'ENTERED' if kind == 'entered' else 'LEFT',
          'timestamp': ts,
        }
      )
  return transitions


@dataclass
class VendorReference:
  """What the pipeline must produce for one vendor file.

  ``rows``: (queue_id, channel, window_start_ms) -> dict of ROW_FIELDS and
  ``window_end_ms``; ``late``: call ids routed to the late output, of which
  ``record_updates`` are Connect updates. Counts: ``offered`` (distinct
  offered calls of the counted channels, = rows' total + late),
  ``dead_letter_count``, ``duplicates``, ``passed_over`` (never queued,
  other topics or event types, contact events after the answer),
  ``not_inbound`` (Connect), ``entered`` (contact events: QUEUED events,
  re-deliveries included), ``other_channels``, and for
  Genesys ``paired``, ``ends_without_start``, ``starts_without_end``,
  ``negative_waits``.
  """

  rows: Dict[Tuple[str, str, int], dict] = field(default_factory=dict)
  late: Set[str] = field(default_factory=set)
  record_updates: Set[str] = field(default_factory=set)
  offered: int = 0
  entered: int = 0
  not_inbound: int = 0
  other_channels: int = 0
  dead_letter_count: int = 0
  duplicates: int = 0
  passed_over: int = 0
  paired: int = 0
  ends_without_start: int = 0
  starts_without_end: int = 0
  negative_waits: int = 0
  late_pane_events: int = 0
  lines: int = 0
  polls: int = 0
  final_watermark_ms: Optional[int] = None


class _Counter:
  """Admits offered calls through the late gate and sums the rows."""

  def __init__(
    self,
    res: VendorReference,
    gate: KeyedLateGate,
    short_s: float,
    sl_s: float,
    channels: Optional[Set[str]] = None,
  ) -> None:
    self.res, self.gate, self.short_s, self.sl_s = res, gate, short_s, sl_s
    self.channels = channels

  def add(self, call: Offered) -> None:
    call_id, queue, ts, outcome, wait, channel, _ = call
    if self.channels is not None and channel not in self.channels:
      self.res.other_channels += 1
      return
    self.res.offered += 1
    start = self.gate.admit(f'{channel}|{queue}', ts)
    if start is None:
      self.res.late.add(call_id)
      return
    row = self.res.rows.get((queue, channel, start))
    if row is None:
      row = self.res.rows[(queue, channel, start)] = dict.fromkeys(ROW_FIELDS, 0)
      row['window_end_ms'] = start + self.gate.window_ms
    row['total_calls'] += 1
    known = wait is not None
    if not known:
      row['wait_unknown_calls'] += 1
    else:
      row['total_wait_seconds'] += wait
    if outcome == 'ABANDONED':
      row['abandoned_calls'] += 1
      if known and wait < self.short_s:
        row['short_abandoned_calls'] += 1
      if known and wait <= self.sl_s:
        row['abandoned_within_sl'] += 1
    elif outcome == 'ANSWERED':
      row['answered_calls'] += 1
      if not known:
        row['answered_wait_unknown_calls'] += 1
      else:
        row['answered_wait_seconds'] += wait
        if wait <= self.sl_s:
          row['answered_within_sl'] += 1
    elif outcome == 'FLOW_OUT':
      row['flow_out_calls'] += 1


def _ceil(ms: int) -> int:
  return -(-ms // TICK_MS) * TICK_MS


def reference_vendor_metrics(
  path: str,
  fmt: str,
  window_size_s: int = 300,
  allowed_lateness_s: int = 60,
  max_out_of_orderness_s: int = 10,
  poll_size: int = 500,
  short_abandon_threshold_s: float = 0,
  service_level_s: float = 20,
  max_queue_wait_s: int = 3600,
  connect_queue_key: str = 'name',
  callback_max_queue_wait_s: int = 86400,
  dedupe_ttl_s: int = 600,
  trigger_kind: Optional[str] = None,
  channels: Optional[Set[str]] = None,
) -> VendorReference:
  """The final rows the pipeline must produce for the vendor file at
  ``path`` (format ``fmt``), delivered in polls of ``poll_size`` lines;
  ``channels`` (None: all) are the channels counted."""
  if fmt not in FORMATS:
    raise ValueError(f'unknown format {fmt!r}')
  ooo_ms = max_out_of_orderness_s * 1000
  max_wait_ms = max_queue_wait_s * 1000
  callback_max_wait_ms = callback_max_queue_wait_s * 1000
  gate = KeyedLateGate(window_size_s * 1000, allowed_lateness_s * 1000)
  res = VendorReference()
  counter = _Counter(res, gate, short_abandon_threshold_s, service_level_s, channels)
  queue_key = 'ARN' if connect_queue_key == 'arn' else 'Name'
  seen: Set[object] = set()
  starts: Dict[str, Tuple[int, str]] = {}  # call_id -> (ts, channel)
  ends: Dict[str, tuple] = {}  # call_id -> (queue, ts, outcome, channel)

  def deadline(start: Tuple[int, str]) -> int:
    ts, channel = start
    return ts + (callback_max_wait_ms if channel == 'callback' else max_wait_ms)

  max_ts: Optional[int] = None
  n = polls = 0

  def pair(call_id: str, end: tuple, start_ms: Optional[int]) -> Offered:
    queue, ts, outcome, channel = end
    wait = None
    if start_ms is None:
      res.ends_without_start += 1
    else:
      res.paired += 1
      if ts >= start_ms:
        wait = (ts - start_ms) / 1000
      else:
        res.negative_waits += 1
    return call_id, queue, ts, outcome, wait, channel, False

  def timers(watermark: float) -> List[Offered]:
    released = [
      pair(c, ends.pop(c), None)
      for c in sorted(c for c, e in ends.items() if _ceil(e[1]) <= watermark)
    ]
    for call_id in [c for c, s in starts.items() if _ceil(deadline(s)) <= watermark]:
      del starts[call_id]
      res.starts_without_end += 1
    return released

  with open(path, 'rb') as f:
    for poll in iter_polls(f, poll_size):
      polls += 1
      watermark = watermark_before_poll(max_ts, ooo_ms)
      gate.start_poll(watermark)
      released = timers(watermark)
      if released:
        for call in released:
          counter.add(call)
        gate.start_poll(watermark)  # they count for the clocks from here
      for raw in poll:
        n += 1
        if raw[-1:] == b'\n':
          raw = raw[:-1]
        if fmt == CONNECT_EVENTS:
          kind, event = parse_connect_event(raw, connect_queue_key)
          if kind == 'dead':
            res.dead_letter_count += 1
            continue
          if kind == 'not_inbound':
            res.not_inbound += 1
            continue
          if kind not in ('entered', 'answered_before', 'offered'):
            res.passed_over += 1
            continue
          ts = event[2] if kind == 'offered' else event[0]
          max_ts = ts if max_ts is None or ts > max_ts else max_ts
          if kind == 'entered':
            res.entered += 1
            continue
          if kind == 'answered_before':
            continue
          if event[0] in seen:
            res.duplicates += 1
            continue
          seen.add(event[0])
          counter.add(event)
          continue
        if fmt == CONNECT:
          kind, offered = parse_connect(raw, queue_key, dedupe_ttl_s * 1000)
          if kind == 'dead':
            res.dead_letter_count += 1
            continue
          if kind == 'never_queued':
            res.passed_over += 1
            continue
          if kind == 'not_inbound':
            res.not_inbound += 1
            continue
          ts = offered[2]
          max_ts = ts if max_ts is None or ts > max_ts else max_ts
          if offered[6]:
            res.record_updates.add(offered[0])
            continue
          if offered[0] in seen:
            res.duplicates += 1
            continue
          seen.add(offered[0])
          counter.add(offered)
          continue
        kind, event = parse_genesys(raw, trigger_kind)
        if kind == 'dead':
          res.dead_letter_count += 1
          continue
        if kind == 'other':
          res.passed_over += 1
          continue
        call_id, queue, ts, outcome, channel = event
        max_ts = ts if max_ts is None or ts > max_ts else max_ts
        if (kind, call_id) in seen:
          res.duplicates += 1
          continue
        seen.add((kind, call_id))
        if kind == 'start':
          if call_id in ends:
            counter.add(pair(call_id, ends.pop(call_id), ts))
          else:
            starts[call_id] = (ts, channel)
        elif call_id in starts:
          counter.add(pair(call_id, (queue, ts, outcome, channel), starts.pop(call_id)[0]))
        else:
          ends[call_id] = (queue, ts, outcome, channel)
      # Ends that arrived behind their release point count in this
      # poll (their timer fires before the next one).
      for call in [
        pair(c, ends.pop(c), None)
        for c in sorted(c for c, e in ends.items() if _ceil(e[1]) <= watermark)
      ]:
        counter.add(call)
  # After the last poll the watermark advances once more, to the last
  # event time, then to +inf (the end of the input).
  for watermark in (watermark_before_poll(max_ts, ooo_ms), math.inf):
    gate.start_poll(watermark)
    for call in timers(watermark):
      counter.add(call)
  record_delivery(res, gate, n, polls, max_ts, ooo_ms)
  return res


def _ratio(num: int, den: int) -> Decimal:
  if not den:
    return Decimal('0.0000')
  return (Decimal(num) / Decimal(den)).quantize(_FOUR, rounding=ROUND_HALF_UP)


ABANDON_RATE = {
  'abandoned_over_offered': lambda r: (r['abandoned_calls'], r['total_calls']),
  'exclude_short_abandons': lambda r: (
    r['abandoned_calls'] - r['short_abandoned_calls'],
    r['total_calls'] - r['short_abandoned_calls'],
  ),
}
SERVICE_LEVEL = {
  'answered_within_over_offered': lambda r: (r['answered_within_sl'], r['total_calls']),
  'abandons_ignored': lambda r: (
    r['answered_within_sl'],
    r['total_calls'] - r['abandoned_within_sl'],
  ),
  'abandons_negative': lambda r: (r['answered_within_sl'], r['total_calls']),
  'abandons_positive': lambda r: (
    r['answered_within_sl'] + r['abandoned_within_sl'],
    r['total_calls'],
  ),
  'exclude_short_abandons': lambda r: (
    r['answered_within_sl'],
    r['total_calls'] - r['short_abandoned_calls'],
  ),
}


def rate(row: dict, definitions: Dict[str, object], name: str) -> Decimal:
  """The rate of ``row`` by the definition ``name`` of ``definitions``
  (``ABANDON_RATE`` or ``SERVICE_LEVEL``), 4 places half-up, 0 for an
  empty denominator."""
  return _ratio(*definitions[name](row))


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI: the reference rows of a vendor file as JSON, or a summary."""
  p = argparse.ArgumentParser(
    description='Reference (bare-Python) call metrics for a vendor JSON-lines file.',
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  p.add_argument('path')
  p.add_argument('--format', required=True, choices=FORMATS, dest='fmt')
  add_delivery_arguments(p, '--window-size-s', 300)
  p.add_argument('--short-abandon-threshold-s', type=float, default=0)
  p.add_argument('--service-level-s', type=float, default=20)
  p.add_argument('--max-queue-wait-s', type=int, default=3600)
  p.add_argument('--connect-queue-key', choices=('name', 'arn'), default='name')
  p.add_argument('--callback-max-queue-wait-s', type=int, default=86400)
  p.add_argument('--dedupe-ttl-s', type=int, default=600)
  p.add_argument('--genesys-trigger-kind', choices=('start', 'end'), default=None)
  p.add_argument('--channels', default=None, help='comma-separated; default: all')
  p.add_argument('--json', action='store_true')
  args = p.parse_args(argv)
  res, timing = Timing.run(
    lambda: reference_vendor_metrics(
      args.path,
      args.fmt,
      args.window_size_s,
      args.allowed_lateness_s,
      args.max_out_of_orderness_s,
      args.poll_size,
      args.short_abandon_threshold_s,
      args.service_level_s,
      args.max_queue_wait_s,
      args.connect_queue_key,
      args.callback_max_queue_wait_s,
      args.dedupe_ttl_s,
      args.genesys_trigger_kind,
      None if args.channels is None else set(args.channels.split(',')),
    )
  )
  counts = {
    k: getattr(res, k)
    for k in (
      'lines',
      'polls',
      'offered',
      'dead_letter_count',
      'duplicates',
      'passed_over',
      'not_inbound',
      'other_channels',
      'paired',
      'ends_without_start',
      'starts_without_end',
      'negative_waits',
      'late_pane_events',
    )
  }
  if args.json:
    rows = [
      {
        'queue_id': q,
        'channel': c,
        'window_start_ms': s,
        **r,
        **{f'abandon_rate[{d}]': str(rate(r, ABANDON_RATE, d)) for d in ABANDON_RATE},
        **{f'service_level[{d}]': str(rate(r, SERVICE_LEVEL, d)) for d in SERVICE_LEVEL},
      }
      for (q, c, s), r in sorted(res.rows.items())
    ]
    json.dump(
      {
        **counts,
        'late': sorted(res.late),
        'record_updates': sorted(res.record_updates),
        'rows': rows,
        **timing.json_fields(res.lines),
      },
      sys.stdout,
      indent=1,
    )
    print()
    return 0
  for key, value in counts.items():
    print(f'{key:<20} {value}')
  print(f'{"rows":<20} {len(res.rows)}; late {len(res.late)}')
  total = {k: sum(r[k] for r in res.rows.values()) for k in ROW_FIELDS}
  for d in ABANDON_RATE:
    print(f'abandon rate  {d:<30} {rate(total, ABANDON_RATE, d)}')
  for d in SERVICE_LEVEL:
    print(f'service level {d:<30} {rate(total, SERVICE_LEVEL, d)}')
  for line in timing.summary_lines(res.lines, 21):
    print(line)
  return 0


if __name__ == '__main__':
  sys.exit(main())
