"""Genesys Cloud agent states (`--agent_event_format=genesys_cloud`): user
routing-status and presence notifications with the conversation user and
after-call-work detail events, merged per user into AgentEvent records.

Sources (field names and values are Genesys'; MyPureCloud
platform-client-sdk documentation, repositories
MyPureCloud/platform-client-sdk-python and -java, `docs/<Model>.md` and
`build/PureCloudPlatformClientV2/models/<model>.py`):
- `v2.users.{id}.routingStatus`: `UserRoutingStatusUserRoutingStatus`
  {`id` (the user), `routingStatus` {`status`, `startTime`}};
  `UserRoutingStatusRoutingStatus.status` is one of OFF_QUEUE, IDLE,
  INTERACTING, NOT_RESPONDING, COMMUNICATING, `startTime` "the timestamp
  when the agent went into this state" (ISO-8601). The topic name is that
  of the SDKs' topic maps (`v2.users.{id}.routingStatus`); Genesys' own
  pages also write it in lower case, so its last part is matched
  regardless of case.
- `v2.users.{id}.presence`: `PresenceEventUserPresence` {`source`,
  `presenceDefinition` (`PresenceEventOrganizationPresence` {`id`,
  `systemPresence`}), `primary`, `message`, `modifiedDate`}; the user is
  named by the topic only. `systemPresence` values are the SDKs'
  `SystemPresenceEnum` (java `docs/UserScheduleAdherence.md`): Available,
  Away, Busy, Offline, Idle, OnQueue, Meal, Training, Meeting, Break;
  Genesys writes them in several spellings (`OnQueue`, `On Queue`,
  `ON_QUEUE`), so case, spaces and underscores are ignored and the reason
  is the upper-case name (BREAK, ON_QUEUE...). `primary` false is a
  presence of a secondary source (`UserPresence.primary`: "whether or not
  to set this presence source as the primary"): passed over, counted.
- `v2.detail.events.conversation.{id}.user.start` / `.user.end` / `.acw`:
  `UserStartDetailEventTopicUserStartEvent`,
  `UserEndDetailEventTopicUserEndEvent`,
  `AcwDetailEventTopicAfterCallWorkEvent` {`eventTime` (epoch ms),
  `conversationId`, `sessionId`, `mediaType`, `userId`, `queueId`...; the
  acw also `wrapupCode`, `wrapupNotes`, `wrapupDurationMs`}. The acw event
  is read as the after-call-work completion ("Topic for analytics detail
  event type: AfterCallWorkEvent containing agent wrapups", the Genesys
  Developer Center's available topics, as reproduced in
  https://splunk.github.io/terraform-genesyscloud-aws/GenesysCloudTopics;
  the SDK describes no field, integration guides built on the topic call
  it the "ACW completion event").

Delivery, as transforms/formats/genesys_cloud.py: an Amazon EventBridge
event whose `detail` is the notification, the notification itself
(`topicName`, `eventBody`), or the bare event body. A bare body's kind is
told by its fields: `routingStatus` (user: its `id`), `presenceDefinition`
(no user in the body: a dead letter `missing_field`), else `eventTime`,
`conversationId` and `userId` make a conversation user event: `acw` with
any of `wrapupCode`, `wrapupNotes`, `wrapupDurationMs`, `user.end` with
`disconnectType` or one of its `*DurationMs` fields, else `user.start`; a
conversation body without `userId` (acd, customer, flow) is another topic.

Genesys names no queues in these events: `--queue_members` (user id ->
queue ids) does. A user not in it is passed over and counted
(`genesys_agents/users_without_queues`).

Genesys' definitions (Genesys Cloud Resource Center, glossary "Agent
status", https://help.mypurecloud.com/glossary/agent-status/, and "Routing
status"): On Queue (IDLE) "not currently on an interaction"; Interacting
"handling an interaction with a customer or completing after-call work";
Communicating "on a non-ACD call"; Not Responding "did not answer an
offered interaction ... does not receive new interactions"; Available,
Busy, Away, Break, Meal, Meeting, Training "not On Queue and has chosen
the user status"; Offline "logged off Genesys Cloud". Interacting covers
both on a contact and its wrap-up, so the user.start, user.end and acw
events tell them apart. The state mapping (docs/vendor_formats.md,
"Genesys Cloud agent states"), by precedence, on the latest notification
of each kind by its own time:
1. presence Offline, newer than the routing status: logged_out.
2. an open session (a user.start and no later user.end) started after the
   latest routing IDLE: on_contact, `contact_id` its conversationId.
3. a session ended (user.end) after the latest routing IDLE, with no acw
   event since and at most ACW_TIMEOUT_MS ago (the longest ACW timeout
   Genesys allows, `AcwSettings.timeoutMs`): after_contact_work.
4. the routing status (when the presence is newer, the presence says
   where routing stands: OnQueue leaves an on-queue status as it is, or
   makes it IDLE; any other presence is OFF_QUEUE): IDLE available;
   INTERACTING, COMMUNICATING on_contact (no contact known); NOT_RESPONDING
   not_ready 'NOT_RESPONDING'; OFF_QUEUE not_ready with the presence's
   system presence as reason (its definition id when it has none;
   'OFF_QUEUE' when the presence is unknown or OnQueue), logged_out when
   the presence is Offline.
4a. INTERACTING or COMMUNICATING that began before the latest acw event
   (or ACW timeout) and no session open or in ACW: the interactions it was
   about are over, available (the IDLE that follows may come later).
Channels: the mediaTypes of the sessions the state is about (on_contact,
after_contact_work), else those the user handled since logging in, else
voice.

An AgentEvent is written when the state, reason, contact or channels
change. `since` is when the state began per Genesys (the routing status's
`startTime`, the presence's `modifiedDate`, the session's user.start or
user.end) and `timestamp` the notification's time, both strictly after
the user's previous event's (+1 ms when a late notification changes the
state as of what the state already reflects): the agent-state step
resolves an agent's events by `since`, so they never go back.

Heartbeats: Genesys says nothing while a state holds (a meal, a long
call), and the agent-state step takes an agent silent for
`--agent_silence_timeout_seconds` as logged out. While a user is logged in, an
event-time timer writes a heartbeat AgentEvent (`heartbeat` True, as the
seed format's) every third of that timeout after its latest event, on
that grid, for at most MAX_HEARTBEAT_SILENCE_MS after its latest
notification (longer than any shift: its logout was most likely lost).

The state per user id (its natural key, step `UserState`) holds the
latest routing status and presence, the user's sessions and the last
AgentEvent written; VersionedStateCoder v1 (USER_STATE_CODER). A
notification older than the same kind's known one (for a session, than
the same session's start, end or acw) is counted (`stale_notifications`;
an exact repeat: `duplicates`) and changes nothing. Bounded: a logout
drops everything but the Offline presence and the logout time (a
notification older than the logout is stale), and an event-time timer
clears those too once the delayed watermark is `dedupe_ttl` (the flow's
duplicate horizon) past the user's last notification, if still logged out;
a finished session is kept `dedupe_ttl` (a re-delivered user.start reopens
nothing), any session at most MAX_SESSION_AGE_MS, at most
MAX_SESSIONS_PER_USER per user; users are those of `--queue_members`.
"""

