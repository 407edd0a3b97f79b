#!/usr/bin/env python3
"""Seeded generator of an Amazon Connect agent event stream (JSON lines), the
records `--agent_event_format=amazon_connect` reads.

Each line is one agent event as Amazon Connect writes it to the agent event
stream's Kinesis data stream (Amazon Connect Administrator Guide, "Agent
event streams data model",
https://docs.aws.amazon.com/connect/latest/adminguide/agent-event-stream-model.html,
and "Sample agent event stream",
https://docs.aws.amazon.com/connect/latest/adminguide/sample-agent-event-stream.html):
`AgentARN`, `EventId`, `EventTimestamp`, `EventType`, `InstanceARN`,
`Version`, the `CurrentAgentSnapshot` and, except on LOGIN and LOGOUT, the
`PreviousAgentSnapshot` (the current snapshot of the agent's previous
event), each with `AgentStatus`, `Configuration` (the routing profile:
`InboundQueues` with the agent's own queue, `Concurrency`,
`DefaultOutboundQueue`) and `Contacts`.

A working hour of a team: each agent logs in (LOGIN, the CCP in Offline),
sets Available, is offered contacts (a call or, for agents whose profile
takes chats, a chat; a share are queued callbacks, INCOMING), which ring
(CONNECTING), are accepted (CONNECTED) or missed (MISSED: the agent sets
Available again a little later), sometimes go on hold and back, end
(ENDED: after contact work, "Determine the contact center agent's ACW
time") and are cleared (no contact left); now and then an agent takes a
break in a custom status (Break, Lunch, Training), chooses a next status
during a call (`NextAgentStatus`, "pauses new contacts being routed to
them"), or makes an outbound call in a custom status. At the end of the
shift the agent sets Offline and logs out. HEART_BEAT events come "every
120 seconds if there are no other events published during that interval"
(``--heartbeat-seconds``), and "up to an hour after an agent has logged
off" (until the end of the file here). Amazon's samples show no
`AgentStatus.Type`; ``--status-type`` adds it (ROUTABLE, CUSTOM, OFFLINE:
Amazon Connect API Reference, "AgentStatus").

Delivery: Kinesis keeps the order of one agent's records (the partition key
is the agent ARN), so each agent's events arrive in order, interleaved with
the other agents' by up to ``--jitter-seconds``; a share of lines
(``--redelivery-share``) is delivered again 1-30 lines later (Kinesis
consumers read at least once), and one malformed line of each kind of
MALFORMED_REASONS is inserted (a contact record on the agent topic, a
truncated line, an undocumented EventType, an AgentARN naming no agent).

The committed sample was made with::

    python -m testing.datagen.agent_events --out samples/amazon_connect_agent_events.jsonl \\
        --agents 6 --minutes 60 --seed 21

Same arguments, same bytes. Stdlib only, and nothing from the pipeline code.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import random
import uuid
from typing import Dict, List, Optional, Sequence, Tuple

from testing.datagen.common import json_line, parse_share, parse_start, write_to
from testing.datagen.vendor_events import CONNECT_INSTANCE, connect_queue_name

SAMPLE_ARGS = ['--agents', '6', '--minutes', '60', '--seed', '21']
# The dead-letter reason of each malformed kind, in the order they cycle.
MALFORMED_REASONS = ('wrong_stream', 'malformed_json', 'unknown_event_type', 'malformed_agent_arn')
DEFAULT_START = '2026-11-02T08:00:00Z'
VERSION = '2019-05-25'
ACCOUNT = CONNECT_INSTANCE.split(':')[4]
CUSTOM_STATUSES = ('Break', 'Lunch', 'Training')
_REDELIVERY_GAP = (1, 30)


def _iso(ms: int) -> str:
  moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
  return moment.strftime('%Y-%m-%dT%H:%M:%S.') + f'{ms % 1000:03d}Z'


def _uuid(rng: random.Random) -> str:
  return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclasses.dataclass(frozen=True)
class _Status:
  name: str
  kind: str
  start_ms: int
  arn: str


@dataclasses.dataclass(frozen=True)
class _Contact:
  contact_id: str
  channel: str
  method: str
  state: str
  state_start_ms: int
  queue: Tuple[str, str]
  queued_ms: Optional[int]
  connected_ms: Optional[int] = None


@dataclasses.dataclass
class _Agent:
  agent_id: str
  username: str
  profile: Dict[str, object]
  chat: bool
  queues: List[Tuple[str, str]]
  status: _Status
  contacts: Tuple[_Contact, ...] = ()
  next_status: Optional[Tuple[str, str, int]] = None
  previous: Optional[Dict[str, object]] = None
  events: List[Tuple[int, Dict[str, object]]] = dataclasses.field(default_factory=list)


class _Generator:
  def __init__(self, args: argparse.Namespace):
    self.args = args
    self.rng = random.Random(args.seed)
    self.status_arns = {
      name: f'{CONNECT_INSTANCE}/agent-state/{_uuid(self.rng)}'
      for name in ('Available', 'Offline') + CUSTOM_STATUSES
    }
    self.queues = [
      (f'{CONNECT_INSTANCE}/queue/{_uuid(self.rng)}', connect_queue_name(i))
      for i in range(args.queues)
    ]
    self.outbound = (f'{CONNECT_INSTANCE}/queue/{_uuid(self.rng)}', 'Outbound')

  # ---- snapshots and events -------------------------------------------

  def _status_json(self, status: _Status) -> Dict[str, object]:
    out: Dict[str, object] = {
      'ARN': status.arn,
      'Name': status.name,
      'StartTimestamp': _iso(status.start_ms),
    }
    if self.args.status_type:
      out['Type'] = status.kind
    return out

  def _snapshot(self, agent: _Agent) -> Dict[str, object]:
    snapshot: Dict[str, object] = {
      'AgentStatus': self._status_json(agent.status),
      'Configuration': {
        'AgentHierarchyGroups': None,
        'FirstName': agent.username.split('.')[0].title(),
        'LastName': agent.username.split('.')[1].title(),
        'RoutingProfile': agent.profile,
        'Username': agent.username,
      },
      'Contacts': [
        {
          'Channel': c.channel,
          'ConnectedToAgentTimestamp': None if c.connected_ms is None else _iso(c.connected_ms),
          'ContactId': c.contact_id,
          'InitialContactId': None,
          'InitiationMethod': c.method,
          'Queue': {'ARN': c.queue[0], 'Name': c.queue[1]},
          'QueueTimestamp': None if c.queued_ms is None else _iso(c.queued_ms),
          'State': c.state,
          'StateStartTimestamp': _iso(c.state_start_ms),
        }
        for c in agent.contacts
      ],
    }
    if agent.next_status is not None:
      name, arn, at = agent.next_status
      snapshot['NextAgentStatus'] = {'Name': name, 'ARN': arn, 'EnqueuedTimestamp': _iso(at)}
    return snapshot

  def _emit(self, agent: _Agent, at: int, event_type: str) -> None:
    current = self._snapshot(agent)
    event: Dict[str, object] = {
      'AWSAccountId': ACCOUNT,
      'AgentARN': f'{CONNECT_INSTANCE}/agent/{agent.agent_id}',
      'CurrentAgentSnapshot': current,
      'EventId': _uuid(self.rng),
      'EventTimestamp': _iso(at),
      'EventType': event_type,
      'InstanceARN': CONNECT_INSTANCE,
      'Version': VERSION,
    }
    # "Not applicable to LOGIN or LOGOUT events."
    if event_type not in ('LOGIN', 'LOGOUT'):
      event['PreviousAgentSnapshot'] = agent.previous if agent.previous is not None else current
    agent.previous = current
    agent.events.append((at, event))

  def _set_status(self, agent: _Agent, at: int, name: str) -> None:
    kind = {'Available': 'ROUTABLE', 'Offline': 'OFFLINE'}.get(name, 'CUSTOM')
    agent.status = _Status(name, kind, at, self.status_arns[name])
    agent.next_status = None
    self._emit(agent, at, 'STATE_CHANGE')

  def _set_contact(self, agent: _Agent, at: int, contact: Optional[_Contact]) -> None:
    agent.contacts = () if contact is None else (contact,)
    self._emit(agent, at, 'STATE_CHANGE')

  # ---- one agent's shift ------------------------------------------------

  def _new_agent(self, index: int) -> _Agent:
    rng = self.rng
    queues = rng.sample(self.queues, k=min(len(self.queues), rng.choice((2, 2, 3))))
    chat = rng.random() < 0.5
    agent_id = _uuid(rng)
    channels = ['VOICE', 'CHAT'] if chat else ['VOICE']
    concurrency = [{'AvailableSlots': 1, 'Channel': 'VOICE', 'MaximumSlots': 1}]
    if chat:
      concurrency.insert(0, {'AvailableSlots': 2, 'Channel': 'CHAT', 'MaximumSlots': 2})
    profile = {
      'ARN': f'{CONNECT_INSTANCE}/routing-profile/{_uuid(rng)}',
      'Concurrency': concurrency,
      'DefaultOutboundQueue': {
        'ARN': self.outbound[0],
        'Channels': ['VOICE'],
        'Name': self.outbound[1],
      },
      'InboundQueues': [
        # The agent's own queue: "agent queues don't have names".
        {'ARN': f'{CONNECT_INSTANCE}/queue/agent/{agent_id}', 'Channels': channels, 'Name': None}
      ]
      + [{'ARN': arn, 'Channels': channels, 'Name': name} for arn, name in sorted(queues)],
      'Name': 'Chat and voice' if chat else 'Voice',
    }
    offline = _Status('Offline', 'OFFLINE', 0, self.status_arns['Offline'])
    return _Agent(agent_id, f'agent{index:02d}.team{index % 3}', profile, chat, queues, offline)

  def _contact(self, agent: _Agent, at: int) -> _Contact:
    rng = self.rng
    queue = rng.choice(agent.queues)
    channel = 'CHAT' if agent.chat and rng.random() < 0.35 else 'VOICE'
    method = 'API' if channel == 'CHAT' else ('CALLBACK' if rng.random() < 0.08 else 'INBOUND')
    state = 'INCOMING' if method == 'CALLBACK' else 'CONNECTING'
    queued = at - int(rng.expovariate(1 / 40_000))
    return _Contact(_uuid(rng), channel, method, state, at, queue, queued)

  def _handle(self, agent: _Agent, at: int, contact: _Contact) -> int:
    """Offer, talk, hold, ACW and clear one contact; the time it is clear."""
    rng = self.rng
    self._set_contact(agent, at, contact)
    at += int(rng.uniform(2_000, 9_000))
    if rng.random() < self.args.missed_share:
      # Not accepted in time: missed, and no new contact until the agent
      # sets a routable status again.
      at += 12_000
      self._set_contact(agent, at, dataclasses.replace(contact, state='MISSED', state_start_ms=at))
      at += int(rng.uniform(5_000, 40_000))
      agent.contacts = ()
      self._set_status(agent, at, 'Available')
      return at
    talk = dataclasses.replace(contact, state='CONNECTED', state_start_ms=at, connected_ms=at)
    self._set_contact(agent, at, talk)
    at += int(min(rng.expovariate(1 / 150_000), 900_000)) + 20_000
    if rng.random() < 0.2:
      self._set_contact(
        agent, at, dataclasses.replace(talk, state='CONNECTED_ONHOLD', state_start_ms=at)
      )
      at += int(rng.uniform(10_000, 60_000))
      talk = dataclasses.replace(talk, state_start_ms=at)
      self._set_contact(agent, at, talk)
      at += int(rng.uniform(10_000, 90_000))
    if rng.random() < 0.1:
      # A next status chosen during the call pauses routing to the agent.
      name = rng.choice(CUSTOM_STATUSES)
      agent.next_status = (name, self.status_arns[name], at)
      self._emit(agent, at, 'STATE_CHANGE')
      at += int(rng.uniform(5_000, 60_000))
    self._set_contact(agent, at, dataclasses.replace(talk, state='ENDED', state_start_ms=at))
    at += int(rng.uniform(5_000, 60_000))
    if agent.next_status is not None:
      # Clearing the contact switches to the next status.
      name = agent.next_status[0]
      agent.contacts = ()
      self._set_status(agent, at, name)
      at += int(rng.uniform(120_000, 480_000))
      self._set_status(agent, at, 'Available')
    else:
      self._set_contact(agent, at, None)
    return at

  def _outbound(self, agent: _Agent, at: int) -> int:
    """An outbound call in a custom status: on contact, not routable."""
    rng = self.rng
    call = _Contact(_uuid(rng), 'VOICE', 'OUTBOUND', 'CONNECTING', at, self.outbound, None)
    self._set_contact(agent, at, call)
    at += int(rng.uniform(5_000, 20_000))
    talk = dataclasses.replace(call, state='CONNECTED', state_start_ms=at, connected_ms=at)
    self._set_contact(agent, at, talk)
    at += int(rng.uniform(30_000, 240_000))
    self._set_contact(agent, at, dataclasses.replace(talk, state='ENDED', state_start_ms=at))
    at += int(rng.uniform(5_000, 30_000))
    self._set_contact(agent, at, None)
    return at

  def _shift(self, agent: _Agent, start: int, end: int) -> None:
    rng = self.rng
    at = start
    agent.status = dataclasses.replace(
      agent.status, start_ms=start - int(rng.uniform(3, 16) * 3_600_000)
    )
    self._emit(agent, at, 'LOGIN')
    at += int(rng.uniform(3_000, 30_000))
    self._set_status(agent, at, 'Available')
    while True:
      at += int(rng.expovariate(1 / self.args.idle_mean_ms)) + 1_000
      if at >= end:
        break
      if rng.random() < self.args.break_share:
        self._set_status(agent, at, rng.choice(CUSTOM_STATUSES))
        if rng.random() < 0.3:
          at = self._outbound(agent, at + int(rng.uniform(20_000, 90_000)))
        at += int(rng.uniform(120_000, 600_000))
        self._set_status(agent, at, 'Available')
        continue
      at = self._handle(agent, at, self._contact(agent, at))
    at = max(at, end) + int(rng.uniform(1_000, 20_000))
    self._set_status(agent, at, 'Offline')
    at += int(rng.uniform(2_000, 10_000))
    self._emit(agent, at, 'LOGOUT')

  def _heartbeats(self, agent: _Agent, horizon: int) -> List[Tuple[int, Dict[str, object]]]:
    """The agent's events with a HEART_BEAT after every `--heartbeat-seconds`
    without one, until `horizon`."""
    step = self.args.heartbeat_seconds * 1000
    out: List[Tuple[int, Dict[str, object]]] = []
    times = [at for at, _ in agent.events] + [horizon]
    for (at, event), following in zip(agent.events, times[1:]):
      out.append((at, event))
      beat = at + step
      while beat < following:
        current = event['CurrentAgentSnapshot']
        out.append(
          (
            beat,
            {
              'AWSAccountId': ACCOUNT,
              'AgentARN': event['AgentARN'],
              'CurrentAgentSnapshot': current,
              'EventId': _uuid(self.rng),
              'EventTimestamp': _iso(beat),
              'EventType': 'HEART_BEAT',
              'InstanceARN': CONNECT_INSTANCE,
              'PreviousAgentSnapshot': current,
              'Version': VERSION,
            },
          )
        )
        beat += step
    return out

  # ---- the file -----------------------------------------------------------

  def _malformed(self, kind: str, at: int, agent_arn: str) -> bytes:
    if kind == 'wrong_stream':
      return json_line(
        {
          'AWSAccountId': ACCOUNT,
          'AWSContactTraceRecordFormatVersion': '2017-03-10',
          'Agent': None,
          'Channel': 'VOICE',
          'ContactId': _uuid(self.rng),
          'InitiationMethod': 'INBOUND',
          'InitiationTimestamp': _iso(at),
          'Queue': None,
        }
      )
    event = {
      'AWSAccountId': ACCOUNT,
      'AgentARN': agent_arn,
      'EventId': _uuid(self.rng),
      'EventTimestamp': _iso(at),
      'EventType': 'HEART_BEAT',
      'InstanceARN': CONNECT_INSTANCE,
      'Version': VERSION,
    }
    if kind == 'malformed_json':
      return json_line(event)[:-20]
    if kind == 'unknown_event_type':
      return json_line(dict(event, EventType='AGENT_STATE'))
    return json_line(dict(event, AgentARN=CONNECT_INSTANCE))

  def lines(self) -> List[bytes]:
    args, rng = self.args, self.rng
    start = args.start_ms
    end = start + args.minutes * 60_000
    horizon = end + 15 * 60_000
    arrivals: List[Tuple[int, int, int, bytes]] = []
    agent_arn = ''
    for index in range(args.agents):
      agent = self._new_agent(index)
      login = start + int(rng.uniform(0, 300_000))
      logout = end - int(rng.uniform(0, 300_000))
      self._shift(agent, login, logout)
      agent_arn = f'{CONNECT_INSTANCE}/agent/{agent.agent_id}'
      arrived = 0
      for seq, (at, event) in enumerate(self._heartbeats(agent, horizon)):
        # One agent's records stay in order (one Kinesis partition key).
        arrived = max(arrived, at + int(rng.uniform(0, args.jitter_seconds * 1000)))
        arrivals.append((arrived, index, seq, json_line(event)))
    arrivals.sort()
    lines = [line for _, _, _, line in arrivals]
    out: List[bytes] = []
    pending: Dict[int, List[bytes]] = {}
    for i, line in enumerate(lines):
      out.extend(pending.pop(i, []))
      out.append(line)
      if rng.random() < args.redelivery_share:
        pending.setdefault(i + rng.randint(*_REDELIVERY_GAP), []).append(line)
    for rest in sorted(pending):
      out.extend(pending[rest])
    for kind in MALFORMED_REASONS:
      position = rng.randrange(len(out) + 1)
      out.insert(position, self._malformed(kind, start + rng.randrange(end - start), agent_arn))
    return out


def build_arg_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    description='An Amazon Connect agent event stream (JSON lines).',
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  p.add_argument('--out', required=True, help="output file ('-' for stdout)")
  p.add_argument('--agents', type=int, default=10, help='agents on shift')
  p.add_argument('--seed', type=int, default=1, help='random seed')
  p.add_argument('--minutes', type=int, default=60, help='length of the shift')
  p.add_argument(
    '--start-ms',
    type=parse_start,
    default=parse_start(DEFAULT_START),
    help='start of the shift: epoch ms or ISO-8601 such as 2026-11-02T08:00:00Z',
  )
  p.add_argument('--queues', type=int, default=4, help='queues of the routing profiles')
  p.add_argument(
    '--heartbeat-seconds',
    type=int,
    default=120,
    help="HEART_BEAT after this long without another event (Amazon's interval)",
  )
  p.add_argument('--idle-mean-ms', type=int, default=45_000, help='mean idle time between contacts')
  p.add_argument('--missed-share', type=parse_share, default=0.05, help='offered contacts missed')
  p.add_argument(
    '--break-share', type=parse_share, default=0.08, help='idle ends that start a break'
  )
  p.add_argument('--redelivery-share', type=parse_share, default=0.01, help='lines delivered twice')
  p.add_argument(
    '--jitter-seconds', type=float, default=2.0, help='delivery delay across agents, at most'
  )
  p.add_argument(
    '--status-type', action='store_true', help='add AgentStatus.Type (ROUTABLE, CUSTOM, OFFLINE)'
  )
  return p


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_arg_parser().parse_args(argv)
  if args.agents < 1 or args.minutes < 1 or args.queues < 2 or args.heartbeat_seconds < 1:
    raise SystemExit('--agents, --minutes and --heartbeat-seconds must be >= 1, --queues >= 2')
  write_to(args.out, _Generator(args).lines())
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
