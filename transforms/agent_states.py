"""AgentStates: each agent's current state, from its events, as the queues
it serves see it and as stretches of time per window.

One state per agent, its natural key (no shards). The rules, which the
reference (testing/reference/agents.py) follows on its own:
- An event states the agent's state from `since`. One older than the
  state the agent is in (an earlier `since`) changes nothing and is
  counted (`agents/stale_events`); one that repeats the current state
  (re-delivery) changes nothing. A heartbeat only says the agent is still
  there; of an agent not logged in it is counted and passed over. A logout
  leaves a tombstone for `silence_timeout`, so an event older than the
  logout (a re-delivery) is stale too, not a new login.
- Time is attributed as it passes: the agent's current state is cut at
  every window boundary of the grid when the watermark reaches it, and at
  each change, into AgentSpans of one window each, so a long stretch of
  availability reaches each window's metrics before the window closes. A
  change whose `since` is behind a boundary already reported counts from
  that boundary (the time before it was reported in the old state).
- The span that ends an agent's work on a contact (it leaves the contact
  and any after-contact work for it) is marked handled.
- An agent with no event (heartbeats included) for `silence_timeout` of
  event time is logged out at its last event + the timeout, counted
  (`agents/silent_logouts`). At the end of a bounded input every agent
  still logged in goes silent: a replay ends with everyone logged out
  after that much event time.
- Each change also tells every (queue, channel) the agent serves its new
  state (AgentPresence), and the ones it no longer serves that it left.
"""

from typing import Iterator, List, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp

from options.config import millis
from transforms.batching import BatchPerKey
from transforms.records import (
  AGENT_AFTER_CONTACT_WORK,
  AGENT_LOGGED_OUT,
  AGENT_ON_CONTACT,
  AGENT_ON_HOLD,
  AgentEvent,
  AgentPresence,
  AgentSpan,
)
from transforms.state_coders import VersionedStateCoder

AGENT_PRESENCE = 'agent_presence'
# States of work on a contact: leaving all of them for the contact ends it.
_CONTACT_WORK = (AGENT_ON_CONTACT, AGENT_ON_HOLD, AGENT_AFTER_CONTACT_WORK)


class _Agent:
  """An agent logged in: its state since `since`, where it counts, its time
  reported through `reported_through`, its latest event."""

  __slots__ = (
    'state',
    'reason',
    'since',
    'queues',
    'channels',
    'contact_id',
    'reported_through',
    'last_seen',
  )

  def __init__(self, event: AgentEvent):
    self.state = event.state
    self.reason = event.reason
    self.since = event.since
    self.queues = list(event.queues)
    self.channels = list(event.channels)
    self.contact_id = event.contact_id
    self.reported_through = event.since
    self.last_seen = event.timestamp

  def same_state(self, event: AgentEvent) -> bool:
    return (
      self.state == event.state
      and self.reason == event.reason
      and self.queues == list(event.queues)
      and self.channels == list(event.channels)
      and self.contact_id == event.contact_id
    )


def _agent_to_plain(agent: _Agent) -> list:
  return [
    agent.state,
    agent.reason,
    agent.since,
    agent.queues,
    agent.channels,
    agent.contact_id,
    agent.reported_through,
    agent.last_seen,
  ]


def _agent_from_plain_v1(plain: list) -> _Agent:
  agent = _Agent.__new__(_Agent)
  (
    agent.state,
    agent.reason,
    agent.since,
    agent.queues,
    agent.channels,
    agent.contact_id,
    agent.reported_through,
    agent.last_seen,
  ) = plain
  return agent


# Format v1: [state, reason, since, [queue ids], [channels], contact id,
# reported through, last seen] (docs/upgrades.md).
AGENT_STATE_CODER = VersionedStateCoder(
  'agent state', 1, _agent_to_plain, {1: _agent_from_plain_v1}
)


def _logged_in(agent: Optional[_Agent]) -> bool:
  """An agent in a state, not a logout's tombstone (nor unknown)."""
  return agent is not None and agent.state != AGENT_LOGGED_OUT


