"""Amazon Connect contact records (`amazon_connect` format).

Each record is one contact record (CTR) as the contact-record export
streams it through Kinesis to Kafka, one JSON object per record. Field names
and values are Amazon's (Amazon Connect Administrator Guide, "Contact
records data model" and "Contact initiation methods"); times are ISO-8601
strings (transforms/formats/fields.py). Which contacts count, and how, is
Amazon's own definition (Administrator Guide, "Real-time metrics
definitions": Abandoned is "disconnected by the customer while in the
queue", and "contacts queued for callback are not counted as abandoned");
the table per record kind is in docs/vendor_formats.md.

| OfferedCall    | CTR field                         | rule                   |
|----------------|-----------------------------------|------------------------|
| (filter)       | `Queue`                           | an object: queued;     |
|                |                                   | null: passed over      |
|                |                                   | (`never_queued`)       |
| (filter)       | `InitiationMethod`, `Channel`     | customer contacts only |
|                |                                   | (INBOUND_METHODS; API  |
|                |                                   | except for VOICE);     |
|                |                                   | others passed over     |
|                |                                   | (`not_inbound`)        |
| `call_id`      | `ContactId`                       | de-duplicated (records |
|                |                                   | come at least once)    |
| `queue_id`     | `Queue.Name` (`Queue.ARN` with    |                        |
|                | `--connect_queue_key=arn`)        |                        |
| `channel`      | `Channel` lower case; `callback`  | VOICE, CHAT, TASK,     |
|                | for InitiationMethod CALLBACK     | EMAIL                  |
| `timestamp`    | `Queue.DequeueTimestamp`          | decides the window     |
| `outcome`      | see `connect_outcome`             |                        |
| `wait_seconds` | `Queue.Duration` (seconds)        | always known           |
| `record_updat- | `LastUpdateTimestamp`             | more than the de-dup   |
|  ed_at`        |                                   | TTL after the contact  |
|                |                                   | ended: an update       |

Also checked: `InitiationTimestamp` (ISO-8601), `DisconnectTimestamp` and
`LastUpdateTimestamp` (ISO-8601 or null), `Queue.EnqueueTimestamp`
(ISO-8601, not after `DequeueTimestamp`: `dequeue_before_enqueue`), the
other queue key (string or null), `Agent` and `TransferredToEndpoint`
(objects or null), `NextContactId` and `DisconnectReason` (strings or
null). The first arrival of a `ContactId` wins; a later copy within the
de-duplication TTL is a duplicate. A copy written more than the TTL after
the contact ended (disconnect or end of after-contact work) is an update:
it bypasses the de-duplication, whose memory of the id is gone or going,
and leaves on `record_updates`, so it can never count twice whatever the
de-duplication still remembers. Queued contacts advance the replay
watermark with their `DequeueTimestamp`.
"""

from typing import Any, Dict, Iterator, NamedTuple, Optional, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Duration

from options.config import DEFAULT_FIELD_RULES, FieldRules, checked_millis
from transforms import parsing
from transforms.dedupe import DedupeByKey
from transforms.event_time import at_event_time
from transforms.formats import fields, streams
from transforms.records import (
  ABANDONED,
  ANSWERED,
  CALLBACK,
  CHAT,
  EMAIL,
  FLOW_OUT,
  TASK,
  UNKNOWN_OUTCOME,
  VOICE,
  DeadLetter,
  OfferedCall,
  SourceRecord,
)
from transforms.sharding import DEFAULT_STATE_SHARDS

METRICS_NAMESPACE = 'amazon_connect'
RECORD_UPDATES = 'record_updates'
QUEUE_KEYS = {'name': 'Name', 'arn': 'ARN'}
# `Channel`'s documented values ("Contact records data model").
CHANNELS = {'VOICE': VOICE, 'CHAT': CHAT, 'TASK': TASK, 'EMAIL': EMAIL}
# `InitiationMethod`'s documented values ("Contact initiation methods"):
# those that put a customer's contact into a queue are offered; the others
# are the contact center's own legs (an agent's or a campaign's outbound
# call, a supervisor monitoring, the disconnect flow, an agent's e-mail
# reply, an e-mail a flow sends), which a queue may route but which no
# customer waits for.
INBOUND_METHODS = frozenset(
  {'INBOUND', 'TRANSFER', 'QUEUE_TRANSFER', 'CALLBACK', 'API', 'WEBRTC_API'}
)
OWN_LEG_METHODS = frozenset(
  {'OUTBOUND', 'EXTERNAL_OUTBOUND', 'MONITOR', 'DISCONNECT', 'AGENT_REPLY', 'FLOW'}
)
_INITIATION_METHODS = {m: m for m in INBOUND_METHODS | OWN_LEG_METHODS}
# API on VOICE is StartOutboundVoiceContact (an outbound call placed in a
# queue for an agent); on chats, tasks and e-mails it is how a customer's
# contact is started (StartChatContact...).
OUTBOUND_API_CHANNEL = 'VOICE'
CUSTOMER_DISCONNECT = 'CUSTOMER_DISCONNECT'
# CTR times have whole seconds: a customer who hung up in queue left it at
# the second of the disconnect.
_SAME_SECOND_MS = 1000


