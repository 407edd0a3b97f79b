"""The seed's call-event format (`--call_event_format=seed`, the default): the
`cc-call-logs` JSON records of the seed document, one per call event.

Field mapping to OfferedCall (transforms/records.py):

| OfferedCall    | seed field                 | rule                          |
|----------------|----------------------------|-------------------------------|
| (filter)       | `event_type`               | `CALL_ENDED`: one offered     |
|                |                            | call; other types passed over |
| `call_id`      | `call_uuid`                | de-duplication key            |
| `queue_id`     | `queue_id`                 |                               |
| `timestamp`    | `timestamp` (epoch ms)     | decides the window            |
| `outcome`      | `abandoned` (boolean)      | true ABANDONED, false         |
|                |                            | ANSWERED (no flow-outs)       |
| `wait_seconds` | `wait_time_seconds` (>= 0) | always known                  |
| `channel`      | (none)                     | voice: the seed's calls       |

`agent_id` (string or null) is validated, not used. Every valid event of
any type advances the replay watermark.

Queue transitions (the live floor, transforms/queue_status.py), channel
voice: `CALL_QUEUED` enters the call's queue at `timestamp`;
`CALL_ANSWERED` leaves it (ANSWERED); `CALL_ENDED` leaves it too, ABANDONED
when `abandoned` is true, else ANSWERED (a call answered earlier has left
already: its end changes nothing). `CALL_STARTED` is before the queue.
"""

from typing import Any, Dict, Iterator, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Duration

from options.config import DEFAULT_FIELD_RULES, FieldRules
from transforms import parsing
from transforms.dedupe import DedupeByKey
from transforms.event_time import at_event_time
from transforms.formats import fields, streams
from transforms.records import (
  ABANDONED,
  ANSWERED,
  QUEUE_ENTERED,
  QUEUE_LEFT,
  VOICE,
  CallEvent,
  DeadLetter,
  OfferedCall,
  QueueTransition,
  SourceRecord,
)
from transforms.sharding import DEFAULT_STATE_SHARDS

DEAD_LETTERS = parsing.DEAD_LETTERS
METRICS_EVENT_TYPE = 'CALL_ENDED'
METRICS_NAMESPACE = 'call_events'
QUEUE_TRANSITIONS = parsing.QUEUE_TRANSITIONS


def parse_call_event(raw: bytes, rules: FieldRules = DEFAULT_FIELD_RULES) -> CallEvent:
  """Validates one raw record against the call-event schema.

  Raises parsing.InvalidRecord with a specific reason on any problem
  (`wrong_stream` for a record of another stream), and nothing else
  whatever the bytes.
  """
  obj = parsing.decode_json_object(raw)
  try:
    return _call_event(obj, rules)
  except parsing.InvalidRecord as error:
    raise streams.refuse_other_stream(obj, streams.SEED, error) from None


def to_queue_transition(event: CallEvent) -> Optional[QueueTransition]:
  """The queue transition a lifecycle event stands for, None for one
  outside the queue (`CALL_STARTED`, unknown types)."""
  if event.event_type == 'CALL_QUEUED':
    kind, outcome = QUEUE_ENTERED, None
  elif event.event_type == 'CALL_ANSWERED':
    kind, outcome = QUEUE_LEFT, ANSWERED
  elif event.event_type == METRICS_EVENT_TYPE:
    kind, outcome = QUEUE_LEFT, ABANDONED if event.abandoned else ANSWERED
  else:
    return None
  return QueueTransition(
    event.call_uuid, event.queue_id, VOICE, kind, event.timestamp, None, outcome
  )


def _call_event(obj: Dict[str, Any], rules: FieldRules) -> CallEvent:
  return CallEvent(
    call_uuid=parsing.required_str(obj, 'call_uuid', rules),
    event_type=parsing.required_str(obj, 'event_type', rules),
    timestamp=parsing.required_event_time_ms(obj, 'timestamp', rules),
    queue_id=parsing.required_str(obj, 'queue_id', rules),
    abandoned=parsing.required_bool(obj, 'abandoned'),
    wait_time_seconds=parsing.required_non_negative_number(
      obj, 'wait_time_seconds', rules.max_wait_seconds
    ),
    agent_id=parsing.optional_str(obj, 'agent_id', rules),
  )


