"""The live floor end to end: the main job on a file of each format that
tells queue entries and exits, its queue_status, waiting_contacts and
lost-exit late events against the plain-Python reference
(testing/reference/queue_status.py) fed the same scenario.

One scenario, written once as queue transitions and rendered in each
format: disorder (an exit before its entry), a duplicate entry, an exit
without entry, a contact waiting more than --max_queue_wait_seconds (lost exit),
two queues and contacts still waiting at the end of the file.
"""

import json
import sqlite3
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional

import pytest

from pipelines import contact_center
from testing.reference.queue_status import ENTERED, LEFT, QueueStatusReference
from tests.support.prism import on_both_runners, runner_flags
from transforms.records import VOICE

T0 = 1793606400000
MAX_QUEUE_WAIT_S = 600
# The flow forgets exits after --dedupe_ttl_seconds (its default here).
DEDUPE_TTL_S = 600


class Step(NamedTuple):
  """One queue transition of the scenario, in arrival order."""

  contact: str
  queue: str
  kind: str
  at_s: int
  outcome: Optional[str] = None  # ANSWERED / ABANDONED for an exit


SCENARIO = [
  Step('c-1', 'Q-1', ENTERED, 0),
  Step('c-2', 'Q-1', ENTERED, 5),
  Step('c-2', 'Q-1', ENTERED, 5),  # a re-delivery
  Step('c-3', 'Q-1', LEFT, 20, 'ANSWERED'),  # its entry never came
  Step('c-4', 'Q-1', LEFT, 40, 'ABANDONED'),  # overtook its entry
  Step('c-1', 'Q-1', LEFT, 30, 'ANSWERED'),
  Step('c-4', 'Q-1', ENTERED, 10),
  Step('c-5', 'Q-2', ENTERED, 15),
  Step('c-6', 'Q-2', ENTERED, 16),
  Step('c-5', 'Q-2', LEFT, 25, 'ABANDONED'),
  # Q-3's first contact never leaves; the queue's clock moves far past
  # --max_queue_wait_seconds, so it is dropped as a lost exit.
  Step('c-7', 'Q-3', ENTERED, 50),
  Step('c-8', 'Q-3', ENTERED, 50 + MAX_QUEUE_WAIT_S + 60),
]


def _seed_line(step: Step) -> dict:
  if step.kind == ENTERED:
    event_type, abandoned = 'CALL_QUEUED', False
  elif step.outcome == 'ABANDONED':
    event_type, abandoned = 'CALL_ENDED', True
  else:
    event_type, abandoned = 'CALL_ANSWERED', False
  return {
    'call_uuid': step.contact,
    'event_type': event_type,
    'timestamp': T0 + step.at_s * 1000,
    'queue_id': step.queue,
    'abandoned': abandoned,
    'wait_time_seconds': 0,
    'agent_id': None,
  }


def _genesys_contact(step: Step) -> str:
  return f'conv-{step.contact}:session-{step.contact}'


def _genesys_line(step: Step) -> dict:
  """A bare Genesys Cloud notification (docs/vendor_formats.md): the
  conversation detail event of an acd.start or acd.end."""
  kind = 'acd.start' if step.kind == ENTERED else 'acd.end'
  body = {
    'eventTime': T0 + step.at_s * 1000,
    'conversationId': f'conv-{step.contact}',
    'participantId': f'participant-{step.contact}',
    'sessionId': f'session-{step.contact}',
    'mediaType': 'VOICE',
    'direction': 'INBOUND',
    'queueId': step.queue,
  }
  if step.kind == LEFT:
    body['acdOutcome'] = 'ABANDON' if step.outcome == 'ABANDONED' else 'ANSWERED'
    body['disconnectType'] = 'ENDPOINT' if step.outcome == 'ABANDONED' else 'TRANSFER'
  return {
    'topicName': f'v2.detail.events.conversation.conv-{step.contact}.{kind}',
    'version': '2',
    'eventBody': body,
    'metadata': {'CorrelationId': f'corr-{step.contact}-{kind}'},
  }


class Format(NamedTuple):
  name: str
  line: Callable[[Step], dict]
  contact_id: Callable[[Step], str]


FORMATS = [
  Format('seed', _seed_line, lambda s: s.contact),
  Format('genesys_cloud', _genesys_line, _genesys_contact),
]


def _reference(fmt: Format) -> QueueStatusReference:
  ref = QueueStatusReference(MAX_QUEUE_WAIT_S * 1000, 100, DEDUPE_TTL_S * 1000)
  for step in SCENARIO:
    ref.apply(
      {
        'contact_id': fmt.contact_id(step),
        'queue_id': step.queue,
        'channel': VOICE,
        'kind': step.kind,
        'timestamp': T0 + step.at_s * 1000,
      }
    )
  return ref


def _rows(db: Path, sql: str) -> List[sqlite3.Row]:
  with sqlite3.connect(db) as conn:
    conn.row_factory = sqlite3.Row
    return list(conn.execute(sql))


@on_both_runners
@pytest.mark.parametrize('fmt', FORMATS, ids=lambda f: f.name)
def test_the_live_floor_of_each_format_equals_the_reference(fmt, tmp_path, runner):
  path = tmp_path / f'{fmt.name}.jsonl'
  path.write_text(''.join(json.dumps(fmt.line(step)) + '\n' for step in SCENARIO))
  db = tmp_path / 'out.db'
  contact_center.run(
    [
      f'--call_events={path}',
      f'--call_event_format={fmt.name}',
      f'--sqlite_path={db}',
      f'--max_queue_wait_seconds={MAX_QUEUE_WAIT_S}',
      *runner_flags(runner),
    ]
  )
  ref = _reference(fmt)

  status: Dict[tuple, tuple] = {
    (r['queue_id'], r['channel']): (
      r['waiting'],
      r['oldest_waiting_since'],
      r['longest_wait_seconds'],
      r['as_of'],
    )
    for r in _rows(db, 'SELECT * FROM queue_status')
  }
  assert status == {key: tuple(row) for key, row in ref.statuses().items()}
  # Said plainly: Q-1 has c-2 waiting since 5 s, Q-2 c-6 since 16 s, Q-3
  # only its second contact (the first lost its exit).
  assert {key: row[:2] for key, row in status.items()} == {
    ('Q-1', VOICE): (1, T0 + 5000),
    ('Q-2', VOICE): (1, T0 + 16000),
    ('Q-3', VOICE): (1, T0 + (50 + MAX_QUEUE_WAIT_S + 60) * 1000),
  }

  listed = {
    (r['queue_id'], r['channel']): [
      (c['contact_id'], c['since']) for c in json.loads(r['contacts'])
    ]
    for r in _rows(db, 'SELECT * FROM waiting_contacts')
  }
  assert listed == {key: list(row.contacts) for key, row in ref.all_waiting().items()}

  lost = [
    (r['event_id'], r['key'], r['event_timestamp'])
    for r in _rows(db, "SELECT * FROM late_events WHERE reason = 'queue_exit_lost'")
  ]
  assert lost == [(x.contact_id, x.queue_id, x.since) for x in ref.lost]
  assert ref.exits_without_entry == 2 and ref.lost_exits == 1