import re
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer

from options.config import DEFAULT_FIELD_RULES, AgentConfig, FieldRules, millis
from transforms import parsing
from transforms.batching import BatchPerKey
from transforms.event_time import DelayedClock, at_event_time, ceil_to_grid
from transforms.formats import fields, streams
from transforms.formats.genesys_cloud import MEDIA_TYPES
from transforms.records import (
  AGENT_AFTER_CONTACT_WORK,
  AGENT_AVAILABLE,
  AGENT_LOGGED_OUT,
  AGENT_NOT_READY,
  AGENT_ON_CONTACT,
  VOICE,
  AgentEvent,
  DeadLetter,
  SourceRecord,
)
from transforms.state_coders import VersionedStateCoder

METRICS_NAMESPACE = 'genesys_agents'
AGENT_EVENTS = 'agent_events'

# GenesysUserNotification.kind
ROUTING_STATUS = 'routingStatus'
PRESENCE = 'presence'
USER_START = 'user.start'
USER_END = 'user.end'
ACW = 'acw'
SESSION_KINDS = (USER_START, USER_END, ACW)

# UserRoutingStatusRoutingStatus.status
OFF_QUEUE = 'OFF_QUEUE'
IDLE = 'IDLE'
INTERACTING = 'INTERACTING'
NOT_RESPONDING = 'NOT_RESPONDING'
COMMUNICATING = 'COMMUNICATING'
ROUTING_STATUSES = {s: s for s in (OFF_QUEUE, IDLE, INTERACTING, NOT_RESPONDING, COMMUNICATING)}
# SystemPresenceEnum, keyed by the value without case, spaces or
# underscores.
OFFLINE = 'OFFLINE'
ON_QUEUE = 'ON_QUEUE'
SYSTEM_PRESENCES = {
  name.replace('_', ''): name
  for name in (
    'AVAILABLE',
    'AWAY',
    'BUSY',
    OFFLINE,
    'IDLE',
    ON_QUEUE,
    'MEAL',
    'TRAINING',
    'MEETING',
    'BREAK',
  )
}