def call_event_time_ms(
  raw: bytes, above_ms: Optional[int] = None, rules: FieldRules = DEFAULT_FIELD_RULES
) -> Optional[int]:
  """The event time of a valid call event of any type (above `above_ms`
  if given), else None: every valid event advances a replayed watermark,
  whatever its type."""
  return parsing.event_time_or_none(lambda r: parse_call_event(r, rules), raw, above_ms)


def to_offered_call(event: CallEvent, raw: str = '') -> OfferedCall:
  """The offered call a `CALL_ENDED` event stands for; `raw`: the event's
  record as delivered (OfferedCall.raw)."""
  return OfferedCall(
    call_id=event.call_uuid,
    queue_id=event.queue_id,
    timestamp=event.timestamp,
    outcome=ABANDONED if event.abandoned else ANSWERED,
    wait_seconds=event.wait_time_seconds,
    raw=raw,
  )


class _ParseCallEventsFn(beam.DoFn):
  def __init__(self, rules: FieldRules):
    self._rules = rules
    self._parsed = Metrics.counter(METRICS_NAMESPACE, 'parsed')
    self._other_types = Metrics.counter(METRICS_NAMESPACE, 'other_event_types')

  def process(self, record: SourceRecord) -> Iterator:
    try:
      event = parse_call_event(record.raw, self._rules)
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, METRICS_NAMESPACE)
      return
    transition = to_queue_transition(event)
    if transition is not None:
      yield beam.pvalue.TaggedOutput(
        QUEUE_TRANSITIONS, at_event_time(transition, transition.timestamp)
      )
    if event.event_type != METRICS_EVENT_TYPE:
      # Lifecycle events (CALL_STARTED, CALL_QUEUED...) carry nothing the
      # windowed metrics use; count them so their volume stays visible.
      self._other_types.inc()
      return
    self._parsed.inc()
    yield at_event_time(to_offered_call(event, fields.raw_text(record.raw)), event.timestamp)


class ParseCallEvents(beam.PTransform):
  """Validates raw call-event records and stamps them with payload event time.

  Input: PCollection[SourceRecord].
  Outputs (a DoOutputsTuple):
    main: PCollection[OfferedCall], one per `CALL_ENDED` event, timestamped
      with its payload `timestamp` (never broker or processing time).
    `queue_transitions`: PCollection[QueueTransition] of the queue entries
      and exits (`to_queue_transition`), event-timed.
    `dead_letters`: PCollection[DeadLetter] with a specific reason for every
      malformed, mistyped, absurd or oversized record.
  Well-formed events of other types are counted (`other_event_types`) and
  passed over. `rules`: the limits on ids, waits and event time
  (options/config.py: FieldRules).
  """

  def __init__(self, rules: FieldRules = DEFAULT_FIELD_RULES):
    super().__init__()
    self._rules = rules

  def expand(self, records):
    # Typed outputs: the stateful steps downstream then get the records'
    # RowCoder (transforms/records.py) instead of pickling each one.
    return records | beam.ParDo(_ParseCallEventsFn(self._rules)).with_output_types(
      OfferedCall, **{DEAD_LETTERS: DeadLetter, QUEUE_TRANSITIONS: QueueTransition}
    ).with_outputs(DEAD_LETTERS, QUEUE_TRANSITIONS, main='events')


class SeedOfferedCalls(beam.PTransform):
  """Seed call events to de-duplicated offered calls.

  Input: PCollection[SourceRecord].
  Output: dict `offered`: PCollection[OfferedCall], the first arrival of
  each `call_uuid` (re-deliveries counted in `call_events/duplicates`),
  event-timed; `queue_transitions`: PCollection[QueueTransition], every
  entry and exit as it came (LiveQueueStatus resolves duplicates);
  `dead_letters`: PCollection[DeadLetter].
  """

  def __init__(
    self,
    dedupe_ttl: Duration,
    rules: FieldRules = DEFAULT_FIELD_RULES,
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    self._shards = shards
    self._dedupe_ttl = dedupe_ttl
    self._rules = rules

  def expand(self, records):
    parsed = records | 'Parse' >> ParseCallEvents(self._rules)
    offered = parsed.events | 'Dedupe' >> DedupeByKey(
      lambda c: c.call_id,
      lambda c: c.timestamp,
      self._dedupe_ttl,
      METRICS_NAMESPACE,
      shards=self._shards,
    )
    return {
      'offered': offered,
      QUEUE_TRANSITIONS: parsed[QUEUE_TRANSITIONS],
      'dead_letters': parsed.dead_letters,
    }
