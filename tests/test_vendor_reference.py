"""The vendor-stream generator and the independent vendor reference.

Both live in ``testing/`` and use the stdlib only; like
``test_generator_reference.py``, these tests never import the pipeline, so
the reference stays an independent oracle.
"""

from __future__ import annotations

import json

import pytest

from testing.datagen import vendor_events as gen
from testing.reference import vendors as ref
from tests.support.reference_helpers import (
  REPO,
  B,
  S,
  assert_same_seed_same_bytes,
  redelivery_gaps,
  run_generator_cli,
  write_lines,
)

CONV = '11111111-2222-4333-8444-555555555555'


def note(
  suffix: str,
  at_ms: int,
  session: str = 's-1',
  queue: str = 'Q-1',
  outcome: str = 'ANSWERED',
  conversation: str = CONV,
  media: str = 'VOICE',
) -> bytes:
  """A bare Genesys notification line."""
  body = {
    'eventTime': at_ms,
    'conversationId': conversation,
    'sessionId': session,
    'queueId': queue,
    'mediaType': media,
  }
  if suffix == 'acd.end':
    body['acdOutcome'] = outcome
  return json.dumps(
    {'topicName': f'v2.detail.events.conversation.{conversation}.{suffix}', 'eventBody': body}
  ).encode()


def ctr(
  contact: str, dequeue: str, duration: int = 10, agent: bool = True, queue: str = 'Billing'
) -> bytes:
  """A contact record line; without an agent, the caller hung up in queue."""
  return json.dumps(
    {
      'ContactId': contact,
      'Channel': 'VOICE',
      'InitiationMethod': 'INBOUND',
      'DisconnectReason': 'CUSTOMER_DISCONNECT',
      'DisconnectTimestamp': dequeue,
      'InitiationTimestamp': '2026-11-02T07:59:00Z',
      'Queue': {
        'Name': queue,
        'ARN': f'arn:q/{queue}',
        'EnqueueTimestamp': '2026-11-02T07:59:30Z',
        'DequeueTimestamp': dequeue,
        'Duration': duration,
      },
      'Agent': {'ConnectedToAgentTimestamp': dequeue} if agent else None,
    }
  ).encode()


# --------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------


@pytest.mark.parametrize('fmt', gen.FORMATS)
def test_same_seed_same_bytes(fmt):
  assert_same_seed_same_bytes(lambda seed: gen.generate_vendor_events(fmt, 400, seed))


def test_every_queue_asked_for_has_contacts():
  """As in the call generator (test_generator_reference.py): N queues asked
  for, N queues in the stream."""
  contacts = gen.simulate_calls(20_000, 1, gen.DEFAULT_START_MS, 5.0, 1_000, 0.0, 0.0, 0.0)
  assert len({c.queue for c in contacts}) == 1_000


@pytest.mark.parametrize('fmt', gen.FORMATS)
def test_cli_in_another_process_writes_the_same_file(tmp_path, fmt):
  in_process = tmp_path / 'a.jsonl'
  gen.write_vendor_events(str(in_process), fmt, 300, 3)
  run_generator_cli(
    'testing.datagen.vendor_events',
    ['--format', fmt, '--out', 'b.jsonl', '--calls', '300', '--seed', '3'],
    tmp_path,
    hash_seed='123',
  )
  assert (tmp_path / 'b.jsonl').read_bytes() == in_process.read_bytes()