# AcwSettings.timeoutMs: "Max: 60 min". An ACW whose acw event never came
# (lost, or no wrap-up asked) ends then at the latest.
ACW_TIMEOUT_MS = 60 * 60 * 1000
# A session of a user that long behind the user's latest notification is
# dropped whatever its state: its end was lost (a state bound, not a rule
# of Genesys').
MAX_SESSION_AGE_MS = 24 * 60 * 60 * 1000
MAX_SESSIONS_PER_USER = 50
# Heartbeats of a logged-in user stop this long after its latest
# notification: longer than any shift, so the user most likely lost its
# logout.
MAX_HEARTBEAT_SILENCE_MS = 12 * 60 * 60 * 1000

_USER_TOPIC = re.compile(r'v2\.users\.([^.]+)\.((?i:routingstatus)|presence)')
_CONVERSATION_TOPIC = re.compile(
  r'v2\.detail\.events\.conversation\.([^.]+)\.(user\.start|user\.end|acw)'
)
_GENESYS_TOPIC_PREFIX = 'v2.'
_ACW_FIELDS = ('wrapupCode', 'wrapupNotes', 'wrapupDurationMs')
_USER_END_FIELDS = (
  'disconnectType',
  'interactingDurationMs',
  'heldDurationMs',
  'alertingDurationMs',
  'contactingDurationMs',
  'dialingDurationMs',
  'callbackDurationMs',
)


class GenesysUserNotification(NamedTuple):
  """One validated notification about a user.

  `kind`: ROUTING_STATUS, PRESENCE or one of SESSION_KINDS; `timestamp`:
  its own time (epoch ms: `startTime`, `modifiedDate` or `eventTime`).
  `value`: the routing status, the presence's system presence (upper case,
  '' when it has none) or the session's channel ('' when not told).
  `detail`: the presence definition id ('' when none), the session's
  conversationId.
  """

  kind: str
  user_id: str
  timestamp: int
  value: str
  detail: str


beam.coders.registry.register_coder(GenesysUserNotification, beam.coders.RowCoder)


class PassedOver(NamedTuple):
  """A valid record this format does not use; `counter` says why."""

  counter: str


_OTHER_TOPIC = PassedOver('other_topics')
_SECONDARY_PRESENCE = PassedOver('secondary_presences')


def _routing(body: Dict[str, Any], user_id: Optional[str], rules: FieldRules):
  body_user = parsing.optional_str(body, 'id', rules)
  if user_id is None:
    user_id = parsing.required_str(body, 'id', rules)
  elif body_user is not None and body_user != user_id:
    raise parsing.InvalidRecord(
      'topic_mismatch',
      f'"topicName" names user {user_id[:60]!r}, "eventBody.id" is {body_user[:60]!r}',
    )
  routing = fields.required_object(body, 'routingStatus')
  status = fields.required_enum(routing, 'status', ROUTING_STATUSES, rules)
  at = fields.required_iso_time_ms(routing, 'startTime', rules)
  return GenesysUserNotification(ROUTING_STATUS, user_id, at, status, '')


def _presence(body: Dict[str, Any], user_id: str, rules: FieldRules):
  definition = fields.required_object(body, 'presenceDefinition')
  definition_id = parsing.optional_str(definition, 'id', rules) or ''
  system = parsing.optional_str(definition, 'systemPresence', rules)
  if system is not None:
    key = system.replace(' ', '').replace('_', '').upper()
    if key not in SYSTEM_PRESENCES:
      raise parsing.InvalidRecord(
        'unknown_enum_value',
        f'"systemPresence" {system[:40]!r} is not one of {", ".join(SYSTEM_PRESENCES.values())}',
      )
    system = SYSTEM_PRESENCES[key]
  elif not definition_id:
    raise parsing.InvalidRecord(
      'missing_field', '"presenceDefinition" has neither "systemPresence" nor "id"'
    )
  at = fields.required_iso_time_ms(body, 'modifiedDate', rules)
  primary = body.get('primary')
  if primary is not None and not isinstance(primary, bool):
    raise parsing.InvalidRecord(
      'wrong_type', f'"primary" must be a boolean, got {type(primary).__name__}'
    )
  if primary is False:
    return _SECONDARY_PRESENCE
  return GenesysUserNotification(PRESENCE, user_id, at, system or '', definition_id)


