"""Tests of the Data Actions generator and its independent reference.

Both live in ``testing/`` and use the stdlib only; these tests never import
the pipeline, so the reference stays an independent oracle.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

from testing.datagen import data_actions as gen
from testing.reference import calls as ref
from testing.reference import interactions as ri
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

SAMPLE = REPO / 'samples' / 'data_actions.jsonl'
# The committed sample's arguments, as in the generator's docstring.
SAMPLE_ARGS = dict(n=3000, seed=18, customers=300, events_per_second=5)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def ia(iid: str, customer: str, status: str, ts: int, channel: str = 'voice') -> bytes:
  """One interaction line (bytes, no newline)."""
  return json.dumps(
    {
      'interactionId': iid,
      'customerId': customer,
      'channel': channel,
      'status': status,
      'timestamp': ts,
    }
  ).encode()


def cu(customer: str, ts: int, tier: str = 'GOLD', region: str = 'EMEA') -> bytes:
  """One customer_update line."""
  return json.dumps(
    {
      'recordType': 'customer_update',
      'customerId': customer,
      'tier': tier,
      'region': region,
      'timestamp': ts,
    }
  ).encode()


def run(tmp_path: Path, lines: List[bytes], **kw) -> ri.InteractionsReference:
  res = ri.reference_interactions(str(write_lines(tmp_path / 't.jsonl', lines)), **kw)
  assert_conservation(res)
  return res


def assert_conservation(res: ri.InteractionsReference) -> None:
  assert res.valid_interactions == sum(res.volumes.values()) + len(res.late_volume_ids)


def sequence(customer: str, steps, channel: str = 'voice', prefix: str = '') -> List[bytes]:
  """Interaction lines of ``customer`` for ``steps`` = [(status, ts)]."""
  return [
    ia(f'{prefix}{customer}-{i}', customer, status, ts, channel)
    for i, (status, ts) in enumerate(steps)
  ]


F, CB, OK = 'FAILED', 'CALLBACK_REQUESTED', 'COMPLETED'


def classify_dead_line(raw: bytes) -> str:
  """Name the malformed kind of a rejected line (test-side, independent of
  how the generator builds it)."""
  kind, obj = decode_dead_line(raw)
  if kind is not None:
    return kind
  if isinstance(obj, list):
    return 'json_array'
  assert isinstance(obj, dict)
  if 'recordType' in obj:
    if obj['recordType'] != 'customer_update':
      return 'unknown_record_type'
    if 'tier' not in obj:
      return 'update_missing_tier'
    return 'unknown'
  if 'customerId' not in obj:
    return 'missing_customer_id'
  if 'channel' not in obj:
    return 'missing_channel'
  if isinstance(obj['timestamp'], str):
    return 'timestamp_as_string'
  if obj['timestamp'] >= ref.MAX_TS_MS:
    return 'absurd_timestamp'
  if obj['status'] == '':
    return 'empty_status'
  return 'unknown'


def regex_alerts(events, within_ms: int = 30 * S) -> Set[Tuple[str, str, int]]:
  """A second, differently built matcher for cross-checks: per customer a
  string of F/C/o codes in event-time order, overlapping FFFC found by a
  regex look-ahead."""
  by_customer: Dict[str, list] = {}
  for customer, channel, status, ts, pos in events:
    by_customer.setdefault(customer, []).append((ts, pos, status, channel))
  out = set()
  for customer, items in by_customer.items():
    items.sort(key=lambda x: (x[0], x[1]))
    codes = ''.join('F' if s == F else 'C' if s == CB else 'o' for _, _, s, _ in items)
    for m in re.finditer(r'(?=FFFC)', codes):
      i = m.start()
      if items[i + 3][0] - items[i][0] < within_ms:
        out.add((customer, items[i + 3][3], items[i + 3][0]))
  return out


def accepted_pattern_events(path: str, res: ri.InteractionsReference):
  """The deduplicated interactions not in ``res.pattern_late_ids``, as
  brute_force_alerts takes them."""
  seen = set()
  events = []
  for pos, raw in enumerate(Path(path).read_bytes().split(b'\n')[:-1]):
    parsed = ri.parse_data_action(raw)
    if parsed is None or parsed[0] != 'interaction':
      continue
    rec = parsed[1]
    if rec['interactionId'] in seen:
      continue
    seen.add(rec['interactionId'])
    if rec['interactionId'] not in res.pattern_late_ids:
      events.append((rec['customerId'], rec['channel'], rec['status'], rec['timestamp'], pos))
  return events


@pytest.fixture(scope='module')
def sample_planted(tmp_path_factory):
  """The sample regenerated in-process: its path, counts and planted cases."""
  path = tmp_path_factory.mktemp('da') / 'sample.jsonl'
  planted: List[gen.PlantedCase] = []
  args = dict(SAMPLE_ARGS)
  counts = gen.write_data_actions(
    str(path), args.pop('n'), args.pop('seed'), planted=planted, **args
  )
  return path, counts, planted


# --------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different_bytes():
  assert_same_seed_same_bytes(
    lambda seed: gen.generate_data_actions(2000, seed=seed, customers=200)
  )


def test_cli_is_deterministic_across_processes_and_matches_committed_sample(
  tmp_path, sample_planted
):
  # Another process with another hash seed, run as a plain file: same
  # bytes as the in-process generator and as the committed sample.
  out = tmp_path / 'cli.jsonl'
  run_generator_cli(
    'testing.datagen.data_actions',
    [
      '--out',
      str(out),
      '--interactions',
      '3000',
      '--customers',
      '300',
      '--seed',
      '18',
      '--events-per-second',
      '5',
    ],
    cwd=tmp_path,
    hash_seed='4242',
  )
  path, _, _ = sample_planted
  assert out.read_bytes() == path.read_bytes()
  assert out.read_bytes().endswith(b'\n')
  assert SAMPLE.exists(), 'samples/data_actions.jsonl is committed'
  assert SAMPLE.read_bytes() == path.read_bytes()
  assert SAMPLE.stat().st_size < 1024 * 1024
  assert '--seed 18 --events-per-second 5' in (gen.__doc__ or '')


def test_counts_match_the_reference(sample_planted):
  path, counts, planted = sample_planted
  res = ri.reference_interactions(str(path))
  assert counts['interactions'] == 3000 == res.valid_interactions
  assert counts['lines'] == res.lines
  assert counts['duplicates'] == res.duplicates > 0
  assert counts['customer_updates'] == res.customer_updates > 0
  assert counts['malformed'] == len(gen.MALFORMED_KINDS) == res.dead_letter_count
  assert counts['lines'] == (
    counts['interactions'] + counts['duplicates'] + counts['customer_updates'] + counts['malformed']
  )
  assert counts['planted_cases'] == len(gen.PLANTED_CASES) == len(planted)
  assert counts['planted_interactions'] == gen.PLANTED_INTERACTIONS
  assert_conservation(res)
  # The too-late interactions are routed late by the volume windows (a few
  # near the end of the file can not be judged late yet).
  assert 0 < len(res.late_volume_ids) <= counts['too_late']


def test_realistic_mix(sample_planted):
  path, counts, _ = sample_planted
  recs = [ri.parse_data_action(raw) for raw in path.read_bytes().split(b'\n')[:-1]]
  inter = {
    r['interactionId']: r for k_r in recs if k_r and k_r[0] == 'interaction' for r in [k_r[1]]
  }
  updates = [r for k_r in recs if k_r and k_r[0] == 'customer_update' for r in [k_r[1]]]
  n = len(inter)
  by_status: Dict[str, int] = {}
  by_channel: Dict[str, int] = {}
  per_customer: Dict[str, int] = {}
  for r in inter.values():
    by_status[r['status']] = by_status.get(r['status'], 0) + 1
    by_channel[r['channel']] = by_channel.get(r['channel'], 0) + 1
    per_customer[r['customerId']] = per_customer.get(r['customerId'], 0) + 1
  assert set(by_status) == set(gen.STATUSES)
  assert by_status['COMPLETED'] > 0.75 * n
  assert 0.02 * n < by_status['FAILED'] < 0.10 * n
  assert 0.01 * n < by_status['CALLBACK_REQUESTED'] < 0.08 * n
  assert set(by_channel) == set(gen.CHANNELS)
  assert by_channel['voice'] > by_channel['chat'] > by_channel['email'] > by_channel['sms']
  # Zipf-like: the busiest customer is far above the median one.
  vols = sorted(per_customer.values())
  assert vols[-1] > 8 * vols[len(vols) // 2]
  assert counts['retries'] > 0
  # Profiles: most customers have one; some come before the customer's
  # first interaction, some after it; some customers change tier.
  first_pos: Dict[str, int] = {}
  upd_pos: Dict[str, List[Tuple[int, str]]] = {}
  for pos, k_r in enumerate(recs):
    if not k_r:
      continue
    kind, r = k_r
    if kind == 'interaction':
      first_pos.setdefault(r['customerId'], pos)
    else:
      upd_pos.setdefault(r['customerId'], []).append((pos, r['tier']))
  with_profile = [c for c in first_pos if c in upd_pos]
  assert len(with_profile) > 0.8 * len(first_pos)
  before = sum(upd_pos[c][0][0] < first_pos[c] for c in with_profile)
  after = len(with_profile) - before
  assert before > 0.6 * len(with_profile) and after > 0.05 * len(with_profile)
  changed = [c for c, u in upd_pos.items() if len({t for _, t in u}) > 1]
  assert changed
  assert all(
    set(u) == {'recordType', 'customerId', 'tier', 'region', 'timestamp'}
    and u['tier'] in gen.TIERS
    and u['region'] in gen.REGIONS
    for u in updates
  )


@pytest.mark.parametrize(
  'customers, interactions', [(1_000, 20_000), (2_000, 2_000 + gen.PLANTED_INTERACTIONS)]
)
def test_every_customer_asked_for_shows_up(customers, interactions):
  """Zipf-like activity used to leave most of a big population out (244,000
  of 1,000,000 customers in as many interactions); a benchmark asking for N
  customers needs N keys, retries of failures included in the tight case."""
  seen = set()
  for raw in gen.generate_data_actions(interactions, 4, customers=customers):
    parsed = ri.parse_data_action(raw)
    if parsed and parsed[0] == 'interaction':
      seen.add(parsed[1]['customerId'])
  assert len({c for c in seen if not c.startswith('C-PLANT-')}) == customers


def test_arrival_is_bounded_disorder():
  lines = list(
    gen.generate_data_actions(
      3000,
      seed=9,
      customers=100,
      too_late_share=0,
      duplicate_share=0,
      malformed=0,
      jitter_seconds=5,
    )
  )
  assert_bounded_disorder(lines, 5 * S)


def test_duplicates_are_exact_redeliveries_shortly_after():
  lines = list(
    gen.generate_data_actions(3000, seed=4, customers=100, malformed=0, plant_patterns=False)
  )
  gaps = redelivery_gaps(lines)
  assert 10 < len(gaps) < 60  # ~1 % of 3000
  assert all(1 <= g <= 40 for g in gaps)
  repeated = [line for line, k in Counter(lines).items() if k > 1]
  assert repeated and all(line.startswith(b'{"interactionId"') for line in repeated)


def test_generation_is_streamed():
  # The first lines of a 10-million-interaction run come at once: nothing
  # is materialised up front.
  t0 = time.perf_counter()
  head = list(itertools.islice(gen.generate_data_actions(10_000_000, seed=1), 2000))
  assert len(head) == 2000
  assert time.perf_counter() - t0 < 5


def test_planted_cases_need_room_or_can_be_switched_off():
  with pytest.raises(ValueError):
    list(gen.generate_data_actions(10, seed=1))
  lines = list(gen.generate_data_actions(10, seed=1, plant_patterns=False, malformed=0))
  assert not any(b'C-PLANT' in line for line in lines)
  only = list(
    gen.generate_data_actions(gen.PLANTED_INTERACTIONS, seed=1, malformed=0, duplicate_share=0)
  )
  assert len({line for line in only if b'"interactionId"' in line}) == gen.PLANTED_INTERACTIONS


def test_cli_help():
  out = subprocess.run(
    [sys.executable, '-m', 'testing.datagen.data_actions', '--help'],
    check=True,
    cwd=REPO,
    capture_output=True,
    text=True,
  ).stdout
  for flag in (
    '--interactions',
    '--customers',
    '--jitter-seconds',
    '--failure-share',
    '--duplicate-share',
    '--malformed',
    '--no-planted',
  ):
    assert flag in out


# --------------------------------------------------------------------------
# planted cases in the sample
# --------------------------------------------------------------------------

EXPECTED_ALERTS_PER_CASE = {
  '3f-callback': 1,
  '4f-callback': 1,
  '2f-callback': 0,
  '3f-completed-callback': 0,
  'callback-31s': 0,
  'callback-30s': 0,
  'callback-29999ms': 1,
  'out-of-order': 1,
  'profile-after': 1,
  'redelivered-failure': 0,
  'callback-first': 0,
  'two-matches': 2,
}


def test_planted_cases_produce_exactly_the_expected_alerts(sample_planted):
  path, _, planted = sample_planted
  assert {c.name: len(c.expected_alerts) for c in planted} == EXPECTED_ALERTS_PER_CASE
  for poll_size in (1, 500):
    res = ri.reference_interactions(str(path), poll_size=poll_size)
    planted_ids = {c.customer_id for c in planted}
    got = {a for a in res.alerts if a[0] in planted_ids}
    assert got == {a for c in planted for a in c.expected_alerts}
    assert not any(a[0].startswith('C-PLANT') and a[0] not in planted_ids for a in res.alerts)
  # The alert carries the callback's channel, not the failures'.
  three = next(c for c in planted if c.name == '3f-callback')
  assert three.expected_alerts[0][1] == 'chat'


def test_planted_arrival_shapes(sample_planted):
  path, _, planted = sample_planted
  lines = path.read_bytes().split(b'\n')[:-1]
  recs = [(pos, json.loads(raw)) for pos, raw in enumerate(lines) if b'C-PLANT' in raw]
  by_case: Dict[str, list] = {}
  for pos, r in recs:
    by_case.setdefault(r['customerId'], []).append((pos, r))
  ids = {c.name: c.customer_id for c in planted}
  # Out of order: the callback arrives first, the failures shuffled.
  ooo = [r for _, r in by_case[ids['out-of-order']] if 'recordType' not in r]
  assert [r['status'] for r in ooo][0] == CB
  assert [r['timestamp'] for r in ooo] != sorted(r['timestamp'] for r in ooo)
  # Profile after: the update is the last record of that customer; the
  # other planted customers get theirs first.
  late_prof = by_case[ids['profile-after']]
  assert 'recordType' in late_prof[-1][1] and 'recordType' not in late_prof[0][1]
  for name in ('3f-callback', 'two-matches'):
    assert 'recordType' in by_case[ids[name]][0][1]
  # Redelivered failure: the very same bytes twice.
  red = [lines[pos] for pos, _ in by_case[ids['redelivered-failure']]]
  assert len(red) - len(set(red)) == 1


def test_sample_alerts_match_brute_force_and_regex(sample_planted):
  path, _, _ = sample_planted
  res = ri.reference_interactions(str(path))
  events = accepted_pattern_events(str(path), res)
  assert ri.brute_force_alerts(events) == res.alerts == regex_alerts(events)
  # Besides the planted ones, the retry chains produce a natural match.
  assert any(not a[0].startswith('C-PLANT') for a in res.alerts)


def test_pattern_heavy_generated_file_cross_check(tmp_path):
  # Lots of failures and callbacks among few customers: many matches and
  # near-misses; small polls add pattern-late interactions.
  path = tmp_path / 'heavy.jsonl'
  gen.write_data_actions(
    str(path),
    6000,
    seed=3,
    customers=40,
    failure_share=0.35,
    callback_share=0.25,
    too_late_share=0.01,
    too_late_seconds=40,
  )
  for poll_size in (1, 37, 500):
    res = ri.reference_interactions(str(path), poll_size=poll_size)
    assert_conservation(res)
    events = accepted_pattern_events(str(path), res)
    assert len(events) + len(res.pattern_late_ids) == res.valid_interactions
    alerts = ri.brute_force_alerts(events)
    assert alerts == res.alerts == regex_alerts(events)
    assert len(alerts) > 50
    assert res.pattern_late_ids


# --------------------------------------------------------------------------
# validity
# --------------------------------------------------------------------------


def _base_interaction() -> dict:
  return json.loads(ia('I-1', 'C-1', F, B + 10 * S))


def _base_update() -> dict:
  return json.loads(cu('C-1', B + 10 * S))


@pytest.mark.parametrize('kind', list(gen.MALFORMED_KINDS) + [gen.OVERSIZED_KIND])
def test_malformed_kind_alone_is_a_dead_letter(tmp_path, kind):
  bad = gen.malformed_line(kind, _base_interaction(), _base_update())
  assert classify_dead_line(bad) == kind
  assert ri.parse_data_action(bad) is None
  res = run(tmp_path, [ia('good', 'C-1', OK, B + 10 * S), bad])
  assert res.lines == 2 and res.dead_letter_count == 1
  assert res.valid_interactions == 1 and res.customer_updates == 0
  assert res.volumes == {('voice', B + 10 * S): 1}


def test_each_malformed_kind_is_in_the_sample_and_rejected(sample_planted):
  path, _, _ = sample_planted
  kinds = [
    classify_dead_line(raw)
    for raw in path.read_bytes().split(b'\n')[:-1]
    if ri.parse_data_action(raw) is None
  ]
  assert sorted(kinds) == sorted(gen.MALFORMED_KINDS)


def _edge(change: dict, base: Optional[dict] = None) -> bytes:
  return edit_record(base or _base_interaction(), change)


VALID = [
  ('interaction', {}),
  ('interaction', {'recordType': None}),  # null recordType
  ('interaction', {'timestamp': float(B + 1000)}),  # integral float
  ('interaction', {'timestamp': ref.MIN_TS_MS}),
  ('interaction', {'channel': 'c' * ref.MAX_TEXT_CHARS}),
  ('interaction', {'status': 'SOMETHING_NEW'}),  # any non-empty status
  ('interaction', {'channel': 'whatsapp'}),  # any non-empty channel
  ('interaction', {'tier': 'GOLD'}),  # extra fields are fine
  ('customer_update', {'_update': True}),
  ('customer_update', {'_update': True, 'tier': 'DIAMOND'}),
  ('customer_update', {'_update': True, 'channel': 'voice'}),  # extra fields
]
INVALID = [
  {'timestamp': True},
  {'timestamp': float(B) + 0.5},
  {'timestamp': ref.MAX_TS_MS},
  {'timestamp': ref.MAX_TS_MS - 1},  # beyond the future skew
  {'timestamp': ref.MIN_TS_MS - 1},
  {'channel': 'voice\u0000'},
  {'customerId': 'C' * (ref.MAX_TEXT_CHARS + 1)},
  {'status': '  '},
  {'_update': True, 'tier': 'gold\u001b'},
  {'timestamp': None},
  {'_drop': 'timestamp'},
  {'_drop': 'interactionId'},
  {'interactionId': ''},
  {'interactionId': 7},
  {'customerId': ''},
  {'channel': None},
  {'_drop': 'status'},
  {'status': 3},
  {'recordType': 'CUSTOMER_UPDATE'},  # case matters
  {'recordType': 'interaction'},  # only absent/null means interaction
  {'recordType': ''},
  {'_update': True, 'region': ''},
  {'_update': True, '_drop': 'region'},
  {'_update': True, 'customerId': None},
  {'_update': True, 'tier': 1},
  {'_update': True, 'timestamp': '1793606410000'},
]


def _make(change: dict) -> bytes:
  change = dict(change)
  base = _base_update() if change.pop('_update', False) else None
  return _edge(change, base)


@pytest.mark.parametrize('kind,change', VALID, ids=str)
def test_validity_accepts(tmp_path, kind, change):
  line = _make(change)
  parsed = ri.parse_data_action(line)
  assert parsed is not None and parsed[0] == kind
  assert type(parsed[1]['timestamp']) is int
  res = run(tmp_path, [line])
  assert res.dead_letter_count == 0
  assert (res.valid_interactions, res.customer_updates) == (
    (1, 0) if kind == 'interaction' else (0, 1)
  )


@pytest.mark.parametrize('change', INVALID, ids=str)
def test_validity_rejects(tmp_path, change):
  line = _make(change)
  assert ri.parse_data_action(line) is None
  res = run(tmp_path, [line])
  assert res.dead_letter_count == 1
  assert res.valid_interactions == 0 and res.customer_updates == 0


@pytest.mark.parametrize(
  'raw',
  [
    b'',
    b'null',
    b'[]',
    b'42',
    b'"x"',
    b'{}',
    b'{"interactionId": "x"',
    b'{"x": ' + b'[' * 40 + b']' * 40 + b'}',
  ],
)
def test_validity_rejects_non_objects(tmp_path, raw):
  assert ri.parse_data_action(raw) is None
  assert run(tmp_path, [raw]).dead_letter_count == 1


# --------------------------------------------------------------------------
# pattern rules on hand-written files
# --------------------------------------------------------------------------


def alerts_of(tmp_path, lines, **kw) -> Set[Tuple[str, str, int]]:
  return run(tmp_path, lines, **kw).alerts


def test_three_failures_then_callback_matches(tmp_path):
  lines = sequence('A', [(F, B), (F, B + 5 * S), (F, B + 10 * S)]) + [
    ia('A-cb', 'A', CB, B + 20 * S, channel='chat')
  ]
  assert alerts_of(tmp_path, lines) == {('A', 'chat', B + 20 * S)}


def test_four_failures_then_callback_is_one_match(tmp_path):
  lines = sequence('A', [(F, B), (F, B + 2 * S), (F, B + 4 * S), (F, B + 6 * S), (CB, B + 8 * S)])
  assert alerts_of(tmp_path, lines) == {('A', 'voice', B + 8 * S)}


def test_two_failures_then_callback_no_match(tmp_path):
  lines = sequence('A', [(F, B), (F, B + 2 * S), (CB, B + 4 * S)])
  assert alerts_of(tmp_path, lines) == set()


@pytest.mark.parametrize('between', [OK, 'ABANDONED', 'TRANSFERRED'])
def test_non_failure_between_breaks_the_run(tmp_path, between):
  lines = sequence(
    'A', [(F, B), (F, B + 2 * S), (F, B + 4 * S), (between, B + 5 * S), (CB, B + 6 * S)]
  )
  assert alerts_of(tmp_path, lines) == set()


def test_second_callback_in_a_row_does_not_match(tmp_path):
  lines = sequence('A', [(F, B), (F, B + 2 * S), (F, B + 4 * S), (CB, B + 5 * S), (CB, B + 6 * S)])
  assert alerts_of(tmp_path, lines) == {('A', 'voice', B + 5 * S)}


@pytest.mark.parametrize(
  'gap_ms,match', [(30 * S, False), (30 * S - 1, True), (31 * S, False), (0, True)]
)
def test_within_30_s_boundary(tmp_path, gap_ms, match):
  lines = sequence(
    'A', [(F, B), (F, B + min(gap_ms, 1)), (F, B + min(gap_ms, 2)), (CB, B + gap_ms)]
  )
  assert alerts_of(tmp_path, lines) == ({('A', 'voice', B + gap_ms)} if match else set())


def test_within_is_a_parameter(tmp_path):
  lines = sequence('A', [(F, B), (F, B + 10 * S), (F, B + 20 * S), (CB, B + 40 * S)])
  assert alerts_of(tmp_path, lines) == set()
  assert alerts_of(tmp_path, lines, within_s=60) == {('A', 'voice', B + 40 * S)}


def test_statuses_are_parameters(tmp_path):
  lines = sequence(
    'A', [('ABANDONED', B), (F, B + 1 * S), ('ABANDONED', B + 2 * S), ('CALLBACK', B + 3 * S)]
  )
  assert alerts_of(tmp_path, lines) == set()
  assert alerts_of(
    tmp_path, lines, failure_statuses=(F, 'ABANDONED'), callback_statuses=('CALLBACK',)
  ) == {('A', 'voice', B + 3 * S)}


def test_callback_first_and_other_customers_do_not_combine(tmp_path):
  lines = sequence('A', [(CB, B), (F, B + 1 * S), (F, B + 2 * S), (F, B + 3 * S)]) + [
    ia('B-1', 'B', F, B + 4 * S),
    ia('B-2', 'B', F, B + 5 * S),
    ia('C-1', 'C', F, B + 6 * S),
    ia('B-3', 'B', CB, B + 7 * S),
  ]
  assert alerts_of(tmp_path, lines) == set()


def test_customers_interleaved_in_arrival_still_match(tmp_path):
  lines = [
    ia('A-1', 'A', F, B),
    ia('B-1', 'B', F, B + 1),
    ia('A-2', 'A', F, B + 2 * S),
    ia('B-2', 'B', OK, B + 3 * S),
    ia('A-3', 'A', F, B + 4 * S),
    ia('A-4', 'A', CB, B + 5 * S),
  ]
  assert alerts_of(tmp_path, lines, poll_size=1) == {('A', 'voice', B + 5 * S)}


def test_out_of_order_arrival_within_the_delay_still_matches(tmp_path):
  # Arrival order C, F3, F1, F2, one line per poll, while other traffic
  # moves the watermark up to (but not past) the failures.
  steps = {
    'F1': (F, B + 20 * S),
    'F2': (F, B + 21 * S),
    'F3': (F, B + 22 * S),
    'C': (CB, B + 23 * S),
  }
  lines = [ia('other-0', 'Z', OK, B + 29 * S)]
  lines += [ia(k, 'A', *steps[k]) for k in ('C', 'F3', 'F1', 'F2')]
  res = run(tmp_path, lines, poll_size=1)
  assert res.alerts == {('A', 'voice', B + 23 * S)}
  assert res.pattern_late_ids == set()


def test_a_late_interaction_is_excluded(tmp_path):
  lines = [
    ia('F1', 'A', F, B),
    ia('F2', 'A', F, B + 2 * S),
    ia('CB', 'A', CB, B + 6 * S),
    # Another customer moves the watermark to B + 30 s: A's events
    # up to B + 6 s are processed.
    ia('Z-1', 'Z', OK, B + 40 * S),
    # Arrives after the callback B + 6 s was processed: late. Without
    # the rule, F1 F2 F3 CB would match.
    ia('F3', 'A', F, B + 4 * S),
    # Behind the watermark, but after everything processed for A:
    # still accepted.
    ia('F4', 'A', F, B + 7 * S),
  ]
  res = run(tmp_path, lines, poll_size=1)
  assert res.pattern_late_ids == {'F3'}
  assert res.alerts == set()
  # The volume windows keep F3 (its window [B, B+10 s) is not expired).
  assert res.late_volume_ids == set()
  assert res.volumes[('voice', B)] == 5
  # All in one poll: no watermark, nothing late, and the pattern matches.
  one = run(tmp_path, lines, poll_size=100)
  assert one.pattern_late_ids == set()
  assert one.alerts == {('A', 'voice', B + 6 * S)}


def test_equal_timestamp_is_not_late_and_orders_by_arrival(tmp_path):
  lines = [
    ia('F1', 'A', F, B),
    ia('F2', 'A', F, B + 1 * S),
    ia('F3', 'A', F, B + 2 * S),
    # The watermark (B + 25 s) passes F1-F3 but not the tick where A,
    # pending F1 F2 F3, would be forgotten (B + 30 s).
    ia('Z-1', 'Z', OK, B + 35 * S),
    # Same timestamp as the processed F3: not late; after it in
    # (timestamp, arrival) order, so F1 F2 F3 CB matches.
    ia('CB', 'A', CB, B + 2 * S),
  ]
  res = run(tmp_path, lines, poll_size=1)
  assert res.pattern_late_ids == set()
  assert res.alerts == {('A', 'voice', B + 2 * S)}


def test_dedupe_comes_before_the_pattern(tmp_path):
  f1 = ia('F1', 'A', F, B)
  lines = [
    f1,
    f1,
    ia('F2', 'A', F, B + 2 * S),
    ia('CB', 'A', CB, B + 4 * S),
    # Same interactionId, different content: still a duplicate.
    ia('F2', 'A', CB, B + 3 * S),
  ]
  res = run(tmp_path, lines)
  assert res.alerts == set() and res.duplicates == 2 and res.valid_interactions == 3


def test_customer_updates_do_not_enter_the_pattern_or_volumes(tmp_path):
  lines = (
    sequence('A', [(F, B), (F, B + 1 * S)])
    + [cu('A', B + 2 * S)]
    + sequence('A', [(F, B + 3 * S), (CB, B + 4 * S)], prefix='x')
  )
  res = run(tmp_path, lines)
  # F F (update) F CB: the update neither counts nor breaks the run.
  assert res.alerts == {('A', 'voice', B + 4 * S)}
  assert res.customer_updates == 1 and sum(res.volumes.values()) == 4


def test_brute_force_alerts_standalone():
  events = [
    ('A', 'voice', F, B, 0),
    ('A', 'voice', F, B + 1, 2),
    ('A', 'sms', CB, B + 3, 1),
    ('A', 'voice', F, B + 2, 3),
    ('B', 'chat', F, B, 4),
  ]
  # Ordered by timestamp, not by arrival: F F F CB.
  assert ri.brute_force_alerts(events) == {('A', 'sms', B + 3)}
  assert ri.brute_force_alerts(events, within_s=0.003) == set()
  assert ri.brute_force_alerts([]) == set()
  # Equal timestamps: arrival index decides.
  tie = [('A', 'v', F, B, 0), ('A', 'v', F, B, 1), ('A', 'v', CB, B, 2), ('A', 'v', F, B, 3)]
  assert ri.brute_force_alerts(tie) == set()


# --------------------------------------------------------------------------
# watermark, volumes, conservation
# --------------------------------------------------------------------------


def test_volume_windows_and_per_channel_clock(tmp_path):
  lines = [
    ia('a', 'C1', OK, B + 1 * S),  # voice [B, B+10)
    ia('b', 'C2', OK, B + 15 * S, 'chat'),  # chat  [B+10, B+20)
    ia('z', 'C3', OK, B + 200 * S),  # W -> B+190 s
    ia('c', 'C4', OK, B + 5 * S),  # voice expired, clock: LATE
    ia('d', 'C5', OK, B + 5 * S, 'sms'),  # sms never seen: accepted
    ia('e', 'C6', OK, B + 6 * S, 'sms'),  # sms clock now set: LATE
    ia('f', 'C7', OK, B + 150 * S),  # window end B+160 <= W but
    # not expired: a late pane
  ]
  res = run(tmp_path, lines, poll_size=1)
  assert res.late_volume_ids == {'c', 'e'}
  assert res.volumes == {
    ('voice', B): 1,
    ('chat', B + 10 * S): 1,
    ('voice', B + 200 * S): 1,
    ('sms', B): 1,
    ('voice', B + 150 * S): 1,
  }
  assert res.late_pane_events == 2  # d and f
  assert res.final_watermark_ms == B + 190 * S
  assert run(tmp_path, lines, volume_window_s=300, poll_size=1).late_volume_ids == set()


def test_customer_updates_move_the_watermark_but_dead_letters_do_not(tmp_path):
  future = B + 500 * S
  lines = [
    ia('a', 'C1', OK, B + 1 * S),
    ia('z', 'C2', OK, B + 15 * S),
    b'{"recordType":"customer_update","customerId":"C9","timestamp":%d}' % future,
    ia('late?', 'C3', OK, B + 2 * S),
  ]
  res = run(tmp_path, lines, poll_size=1)
  assert res.dead_letter_count == 1 and res.late_volume_ids == set()
  lines[2] = cu('C9', future)
  res = run(tmp_path, lines, poll_size=1)
  assert res.late_volume_ids == {'late?'} and res.customer_updates == 1


def test_watermark_moves_only_between_polls(tmp_path):
  lines = [ia('p', 'A', OK, B + 300 * S), ia('q', 'B', OK, B + 1 * S), ia('r', 'B', OK, B + 2 * S)]
  assert run(tmp_path, lines, poll_size=1).late_volume_ids == {'r'}
  assert run(tmp_path, lines, poll_size=3).late_volume_ids == set()


@pytest.mark.parametrize('poll_size', [1, 50, 500, 10**9])
def test_conservation_on_generated_file(sample_planted, poll_size):
  path, counts, _ = sample_planted
  res = ri.reference_interactions(str(path), poll_size=poll_size)
  assert_conservation(res)
  assert res.valid_interactions == counts['interactions']
  if poll_size == 10**9:
    assert res.late_volume_ids == set() and res.pattern_late_ids == set()


def test_iter_polls_is_lazy_and_exact():
  polls = ref.iter_polls(iter([b'1', b'2', b'3', b'4', b'5']), 2)
  assert [list(p) for p in polls] == [[b'1', b'2'], [b'3', b'4'], [b'5']]
  assert list(ref.iter_polls(iter([]), 3)) == []
  first = next(ref.iter_polls(itertools.count(), 10**9))  # unbounded input
  assert list(itertools.islice(first, 3)) == [0, 1, 2]
  with pytest.raises(ValueError):
    next(ref.iter_polls([b'x'], 0))


def test_reference_cli(tmp_path):
  out = subprocess.run(
    [sys.executable, '-m', 'testing.reference.interactions', str(SAMPLE), '--json'],
    check=True,
    capture_output=True,
    cwd=REPO,
  ).stdout
  data = json.loads(out)
  assert data['valid_interactions'] == 3000
  assert sum(v['count'] for v in data['volumes']) + len(data['late_volume_ids']) == 3000
  assert data['events_per_s'] > 0
  summary = subprocess.run(
    [sys.executable, '-m', 'testing.reference.interactions', str(SAMPLE)],
    check=True,
    capture_output=True,
    text=True,
    cwd=REPO,
  ).stdout
  assert 'events/s' in summary and 'alerts' in summary
