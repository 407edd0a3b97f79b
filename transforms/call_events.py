"""ParseCallEvents: raw `cc-call-logs` records to validated, event-timed
`CallEvent`s."""
from typing import Iterator, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms import parsing
from transforms.event_time import at_event_time
from transforms.records import CallEvent, SourceRecord

DEAD_LETTERS = parsing.DEAD_LETTERS
METRICS_EVENT_TYPE = 'CALL_ENDED'


def parse_call_event(
    raw: bytes,
    rules: parsing.FieldRules = parsing.DEFAULT_FIELD_RULES) -> CallEvent:
  """Validates one raw record against the call-event schema.

  Raises parsing.InvalidRecord with a specific reason on any problem, and
  nothing else whatever the bytes.
  """
  obj = parsing.decode_json_object(raw)
  return CallEvent(
      call_uuid=parsing.required_str(obj, 'call_uuid', rules),
      event_type=parsing.required_str(obj, 'event_type', rules),
      timestamp=parsing.required_event_time_ms(obj, 'timestamp', rules),
      queue_id=parsing.required_str(obj, 'queue_id', rules),
      abandoned=parsing.required_bool(obj, 'abandoned'),
      wait_time_seconds=parsing.required_non_negative_number(
          obj, 'wait_time_seconds', rules.max_wait_seconds),
      agent_id=parsing.optional_str(obj, 'agent_id', rules))


def call_event_time_ms(
    raw: bytes,
    above_ms: Optional[int] = None,
    rules: parsing.FieldRules = parsing.DEFAULT_FIELD_RULES) -> Optional[int]:
  """The event time of a valid call event of any type (above `above_ms`
  if given), else None: every valid event advances a replayed watermark,
  whatever its type."""
  return parsing.event_time_or_none(
      lambda r: parse_call_event(r, rules), raw, above_ms)


class _ParseCallEventsFn(beam.DoFn):
  def __init__(self, rules: parsing.FieldRules):
    self._rules = rules
    self._parsed = Metrics.counter('call_events', 'parsed')
    self._other_types = Metrics.counter('call_events', 'other_event_types')

  def process(self, record: SourceRecord) -> Iterator:
    try:
      event = parse_call_event(record.raw, self._rules)
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, 'call_events')
      return
    if event.event_type != METRICS_EVENT_TYPE:
      # Lifecycle events (CALL_STARTED, CALL_QUEUED...) are valid but carry
      # nothing the metrics use; count them so their volume stays visible.
      self._other_types.inc()
      return
    self._parsed.inc()
    yield at_event_time(event, event.timestamp)


class ParseCallEvents(beam.PTransform):
  """Validates raw call-event records and stamps them with payload event time.

  Input: PCollection[SourceRecord].
  Outputs (a DoOutputsTuple):
    main: PCollection[CallEvent], `CALL_ENDED` events only, each timestamped
      with its payload `timestamp` (never broker or processing time).
    `dead_letters`: PCollection[DeadLetter] with a specific reason for every
      malformed, mistyped, absurd or oversized record.
  Well-formed events of other types are counted (`other_event_types`) and
  passed over. `rules`: the limits on ids, waits and event time
  (parsing.FieldRules).
  """
  def __init__(self, rules: parsing.FieldRules = parsing.DEFAULT_FIELD_RULES):
    super().__init__()
    self._rules = rules

  def expand(self, records):
    return records | beam.ParDo(_ParseCallEventsFn(self._rules)).with_outputs(
        DEAD_LETTERS, main='events')