def _session(body: Dict[str, Any], kind: str, topic_conversation: Optional[str], rules: FieldRules):
  at = parsing.required_event_time_ms(body, 'eventTime', rules)
  conversation_id = parsing.required_str(body, 'conversationId', rules)
  if topic_conversation is not None and conversation_id != topic_conversation:
    raise parsing.InvalidRecord(
      'topic_mismatch',
      f'"topicName" names conversation {topic_conversation[:60]!r}, '
      f'"eventBody.conversationId" is {conversation_id[:60]!r}',
    )
  user_id = parsing.required_str(body, 'userId', rules)
  channel = ''
  if body.get('mediaType') is not None:
    channel = fields.required_enum(body, 'mediaType', MEDIA_TYPES, rules)
  for name in ('sessionId', 'queueId', 'participantId', 'disconnectType', 'wrapupCode'):
    parsing.optional_str(body, name, rules)
  if body.get('wrapupDurationMs') is not None:
    parsing.required_non_negative_number(body, 'wrapupDurationMs')
  return GenesysUserNotification(kind, user_id, at, channel, conversation_id)


def _bare_body(body: Dict[str, Any], rules: FieldRules):
  if 'routingStatus' in body:
    return _routing(body, None, rules)
  if 'presenceDefinition' in body:
    raise parsing.InvalidRecord(
      'missing_field',
      'a bare presence body names no user (its topic does): deliver the notification',
    )
  if 'eventTime' not in body or 'conversationId' not in body:
    # Neither a user notification nor a detail event: say what is missing.
    parsing.required_str(body, 'topicName', rules)
  parsing.required_event_time_ms(body, 'eventTime', rules)
  parsing.required_str(body, 'conversationId', rules)
  if 'userId' not in body:
    return _OTHER_TOPIC
  if any(name in body for name in _ACW_FIELDS):
    kind = ACW
  elif any(name in body for name in _USER_END_FIELDS):
    kind = USER_END
  else:
    kind = USER_START
  return _session(body, kind, None, rules)


def _notification_fields(notification: Dict[str, Any], rules: FieldRules):
  if notification.get('topicName') is None and 'eventBody' not in notification:
    return _bare_body(notification, rules)
  topic = parsing.required_str(notification, 'topicName', rules)
  user_match = _USER_TOPIC.fullmatch(topic)
  conversation_match = None if user_match else _CONVERSATION_TOPIC.fullmatch(topic)
  if user_match is None and conversation_match is None:
    if topic.startswith(_GENESYS_TOPIC_PREFIX):
      return _OTHER_TOPIC
    raise parsing.InvalidRecord('unknown_topic', f'"topicName" {topic[:100]!r} is no Genesys topic')
  body = fields.required_object(notification, 'eventBody')
  if user_match is not None:
    user_id = parsing.required_str({'topicName': user_match.group(1)}, 'topicName', rules)
    if user_match.group(2) == PRESENCE:
      return _presence(body, user_id, rules)
    return _routing(body, user_id, rules)
  conversation_id, kind = conversation_match.groups()
  return _session(body, kind, conversation_id, rules)


def parse_genesys_agent_notification(
  raw: bytes, rules: FieldRules = DEFAULT_FIELD_RULES
) -> Union[GenesysUserNotification, PassedOver]:
  """One raw record as a GenesysUserNotification, or PassedOver for a valid
  record this format does not use. Raises parsing.InvalidRecord with a
  specific reason (`wrong_stream` for a record of another stream)."""
  obj = parsing.decode_json_object(raw)
  try:
    notification = fields.required_object(obj, 'detail') if 'detail' in obj else obj
    return _notification_fields(notification, rules)
  except parsing.InvalidRecord as error:
    raise streams.refuse_other_stream(obj, streams.GENESYS_CLOUD, error) from None


def _used_notification(raw: bytes, rules: FieldRules) -> GenesysUserNotification:
  parsed = parse_genesys_agent_notification(raw, rules)
  if isinstance(parsed, PassedOver):
    # Only for the watermark scan: a passed-over record has no event time
    # the agent flow uses.
    raise parsing.InvalidRecord(parsed.counter, 'passed over')
  return parsed


def genesys_agent_event_time_ms(
  raw: bytes, above_ms: Optional[int] = None, rules: FieldRules = DEFAULT_FIELD_RULES
) -> Optional[int]:
  """The event time of a valid routing-status, presence, user.start,
  user.end or acw notification (above `above_ms` if given), else None: the
  replay's watermark."""
  return fields.event_time_above(lambda r: _used_notification(r, rules), raw, above_ms)


