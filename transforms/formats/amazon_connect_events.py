"""Amazon Connect contact events (`amazon_connect_events` format).

Contact records (`amazon_connect`) are written only once a contact has
ended, so they cannot tell who waits in a queue now; contact events can.
Each record is one Amazon EventBridge event (`"source": "aws.connect"`,
`"detail-type": "Amazon Connect Contact Event"`) whose `detail` is the
contact event, or that `detail` alone (an EventBridge target's input
path). Field names and values are Amazon's (Amazon Connect Administrator
Guide, "Amazon Connect contact events",
https://docs.aws.amazon.com/connect/latest/adminguide/contact-events.html:
the contact events data model, "Contact timestamps" and the sample
events). Amazon's samples write `detail` in camelCase (`eventType`,
`queueInfo.enqueueTimestamp`) and, in some, PascalCase (`EventType`,
`QueueInfo.EnqueueTimestamp`): each field is read under either. Times are
ISO-8601 strings (transforms/formats/fields.py); Amazon's own sample of a
contact that no agent took shows `"1970-01-01T00:00:00.001Z"` in
`connectedToAgentTimestamp`, so a time in the first second of 1970 means
"not set".

| event (`detail.eventType`) | queue transition           | offered call           |
|----------------------------|----------------------------|------------------------|
| QUEUED                     | ENTERED at `queueInfo.enq- | none                   |
|                            | ueueTimestamp`             |                        |
| CONNECTED_TO_AGENT         | LEFT, ANSWERED, at `agent- | ANSWERED, wait =       |
|                            | Info.connectedToAgentTime- | connected - enqueued   |
|                            | stamp`                     |                        |
| DISCONNECTED or COMPLETED, | LEFT at `disconnectTime-   | outcome by             |
| no agent connected         | stamp`                     | `disconnectReason`:    |
|                            |                            | CUSTOMER_DISCONNECT    |
|                            |                            | ABANDONED, another     |
|                            |                            | FLOW_OUT, none UNKNOWN |
| DISCONNECTED or COMPLETED  | LEFT, ANSWERED, at the     | none: counted at       |
| after an agent connected   | connection again           | CONNECTED_TO_AGENT     |
| any other type             | none (`other_event_types`) | none                   |

Amazon publishes events "on a best effort basis", in no order, and
COMPLETED "immediately after the DISCONNECT event with the same data" when
there is no after-contact work: so every event that tells a contact is out
of its queue says so (a lost CONNECTED_TO_AGENT or DISCONNECTED does not
leave a contact waiting on the live floor for ever), and transitions are
at least once. An answered call is offered only by its CONNECTED_TO_AGENT:
its DISCONNECTED comes a talk time later, past what the de-duplication
may remember, and would count it twice.

Only queued contacts count (`queueInfo` set; else `never_queued`), and
only the customers' contacts: the initiation methods of the contact
center's own legs are passed over (`not_inbound`), as for contact records
(transforms/formats/amazon_connect.py). `call_id` is `contactId`;
`queue_id` is `queueInfo.queueArn` with `--connect_queue_key=arn`, and the
queue id at the end of that ARN (`.../queue/<id>`) with `name`: contact
events carry no queue name (`--queue_names` maps the id to one). The
channel is `channel` (VOICE, CHAT, TASK, EMAIL, any case) in lower case,
`callback` for `initiationMethod` CALLBACK. Offered calls are
de-duplicated by `contactId` (EventBridge delivers at least once).
"""

import re
from typing import Any, Dict, Iterator, NamedTuple, Optional, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Duration

from options.config import DEFAULT_FIELD_RULES, FieldRules
from transforms import parsing
from transforms.dedupe import DedupeByKey
from transforms.event_time import at_event_time
from transforms.formats import fields, streams
from transforms.formats.amazon_connect import (
  CHANNELS,
  CUSTOMER_DISCONNECT,
  INBOUND_METHODS,
  OUTBOUND_API_CHANNEL,
  OWN_LEG_METHODS,
  QUEUE_KEYS,
)
from transforms.records import (
  ABANDONED,
  ANSWERED,
  CALLBACK,
  FLOW_OUT,
  QUEUE_ENTERED,
  QUEUE_LEFT,
  UNKNOWN_OUTCOME,
  DeadLetter,
  OfferedCall,
  QueueTransition,
  SourceRecord,
)
from transforms.sharding import DEFAULT_STATE_SHARDS

