"""Records that cross transform boundaries.

Each record is a NamedTuple registered with Beam's RowCoder, so runners that
serialize between stages (Flink, Dataflow) encode them compactly and
deterministically instead of falling back to pickling.

Times are epoch milliseconds (ints) everywhere, as in the source payloads and
the sink tables.
"""

from typing import List, NamedTuple, Optional

import apache_beam as beam


class SourceRecord(NamedTuple):
  """One raw record as a source delivered it, before any parsing.

  `origin` says where it came from ("file.jsonl:42", "topic/0@1234"), so a dead
  letter can be traced back and re-delivered records map to the same row.
  """

  source: str
  origin: str
  raw: bytes


class DeadLetter(NamedTuple):
  """A record that could not be used, with a machine-readable reason.

  `received_at` is when it was rejected (epoch ms, processing time): a bad
  record may carry no usable event time, and operators ask "what went wrong
  in the last hour".
  """

  source: str
  origin: str
  reason: str
  detail: str
  raw: str
  raw_size: int
  received_at: int


class CallEvent(NamedTuple):
  """A validated call event (the seed's `cc-call-logs` schema)."""

  call_uuid: str
  event_type: str
  timestamp: int
  queue_id: str
  abandoned: bool
  wait_time_seconds: float
  agent_id: Optional[str]


# Channels of offered contacts, lower case, as every sink keys them. Each
# vendor format maps its own documented values onto these
# (transforms/formats/, docs/vendor_formats.md); the seed format's calls are
# voice. Genesys' media types add video, cobrowse, screenshare and unknown.
VOICE = 'voice'
CHAT = 'chat'
EMAIL = 'email'
TASK = 'task'
MESSAGE = 'message'
CALLBACK = 'callback'
CHANNELS = (
  VOICE,
  CHAT,
  EMAIL,
  TASK,
  MESSAGE,
  CALLBACK,
  'video',
  'cobrowse',
  'screenshare',
  'unknown',
)

# The outcome of an offered call in its queue.
ANSWERED = 'ANSWERED'
ABANDONED = 'ABANDONED'
# Left the queue neither answered nor abandoned (Genesys FLOW_OUT: a
# transfer out, a queue timeout to voicemail...).
FLOW_OUT = 'FLOW_OUT'
# The source did not say (Genesys acdOutcome UNKNOWN).
UNKNOWN_OUTCOME = 'UNKNOWN'
OUTCOMES = (ANSWERED, ABANDONED, FLOW_OUT, UNKNOWN_OUTCOME)


class OfferedCall(NamedTuple):
  """One call offered to a queue, the common record of every input format
  (transforms/formats/): what the windowed metrics consume.

  `timestamp` is when the call left the queue (epoch ms), which decides its
  window; `outcome` is one of OUTCOMES; `wait_seconds` is its time in
  queue, None when the source did not tell it (a Genesys acd.end whose
  acd.start never arrived); `channel` is one of CHANNELS.
  `record_updated_at`: set (epoch ms, the source's LastUpdateTimestamp)
  when the source re-sent this contact's record more than the
  de-duplication TTL after the contact ended (an Amazon Connect update):
  such a copy is never counted again but routed to the late events as
  `record_update` (transforms/call_flow.py).
  `raw`: the record(s) the call was built from, as the source delivered
  them (UTF-8 text), so a late event keeps what the producer sent: the one
  record of the seed and Amazon Connect formats; for Genesys Cloud the
  acd.start's and the acd.end's records as JSON lines, in that order (the
  end's alone when the start never arrived). '' when unknown (a call read
  back from a late_events row, or built in code).
  """

  call_id: str
  queue_id: str
  timestamp: int
  outcome: str
  wait_seconds: Optional[float]
  channel: str = VOICE
  record_updated_at: Optional[int] = None
  raw: str = ''


# The two halves of a Genesys Cloud ACD session.
ACD_START = 'acd.start'
ACD_END = 'acd.end'