@pytest.mark.parametrize('fmt', gen.FORMATS)
def test_reference_counts_what_the_generator_wrote(tmp_path, fmt):
  path = tmp_path / 's.jsonl'
  counts = gen.write_vendor_events(
    str(path), fmt, 3000, 9, events_per_second=4, never_queued_share=0.0, oversized=True
  )
  res = ref.reference_vendor_metrics(str(path), fmt, allowed_lateness_s=3600)
  assert res.lines == counts['lines']
  assert res.offered == counts['offered']
  assert res.dead_letter_count == counts['malformed'] == len(gen.MALFORMED_KINDS[fmt]) + 1
  # Updates written within the de-duplication TTL are duplicates, later
  # ones record updates.
  assert res.duplicates + len(res.record_updates) == counts['duplicates'] + counts['updates']
  assert res.offered == sum(r['total_calls'] for r in res.rows.values()) + len(res.late)
  if fmt == gen.GENESYS:
    assert res.passed_over == counts['passed_over']  # customer.end
    assert counts['missing_starts'] and counts['delayed_starts']
    assert res.ends_without_start >= counts['missing_starts']
    assert res.paired + res.ends_without_start == res.offered
    flow_outs = sum(r['flow_out_calls'] for r in res.rows.values())
    assert flow_outs > 0
  else:
    assert counts['updates'] > 0


@pytest.mark.parametrize('fmt', gen.FORMATS)
def test_redeliveries_come_within_thirty_lines(fmt):
  gaps = redelivery_gaps(
    gen.generate_vendor_events(fmt, 3000, 4, malformed=0, duplicate_share=0.05)
  )
  # 1..30 base lines later, plus any other re-deliveries in between.
  assert gaps and all(1 <= g <= 40 for g in gaps)


def test_a_clean_tail_has_no_missing_or_delayed_starts(tmp_path):
  path = tmp_path / 'g.jsonl'
  gen.write_vendor_events(
    str(path),
    gen.GENESYS,
    400,
    2,
    events_per_second=1,
    missing_start_share=1.0,
    clean_tail_seconds=100,
  )
  res = ref.reference_vendor_metrics(str(path), gen.GENESYS)
  ends = {}
  for line in path.read_bytes().split(b'\n')[:-1]:
    kind, event = ref.parse_genesys(line)
    if kind in ('start', 'end'):
      ends.setdefault(event[0], set()).add(kind)
  alone = [c for c, kinds in ends.items() if kinds == {'end'}]
  assert alone and len(alone) < res.offered
  assert res.ends_without_start == len(alone)


@pytest.mark.parametrize('kind', gen.GENESYS_MALFORMED_KINDS + (gen.OVERSIZED_KIND,))
def test_every_genesys_malformed_kind_is_a_dead_letter(kind):
  valid = json.loads(note('acd.end', B))
  assert ref.parse_genesys(json.dumps(valid).encode())[0] == 'end'
  line = gen.genesys_malformed_line(kind, valid)
  assert ref.parse_genesys(line) == ('dead', None)


@pytest.mark.parametrize('kind', gen.CONNECT_MALFORMED_KINDS + (gen.OVERSIZED_KIND,))
def test_every_connect_malformed_kind_is_a_dead_letter(kind):
  valid = json.loads(ctr('c-1', '2026-11-02T08:00:10Z'))
  assert ref.parse_connect(json.dumps(valid).encode())[0] == 'offered'
  line = gen.connect_malformed_line(kind, valid)
  assert ref.parse_connect(line) == ('dead', None)


# --------------------------------------------------------------------------
# the reference on hand-written files
# --------------------------------------------------------------------------


def test_end_before_start_pairs_and_an_end_alone_is_counted_wait_unknown(tmp_path):
  path = write_lines(
    tmp_path / 'g.jsonl',
    [
      note('acd.end', B + 20 * S, 'a'),
      note('acd.start', B + 8 * S, 'a'),  # poll 1
      note('acd.end', B + 30 * S, 'b', outcome='ABANDON'),  # poll 2
      note('acd.start', B + 40 * S, 'c'),
      note('acd.end', B + 90 * S, 'c'),  # poll 3
      note('customer.end', B + 95 * S, 'c'),
    ],
  )
  res = ref.reference_vendor_metrics(str(path), ref.GENESYS, poll_size=2)
  [row] = res.rows.values()
  assert (row['total_calls'], row['answered_calls'], row['abandoned_calls']) == (3, 2, 1)
  assert row['wait_unknown_calls'] == 1  # 'b': its start never came
  assert row['answered_wait_seconds'] == 12 + 50
  assert row['abandoned_within_sl'] == 0  # unknown waits are never within
  assert (res.paired, res.ends_without_start, res.passed_over) == (2, 1, 1)


