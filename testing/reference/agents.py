#!/usr/bin/env python3
"""Independent reference for agent states and agent time (transforms/
agent_states.py, agent_status.py, agent_metrics.py).

Fed agent events in arrival order (objects or dicts with the fields of
``AgentEvent``: ``agent_id``, ``timestamp``, ``since`` (default
``timestamp``), ``state``, ``reason``, ``queues``, ``channels``,
``contact_id``, ``heartbeat``; or the seed format's JSON objects, see
``event_of``) and told how far the watermark has come, it computes in plain
Python, with dicts, every agent's state, the agents by state per (queue,
channel) and the agent time per window. It shares no code with
``pipelines/`` or ``transforms/``: it is the oracle the job is checked
against (tests/test_agents_reference.py, tests/test_agent_flow_e2e.py).

Semantics (the job's contract):

* Per agent, its state: logged in (a state, reason, ``since``, queues,
  channels, contact, the time its state was attributed through
  ``reported``, and ``last_seen``, the latest event time heard), logged
  out since a time, or never seen. Queues and channels are sets (order and
  repeats mean nothing); a missing ``channels`` is voice, a missing or null
  ``contact_id`` is '', the reason is kept in not_ready only.
* A heartbeat of a logged-in agent moves ``last_seen`` up to its time;
  of any other agent it is counted (``heartbeats_of_agents_logged_out``)
  and does nothing else.
* Any other event of a logged-in agent moves ``last_seen`` up to its
  ``timestamp``. Then: ``since`` before the agent's ``since``: stale,
  counted (``stale_events``), ignored. The same state, reason, queues,
  channels and contact: a repeat, ignored. Otherwise a change at ``since``.
* An agent logged out since T (by its logout event or a silence logout at
  T): an event with ``since`` < T is stale too (counted, ignored: the
  logout is the state it is in); a logout event does nothing; any other
  event logs it in. A never-seen agent's logout does nothing.
* A change at ``since`` = c of a logged-in agent whose time is attributed
  through R: the old state gets [R, c) if c > R (nothing otherwise: the
  time before R was already attributed, to the old state); the new state
  counts from max(R, c) (its ``reported``), with ``since`` = c. A logout
  makes the agent logged out since c. A login (from logged out or never
  seen) counts from its ``since``, ``last_seen`` = its ``timestamp``.
* Handled: a change ends the agent's work on its contact when it had one
  (contact != '') and the new state is not on_contact / on_hold /
  after_contact_work on that same contact (another contact, another state,
  a logout, a silence logout). It is counted once, in the window holding
  the last attributed millisecond of that stretch, c - 1, when c > R; else
  (nothing was left to attribute) in the window holding R.
* Attribution: a stretch [a, b) is cut at the window grid (multiples of
  ``window_ms`` from epoch 0); each piece adds its milliseconds to its
  window's state (on_contact is talk; on_hold hold; after_contact_work
  ACW; available; not_ready), per agent and per every (queue, channel) of
  the agent's queues x channels.
* The watermark (``advance_watermark(W)``, never backwards): for every
  logged-in agent, in event-time order: each grid boundary b <= W with
  b < last_seen + silence_timeout attributes [R, b) (R becomes b); then if
  L = last_seen + silence_timeout <= W the agent is logged out at L (a
  change at L: [R, L) attributed, the contact handled if any) and counted
  (``silent_logouts``). At a boundary equal to L the logout comes first
  (the boundary is not cut: the contact ends in the window before, as the
  local runner fires the job's two timers). ``finish()`` is
  the end of the input: every agent still logged in is logged out at its
  L so (the watermark at infinity).
* Agents by state per (queue, channel): the logged-in agents serving it
  (its queue in their queues and its channel in their channels), counted
  as available; on_contact (on_hold included); after_contact_work;
  not_ready, with not-ready agents per reason. A key is listed once any
  agent served it. ``history`` has the counts after every event (and
  silence logout) that touched the key.
* Per window (a key = (queue, channel) or an agent; windows with any
  attributed millisecond or handled contact): handled, milliseconds per
  state; seconds = ms / 1000; AHT = (talk + hold + ACW) / handled in
  seconds, rounded half-up to 4 places, 0 when none handled; occupancy =
  (talk + hold + ACW) / (that + available), rounded half-up to 4 places, 0
  when the denominator is 0.

CLI: ``python -m testing.reference.agents FILE.jsonl [--window-s 300]
[--silence-timeout-s 900]`` replays a seed agent-event file (lines the
seed parser rejects skipped, by a minimal check) with the watermark at the
largest event time after every line, then finishes, and prints the
counters, the status per key and the per-window figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

AVAILABLE = 'available'
ON_CONTACT = 'on_contact'
ON_HOLD = 'on_hold'
AFTER_CONTACT_WORK = 'after_contact_work'
NOT_READY = 'not_ready'
LOGGED_OUT = 'logged_out'
_WORK = (ON_CONTACT, ON_HOLD, AFTER_CONTACT_WORK)
# Milliseconds slots per state: talk, hold, ACW, available, not ready.
_SLOT = {ON_CONTACT: 0, ON_HOLD: 1, AFTER_CONTACT_WORK: 2, AVAILABLE: 3, NOT_READY: 4}

Place = Tuple[str, str]  # (queue_id, channel)


class Event(NamedTuple):
  """An agent event, normalized (sorted distinct queues and channels)."""

  agent_id: str
  timestamp: int
  since: int
  state: str
  reason: str
  queues: Tuple[str, ...]
  channels: Tuple[str, ...]
  contact_id: str
  heartbeat: bool


class Counts(NamedTuple):
  """Agents by state in one (queue, channel)."""

  logged_in: int
  available: int
  on_contact: int
  after_contact_work: int
  not_ready: int
  not_ready_reasons: Tuple[Tuple[str, int], ...]  # (reason, agents), by reason


class Figures(NamedTuple):
  """One window's figures, as the agent_metrics / agent_activity rows."""

  handled_contacts: int
  talk_seconds: float
  hold_seconds: float
  after_contact_work_seconds: float
  available_seconds: float
  not_ready_seconds: float
  aht_seconds: float
  occupancy: float