class AcdEvent(NamedTuple):
  """A validated Genesys Cloud `acd.start` or `acd.end` conversation detail
  event. `call_id` is conversationId:sessionId; `outcome` is one of
  OUTCOMES for an end, None for a start; `channel` is one of CHANNELS
  (from `mediaType`); `raw`: the record as delivered (UTF-8 text), which
  the pairing keeps for the call's OfferedCall.raw."""

  kind: str
  call_id: str
  queue_id: str
  timestamp: int
  outcome: Optional[str]
  channel: str = VOICE
  raw: str = ''


# A contact entering or leaving a queue (QueueTransition.kind): the input of
# the live floor (transforms/queue_status.py), from each format's lifecycle
# events.
QUEUE_ENTERED = 'ENTERED'
QUEUE_LEFT = 'LEFT'


class QueueTransition(NamedTuple):
  """A contact entering (`kind` QUEUE_ENTERED) or leaving (QUEUE_LEFT) a
  queue at event time `timestamp` (epoch ms), on `channel` (CHANNELS).

  `entered_at`: on a QUEUE_LEFT, when the contact entered the queue if the
  source says so (Amazon Connect's `queueInfo.enqueueTimestamp`), else None.
  `outcome`: on a QUEUE_LEFT, one of OUTCOMES if the source says why it left
  (answered, abandoned...), else None.
  """

  contact_id: str
  queue_id: str
  channel: str
  kind: str
  timestamp: int
  entered_at: Optional[int] = None
  outcome: Optional[str] = None


class QueueStatus(NamedTuple):
  """The live state of one queue and channel (table `queue_status`).

  `waiting`: contacts in the queue now; `oldest_waiting_since`: the event
  time (epoch ms) the longest-waiting of them entered, None when none
  waits; `longest_wait_seconds`: its wait as of `as_of`, 0 when none waits;
  `as_of`: the event time the row reflects (epoch ms); `updated_at`: when
  the job wrote it (processing time, epoch ms); `revision`: orders the rows
  of one key in every sink (processing time in microseconds, strictly
  increasing per key, so two rows of one millisecond keep their order).
  """

  queue_id: str
  channel: str
  waiting: int
  oldest_waiting_since: Optional[int]
  longest_wait_seconds: float
  as_of: int
  updated_at: int
  queue_name: str = ''
  revision: int = 0


class WaitingContacts(NamedTuple):
  """The contacts waiting now in one queue and channel (table
  `waiting_contacts`), oldest first, at most `--max_waiting_listed` of
  them: `contacts` is a JSON list of {"contact_id": str, "since": epoch
  ms}; `waiting` counts them all, listed or not. One row per queue and
  channel, replaced as a whole, so a contact that leaves the queue leaves
  the row with no delete in any sink. `as_of`, `updated_at` and `revision`
  as in QueueStatus.
  """

  queue_id: str
  channel: str
  contacts: str
  waiting: int
  as_of: int
  updated_at: int
  revision: int = 0


# An agent's state (AgentEvent.state), each vendor's states mapped onto
# these (docs/vendor_formats.md): ready for the next contact, on one (on
# hold counts as on a contact in the status, apart in the handle time),
# wrapping one up, not ready (with a reason), logged out.
AGENT_AVAILABLE = 'available'
AGENT_ON_CONTACT = 'on_contact'
AGENT_ON_HOLD = 'on_hold'
AGENT_AFTER_CONTACT_WORK = 'after_contact_work'
AGENT_NOT_READY = 'not_ready'
AGENT_LOGGED_OUT = 'logged_out'
AGENT_STATES = (
  AGENT_AVAILABLE,
  AGENT_ON_CONTACT,
  AGENT_ON_HOLD,
  AGENT_AFTER_CONTACT_WORK,
  AGENT_NOT_READY,
  AGENT_LOGGED_OUT,
)


