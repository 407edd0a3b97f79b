#!/usr/bin/env python3
"""Seeded generator of seed-format agent events (transforms/formats/
agent_seed.py), the input of the agent flow (transforms/agent_flow.py)::

    {"event_type": "AGENT_STATE", "agent_id": "A-101", "timestamp": <epoch ms>,
     "state": "not_ready", "reason": "Break", "queues": ["Q-1", "Q-2"],
     "channels": ["voice"], "contact_id": null}
    {"event_type": "AGENT_HEARTBEAT", "agent_id": "A-101", "timestamp": <epoch ms>}

A floor of ``agents`` agents over several queues and channels for
``duration_ms`` of event time, at millisecond resolution:

* each agent logs in (available) in the first tenth of the shift, works
  contacts: available -> on_contact (a contact id) -> on_hold and back
  sometimes -> after_contact_work -> available, or straight from after-contact
  work to the next contact; takes breaks, lunches and trainings (not_ready
  with the reason); sends a heartbeat every ``heartbeat_ms`` (+- a few
  seconds) while logged in; sometimes moves to other queues; logs out in
  the last tenth of the shift, after its contact;
* ``silent_share`` of the agents go silent at a random moment (no logout,
  no more heartbeats: the job logs them out after its silence timeout);
  half of them log in again more than ``silence_timeout_ms`` later;
* states of every length, so changes fall on both sides of window
  boundaries and long stretches span several windows.

LIST ORDER IS ARRIVAL ORDER, with the disorder the job copes with:

* each record arrives ``U(0, disorder_ms)`` after its event time (an
  agent's changes of a few seconds overtake one another: the older one is
  stale when it arrives); an agent's logout is never overtaken by its own
  earlier state events, nor are they re-sent after it unless
  ``after_logout_share`` asks for it;
* ``duplicate_share`` of the records are re-delivered, the same bytes, up
  to ``redelivery_ms`` later;
* ``stale_share``: an agent's state event of a few changes before is sent
  again after newer ones (a producer retry): stale on arrival;
* ``after_logout_share`` (0 by default): of the logouts, the share whose
  agent's previous state event is re-delivered after the logout (older
  than the logout: stale, as the logout's tombstone tells the job;
  tests/test_agents_reference.py);
* ``malformed`` malformed lines (default one of each kind in
  MALFORMED_KINDS, with the dead-letter reason the job gives them) at
  random places.

Everything is drawn from ``random.Random(seed)``: the same arguments
always give the same lines. Stdlib only, and nothing from the pipeline code.

    python -m testing.datagen.seed_agent_events --out samples/agent_events.jsonl \
        --agents 20 --seed 1
"""

from __future__ import annotations

import random
import sys
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from testing.datagen.common import (
  add_start_argument,
  check_shares,
  generator_arg_parser,
  json_line,
  reset_counts,
  run_generator_cli,
  write_to,
)

DEFAULT_START_MS = 1793606400000  # 2026-11-02T08:00:00Z
QUEUES = ('Q-1', 'Q-2', 'Q-3', 'Q-4')
CHANNEL_SETS = (('voice',), ('voice',), ('chat',), ('chat', 'voice'))
NOT_READY_REASONS = (('Break', 300_000, 900_000), ('Lunch', 1_800_000, 3_000_000))
NOT_READY_REASONS += (('Training', 600_000, 1_200_000),)
S = 1000
# Malformed kind -> the dead-letter reason the seed parser gives it.
MALFORMED_KINDS = {
  'truncated_json': 'malformed_json',
  'not_an_object': 'not_a_json_object',
  'unknown_event_type': 'unknown_event_type',
  'unknown_state': 'unknown_enum_value',
  'unknown_channel': 'unknown_enum_value',
  'no_queues': 'missing_field',
  'not_ready_without_reason': 'missing_field',
  'timestamp_as_text': 'wrong_type',
}
COUNT_KEYS = (
  'lines',
  'state_events',
  'heartbeats',
  'contacts',
  'holds',
  'not_ready',
  'queue_moves',
  'logouts',
  'silent_agents',
  'relogins',
  'duplicates',
  'stale_resends',
  'after_logout_resends',
  'malformed',
)


