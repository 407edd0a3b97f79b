"""The Amazon Connect agent event stream (`--agent_event_format=amazon_connect`).

Each record is one agent event as Amazon Connect writes it to the agent
event stream's Kinesis data stream, one JSON object per record. Field names
and values are Amazon's; every one read here is documented in:

- Amazon Connect Administrator Guide, "Agent event streams data model"
  (https://docs.aws.amazon.com/connect/latest/adminguide/agent-event-stream-model.html):
  AgentEvent (`AgentARN`, `EventTimestamp`, `EventType` LOGIN | LOGOUT |
  STATE_CHANGE | HEART_BEAT, `CurrentAgentSnapshot`, `PreviousAgentSnapshot`
  "not applicable to LOGIN or LOGOUT"), AgentSnapshot (`AgentStatus` with
  `ARN`, `Name`, `StartTimestamp`; `NextAgentStatus`; `Configuration`;
  `Contacts`), RoutingProfile (`InboundQueues`, `DefaultOutboundQueue`),
  Contact (`ContactId`, `Channel`, `InitiationMethod`, `State`,
  `StateStartTimestamp`, `ConnectedToAgentTimestamp`, `QueueTimestamp`,
  `Queue`); HEART_BEAT "is published every 120 seconds if there are no
  other events published during that interval" and "up to an hour after an
  agent has logged off";
- "Sample agent event stream"
  (https://docs.aws.amazon.com/connect/latest/adminguide/sample-agent-event-stream.html):
  `RoutingProfile.Concurrency` [{`Channel`, `MaximumSlots`,
  `AvailableSlots`}], `InboundQueues[].Channels`, an agent queue
  (`.../queue/agent/<agent id>`, `Name` null: "agent queues don't have
  names"), `NextAgentStatus.EnqueuedTimestamp` (the data model spells it
  `EnqueueTimestamp`: either is read);
- "Determine the contact center agent's ACW (After Contact Work) time"
  (https://docs.aws.amazon.com/connect/latest/adminguide/determine-acw-time.html):
  a contact `ENDED` is in ACW from its `StateStartTimestamp`; it left ACW
  at the `EventTimestamp` of the STATE_CHANGE whose current snapshot no
  longer lists it;
- "About contact states"
  (https://docs.aws.amazon.com/connect/latest/adminguide/about-contact-states.html):
  what each `Contacts[].State` means (INCOMING, PENDING, CONNECTING,
  CONNECTED, CONNECTED_ONHOLD, PAUSED, MISSED, ERROR, ENDED, REJECTED);
- "Real-time metrics definitions"
  (https://docs.aws.amazon.com/connect/latest/adminguide/real-time-metrics-definitions.html):
  Agent Activity of an agent with concurrent contacts, in Amazon's order
  (Error, Missed, Rejected, On contact, After contact work, Incoming, custom
  status, Available), and Available: a contact "in a missed or error state
  ... prevents the agent from taking any more contacts until they are
  flipped back to routable";
- "About agent status" (Administrator Guide, metrics-agent-status): Available,
  custom statuses such as Break or Training, Offline; and the Amazon
  Connect API Reference, "AgentStatus" / "AgentStatusSummary"
  (https://docs.aws.amazon.com/connect/latest/APIReference/API_AgentStatus.html):
  `Type` ROUTABLE | CUSTOM | OFFLINE.

| AgentEvent   | agent event field                     | rule                      |
|--------------|---------------------------------------|---------------------------|
| `agent_id`   | `AgentARN`                            | the agent (user) id the   |
|              |                                       | ARN ends with (`.../agen- |
|              |                                       | t/<id>`)                  |
| `timestamp`  | `EventTimestamp`                      | ISO-8601; the event time  |
| `state`      | `CurrentAgentSnapshot.Contacts[].St-  | see STATE_OF_CONTACT and  |
|              | ate`, else `AgentStatus.Type`         | the status rule below     |
| `since`      | the deciding contact's `StateStartTi- | raised to `EventTimestam- |
|              | mestamp`, else `AgentStatus.StartTim- | p` when `PreviousAgentSn- |
|              | estamp`                               | apshot` shows another st- |
|              |                                       | ate or other queues; nev- |
|              |                                       | er after `timestamp`      |
| `reason`     | `AgentStatus.Name` (custom status);   | not_ready only            |
|              | Missed, Rejected, Error (contacts)    |                           |
| `queues`     | `RoutingProfile.InboundQueues[].ARN`  | the queue id the ARN ends |
|              |                                       | with (the ARN with `queu- |
|              |                                       | e_key='arn'`); agent      |
|              |                                       | queues left out           |
| `channels`   | `RoutingProfile.Concurrency[].Chann-  | lower case, `MaximumSlo-  |
|              | el`                                   | ts` 0 left out; voice     |
|              |                                       | without `Concurrency`     |
| `contact_id` | the deciding contact's `ContactId`    | '' when a status decides  |
| `heartbeat`  | `EventType` HEART_BEAT                | the rest from the snapsh- |
|              |                                       | ot all the same           |

The state: the contacts of the current snapshot decide first, in Amazon's
Agent Activity order (CONTACT_PRECEDENCE; within a rank, the contact in its
state longest). With no contact: `AgentStatus.Type` ROUTABLE is available
(not_ready with the next status's name while a `NextAgentStatus` pauses
routing), CUSTOM is not_ready with the status name as reason, OFFLINE is
logged_out; a record without `Type` (Amazon's samples show none) is read
by the name of Connect's two system statuses, Available (ROUTABLE) and
Offline (OFFLINE), any other name being a custom status (Administrator
Guide, "Real-time metrics definitions", NPT: "their CCP status is other than
Available or Offline"). LOGOUT is logged_out at its `EventTimestamp`
whatever the snapshot says. The full table is in docs/vendor_formats.md.

Every record is untrusted: any problem is a parsing.InvalidRecord with a
specific reason (`wrong_stream` for a contact record or contact event on
the agent topic), never another exception.
"""