class _ParseFn(beam.DoFn):
  def __init__(self, rules: FieldRules, queue_members: Dict[str, Tuple[str, ...]]):
    self._rules = rules
    self._members = queue_members
    self._kinds = {
      kind: Metrics.counter(METRICS_NAMESPACE, name)
      for kind, name in (
        (ROUTING_STATUS, 'routing_statuses'),
        (PRESENCE, 'presences'),
        (USER_START, 'user_starts'),
        (USER_END, 'user_ends'),
        (ACW, 'acws'),
      )
    }
    self._without_queues = Metrics.counter(METRICS_NAMESPACE, 'users_without_queues')

  def process(self, record: SourceRecord) -> Iterator:
    try:
      parsed = parse_genesys_agent_notification(record.raw, self._rules)
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, METRICS_NAMESPACE)
      return
    if isinstance(parsed, PassedOver):
      Metrics.counter(METRICS_NAMESPACE, parsed.counter).inc()
      return
    if parsed.user_id not in self._members:
      # Genesys users who take no queue's contacts (supervisors, admins)
      # or a membership file behind the org: no queue to count them in.
      self._without_queues.inc()
      return
    self._kinds[parsed.kind].inc()
    yield at_event_time(parsed, parsed.timestamp)


# --------------------------------------------------------------------------
# The state per user
# --------------------------------------------------------------------------


class _Session:
  """One conversation of the user: its latest start, end and acw times
  (epoch ms, None when not seen) and channel ('' when not told)."""

  __slots__ = ('start', 'end', 'acw', 'channel')

  def __init__(self, start=None, end=None, acw=None, channel=''):
    self.start: Optional[int] = start
    self.end: Optional[int] = end
    self.acw: Optional[int] = acw
    self.channel: str = channel

  def latest(self) -> int:
    return max(t for t in (self.start, self.end, self.acw) if t is not None)


class _UserState:
  """What one user's notifications said so far.

  `routing`: [status, at] of the latest routing status; `presence`:
  [system presence, definition id, at] of the latest presence; `sessions`:
  conversationId -> _Session; `channels`: those handled since the login;
  `logged_out_at`: set when only the logout is left (a tombstone);
  `last`: [state, reason, contact, channels, timestamp, since] of the last
  AgentEvent written (a heartbeat moves its timestamp); `clock`: the
  latest time of a notification applied;
  `finished_at`: the latest acw event's time; `ready_at`: the latest
  routing IDLE's (every session before it is over, after-call work
  included, whatever came since).
  """

  __slots__ = (
    'routing',
    'presence',
    'sessions',
    'channels',
    'logged_out_at',
    'last',
    'clock',
    'finished_at',
    'ready_at',
  )

  def __init__(self):
    self.routing: Optional[list] = None
    self.presence: Optional[list] = None
    self.sessions: Dict[str, _Session] = {}
    self.channels: List[str] = []
    self.logged_out_at: Optional[int] = None
    self.last: Optional[list] = None
    self.clock: Optional[int] = None
    self.finished_at: Optional[int] = None
    self.ready_at: Optional[int] = None


def _state_to_plain(state: _UserState) -> list:
  return [
    state.routing,
    state.presence,
    {c: [s.start, s.end, s.acw, s.channel] for c, s in state.sessions.items()},
    state.channels,
    state.logged_out_at,
    state.last,
    state.clock,
    state.finished_at,
    state.ready_at,
  ]


def _state_from_plain_v1(plain: list) -> _UserState:
  state = _UserState()
  state.routing, state.presence, sessions, state.channels = plain[:4]
  state.logged_out_at, state.last, state.clock, state.finished_at, state.ready_at = plain[4:9]
  state.sessions = {c: _Session(*s) for c, s in sessions.items()}
  return state


# Format v1: [routing [status, at] or null, presence [system, definition
# id, at] or null, {conversation id: [start, end, acw, channel]}, channels,
# logged out at or null, last [state, reason, contact, channels, timestamp,
# since] or null, clock or null, finished at or null, ready at or null]
# (docs/upgrades.md).
USER_STATE_CODER = VersionedStateCoder(
  'genesys user state', 1, _state_to_plain, {1: _state_from_plain_v1}
)


class _Derived(NamedTuple):
  state: str
  reason: str
  contact_id: str
  channels: List[str]
  since: int


def _session_channels(sessions: List[_Session], known: List[str]) -> List[str]:
  told = sorted({s.channel for s in sessions if s.channel})
  return told or known or [VOICE]


def _finished_at(user: _UserState, horizon: int) -> Optional[int]:
  """When the user's last session was last known finished: its acw
  event, or the end of an ACW that timed out."""
  timed_out = [
    s.end + ACW_TIMEOUT_MS
    for s in user.sessions.values()
    if s.end is not None and (s.acw is None or s.acw < s.end) and s.end < horizon
  ]
  candidates = timed_out + ([user.finished_at] if user.finished_at is not None else [])
  return max(candidates) if candidates else None