class Line(NamedTuple):
  """One line of the file: ``raw`` (no newline); ``record`` the JSON
  object of a valid line (a re-delivery's too), None for a malformed one;
  ``reason`` the malformed line's dead-letter reason; ``kind`` state,
  heartbeat, duplicate, stale or the malformed kind."""

  raw: bytes
  record: Optional[Dict[str, Any]]
  reason: Optional[str]
  kind: str


def _state(agent: str, at: int, state: str, queues, channels, reason='', contact=None) -> dict:
  return {
    'event_type': 'AGENT_STATE',
    'agent_id': agent,
    'timestamp': at,
    'state': state,
    'reason': reason or None,
    'queues': list(queues),
    'channels': list(channels),
    'contact_id': contact,
  }


class _Shift:
  """One agent's events in event time: [(timestamp, record)], sessions
  separated by silences."""

  def __init__(self, rng: random.Random, agent: str, counts: Dict[str, int]):
    self.rng = rng
    self.agent = agent
    self.counts = counts
    self.events: List[Tuple[int, dict]] = []
    self.logouts: List[int] = []  # indexes of logout events in `events`
    self.contacts = 0

  def add(self, at: int, record: dict) -> None:
    self.events.append((at, record))
    self.counts['state_events'] += 1

  def session(self, start: int, end: int, queues, channels, silent_at: Optional[int]) -> int:
    """Works from `start` until `end` (then logs out after its contact) or
    until `silent_at` (then nothing more). Returns when it stopped."""
    rng, agent = self.rng, self.agent
    t = start
    self.add(t, _state(agent, t, 'available', queues, channels))
    stop = end if silent_at is None else min(end, silent_at)
    moved = False
    while t < stop:
      t += rng.randint(5 * S, 90 * S)  # available
      if t >= stop:
        break
      draw = rng.random()
      if draw < 0.12:
        reason, low, high = rng.choice(NOT_READY_REASONS)
        self.add(t, _state(agent, t, 'not_ready', queues, channels, reason=reason))
        self.counts['not_ready'] += 1
        t += rng.randint(low, high) // (3 if reason == 'Lunch' else 1)
        if t >= stop:
          break
        self.add(t, _state(agent, t, 'available', queues, channels))
        continue
      if draw < 0.2 and not moved:
        # A new routing profile: the same state, other queues.
        queues = sorted(rng.sample(QUEUES, rng.randint(1, 2)))
        self.add(t, _state(agent, t, 'available', queues, channels))
        self.counts['queue_moves'] += 1
        moved = True
        continue
      while True:  # one contact, maybe straight into the next
        self.contacts += 1
        self.counts['contacts'] += 1
        contact = f'{agent}-c{self.contacts}'
        self.add(t, _state(agent, t, 'on_contact', queues, channels, contact=contact))
        t += rng.randint(3 * S, 240 * S)
        if rng.random() < 0.3:
          self.counts['holds'] += 1
          self.add(t, _state(agent, t, 'on_hold', queues, channels, contact=contact))
          t += rng.randint(1 * S, 60 * S)
          self.add(t, _state(agent, t, 'on_contact', queues, channels, contact=contact))
          t += rng.randint(1 * S, 90 * S)
        if silent_at is not None and t >= silent_at:
          return t
        self.add(t, _state(agent, t, 'after_contact_work', queues, channels, contact=contact))
        t += rng.randint(1 * S, 60 * S)
        if t >= stop or rng.random() > 0.15:
          break
      if silent_at is not None and t >= silent_at:
        return t
      if t < stop:
        self.add(t, _state(agent, t, 'available', queues, channels))
    if silent_at is not None and stop == silent_at:
      return t
    t += rng.randint(1 * S, 10 * S)
    self.logouts.append(len(self.events))
    self.add(t, _state(agent, t, 'logged_out', queues, channels))
    self.counts['logouts'] += 1
    return t

  def heartbeats(self, start: int, stop: int, heartbeat_ms: int) -> List[Tuple[int, dict]]:
    beats = []
    t = start + self.rng.randint(1, heartbeat_ms)
    while t < stop:
      beats.append((t, {'event_type': 'AGENT_HEARTBEAT', 'agent_id': self.agent, 'timestamp': t}))
      t += heartbeat_ms + self.rng.randint(-5 * S, 5 * S)
    self.counts['heartbeats'] += len(beats)
    return beats