import re
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from options.config import DEFAULT_FIELD_RULES, AgentConfig, FieldRules
from transforms import parsing
from transforms.event_time import at_event_time
from transforms.formats import fields, streams
from transforms.formats.agent_seed import AGENT_EVENTS, MAX_LIST_ITEMS
from transforms.formats.amazon_connect import CHANNELS, QUEUE_KEYS
from transforms.records import (
  AGENT_AFTER_CONTACT_WORK,
  AGENT_AVAILABLE,
  AGENT_LOGGED_OUT,
  AGENT_NOT_READY,
  AGENT_ON_CONTACT,
  AGENT_ON_HOLD,
  VOICE,
  AgentEvent,
  DeadLetter,
  SourceRecord,
)

METRICS_NAMESPACE = 'amazon_connect_agents'
# What `wrong_stream` dead letters say this format reads.
AGENT_STREAM = 'the Amazon Connect agent event stream (--agent_event_format=amazon_connect)'

LOGIN = 'LOGIN'
LOGOUT = 'LOGOUT'
STATE_CHANGE = 'STATE_CHANGE'
HEART_BEAT = 'HEART_BEAT'
EVENT_TYPES = (LOGIN, LOGOUT, STATE_CHANGE, HEART_BEAT)

ROUTABLE = 'ROUTABLE'
CUSTOM = 'CUSTOM'
OFFLINE = 'OFFLINE'
_STATUS_TYPES = {t: t for t in (ROUTABLE, CUSTOM, OFFLINE)}
# Connect's two system statuses, by name, for records without
# `AgentStatus.Type`; every other status is one the instance created.
SYSTEM_STATUS_TYPES = {'Available': ROUTABLE, 'Offline': OFFLINE}

# The documented values of `Contacts[].State`, in Amazon's order of Agent
# Activity for concurrent contacts ("Real-time metrics definitions"): the
# first rank any contact is in decides. Each value: (agent state, reason).
# - ERROR, MISSED, REJECTED: the agent takes no contact until the contact
#   is cleared (DismissUserContact: "returns the agent to an available
#   state"): not ready, Amazon's activity name as the reason.
# - CONNECTED, CONNECTED_ONHOLD: on contact, on hold. PAUSED (tasks only)
#   keeps its slot busy like a held contact ("Active" slots count it):
#   on hold. A connected contact outranks a held one (the agent is working
#   on it), both within Amazon's "On contact".
# - ENDED: "the agent has started doing ACW for that contact".
# - INCOMING, PENDING (queued callbacks presented to the agent),
#   CONNECTING (ringing): Amazon's "Incoming", after ACW; its slot is
#   unavailable ("Availability"), so the agent is on that contact.
CONTACT_PRECEDENCE: Tuple[Tuple[Tuple[str, ...], str, str], ...] = (
  (('ERROR',), AGENT_NOT_READY, 'Error'),
  (('MISSED',), AGENT_NOT_READY, 'Missed'),
  (('REJECTED',), AGENT_NOT_READY, 'Rejected'),
  (('CONNECTED',), AGENT_ON_CONTACT, ''),
  (('CONNECTED_ONHOLD', 'PAUSED'), AGENT_ON_HOLD, ''),
  (('ENDED',), AGENT_AFTER_CONTACT_WORK, ''),
  (('INCOMING', 'PENDING', 'CONNECTING'), AGENT_ON_CONTACT, ''),
)
STATE_OF_CONTACT = {
  contact_state: (rank, agent_state, reason)
  for rank, (contact_states, agent_state, reason) in enumerate(CONTACT_PRECEDENCE)
  for contact_state in contact_states
}