METRICS_NAMESPACE = 'amazon_connect_events'
QUEUE_TRANSITIONS = parsing.QUEUE_TRANSITIONS
CONTACT_EVENT_DETAIL_TYPE = streams.CONNECT_CONTACT_EVENT
QUEUED = 'QUEUED'
CONNECTED_TO_AGENT = 'CONNECTED_TO_AGENT'
DISCONNECTED = 'DISCONNECTED'
COMPLETED = 'COMPLETED'
_LEAVING = (DISCONNECTED, COMPLETED)
_INITIATION_METHODS = {m: m for m in INBOUND_METHODS | OWN_LEG_METHODS}
# A queue ARN ends in `queue/<queue id>` ("arn:aws:connect:<region>:
# <account>:instance/<instance id>/queue/<queue id>"); only that tail is
# required, the rest of an ARN is Amazon's business.
_QUEUE_ARN = re.compile(r'.*/queue/([^/]+)')
# Amazon's sample of a contact not connected to an agent carries
# "1970-01-01T00:00:00.001Z": a placeholder, not a time.
_UNSET_TIME_PREFIX = '1970-01-01T00:00:00'
PASSED_OVER_REASONS = ('other_event_types', 'never_queued', 'not_inbound')


class PassedOver(NamedTuple):
  """A valid contact event that moves no contact in or out of a queue;
  `reason` names the counter (PASSED_OVER_REASONS)."""

  reason: str


class ContactEvent(NamedTuple):
  """A contact event that moves a contact in or out of a queue:
  `transition` at event time `timestamp` (epoch ms), and the `offered`
  call when the contact left the queue (None when it entered, and on the
  DISCONNECTED or COMPLETED of a call an agent answered)."""

  transition: QueueTransition
  offered: Optional[OfferedCall]
  timestamp: int


def _name(obj: Dict[str, Any], camel: str) -> str:
  """The key `obj` holds the field under: camelCase, or PascalCase as some
  of Amazon's samples write it; camelCase when neither is there (so a
  missing field is reported under its usual name)."""
  if camel in obj:
    return camel
  pascal = camel[0].upper() + camel[1:]
  return pascal if pascal in obj else camel


def _optional_time_ms(obj: Dict[str, Any], camel: str, rules: FieldRules) -> Optional[int]:
  name = _name(obj, camel)
  value = obj.get(name)
  if isinstance(value, str) and value.startswith(_UNSET_TIME_PREFIX):
    return None
  return fields.optional_iso_time_ms(obj, name, rules)


def queue_key_of(queue_arn: str, queue_key: str) -> str:
  """The queue a contact is counted in: its queue ARN (`arn`) or the queue
  id the ARN ends with (`name`). Raises InvalidRecord
  `malformed_queue_arn` for an ARN without `/queue/<id>`, whatever the
  key, so both keys accept the same events."""
  match = _QUEUE_ARN.fullmatch(queue_arn)
  if match is None:
    raise parsing.InvalidRecord(
      'malformed_queue_arn', f'"queueInfo.queueArn" does not end in queue/<id>: {queue_arn[:60]!r}'
    )
  return queue_arn if queue_key == 'arn' else match.group(1)


def event_outcome(disconnect_reason: Optional[str]) -> str:
  """The outcome of a queued contact that disconnected before any agent
  took it, by Amazon's definitions (Administrator Guide, "Real-time metrics
  definitions": Abandoned is the count of contacts "disconnected by the
  customer while in the queue"): ABANDONED for CUSTOMER_DISCONNECT, FLOW_OUT
  for any other reason (the flow disconnected it, a time-out, a telecom
  problem, a transfer out), UNKNOWN when the event does not say."""
  if disconnect_reason is None:
    return UNKNOWN_OUTCOME
  return ABANDONED if disconnect_reason == CUSTOMER_DISCONNECT else FLOW_OUT


def _channel(detail: Dict[str, Any], method: str, rules: FieldRules) -> str:
  name = _name(detail, 'channel')
  value = parsing.required_str(detail, name, rules)
  # Amazon's samples write "VOICE" and "Voice".
  channel = CHANNELS.get(value.upper())
  if channel is None:
    raise parsing.InvalidRecord(
      'unknown_enum_value', f'"{name}" {value[:40]!r} is not one of {", ".join(sorted(CHANNELS))}'
    )
  return CALLBACK if method == 'CALLBACK' else channel


def _detail(obj: Dict[str, Any], rules: FieldRules) -> Dict[str, Any]:
  """The contact event of an EventBridge event, or the record itself when
  it is a bare `detail`."""
  if 'detail-type' not in obj:
    return obj
  detail_type = parsing.required_str(obj, 'detail-type', rules)
  if detail_type != CONTACT_EVENT_DETAIL_TYPE:
    raise parsing.InvalidRecord(
      'unknown_detail_type', f'"detail-type" {detail_type[:60]!r} is not a contact event'
    )
  return fields.required_object(obj, 'detail')


