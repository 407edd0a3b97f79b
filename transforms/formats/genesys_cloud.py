"""Genesys Cloud conversation detail events (`genesys_cloud` format).

Each record is one notification, delivered by any of Genesys' paths
(docs/vendor_formats.md, "Genesys Cloud delivery paths"):
- Amazon EventBridge from a Genesys Cloud partner event bus: an EventBridge
  event whose `detail` holds `topicName`, `version`, `eventBody` and
  `metadata`;
- the notification itself (`{topicName, version, eventBody, metadata}` at
  the top level), as the notification API's WebSocket channel sends it;
- the bare event body, with no `topicName`, as Process Automation triggers
  and their webhooks deliver it. Its topic is the one a trigger names
  (`--genesys_trigger_topic`), or else told by the body's own fields: only
  `acd.end` carries `acdOutcome`, only the `user.*` topics carry `userId`,
  and `acd.start` carries `queueId` (platform API client docs,
  `AcdStartDetailEventTopicAcdStartEvent`,
  `AcdEndDetailEventTopicAcdEndEvent`, `UserEndDetailEventTopicUserEndEvent`).
Field names are Genesys'; `eventBody.` is left out below.

| OfferedCall    | Genesys field                   | rule                     |
|----------------|---------------------------------|--------------------------|
| (filter)       | `topicName`                     | (1)                      |
| `call_id`      | `conversationId`, `sessionId`   | "conversationId:session- |
|                |                                 | Id"; de-duplicated (2)   |
| `queue_id`     | `queueId` of the acd.end        |                          |
| `channel`      | `mediaType` of the acd.end      | lower case (MEDIA_TYPES) |
| `timestamp`    | `eventTime` (epoch ms), acd.end | decides the window       |
| `outcome`      | `acdOutcome`                    | ANSWERED, ABANDON (as    |
|                |                                 | ABANDONED), FLOW_OUT,    |
|                |                                 | UNKNOWN: all offered     |
| `wait_seconds` | acd.end `eventTime` - acd.start | paired (3); None when    |
|                | `eventTime`                     | the start is missing     |

(1) `v2.detail.events.conversation.{id}.acd.end` is one offered call,
`.acd.start` gives its wait; other `v2.` topics (`customer.end`,
`flow.end`...) are passed over and counted (`other_topics`); a topic
outside `v2.` is a dead letter (`unknown_topic`).
(2) Per topic and call id: EventBridge delivers at least once.
(3) transforms/acd_pairing.py, per conversationId:sessionId; a start waits
for its end `--genesys_max_queue_wait_seconds`, a callback's
`--genesys_callback_max_queue_wait_seconds` (callbacks wait hours).

Also checked: the conversation id in `topicName` equals
`eventBody.conversationId` (`topic_mismatch`), `mediaType` is one of
Genesys' documented values, `participantId` and `disconnectType` are
strings or null. Other fields (`ani`, `dnis`, `connectedDurationMs`...) are
neither checked nor used. Valid acd.start and acd.end records advance the
replay watermark; passed-over topics do not.
"""

import re
from typing import Any, Dict, Iterator, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Duration

from options.config import DEFAULT_FIELD_RULES, FieldRules
from transforms import parsing
from transforms.acd_pairing import PairAcdSessions
from transforms.dedupe import DedupeByKey
from transforms.event_time import at_event_time
from transforms.formats import fields, streams
from transforms.records import (
  ABANDONED,
  ACD_END,
  ACD_START,
  ANSWERED,
  FLOW_OUT,
  QUEUE_ENTERED,
  QUEUE_LEFT,
  UNKNOWN_OUTCOME,
  AcdEvent,
  DeadLetter,
  QueueTransition,
  SourceRecord,
)
from transforms.sharding import DEFAULT_STATE_SHARDS