# ARNs end in `agent/<id>` and `queue/<id>`; only that tail is required, the
# rest of an ARN is Amazon's business (as for contact events).
_AGENT_ARN = re.compile(r'.*/agent/([^/]+)')
_QUEUE_ARN = re.compile(r'.*/queue/([^/]+)')
# An agent's own queue (transfers to that agent), in `InboundQueues` beside
# the routing profile's queues: not a queue of the floor.
_AGENT_QUEUE_ARN = re.compile(r'.*/queue/agent/[^/]+')


class _Decision(NamedTuple):
  state: str
  reason: str
  since: int
  contact_id: str


def _objects(obj: Dict[str, Any], name: str, required: bool = False) -> List[Dict[str, Any]]:
  """The list of objects `name`; [] when missing or null unless required."""
  value = obj.get(name)
  if value is None:
    if required:
      raise parsing.InvalidRecord('missing_field', f'"{name}" is missing or null')
    return []
  if not isinstance(value, list):
    raise parsing.InvalidRecord(
      'wrong_type', f'"{name}" must be a list or null, got {type(value).__name__}'
    )
  if len(value) > MAX_LIST_ITEMS:
    raise parsing.InvalidRecord('value_out_of_range', f'"{name}" has over {MAX_LIST_ITEMS} items')
  for item in value:
    if not isinstance(item, dict):
      raise parsing.InvalidRecord(
        'wrong_type', f'"{name}" items must be objects, got {type(item).__name__}'
      )
  return value


def _agent_id(arn: str) -> str:
  match = _AGENT_ARN.fullmatch(arn)
  if match is None:
    raise parsing.InvalidRecord(
      'malformed_agent_arn', f'"AgentARN" does not end in agent/<id>: {arn[:60]!r}'
    )
  return match.group(1)


def _queues(profile: Dict[str, Any], queue_key: str, rules: FieldRules) -> List[str]:
  queues = set()
  for queue in _objects(profile, 'InboundQueues', required=True):
    arn = parsing.required_str(queue, 'ARN', rules)
    if _AGENT_QUEUE_ARN.fullmatch(arn):
      continue
    match = _QUEUE_ARN.fullmatch(arn)
    if match is None:
      raise parsing.InvalidRecord(
        'malformed_queue_arn', f'"InboundQueues[].ARN" does not end in queue/<id>: {arn[:60]!r}'
      )
    queues.add(arn if queue_key == 'arn' else match.group(1))
  return sorted(queues)


def _channels(profile: Dict[str, Any], rules: FieldRules) -> List[str]:
  if profile.get('Concurrency') is None:
    # Records of the first data model (2019-05-25, "Channel Valid values:
    # VOICE") have no Concurrency: voice was the only channel.
    return [VOICE]
  channels = set()
  for slots in _objects(profile, 'Concurrency'):
    name = parsing.required_str(slots, 'Channel', rules)
    if name.upper() not in CHANNELS:
      raise parsing.InvalidRecord(
        'unknown_enum_value',
        f'"Concurrency[].Channel" {name[:40]!r} is not one of {", ".join(sorted(CHANNELS))}',
      )
    # A channel the profile gives no slot is not served.
    if slots.get('MaximumSlots') is None or parsing.required_non_negative_number(
      slots, 'MaximumSlots'
    ):
      channels.add(CHANNELS[name.upper()])
  return sorted(channels)