def test_ends_waiting_at_the_end_of_the_input_are_late_for_a_known_queue(tmp_path):
  # 'z' is 2 s before the last event time: still waiting for its start
  # when the input ends (its release point is past the final watermark).
  path = write_lines(
    tmp_path / 'g.jsonl',
    [
      note('acd.start', B + 1 * S, 'a'),
      note('acd.end', B + 2 * S, 'a'),
      note('acd.start', B + 500 * S, 'b'),
      note('acd.end', B + 598 * S, 'z'),
      note('acd.end', B + 600 * S, 'b'),
    ],
  )
  res = ref.reference_vendor_metrics(str(path), ref.GENESYS, poll_size=2)
  assert res.late == {f'{CONV}:z'}
  assert res.ends_without_start == 1


@pytest.mark.parametrize(
  'definition, expected',
  [('abandoned_over_offered', '0.2500'), ('exclude_short_abandons', '0.1429')],
)
def test_abandon_rate_definitions(tmp_path, definition, expected):
  lines = [
    ctr(f'c-{i}', f'2026-11-02T08:00:{10 + i:02d}Z', duration=i, agent=i >= 2) for i in range(8)
  ]
  res = ref.reference_vendor_metrics(
    str(write_lines(tmp_path / 'c.jsonl', lines)), ref.CONNECT, short_abandon_threshold_s=1
  )
  [row] = res.rows.values()
  assert (row['abandoned_calls'], row['short_abandoned_calls']) == (2, 1)
  assert str(ref.rate(row, ref.ABANDON_RATE, definition)) == expected


def test_connect_queue_key_and_first_arrival_wins(tmp_path):
  path = write_lines(
    tmp_path / 'c.jsonl',
    [
      ctr('c-1', '2026-11-02T08:00:10Z', queue='Billing'),
      ctr('c-1', '2026-11-02T08:00:10Z', queue='Sales'),  # an update: dropped
    ],
  )
  res = ref.reference_vendor_metrics(str(path), ref.CONNECT, connect_queue_key='arn')
  assert set(res.rows) == {('arn:q/Billing', 'voice', B)}
  assert res.duplicates == 1


@pytest.mark.parametrize(
  'text, ms',
  [
    ('2026-11-02T08:00:00Z', B),
    ('2026-11-02T09:00:00.25+01:00', B + 250),
    ('2026-11-02T08:00:00', None),
    ('2026-02-29T00:00:00Z', None),
    ('2026-11-02T08:00:00+24:00', None),
    ('1999-12-31T23:59:59Z', None),
    ('2026-11-02T08:00:00.0000000001Z', None),
    (1793606400000, None),
  ],
)
def test_iso_times(text, ms):
  assert ref.iso_ms(text) == ms


def test_committed_samples_were_made_by_the_documented_commands(tmp_path):
  for fmt, calls, seed, rate, shares in (
    (gen.GENESYS, 500, 14, 0.5, {'body_share': 0.1, 'callback_share': 0.05}),
    (gen.CONNECT, 800, 15, 0.8, {'callback_share': 0.15, 'outbound_share': 0.05}),
  ):
    out = tmp_path / f'{fmt}.jsonl'
    gen.write_vendor_events(str(out), fmt, calls, seed, events_per_second=rate, **shares)
    assert out.read_bytes() == (REPO / 'samples' / f'{fmt}.jsonl').read_bytes(), fmt
    assert f'--calls {calls} --seed {seed} --events-per-second {rate}' in gen.__doc__
    flags = ' '.join(f'--{k.replace("_", "-")} {v}' for k, v in shares.items())
    assert flags in gen.__doc__.replace('\\\n       ', ''), flags