METRICS_NAMESPACE = 'genesys_cloud'
# The conversation id is whatever sits between the prefix and the last two
# dot-separated parts, for acd topics.
_ACD_TOPIC = re.compile(r'v2\.detail\.events\.conversation\.([^.]+)\.(acd\.start|acd\.end)')
# Genesys notification topics all start with it; anything else is not a
# Genesys Cloud notification at all.
_GENESYS_TOPIC_PREFIX = 'v2.'
_ACD_OUTCOMES = {
  'ANSWERED': ANSWERED,
  'ABANDON': ABANDONED,
  'FLOW_OUT': FLOW_OUT,
  'UNKNOWN': UNKNOWN_OUTCOME,
}
# `mediaType`'s documented values (MediaTypeEnum of the acd events), as
# channels (transforms/records.py CHANNELS).
MEDIA_TYPES = {
  name: name.lower()
  for name in (
    'VOICE',
    'CHAT',
    'EMAIL',
    'CALLBACK',
    'MESSAGE',
    'VIDEO',
    'COBROWSE',
    'SCREENSHARE',
    'UNKNOWN',
  )
}


def _body_kind(body: Dict[str, Any], trigger_kind: Optional[str]) -> Optional[str]:
  """The acd topic of a bare event body, None for another topic."""
  if trigger_kind is not None:
    return trigger_kind
  if 'acdOutcome' in body:
    return ACD_END
  if 'userId' in body or 'queueId' not in body:
    return None
  return ACD_START


def _acd_fields(
  notification: Dict[str, Any], rules: FieldRules, trigger_kind: Optional[str], raw: bytes
) -> Optional[AcdEvent]:
  topic = notification.get('topicName')
  if topic is None and 'eventBody' not in notification:
    # A bare body: every conversation detail event has these two.
    body = notification
    parsing.required_event_time_ms(body, 'eventTime', rules)
    parsing.required_str(body, 'conversationId', rules)
    kind = _body_kind(body, trigger_kind)
    if kind is None:
      return None
    topic_conversation = None
  else:
    topic = parsing.required_str(notification, 'topicName', rules)
    match = _ACD_TOPIC.fullmatch(topic)
    if match is None:
      if topic.startswith(_GENESYS_TOPIC_PREFIX):
        return None
      raise parsing.InvalidRecord(
        'unknown_topic', f'"topicName" {topic[:100]!r} is no Genesys topic'
      )
    topic_conversation, kind = match.groups()
    body = fields.required_object(notification, 'eventBody')
  timestamp = parsing.required_event_time_ms(body, 'eventTime', rules)
  conversation_id = parsing.required_str(body, 'conversationId', rules)
  if topic_conversation is not None and conversation_id != topic_conversation:
    raise parsing.InvalidRecord(
      'topic_mismatch',
      f'"topicName" names conversation {topic_conversation[:60]!r}, '
      f'"eventBody.conversationId" is {conversation_id[:60]!r}',
    )
  session_id = parsing.required_str(body, 'sessionId', rules)
  queue_id = parsing.required_str(body, 'queueId', rules)
  channel = fields.required_enum(body, 'mediaType', MEDIA_TYPES, rules)
  for name in ('participantId', 'disconnectType'):
    parsing.optional_str(body, name, rules)
  outcome = None
  if kind == ACD_END:
    outcome = fields.required_enum(body, 'acdOutcome', _ACD_OUTCOMES, rules)
  return AcdEvent(
    kind=kind,
    call_id=f'{conversation_id}:{session_id}',
    queue_id=queue_id,
    timestamp=timestamp,
    outcome=outcome,
    channel=channel,
    raw=fields.raw_text(raw),
  )


def parse_genesys_event(
  raw: bytes, rules: FieldRules = DEFAULT_FIELD_RULES, trigger_kind: Optional[str] = None
) -> Optional[AcdEvent]:
  """One raw record as an AcdEvent; None for a valid notification of another
  topic. `trigger_kind` (trigger_topic_kind) names the topic of bare
  bodies. Raises parsing.InvalidRecord with a specific reason
  (`wrong_stream` for a record of another stream). The event's `raw` is
  the record as text."""
  obj = parsing.decode_json_object(raw)
  try:
    notification = fields.required_object(obj, 'detail') if 'detail' in obj else obj
    return _acd_fields(notification, rules, trigger_kind, raw)
  except parsing.InvalidRecord as error:
    raise streams.refuse_other_stream(obj, streams.GENESYS_CLOUD, error) from None


def _acd_event(raw: bytes, rules: FieldRules, trigger_kind: Optional[str]) -> AcdEvent:
  event = parse_genesys_event(raw, rules, trigger_kind)
  if event is None:
    # Only for the watermark scan below: a passed-over topic has no event
    # time the metrics use.
    raise parsing.InvalidRecord('other_topic', 'not an acd topic')
  return event