def _malformed(kind: str, base: dict) -> bytes:
  """A malformed line shaped like `base` (a state event)."""
  if kind == 'truncated_json':
    raw = json_line(base)
    return raw[: len(raw) // 2]
  if kind == 'not_an_object':
    return json_line([base['agent_id'], base['timestamp']])
  bad = dict(base)
  if kind == 'unknown_event_type':
    bad['event_type'] = 'AGENT_PING'
  elif kind == 'unknown_state':
    bad['state'] = 'busy'
  elif kind == 'unknown_channel':
    bad['channels'] = ['fax']
  elif kind == 'no_queues':
    del bad['queues']
  elif kind == 'not_ready_without_reason':
    bad['state'], bad['reason'] = 'not_ready', None
  elif kind == 'timestamp_as_text':
    bad['timestamp'] = str(bad['timestamp'])
  else:
    raise ValueError(f'unknown malformed kind {kind!r}')
  return json_line(bad)


def generate_agent_events(
  seed: int,
  agents: int = 20,
  *,
  start_ms: int = DEFAULT_START_MS,
  duration_ms: int = 2 * 3600 * S,
  heartbeat_ms: int = 60 * S,
  silence_timeout_ms: int = 900 * S,
  disorder_ms: int = 20 * S,
  redelivery_ms: int = 60 * S,
  duplicate_share: float = 0.03,
  stale_share: float = 0.02,
  silent_share: float = 0.2,
  after_logout_share: float = 0.0,
  malformed: Optional[int] = None,
  stats: Optional[Dict[str, int]] = None,
) -> List[Line]:
  """The file's lines in arrival order (see the module docstring);
  ``stats`` (if given) gets the counts of COUNT_KEYS."""
  check_shares(
    ('duplicate_share', duplicate_share),
    ('stale_share', stale_share),
    ('silent_share', silent_share),
    ('after_logout_share', after_logout_share),
  )
  if agents < 1 or duration_ms <= 0 or disorder_ms < 0 or heartbeat_ms <= 10 * S:
    raise ValueError('need agents >= 1, duration > 0, disorder >= 0, heartbeat > 10 s')
  counts = reset_counts(stats, COUNT_KEYS)
  rng = random.Random(seed)
  # (arrival, sequence, line): the sequence keeps generation order on ties.
  arrivals: List[Tuple[int, int, Line]] = []
  seq = 0

  def push(arrival: int, line: Line) -> None:
    nonlocal seq
    arrivals.append((arrival, seq, line))
    seq += 1

  for n in range(agents):
    agent = f'A-{101 + n}'
    queues = sorted(rng.sample(QUEUES, rng.randint(1, 2)))
    channels = rng.choice(CHANNEL_SETS)
    shift = _Shift(rng, agent, counts)
    login = start_ms + rng.randint(0, duration_ms // 10)
    end = start_ms + duration_ms - rng.randint(0, duration_ms // 10)
    silent_at = None
    if rng.random() < silent_share:
      counts['silent_agents'] += 1
      silent_at = rng.randint(login + 60 * S, max(login + 60 * S, end - 60 * S))
    stopped = shift.session(login, end, queues, channels, silent_at)
    beats = shift.heartbeats(login, stopped, heartbeat_ms)
    if silent_at is not None and rng.random() < 0.5:
      # Back after the job logged it out: a new session.
      again = stopped + silence_timeout_ms + rng.randint(60 * S, 600 * S)
      if again < end:
        counts['relogins'] += 1
        done = shift.session(again, end, queues, channels, None)
        beats += shift.heartbeats(again, done, heartbeat_ms)
    # Arrival times: each record U(0, disorder) late; a logout after every
    # earlier state event of its agent.
    latest = 0
    states: List[Tuple[int, dict]] = []  # (arrival, record) so far
    logout_arrivals: List[int] = []
    for i, (at, record) in enumerate(shift.events):
      arrival = at + rng.randint(0, disorder_ms)
      if i in shift.logouts:
        arrival = max(arrival, latest + 1)
        logout_arrivals.append(arrival)
      latest = max(latest, arrival)
      states.append((arrival, record))
    for at, record in beats:
      push(at + rng.randint(0, disorder_ms), Line(json_line(record), record, None, 'heartbeat'))

    logouts = [(shift.events[i][0], a) for i, a in zip(shift.logouts, logout_arrivals)]

    def before_logout(arrival: int, at: int, logouts=logouts) -> bool:
      # A copy of a state event of time `at` arriving at `arrival` must
      # not follow a logout at or after `at`.
      return not any(t >= at and a <= arrival for t, a in logouts)

    for i, (arrival, record) in enumerate(states):
      push(arrival, Line(json_line(record), record, None, 'state'))
      # No draw at the default share: the same seed, the same file as before.
      if after_logout_share and i in shift.logouts and rng.random() < after_logout_share:
        # The state before the logout re-delivered after it (off by
        # default: see the module docstring).
        old = states[i - 1][1]
        counts['after_logout_resends'] += 1
        push(arrival + rng.randint(1, redelivery_ms), Line(json_line(old), old, None, 'stale'))
      if rng.random() < duplicate_share:
        again = arrival + rng.randint(1, redelivery_ms)
        if before_logout(again, record['timestamp']):
          counts['duplicates'] += 1
          push(again, Line(json_line(record), record, None, 'duplicate'))
      if i >= 3 and rng.random() < stale_share:
        old = states[i - rng.randint(2, 3)][1]
        again = arrival + rng.randint(1, disorder_ms + 1)
        if old['event_type'] == 'AGENT_STATE' and before_logout(again, old['timestamp']):
          counts['stale_resends'] += 1
          push(again, Line(json_line(old), old, None, 'stale'))
    for at, record in beats:
      if rng.random() < duplicate_share:
        counts['duplicates'] += 1
        push(
          at + rng.randint(disorder_ms, disorder_ms + redelivery_ms),
          Line(json_line(record), record, None, 'duplicate'),
        )
  arrivals.sort(key=lambda a: (a[0], a[1]))
  lines = [line for _, _, line in arrivals]
  kinds = list(MALFORMED_KINDS)
  n_bad = len(kinds) if malformed is None else malformed
  for j in range(n_bad):
    kind = kinds[j % len(kinds)]
    at = rng.randint(0, len(lines))
    # Shaped like a state event of about the same time.
    base = next(
      (line.record for line in reversed(lines[:at]) if line.kind == 'state'),
      next(line.record for line in lines if line.kind == 'state'),
    )
    lines.insert(at, Line(_malformed(kind, base), None, MALFORMED_KINDS[kind], kind))
    counts['malformed'] += 1
  counts['lines'] = len(lines)
  return lines


def write_agent_events(out: str, agents: int, seed: int, **options: Any) -> Dict[str, int]:
  """Write the lines to ``out`` ('-' for stdout); return the counts."""
  stats: Dict[str, int] = {}
  lines = generate_agent_events(seed, agents, stats=stats, **options)
  write_to(out, (line.raw for line in lines))
  return stats


def main(argv: Optional[Sequence[str]] = None) -> int:
  p = generator_arg_parser(
    'Seeded seed-format agent events (logins, contacts, breaks, heartbeats, '
    'silences, disorder, duplicates, stale re-sends, malformed lines).',
    '--agents',
    20,
    'agents on the floor',
  )
  add_start_argument(p, DEFAULT_START_MS, 'shift')
  p.add_argument('--duration-ms', type=int, default=2 * 3600 * S, help='the shift, event time')
  p.add_argument('--disorder-ms', type=int, default=20 * S, help='largest arrival delay')
  p.add_argument('--silent-share', type=float, default=0.2, help='agents that go silent')
  p.add_argument('--malformed', type=int, default=None, help='malformed lines (default: 1 a kind)')
  return run_generator_cli(p, 'agents', write_agent_events, argv)


if __name__ == '__main__':
  sys.exit(main())