def derive(user: _UserState) -> Optional[_Derived]:
  """The agent state the user's notifications give (module docstring),
  None before any routing status or presence."""
  routing, presence = user.routing, user.presence
  if routing is None and presence is None:
    return None
  if (
    presence is not None
    and presence[0] == OFFLINE
    and (routing is None or presence[2] >= routing[1])
  ):
    return _Derived(AGENT_LOGGED_OUT, '', '', user.channels or [VOICE], presence[2])
  ready_at = user.ready_at
  after = (lambda t: True) if ready_at is None else (lambda t: t > ready_at)
  open_ = [
    (s.start, c, s)
    for c, s in user.sessions.items()
    if s.start is not None and (s.end is None or s.start > s.end) and after(s.start)
  ]
  if open_:
    start, contact, _ = max(open_)
    return _Derived(
      AGENT_ON_CONTACT,
      '',
      contact,
      _session_channels([s for _, _, s in open_], user.channels),
      start,
    )
  horizon = (user.clock or 0) - ACW_TIMEOUT_MS
  wrapping = [
    (s.end, c, s)
    for c, s in user.sessions.items()
    if s.end is not None
    and (s.start is None or s.end >= s.start)
    and (s.acw is None or s.acw < s.end)
    and after(s.end)
    and s.end >= horizon
  ]
  if wrapping:
    end, contact, _ = max(wrapping)
    return _Derived(
      AGENT_AFTER_CONTACT_WORK,
      '',
      contact,
      _session_channels([s for _, _, s in wrapping], user.channels),
      end,
    )
  channels = user.channels or [VOICE]
  if presence is not None and (routing is None or presence[2] > routing[1]):
    # The presence changed after the routing status: it says where routing
    # stands (going to any other presence takes the agent off queue).
    if presence[0] == ON_QUEUE:
      if routing is not None and routing[0] != OFF_QUEUE:
        status, since = routing[0], routing[1]
      else:
        status, since = IDLE, presence[2]
    else:
      status, since = OFF_QUEUE, presence[2]
  else:
    status, since = routing
  if status == IDLE:
    return _Derived(AGENT_AVAILABLE, '', '', channels, since)
  if status in (INTERACTING, COMMUNICATING):
    finished_at = _finished_at(user, horizon)
    if finished_at is not None and finished_at >= since:
      # The interactions the status was about are over, after-call work
      # included; Genesys' IDLE follows (or was lost).
      return _Derived(AGENT_AVAILABLE, '', '', channels, finished_at)
    return _Derived(AGENT_ON_CONTACT, '', '', channels, since)
  if status == NOT_RESPONDING:
    return _Derived(AGENT_NOT_READY, NOT_RESPONDING, '', channels, since)
  if presence is None or presence[0] == ON_QUEUE:
    return _Derived(AGENT_NOT_READY, OFF_QUEUE, '', channels, since)
  if presence[0] == OFFLINE:
    return _Derived(AGENT_LOGGED_OUT, '', '', channels, presence[2])
  return _Derived(AGENT_NOT_READY, presence[0] or presence[1], '', channels, since)


class _Outcome:
  APPLIED, STALE, DUPLICATE = range(3)


def apply(user: _UserState, note: GenesysUserNotification) -> int:
  """Applies one notification to the user's state; returns whether it was
  _Outcome.APPLIED, STALE (older than what the state reflects) or a
  DUPLICATE (the same as what it reflects)."""
  at = note.timestamp
  if user.logged_out_at is not None and at < user.logged_out_at:
    return _Outcome.STALE
  if note.kind == ROUTING_STATUS:
    outcome = _newer(user.routing, 1, at, [note.value, at])
    if outcome == _Outcome.APPLIED:
      user.routing = [note.value, at]
      if note.value == IDLE and (user.ready_at is None or at > user.ready_at):
        user.ready_at = at
  elif note.kind == PRESENCE:
    outcome = _newer(user.presence, 2, at, [note.value, note.detail, at])
    if outcome == _Outcome.APPLIED:
      user.presence = [note.value, note.detail, at]
  else:
    session = user.sessions.get(note.detail)
    if session is None:
      session = user.sessions[note.detail] = _Session()
    slot = {USER_START: 'start', USER_END: 'end', ACW: 'acw'}[note.kind]
    known = getattr(session, slot)
    if known is not None and at <= known:
      outcome = _Outcome.DUPLICATE if at == known else _Outcome.STALE
    else:
      setattr(session, slot, at)
      outcome = _Outcome.APPLIED
      if note.kind == ACW and (user.finished_at is None or at > user.finished_at):
        user.finished_at = at
    if note.value:
      session.channel = note.value
      if note.value not in user.channels:
        user.channels = sorted(user.channels + [note.value])
  if outcome == _Outcome.APPLIED and (user.clock is None or at > user.clock):
    user.clock = at
  return outcome