def genesys_event_time_ms(
  raw: bytes,
  above_ms: Optional[int] = None,
  rules: FieldRules = DEFAULT_FIELD_RULES,
  trigger_kind: Optional[str] = None,
) -> Optional[int]:
  """The event time of a valid acd.start or acd.end (above `above_ms` if
  given), else None (for the replay watermark)."""
  return fields.event_time_above(lambda r: _acd_event(r, rules, trigger_kind), raw, above_ms)


def to_queue_transition(event: AcdEvent) -> QueueTransition:
  """The queue transition of an ACD session half: acd.start enters its
  queue, acd.end leaves it with its outcome (the session is the contact:
  a transfer to another queue is a new session)."""
  if event.kind == ACD_START:
    return QueueTransition(
      event.call_id, event.queue_id, event.channel, QUEUE_ENTERED, event.timestamp
    )
  return QueueTransition(
    event.call_id, event.queue_id, event.channel, QUEUE_LEFT, event.timestamp, None, event.outcome
  )


class _ParseGenesysFn(beam.DoFn):
  def __init__(self, rules: FieldRules, trigger_kind: Optional[str]):
    self._rules = rules
    self._trigger_kind = trigger_kind
    self._starts = Metrics.counter(METRICS_NAMESPACE, 'acd_starts')
    self._ends = Metrics.counter(METRICS_NAMESPACE, 'acd_ends')
    self._other_topics = Metrics.counter(METRICS_NAMESPACE, 'other_topics')

  def process(self, record: SourceRecord) -> Iterator:
    try:
      event = parse_genesys_event(record.raw, self._rules, self._trigger_kind)
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, METRICS_NAMESPACE)
      return
    if event is None:
      self._other_topics.inc()
      return
    (self._starts if event.kind == ACD_START else self._ends).inc()
    yield at_event_time(event, event.timestamp)


class GenesysOfferedCalls(beam.PTransform):
  """Genesys Cloud notifications to de-duplicated offered calls.

  Input: PCollection[SourceRecord].
  Output: dict `offered`: PCollection[OfferedCall], one per acd.end, with
  the wait its acd.start gives (see transforms/acd_pairing.py), event-timed
  at the acd.end; `queue_transitions`: PCollection[QueueTransition], each
  acd.start and acd.end as it came (LiveQueueStatus resolves duplicates
  and disorder); `dead_letters`: PCollection[DeadLetter].
  Re-deliveries (EventBridge delivers at least once) are dropped per topic
  and session before pairing (`genesys_cloud/duplicates`).
  """

  def __init__(
    self,
    dedupe_ttl: Duration,
    max_queue_wait: Duration,
    max_out_of_orderness: Duration,
    rules: FieldRules = DEFAULT_FIELD_RULES,
    callback_max_queue_wait: Optional[Duration] = None,
    trigger_kind: Optional[str] = None,
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    self._shards = shards
    self._dedupe_ttl = dedupe_ttl
    self._rules = rules
    self._trigger_kind = trigger_kind
    self._pairing = PairAcdSessions(
      max_queue_wait,
      max_out_of_orderness,
      METRICS_NAMESPACE,
      callback_max_queue_wait,
      shards=shards,
    )

  def expand(self, records):
    # Typed outputs: the stateful steps downstream then get the records'
    # RowCoder (transforms/records.py) instead of pickling each one.
    parsed = records | 'Parse' >> beam.ParDo(
      _ParseGenesysFn(self._rules, self._trigger_kind)
    ).with_output_types(AcdEvent, **{parsing.DEAD_LETTERS: DeadLetter}).with_outputs(
      parsing.DEAD_LETTERS, main='events'
    )
    events = parsed.events | 'Dedupe' >> DedupeByKey(
      lambda e: f'{e.kind}|{e.call_id}',
      lambda e: e.timestamp,
      self._dedupe_ttl,
      METRICS_NAMESPACE,
      shards=self._shards,
    )
    return {
      'offered': events | 'Pair' >> self._pairing,
      parsing.QUEUE_TRANSITIONS: parsed.events
      | 'QueueTransitions' >> beam.Map(to_queue_transition).with_output_types(QueueTransition),
      'dead_letters': parsed.dead_letters,
    }
