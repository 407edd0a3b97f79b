"""One lateness rule after gaps in event time (docs/design.md, "When an event
is late"): a queue that went quiet for longer than --key_idle_ttl_seconds and
--dedupe_ttl_seconds while others carried the watermark on still has its late
events judged late, by the job and by the references alike, whatever the
other queues do, sharing its shard or not."""

import json
import sqlite3

import pytest

from pipelines import contact_center
from testing.reference.calls import reference_call_metrics
from testing.reference.vendors import GENESYS, reference_vendor_metrics

B = 1793606400000  # 2026-11-02T08:00:00Z
S = 1000
MINUTE = 60 * S
QUIET, BUSY = 'Q-quiet', 'Q-busy'
# Gaps longer than every TTL, and the two queues alone in their shards or
# sharing the only one (--max_parallelism=1): a queue's lateness is its
# own, whatever its neighbours do.
VARIANTS = [[], ['--key_idle_ttl_seconds=300', '--dedupe_ttl_seconds=400'], ['--max_parallelism=1']]


def genesys(suffix: str, at_ms: int, conversation: str, queue: str, outcome='ANSWERED') -> str:
  body = {
    'eventTime': at_ms,
    'conversationId': conversation,
    'sessionId': 's',
    'queueId': queue,
    'mediaType': 'VOICE',
  }
  if suffix == 'acd.end':
    body['acdOutcome'] = outcome
  topic = f'v2.detail.events.conversation.{conversation}.{suffix}'
  return json.dumps({'topicName': topic, 'eventBody': body})


def seed(call: str, at_ms: int, queue: str) -> str:
  return json.dumps(
    {
      'call_uuid': call,
      'event_type': 'CALL_ENDED',
      'timestamp': at_ms,
      'queue_id': queue,
      'abandoned': False,
      'wait_time_seconds': 12,
      'agent_id': 'a-1',
    }
  )


def gap_stream(event) -> list:
  """The quiet queue's calls in its first two minutes, the busy queue's
  every 30 s for an hour, then, after 48 minutes of silence, two calls of
  the quiet queue: one of a window that expired during the silence (late)
  and one of the open window (counted)."""
  lines = [event('quiet-1', B + 10 * S, QUIET), event('quiet-2', B + 100 * S, QUIET)]
  for i in range(120):
    lines.append(event(f'busy-{i}', B + i * 30 * S, BUSY))
  lines.append(event('quiet-late', B + 50 * MINUTE, QUIET))
  lines.append(event('quiet-open', B + 57 * MINUTE + 30 * S, QUIET))
  return lines


def genesys_call(call: str, at_ms: int, queue: str) -> str:
  """A paired call for the first calls; the last two of the quiet queue
  are acd.ends whose acd.start never came (released by the pairing)."""
  end = genesys('acd.end', at_ms, call, queue)
  if call.startswith('quiet-') and call in ('quiet-late', 'quiet-open'):
    return end
  return genesys('acd.start', at_ms - 20 * S, call, queue) + '\n' + end


def _write(tmp_path, lines) -> str:
  path = tmp_path / 'gap.jsonl'
  path.write_text('\n'.join(lines) + '\n')
  return str(path)


def _job(path: str, db, *extra):
  contact_center.run(
    [f'--call_events={path}', f'--sqlite_path={db}', '--replay_poll_size=4', *extra]
  )
  with sqlite3.connect(db) as conn:
    rows = {
      (q, ws): n
      for q, ws, n in conn.execute(
        'SELECT queue_id, window_start, total_calls FROM abandon_metrics'
      )
    }
    late = sorted(r[0] for r in conn.execute('SELECT event_id FROM late_events'))
  return rows, late


@pytest.mark.parametrize('ttls', VARIANTS)
def test_a_genesys_end_after_a_gap_is_late_by_job_and_reference(tmp_path, ttls):
  path = _write(tmp_path, gap_stream(genesys_call))
  rows, late = _job(path, tmp_path / 'g.db', '--call_event_format=genesys_cloud', *ttls)
  ref = reference_vendor_metrics(path, GENESYS, poll_size=4)
  assert late == sorted(ref.late) == ['quiet-late:s']
  assert rows == {(q, start): row['total_calls'] for (q, _, start), row in ref.rows.items()}
  assert rows[(QUIET, B + 55 * MINUTE)] == 1  # the open window still counts


@pytest.mark.parametrize('ttls', VARIANTS)
def test_a_seed_call_after_a_gap_is_late_by_job_and_reference(tmp_path, ttls):
  path = _write(tmp_path, gap_stream(seed))
  rows, late = _job(path, tmp_path / 's.db', *ttls)
  ref = reference_call_metrics(path, poll_size=4)
  assert late == sorted(ref.late) == ['quiet-late']
  assert rows == {key: row['total_calls'] for key, row in ref.rows.items()}