class PassedOver(NamedTuple):
  """A valid contact record that is no offered contact; `reason` names the
  counter (`never_queued`, `not_inbound`)."""

  reason: str


def connect_outcome(
  connected: bool,
  transferred: bool,
  disconnect_reason: Optional[str],
  dequeued_ms: int,
  disconnected_ms: Optional[int],
) -> str:
  """The outcome of a queued contact, by Amazon's definitions:
  ANSWERED when an agent was connected; FLOW_OUT when it left the queue
  otherwise than by the customer hanging up in it (a transfer out, shown by
  `TransferredToEndpoint` or `NextContactId`, which is also how a queued
  callback's inbound leg continues; a flow disconnect; a time-out; any
  other disconnect reason; a customer who hung up later than the dequeue,
  after the flow had taken the contact out of the queue); ABANDONED when
  the customer disconnected while in the queue; UNKNOWN when the record
  does not say (no `DisconnectReason`)."""
  if connected:
    return ANSWERED
  if transferred:
    return FLOW_OUT
  if disconnect_reason is None:
    return UNKNOWN_OUTCOME
  if disconnect_reason != CUSTOMER_DISCONNECT:
    return FLOW_OUT
  if disconnected_ms is not None and disconnected_ms - dequeued_ms >= _SAME_SECOND_MS:
    return FLOW_OUT
  return ABANDONED


def _contact_end_ms(obj: Dict[str, Any], agent: Optional[Dict[str, Any]], rules) -> Optional[int]:
  """When the contact's first record is written: its disconnect, or the
  end of the agent's after-contact work."""
  ends = [fields.optional_iso_time_ms(obj, 'DisconnectTimestamp', rules)]
  if agent is not None:
    ends.append(fields.optional_iso_time_ms(agent, 'AfterContactWorkEndTimestamp', rules))
  known = [end for end in ends if end is not None]
  return max(known) if known else None


def _contact_record(
  obj: Dict[str, Any],
  queue_key: str,
  rules: FieldRules,
  update_after_ms: Optional[int],
  raw: bytes,
) -> Union[OfferedCall, PassedOver]:
  contact_id = parsing.required_str(obj, 'ContactId', rules)
  channel = fields.required_enum(obj, 'Channel', CHANNELS, rules)
  method = fields.required_enum(obj, 'InitiationMethod', _INITIATION_METHODS, rules)
  fields.required_iso_time_ms(obj, 'InitiationTimestamp', rules)
  disconnected_ms = fields.optional_iso_time_ms(obj, 'DisconnectTimestamp', rules)
  updated_ms = fields.optional_iso_time_ms(obj, 'LastUpdateTimestamp', rules)
  disconnect_reason = parsing.optional_str(obj, 'DisconnectReason', rules)
  next_contact = parsing.optional_str(obj, 'NextContactId', rules)
  transferred_to = fields.optional_object(obj, 'TransferredToEndpoint')
  queue = fields.optional_object(obj, 'Queue')
  agent = fields.optional_object(obj, 'Agent')
  connected_ms = (
    None
    if agent is None
    else fields.optional_iso_time_ms(agent, 'ConnectedToAgentTimestamp', rules)
  )
  ended_ms = _contact_end_ms(obj, agent, rules)
  if queue is None:
    return PassedOver('never_queued')
  key_field = QUEUE_KEYS[queue_key]
  queue_id = parsing.required_str(queue, key_field, rules)
  for other in QUEUE_KEYS.values():
    if other != key_field:
      parsing.optional_str(queue, other, rules)
  enqueued_ms = fields.required_iso_time_ms(queue, 'EnqueueTimestamp', rules)
  dequeued_ms = fields.required_iso_time_ms(queue, 'DequeueTimestamp', rules)
  if dequeued_ms < enqueued_ms:
    raise parsing.InvalidRecord(
      'dequeue_before_enqueue',
      f'"Queue.DequeueTimestamp" is {enqueued_ms - dequeued_ms} ms before "Queue.EnqueueTimestamp"',
    )
  wait = parsing.required_non_negative_number(queue, 'Duration', rules.max_wait_seconds)
  if method in OWN_LEG_METHODS or (method == 'API' and channel == CHANNELS[OUTBOUND_API_CHANNEL]):
    return PassedOver('not_inbound')
  return OfferedCall(
    call_id=contact_id,
    queue_id=queue_id,
    timestamp=dequeued_ms,
    outcome=connect_outcome(
      connected_ms is not None,
      transferred_to is not None or next_contact is not None,
      disconnect_reason,
      dequeued_ms,
      disconnected_ms,
    ),
    wait_seconds=wait,
    channel=CALLBACK if method == 'CALLBACK' else channel,
    record_updated_at=(
      updated_ms
      if update_after_ms is not None
      and updated_ms is not None
      and ended_ms is not None
      and updated_ms - ended_ms > update_after_ms
      else None
    ),
    raw=fields.raw_text(raw),
  )