def window_pieces(start: int, end: int, window_ms: int) -> List[Tuple[int, int]]:
  """[start, end) cut at the window grid's boundaries: one piece per
  window, in order; [] for an empty stretch."""
  pieces = []
  while start < end:
    boundary = (start // window_ms + 1) * window_ms
    pieces.append((start, min(end, boundary)))
    start = boundary
  return pieces


class _AgentStatesFn(beam.DoFn):
  STATE = ReadModifyWriteStateSpec('agent', AGENT_STATE_CODER)
  BOUNDARY = TimerSpec('boundary', TimeDomain.WATERMARK)
  SILENCE = TimerSpec('silence', TimeDomain.WATERMARK)

  def __init__(self, window_ms: int, silence_timeout_ms: int, metrics_namespace: str):
    self._window_ms = window_ms
    self._silence_ms = silence_timeout_ms
    self._stale = Metrics.counter(metrics_namespace, 'stale_events')
    self._unknown_heartbeats = Metrics.counter(metrics_namespace, 'heartbeats_of_agents_logged_out')
    self._silent_logouts = Metrics.counter(metrics_namespace, 'silent_logouts')
    self._changes = Metrics.counter(metrics_namespace, 'state_changes')
    # Agents logged in across all keys: increments and decrements (a
    # per-agent gauge would have a label per agent).
    self._logged_in = Metrics.counter(metrics_namespace, 'agents_logged_in')

  def process(
    self,
    batch: Tuple[str, List[AgentEvent]],
    state=beam.DoFn.StateParam(STATE),
    boundary=beam.DoFn.TimerParam(BOUNDARY),
    silence=beam.DoFn.TimerParam(SILENCE),
  ) -> Iterator:
    agent_id, events = batch
    agent: Optional[_Agent] = state.read()
    was_in = _logged_in(agent)
    for event in events:
      if event.heartbeat:
        if _logged_in(agent):
          agent.last_seen = max(agent.last_seen, event.timestamp)
        else:
          self._unknown_heartbeats.inc()
        continue
      if agent is not None:
        if _logged_in(agent):
          agent.last_seen = max(agent.last_seen, event.timestamp)
        if event.since < agent.since:
          self._stale.inc()
          continue
        if agent.same_state(event):
          continue
        if not _logged_in(agent):
          agent = None  # a login after the logout: nothing of it carries on
      if agent is None and event.state == AGENT_LOGGED_OUT:
        continue  # logged out already: nothing to end
      self._changes.inc()
      agent = yield from self._change(agent_id, agent, event)
    self._keep(agent, was_in, state, boundary, silence)

  @on_timer(BOUNDARY)
  def on_boundary(
    self,
    agent_id=beam.DoFn.KeyParam,
    fired=beam.DoFn.TimestampParam,
    state=beam.DoFn.StateParam(STATE),
    boundary=beam.DoFn.TimerParam(BOUNDARY),
    silence=beam.DoFn.TimerParam(SILENCE),
  ) -> Iterator:
    agent = state.read()
    if not _logged_in(agent):
      return  # a boundary armed before the logout
    at_ms = fired.micros // 1000
    # Never past the silence logout: the silence timer ends the agent there.
    through = min(at_ms, agent.last_seen + self._silence_ms)
    yield from self._spans(agent_id, agent, through, handled=False)
    self._keep(agent, True, state, boundary, silence)

  @on_timer(SILENCE)
  def on_silence(
    self,
    agent_id=beam.DoFn.KeyParam,
    fired=beam.DoFn.TimestampParam,
    state=beam.DoFn.StateParam(STATE),
    boundary=beam.DoFn.TimerParam(BOUNDARY),
    silence=beam.DoFn.TimerParam(SILENCE),
  ) -> Iterator:
    agent = state.read()
    if agent is None:
      return
    if not _logged_in(agent):
      # The logout's tombstone has judged late events long enough.
      if fired.micros // 1000 >= agent.since + self._silence_ms:
        state.clear()
      return
    logout_at = agent.last_seen + self._silence_ms
    if fired.micros // 1000 < logout_at:
      return  # heard from since the timer was armed; re-armed then
    self._silent_logouts.inc()
    logout = AgentEvent(
      agent_id, logout_at, logout_at, AGENT_LOGGED_OUT, '', agent.queues, agent.channels
    )
    agent = yield from self._change(agent_id, agent, logout)
    self._keep(agent, True, state, boundary, silence)

  def _change(self, agent_id: str, agent: Optional[_Agent], event: AgentEvent) -> Iterator:
    """Ends the current state at the event's `since` (spans, presence) and
    returns the agent in the new state: once logged out, a tombstone that
    only remembers when (`since`), so events older than the logout stay
    stale."""
    if agent is not None:
      ends_contact = agent.contact_id != '' and (
        event.contact_id != agent.contact_id or event.state not in _CONTACT_WORK
      )
      yield from self._spans(agent_id, agent, event.since, handled=ends_contact)
    as_of = event.since
    new_places = (
      set()
      if event.state == AGENT_LOGGED_OUT
      else {(q, c) for q in event.queues for c in event.channels}
    )
    if agent is not None:
      for queue_id, channel in sorted({(q, c) for q in agent.queues for c in agent.channels}):
        if (queue_id, channel) not in new_places:
          yield beam.pvalue.TaggedOutput(
            AGENT_PRESENCE,
            AgentPresence(queue_id, channel, agent_id, AGENT_LOGGED_OUT, '', as_of),
          )
    for queue_id, channel in sorted(new_places):
      yield beam.pvalue.TaggedOutput(
        AGENT_PRESENCE,
        AgentPresence(queue_id, channel, agent_id, event.state, event.reason, as_of),
      )
    last_seen = event.timestamp if agent is None else max(agent.last_seen, event.timestamp)
    reported_through = event.since if agent is None else max(agent.reported_through, event.since)
    agent = _Agent(event)
    agent.last_seen = last_seen
    agent.reported_through = reported_through
    return agent

  def _spans(self, agent_id: str, agent: _Agent, through: int, handled: bool) -> Iterator:
    """The agent's current state from what was reported to `through`, one
    span per window; `handled` marks the last."""
    pieces = window_pieces(agent.reported_through, through, self._window_ms)
    for i, (start, end) in enumerate(pieces):
      yield AgentSpan(
        agent_id=agent_id,
        state=agent.state,
        reason=agent.reason,
        start=start,
        end=end,
        queues=agent.queues,
        channels=agent.channels,
        contact_id=agent.contact_id,
        handled=int(handled and i == len(pieces) - 1),
        timestamp=start,
      )
    if handled and not pieces and agent.contact_id:
      # The contact ended at a boundary already reported: an empty span
      # still counts it as handled.
      # Work that ended exactly at the boundary reported last counts in the
      # window of its last millisecond (the same whichever of two timers at
      # one boundary fires first); work that ended behind it counts from
      # the boundary, as its state's time does.
      at = max(agent.reported_through, through)
      stamp = at - 1 if through == agent.reported_through else at
      yield AgentSpan(
        agent_id,
        agent.state,
        agent.reason,
        at,
        at,
        agent.queues,
        agent.channels,
        agent.contact_id,
        1,
        stamp,
      )
    agent.reported_through = max(agent.reported_through, through)

  def _keep(self, agent: Optional[_Agent], was_in: bool, state, boundary, silence) -> None:
    """Writes the agent (clears it once logged out) and arms its timers: the
    next window boundary and its silence logout."""
    now_in = _logged_in(agent)
    if now_in != was_in:
      self._logged_in.inc(1 if now_in else -1)
    if agent is None:
      state.clear()
      boundary.clear()
      silence.clear()
      return
    if not now_in:
      # A tombstone: no time to report; forgotten a silence timeout after
      # the logout.
      boundary.clear()
      silence.set(Timestamp(micros=(agent.since + self._silence_ms) * 1000))
      state.write(agent)
      return
    next_boundary = (agent.reported_through // self._window_ms + 1) * self._window_ms
    boundary.set(Timestamp(micros=next_boundary * 1000))
    silence.set(Timestamp(micros=(agent.last_seen + self._silence_ms) * 1000))
    state.write(agent)


class AgentStates(beam.PTransform):
  """Each agent's current state, per queue and as time per window.

  Input: PCollection[AgentEvent] in the global window, each timestamped
  with its event time (every agent format's `agent_events`).
  Outputs (dict):
    `agent_spans`: PCollection[AgentSpan], the agents' time cut per window
      of `window_size` (the input of the agent metrics);
    `agent_presence`: PCollection[AgentPresence], each change of an
      agent's state in each (queue, channel) it serves or left.
  Rules in the module docstring; metrics in `metrics_namespace`.
  """

  def __init__(
    self,
    *,
    window_size: Duration,
    silence_timeout: Duration,
    metrics_namespace: str = 'agents',
  ):
    super().__init__()
    self._fn = _AgentStatesFn(millis(window_size), millis(silence_timeout), metrics_namespace)

  def expand(self, events):
    outputs = (
      events
      | 'BatchPerAgent' >> BatchPerKey(lambda e: e.agent_id, lambda e: e.timestamp, str)
      | 'AgentState'
      >> beam.ParDo(self._fn)
      .with_output_types(AgentSpan, **{AGENT_PRESENCE: AgentPresence})
      .with_outputs(AGENT_PRESENCE, main='agent_spans')
    )
    return {'agent_spans': outputs.agent_spans, AGENT_PRESENCE: outputs[AGENT_PRESENCE]}