def _newer(known: Optional[list], at_index: int, at: int, value: list) -> int:
  if known is None or at > known[at_index]:
    return _Outcome.APPLIED
  return _Outcome.DUPLICATE if known == value else _Outcome.STALE


def _prune(user: _UserState, dedupe_ttl_ms: int) -> int:
  """Drops the sessions the state no longer needs; returns how many."""
  if user.clock is None:
    return 0
  ready_at = user.ready_at
  gone = []
  for conversation, s in user.sessions.items():
    latest = s.latest()
    finished = (s.acw is not None and s.end is not None and s.acw >= s.end) or (
      ready_at is not None and latest < ready_at
    )
    if latest < user.clock - MAX_SESSION_AGE_MS or (
      finished and latest < user.clock - dedupe_ttl_ms
    ):
      gone.append(conversation)
  if len(user.sessions) - len(gone) > MAX_SESSIONS_PER_USER:
    kept = sorted((s.latest(), c) for c, s in user.sessions.items() if c not in gone)
    gone.extend(c for _, c in kept[: len(kept) - MAX_SESSIONS_PER_USER])
  for conversation in gone:
    del user.sessions[conversation]
  return len(gone)


class _UserStateFn(beam.DoFn):
  STATE = ReadModifyWriteStateSpec('genesys_user', USER_STATE_CODER)
  FORGET = TimerSpec('forget', TimeDomain.WATERMARK)
  HEARTBEAT = TimerSpec('heartbeat', TimeDomain.WATERMARK)

  def __init__(
    self,
    queue_members: Dict[str, Tuple[str, ...]],
    dedupe_ttl_ms: int,
    max_out_of_orderness_ms: int,
    heartbeat_ms: int,
  ):
    self._members = queue_members
    self._dedupe_ttl_ms = dedupe_ttl_ms
    self._heartbeat_ms = heartbeat_ms
    self._heartbeats = Metrics.counter(METRICS_NAMESPACE, 'heartbeats')
    self._heartbeats_stopped = Metrics.counter(METRICS_NAMESPACE, 'heartbeats_stopped')
    self._clock = DelayedClock(max_out_of_orderness_ms)
    self._stale = Metrics.counter(METRICS_NAMESPACE, 'stale_notifications')
    self._duplicates = Metrics.counter(METRICS_NAMESPACE, 'duplicates')
    self._events = Metrics.counter(METRICS_NAMESPACE, 'agent_events')
    self._logouts = Metrics.counter(METRICS_NAMESPACE, 'logouts')
    self._dropped = Metrics.counter(METRICS_NAMESPACE, 'sessions_dropped')

  def process(
    self,
    batch: Tuple[str, List[GenesysUserNotification]],
    state=beam.DoFn.StateParam(STATE),
    forget=beam.DoFn.TimerParam(FORGET),
    heartbeat=beam.DoFn.TimerParam(HEARTBEAT),
  ) -> Iterator:
    user_id, notes = batch
    user = state.read() or _UserState()
    queues = list(self._members.get(user_id, ()))
    # Event-time order within the batch: a bundle's disorder then costs
    # nothing.
    for note in sorted(notes, key=lambda n: n.timestamp):
      outcome = apply(user, note)
      if outcome == _Outcome.STALE:
        self._stale.inc()
        continue
      if outcome == _Outcome.DUPLICATE:
        self._duplicates.inc()
        continue
      self._dropped.inc(_prune(user, self._dedupe_ttl_ms))
      derived = derive(user)
      if derived is None:
        continue
      key = [derived.state, derived.reason, derived.contact_id, derived.channels]
      if user.last is not None and (
        user.last[:4] == key or user.last[0] == derived.state == AGENT_LOGGED_OUT
      ):
        continue
      # `since` and `timestamp` strictly after the user's last event's, so
      # a user's events are ordered by either (the agent-state step resolves
      # by `since`): a late notification that changes the state changes it
      # as of what the state already reflects (+1 ms).
      since, timestamp = derived.since, note.timestamp
      if user.last is not None:
        since = max(since, user.last[5] + 1)
        timestamp = max(timestamp, user.last[4] + 1)
      timestamp = max(timestamp, since)
      user.last = key + [timestamp, since]
      self._events.inc()
      yield at_event_time(
        AgentEvent(
          agent_id=user_id,
          timestamp=timestamp,
          since=since,
          state=derived.state,
          reason=derived.reason,
          queues=queues,
          channels=derived.channels,
          contact_id=derived.contact_id,
        ),
        timestamp,
      )
      if derived.state == AGENT_LOGGED_OUT and user.presence is not None:
        self._logouts.inc()
        self._log_out(user, forget)
    self._arm_heartbeat(user, heartbeat)
    state.write(user)

  def _arm_heartbeat(self, user: _UserState, heartbeat) -> None:
    """While the user is logged in, wakes it HEARTBEAT_EVERY after its
    latest event (on the grid of that step)."""
    derived = derive(user)
    if user.last is None or derived is None or derived.state == AGENT_LOGGED_OUT:
      return
    latest = max(user.clock or 0, user.last[4])
    self._clock.set(heartbeat, ceil_to_grid(latest + self._heartbeat_ms, self._heartbeat_ms))

  @on_timer(HEARTBEAT)
  def on_heartbeat(
    self,
    user_id=beam.DoFn.KeyParam,
    fired=beam.DoFn.TimestampParam,
    state=beam.DoFn.StateParam(STATE),
    heartbeat=beam.DoFn.TimerParam(HEARTBEAT),
  ) -> Iterator:
    user = state.read()
    if user is None or user.last is None:
      return
    derived = derive(user)
    if derived is None or derived.state == AGENT_LOGGED_OUT:
      return  # nothing to refresh; a login arms it again
    at = self._clock.fired_ms(fired)
    if at - (user.clock or 0) > MAX_HEARTBEAT_SILENCE_MS:
      # Silent for longer than any shift: its logout was most likely lost;
      # the agent-state step's silence timeout logs it out.
      self._heartbeats_stopped.inc()
      return
    if at > user.last[4]:
      user.last[4] = at
      self._heartbeats.inc()
      yield at_event_time(AgentEvent(user_id, at, at, '', '', [], [], '', True), at)
    self._clock.set(heartbeat, at + self._heartbeat_ms)
    state.write(user)

  def _log_out(self, user: _UserState, forget) -> None:
    """Keeps of a logged-out user its presence (Offline) and the logout
    time only, and arms the timer that forgets them."""
    user.routing = None
    user.sessions = {}
    user.channels = []
    user.finished_at = None
    user.logged_out_at = max(user.logged_out_at or 0, user.presence[2])
    self._clock.set(forget, max(user.clock or 0, user.logged_out_at) + self._dedupe_ttl_ms)

  @on_timer(FORGET)
  def on_forget(
    self,
    fired=beam.DoFn.TimestampParam,
    state=beam.DoFn.StateParam(STATE),
    forget=beam.DoFn.TimerParam(FORGET),
  ) -> None:
    user = state.read()
    if user is None:
      return
    derived = derive(user)
    if derived is not None and derived.state != AGENT_LOGGED_OUT:
      return  # logged in again; a later logout arms the timer again
    # Nothing older than the logout can come any more (the flow's
    # duplicate horizon), unless the user had news since: then wait on.
    forget_at = max(user.clock or 0, user.logged_out_at or 0) + self._dedupe_ttl_ms
    if self._clock.fired_ms(fired) >= forget_at:
      state.clear()
    else:
      self._clock.set(forget, forget_at)