class AgentEvent(NamedTuple):
  """One agent's state from `since` (epoch ms), the common record of every
  agent-event format (transforms/formats/agent_*.py).

  `timestamp`: the event's own time (epoch ms), its event time; `since`:
  when the state began per the source (Amazon Connect's
  AgentStatus.StartTimestamp), `timestamp` when the source does not say.
  `state`: one of AGENT_STATES; `reason`: the not-ready reason (the
  vendor's status name), '' in other states. `queues`: the queue ids the
  agent takes contacts from; `channels`: the channels (CHANNELS) it
  serves. `contact_id`: the contact it is on or wrapping up, '' if none.
  `heartbeat`: True when the source only says the agent is still there
  (Connect HEART_BEAT): it refreshes the agent, never changes its state.
  """

  agent_id: str
  timestamp: int
  since: int
  state: str
  reason: str
  queues: List[str]
  channels: List[str]
  contact_id: str = ''
  heartbeat: bool = False


class AgentPresence(NamedTuple):
  """An agent's state in one queue and channel it serves, as of `as_of`
  (epoch ms): the agent-status step's input. `state` AGENT_LOGGED_OUT
  removes the agent from the queue's row (it logged out, or left the
  queue's routing profile)."""

  queue_id: str
  channel: str
  agent_id: str
  state: str
  reason: str
  as_of: int


class AgentSpan(NamedTuple):
  """A stretch [`start`, `end`) of one agent's state inside one window of
  the grid (epoch ms): the agent metrics' input. `handled` is 1 on the span
  that ends the agent's work on a contact (it left the contact and its
  after-contact work), else 0. `queues` and `channels`: where the agent
  counts. `timestamp` = `start`, the event time that decides its window."""

  agent_id: str
  state: str
  reason: str
  start: int
  end: int
  queues: List[str]
  channels: List[str]
  contact_id: str
  handled: int
  timestamp: int


class AgentStatus(NamedTuple):
  """Agents by state in one queue and channel now (table `agent_status`):
  `logged_in` = `available` + `on_contact` (on hold included) +
  `after_contact_work` + `not_ready`; `not_ready_reasons`: a JSON object of
  reason -> agents. `as_of`, `updated_at` and `revision` as in
  QueueStatus."""

  queue_id: str
  channel: str
  logged_in: int
  available: int
  on_contact: int
  after_contact_work: int
  not_ready: int
  not_ready_reasons: str
  as_of: int
  updated_at: int
  revision: int
  queue_name: str = ''


class AgentMetrics(NamedTuple):
  """One pane of agent time per queue, channel and window (table
  `agent_metrics`): contacts handled, seconds talking (on a contact, not
  holding), holding, in after-contact work, available and not ready, summed
  over the queue's agents; `aht_seconds` = (talk + hold + after-contact
  work) / handled (0 when none), `occupancy` = (talk + hold + after-contact
  work) / (that + available) (0 when none). Panes as in AbandonMetrics."""

  queue_id: str
  channel: str
  window_start: int
  window_end: int
  handled_contacts: int
  talk_seconds: float
  hold_seconds: float
  after_contact_work_seconds: float
  available_seconds: float
  not_ready_seconds: float
  aht_seconds: float
  occupancy: float
  pane_index: int
  pane_timing: str
  queue_name: str = ''


class AgentActivity(NamedTuple):
  """One pane of one agent's time per window (table `agent_activity`, kept
  30 days): the figures of AgentMetrics for the agent alone."""

  agent_id: str
  window_start: int
  window_end: int
  handled_contacts: int
  talk_seconds: float
  hold_seconds: float
  after_contact_work_seconds: float
  available_seconds: float
  not_ready_seconds: float
  aht_seconds: float
  occupancy: float
  pane_index: int
  pane_timing: str


class LateEvent(NamedTuple):
  """An event that reached its window after the window had expired.

  `watermark` is the event-time the pipeline knew to have passed when it
  routed the event (a lower bound of the runner's watermark); for a
  `record_update`, routed without consulting the watermark, it is when the
  source re-wrote the record (its LastUpdateTimestamp).
  """

  source: str
  event_id: str
  key: str
  event_timestamp: int
  window_start: int
  window_end: int
  watermark: int
  reason: str
  raw: str
  # The record as the flow routed it, JSON (an OfferedCall's fields for a
  # call), which a reprocessing run folds in; `raw` is what the producer
  # sent. Empty in rows of releases that kept only the normalised record
  # (in `raw`).
  record: str = ''
  # When a reprocessing run folded this event into its window (processing
  # time, epoch ms; pipelines/reprocess.py); 0 until then. The table's
  # version column, so a live job that writes the event again never
  # un-marks it.
  reprocessed_at: int = 0


