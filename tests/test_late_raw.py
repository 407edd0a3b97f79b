"""Late events keep what the producer sent: for every call format, a call the
main job routes late has `raw` equal to its input line(s), as text, and
`record` the call as routed (what a reprocessing run folds in;
transforms/windowing.py to_late_event)."""

import datetime
import json
import sqlite3

import pytest

from pipelines import contact_center
from tests.conftest import BASE_S
from tests.test_vendor_formats import QUEUE, ctr, genesys
from transforms.records import (
  ABANDONED,
  ANSWERED,
  QUEUE_ENTERED,
  LateEvent,
  OfferedCall,
  QueueTransition,
)
from transforms.stored_rows import offered_call_of
from transforms.windowing import LateArrival, to_late_event

B = BASE_S * 1000  # 2026-11-02T08:00:00Z
S = 1000
CONNECT_QUEUE_ARN = (
  'arn:aws:connect:us-east-1:111122223333:instance/12345678-1234-1234-1234-123456789012'
  '/queue/0b1e2c3d-0000-4000-8000-00000000b111'
)


def late_rows(tmp_path, fmt: str, lines) -> dict:
  """Runs the main job on `lines` (no allowed lateness) and returns its
  late_events rows by event id: (reason, raw, record)."""
  path = tmp_path / 'calls.jsonl'
  path.write_bytes(''.join(f'{line}\n' for line in lines).encode('utf-8'))
  db = tmp_path / 'out.db'
  contact_center.run(
    [
      f'--call_events={path}',
      f'--call_event_format={fmt}',
      f'--sqlite_path={db}',
      '--allowed_lateness_seconds=0',
      '--replay_poll_size=2',
    ]
  )
  with sqlite3.connect(db) as conn:
    return {
      event_id: (reason, raw, record)
      for event_id, reason, raw, record in conn.execute(
        'SELECT event_id, reason, raw, record FROM late_events'
      )
    }


def assert_routed(row, reason: str, raw: str, call: OfferedCall) -> None:
  """The row keeps `raw` as sent and `call` (without a raw) as routed."""
  assert row[0] == reason
  assert row[1] == raw
  assert 'raw' not in json.loads(row[2])
  assert offered_call_of(row[2]) == call


def iso(at_s: float) -> str:
  when = datetime.datetime.fromtimestamp(BASE_S + at_s, datetime.timezone.utc)
  return when.strftime('%Y-%m-%dT%H:%M:%SZ')


def seed_line(call: str, at_s: int, abandoned: bool = False) -> str:
  return json.dumps(
    {
      'call_uuid': call,
      'event_type': 'CALL_ENDED',
      'timestamp': B + at_s * S,
      'queue_id': 'Q-1',
      'abandoned': abandoned,
      'wait_time_seconds': 12,
      'agent_id': 'a-1',
    }
  )


def on_time_then(lines_at, late):
  """Four lines in the first window, ten that carry the watermark past it,
  then the `late` lines of that window."""
  return (
    [lines_at(f'c{i}', 10 + 20 * i) for i in range(4)]
    + [lines_at(f'f{i}', 400 + 60 * i) for i in range(10)]
    + late
  )


def test_seed(tmp_path):
  # Spacing, key order and a non-ASCII id as the producer wrote them.
  late = (
    '{"event_type":"CALL_ENDED",  "call_uuid": "late-1", "timestamp": %d, '
    '"queue_id": "Q-1", "abandoned": true, "wait_time_seconds": 12, '
    '"agent_id": "agent-Zoë"}' % (B + 50 * S)
  )
  rows = late_rows(tmp_path, 'seed', on_time_then(seed_line, [late]))
  assert set(rows) == {'late-1'}
  assert_routed(
    rows['late-1'],
    'after_window_expiry',
    late,
    OfferedCall('late-1', 'Q-1', B + 50 * S, ABANDONED, 12),
  )


def genesys_line(suffix: str, conversation: str, at_s: int, bare: bool = False, **body) -> str:
  return json.dumps(
    genesys(suffix, at_s=at_s, conversation=conversation, session='s-1', bare=bare, **body),
    ensure_ascii=False,
  )


