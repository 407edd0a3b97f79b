"""The product's own agent events (`--agent_event_format=seed`): one JSON
object per state change of an agent, and heartbeats.

    {"event_type": "AGENT_STATE", "agent_id": "A-101", "timestamp": <epoch ms>,
     "state": "not_ready", "reason": "Break", "queues": ["Q-101", "Q-102"],
     "channels": ["voice"], "contact_id": null}
    {"event_type": "AGENT_HEARTBEAT", "agent_id": "A-101", "timestamp": <epoch ms>}

Field mapping to AgentEvent (transforms/records.py):

| AgentEvent   | seed field     | rule                                        |
|--------------|----------------|---------------------------------------------|
| `agent_id`   | `agent_id`     | the agent's key                             |
| `timestamp`  | `timestamp`    | epoch ms; also `since`                      |
| `state`      | `state`        | one of AGENT_STATES                         |
| `reason`     | `reason`       | not_ready only (required there), else ''    |
| `queues`     | `queues`       | non-empty list of queue ids                 |
| `channels`   | `channels`     | optional list of CHANNELS, default voice    |
| `contact_id` | `contact_id`   | optional string or null                     |
| `heartbeat`  | `event_type`   | AGENT_HEARTBEAT: agent_id and timestamp only |
"""

from typing import Any, Dict, Iterator, List, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from options.config import DEFAULT_FIELD_RULES, FieldRules
from transforms import parsing
from transforms.event_time import at_event_time
from transforms.records import (
  AGENT_NOT_READY,
  AGENT_STATES,
  CHANNELS,
  VOICE,
  AgentEvent,
  DeadLetter,
  SourceRecord,
)

METRICS_NAMESPACE = 'agent_events'
AGENT_EVENTS = 'agent_events'
AGENT_STATE = 'AGENT_STATE'
AGENT_HEARTBEAT = 'AGENT_HEARTBEAT'
# More queues or channels than this on one agent is no agent's
# configuration; the list becomes state and rows.
MAX_LIST_ITEMS = 1000


def _str_list(obj: Dict[str, Any], name: str, rules: FieldRules) -> List[str]:
  value = obj.get(name)
  if not isinstance(value, list) or not value:
    raise parsing.InvalidRecord(
      'missing_field' if value is None else 'wrong_type',
      f'"{name}" must be a non-empty list of strings',
    )
  if len(value) > MAX_LIST_ITEMS:
    raise parsing.InvalidRecord('value_out_of_range', f'"{name}" has over {MAX_LIST_ITEMS} items')
  items = [parsing.required_str({name: v}, name, rules) for v in value]
  return sorted(set(items))


def parse_agent_event(raw: bytes, rules: FieldRules = DEFAULT_FIELD_RULES) -> AgentEvent:
  """Validates one seed agent event. Raises parsing.InvalidRecord with a
  specific reason on any problem, and nothing else whatever the bytes."""
  obj = parsing.decode_json_object(raw)
  event_type = parsing.required_str(obj, 'event_type', rules)
  agent_id = parsing.required_str(obj, 'agent_id', rules)
  timestamp = parsing.required_event_time_ms(obj, 'timestamp', rules)
  if event_type == AGENT_HEARTBEAT:
    return AgentEvent(agent_id, timestamp, timestamp, '', '', [], [], '', True)
  if event_type != AGENT_STATE:
    raise parsing.InvalidRecord(
      'unknown_event_type', f'"event_type" must be {AGENT_STATE} or {AGENT_HEARTBEAT}'
    )
  state = parsing.required_str(obj, 'state', rules)
  if state not in AGENT_STATES:
    raise parsing.InvalidRecord(
      'unknown_enum_value', f'"state" {state[:40]!r} is not one of {", ".join(AGENT_STATES)}'
    )
  reason = (
    parsing.required_str(obj, 'reason', rules)
    if state == AGENT_NOT_READY
    else (parsing.optional_str(obj, 'reason', rules) or '')
  )
  if state != AGENT_NOT_READY:
    reason = ''
  channels = [VOICE] if obj.get('channels') is None else _str_list(obj, 'channels', rules)
  unknown = [c for c in channels if c not in CHANNELS]
  if unknown:
    raise parsing.InvalidRecord(
      'unknown_enum_value', f'"channels" {unknown[0][:40]!r} is not one of {", ".join(CHANNELS)}'
    )
  return AgentEvent(
    agent_id=agent_id,
    timestamp=timestamp,
    since=timestamp,
    state=state,
    reason=reason,
    queues=_str_list(obj, 'queues', rules),
    channels=channels,
    contact_id=parsing.optional_str(obj, 'contact_id', rules) or '',
  )


def agent_event_time_ms(
  raw: bytes, above_ms: Optional[int] = None, rules: FieldRules = DEFAULT_FIELD_RULES
) -> Optional[int]:
  """The event time of a valid agent event (above `above_ms` if given),
  else None: the replay's watermark."""
  return parsing.event_time_or_none(lambda r: parse_agent_event(r, rules), raw, above_ms)


class _ParseAgentEventsFn(beam.DoFn):
  def __init__(self, rules: FieldRules):
    self._rules = rules
    self._parsed = Metrics.counter(METRICS_NAMESPACE, 'parsed')

  def process(self, record: SourceRecord) -> Iterator:
    try:
      event = parse_agent_event(record.raw, self._rules)
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, METRICS_NAMESPACE)
      return
    self._parsed.inc()
    yield at_event_time(event, event.timestamp)


class SeedAgentEvents(beam.PTransform):
  """Seed agent events to AgentEvent records.

  Input: PCollection[SourceRecord].
  Output: dict `agent_events`: PCollection[AgentEvent], event-timed;
  `dead_letters`: PCollection[DeadLetter] with a specific reason.
  Re-deliveries pass: the agent-state step resolves them (an event is an
  idempotent statement of a state from a time).
  """

  def __init__(self, rules: FieldRules = DEFAULT_FIELD_RULES):
    super().__init__()
    self._rules = rules

  def expand(self, records):
    parsed = records | 'Parse' >> beam.ParDo(_ParseAgentEventsFn(self._rules)).with_output_types(
      AgentEvent, **{parsing.DEAD_LETTERS: DeadLetter}
    ).with_outputs(parsing.DEAD_LETTERS, main='events')
    return {AGENT_EVENTS: parsed.events, parsing.DEAD_LETTERS: parsed.dead_letters}