class AbandonMetrics(NamedTuple):
  """One pane of abandon statistics for a queue and a fixed window.

  Numerators and denominators are kept so that any vendor's definition of
  abandon rate or service level can be recomputed downstream; the two rates
  are those of the named definitions (transforms/metric_definitions.py).
  `total_calls` counts offered calls; waits are counted only where known
  (`wait_unknown_calls` says how many were not). `pane_index`
  grows with each pane of the same row, so sinks can apply panes idempotently
  and in order.
  """

  queue_id: str
  window_start: int
  window_end: int
  total_calls: int
  abandoned_calls: int
  short_abandoned_calls: int
  answered_within_sl: int
  total_wait_seconds: float
  abandon_rate: float
  service_level: float
  pane_index: int
  pane_timing: str
  # Added with the vendor formats (transforms/formats/); after the original
  # columns so that stores of the first schema only gain columns (see
  # transforms/cassandra/cql/v2_schema.cql). A row that does not set them
  # counted none.
  answered_calls: int = 0
  flow_out_calls: int = 0
  abandoned_within_sl: int = 0
  wait_unknown_calls: int = 0
  answered_wait_unknown_calls: int = 0
  answered_wait_seconds: float = 0.0
  abandon_rate_definition: str = ''
  service_level_definition: str = ''
  # The contact's channel (lower case, CHANNELS), part of the row's key;
  # stores written before it existed hold voice calls only.
  channel: str = VOICE
  # The queue's name from --queue_names, else its id.
  queue_name: str = ''


class WindowContact(NamedTuple):
  """One contact counted in a window of abandon_metrics (table
  `window_contacts`): the list behind a window's rates.

  `outcome`: one of OUTCOMES; `wait_seconds`: its time in queue, None when
  the source did not tell it; `event_timestamp`: when it left the queue
  (epoch ms), which put it in the window; `pane_index`, `pane_timing`: the
  first pane of the window's abandon_metrics row that counts it (a
  reprocessing run's contacts: its RESTATED pane). Kept
  `--contact_detail_ttl_seconds` (transforms/schema.py WINDOW_CONTACTS).
  """

  queue_id: str
  channel: str
  window_start: int
  contact_id: str
  outcome: str
  wait_seconds: Optional[float]
  event_timestamp: int
  pane_index: int
  pane_timing: str
  queue_name: str = ''


class MetricRevision(NamedTuple):
  """One change to a window's published figures after its end (table
  `metric_revisions`): a LATE pane of the live job, or a RESTATED pane of a
  reprocessing run.

  `pane_index`: the pane with the new figures; `previous_pane_index`: the
  pane they replace, -1 when the window had no row before (its first
  contacts all came after its end). `old_*`/`new_*`: the figures before
  and after, by the job's definitions. `contact_ids`: a JSON array of the
  contacts this pane added; `revised_at`: when the change was made
  (processing time, epoch ms).
  """

  queue_id: str
  channel: str
  window_start: int
  window_end: int
  pane_index: int
  pane_timing: str
  previous_pane_index: int
  old_total_calls: int
  new_total_calls: int
  old_abandoned_calls: int
  new_abandoned_calls: int
  old_answered_calls: int
  new_answered_calls: int
  old_abandon_rate: float
  new_abandon_rate: float
  old_service_level: float
  new_service_level: float
  contact_ids: str
  revised_at: int
  queue_name: str = ''


class Interaction(NamedTuple):
  """A validated CXone interaction event (`cxone-data-actions`)."""

  interaction_id: str
  customer_id: str
  channel: str
  status: str
  timestamp: int


class CustomerProfile(NamedTuple):
  """A customer-profile update (`recordType: customer_update`)."""

  customer_id: str
  tier: str
  region: str
  timestamp: int


class InteractionVolume(NamedTuple):
  """One pane of the interaction count for a channel and a fixed window."""

  channel: str
  window_start: int
  window_end: int
  volume: int
  pane_index: int
  pane_timing: str