def test_genesys_cloud_pair_and_end_without_start(tmp_path):
  def pair(conversation, at_s):
    return [
      genesys_line('acd.start', conversation, at_s),
      genesys_line('acd.end', conversation, at_s + 5),
    ]

  lines = [line for i in range(4) for line in pair(f'c{i}', 10 + 20 * i)]
  lines += [line for i in range(10) for line in pair(f'f{i}', 400 + 60 * i)]
  start = genesys_line('acd.start', 'late-pair', 30, ani='tel:+33 Zoë')
  end = genesys_line('acd.end', 'late-pair', 50, bare=True, acdOutcome='ABANDON')
  alone = genesys_line('acd.end', 'late-alone', 60)
  rows = late_rows(tmp_path, 'genesys_cloud', [*lines, start, end, alone])

  assert set(rows) == {'late-pair:s-1', 'late-alone:s-1'}
  # Both halves as JSON lines, the start's first.
  assert_routed(
    rows['late-pair:s-1'],
    'after_window_expiry',
    f'{start}\n{end}',
    OfferedCall('late-pair:s-1', QUEUE, B + 50 * S, ABANDONED, 20.0),
  )
  assert_routed(
    rows['late-alone:s-1'],
    'after_window_expiry',
    alone,
    OfferedCall('late-alone:s-1', QUEUE, B + 60 * S, ANSWERED, None),
  )


def ctr_line(contact: str, dequeue_s: int, **changes) -> str:
  return json.dumps(ctr(contact, dequeue=iso(dequeue_s), duration=5, **changes), ensure_ascii=False)


def test_amazon_connect_late_call_and_record_update(tmp_path):
  # The CTR helper enqueues at 08:00:30: the first window's contacts leave
  # the queue after that.
  late = ctr_line('late-1', 100, Attributes={'note': 'rappel demandé'})
  update = ctr_line('upd-1', 110, LastUpdateTimestamp=iso(3600))
  lines = [ctr_line(f'c{i}', 40 + 20 * i) for i in range(4)]
  lines += [ctr_line(f'f{i}', 400 + 60 * i) for i in range(10)]
  rows = late_rows(tmp_path, 'amazon_connect', [*lines, late, update])

  assert set(rows) == {'late-1', 'upd-1'}
  assert_routed(
    rows['late-1'],
    'after_window_expiry',
    late,
    OfferedCall('late-1', 'Billing', B + 100 * S, ANSWERED, 5),
  )
  assert_routed(
    rows['upd-1'],
    'record_update',
    update,
    OfferedCall('upd-1', 'Billing', B + 110 * S, ANSWERED, 5, record_updated_at=B + 3600 * S),
  )


def contact_event_line(contact: str, left_s: int) -> str:
  """A DISCONNECTED event of a caller who hung up in queue after 20 s."""
  enqueued = iso(left_s - 20)
  return json.dumps(
    {
      'version': '0',
      'id': f'e-{contact}',
      'detail-type': 'Amazon Connect Contact Event',
      'source': 'aws.connect',
      'time': iso(left_s),
      'detail': {
        'eventType': 'DISCONNECTED',
        'contactId': contact,
        'channel': 'Voice',
        'initiationMethod': 'INBOUND',
        'initiationTimestamp': enqueued,
        'queueInfo': {
          'queueType': 'STANDARD',
          'queueArn': CONNECT_QUEUE_ARN,
          'enqueueTimestamp': enqueued,
        },
        'disconnectTimestamp': iso(left_s),
        'disconnectReason': 'CUSTOMER_DISCONNECT',
        'tags': {'note': 'très pressé'},
      },
    },
    ensure_ascii=False,
  )


def test_amazon_connect_events(tmp_path):
  late = contact_event_line('late-1', 100)
  rows = late_rows(tmp_path, 'amazon_connect_events', on_time_then(contact_event_line, [late]))
  assert set(rows) == {'late-1'}
  queue = CONNECT_QUEUE_ARN.rsplit('/', 1)[1]
  assert_routed(
    rows['late-1'],
    'after_window_expiry',
    late,
    OfferedCall('late-1', queue, B + 100 * S, ABANDONED, 20.0),
  )


@pytest.mark.parametrize(
  'value',
  [
    QueueTransition('c-1', 'Q-1', 'voice', QUEUE_ENTERED, B),
    # A call whose source is not known (built in code).
    OfferedCall('c-1', 'Q-1', B, ANSWERED, 3.0),
  ],
)
def test_a_record_without_a_raw_keeps_its_json_in_both(value):
  row = to_late_event('src', LateArrival('Q-1', value, B, B, B + 300 * S, B + 400 * S), 'c-1')
  assert isinstance(row, LateEvent)
  fields = {k: v for k, v in value._asdict().items() if k != 'raw'}
  assert row.raw == row.record == json.dumps(fields, sort_keys=True)