def _left(
  contact_id: str,
  queue_id: str,
  channel: str,
  enqueued_ms: int,
  left_ms: int,
  outcome: str,
  rules: FieldRules,
  raw: bytes,
) -> ContactEvent:
  if left_ms < enqueued_ms:
    raise parsing.InvalidRecord(
      'dequeue_before_enqueue',
      f'the contact left the queue {enqueued_ms - left_ms} ms before "enqueueTimestamp"',
    )
  wait = (left_ms - enqueued_ms) / 1000
  if wait > rules.max_wait_seconds:
    raise parsing.InvalidRecord(
      'value_out_of_range', f'wait in queue {wait:.6g} s > {rules.max_wait_seconds:g}'
    )
  return ContactEvent(
    QueueTransition(contact_id, queue_id, channel, QUEUE_LEFT, left_ms, enqueued_ms, outcome),
    OfferedCall(contact_id, queue_id, left_ms, outcome, wait, channel, raw=fields.raw_text(raw)),
    left_ms,
  )


def _contact_event(
  obj: Dict[str, Any], queue_key: str, rules: FieldRules, raw: bytes
) -> Union[ContactEvent, PassedOver]:
  detail = _detail(obj, rules)
  event_type = parsing.required_str(detail, _name(detail, 'eventType'), rules)
  if event_type not in (QUEUED, CONNECTED_TO_AGENT, *_LEAVING):
    # New event types come without notice (Amazon: "Continue functioning
    # when new event types are introduced"); their shape is not ours to
    # check.
    return PassedOver('other_event_types')
  contact_id = parsing.required_str(detail, _name(detail, 'contactId'), rules)
  method = fields.required_enum(
    detail, _name(detail, 'initiationMethod'), _INITIATION_METHODS, rules
  )
  channel = _channel(detail, method, rules)
  queue_info = fields.optional_object(detail, _name(detail, 'queueInfo'))
  agent_info = fields.optional_object(detail, _name(detail, 'agentInfo'))
  connected_ms = (
    None
    if agent_info is None
    else _optional_time_ms(agent_info, 'connectedToAgentTimestamp', rules)
  )
  disconnected_ms = _optional_time_ms(detail, 'disconnectTimestamp', rules)
  reason = parsing.optional_str(detail, _name(detail, 'disconnectReason'), rules)
  if queue_info is None:
    return PassedOver('never_queued')
  queue_id = queue_key_of(
    parsing.required_str(queue_info, _name(queue_info, 'queueArn'), rules), queue_key
  )
  enqueued_ms = fields.required_iso_time_ms(
    queue_info, _name(queue_info, 'enqueueTimestamp'), rules
  )
  if method in OWN_LEG_METHODS or (method == 'API' and channel == CHANNELS[OUTBOUND_API_CHANNEL]):
    return PassedOver('not_inbound')
  if event_type == QUEUED:
    return ContactEvent(
      QueueTransition(contact_id, queue_id, channel, QUEUE_ENTERED, enqueued_ms), None, enqueued_ms
    )
  if event_type == CONNECTED_TO_AGENT:
    if connected_ms is None:
      raise parsing.InvalidRecord(
        'missing_field', '"agentInfo.connectedToAgentTimestamp" is missing or null'
      )
    return _left(contact_id, queue_id, channel, enqueued_ms, connected_ms, ANSWERED, rules, raw)
  if connected_ms is not None:
    # An agent took it: it left the queue at the connection, where
    # CONNECTED_TO_AGENT counted it.
    left = _left(contact_id, queue_id, channel, enqueued_ms, connected_ms, ANSWERED, rules, raw)
    return left._replace(offered=None)
  if disconnected_ms is None:
    raise parsing.InvalidRecord('missing_field', '"disconnectTimestamp" is missing or null')
  return _left(
    contact_id, queue_id, channel, enqueued_ms, disconnected_ms, event_outcome(reason), rules, raw
  )


def parse_contact_event(
  raw: bytes, queue_key: str = 'name', rules: FieldRules = DEFAULT_FIELD_RULES
) -> Union[ContactEvent, PassedOver]:
  """One raw contact event as the queue transition (and offered call) it
  stands for, or PassedOver. `queue_key` is a key of QUEUE_KEYS. Raises
  parsing.InvalidRecord with a specific reason (`wrong_stream` for a
  record of another stream), and nothing else whatever the bytes. The
  offered call's `raw` is the event as text."""
  obj = parsing.decode_json_object(raw)
  try:
    return _contact_event(obj, queue_key, rules, raw)
  except parsing.InvalidRecord as error:
    raise streams.refuse_other_stream(obj, streams.CONNECT_CONTACT_EVENT, error) from None