def parse_contact_record(
  raw: bytes,
  queue_key: str = 'name',
  rules: FieldRules = DEFAULT_FIELD_RULES,
  update_after_ms: Optional[int] = None,
) -> Union[OfferedCall, PassedOver]:
  """One raw CTR as an OfferedCall, or PassedOver for a valid contact that
  is not offered. `queue_key` is a key of QUEUE_KEYS; a copy whose
  `LastUpdateTimestamp` is more than `update_after_ms` after the contact
  ended gets `record_updated_at`. Raises parsing.InvalidRecord with a
  specific reason (`wrong_stream` for a record of another stream). The
  call's `raw` is the record as text."""
  obj = parsing.decode_json_object(raw)
  try:
    return _contact_record(obj, queue_key, rules, update_after_ms, raw)
  except parsing.InvalidRecord as error:
    raise streams.refuse_other_stream(obj, streams.AMAZON_CONNECT, error) from None


def contact_record_time_ms(
  raw: bytes,
  above_ms: Optional[int] = None,
  queue_key: str = 'name',
  rules: FieldRules = DEFAULT_FIELD_RULES,
) -> Optional[int]:
  """The `Queue.DequeueTimestamp` of a valid queued CTR (above `above_ms`
  if given), else None (for the replay watermark)."""

  def queued(record: bytes) -> OfferedCall:
    offered = parse_contact_record(record, queue_key, rules)
    if isinstance(offered, PassedOver):
      # A contact that is not offered has no event time the metrics use.
      raise parsing.InvalidRecord(offered.reason, 'not an offered contact')
    return offered

  return fields.event_time_above(queued, raw, above_ms)


class _ParseConnectFn(beam.DoFn):
  def __init__(self, queue_key: str, rules: FieldRules, update_after_ms: int):
    self._queue_key = queue_key
    self._rules = rules
    self._update_after_ms = update_after_ms
    self._queued = Metrics.counter(METRICS_NAMESPACE, 'queued_contacts')
    self._updates = Metrics.counter(METRICS_NAMESPACE, 'record_updates')
    self._passed_over = {
      reason: Metrics.counter(METRICS_NAMESPACE, reason)
      for reason in ('never_queued', 'not_inbound')
    }

  def process(self, record: SourceRecord) -> Iterator:
    try:
      offered = parse_contact_record(
        record.raw, self._queue_key, self._rules, self._update_after_ms
      )
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, METRICS_NAMESPACE)
      return
    if isinstance(offered, PassedOver):
      self._passed_over[offered.reason].inc()
      return
    if offered.record_updated_at is not None:
      self._updates.inc()
      yield beam.pvalue.TaggedOutput(RECORD_UPDATES, at_event_time(offered, offered.timestamp))
      return
    self._queued.inc()
    yield at_event_time(offered, offered.timestamp)


class ConnectOfferedCalls(beam.PTransform):
  """Amazon Connect contact records to de-duplicated offered calls.

  Input: PCollection[SourceRecord].
  Output: dict `offered`: PCollection[OfferedCall], the first arrival of
  each offered `ContactId` within the de-duplication TTL (later ones
  counted in `amazon_connect/duplicates`), event-timed at
  `Queue.DequeueTimestamp`; `record_updates`: PCollection[OfferedCall],
  the copies written more than the TTL after the contact ended (counted in
  `amazon_connect/record_updates`, never in `offered`); `dead_letters`:
  PCollection[DeadLetter].
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
    self._rules = rules
    if queue_key not in QUEUE_KEYS:
      raise ValueError(f'queue key must be one of {", ".join(QUEUE_KEYS)}, got {queue_key!r}')
    self._dedupe_ttl = dedupe_ttl
    # Copies written more than the TTL after the contact ended are updates.
    self._update_after_ms = checked_millis(dedupe_ttl, 'dedupe TTL', zero_ok=False)
    self._queue_key = queue_key

  def expand(self, records):
    # Typed outputs: the stateful steps downstream then get the records'
    # RowCoder (transforms/records.py) instead of pickling each one.
    parsed = records | 'Parse' >> beam.ParDo(
      _ParseConnectFn(self._queue_key, self._rules, self._update_after_ms)
    ).with_output_types(
      OfferedCall, **{parsing.DEAD_LETTERS: DeadLetter, RECORD_UPDATES: OfferedCall}
    ).with_outputs(parsing.DEAD_LETTERS, RECORD_UPDATES, main='offered')
    offered = parsed.offered | 'Dedupe' >> DedupeByKey(
      lambda c: c.call_id,
      lambda c: c.timestamp,
      self._dedupe_ttl,
      METRICS_NAMESPACE,
      shards=self._shards,
    )
    return {
      'offered': offered,
      RECORD_UPDATES: parsed[RECORD_UPDATES],
      'dead_letters': parsed.dead_letters,
    }
