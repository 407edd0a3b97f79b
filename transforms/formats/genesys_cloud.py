"""Genesys Cloud conversation detail events (`genesys_cloud` format).

Each record is one notification, as Amazon EventBridge delivers it from a
Genesys Cloud partner event bus: an EventBridge event whose `detail` holds
`topicName`, `version`, `eventBody` and `metadata`; the bare notification
(`{topicName, version, eventBody, metadata}` at the top level) is accepted
too. Field names are Genesys' (platform API client docs,
`AcdStartDetailEventTopicAcdStartEvent` and
`AcdEndDetailEventTopicAcdEndEvent`); `eventBody.` is left out below.

| OfferedCall    | Genesys field                   | rule                     |
|----------------|---------------------------------|--------------------------|
| (filter)       | `topicName`                     | (1)                      |
| `call_id`      | `conversationId`, `sessionId`   | "conversationId:session- |
|                |                                 | Id"; de-duplicated (2)   |
| `queue_id`     | `queueId` of the acd.end        |                          |
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
(3) transforms/acd_pairing.py, per conversationId:sessionId.

Also checked: the conversation id in `topicName` equals
`eventBody.conversationId` (`topic_mismatch`), `mediaType`, `participantId`
and `disconnectType` are strings or null. Other fields (`ani`, `dnis`,
`connectedDurationMs`...) are neither checked nor used. Valid acd.start and
acd.end records advance the replay watermark; passed-over topics do not.
"""

import re
from typing import Any, Dict, Iterator, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from options.config import DEFAULT_FIELD_RULES, FieldRules
from transforms import parsing
from transforms.acd_pairing import PairAcdSessions
from transforms.dedupe import DedupeByKey
from transforms.event_time import at_event_time
from transforms.formats import fields
from transforms.records import (
  ABANDONED,
  ACD_END,
  ACD_START,
  ANSWERED,
  FLOW_OUT,
  UNKNOWN_OUTCOME,
  AcdEvent,
  DeadLetter,
  SourceRecord,
)

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


def _notification(obj: Dict[str, Any]) -> Dict[str, Any]:
  """The notification inside an EventBridge event, or the bare one."""
  return fields.required_object(obj, 'detail') if 'detail' in obj else obj


def parse_genesys_event(raw: bytes, rules: FieldRules = DEFAULT_FIELD_RULES) -> Optional[AcdEvent]:
  """One raw record as an AcdEvent; None for a valid notification of another
  topic. Raises parsing.InvalidRecord with a specific reason."""
  notification = _notification(parsing.decode_json_object(raw))
  topic = parsing.required_str(notification, 'topicName', rules)
  match = _ACD_TOPIC.fullmatch(topic)
  if match is None:
    if topic.startswith(_GENESYS_TOPIC_PREFIX):
      return None
    raise parsing.InvalidRecord('unknown_topic', f'"topicName" {topic[:100]!r} is no Genesys topic')
  topic_conversation, kind = match.groups()
  body = fields.required_object(notification, 'eventBody')
  timestamp = parsing.required_event_time_ms(body, 'eventTime', rules)
  conversation_id = parsing.required_str(body, 'conversationId', rules)
  if conversation_id != topic_conversation:
    raise parsing.InvalidRecord(
      'topic_mismatch',
      f'"topicName" names conversation {topic_conversation[:60]!r}, '
      f'"eventBody.conversationId" is {conversation_id[:60]!r}',
    )
  session_id = parsing.required_str(body, 'sessionId', rules)
  queue_id = parsing.required_str(body, 'queueId', rules)
  for name in ('mediaType', 'participantId', 'disconnectType'):
    parsing.optional_str(body, name, rules)
  outcome = None
  if kind == ACD_END:
    acd_outcome = parsing.required_str(body, 'acdOutcome', rules)
    outcome = _ACD_OUTCOMES.get(acd_outcome)
    if outcome is None:
      raise parsing.InvalidRecord(
        'unknown_enum_value',
        f'"acdOutcome" {acd_outcome[:40]!r} is not one of {", ".join(sorted(_ACD_OUTCOMES))}',
      )
  return AcdEvent(
    kind=kind,
    call_id=f'{conversation_id}:{session_id}',
    queue_id=queue_id,
    timestamp=timestamp,
    outcome=outcome,
  )


def _acd_event(raw: bytes, rules: FieldRules) -> AcdEvent:
  event = parse_genesys_event(raw, rules)
  if event is None:
    # Only for the watermark scan below: a passed-over topic has no event
    # time the metrics use.
    raise parsing.InvalidRecord('other_topic', 'not an acd topic')
  return event


def genesys_event_time_ms(
  raw: bytes, above_ms: Optional[int] = None, rules: FieldRules = DEFAULT_FIELD_RULES
) -> Optional[int]:
  """The event time of a valid acd.start or acd.end (above `above_ms` if
  given), else None (for the replay watermark)."""
  return fields.event_time_above(lambda r: _acd_event(r, rules), raw, above_ms)


class _ParseGenesysFn(beam.DoFn):
  def __init__(self, rules: FieldRules):
    self._rules = rules
    self._starts = Metrics.counter(METRICS_NAMESPACE, 'acd_starts')
    self._ends = Metrics.counter(METRICS_NAMESPACE, 'acd_ends')
    self._other_topics = Metrics.counter(METRICS_NAMESPACE, 'other_topics')

  def process(self, record: SourceRecord) -> Iterator:
    try:
      event = parse_genesys_event(record.raw, self._rules)
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
  at the acd.end; `dead_letters`: PCollection[DeadLetter].
  Re-deliveries (EventBridge delivers at least once) are dropped per topic
  and session before pairing (`genesys_cloud/duplicates`).
  """

  def __init__(
    self,
    dedupe_ttl_seconds: int,
    max_queue_wait_seconds: int,
    max_out_of_orderness_seconds: int,
    rules: FieldRules = DEFAULT_FIELD_RULES,
  ):
    super().__init__()
    self._dedupe_ttl = dedupe_ttl_seconds
    self._rules = rules
    self._pairing = PairAcdSessions(
      max_queue_wait_seconds, max_out_of_orderness_seconds, METRICS_NAMESPACE
    )

  def expand(self, records):
    # Typed outputs: the stateful steps downstream then get the records'
    # RowCoder (transforms/records.py) instead of pickling each one.
    parsed = records | 'Parse' >> beam.ParDo(_ParseGenesysFn(self._rules)).with_output_types(
      AcdEvent, **{parsing.DEAD_LETTERS: DeadLetter}
    ).with_outputs(parsing.DEAD_LETTERS, main='events')
    events = parsed.events | 'Dedupe' >> DedupeByKey(
      lambda e: f'{e.kind}|{e.call_id}', lambda e: e.timestamp, self._dedupe_ttl, METRICS_NAMESPACE
    )
    return {
      'offered': events | 'Pair' >> self._pairing,
      'dead_letters': parsed.dead_letters,
    }