def contact_event_time_ms(
  raw: bytes,
  above_ms: Optional[int] = None,
  queue_key: str = 'name',
  rules: FieldRules = DEFAULT_FIELD_RULES,
) -> Optional[int]:
  """The event time of a valid contact event that moves a contact in or out
  of a queue (above `above_ms` if given), else None (for the replay
  watermark): its enqueue time, agent connection or disconnect."""

  def moving(record: bytes) -> ContactEvent:
    event = parse_contact_event(record, queue_key, rules)
    if isinstance(event, PassedOver):
      # Nothing the metrics or the live floor use happens at its time.
      raise parsing.InvalidRecord(event.reason, 'moves no contact in or out of a queue')
    return event

  return fields.event_time_above(moving, raw, above_ms)


class _ParseContactEventsFn(beam.DoFn):
  def __init__(self, queue_key: str, rules: FieldRules):
    self._queue_key = queue_key
    self._rules = rules
    self._entered = Metrics.counter(METRICS_NAMESPACE, 'queue_entered')
    self._left = Metrics.counter(METRICS_NAMESPACE, 'queue_left')
    self._passed_over = {
      reason: Metrics.counter(METRICS_NAMESPACE, reason) for reason in PASSED_OVER_REASONS
    }

  def process(self, record: SourceRecord) -> Iterator:
    try:
      event = parse_contact_event(record.raw, self._queue_key, self._rules)
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, METRICS_NAMESPACE)
      return
    if isinstance(event, PassedOver):
      self._passed_over[event.reason].inc()
      return
    yield beam.pvalue.TaggedOutput(
      QUEUE_TRANSITIONS, at_event_time(event.transition, event.timestamp)
    )
    (self._entered if event.transition.kind == QUEUE_ENTERED else self._left).inc()
    if event.offered is not None:
      yield at_event_time(event.offered, event.timestamp)


class ConnectContactEventsCalls(beam.PTransform):
  """Amazon Connect contact events to queue transitions and de-duplicated
  offered calls.

  Input: PCollection[SourceRecord], one contact event each (an EventBridge
  event or its bare `detail`).
  Output: dict `queue_transitions`: PCollection[QueueTransition], ENTERED at
  each QUEUED event's enqueue time and LEFT (with `entered_at` and the
  outcome) for each CONNECTED_TO_AGENT, DISCONNECTED or COMPLETED event of
  a queued contact, at the time it left the queue, event-timed, one per
  event delivered (at least once: re-deliveries, and the DISCONNECTED and
  COMPLETED that repeat a LEFT); `offered`: PCollection[OfferedCall] from
  the CONNECTED_TO_AGENT events and the DISCONNECTED or COMPLETED events
  of contacts no agent took, the first arrival of each `contactId` within
  the de-duplication TTL
  (later ones counted in `amazon_connect_events/duplicates`), event-timed
  when it left the queue; `dead_letters`: PCollection[DeadLetter]. Counters
  in `amazon_connect_events`: `queue_entered`, `queue_left`, and the
  events passed over by reason (PASSED_OVER_REASONS).
  """

  def __init__(
    self,
    dedupe_ttl: Duration,
    queue_key: str,
    rules: FieldRules = DEFAULT_FIELD_RULES,
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    self._shards = shards
    if queue_key not in QUEUE_KEYS:
      raise ValueError(f'queue key must be one of {", ".join(QUEUE_KEYS)}, got {queue_key!r}')
    self._dedupe_ttl = dedupe_ttl
    self._queue_key = queue_key
    self._rules = rules

  def expand(self, records):
    # Typed outputs: the stateful steps downstream then get the records'
    # RowCoder (transforms/records.py) instead of pickling each one.
    parsed = records | 'Parse' >> beam.ParDo(
      _ParseContactEventsFn(self._queue_key, self._rules)
    ).with_output_types(
      OfferedCall, **{parsing.DEAD_LETTERS: DeadLetter, QUEUE_TRANSITIONS: QueueTransition}
    ).with_outputs(parsing.DEAD_LETTERS, QUEUE_TRANSITIONS, main='offered')
    offered = parsed.offered | 'Dedupe' >> DedupeByKey(
      lambda c: c.call_id,
      lambda c: c.timestamp,
      self._dedupe_ttl,
      METRICS_NAMESPACE,
      shards=self._shards,
    )
    return {
      QUEUE_TRANSITIONS: parsed[QUEUE_TRANSITIONS],
      'offered': offered,
      'dead_letters': parsed.dead_letters,
    }