class GenesysAgentEvents(beam.PTransform):
  """Genesys Cloud user notifications to AgentEvent records, one per change
  of a user's state (module docstring).

  Input: PCollection[SourceRecord].
  Output: dict `agent_events`: PCollection[AgentEvent], event-timed;
  `dead_letters`: PCollection[DeadLetter] with a specific reason.
  Steps: `Parse`, `BatchPerUser`, `UserState` (stateful, keyed by user id,
  USER_STATE_CODER).
  """

  def __init__(self, config: AgentConfig):
    super().__init__()
    config = AgentConfig.checked(config)
    self._rules = config.field_rules
    self._members = dict(config.queue_members)
    self._dedupe_ttl_ms = millis(config.dedupe_ttl)
    self._max_out_of_orderness_ms = millis(config.event_time.max_out_of_orderness)
    # A third of the silence timeout: a heartbeat reaches the agent-state
    # step well before it would take the agent as silent, even a late one.
    self._heartbeat_ms = max(1000, millis(config.agent_silence_timeout) // 3)

  def expand(self, records):
    parsed = records | 'Parse' >> beam.ParDo(
      _ParseFn(self._rules, self._members)
    ).with_output_types(GenesysUserNotification, **{parsing.DEAD_LETTERS: DeadLetter}).with_outputs(
      parsing.DEAD_LETTERS, main='notifications'
    )
    events = (
      parsed.notifications
      | 'BatchPerUser' >> BatchPerKey(lambda n: n.user_id, lambda n: n.timestamp, str)
      | 'UserState'
      >> beam.ParDo(
        _UserStateFn(
          self._members, self._dedupe_ttl_ms, self._max_out_of_orderness_ms, self._heartbeat_ms
        )
      ).with_output_types(AgentEvent)
    )
    return {AGENT_EVENTS: events, parsing.DEAD_LETTERS: parsed.dead_letters}