def _contact_decision(snapshot: Dict[str, Any], rules: FieldRules) -> Optional[_Decision]:
  """The state the snapshot's contacts give, or None when it lists none."""
  best = None
  for contact in _objects(snapshot, 'Contacts'):
    contact_state = parsing.required_str(contact, 'State', rules)
    if contact_state not in STATE_OF_CONTACT:
      raise parsing.InvalidRecord(
        'unknown_enum_value',
        f'"Contacts[].State" {contact_state[:40]!r} is not one of '
        f'{", ".join(sorted(STATE_OF_CONTACT))}',
      )
    rank, state, reason = STATE_OF_CONTACT[contact_state]
    contact_id = parsing.required_str(contact, 'ContactId', rules)
    started = fields.required_iso_time_ms(contact, 'StateStartTimestamp', rules)
    key = (rank, started, contact_id)
    if best is None or key < best[0]:
      best = (key, _Decision(state, reason, started, contact_id))
  return None if best is None else best[1]


def _status_decision(snapshot: Dict[str, Any], rules: FieldRules) -> _Decision:
  """The state the agent status gives (no contact decides)."""
  status = fields.required_object(snapshot, 'AgentStatus')
  name = parsing.required_str(status, 'Name', rules)
  started = fields.required_iso_time_ms(status, 'StartTimestamp', rules)
  if status.get('Type') is None:
    kind = SYSTEM_STATUS_TYPES.get(name, CUSTOM)
  else:
    kind = fields.required_enum(status, 'Type', _STATUS_TYPES, rules)
  if kind == OFFLINE:
    return _Decision(AGENT_LOGGED_OUT, '', started, '')
  if kind == CUSTOM:
    return _Decision(AGENT_NOT_READY, name, started, '')
  following = fields.optional_object(snapshot, 'NextAgentStatus')
  if following is None:
    return _Decision(AGENT_AVAILABLE, '', started, '')
  # Routable, but the agent chose a next status, which "pauses new contacts
  # being routed to them" from when they chose it.
  spelling = 'EnqueuedTimestamp' if 'EnqueuedTimestamp' in following else 'EnqueueTimestamp'
  paused = fields.optional_iso_time_ms(following, spelling, rules)
  return _Decision(
    AGENT_NOT_READY,
    parsing.required_str(following, 'Name', rules),
    started if paused is None else max(started, paused),
    '',
  )


def _decision(snapshot: Dict[str, Any], rules: FieldRules) -> _Decision:
  """The agent's state in a snapshot: its contacts', else its status's."""
  return _contact_decision(snapshot, rules) or _status_decision(snapshot, rules)


def _changed(
  previous: Dict[str, Any],
  decision: _Decision,
  queues: List[str],
  channels: List[str],
  queue_key: str,
  rules: FieldRules,
) -> bool:
  """Whether the previous snapshot shows the agent in another state (state,
  reason or contact) or serving other queues or channels."""
  before = _decision(previous, rules)
  if (before.state, before.reason, before.contact_id) != (
    decision.state,
    decision.reason,
    decision.contact_id,
  ):
    return True
  profile = fields.required_object(
    fields.required_object(previous, 'Configuration'), 'RoutingProfile'
  )
  return (_queues(profile, queue_key, rules), _channels(profile, rules)) != (queues, channels)


def _agent_event(obj: Dict[str, Any], queue_key: str, rules: FieldRules) -> Tuple[str, AgentEvent]:
  """(`EventType`, the AgentEvent) of a decoded record."""
  event_type = parsing.required_str(obj, 'EventType', rules)
  if event_type not in EVENT_TYPES:
    raise parsing.InvalidRecord(
      'unknown_event_type',
      f'"EventType" {event_type[:40]!r} is not one of {", ".join(EVENT_TYPES)}',
    )
  agent_id = _agent_id(parsing.required_str(obj, 'AgentARN', rules))
  timestamp = fields.required_iso_time_ms(obj, 'EventTimestamp', rules)
  # A logout needs only who and when; every other event is read off the
  # agent's current snapshot.
  snapshot = (
    fields.optional_object(obj, 'CurrentAgentSnapshot')
    if event_type == LOGOUT
    else fields.required_object(obj, 'CurrentAgentSnapshot')
  )
  queues: List[str] = []
  channels: List[str] = []
  if snapshot is not None:
    profile = fields.required_object(
      fields.required_object(snapshot, 'Configuration'), 'RoutingProfile'
    )
    queues = _queues(profile, queue_key, rules)
    channels = _channels(profile, rules)
  if event_type == LOGOUT:
    return event_type, AgentEvent(
      agent_id, timestamp, timestamp, AGENT_LOGGED_OUT, '', queues, channels
    )
  decision = _decision(snapshot, rules)
  previous = fields.optional_object(obj, 'PreviousAgentSnapshot')
  if previous is not None and _changed(previous, decision, queues, channels, queue_key, rules):
    # The agent entered this state (or these queues) with this event: from
    # its time, which a contact's or status's own start may precede (a
    # contact that was in ACW behind a connected chat; a status set before
    # the contacts this event cleared: "Determine ... ACW time", the
    # contact "left ACW" at the EventTimestamp). So a state never starts
    # before the one it ends.
    decision = decision._replace(since=max(decision.since, timestamp))
  return event_type, AgentEvent(
    agent_id=agent_id,
    timestamp=timestamp,
    # A start after the event is clock skew between Amazon's services.
    since=min(decision.since, timestamp),
    state=decision.state,
    reason=decision.reason,
    queues=queues,
    channels=channels,
    contact_id=decision.contact_id,
    heartbeat=event_type == HEART_BEAT,
  )