def _get(event: Any, name: str, default: Any = None) -> Any:
  if isinstance(event, dict):
    return event.get(name, default)
  return getattr(event, name, default)


def event_of(event: Any) -> Event:
  """An AgentEvent-like object or dict, or a seed-format JSON object
  (``event_type`` AGENT_STATE / AGENT_HEARTBEAT, ``since`` = ``timestamp``),
  as an Event."""
  event_type = _get(event, 'event_type')
  heartbeat = bool(_get(event, 'heartbeat', False)) or event_type == 'AGENT_HEARTBEAT'
  timestamp = int(_get(event, 'timestamp'))
  since = _get(event, 'since')
  if heartbeat:
    return Event(_get(event, 'agent_id'), timestamp, timestamp, '', '', (), (), '', True)
  state = _get(event, 'state')
  channels = _get(event, 'channels')
  return Event(
    agent_id=_get(event, 'agent_id'),
    timestamp=timestamp,
    since=timestamp if since is None else int(since),
    state=state,
    reason=(_get(event, 'reason') or '') if state == NOT_READY else '',
    queues=tuple(sorted(set(_get(event, 'queues') or ()))),
    channels=tuple(sorted(set(channels))) if channels else ('voice',),
    contact_id=_get(event, 'contact_id') or '',
    heartbeat=False,
  )


