#!/usr/bin/env python3
"""Seeded generators of vendor contact-center streams (JSON lines): Genesys
Cloud conversation detail notifications and Amazon Connect contact trace
records, the two vendor formats of ``--call_event_format``.

Both render the same simulated calls (the diurnal Poisson arrivals, queue
profiles and wait model of ``testing/datagen/calls.py``): a call enters a queue,
waits, is answered, abandoned or (Genesys only) flows out, talks, ends.

``--format genesys_cloud``: per queued call an ``acd.start`` at queue entry
and an ``acd.end`` when it leaves the queue (``acdOutcome`` ANSWERED,
ABANDON, FLOW_OUT, rarely UNKNOWN), plus the ``customer.end`` notification
of the same conversation; a share of conversations never queue (their IVR
flow ends them: ``flow.end`` and ``customer.end`` only). Most lines are
Amazon EventBridge events (``detail`` = the notification), a share are bare
notifications. Each notification arrives ``U(0, jitter)`` after its
``eventTime``, independently, so a short wait can deliver the end before the
start; a share of calls lose their ``acd.start`` (never delivered), another
share get it so late that the end is counted with its wait unknown first.

``--format amazon_connect``: one CTR per contact, delivered when the
contact record is complete (after talk and after-contact work) plus
``U(0, jitter)``, so the CTR of an answered call arrives minutes after its
``Queue.DequeueTimestamp``: replay these with an ``--allowed_lateness`` above
the handle times (the tests use 3600). A share of contacts never queued
(``Queue`` null), a share is sent again later as an updated record (same
``ContactId``, newer ``LastUpdateTimestamp``).

``--format amazon_connect_events``: the Amazon Connect contact events
(Amazon EventBridge, "Amazon Connect Contact Event") of the same contacts,
each arriving ``U(0, jitter)`` after its event time, in no order: INITIATED,
QUEUED at the enqueue time, then CONNECTED_TO_AGENT at the answer and
DISCONNECTED / COMPLETED at the end of the call, or DISCONNECTED and
COMPLETED when the contact left the queue unanswered (``disconnectReason``
CUSTOMER_DISCONNECT for a caller who hung up, CONTACT_FLOW_DISCONNECT for a
flow-out, none for an unknown outcome); a share of flow-outs are queue
transfers (the leg ends in the flow, a QUEUE_TRANSFER contact of its own
is queued in another queue and answered); contacts that never queued have
INITIATED and DISCONNECTED without ``queueInfo``; a share of lines
(``--bare-share``) is the bare ``detail``; ``--callback-share`` and
``--outbound-share`` as for contact records (an outbound API call through
the queue, not offered).

Both: a share of calls is delayed past window end + allowed lateness or
into the late-pane interval (as in ``testing/datagen/calls.py``), a share of
lines is re-delivered byte for byte 1-30 lines later, and a cycled list of
malformed lines (one of each kind by default) is inserted.

The committed samples were made with::

    python -m testing.datagen.vendor_events --format genesys_cloud \\
        --out samples/genesys_cloud.jsonl --calls 500 --seed 14 --events-per-second 0.5 \\
        --body-share 0.1 --callback-share 0.05
    python -m testing.datagen.vendor_events --format amazon_connect \\
        --out samples/amazon_connect.jsonl --calls 800 --seed 15 --events-per-second 0.8 \\
        --callback-share 0.15 --outbound-share 0.05
    python -m testing.datagen.vendor_events --format amazon_connect_events \\
        --out samples/amazon_connect_events.jsonl --calls 300 --seed 16 \\
        --events-per-second 0.5 --callback-share 0.15 --outbound-share 0.05 \\
        --unknown-outcome-share 0.01

Same arguments, same bytes. Stdlib only, and nothing from the pipeline code.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import math
import random
import sys
import uuid
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from testing.datagen.calls import (
  DEFAULT_START_MS,
  MAX_LINE_BYTES,
  SHAPE_MAX,
  SHAPE_MEAN,
  TALK_CAP_S,
  WAIT_CAP_S,
  diurnal_shape,
  hour_of_day,
  queue_profiles,
  window_end_ms,
)
from testing.datagen.common import (
  ArrivalStream,
  Coverage,
  add_malformed_arguments,
  add_start_argument,
  check_shares,
  cumulative_weights,
  generator_arg_parser,
  json_line,
  parse_share,
  pick_index,
  plan_malformed,
  reset_counts,
  run_generator_cli,
  write_to,
)

GENESYS = 'genesys_cloud'
CONNECT = 'amazon_connect'
CONNECT_EVENTS = 'amazon_connect_events'
# The formats of contact records and notifications, which
# tests/test_vendor_reference.py checks against the reference one by one;
# contact events have their own checks (tests/test_connect_contact_events.py:
# a COMPLETED repeats each unanswered contact's DISCONNECTED, so the
# reference's duplicates are not the re-deliveries alone).
FORMATS = (GENESYS, CONNECT)
ALL_FORMATS = (GENESYS, CONNECT, CONNECT_EVENTS)
DEFAULT_CALLS = 20_000

ACW_MAX_S = 120
IVR_MAX_S = 40
# How late a delayed acd.start arrives after its acd.end (seconds).
_DELAYED_START_S = (30.0, 90.0)
# How long after the first record an updated CTR comes (seconds).
_UPDATE_DELAY_S = (60.0, 600.0)

GENESYS_MALFORMED_KINDS: Tuple[str, ...] = (
  'not_json',
  'truncated_json',
  'json_array',
  'detail_not_object',
  'missing_topic_name',
  'unknown_topic',
  'topic_conversation_mismatch',
  'missing_event_body',
  'missing_event_time',
  'event_time_as_string',
  'event_time_1970',
  'missing_session_id',
  'empty_queue_id',
  'unknown_acd_outcome',
  'unknown_media_type',
  'contact_record_instead',
  'empty_line',
  'invalid_utf8',
)
CONNECT_MALFORMED_KINDS: Tuple[str, ...] = (
  'not_json',
  'truncated_json',
  'json_array',
  'missing_contact_id',
  'queue_not_object',
  'missing_dequeue_timestamp',
  'dequeue_not_iso',
  'dequeue_without_offset',
  'dequeue_as_epoch_number',
  'dequeue_before_enqueue',
  'dequeue_1970',
  'negative_duration',
  'duration_as_string',
  'agent_not_object',
  'connected_timestamp_garbage',
  'empty_queue_name',
  'unknown_channel',
  'unknown_initiation_method',
  'contact_event_instead',
  'empty_line',
  'invalid_utf8',
)
CONNECT_EVENTS_MALFORMED_KINDS: Tuple[str, ...] = (
  'not_json',
  'truncated_json',
  'json_array',
  'detail_not_object',
  'other_detail_type',
  'missing_contact_id',
  'missing_event_type',
  'queue_info_not_object',
  'missing_enqueue_timestamp',
  'enqueue_without_offset',
  'enqueue_as_epoch_number',
  'enqueue_1970',
  'queue_arn_without_queue',
  'unknown_channel',
  'unknown_initiation_method',
  'contact_record_instead',
  'empty_line',
  'invalid_utf8',
)
OVERSIZED_KIND = 'oversized'
MALFORMED_KINDS = {
  GENESYS: GENESYS_MALFORMED_KINDS,
  CONNECT: CONNECT_MALFORMED_KINDS,
  CONNECT_EVENTS: CONNECT_EVENTS_MALFORMED_KINDS,
}


def iso_utc(ms: int) -> str:
  """``ms`` as ISO-8601 UTC with a ``Z``, milliseconds only when not 0."""
  moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
  text = moment.strftime('%Y-%m-%dT%H:%M:%S')
  return f'{text}.{ms % 1000:03d}Z' if ms % 1000 else f'{text}Z'


def _uuid(rng: random.Random) -> str:
  return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# --------------------------------------------------------------------------
# The simulated calls
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SimCall:
  """One simulated contact. ``queued``: it entered queue ``queue`` at
  ``enqueue_ms`` and left it ``wait_ms`` later with ``outcome``
  (ANSWERED, ABANDONED, FLOW_OUT or UNKNOWN); otherwise only its IVR ran
  (ending at ``enqueue_ms``)."""

  index: int
  queued: bool
  queue: int
  enqueue_ms: int
  wait_ms: int
  outcome: str
  talk_ms: int
  ivr_ms: int
  acw_ms: int
  media: str


def simulate_calls(
  n: int,
  seed: int,
  start_ms: int,
  events_per_second: float,
  queues: int,
  never_queued_share: float,
  flow_out_share: float,
  unknown_outcome_share: float,
) -> Iterator[SimCall]:
  """``n`` contacts in enqueue-time order, drawn from ``{seed}:calls``."""
  rng = random.Random(f'{seed}:calls')
  profiles = queue_profiles(queues)
  cum_weights = cumulative_weights(p.weight for p in profiles)
  queue_coverage = Coverage(n, queues)
  t_ms = float(start_ms)
  for i in range(n):
    shape = diurnal_shape(hour_of_day(t_ms))
    t_ms += rng.expovariate(events_per_second * shape / SHAPE_MEAN) * 1000.0
    load = shape / SHAPE_MAX
    queue, _ = queue_coverage.take(i, pick_index(rng, cum_weights))
    prof = profiles[queue]
    congestion = 0.6 + 0.8 * load
    ivr_ms = rng.randint(5, IVR_MAX_S) * 1000
    media = rng.choices(('VOICE', 'CHAT', 'MESSAGE'), (0.85, 0.1, 0.05))[0]
    if rng.random() < never_queued_share:
      yield SimCall(i, False, queue, int(t_ms), 0, '', 0, ivr_ms, 0, media)
      continue
    abandoned = rng.random() < prof.abandon_propensity * (0.75 + 0.5 * load)
    if abandoned:
      outcome = 'ABANDONED'
      if rng.random() < 0.25:
        wait = rng.uniform(0, 4.5)  # short abandons, often misdials
      else:
        wait = rng.lognormvariate(math.log(45.0 * prof.wait_scale * congestion), 0.8)
    else:
      outcome = 'ANSWERED'
      draw = rng.random()
      if draw < flow_out_share:
        outcome = 'FLOW_OUT'
      elif draw < flow_out_share + unknown_outcome_share:
        outcome = 'UNKNOWN'
      wait = rng.lognormvariate(math.log(12.0 * prof.wait_scale * congestion), 0.9)
    wait_ms = int(min(wait, WAIT_CAP_S) * 1000)
    talk_ms = (
      0
      if outcome != 'ANSWERED'
      else int(min(rng.lognormvariate(math.log(240.0), 0.6), TALK_CAP_S) * 1000)
    )
    acw_ms = rng.randint(0, ACW_MAX_S) * 1000 if outcome == 'ANSWERED' else 0
    yield SimCall(i, True, queue, int(t_ms), wait_ms, outcome, talk_ms, ivr_ms, acw_ms, media)


# --------------------------------------------------------------------------
# Genesys Cloud rendering
# --------------------------------------------------------------------------

_GENESYS_OUTCOMES = {
  'ANSWERED': 'ANSWERED',
  'ABANDONED': 'ABANDON',
  'FLOW_OUT': 'FLOW_OUT',
  'UNKNOWN': 'UNKNOWN',
}
_DISCONNECT = {
  'ANSWERED': 'TRANSFER',
  'ABANDONED': 'ENDPOINT',
  'FLOW_OUT': 'TRANSFER',
  'UNKNOWN': 'SYSTEM',
}
EVENTBRIDGE_SOURCE = (
  'aws.partner/genesys.com/cloud/8f0a4f7e-2f1c-4a8e-9d57-0c3b7c9b1a11/cc-analytics'
)


def genesys_topic(conversation_id: str, suffix: str) -> str:
  return f'v2.detail.events.conversation.{conversation_id}.{suffix}'


# How a Genesys record is delivered: an EventBridge event, the bare
# notification, or the bare event body (Process Automation triggers and
# their webhooks).
EVENTBRIDGE, NOTIFICATION, BODY = 'eventbridge', 'notification', 'body'


def _genesys_record(rng: random.Random, form: str, topic: str, body: dict) -> dict:
  if form == BODY:
    return body
  notification = {
    'topicName': topic,
    'version': '2',
    'eventBody': body,
    'metadata': {'CorrelationId': _uuid(rng)},
  }
  if form == NOTIFICATION:
    return notification
  return {
    'version': '0',
    'id': _uuid(rng),
    'detail-type': topic,
    'source': EVENTBRIDGE_SOURCE,
    'account': '123456789012',
    'time': iso_utc(body['eventTime'] - body['eventTime'] % 1000),
    'region': 'us-east-1',
    'resources': [],
    'detail': notification,
  }


def _notification(record: dict) -> dict:
  return record['detail'] if 'detail' in record else record


def genesys_malformed_line(kind: str, record: dict) -> bytes:
  """One malformed line of ``kind`` shaped like ``record`` (an acd.end
  record of either form); each kind breaks exactly one thing."""
  rec = copy.deepcopy(record)
  note = _notification(rec)
  body = note['eventBody']
  if kind == 'not_json':
    return b'acd.end conversation=' + body['conversationId'].encode()
  if kind == 'truncated_json':
    full = json_line(rec)
    return full[: len(full) // 2]
  if kind == 'json_array':
    return json_line([note['topicName'], body['eventTime']])
  if kind == 'detail_not_object':
    return json_line(
      {'version': '0', 'detail-type': note['topicName'], 'detail': json_line(note).decode()}
    )
  if kind == 'missing_topic_name':
    del note['topicName']
  elif kind == 'unknown_topic':
    note['topicName'] = 'conversation.acd.end'
  elif kind == 'topic_conversation_mismatch':
    note['topicName'] = genesys_topic(str(uuid.UUID(int=1)), 'acd.end')
  elif kind == 'missing_event_body':
    del note['eventBody']
  elif kind == 'missing_event_time':
    del body['eventTime']
  elif kind == 'event_time_as_string':
    body['eventTime'] = str(body['eventTime'])
  elif kind == 'event_time_1970':
    body['eventTime'] //= 1000
  elif kind == 'missing_session_id':
    del body['sessionId']
  elif kind == 'empty_queue_id':
    body['queueId'] = ''
  elif kind == 'unknown_acd_outcome':
    body['acdOutcome'] = 'OutdatedSdkVersion'
  elif kind == 'unknown_media_type':
    body['mediaType'] = 'FAX'
  elif kind == 'contact_record_instead':
    # A contact record on the Genesys topic: another stream, not a broken
    # notification.
    return json_line(
      {
        'AWSContactTraceRecordFormatVersion': '2017-03-10',
        'ContactId': body['conversationId'],
        'Channel': 'VOICE',
        'InitiationMethod': 'INBOUND',
      }
    )
  elif kind == 'empty_line':
    return b''
  elif kind == 'invalid_utf8':
    return json_line(rec).replace(b'"queueId"', b'"ani":"Ren\xe9e \xff","queueId"', 1)
  elif kind == OVERSIZED_KIND:
    body['subject'] = 'x' * (MAX_LINE_BYTES + 16)
  else:
    raise ValueError(f'unknown malformed kind {kind!r}')
  return json_line(rec)


def _genesys_records(
  call: SimCall, rng: random.Random, queue_ids: List[str], form: str
) -> Dict[str, Tuple[int, dict]]:
  """The notifications of one call, delivered in ``form``: suffix ->
  (eventTime, record)."""
  conversation = _uuid(rng)
  customer = _uuid(rng)
  session = _uuid(rng)
  base = {
    'conversationId': conversation,
    'participantId': customer,
    'sessionId': session,
    'mediaType': call.media,
    'direction': 'INBOUND',
    'ani': f'tel:+1555{rng.randint(1000000, 9999999)}',
  }
  out: Dict[str, Tuple[int, dict]] = {}

  def add(suffix: str, at_ms: int, extra: dict) -> None:
    body = {'eventTime': at_ms, **base, **extra}
    out[suffix] = (at_ms, _genesys_record(rng, form, genesys_topic(conversation, suffix), body))

  if not call.queued:  # the IVR flow ended the call
    add('flow.end', call.enqueue_ms, {'flowType': 'INBOUNDCALL', 'disconnectType': 'ENDPOINT'})
    add('customer.end', call.enqueue_ms + 500, {'disconnectType': 'ENDPOINT'})
    return out
  queue_id = queue_ids[call.queue]
  add('acd.start', call.enqueue_ms, {'queueId': queue_id})
  end_ms = call.enqueue_ms + call.wait_ms
  end_extra = {
    'queueId': queue_id,
    'acdOutcome': _GENESYS_OUTCOMES[call.outcome],
    'disconnectType': _DISCONNECT[call.outcome],
    'connectedDurationMs': call.wait_ms,
  }
  if call.outcome == 'ANSWERED':
    end_extra['answeredUserId'] = _uuid(rng)
  add('acd.end', end_ms, end_extra)
  add('customer.end', end_ms + call.talk_ms + 500, {'disconnectType': 'ENDPOINT'})
  return out


# --------------------------------------------------------------------------
# Amazon Connect rendering
# --------------------------------------------------------------------------

_CONNECT_QUEUE_NAMES = (
  'GeneralSupport',
  'Billing',
  'Sales',
  'TechSupport',
  'Retention',
  'Claims',
  'Priority',
  'Spanish',
)
CONNECT_INSTANCE = (
  'arn:aws:connect:us-east-1:123456789012:instance/2b7e6f1c-4d0a-4c7e-9a55-7f0e1d2c3b4a'
)


def connect_queue_name(index: int) -> str:
  base = _CONNECT_QUEUE_NAMES[index % len(_CONNECT_QUEUE_NAMES)]
  return (
    base if index < len(_CONNECT_QUEUE_NAMES) else f'{base}{index // len(_CONNECT_QUEUE_NAMES) + 1}'
  )


def connect_malformed_line(kind: str, record: dict) -> bytes:
  """One malformed line of ``kind`` shaped like ``record`` (a queued CTR);
  each kind breaks exactly one thing."""
  rec = copy.deepcopy(record)
  queue = rec['Queue']
  if kind == 'not_json':
    return b'CTR ContactId=' + rec['ContactId'].encode()
  if kind == 'truncated_json':
    full = json_line(rec)
    return full[: len(full) // 2]
  if kind == 'json_array':
    return json_line([rec['ContactId'], queue['Name']])
  if kind == 'missing_contact_id':
    del rec['ContactId']
  elif kind == 'queue_not_object':
    rec['Queue'] = queue['Name']
  elif kind == 'missing_dequeue_timestamp':
    del queue['DequeueTimestamp']
  elif kind == 'dequeue_not_iso':
    queue['DequeueTimestamp'] = 'yesterday afternoon'
  elif kind == 'dequeue_without_offset':
    queue['DequeueTimestamp'] = queue['DequeueTimestamp'].rstrip('Z')
  elif kind == 'dequeue_as_epoch_number':
    queue['DequeueTimestamp'] = 1793606400000
  elif kind == 'dequeue_before_enqueue':
    queue['EnqueueTimestamp'], queue['DequeueTimestamp'] = (
      queue['DequeueTimestamp'][:-3] + '59Z',
      queue['EnqueueTimestamp'][:-3] + '00Z',
    )
  elif kind == 'dequeue_1970':
    queue['DequeueTimestamp'] = '1970-01-01T00:00:05Z'
  elif kind == 'negative_duration':
    queue['Duration'] = -3
  elif kind == 'duration_as_string':
    queue['Duration'] = str(queue['Duration'])
  elif kind == 'agent_not_object':
    rec['Agent'] = 'agent-7'
  elif kind == 'connected_timestamp_garbage':
    rec['Agent'] = {'Username': 'agent-7', 'ConnectedToAgentTimestamp': '2026-13-45T99:00:00Z'}
  elif kind == 'empty_queue_name':
    queue['Name'] = ''
  elif kind == 'unknown_channel':
    rec['Channel'] = 'CARRIER_PIGEON'
  elif kind == 'unknown_initiation_method':
    rec['InitiationMethod'] = 'TELEPATHY'
  elif kind == 'contact_event_instead':
    return json_line(connect_contact_event(rec, 'QUEUED'))
  elif kind == 'empty_line':
    return b''
  elif kind == 'invalid_utf8':
    return json_line(rec).replace(b'"Channel"', b'"Notes":"Ren\xe9e \xff","Channel"', 1)
  elif kind == OVERSIZED_KIND:
    rec['Attributes'] = {'notes': 'x' * (MAX_LINE_BYTES + 16)}
  else:
    raise ValueError(f'unknown malformed kind {kind!r}')
  return json_line(rec)


def connect_contact_event(record: dict, event_type: str) -> dict:
  """The Amazon Connect contact event (EventBridge, "Amazon Connect Contact
  Event") of a contact record's contact, as Amazon's contact events data
  model shows one: a stream of its own, which the contact-record format
  must recognise rather than misreport."""
  queue = record.get('Queue') or {}
  return {
    'version': '0',
    'id': str(uuid.UUID(int=7)),
    'detail-type': 'Amazon Connect Contact Event',
    'source': 'aws.connect',
    'account': record.get('AWSAccountId', '123456789012'),
    'time': record.get('InitiationTimestamp'),
    'region': 'us-east-1',
    'resources': [record.get('InstanceARN', CONNECT_INSTANCE)],
    'detail': {
      'eventType': event_type,
      'contactId': record['ContactId'],
      'channel': record.get('Channel'),
      'instanceArn': record.get('InstanceARN', CONNECT_INSTANCE),
      'initiationMethod': record.get('InitiationMethod'),
      'queueInfo': {
        'queueArn': queue.get('ARN'),
        'enqueueTimestamp': queue.get('EnqueueTimestamp'),
      },
    },
  }


def _connect_record(
  call: SimCall,
  rng: random.Random,
  queue_arns: List[str],
  method: str = 'INBOUND',
  callback_id: Optional[str] = None,
  previous_id: Optional[str] = None,
) -> Tuple[int, dict]:
  """(LastUpdateTimestamp ms, CTR) of one contact, at second resolution as
  Amazon Connect writes them. ``method``: its InitiationMethod;
  ``callback_id``: the queued callback this inbound contact asked for (its
  flow then hangs up: ``NextContactId``, ``CONTACT_FLOW_DISCONNECT``);
  ``previous_id``: the contact a callback leg continues."""
  enqueue_s = call.enqueue_ms // 1000
  initiation_s = enqueue_s - call.ivr_ms // 1000
  contact_id = _uuid(rng)
  record = {
    'AWSAccountId': '123456789012',
    'AWSContactTraceRecordFormatVersion': '2017-03-10',
    'ContactId': contact_id,
    'InitialContactId': None,
    'PreviousContactId': previous_id,
    'NextContactId': None,
    'Channel': call.media if call.media != 'MESSAGE' else 'CHAT',
    'InitiationMethod': method,
    'InstanceARN': CONNECT_INSTANCE,
    'InitiationTimestamp': iso_utc(initiation_s * 1000),
    'ConnectedToSystemTimestamp': iso_utc(initiation_s * 1000),
    'CustomerEndpoint': {
      'Address': f'+1555{rng.randint(1000000, 9999999)}',
      'Type': 'TELEPHONE_NUMBER',
    },
    'SystemEndpoint': {'Address': '+18005550100', 'Type': 'TELEPHONE_NUMBER'},
    'Queue': None,
    'Agent': None,
    'Attributes': {},
    'Recording': None,
  }
  if not call.queued:
    disconnect_s = enqueue_s
    record['DisconnectReason'] = 'CONTACT_FLOW_DISCONNECT'
  else:
    dequeue_s = (call.enqueue_ms + call.wait_ms) // 1000
    queue_name = connect_queue_name(call.queue)
    record['Queue'] = {
      'ARN': queue_arns[call.queue],
      'Name': queue_name,
      'EnqueueTimestamp': iso_utc(enqueue_s * 1000),
      'DequeueTimestamp': iso_utc(dequeue_s * 1000),
      'Duration': dequeue_s - enqueue_s,
    }
    if call.outcome == 'ANSWERED':
      talk_s = call.talk_ms // 1000
      disconnect_s = dequeue_s + talk_s
      record['Agent'] = {
        'ARN': f'{CONNECT_INSTANCE}/agent/{_uuid(rng)}',
        'Username': f'agent-{call.queue}-{rng.randint(1, 12)}',
        'ConnectedToAgentTimestamp': iso_utc(dequeue_s * 1000),
        'AgentInteractionDuration': talk_s,
        'CustomerHoldDuration': 0,
        'AfterContactWorkDuration': call.acw_ms // 1000,
        'AfterContactWorkStartTimestamp': iso_utc(disconnect_s * 1000),
        'AfterContactWorkEndTimestamp': iso_utc(disconnect_s * 1000 + call.acw_ms),
      }
      record['DisconnectReason'] = rng.choice(('CUSTOMER_DISCONNECT', 'AGENT_DISCONNECT'))
    elif callback_id is not None:
      disconnect_s = dequeue_s
      record['NextContactId'] = callback_id
      record['DisconnectReason'] = 'CONTACT_FLOW_DISCONNECT'
    elif call.outcome == 'FLOW_OUT' and rng.random() < 0.5:
      # Transferred out of the queue to an external number.
      disconnect_s = dequeue_s + rng.randint(30, 600)
      record['NextContactId'] = _uuid(rng)
      record['TransferredToEndpoint'] = {
        'Address': f'+1555{rng.randint(1000000, 9999999)}',
        'Type': 'TELEPHONE_NUMBER',
      }
      record['DisconnectReason'] = 'THIRD_PARTY_DISCONNECT'
    elif call.outcome == 'FLOW_OUT':
      # A queue time-out to a voicemail flow, which then hangs up.
      disconnect_s = dequeue_s + rng.randint(20, 90)
      record['DisconnectReason'] = 'CONTACT_FLOW_DISCONNECT'
    else:
      disconnect_s = dequeue_s
      if call.outcome == 'ABANDONED':
        record['DisconnectReason'] = 'CUSTOMER_DISCONNECT'
      # UNKNOWN: a record that does not say why the contact ended.
  record['DisconnectTimestamp'] = iso_utc(disconnect_s * 1000)
  last_update_ms = disconnect_s * 1000 + call.acw_ms + rng.randint(1, 5) * 1000
  record['LastUpdateTimestamp'] = iso_utc(last_update_ms)
  return last_update_ms, record


def _connect_legs(
  call: SimCall, callback_id: Optional[str], outbound: bool
) -> Iterator[Tuple[str, SimCall]]:
  """The further contact records of a contact: its queued callback
  (created at the inbound leg's dequeue, queued after a 99 s initial delay
  as in Amazon's queued-callback example, answered) and an agent's outbound
  follow-up call through the same queue."""
  dequeue_ms = call.enqueue_ms + call.wait_ms
  if callback_id is not None:
    yield (
      'CALLBACK',
      dataclasses.replace(
        call,
        enqueue_ms=dequeue_ms + 99_000,
        wait_ms=min(call.wait_ms * 4, 900_000),
        outcome='ANSWERED',
        talk_ms=180_000,
        ivr_ms=99_000,
        acw_ms=30_000,
      ),
    )
  if outbound and call.queued:
    yield (
      'OUTBOUND',
      dataclasses.replace(
        call,
        enqueue_ms=dequeue_ms + call.talk_ms + 60_000,
        wait_ms=2_000,
        outcome='ANSWERED',
        talk_ms=120_000,
        ivr_ms=0,
        acw_ms=10_000,
        media='VOICE',
      ),
    )


# --------------------------------------------------------------------------
# Amazon Connect contact events rendering
# --------------------------------------------------------------------------


def contact_event(
  event_type: str,
  contact_id: str,
  at_ms: int,
  channel: str,
  method: str,
  initiated_ms: int,
  queue_arn: Optional[str] = None,
  enqueue_ms: Optional[int] = None,
  connected_ms: Optional[int] = None,
  disconnected_ms: Optional[int] = None,
  reason: Optional[str] = None,
  previous_id: Optional[str] = None,
) -> dict:
  """One Amazon Connect contact event as EventBridge delivers it, shaped
  like the samples of Amazon's "Amazon Connect contact events" page
  (https://docs.aws.amazon.com/connect/latest/adminguide/contact-events.html)."""
  detail: dict = {
    'eventType': event_type,
    'contactId': contact_id,
    'channel': channel,
    'instanceArn': CONNECT_INSTANCE,
    'initiationMethod': method,
    'initiationTimestamp': iso_utc_ms(initiated_ms),
  }
  if previous_id is not None:
    detail['previousContactId'] = previous_id
  if queue_arn is not None:
    detail['queueInfo'] = {
      'queueType': 'STANDARD',
      'queueArn': queue_arn,
      'enqueueTimestamp': iso_utc_ms(enqueue_ms),
    }
  if connected_ms is not None:
    detail['agentInfo'] = {
      'agentArn': f'{CONNECT_INSTANCE}/agent/{uuid.UUID(int=connected_ms % 977)}',
      'connectedToAgentTimestamp': iso_utc_ms(connected_ms),
    }
  if disconnected_ms is not None:
    detail['disconnectTimestamp'] = iso_utc_ms(disconnected_ms)
  if reason is not None:
    detail['disconnectReason'] = reason
  detail['tags'] = {'aws:connect:instanceId': CONNECT_INSTANCE.rsplit('/', 1)[1]}
  return {
    'version': '0',
    'id': str(uuid.UUID(int=(at_ms * 7919 + len(contact_id)) % (1 << 122), version=4)),
    'detail-type': 'Amazon Connect Contact Event',
    'source': 'aws.connect',
    'account': '123456789012',
    'time': iso_utc(at_ms // 1000 * 1000),
    'region': 'us-east-1',
    'resources': [f'{CONNECT_INSTANCE}/contact/{contact_id}', CONNECT_INSTANCE],
    'detail': detail,
  }


def iso_utc_ms(ms: int) -> str:
  """``ms`` as contact events write times: ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'``."""
  return iso_utc(ms // 1000 * 1000)[:-1] + f'.{ms % 1000:03d}Z'


def connect_events_malformed_line(kind: str, record: dict) -> bytes:
  """One malformed line of ``kind`` shaped like ``record`` (a contact event
  of a queued contact); each kind breaks exactly one thing."""
  rec = copy.deepcopy(record)
  detail = rec['detail'] if 'detail' in rec else rec
  queue = detail['queueInfo']
  if kind == 'not_json':
    return b'contact event ' + detail['contactId'].encode()
  if kind == 'truncated_json':
    full = json_line(rec)
    return full[: len(full) // 2]
  if kind == 'json_array':
    return json_line([detail['contactId'], detail['eventType']])
  if kind == 'detail_not_object':
    rec = {'detail-type': 'Amazon Connect Contact Event', 'source': 'aws.connect', 'detail': 'x'}
  elif kind == 'other_detail_type':
    rec = {'detail-type': 'Contact Lens Realtime Rules Matched', 'detail': detail}
  elif kind == 'missing_contact_id':
    del detail['contactId']
  elif kind == 'missing_event_type':
    del detail['eventType']
  elif kind == 'queue_info_not_object':
    detail['queueInfo'] = queue['queueArn']
  elif kind == 'missing_enqueue_timestamp':
    del queue['enqueueTimestamp']
  elif kind == 'enqueue_without_offset':
    queue['enqueueTimestamp'] = queue['enqueueTimestamp'].rstrip('Z')
  elif kind == 'enqueue_as_epoch_number':
    queue['enqueueTimestamp'] = 1793606400000
  elif kind == 'enqueue_1970':
    queue['enqueueTimestamp'] = '1970-01-02T00:00:05.000Z'
  elif kind == 'queue_arn_without_queue':
    queue['queueArn'] = 'arn'
  elif kind == 'unknown_channel':
    detail['channel'] = 'CARRIER_PIGEON'
  elif kind == 'unknown_initiation_method':
    detail['initiationMethod'] = 'TELEPATHY'
  elif kind == 'contact_record_instead':
    return json_line(
      {
        'AWSContactTraceRecordFormatVersion': '2017-03-10',
        'ContactId': detail['contactId'],
        'Channel': 'VOICE',
        'Queue': {'ARN': queue['queueArn'], 'EnqueueTimestamp': queue['enqueueTimestamp']},
      }
    )
  elif kind == 'empty_line':
    return b''
  elif kind == 'invalid_utf8':
    return json_line(rec).replace(b'"contactId"', b'"notes":"Ren\xe9e \xff","contactId"', 1)
  elif kind == OVERSIZED_KIND:
    detail['attributes'] = {'notes': 'x' * (MAX_LINE_BYTES + 16)}
  else:
    raise ValueError(f'unknown malformed kind {kind!r}')
  return json_line(rec)


def _connect_events(
  call: SimCall,
  rng: random.Random,
  queue_arns: List[str],
  method: str = 'INBOUND',
  callback_id: Optional[str] = None,
  transfer_id: Optional[str] = None,
  contact_id: Optional[str] = None,
  previous_id: Optional[str] = None,
) -> Tuple[str, List[Tuple[int, str, dict]]]:
  """(contactId, [(event time ms, role, event)]) of one contact; ``role``
  is ``queued``, ``left`` (the event that takes it out of the queue),
  ``completed`` (the COMPLETED that repeats an unanswered contact's
  DISCONNECTED), ``after`` (events after the answer) or ``other``. ``callback_id``: the
  queued callback this contact asked for (its flow then ends the leg);
  ``transfer_id``: the contact that continues this flow-out in another
  queue."""
  contact_id = contact_id or _uuid(rng)
  channel = call.media if call.media != 'MESSAGE' else 'CHAT'
  initiated_ms = call.enqueue_ms - call.ivr_ms
  base = dict(
    contact_id=contact_id,
    channel=channel,
    method=method,
    initiated_ms=initiated_ms,
    previous_id=previous_id,
  )
  events = [(initiated_ms, 'other', contact_event('INITIATED', at_ms=initiated_ms, **base))]
  if not call.queued:
    events.append(
      (
        call.enqueue_ms,
        'other',
        contact_event(
          'DISCONNECTED',
          at_ms=call.enqueue_ms,
          disconnected_ms=call.enqueue_ms,
          reason='CONTACT_FLOW_DISCONNECT',
          **base,
        ),
      )
    )
    return contact_id, events
  queued = dict(base, queue_arn=queue_arns[call.queue], enqueue_ms=call.enqueue_ms)
  left_ms = call.enqueue_ms + call.wait_ms
  events.append(
    (call.enqueue_ms, 'queued', contact_event('QUEUED', at_ms=call.enqueue_ms, **queued))
  )
  if call.outcome == 'ANSWERED':
    answered = dict(queued, connected_ms=left_ms)
    end_ms = left_ms + call.talk_ms
    reason = rng.choice(('CUSTOMER_DISCONNECT', 'AGENT_DISCONNECT'))
    events.append((left_ms, 'left', contact_event('CONNECTED_TO_AGENT', at_ms=left_ms, **answered)))
    for event_type, at_ms in (('DISCONNECTED', end_ms), ('COMPLETED', end_ms + call.acw_ms)):
      events.append(
        (
          at_ms,
          'after',
          contact_event(event_type, at_ms=at_ms, disconnected_ms=end_ms, reason=reason, **answered),
        )
      )
    return contact_id, events
  if callback_id is not None or transfer_id is not None or call.outcome == 'FLOW_OUT':
    reason = 'CONTACT_FLOW_DISCONNECT'
  elif call.outcome == 'ABANDONED':
    reason = 'CUSTOMER_DISCONNECT'
  else:
    reason = None  # UNKNOWN: an event that does not say why
  # COMPLETED follows at once "with the same data" (no after-contact work).
  for event_type, role in (('DISCONNECTED', 'left'), ('COMPLETED', 'completed')):
    events.append(
      (
        left_ms,
        role,
        contact_event(event_type, at_ms=left_ms, disconnected_ms=left_ms, reason=reason, **queued),
      )
    )
  return contact_id, events


# --------------------------------------------------------------------------
# Arrival order
# --------------------------------------------------------------------------


def generate_vendor_events(
  fmt: str,
  n: int,
  seed: int,
  *,
  start_ms: int = DEFAULT_START_MS,
  events_per_second: float = 5.0,
  queues: int = 8,
  jitter_seconds: float = 8.0,
  too_late_share: float = 0.005,
  too_late_seconds: float = 600.0,
  late_within_lateness_share: float = 0.01,
  duplicate_share: float = 0.01,
  never_queued_share: float = 0.05,
  flow_out_share: float = 0.03,
  unknown_outcome_share: float = 0.003,
  missing_start_share: float = 0.005,
  delayed_start_share: float = 0.005,
  bare_share: float = 0.1,
  body_share: float = 0.0,
  update_share: float = 0.01,
  transfer_share: float = 0.5,
  callback_share: float = 0.0,
  outbound_share: float = 0.0,
  clean_tail_seconds: float = 0.0,
  malformed: Optional[int] = None,
  oversized: bool = False,
  window_size_s: int = 300,
  allowed_lateness_s: int = 60,
  max_out_of_orderness_s: int = 10,
  stats: Optional[Dict[str, int]] = None,
) -> Iterator[bytes]:
  """Yield the lines of a vendor stream of format ``fmt`` (``GENESYS`` or
  ``CONNECT``) for ``n`` contacts, in arrival order, as bytes without a
  newline.

  Shares are fractions of the contacts (Genesys-only:
  ``missing_start_share``, ``delayed_start_share``, ``bare_share`` (bare
  notifications), ``body_share`` (bare event bodies, as Process Automation
  triggers deliver them); ``callback_share``: for Genesys, voice calls
  rendered as callbacks (mediaType CALLBACK, waits of 30 min to 5 h);
  Connect-only: ``update_share``, ``callback_share`` (abandoned voice
  contacts that ask for a queued callback instead: the inbound leg flows
  out, a CALLBACK leg is queued 99 s later and answered) and
  ``outbound_share`` (an agent's OUTBOUND call through the queue follows
  the contact: not offered)); ``CONNECT_EVENTS``: ``bare_share`` (bare
  ``detail`` lines), ``transfer_share`` (flow-outs that are queue transfers
  to another queue, where the new contact is answered), ``callback_share``
  and ``outbound_share`` (an API voice contact through the queue: not
  offered) as for Connect. ``clean_tail_seconds``: no missing or delayed starts
  among the calls of the last that many seconds (a replay cannot wait
  for starts past its end). ``malformed``: the number of malformed lines
  (default one of each kind). ``stats`` is filled with the counts of what
  was written: ``lines``, ``offered`` (distinct acd.end / queued CTRs),
  ``duplicates``, ``malformed``, ``passed_over`` (other Genesys topics,
  never-queued CTRs), ``missing_starts``, ``delayed_starts``,
  ``updates``, ``too_late``, ``late_within_lateness``, ``callbacks``,
  ``outbound``.
  """
  if fmt not in ALL_FORMATS:
    raise ValueError(f'format must be one of {ALL_FORMATS}')
  if n < 0 or events_per_second <= 0:
    raise ValueError('need n >= 0 and events_per_second > 0')
  check_shares(
    ('too_late_share', too_late_share),
    ('late_within_lateness_share', late_within_lateness_share),
    ('duplicate_share', duplicate_share),
    ('never_queued_share', never_queued_share),
    ('flow_out_share', flow_out_share),
    ('unknown_outcome_share', unknown_outcome_share),
    ('missing_start_share', missing_start_share),
    ('delayed_start_share', delayed_start_share),
    ('bare_share', bare_share),
    ('body_share', body_share),
    ('update_share', update_share),
    ('transfer_share', transfer_share),
    ('callback_share', callback_share),
    ('outbound_share', outbound_share),
  )
  rng_ids = random.Random(f'{seed}:ids')
  rng_disorder = random.Random(f'{seed}:disorder')
  rng_dup = random.Random(f'{seed}:dup')
  rng_bad = random.Random(f'{seed}:malformed')
  window_ms = window_size_s * 1000
  kinds = MALFORMED_KINDS[fmt]
  # One line per call is a safe slot count for the malformed lines.
  bad_positions = plan_malformed(rng_bad, kinds, OVERSIZED_KIND, oversized, malformed, n)
  counts = reset_counts(
    stats,
    (
      'lines',
      'offered',
      'duplicates',
      'malformed',
      'passed_over',
      'missing_starts',
      'delayed_starts',
      'updates',
      'too_late',
      'late_within_lateness',
      'callbacks',
      'outbound',
      'transfers',
    ),
  )
  queue_ids = [_uuid(rng_ids) for _ in range(queues)]
  queue_arns = [f'{CONNECT_INSTANCE}/queue/{_uuid(rng_ids)}' for _ in range(queues)]
  make_bad: Callable[[str, dict], bytes] = {
    GENESYS: genesys_malformed_line,
    CONNECT: connect_malformed_line,
    CONNECT_EVENTS: connect_events_malformed_line,
  }[fmt]
  # Malformed lines are shaped like the last offered call's record, or
  # like a made-up one (own random stream) before there is any.
  made_up = SimCall(-1, True, 0, int(start_ms), 5000, 'ANSWERED', 60_000, 5000, 0, 'VOICE')
  template: Dict[str, dict] = {
    'last': (
      _genesys_records(made_up, rng_bad, queue_ids, EVENTBRIDGE)['acd.end'][1]
      if fmt == GENESYS
      else _connect_record(made_up, rng_bad, queue_arns)[1]
      if fmt == CONNECT
      else _connect_events(made_up, rng_bad, queue_arns)[1][1][2]
    )
  }

  def _remember(record: dict) -> None:
    if fmt == GENESYS:
      keep = str(_notification(record).get('topicName', '')).endswith('.acd.end')
    elif fmt == CONNECT:
      keep = record.get('Queue') is not None
    else:
      keep = 'queueInfo' in record.get('detail', record)
    if keep:
      template['last'] = record

  def _malformed(kind: str, record: dict) -> bytes:
    return make_bad(kind, template['last'])

  stream = ArrivalStream(bad_positions, rng_dup, counts, _malformed, _remember)
  sim_args = (
    n,
    seed,
    start_ms,
    events_per_second,
    queues,
    never_queued_share,
    flow_out_share,
    unknown_outcome_share,
  )
  tail_from_ms = math.inf
  if clean_tail_seconds > 0:
    last_ms = None
    for call in simulate_calls(*sim_args):
      last_ms = call.enqueue_ms
    if last_ms is not None:
      tail_from_ms = last_ms - clean_tail_seconds * 1000

  def _arrival(event_ms: int, delayed: str) -> float:
    if delayed == 'too_late':
      return event_ms + too_late_seconds * 1000 + rng_disorder.uniform(0, jitter_seconds) * 1000
    if delayed == 'within':
      hi = max(5.0, min(40.0, allowed_lateness_s - max_out_of_orderness_s - 5.0))
      return (
        window_end_ms(event_ms, window_ms)
        + max_out_of_orderness_s * 1000
        + rng_disorder.uniform(5.0, hi) * 1000
      )
    return event_ms + rng_disorder.uniform(0, jitter_seconds) * 1000

  for call in simulate_calls(*sim_args):
    draw = rng_disorder.random()
    delayed = (
      'too_late'
      if draw < too_late_share
      else 'within'
      if draw < too_late_share + late_within_lateness_share
      else ''
    )
    dup = rng_dup.random() < duplicate_share
    in_tail = call.enqueue_ms >= tail_from_ms
    if fmt == GENESYS:
      draw = rng_disorder.random()
      form = (
        NOTIFICATION
        if draw < bare_share
        else BODY
        if draw < bare_share + body_share
        else EVENTBRIDGE
      )
      if call.queued and call.media == 'VOICE' and rng_disorder.random() < callback_share:
        # A callback waits for an agent far longer than a live call.
        counts['callbacks'] += 1
        call = dataclasses.replace(
          call, media='CALLBACK', wait_ms=min(call.wait_ms * 60 + 1_800_000, 5 * 3_600_000)
        )
      records = _genesys_records(call, rng_ids, queue_ids, form)
      start_fate = rng_disorder.random()
      for suffix, (event_ms, record) in records.items():
        if suffix == 'acd.start':
          if not in_tail and start_fate < missing_start_share:
            counts['missing_starts'] += 1
            continue
          arrival = _arrival(event_ms, '')
          if not in_tail and start_fate < missing_start_share + delayed_start_share:
            # Behind its end by more than the out-of-orderness
            # bound: the end is counted first, wait unknown.
            counts['delayed_starts'] += 1
            end_ms = records['acd.end'][0]
            arrival = max(
              arrival,
              end_ms
              + (max_out_of_orderness_s + jitter_seconds + rng_disorder.uniform(*_DELAYED_START_S))
              * 1000,
            )
        elif suffix == 'acd.end':
          counts['offered'] += 1
          arrival = _arrival(event_ms, delayed)
        else:
          counts['passed_over'] += 1
          arrival = _arrival(event_ms, '')
        stream.push(arrival, json_line(record), dup and suffix.startswith('acd'), record)
    elif fmt == CONNECT_EVENTS:
      _push_contact_events(
        call,
        stream,
        counts,
        rng_ids,
        rng_disorder,
        queue_arns,
        delayed,
        dup,
        _arrival,
        bare_share,
        transfer_share,
        callback_share,
        outbound_share,
      )
    else:
      callback_id = None
      if (
        call.queued
        and call.outcome == 'ABANDONED'
        and call.media == 'VOICE'
        and rng_disorder.random() < callback_share
      ):
        callback_id = _uuid(rng_ids)
      last_update_ms, record = _connect_record(call, rng_ids, queue_arns, callback_id=callback_id)
      counts['passed_over' if record['Queue'] is None else 'offered'] += 1
      for method, leg in _connect_legs(call, callback_id, rng_disorder.random() < outbound_share):
        leg_update_ms, leg_record = _connect_record(
          leg, rng_ids, queue_arns, method=method, previous_id=record['ContactId']
        )
        if method == 'CALLBACK':
          leg_record['ContactId'] = callback_id
          counts['callbacks'] += 1
          counts['offered'] += 1
        else:
          counts['outbound'] += 1
        stream.push(
          leg_update_ms + rng_disorder.uniform(0, jitter_seconds) * 1000,
          json_line(leg_record),
          False,
          leg_record,
        )
      # Sent when the record is complete (after talk and after-contact
      # work), through Kinesis.
      arrival = last_update_ms + rng_disorder.uniform(0, jitter_seconds) * 1000
      if delayed == 'too_late':
        arrival += too_late_seconds * 1000
      elif delayed == 'within':
        dequeue_ms = (call.enqueue_ms + call.wait_ms) // 1000 * 1000
        arrival = max(arrival, _arrival(dequeue_ms, delayed))
      stream.push(arrival, json_line(record), dup, record)
      if rng_disorder.random() < update_share:
        counts['updates'] += 1
        update = copy.deepcopy(record)
        later_ms = last_update_ms + int(rng_disorder.uniform(*_UPDATE_DELAY_S) * 1000)
        update['LastUpdateTimestamp'] = iso_utc(later_ms // 1000 * 1000)
        update['Attributes'] = {'surveyScore': str(rng_disorder.randint(1, 5))}
        stream.push(
          later_ms + rng_disorder.uniform(0, jitter_seconds) * 1000,
          json_line(update),
          False,
          update,
        )
    if delayed == 'too_late':
      counts['too_late'] += 1
    elif delayed == 'within':
      counts['late_within_lateness'] += 1
    # Every record of a contact arrives after its enqueue time: whatever
    # arrives before the current contact's can be written.
    yield from stream.drain(call.enqueue_ms)
  yield from stream.drain(math.inf)
  yield from stream.flush(template['last'])


def _push_contact_events(
  call: SimCall,
  stream,
  counts: Dict[str, int],
  rng_ids: random.Random,
  rng_disorder: random.Random,
  queue_arns: List[str],
  delayed: str,
  dup: bool,
  arrival_of: Callable[[int, str], float],
  bare_share: float,
  transfer_share: float,
  callback_share: float,
  outbound_share: float,
) -> None:
  """Schedules the contact events of ``call`` and of the contacts that
  continue it (a queued callback, a queue transfer, an outbound API call)."""
  callback_id = transfer_id = None
  if call.queued and call.outcome == 'ABANDONED' and call.media == 'VOICE':
    if rng_disorder.random() < callback_share:
      callback_id = _uuid(rng_ids)
  elif call.queued and call.outcome == 'FLOW_OUT' and rng_disorder.random() < transfer_share:
    transfer_id = _uuid(rng_ids)
  contact_id, events = _connect_events(
    call, rng_ids, queue_arns, callback_id=callback_id, transfer_id=transfer_id
  )
  contacts = [('', events)]
  left_ms = call.enqueue_ms + call.wait_ms
  if callback_id is not None:
    counts['callbacks'] += 1
    leg = dataclasses.replace(
      call,
      enqueue_ms=left_ms + 99_000,
      wait_ms=min(call.wait_ms * 4, 900_000),
      outcome='ANSWERED',
      talk_ms=180_000,
      ivr_ms=99_000,
      acw_ms=30_000,
    )
    contacts.append(
      (
        'callback',
        _connect_events(
          leg, rng_ids, queue_arns, 'CALLBACK', contact_id=callback_id, previous_id=contact_id
        )[1],
      )
    )
  if transfer_id is not None:
    counts['transfers'] += 1
    leg = dataclasses.replace(
      call,
      queue=(call.queue + 1) % len(queue_arns),
      enqueue_ms=left_ms,
      wait_ms=rng_disorder.randint(2, 60) * 1000,
      outcome='ANSWERED',
      talk_ms=120_000,
      ivr_ms=0,
    )
    contacts.append(
      (
        'transfer',
        _connect_events(
          leg,
          rng_ids,
          queue_arns,
          'QUEUE_TRANSFER',
          contact_id=transfer_id,
          previous_id=contact_id,
        )[1],
      )
    )
  if call.queued and rng_disorder.random() < outbound_share:
    counts['outbound'] += 1
    leg = dataclasses.replace(
      call,
      enqueue_ms=left_ms + call.talk_ms + 60_000,
      wait_ms=2_000,
      outcome='ANSWERED',
      talk_ms=120_000,
      ivr_ms=0,
      media='VOICE',
    )
    contacts.append(('outbound', _connect_events(leg, rng_ids, queue_arns, 'API')[1]))
  for leg_kind, leg_events in contacts:
    for event_ms, role, event in leg_events:
      if role == 'left' and leg_kind != 'outbound':
        counts['offered'] += 1
      elif role != 'queued':
        counts['passed_over'] += 1
      # Only the contact's own queue exit is delayed: the late calls.
      leaving = role in ('left', 'completed') and not leg_kind
      arrival = arrival_of(event_ms, delayed if leaving else '')
      record = event['detail'] if rng_disorder.random() < bare_share else event
      stream.push(arrival, json_line(record), dup and role in ('queued', 'left'), record)


def write_vendor_events(path: str, fmt: str, n: int, seed: int, **options) -> Dict[str, int]:
  """Write ``generate_vendor_events(fmt, n, seed, **options)`` to ``path``
  (``"-"``: stdout); return the counts (see ``generate_vendor_events``)."""
  stats: Dict[str, int] = {}
  write_to(path, generate_vendor_events(fmt, n, seed, stats=stats, **options))
  return stats


def build_arg_parser() -> argparse.ArgumentParser:
  """The CLI's argument parser."""
  p = generator_arg_parser(
    'Generate a seeded JSON-lines vendor stream (Genesys Cloud notifications, '
    'Amazon Connect contact records or contact events); file order is arrival order.',
    '--calls',
    DEFAULT_CALLS,
    'number of contacts',
  )
  p.add_argument('--format', required=True, choices=ALL_FORMATS, dest='fmt')
  add_start_argument(p, DEFAULT_START_MS, 'contact')
  p.add_argument(
    '--events-per-second',
    type=float,
    default=5.0,
    help='average contact rate over 24 h (diurnal curve)',
  )
  p.add_argument('--queues', type=int, default=8)
  p.add_argument(
    '--jitter-seconds',
    type=float,
    default=8.0,
    help='every record arrives U(0, this) after it was emitted',
  )
  p.add_argument('--too-late-share', type=parse_share, default=0.005)
  p.add_argument('--too-late-seconds', type=float, default=600.0)
  p.add_argument('--late-within-lateness-share', type=parse_share, default=0.01)
  p.add_argument(
    '--duplicate-share',
    type=parse_share,
    default=0.01,
    help='share of contacts whose records are re-delivered 1-30 lines later',
  )
  p.add_argument('--never-queued-share', type=parse_share, default=0.05)
  p.add_argument(
    '--flow-out-share',
    type=parse_share,
    default=0.03,
    help='left the queue neither answered nor abandoned (transfer, time-out)',
  )
  p.add_argument(
    '--unknown-outcome-share',
    type=parse_share,
    default=0.003,
    help='outcome not told (Genesys UNKNOWN; Connect: no DisconnectReason)',
  )
  p.add_argument(
    '--missing-start-share',
    type=parse_share,
    default=0.005,
    help='Genesys: acd.start never delivered',
  )
  p.add_argument(
    '--delayed-start-share',
    type=parse_share,
    default=0.005,
    help='Genesys: acd.start delivered after its end was counted',
  )
  p.add_argument(
    '--bare-share',
    type=parse_share,
    default=0.1,
    help='Genesys: share of bare notifications (not EventBridge events)',
  )
  p.add_argument(
    '--body-share',
    type=parse_share,
    default=0.0,
    help='Genesys: share of bare event bodies (Process Automation triggers, webhooks)',
  )
  p.add_argument(
    '--update-share',
    type=parse_share,
    default=0.01,
    help='Connect: share of contacts sent again as an updated record',
  )
  p.add_argument(
    '--transfer-share',
    type=parse_share,
    default=0.5,
    help='Connect contact events: flow-outs that are transfers to another queue',
  )
  p.add_argument(
    '--callback-share',
    type=parse_share,
    default=0.0,
    help='Genesys: voice calls that are callbacks; Connect: abandoned voice '
    'contacts that ask for a queued callback instead',
  )
  p.add_argument(
    '--outbound-share',
    type=parse_share,
    default=0.0,
    help="Connect: contacts followed by an agent's outbound call through the queue",
  )
  p.add_argument('--clean-tail-seconds', type=float, default=0.0)
  add_malformed_arguments(p, max(len(k) for k in MALFORMED_KINDS.values()))
  p.add_argument('--window-size-s', type=int, default=300)
  p.add_argument('--allowed-lateness-s', type=int, default=60)
  p.add_argument('--max-out-of-orderness-s', type=int, default=10)
  return p


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry point: write the file, print the counts to stderr."""
  parser = build_arg_parser()

  def write(out: str, n: int, seed: int, fmt: str, **options) -> Dict[str, int]:
    return write_vendor_events(out, fmt, n, seed, **options)

  return run_generator_cli(parser, 'calls', write, argv)


if __name__ == '__main__':
  sys.exit(main())