class PatternMatch(NamedTuple):
  """Failed interactions followed by a callback request, for one customer.

  `timestamp` and `channel` are the callback's; `first_failure_timestamp`
  is where the 30 s of `within` started.
  """

  customer_id: str
  channel: str
  timestamp: int
  failure_count: int
  alert_type: str
  first_failure_timestamp: int
  interaction_ids: str


class PatternAlert(NamedTuple):
  """A pattern match enriched with the customer's profile (the seed's
  `pattern_alerts` schema plus tier and region)."""

  customer_id: str
  channel: str
  timestamp: int
  failure_count: int
  alert_type: str
  tier: str
  region: str
  first_failure_timestamp: int
  interaction_ids: str


# Spans a figure covers (AlertFigure.span, RollingMetrics.span): a window of
# the metrics tables, rolling spans ending at a window end, the contact
# center's local day so far, the live floor now, and the forecast interval.
SPAN_WINDOW = 'window'
ROLLING_SPANS = ('15m', '30m', '60m')
SPAN_TODAY = 'today'
SPAN_NOW = 'now'
SPAN_INTERVAL = 'interval'


class RollingMetrics(NamedTuple):
  """Abandon statistics of one queue and channel over a rolling span (table
  `rolling_metrics`): the windows of abandon_metrics whose start is in
  [span_start, span_end), summed from each window's latest ON_TIME or LATE
  pane (EARLY panes are not final and are left out).

  `span`: '15m', '30m' or '60m'; `span_end`: the end of the span's last
  window (epoch ms). The counts are those of AbandonMetrics; the rates are
  recomputed from the summed counts by the same named definitions
  (transforms/metric_definitions.py); `asa_seconds`: answered wait over
  answered calls with a known wait (0 when none). `windows`: windows with
  a pane in the span; `panes_counted`: the sum over those windows of
  (pane_index + 1), which grows with every pane that changes the span, so
  sinks apply rows idempotently and in order.
  """

  queue_id: str
  channel: str
  span: str
  span_start: int
  span_end: int
  total_calls: int
  abandoned_calls: int
  short_abandoned_calls: int
  answered_calls: int
  flow_out_calls: int
  answered_within_sl: int
  abandoned_within_sl: int
  wait_unknown_calls: int
  answered_wait_unknown_calls: int
  total_wait_seconds: float
  answered_wait_seconds: float
  abandon_rate: float
  service_level: float
  asa_seconds: float
  abandon_rate_definition: str
  service_level_definition: str
  windows: int
  panes_counted: int
  queue_name: str = ''


class DailyMetrics(NamedTuple):
  """Abandon statistics of one queue and channel since local midnight
  (table `daily_metrics`): every window of abandon_metrics starting in
  the local date `local_date` ('YYYY-MM-DD') of `--timezone`, summed from
  each window's latest pane, EARLY panes included (the day so far).

  `day_start`, `day_end`: the day's bounds (epoch ms; 23 or 25 hours on a
  DST change day); `as_of`: the end of the latest window counted. Counts,
  rates, `asa_seconds` and `panes_counted` as in RollingMetrics.
  """

  queue_id: str
  channel: str
  local_date: str
  timezone: str
  day_start: int
  day_end: int
  as_of: int
  total_calls: int
  abandoned_calls: int
  short_abandoned_calls: int
  answered_calls: int
  flow_out_calls: int
  answered_within_sl: int
  abandoned_within_sl: int
  wait_unknown_calls: int
  answered_wait_unknown_calls: int
  total_wait_seconds: float
  answered_wait_seconds: float
  abandon_rate: float
  service_level: float
  asa_seconds: float
  abandon_rate_definition: str
  service_level_definition: str
  windows: int
  panes_counted: int
  queue_name: str = ''