def half_up_4(numerator: int, denominator: int) -> float:
  """numerator / denominator rounded half-up to 4 places (both >= 0), in
  integers: floor(x * 10^4 + 1/2) / 10^4; 0.0 when the denominator is 0."""
  if denominator == 0:
    return 0.0
  return ((2 * numerator * 10_000 + denominator) // (2 * denominator)) / 10_000


def figures_of(handled: int, ms: Sequence[int]) -> Figures:
  """The row figures of a window's handled contacts and milliseconds
  [talk, hold, ACW, available, not ready]."""
  talk, hold, acw, available, not_ready = ms
  working = talk + hold + acw
  return Figures(
    handled_contacts=handled,
    talk_seconds=talk / 1000,
    hold_seconds=hold / 1000,
    after_contact_work_seconds=acw / 1000,
    available_seconds=available / 1000,
    not_ready_seconds=not_ready / 1000,
    aht_seconds=half_up_4(working, handled * 1000),
    occupancy=half_up_4(working, working + available),
  )


class _In:
  """A logged-in agent."""

  __slots__ = ('state', 'reason', 'since', 'queues', 'channels', 'contact', 'reported', 'last_seen')

  def __init__(self, event: Event, reported: int, last_seen: int):
    self.state = event.state
    self.reason = event.reason
    self.since = event.since
    self.queues = event.queues
    self.channels = event.channels
    self.contact = event.contact_id
    self.reported = reported
    self.last_seen = last_seen

  def places(self) -> List[Place]:
    return [(q, c) for q in self.queues for c in self.channels]


class AgentsReference:
  """Agent states, agents per queue and agent time, fed in arrival order.

  ``apply(event)`` per event, ``advance_watermark(ms)`` when the watermark
  moves, ``finish()`` at the end of the input. Read ``status(place)``,
  ``statuses()``, ``queue_windows()``, ``agent_windows()`` (figures per
  window), the counters ``stale_events``, ``heartbeats_of_agents_logged_out``,
  ``silent_logouts``, ``state_changes`` (the changes events made: silence
  logouts are not among them), and ``history`` (place -> counts
  after each event that touched it).
  """

  def __init__(self, window_ms: int, silence_timeout_ms: int) -> None:
    if window_ms <= 0 or silence_timeout_ms <= 0:
      raise ValueError('window and silence timeout must be > 0')
    self.window_ms = window_ms
    self.silence_ms = silence_timeout_ms
    self._in: Dict[str, _In] = {}
    self._out_since: Dict[str, int] = {}  # logged out since
    self._places: Dict[Place, None] = {}  # every place an agent served, in order
    # key -> window start -> [handled, talk, hold, ACW, available, not ready]
    self._queue_time: Dict[Place, Dict[int, List[int]]] = {}
    self._agent_time: Dict[str, Dict[int, List[int]]] = {}
    self.history: Dict[Place, List[Counts]] = {}
    self._last_change: Dict[Place, int] = {}
    self.watermark: Optional[int] = None
    self.stale_events = 0
    self.heartbeats_of_agents_logged_out = 0
    self.silent_logouts = 0
    self.state_changes = 0
    self.events = 0

  # ---- feeding -------------------------------------------------------------

  def apply(self, raw: Any) -> None:
    """One event, in arrival order."""
    event = event_of(raw)
    self.events += 1
    agent = self._in.get(event.agent_id)
    if event.heartbeat:
      if agent is None:
        self.heartbeats_of_agents_logged_out += 1
      else:
        agent.last_seen = max(agent.last_seen, event.timestamp)
      return
    if agent is not None:
      agent.last_seen = max(agent.last_seen, event.timestamp)
      if event.since < agent.since:
        self.stale_events += 1
        return
      if (agent.state, agent.reason, agent.queues, agent.channels, agent.contact) == (
        event.state,
        event.reason,
        event.queues,
        event.channels,
        event.contact_id,
      ):
        return
    else:
      out_since = self._out_since.get(event.agent_id)
      if out_since is not None and event.since < out_since:
        self.stale_events += 1
        return
      if event.state == LOGGED_OUT:
        return
    self.state_changes += 1
    self._change(event.agent_id, agent, event)

  def advance_watermark(self, watermark_ms: int) -> None:
    """The watermark reached ``watermark_ms``: boundaries and silence
    logouts up to it, per agent in event-time order. Called again with
    the same watermark it still ends what came due behind it (an agent
    logged in by an event older than the watermark), as a runner fires a
    timer set behind the watermark at once. Never backwards."""
    if self.watermark is not None:
      watermark_ms = max(watermark_ms, self.watermark)
    self.watermark = watermark_ms
    for agent_id in sorted(self._in):
      agent = self._in[agent_id]
      logout_at = agent.last_seen + self.silence_ms
      boundary = (agent.reported // self.window_ms + 1) * self.window_ms
      while boundary <= watermark_ms and boundary < logout_at:
        self._attribute(agent_id, agent, boundary)
        boundary += self.window_ms
      if logout_at <= watermark_ms:
        self.silent_logouts += 1
        logout = Event(
          agent_id, logout_at, logout_at, LOGGED_OUT, '', agent.queues, agent.channels, '', False
        )
        self._change(agent_id, agent, logout)

  def finish(self) -> None:
    """The end of the input: every agent still logged in goes silent."""
    latest = max((a.last_seen for a in self._in.values()), default=0)
    self.advance_watermark(max(self.watermark or 0, latest + self.silence_ms))

  # ---- rules ---------------------------------------------------------------

  def _change(self, agent_id: str, agent: Optional[_In], event: Event) -> None:
    before = set() if agent is None else set(agent.places())
    if agent is None:
      reported, last_seen = event.since, event.timestamp
    else:
      ends_contact = agent.contact != '' and (
        event.contact_id != agent.contact or event.state not in _WORK
      )
      if ends_contact:
        at = event.since - 1 if event.since > agent.reported else agent.reported
        self._add(agent_id, agent, at, handled=1)
      if event.since > agent.reported:
        self._attribute(agent_id, agent, event.since)
      reported, last_seen = agent.reported, max(agent.last_seen, event.timestamp)
    if event.state == LOGGED_OUT:
      self._in.pop(agent_id, None)
      self._out_since[agent_id] = event.since
      after: set = set()
    else:
      self._out_since.pop(agent_id, None)
      new = self._in[agent_id] = _In(event, max(reported, event.since), last_seen)
      after = set(new.places())
      for place in new.places():
        self._places.setdefault(place, None)
    for place in sorted(before | after):
      self.history.setdefault(place, []).append(self.status(place))
      self._last_change[place] = max(self._last_change.get(place, event.since), event.since)

  def _attribute(self, agent_id: str, agent: _In, through: int) -> None:
    """The agent's state over [reported, through), window by window."""
    start = agent.reported
    while start < through:
      end = min(through, (start // self.window_ms + 1) * self.window_ms)
      self._add(agent_id, agent, start, ms=end - start)
      start = end
    agent.reported = max(agent.reported, through)

  def _add(self, agent_id: str, agent: _In, at: int, ms: int = 0, handled: int = 0) -> None:
    window = at // self.window_ms * self.window_ms
    targets = [self._agent_time.setdefault(agent_id, {})]
    targets += [self._queue_time.setdefault(p, {}) for p in agent.places()]
    for per_window in targets:
      acc = per_window.setdefault(window, [0] * 6)
      acc[0] += handled
      acc[1 + _SLOT[agent.state]] += ms

  # ---- reading -------------------------------------------------------------

  @property
  def places(self) -> List[Place]:
    """Every (queue, channel) any agent served."""
    return sorted(self._places)

  def state_of(self, agent_id: str) -> Optional[Tuple[str, str, int]]:
    """(state, reason, since) of a logged-in agent, else None."""
    agent = self._in.get(agent_id)
    return None if agent is None else (agent.state, agent.reason, agent.since)

  def logged_in(self) -> List[str]:
    """The agents logged in now."""
    return sorted(self._in)

  def agents_in(self, place: Place) -> Dict[str, Tuple[str, str, int]]:
    """Agent -> (state, reason, since) of the agents serving ``place``."""
    return {
      agent_id: (agent.state, agent.reason, agent.since)
      for agent_id, agent in self._in.items()
      if place[0] in agent.queues and place[1] in agent.channels
    }

  def last_change(self, place: Place) -> Optional[int]:
    """The latest ``since`` of a change that touched ``place`` (an agent
    joining, changing there or leaving it), None if none did."""
    return self._last_change.get(place)

  def status(self, place: Place) -> Counts:
    """Agents by state in ``place`` now."""
    n = {AVAILABLE: 0, ON_CONTACT: 0, AFTER_CONTACT_WORK: 0, NOT_READY: 0}
    reasons: Dict[str, int] = {}
    for agent in self._in.values():
      if place[0] not in agent.queues or place[1] not in agent.channels:
        continue
      state = ON_CONTACT if agent.state == ON_HOLD else agent.state
      n[state] += 1
      if state == NOT_READY:
        reasons[agent.reason] = reasons.get(agent.reason, 0) + 1
    return Counts(
      sum(n.values()),
      n[AVAILABLE],
      n[ON_CONTACT],
      n[AFTER_CONTACT_WORK],
      n[NOT_READY],
      tuple(sorted(reasons.items())),
    )

  def statuses(self) -> Dict[Place, Counts]:
    return {place: self.status(place) for place in self.places}

  def queue_window_ms(self) -> Dict[Tuple[str, str, int], Tuple[int, ...]]:
    """(queue, channel, window start) -> (handled, then milliseconds of
    talk, hold, ACW, available, not ready)."""
    return {
      (q, c, w): tuple(acc)
      for (q, c), windows in self._queue_time.items()
      for w, acc in windows.items()
    }

  def agent_window_ms(self) -> Dict[Tuple[str, int], Tuple[int, ...]]:
    """(agent, window start) -> (handled, then milliseconds per state as
    in queue_window_ms)."""
    return {
      (a, w): tuple(acc) for a, windows in self._agent_time.items() for w, acc in windows.items()
    }

  def queue_windows(self) -> Dict[Tuple[str, str, int], Figures]:
    """(queue, channel, window start) -> figures."""
    return {
      (q, c, w): figures_of(acc[0], acc[1:])
      for (q, c), windows in self._queue_time.items()
      for w, acc in windows.items()
    }

  def agent_windows(self) -> Dict[Tuple[str, int], Figures]:
    """(agent, window start) -> figures."""
    return {
      (a, w): figures_of(acc[0], acc[1:])
      for a, windows in self._agent_time.items()
      for w, acc in windows.items()
    }


def reference_agents(
  events: Iterable[Any], window_ms: int, silence_timeout_ms: int
) -> AgentsReference:
  """The reference after ``events`` (arrival order), the watermark at the
  largest event time after each, then finished."""
  ref = AgentsReference(window_ms, silence_timeout_ms)
  for event in events:
    ref.apply(event)
    ref.advance_watermark(int(_get(event, 'timestamp')))
  ref.finish()
  return ref


_CHANNELS = ('voice', 'chat', 'email', 'task', 'message', 'callback', 'video', 'cobrowse')
_CHANNELS += ('screenshare', 'unknown')
_STATES = (AVAILABLE, ON_CONTACT, ON_HOLD, AFTER_CONTACT_WORK, NOT_READY, LOGGED_OUT)


def _text(value: Any) -> bool:
  return isinstance(value, str) and value != ''


def _seed_valid(obj: Any) -> bool:
  """A minimal check of a seed object, so that no line the job rejects
  moves the watermark: the fields the reference reads, of the right
  kinds (the job's parser checks more: lengths, control characters,
  plausible times)."""
  if not isinstance(obj, dict) or not _text(obj.get('agent_id')):
    return False
  if type(obj.get('timestamp')) is not int:
    return False
  if obj.get('event_type') == 'AGENT_HEARTBEAT':
    return True
  if obj.get('event_type') != 'AGENT_STATE' or obj.get('state') not in _STATES:
    return False
  if obj['state'] == NOT_READY and not _text(obj.get('reason')):
    return False
  queues, channels = obj.get('queues'), obj.get('channels')
  if not isinstance(queues, list) or not queues or not all(_text(q) for q in queues):
    return False
  if channels is not None and (
    not isinstance(channels, list) or not channels or any(c not in _CHANNELS for c in channels)
  ):
    return False
  return obj.get('contact_id') is None or isinstance(obj['contact_id'], str)


def _seed_events(lines: Iterable[bytes]) -> List[dict]:
  events = []
  for line in lines:
    try:
      obj = json.loads(line)
    except ValueError:
      continue
    if _seed_valid(obj):
      events.append(obj)
  return events


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI: the counters, statuses and windows of a seed agent-event file."""
  p = argparse.ArgumentParser(
    description='Reference (bare-Python) agent states and agent time for a seed JSON-lines file.',
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  p.add_argument('path', help='seed agent events, file order = arrival order')
  p.add_argument('--window-s', type=int, default=300)
  p.add_argument('--silence-timeout-s', type=int, default=900)
  args = p.parse_args(argv)
  with open(args.path, 'rb') as f:
    events = _seed_events(f)
  ref = reference_agents(events, args.window_s * 1000, args.silence_timeout_s * 1000)
  json.dump(
    {
      'events': ref.events,
      'stale_events': ref.stale_events,
      'heartbeats_of_agents_logged_out': ref.heartbeats_of_agents_logged_out,
      'silent_logouts': ref.silent_logouts,
      'status': [
        {'queue_id': q, 'channel': c, **counts._asdict()}
        for (q, c), counts in ref.statuses().items()
      ],
      'agent_metrics': [
        {'queue_id': q, 'channel': c, 'window_start': w, **f._asdict()}
        for (q, c, w), f in sorted(ref.queue_windows().items())
      ],
      'agent_activity': [
        {'agent_id': a, 'window_start': w, **f._asdict()}
        for (a, w), f in sorted(ref.agent_windows().items())
      ],
    },
    sys.stdout,
    indent=1,
  )
  print()
  return 0


if __name__ == '__main__':
  sys.exit(main())
