"""Tests of the event generator and the independent reference computation.

Both live in ``testing/`` and use the stdlib only; these tests never import
the pipeline, so the reference stays an independent oracle.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from typing import Optional

import pytest

from testing.datagen import calls as gen
from testing.reference import calls as ref
from tests.support.reference_helpers import (
  REPO,
  B,
  S,
  assert_bounded_disorder,
  assert_same_seed_same_bytes,
  decode_dead_line,
  edit_record,
  redelivery_gaps,
  run_generator_cli,
  write_lines,
)

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def ev(
  uuid: str,
  ts: int,
  queue: str = 'Q-1',
  abandoned: bool = False,
  wait=5,
  event_type: str = 'CALL_ENDED',
  agent: Optional[str] = 'A-1',
) -> bytes:
  """One event line (bytes, no newline)."""
  return json.dumps(
    {
      'call_uuid': uuid,
      'event_type': event_type,
      'timestamp': ts,
      'queue_id': queue,
      'abandoned': abandoned,
      'wait_time_seconds': wait,
      'agent_id': None if abandoned else agent,
    }
  ).encode()


def row(total, abandoned=0, short=0, sl=0, wait=0, end=None) -> dict:
  return {
    'total_calls': total,
    'abandoned_calls': abandoned,
    'short_abandoned_calls': short,
    'answered_within_sl': sl,
    'total_wait_seconds': wait,
    'window_end_ms': end,
  }


def assert_conservation(res: ref.ReferenceResult) -> None:
  assert res.valid_events == res.total_calls() + len(res.late)


def classify_dead_line(raw: bytes) -> str:
  """Name the malformed kind of a line the reference rejects (test-side,
  independent of the generator's own construction)."""
  if raw == b'':
    return 'empty_line'
  kind, obj = decode_dead_line(raw, truncated_kind=True)
  if kind is not None:
    return kind
  if isinstance(obj, list):
    return 'json_array'
  if isinstance(obj, str):
    return 'json_string'
  assert isinstance(obj, dict)
  if 'call_uuid' not in obj:
    return 'missing_call_uuid'
  if 'timestamp' not in obj:
    return 'missing_timestamp'
  ts = obj['timestamp']
  if isinstance(ts, str):
    return 'timestamp_as_string'
  if ts < ref.MIN_TS_MS:
    return 'timestamp_1970'
  if ts >= ref.MAX_TS_MS:
    return 'timestamp_2300'
  if obj['wait_time_seconds'] < 0:
    return 'negative_wait'
  if isinstance(obj['abandoned'], str):
    return 'abandoned_as_string'
  if obj['queue_id'] == '':
    return 'empty_queue_id'
  return 'unknown'


@pytest.fixture(scope='module')
def generated_20k(tmp_path_factory):
  """A 20k-call generated file with default disorder, and its counts."""
  path = tmp_path_factory.mktemp('gen') / 'calls20k.jsonl'
  counts = gen.write_call_events(str(path), 20_000, seed=11)
  return path, counts


# --------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different_bytes():
  assert_same_seed_same_bytes(lambda seed: gen.generate_call_events(3000, seed=seed))


def test_cli_is_deterministic_across_processes(tmp_path):
  # Another process with another hash seed must produce the same bytes as
  # the in-process generator (no dependence on set/dict hash order).
  out = tmp_path / 'cli.jsonl'
  run_generator_cli(
    'testing.datagen.calls',
    ['--out', str(out), '--events', '800', '--seed', '3'],
    cwd=REPO,
    hash_seed='12345',
  )
  in_process = tmp_path / 'lib.jsonl'
  gen.write_call_events(str(in_process), 800, seed=3)
  assert out.read_bytes() == in_process.read_bytes()
  assert out.read_bytes().endswith(b'\n')


def test_generated_counts_match_configuration_and_reference(generated_20k):
  path, counts = generated_20k
  assert counts['valid'] == 20_000
  assert counts['duplicates'] == 200  # 1 %
  assert counts['other_event_types'] == 1000  # 5 %
  assert counts['too_late'] == 100  # 0.5 %
  assert counts['late_within_lateness'] == 200
  assert counts['malformed'] == len(gen.MALFORMED_KINDS)
  assert counts['lines'] == 20_000 + 200 + 1000 + len(gen.MALFORMED_KINDS)

  res = ref.reference_call_metrics(str(path))
  assert res.lines == counts['lines']
  assert res.valid_events == counts['valid']
  assert res.duplicates == counts['duplicates']
  assert res.other_event_types == counts['other_event_types']
  assert res.dead_letter_count == counts['malformed']
  assert_conservation(res)
  # Only the deliberately delayed events can be judged late; most of them
  # are (the ones near the end of the file arrive before the watermark
  # could pass their window's expiry).
  assert 0 < len(res.late) <= counts['too_late']
  assert len({q for q, _ in res.rows}) == 8


def test_realistic_distributions(generated_20k):
  path, _ = generated_20k
  calls = {}
  for raw in path.read_bytes().split(b'\n')[:-1]:
    e = ref.parse_valid_event(raw)
    if e is not None and e['event_type'] == 'CALL_ENDED':
      calls[e['call_uuid']] = e
  assert len(calls) == 20_000
  abandoned = [e for e in calls.values() if e['abandoned']]
  answered = [e for e in calls.values() if not e['abandoned']]
  assert 0.08 <= len(abandoned) / len(calls) <= 0.15
  # agent_id is null exactly when abandoned.
  assert all(e['agent_id'] is None for e in abandoned)
  assert all(isinstance(e['agent_id'], str) for e in answered)
  assert all(
    isinstance(e['wait_time_seconds'], int) and e['wait_time_seconds'] >= 0 for e in calls.values()
  )
  # Short abandons exist, and abandoned callers wait longer on average.
  assert sum(e['wait_time_seconds'] < 5 for e in abandoned) > 0.1 * len(abandoned)
  mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
  assert mean([e['wait_time_seconds'] for e in abandoned]) > mean(
    [e['wait_time_seconds'] for e in answered]
  )
  # Queues differ in volume and in abandon propensity.
  by_q = {}
  for e in calls.values():
    by_q.setdefault(e['queue_id'], []).append(e['abandoned'])
  vols = sorted(len(v) for v in by_q.values())
  assert vols[-1] > 3 * vols[0]
  rates = sorted(sum(v) / len(v) for v in by_q.values())
  assert rates[-1] > 1.8 * rates[0]


@pytest.mark.parametrize('queues, n', [(1_000, 20_000), (300, 300)])
def test_every_queue_asked_for_has_calls(queues, n):
  """Queue volumes shrink by 0.8 per cycle of eight queues: 1,000 queues
  over 20,000 calls used to show about 244 of them. A benchmark asking for N
  queues needs N keys, the big queues still taking most of the calls."""
  per_queue = {}
  for raw in gen.generate_call_events(n, 5, queues=queues):
    e = ref.parse_valid_event(raw)
    if e is not None and e['event_type'] == 'CALL_ENDED':
      per_queue[e['queue_id']] = per_queue.get(e['queue_id'], 0) + 1
  assert sorted(per_queue) == sorted(p.queue_id for p in gen.queue_profiles(queues))
  if n > queues:
    assert per_queue['Q-101'] > 0.02 * n


def test_diurnal_volume():
  # One day at 0.2 calls/s on average, starting at midnight UTC.
  day = B - 8 * 3600 * S
  per_hour = [0] * 24
  for raw in gen.generate_call_events(
    17_280,
    seed=2,
    start_ms=day,
    events_per_second=0.2,
    duplicate_share=0,
    other_event_share=0,
    malformed=0,
  ):
    ts = json.loads(raw)['timestamp']
    per_hour[int((ts - day) // (3600 * S)) % 24] += 1
  night = sum(per_hour[0:5])
  midday = sum(per_hour[10:15])
  assert midday > 3 * night


def test_arrival_order_is_bounded_disorder():
  lines = list(
    gen.generate_call_events(
      4000,
      seed=9,
      too_late_share=0,
      late_within_lateness_share=0,
      duplicate_share=0,
      other_event_share=0,
      malformed=0,
      jitter_seconds=8,
    )
  )
  assert_bounded_disorder(lines, 8 * S)


def test_duplicates_are_exact_redeliveries_shortly_after():
  gaps = redelivery_gaps(gen.generate_call_events(3000, seed=4, malformed=0, other_event_share=0))
  assert len(gaps) == 30
  # 1..30 base lines later, plus any other redeliveries in between.
  assert all(1 <= g <= 35 for g in gaps)


def test_each_malformed_kind_is_present_and_rejected(generated_20k):
  path, _ = generated_20k
  kinds = [
    classify_dead_line(raw)
    for raw in path.read_bytes().split(b'\n')[:-1]
    if ref.parse_valid_event(raw) is None
  ]
  assert sorted(kinds) == sorted(gen.MALFORMED_KINDS)


@pytest.mark.parametrize('kind', list(gen.MALFORMED_KINDS) + [gen.OVERSIZED_KIND])
def test_malformed_kind_alone_is_a_dead_letter(tmp_path, kind):
  good = json.loads(ev('good-1', B + 10 * S))
  bad = gen.malformed_line(kind, dict(good, call_uuid='bad-1'))
  assert classify_dead_line(bad) == kind
  path = write_lines(tmp_path / 'one.jsonl', [ev('good-1', B + 10 * S), bad])
  res = ref.reference_call_metrics(str(path))
  assert res.lines == 2
  assert res.dead_letter_count == 1
  assert res.valid_events == 1
  assert res.rows[('Q-1', B)]['total_calls'] == 1


def test_oversized_flag_adds_a_line_over_one_mib(tmp_path):
  path = tmp_path / 'big.jsonl'
  counts = gen.write_call_events(str(path), 50, seed=1, oversized=True)
  assert counts['malformed'] == len(gen.MALFORMED_KINDS) + 1
  assert max(len(line) for line in path.read_bytes().split(b'\n')) > (1 << 20)
  res = ref.reference_call_metrics(str(path))
  assert res.dead_letter_count == counts['malformed']
  assert res.valid_events == 50


# --------------------------------------------------------------------------
# reference on hand-written files
# --------------------------------------------------------------------------


def test_reference_exact_rows_poll_per_line(tmp_path):
  lines = [
    # 0: on time, W=-inf
    ev('A', B + 10 * S, wait=5),
    # 1: next window; W = B + 0 s
    ev('X', B + 350 * S, abandoned=True, wait=30),
    # 2: W = B+340 s passed window [B, B+300) but not its expiry B+360:
    #    accepted (a late pane)
    ev('C', B + 200 * S, wait=25),
    # 3: on time
    ev('Y', B + 700 * S, wait=20),
    # 4: W = B+690 >= expiry B+360 and Q-1 has a clock: LATE
    ev('D', B + 100 * S, abandoned=True, wait=3),
    # 5: same expired window, but Q-2 was never seen: accepted
    ev('E', B + 50 * S, queue='Q-2', abandoned=True, wait=2),
    # 6: now Q-2 has a clock (E, accepted in an earlier poll): LATE
    ev('F', B + 60 * S, queue='Q-2', wait=1),
    # 7: exact redelivery of A: duplicate
    ev('A', B + 10 * S, wait=5),
    # 8: another event type of call X; it still advances the watermark
    ev('X', B + 1000 * S, event_type='CALL_ANSWERED', wait=30),
    # 9: W = B+990 >= expiry of [B+600, B+900) = B+960: LATE
    ev('G', B + 650 * S, wait=7),
    # 10: dead letter
    b'not json at all',
    # 11: on time
    ev('H', B + 905 * S, wait=10),
  ]
  path = write_lines(tmp_path / 'hand.jsonl', lines)
  res = ref.reference_call_metrics(str(path), poll_size=1)

  assert res.rows == {
    ('Q-1', B): row(2, sl=1, wait=30, end=B + 300 * S),
    ('Q-1', B + 300 * S): row(1, abandoned=1, wait=30, end=B + 600 * S),
    ('Q-1', B + 600 * S): row(1, sl=1, wait=20, end=B + 900 * S),
    ('Q-1', B + 900 * S): row(1, sl=1, wait=10, end=B + 1200 * S),
    ('Q-2', B): row(1, abandoned=1, wait=2, end=B + 300 * S),
  }
  assert res.late == {'D', 'F', 'G'}
  assert res.duplicates == 1
  assert res.other_event_types == 1
  assert res.dead_letter_count == 1
  assert res.valid_events == 9
  assert res.late_pane_events == 2  # C and E
  assert res.lines == 12 and res.polls == 12
  assert res.final_watermark_ms == B + 990 * S
  assert_conservation(res)

  # Thresholds are parameters: a 5 s short-abandon threshold counts E.
  res5 = ref.reference_call_metrics(str(path), poll_size=1, short_abandon_threshold_s=5)
  assert res5.rows[('Q-2', B)]['short_abandoned_calls'] == 1
  assert res5.rows[('Q-1', B + 300 * S)]['short_abandoned_calls'] == 0


def test_reference_watermark_moves_only_between_polls(tmp_path):
  lines = [
    ev('P', B + 700 * S),  # poll 0
    ev('Q', B + 10 * S, queue='Q-2'),  # poll 1: W=B+690, Q-2 unseen
    ev('R', B + 20 * S, queue='Q-2'),  # poll 1: same poll, no clock yet
    ev('S', B + 30 * S, queue='Q-2'),  # poll 2: Q-2 clock from poll 1
  ]
  path = write_lines(tmp_path / 'polls.jsonl', lines)
  # Polls [P, ""] [Q, R] [S]: an empty (dead) line pads poll 0 so that
  # every poll is two lines long.
  padded = write_lines(tmp_path / 'polls2.jsonl', [lines[0], b''] + lines[1:3] + [lines[3]])
  res = ref.reference_call_metrics(str(padded), poll_size=2)
  assert res.polls == 3
  assert res.late == {'S'}
  assert res.rows[('Q-2', B)]['total_calls'] == 2
  assert res.dead_letter_count == 1  # the empty line counts as a line

  # One poll for everything: the watermark is -inf throughout.
  res_all = ref.reference_call_metrics(str(path), poll_size=100)
  assert res_all.late == set()
  assert res_all.rows[('Q-2', B)]['total_calls'] == 3


def test_reference_invalid_events_do_not_move_the_watermark(tmp_path):
  future = json.loads(ev('Z', B + 5000 * S))
  lines = [
    ev('A', B + 10 * S),
    json.dumps(dict(future, abandoned='yes')).encode(),  # dead, ts ignored
    ev('B', B + 20 * S),
  ]
  res = ref.reference_call_metrics(str(write_lines(tmp_path / 'a.jsonl', lines)), poll_size=1)
  assert res.late == set() and res.dead_letter_count == 1
  lines[1] = json.dumps(future).encode()  # now valid: B is late
  res = ref.reference_call_metrics(str(write_lines(tmp_path / 'b.jsonl', lines)), poll_size=1)
  assert res.late == {'B'}


def test_reference_dedupe_is_first_arrival_of_call_ended_only(tmp_path):
  lines = [
    ev('K', B + 10 * S, event_type='CALL_STARTED'),  # same uuid, other type
    ev('K', B + 20 * S, queue='Q-3', abandoned=True, wait=40),  # first CALL_ENDED
    ev('K', B + 30 * S, queue='Q-4', wait=1),  # different content, same uuid
  ]
  res = ref.reference_call_metrics(str(write_lines(tmp_path / 'd.jsonl', lines)))
  assert res.rows == {('Q-3', B): row(1, abandoned=1, wait=40, end=B + 300 * S)}
  assert res.duplicates == 1 and res.other_event_types == 1


VALID_EDGES = [
  dict(timestamp=float(B + 1000)),  # integral float timestamp
  dict(timestamp=ref.MIN_TS_MS),  # lower bound inclusive
  dict(wait_time_seconds=3.5),  # float wait
  dict(wait_time_seconds=0),
  dict(wait_time_seconds=ref.MAX_WAIT_S),
  dict(queue_id='Q' * ref.MAX_TEXT_CHARS),
  dict(agent_id=None),
  dict(_drop='agent_id'),  # missing agent_id
]
INVALID_EDGES = [
  dict(timestamp=True),
  dict(timestamp=float(B) + 0.5),
  dict(timestamp=ref.MAX_TS_MS),
  dict(timestamp=ref.MAX_TS_MS - 1),  # beyond the future skew
  dict(timestamp=ref.MIN_TS_MS - 1),
  dict(wait_time_seconds=ref.MAX_WAIT_S + 0.5),
  dict(wait_time_seconds=1e308),
  dict(queue_id='Q' * (ref.MAX_TEXT_CHARS + 1)),
  dict(queue_id='  '),
  dict(call_uuid='a\u0000b'),
  dict(agent_id='A\u2028'),
  dict(wait_time_seconds=True),
  dict(wait_time_seconds='3'),
  dict(wait_time_seconds=float('nan')),
  dict(wait_time_seconds=-0.5),
  dict(_drop='wait_time_seconds'),
  dict(abandoned=0),
  dict(_drop='abandoned'),
  dict(agent_id=5),
  dict(event_type=''),
  dict(_drop='event_type'),
  dict(queue_id=7),
  dict(call_uuid=''),
]


def _edge_line(change: dict) -> bytes:
  return edit_record(json.loads(ev('E1', B + 10 * S)), change)


@pytest.mark.parametrize('change', VALID_EDGES, ids=str)
def test_validity_accepts(tmp_path, change):
  line = _edge_line(change)
  assert ref.parse_valid_event(line) is not None
  res = ref.reference_call_metrics(str(write_lines(tmp_path / 'v.jsonl', [line])))
  assert res.valid_events == 1 and res.dead_letter_count == 0
  assert isinstance(next(iter(res.rows))[1], int)


@pytest.mark.parametrize('change', INVALID_EDGES, ids=str)
def test_validity_rejects(tmp_path, change):
  line = _edge_line(change)
  assert ref.parse_valid_event(line) is None
  res = ref.reference_call_metrics(str(write_lines(tmp_path / 'i.jsonl', [line])))
  assert res.valid_events == 0 and res.dead_letter_count == 1


@pytest.mark.parametrize(
  'raw',
  [
    b'null',
    b'42',
    b'{}',
    b'{"call_uuid": "x"',
    b'[' * 40 + b']' * 40,
    b'{"a": NaN}',
    b'{"a": ' + b'1' * 30 + b'}',
  ],
)
def test_validity_rejects_non_objects(tmp_path, raw):
  assert ref.parse_valid_event(raw) is None
  res = ref.reference_call_metrics(str(write_lines(tmp_path / 'n.jsonl', [raw])))
  assert res.dead_letter_count == 1


def test_validity_ignores_a_byte_order_mark(tmp_path):
  assert ref.parse_valid_event(b'\xef\xbb\xbf' + ev('U', B)) is not None


def test_no_trailing_newline_and_blank_last_line(tmp_path):
  p = tmp_path / 't.jsonl'
  p.write_bytes(ev('A', B) + b'\n' + ev('B', B + 1))  # no trailing newline
  assert ref.reference_call_metrics(str(p)).lines == 2
  p.write_bytes(ev('A', B) + b'\n\n')  # a blank line, then the end
  res = ref.reference_call_metrics(str(p))
  assert res.lines == 2 and res.dead_letter_count == 1


def test_rates_are_decimal_half_up():
  assert ref.abandon_rate(row(3, abandoned=1)) == Decimal('0.3333')
  assert ref.abandon_rate(row(3, abandoned=2)) == Decimal('0.6667')
  assert ref.abandon_rate(row(20000, abandoned=1)) == Decimal('0.0001')  # 0.00005 up
  assert ref.abandon_rate(row(0)) == Decimal('0')
  assert ref.service_level(row(8, sl=7)) == Decimal('0.8750')
  assert ref.abandon_rate(row(10, abandoned=10)) == Decimal('1.0000')


def test_conservation_on_generated_file_with_small_polls(generated_20k):
  path, counts = generated_20k
  for poll_size in (1, 50, 500, 10**9):
    res = ref.reference_call_metrics(str(path), poll_size=poll_size)
    assert_conservation(res)
    assert res.valid_events == counts['valid']
  assert len(res.late) == 0  # a single poll never sees a watermark


def test_reference_cli_json(tmp_path):
  path = tmp_path / 'c.jsonl'
  gen.write_call_events(str(path), 300, seed=1)
  out = subprocess.run(
    [sys.executable, '-m', 'testing.reference.calls', str(path), '--json'],
    check=True,
    capture_output=True,
    cwd=REPO,
  ).stdout
  data = json.loads(out)
  assert data['valid_events'] == 300
  assert sum(r['total_calls'] for r in data['rows']) + len(data['late']) == 300
  assert all(Decimal(r['abandon_rate']) <= 1 for r in data['rows'])


def test_committed_sample_is_consistent():
  sample = REPO / 'samples' / 'call_events.jsonl'
  assert sample.exists(), 'the committed sample is missing'
  assert sample.stat().st_size < 2 * 1024 * 1024
  res = ref.reference_call_metrics(str(sample))
  assert res.valid_events == 5000
  assert_conservation(res)
  assert res.dead_letter_count == len(gen.MALFORMED_KINDS)
  assert len(res.late) > 0 and res.late_pane_events > 0