class AlertFigure(NamedTuple):
  """One value an alert rule can test: `metric` of one queue and channel
  over `span` (SPAN_WINDOW, ROLLING_SPANS, SPAN_TODAY, SPAN_NOW,
  SPAN_INTERVAL), ending at `span_end` (event time, epoch ms; the as_of
  of a live figure, the end of the interval of a forecast).

  `volume`: the contacts the value rests on (offered in the span; waiting
  now for live figures), which a rule's minimum volume is checked against;
  `revision`: grows with each restatement of the same (metric, queue,
  channel, span, span_end), e.g. a LATE pane; `queue_id` and `channel`
  are '*' for figures of the whole job (dead letters).
  """

  metric: str
  queue_id: str
  channel: str
  span: str
  span_end: int
  value: float
  volume: int
  revision: int
  queue_name: str = ''


# An alert's states (Alert.state) and the notifications of its transitions
# (AlertNotification.kind).
ALERT_PENDING = 'pending'
ALERT_FIRING = 'firing'
ALERT_RESOLVED = 'resolved'
NOTIFY_FIRING = 'firing'
NOTIFY_RESOLVED = 'resolved'
NOTIFY_REMINDER = 'reminder'
NOTIFY_RESTATED = 'restated'


class Alert(NamedTuple):
  """The state of one rule for one queue and channel (table `alerts`).

  `state`: pending, firing or resolved; `value`: the figure last
  evaluated, `threshold` the rule's; `since`: event time the current state
  began; `resolved_at`: when it last resolved (None while never);
  `last_notification_id`, `last_notification_kind`: the latest
  notification sent for it, `delivery_status` its delivery ('queued' until
  delivered, then 'delivered' or 'failed', '' when none was sent);
  `updated_at`: event time of the figure last evaluated; `revision` grows
  with each row of the key (evaluation rows even, the delivery update of
  the same notification odd), so sinks keep the newest.
  """

  rule: str
  queue_id: str
  channel: str
  state: str
  severity: str
  metric: str
  span: str
  value: float
  threshold: float
  since: int
  resolved_at: Optional[int]
  last_notification_id: str
  last_notification_kind: str
  delivery_status: str
  updated_at: int
  revision: int
  queue_name: str = ''


class AlertNotification(NamedTuple):
  """One notification of a rule's transition, reminder or restatement
  (table `alert_notifications`, the alert's history).

  `notification_id`: the idempotency key, derived from the rule, scope,
  kind and the figure it rests on, so a job restarted from a checkpoint
  sends the same key again; `kind`: NOTIFY_*; `previous_value`: the value
  notified before, for a restatement; `receivers`: JSON list of receiver
  names (the rule file's); `message`: the human text sent; `created_at`:
  event time of the figure. Evaluation hands delivery (Alert,
  AlertNotification) pairs, so delivery can write the alert row's
  `delivery_status` back.
  """

  notification_id: str
  rule: str
  queue_id: str
  channel: str
  kind: str
  severity: str
  metric: str
  span: str
  value: float
  threshold: float
  previous_value: Optional[float]
  figure_end: int
  message: str
  receivers: str
  created_at: int
  queue_name: str = ''


class AlertDelivery(NamedTuple):
  """The delivery of one notification to one receiver (table
  `alert_deliveries`): `status` 'delivered' or 'failed', `attempts` made,
  `answer`: the receiver's last answer (status code and at most 200
  characters of its body, or the error), never a secret;
  `delivered_at`: processing time of the last attempt (epoch ms)."""

  notification_id: str
  receiver: str
  rule: str
  queue_id: str
  channel: str
  kind: str
  status: str
  attempts: int
  answer: str
  delivered_at: int


for _record in (
  SourceRecord,
  DeadLetter,
  CallEvent,
  OfferedCall,
  AcdEvent,
  QueueTransition,
  QueueStatus,
  WaitingContacts,
  AgentEvent,
  AgentPresence,
  AgentSpan,
  AgentStatus,
  AgentMetrics,
  AgentActivity,
  LateEvent,
  AbandonMetrics,
  WindowContact,
  MetricRevision,
  Interaction,
  CustomerProfile,
  InteractionVolume,
  PatternMatch,
  PatternAlert,
  RollingMetrics,
  DailyMetrics,
  AlertFigure,
  Alert,
  AlertNotification,
  AlertDelivery,
):
  beam.coders.registry.register_coder(_record, beam.coders.RowCoder)