def _typed_agent_event(raw: bytes, rules: FieldRules, queue_key: str) -> Tuple[str, AgentEvent]:
  obj = parsing.decode_json_object(raw)
  try:
    return _agent_event(obj, queue_key, rules)
  except parsing.InvalidRecord as error:
    raise streams.refuse_other_stream(obj, AGENT_STREAM, error) from None


def parse_connect_agent_event(
  raw: bytes, rules: FieldRules = DEFAULT_FIELD_RULES, queue_key: str = 'name'
) -> AgentEvent:
  """One raw agent event as an AgentEvent. `queue_key` is a key of
  QUEUE_KEYS: `name` gives queue ids, `arn` queue ARNs. Raises
  parsing.InvalidRecord with a specific reason on any problem (`wrong_stream`
  for a record of another Amazon Connect stream), and nothing else."""
  return _typed_agent_event(raw, rules, queue_key)[1]


def connect_agent_event_time_ms(
  raw: bytes,
  above_ms: Optional[int] = None,
  rules: FieldRules = DEFAULT_FIELD_RULES,
  queue_key: str = 'name',
) -> Optional[int]:
  """The `EventTimestamp` of a valid agent event (above `above_ms` if
  given), else None: the replay's watermark. Heartbeats count: they are
  event time passing for the agent."""
  return fields.event_time_above(
    lambda r: parse_connect_agent_event(r, rules, queue_key), raw, above_ms
  )


class _ParseConnectAgentEventsFn(beam.DoFn):
  def __init__(self, rules: FieldRules, queue_key: str):
    self._rules = rules
    self._queue_key = queue_key
    self._parsed = Metrics.counter(METRICS_NAMESPACE, 'parsed')
    self._by_type = {t: Metrics.counter(METRICS_NAMESPACE, t.lower()) for t in EVENT_TYPES}

  def process(self, record: SourceRecord) -> Iterator:
    try:
      event_type, event = _typed_agent_event(record.raw, self._rules, self._queue_key)
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, METRICS_NAMESPACE)
      return
    self._parsed.inc()
    self._by_type[event_type].inc()
    yield at_event_time(event, event.timestamp)


class ConnectAgentEvents(beam.PTransform):
  """Amazon Connect agent events to AgentEvent records.

  Input: PCollection[SourceRecord].
  Output: dict `agent_events`: PCollection[AgentEvent], event-timed at
  `EventTimestamp`; `dead_letters`: PCollection[DeadLetter] with a specific
  reason. Counted in `amazon_connect_agents/parsed`, per EventType
  (`login`, `logout`, `state_change`, `heart_beat`) and per dead-letter
  reason. Re-deliveries (Kinesis delivers at least once) pass: the
  agent-state step resolves them (an event is an idempotent statement of a
  state from a time).
  """

  def __init__(self, config: AgentConfig, queue_key: str = 'name'):
    super().__init__()
    if queue_key not in QUEUE_KEYS:
      raise ValueError(f'queue key must be one of {", ".join(QUEUE_KEYS)}, got {queue_key!r}')
    self._rules = config.field_rules
    self._queue_key = queue_key

  def expand(self, records):
    parsed = records | 'Parse' >> beam.ParDo(
      _ParseConnectAgentEventsFn(self._rules, self._queue_key)
    ).with_output_types(AgentEvent, **{parsing.DEAD_LETTERS: DeadLetter}).with_outputs(
      parsing.DEAD_LETTERS, main='events'
    )
    return {AGENT_EVENTS: parsed.events, parsing.DEAD_LETTERS: parsed.dead_letters}
