#!/usr/bin/env python3
"""Seeded generator of a Genesys Cloud agent stream (JSON lines), the input
of `--agent_event_format=genesys_cloud` (transforms/formats/
agent_genesys_cloud.py, docs/vendor_formats.md "Genesys Cloud agent
states"), and of the `--queue_members` file it needs.

A shift per agent: logs in (presence Available), goes on queue (presence
On Queue, routing status IDLE), takes contacts (user.start, routing
INTERACTING, user.end, then mostly an acw event after its wrap-up and
routing IDLE; sometimes no wrap-up: IDLE right away), misses an alert now
and then (NOT_RESPONDING, then IDLE), takes breaks (presence Break, Meal,
Meeting or Training with routing OFF_QUEUE, then back On Queue), and logs
out (presence Offline, routing OFF_QUEUE). Bodies are those of Genesys'
platform API client docs (UserRoutingStatusUserRoutingStatus,
PresenceEventUserPresence, UserStartDetailEventTopicUserStartEvent,
UserEndDetailEventTopicUserEndEvent, AcwDetailEventTopicAfterCallWorkEvent).

Delivery: most lines are Amazon EventBridge events, a share bare
notifications, a share (routing statuses and conversation events only:
a presence body names no user) bare event bodies. Each line arrives
U(0, --jitter) after its event time, independently (so pairs cross), a
share is re-delivered byte for byte 1-30 lines later, a supervisor who is
in no queue (user ...0009) and acd.end notifications of other topics are
mixed in, and one malformed line of each MALFORMED_REASONS kind.

Agents are users d4c3b2a1-0000-4000-8000-<n> (n = 1..--agents, 9 the
supervisor); the members file gives agent n % 3 == 1 the Billing queue,
== 2 Billing and Callbacks, == 0 Callbacks.

The committed sample and members file were made with::

    python -m testing.datagen.genesys_agent_events \\
        --out samples/genesys_cloud_agent_events.jsonl \\
        --members tests/fixtures/queue_members.json

Stdlib only, nothing from the pipeline code.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import uuid
from typing import Dict, List, Optional, Sequence, Tuple

BILLING = '5f4e3d2c-aaaa-4bbb-8ccc-000000000001'
CALLBACKS = '5f4e3d2c-aaaa-4bbb-8ccc-000000000002'
SUPERVISOR = 9
START_MS = 1793606400000  # 2026-11-02T08:00:00Z
EVENTBRIDGE_SOURCE = (
  'aws.partner/genesys.com/cloud/8f0a4f7e-2f1c-4a8e-9d57-0c3b7c9b1a11/cc-analytics'
)
DIVISION = 'b2c3d4e5-0000-4000-8000-000000000000'
# An org's presence definitions (id per system presence).
PRESENCE_IDS = {
  'Available': '6a3af858-942f-489d-9700-5f9bcdcdae9b',
  'On Queue': 'e08eaf1b-ee47-4fa9-a231-1200e284798f',
  'Break': '5e5b4a2f-0000-4000-8000-00000000b4ea',
  'Meal': '3fd96123-0000-4000-8000-0000000000ea',
  'Meeting': '4c2a8d11-0000-4000-8000-0000000000ee',
  'Training': '7d1e5f20-0000-4000-8000-0000000000a1',
  'Offline': 'ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5',
}
MEDIA = (('VOICE', 0.7), ('CHAT', 0.15), ('MESSAGE', 0.1), ('EMAIL', 0.05))
# The dead letter each malformed line becomes, in the order they are made.
MALFORMED_REASONS = (
  'malformed_json',
  'unknown_enum_value',
  'missing_field',
  'topic_mismatch',
  'wrong_stream',
)
EVENTBRIDGE, NOTIFICATION, BODY = 'eventbridge', 'notification', 'body'


def user_id(n: int) -> str:
  return f'd4c3b2a1-0000-4000-8000-{n:012d}'


def queue_members(agents: int) -> Dict[str, List[str]]:
  """The members file: user id -> queue ids (the supervisor in none)."""
  queues = {1: [BILLING], 2: [BILLING, CALLBACKS], 0: [CALLBACKS]}
  return {user_id(n): queues[n % 3] for n in range(1, agents + 1) if n != SUPERVISOR}


def iso_utc(ms: int) -> str:
  moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
  return moment.strftime('%Y-%m-%dT%H:%M:%S') + f'.{ms % 1000:03d}Z'


def _uuid(rng: random.Random) -> str:
  return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class _Stream:
  """The notifications made so far: (event time, record)."""

  def __init__(self, rng: random.Random, bare_share: float, notification_share: float):
    self.rng = rng
    self.bare_share = bare_share
    self.notification_share = notification_share
    self.items: List[Tuple[int, dict]] = []

  def _form(self, bare_allowed: bool) -> str:
    draw = self.rng.random()
    if bare_allowed and draw < self.bare_share:
      return BODY
    if draw < self.bare_share + self.notification_share:
      return NOTIFICATION
    return EVENTBRIDGE

  def add(self, ms: int, topic: str, body: dict, bare_allowed: bool = True) -> None:
    form = self._form(bare_allowed)
    record: dict = body
    if form != BODY:
      record = {
        'topicName': topic,
        'version': '2',
        'eventBody': body,
        'metadata': {'CorrelationId': _uuid(self.rng)},
      }
      if form == EVENTBRIDGE:
        record = {
          'version': '0',
          'id': _uuid(self.rng),
          'detail-type': topic,
          'source': EVENTBRIDGE_SOURCE,
          'account': '123456789012',
          'time': iso_utc(ms - ms % 1000)[:19] + 'Z',
          'region': 'us-east-1',
          'resources': [],
          'detail': record,
        }
    self.items.append((ms, record))

  def routing(self, user: str, status: str, ms: int) -> None:
    body = {'id': user, 'routingStatus': {'status': status, 'startTime': iso_utc(ms)}}
    self.add(ms, f'v2.users.{user}.routingStatus', body)

  def presence(self, user: str, name: str, ms: int) -> None:
    body = {
      'source': 'PURECLOUD',
      'presenceDefinition': {'id': PRESENCE_IDS[name], 'systemPresence': name.replace(' ', '')},
      'primary': True,
      'message': '',
      'modifiedDate': iso_utc(ms),
    }
    self.add(ms, f'v2.users.{user}.presence', body, bare_allowed=False)

  def conversation(self, kind: str, ms: int, contact: dict, **extra) -> None:
    body = {
      'eventTime': ms,
      'conversationId': contact['conversationId'],
      'participantId': contact['participantId'],
      'sessionId': contact['sessionId'],
      'mediaType': contact['mediaType'],
      'provider': 'PureCloud',
      'direction': 'INBOUND',
      'userId': contact['userId'],
      'divisionId': DIVISION,
      'queueId': contact['queueId'],
      **extra,
    }
    topic = f'v2.detail.events.conversation.{contact["conversationId"]}.{kind}'
    self.add(ms, topic, body)


def _media(rng: random.Random) -> str:
  draw, total = rng.random(), 0.0
  for name, share in MEDIA:
    total += share
    if draw < total:
      return name
  return MEDIA[0][0]


def _shift(stream: _Stream, rng: random.Random, n: int, queues: List[str], end_ms: int) -> None:
  user = user_id(n)
  t = START_MS + int(rng.uniform(0, 600_000))
  stream.presence(user, 'Available', t)
  t += int(rng.uniform(5_000, 60_000))
  stream.presence(user, 'On Queue', t)
  stream.routing(user, 'IDLE', t + rng.randint(0, 300))
  while t < end_ms:
    t += int(rng.expovariate(1 / 60_000)) + 1000
    draw = rng.random()
    if draw < 0.06:
      stream.routing(user, 'NOT_RESPONDING', t)
      t += int(rng.uniform(10_000, 30_000))
      stream.routing(user, 'IDLE', t)
      continue
    if draw < 0.14:
      name = rng.choice(('Break', 'Break', 'Meal', 'Meeting', 'Training'))
      stream.presence(user, name, t)
      stream.routing(user, 'OFF_QUEUE', t + rng.randint(0, 300))
      t += int(rng.uniform(300_000, 1_800_000 if name == 'Meal' else 900_000))
      stream.presence(user, 'On Queue', t)
      stream.routing(user, 'IDLE', t + rng.randint(0, 300))
      continue
    contact = {
      'conversationId': _uuid(rng),
      'participantId': _uuid(rng),
      'sessionId': _uuid(rng),
      'mediaType': _media(rng),
      'userId': user,
      'queueId': rng.choice(queues),
    }
    stream.conversation('user.start', t, contact)
    stream.routing(user, 'INTERACTING', t + rng.randint(50, 500))
    talk = int(rng.expovariate(1 / 240_000)) + 20_000
    t += talk
    stream.conversation(
      'user.end',
      t,
      contact,
      disconnectType=rng.choice(('PEER', 'CLIENT', 'ENDPOINT')),
      interactingDurationMs=talk,
      heldDurationMs=0,
      alertingDurationMs=rng.randint(1000, 8000),
    )
    if rng.random() < 0.85:
      wrap = int(rng.uniform(10_000, 90_000))
      t += wrap
      stream.conversation(
        'acw',
        t,
        contact,
        wrapupCode=_uuid(rng),
        wrapupNotes='',
        wrapupDurationMs=wrap,
      )
      stream.routing(user, 'IDLE', t + rng.randint(0, 200))
    else:
      # No wrap-up asked (optional ACW): back to IDLE, no acw event.
      t += int(rng.uniform(2_000, 10_000))
      stream.routing(user, 'IDLE', t)
  t += int(rng.uniform(1_000, 60_000))
  stream.presence(user, 'Offline', t)
  stream.routing(user, 'OFF_QUEUE', t + rng.randint(0, 300))


def _supervisor_and_other_topics(stream: _Stream, rng: random.Random, end_ms: int) -> None:
  user = user_id(SUPERVISOR)
  stream.presence(user, 'Available', START_MS + 30_000)
  stream.presence(user, 'Meeting', START_MS + 1_800_000)
  stream.presence(user, 'Offline', end_ms)
  for i in range(5):
    ms = START_MS + (i + 1) * 600_000
    conversation = _uuid(rng)
    body = {
      'eventTime': ms,
      'conversationId': conversation,
      'sessionId': _uuid(rng),
      'mediaType': 'VOICE',
      'queueId': BILLING,
      'acdOutcome': 'ANSWERED',
    }
    stream.add(ms, f'v2.detail.events.conversation.{conversation}.acd.end', body, False)


def _malformed(reason: str, rng: random.Random) -> bytes:
  ms = START_MS + 900_000
  user = user_id(1)
  if reason == 'malformed_json':
    return b'{"topicName": "v2.users.' + user.encode() + b'.presence", "eventBody": {'
  if reason == 'unknown_enum_value':
    body = {'id': user, 'routingStatus': {'status': 'ON_BREAK', 'startTime': iso_utc(ms)}}
    record = {'topicName': f'v2.users.{user}.routingStatus', 'version': '2', 'eventBody': body}
  elif reason == 'missing_field':
    record = {
      'source': 'PURECLOUD',
      'presenceDefinition': {'id': PRESENCE_IDS['Break'], 'systemPresence': 'Break'},
      'primary': True,
      'modifiedDate': iso_utc(ms),
    }
  elif reason == 'topic_mismatch':
    body = {'eventTime': ms, 'conversationId': _uuid(rng), 'userId': user, 'mediaType': 'VOICE'}
    record = {
      'topicName': f'v2.detail.events.conversation.{_uuid(rng)}.user.start',
      'version': '2',
      'eventBody': body,
    }
  else:
    record = {'call_uuid': _uuid(rng), 'event_type': 'CALL_ENDED', 'timestamp': ms}
  return json.dumps(record, separators=(',', ':')).encode()


def generate(
  agents: int = 12,
  hours: float = 2.0,
  seed: int = 7,
  jitter_ms: int = 3000,
  redelivery_share: float = 0.02,
  bare_share: float = 0.1,
  notification_share: float = 0.2,
) -> List[bytes]:
  """The stream's lines in arrival order."""
  rng = random.Random(seed)
  stream = _Stream(rng, bare_share, notification_share)
  end_ms = START_MS + int(hours * 3_600_000)
  members = queue_members(agents)
  for n in range(1, agents + 1):
    if n != SUPERVISOR:
      _shift(stream, rng, n, members[user_id(n)], end_ms)
  _supervisor_and_other_topics(stream, rng, end_ms)
  arrivals = sorted(
    (ms + rng.randint(0, jitter_ms), i, record) for i, (ms, record) in enumerate(stream.items)
  )
  lines = [json.dumps(record, separators=(',', ':')).encode() for _, _, record in arrivals]
  for i in range(len(lines) - 1, -1, -1):
    if rng.random() < redelivery_share:
      lines.insert(min(len(lines), i + 1 + rng.randint(1, 30)), lines[i])
  for reason in MALFORMED_REASONS:
    lines.insert(rng.randint(0, len(lines)), _malformed(reason, rng))
  return lines


def build_arg_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default='samples/genesys_cloud_agent_events.jsonl')
  parser.add_argument('--members', default=None, help='Also write the --queue_members file.')
  parser.add_argument('--agents', type=int, default=12)
  parser.add_argument('--hours', type=float, default=2.0)
  parser.add_argument('--seed', type=int, default=7)
  parser.add_argument('--jitter-ms', type=int, default=3000)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_arg_parser().parse_args(argv)
  lines = generate(args.agents, args.hours, args.seed, args.jitter_ms)
  with open(args.out, 'wb') as out:
    out.write(b''.join(line + b'\n' for line in lines))
  if args.members:
    with open(args.members, 'w', encoding='utf-8') as out:
      out.write(json.dumps(queue_members(args.agents), indent=1) + '\n')
  return 0


if __name__ == '__main__':
  raise SystemExit(main())
