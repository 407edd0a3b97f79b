"""Amazon Connect contact events (`--call_event_format=amazon_connect_events`):
every case of tests/fixtures/vendors/amazon_connect_events_cases.json
(events modelled on Amazon's contact events data model and samples, each
with its expected outcome, queue transitions and source) through the
parser, through the format's transform on a TestStream, and through the
main job; the dead-letter reasons; the committed sample and randomly
reordered generated streams end to end against the plain-Python
reference (testing/reference/vendors.py)."""

import collections
import copy
import json
import random
import sqlite3
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration

from testing.datagen import vendor_events as gen
from testing.datagen.vendor_events import CONNECT_EVENTS, write_vendor_events
from testing.reference.queue_status import reference_queue_status
from testing.reference.vendors import (
  connect_event_transitions,
  parse_connect_event,
  reference_vendor_metrics,
)
from tests.conftest import drain
from tests.support.prism import on_both_runners, runner_flags
from tests.support.reference_helpers import (
  assert_same_seed_same_bytes,
  redelivery_gaps,
  run_generator_cli,
)
from tests.test_pipeline_e2e import shuffled_copy
from tests.test_vendor_pipeline_e2e import expected_rows, run_job
from transforms import parsing
from transforms.formats import registry
from transforms.formats.amazon_connect_events import (
  ConnectContactEventsCalls,
  ContactEvent,
  PassedOver,
  contact_event_time_ms,
  parse_contact_event,
  queue_key_of,
)
from transforms.formats.fields import iso_time_ms
from transforms.records import OfferedCall, QueueTransition, SourceRecord

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / 'samples' / 'amazon_connect_events.jsonl'
SAMPLE_MALFORMED = 18
DEDUPE_TTL = Duration(seconds=600)
FIXTURE = json.loads(
  (Path(__file__).parent / 'fixtures' / 'vendors' / 'amazon_connect_events_cases.json').read_text()
)
CASES = FIXTURE['cases']
OUTCOMES = {
  'answered': 'ANSWERED',
  'abandoned': 'ABANDONED',
  'flow_out': 'FLOW_OUT',
  'unknown': 'UNKNOWN',
}
QUEUE_ARN = (
  'arn:aws:connect:us-east-1:111122223333:instance/12345678-1234-1234-1234-123456789012'
  '/queue/0b1e2c3d-0000-4000-8000-00000000b111'
)


def _raw(record) -> bytes:
  return json.dumps(record).encode()


def _outcomes(case):
  """What the parser makes of a case's records: offered calls (first per
  contact), transitions, passed-over counts, dead-letter reasons."""
  offered, transitions, dead = {}, [], []
  passed_over = collections.Counter()
  for record in case['records']:
    try:
      event = parse_contact_event(_raw(record))
    except parsing.InvalidRecord as error:
      dead.append(error.reason)
      continue
    if isinstance(event, PassedOver):
      passed_over[event.reason] += 1
      continue
    t = event.transition
    transitions.append([t.contact_id, t.queue_id, t.kind, t.outcome])
    if event.offered is not None:
      offered.setdefault(event.offered.call_id, event.offered)
  return offered, transitions, dict(passed_over), dead


def _expected_offered(case):
  return {
    o['contact']: (o['queue'], OUTCOMES[o['outcome']], o['channel'], o['wait'])
    for o in case['offered']
  }


@pytest.mark.parametrize('case', CASES, ids=[c['case'] for c in CASES])
def test_case_parses_to_its_documented_outcome(case):
  offered, transitions, passed_over, dead = _outcomes(case)
  assert case['source'] and case['expected']
  if case['expected'] == 'dead_letter':
    assert dead == [case['dead_reason']] and not offered and not transitions
    return
  assert dead == []
  assert {
    c: (o.queue_id, o.outcome, o.channel, o.wait_seconds) for c, o in offered.items()
  } == _expected_offered(case)
  assert transitions == case['transitions']
  assert passed_over == case['passed_over']
  if case['expected'] in OUTCOMES:
    # The case's headline: the outcome of its first offered contact.
    assert offered[case['offered'][0]['contact']].outcome == OUTCOMES[case['expected']]
  else:
    assert case['expected'] == 'not_counted' and not offered


def test_transitions_carry_the_documented_times():
  [case] = [c for c in CASES if c['case'] == 'answered voice call']
  queued, connected = (parse_contact_event(_raw(r)) for r in case['records'][:2])
  enqueued_ms = iso_time_ms('2026-11-02T08:00:10Z', 'enqueue')
  connected_ms = iso_time_ms('2026-11-02T08:00:25Z', 'connected')
  assert queued.timestamp == queued.transition.timestamp == enqueued_ms
  assert queued.offered is None and queued.transition.entered_at is None
  assert connected.timestamp == connected.offered.timestamp == connected_ms
  assert (connected.transition.entered_at, connected.transition.outcome) == (
    enqueued_ms,
    'ANSWERED',
  )


def _queued(**detail):
  event = copy.deepcopy(
    next(c for c in CASES if c['case'] == 'caller hung up while in queue')['records'][1]
  )
  event['detail'].update(detail)
  return event


def _mutated(path, value):
  event = _queued()
  target = event
  for key in path[:-1]:
    target = target[key]
  if value is _DELETE:
    del target[path[-1]]
  else:
    target[path[-1]] = value
  return _raw(event)


_DELETE = object()


@pytest.mark.parametrize(
  'raw, reason',
  [
    (b'{"detail-type": "Amazon Connect Contact Event", ', 'malformed_json'),
    (b'[1, 2]', 'not_a_json_object'),
    (b'', 'empty_record'),
    (b'{"detail": "\xff"}', 'invalid_utf8'),
    (_mutated(('detail-type',), 'Contact Lens Realtime Rules Matched'), 'unknown_detail_type'),
    (_mutated(('detail',), 'DISCONNECTED'), 'wrong_type'),
    (_mutated(('detail', 'eventType'), _DELETE), 'missing_field'),
    (_mutated(('detail', 'contactId'), ' '), 'empty_field'),
    (_mutated(('detail', 'contactId'), 'x' * 300), 'field_too_long'),
    (_mutated(('detail', 'contactId'), 'a\nb'), 'control_character'),
    (_mutated(('detail', 'initiationMethod'), 'TELEPATHY'), 'unknown_enum_value'),
    (_mutated(('detail', 'channel'), 'FAX'), 'unknown_enum_value'),
    (_mutated(('detail', 'queueInfo'), 'Billing'), 'wrong_type'),
    (_mutated(('detail', 'queueInfo', 'queueArn'), 'arn'), 'malformed_queue_arn'),
    (_mutated(('detail', 'queueInfo', 'enqueueTimestamp'), _DELETE), 'missing_field'),
    (
      _mutated(('detail', 'queueInfo', 'enqueueTimestamp'), '2026-11-02T08:00:20'),
      'malformed_timestamp',
    ),
    (_mutated(('detail', 'queueInfo', 'enqueueTimestamp'), 1793606400000), 'wrong_type'),
    (
      _mutated(('detail', 'queueInfo', 'enqueueTimestamp'), '1999-12-31T23:59:59Z'),
      'absurd_timestamp',
    ),
    (_mutated(('detail', 'disconnectTimestamp'), '2099-01-01T00:00:00Z'), 'future_timestamp'),
    (_mutated(('detail', 'disconnectTimestamp'), _DELETE), 'missing_field'),
    (_mutated(('detail', 'disconnectTimestamp'), '2026-11-02T08:00:19Z'), 'dequeue_before_enqueue'),
    (_mutated(('detail', 'disconnectTimestamp'), '2026-11-04T08:00:21Z'), 'value_out_of_range'),
    (_mutated(('detail', 'disconnectReason'), 7), 'wrong_type'),
    (_mutated(('detail', 'agentInfo'), ['agent']), 'wrong_type'),
    (_mutated(('detail', 'eventType'), 'CONNECTED_TO_AGENT'), 'missing_field'),
    # Other streams on this topic.
    (_raw({'call_uuid': 'c-1', 'event_type': 'CALL_ENDED'}), 'wrong_stream'),
    (
      _raw({'topicName': 'v2.detail.events.conversation.c.acd.end', 'eventBody': {}}),
      'wrong_stream',
    ),
    (
      _raw({'ContactId': 'c-1', 'AWSContactTraceRecordFormatVersion': '2017-03-10'}),
      'wrong_stream',
    ),
  ],
)
def test_bad_records_are_dead_letters_with_a_specific_reason(raw, reason):
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_contact_event(raw)
  assert error.value.reason == reason
  assert contact_event_time_ms(raw) is None


def test_a_wrong_stream_names_what_it_is_and_what_this_job_reads():
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_contact_event(_raw({'ContactId': 'c', 'AWSContactTraceRecordFormatVersion': '1'}))
  assert 'amazon_connect' in error.value.detail and 'Contact Event' in error.value.detail


def test_other_event_types_are_valid_whatever_their_shape():
  event = {'detail-type': 'Amazon Connect Contact Event', 'detail': {'eventType': 'PAUSED'}}
  assert parse_contact_event(_raw(event)) == PassedOver('other_event_types')
  assert contact_event_time_ms(_raw(event)) is None


def test_queue_key_is_the_arn_or_its_queue_id():
  assert queue_key_of(QUEUE_ARN, 'name') == '0b1e2c3d-0000-4000-8000-00000000b111'
  assert queue_key_of(QUEUE_ARN, 'arn') == QUEUE_ARN
  for key in ('name', 'arn'):
    with pytest.raises(parsing.InvalidRecord) as error:
      queue_key_of('arn', key)
    assert error.value.reason == 'malformed_queue_arn'
  event = parse_contact_event(_raw(_queued()), queue_key='arn')
  assert (event.transition.queue_id, event.offered.queue_id) == (QUEUE_ARN, QUEUE_ARN)


def test_replay_event_time_is_when_the_contact_moved():
  queued, left = next(c for c in CASES if c['case'] == 'caller hung up while in queue')['records']
  enqueued_ms = iso_time_ms('2026-11-02T08:00:20Z', 'enqueue')
  left_ms = iso_time_ms('2026-11-02T08:01:05Z', 'left')
  assert contact_event_time_ms(_raw(queued)) == enqueued_ms
  assert contact_event_time_ms(_raw(left)) == left_ms
  assert contact_event_time_ms(_raw(left), above_ms=left_ms) is None
  assert contact_event_time_ms(_raw(left), above_ms=left_ms - 1) == left_ms
  registered = registry.call_event_format('amazon_connect_events')
  assert registered.offered_calls is not None and registered.event_time_ms is not None


def _fixture_records():
  return [
    SourceRecord('cc-call-logs', f'f:{i}', _raw(r))
    for i, r in enumerate(r for case in CASES for r in case['records'])
  ]


def test_cases_on_a_test_stream(options):
  p = beam.Pipeline(options=options)
  out = (
    p
    | drain(TestStream().add_elements(_fixture_records()))
    | ConnectContactEventsCalls(DEDUPE_TTL, 'name')
  )
  offered = out['offered'] | 'Offered' >> beam.Map(
    lambda c, ts=beam.DoFn.TimestampParam: (
      c.call_id,
      c.queue_id,
      c.outcome,
      c.channel,
      c.wait_seconds,
      ts.micros // 1000 == c.timestamp,
    )
  )
  transitions = out['queue_transitions'] | 'Transitions' >> beam.Map(
    lambda t, ts=beam.DoFn.TimestampParam: (
      t.contact_id,
      t.queue_id,
      t.kind,
      t.outcome,
      ts.micros // 1000 == t.timestamp,
    )
  )
  reasons = out['dead_letters'] | 'Reasons' >> beam.Map(lambda d: d.reason)
  assert_that(
    offered,
    equal_to(
      [
        (o['contact'], o['queue'], OUTCOMES[o['outcome']], o['channel'], o['wait'], True)
        for case in CASES
        for o in case['offered']
      ]
    ),
  )
  assert_that(
    transitions,
    equal_to([(*t, True) for case in CASES for t in case['transitions']]),
    label='transitions',
  )
  assert_that(
    reasons, equal_to([c['dead_reason'] for c in CASES if 'dead_reason' in c]), label='dead'
  )
  result = p.run()
  result.wait_until_finish()
  counters = {
    m.key.metric.name: m.committed
    for m in result.metrics().query()['counters']
    if m.key.metric.namespace == 'amazon_connect_events'
  }
  passed_over = collections.Counter()
  for case in CASES:
    passed_over.update(case['passed_over'])
  for reason, count in passed_over.items():
    assert counters[reason] == count, reason
  assert counters['duplicates'] == 2
  assert counters['queue_entered'] == sum(
    t[2] == 'ENTERED' for case in CASES for t in case['transitions']
  )
  assert counters['dead_letter_malformed_queue_arn'] == 1


def test_output_types_are_the_common_records(options):
  p = beam.Pipeline(options=options)
  out = p | beam.Create([]) | ConnectContactEventsCalls(DEDUPE_TTL, 'arn')
  assert out['offered'].element_type is OfferedCall
  assert out['queue_transitions'].element_type is QueueTransition
  with pytest.raises(ValueError):
    ConnectContactEventsCalls(DEDUPE_TTL, 'Name')


def test_fixture_end_to_end_with_queue_names(tmp_path):
  path = tmp_path / 'cases.jsonl'
  path.write_bytes(b''.join(r.raw + b'\n' for r in _fixture_records()))
  names = tmp_path / 'queues.json'
  names.write_text(json.dumps(FIXTURE['queue_names']))
  rows, late, _, dead = run_job(
    path, 'amazon_connect_events', tmp_path / 'c.db', f'--queue_names={names}'
  )
  totals = collections.defaultdict(collections.Counter)
  for (queue, channel, _), row in rows.items():
    totals[(queue, channel)]['offered'] += row[0]
  expected = collections.defaultdict(collections.Counter)
  for case in CASES:
    for o in case['offered']:
      expected[(o['queue'], o['channel'])]['offered'] += 1
  assert totals == expected and late == []
  assert sorted(dead) == sorted(c['dead_reason'] for c in CASES if 'dead_reason' in c)
  ref = reference_vendor_metrics(str(path), CONNECT_EVENTS)
  assert rows == expected_rows(ref)
  # Billing's voice contacts by Amazon's definitions: offered, answered,
  # abandoned (the callers who hung up in queue) and flow-outs (the
  # callback request, the time-out and the transfer).
  [billing] = [q for q, n in FIXTURE['queue_names'].items() if n == 'Billing']
  [voice] = [row for (q, c, _), row in rows.items() if (q, c) == (billing, 'voice')]
  assert (voice[0], voice[1], voice[2], voice[4]) == (11, 4, 3, 3)


@on_both_runners
def test_committed_sample_matches_the_reference(tmp_path, runner):
  rows, late, updates, dead = run_job(
    SAMPLE, CONNECT_EVENTS, tmp_path / 'out.db', *runner_flags(runner)
  )
  ref = reference_vendor_metrics(str(SAMPLE), CONNECT_EVENTS)
  assert rows == expected_rows(ref) and rows
  assert late == sorted(ref.late) and updates == []
  assert len(dead) == ref.dead_letter_count == SAMPLE_MALFORMED
  assert dead.count('wrong_stream') == 1
  assert len({channel for _, channel, _ in rows}) > 1
  assert sum(r[0] for r in rows.values()) + len(late) == ref.offered
  assert ref.duplicates and ref.not_inbound and ref.passed_over and ref.entered
  outcomes = {f: sum(r[i] for r in rows.values()) for i, f in ((1, 'answered'), (2, 'abandoned'))}
  assert outcomes['answered'] and outcomes['abandoned']


@pytest.mark.parametrize('lines', [None, 800])
def test_the_live_floor_of_the_sample_matches_the_queue_status_reference(tmp_path, lines):
  # The first 800 lines stop mid-stream, with contacts still waiting.
  path = tmp_path / 'events.jsonl'
  path.write_bytes(b''.join(SAMPLE.read_bytes().splitlines(keepends=True)[:lines]))
  db = tmp_path / 'live.db'
  run_job(path, CONNECT_EVENTS, db)
  with sqlite3.connect(db) as conn:
    rows = {
      (q, c): (w, o, a)
      for q, c, w, o, a in conn.execute(
        'SELECT queue_id, channel, waiting, oldest_waiting_since, as_of FROM queue_status'
      )
    }
  ref = reference_queue_status(
    connect_event_transitions(str(path)), 14_400_000, 100, tombstone_ttl_ms=600_000
  )
  expected = {
    key: (s.waiting, s.oldest_waiting_since, s.as_of)
    for key, s in ref.last_emitted_status().items()
  }
  assert rows == expected and rows
  waiting = sum(w for w, _, _ in rows.values())
  # Every queued contact of the whole sample left its queue.
  assert waiting > 0 if lines else waiting == 0


@pytest.mark.parametrize('seed', range(2))
def test_random_arrival_orders_match_the_reference(tmp_path, seed):
  rng = random.Random(seed)
  generated = tmp_path / 'generated.jsonl'
  write_vendor_events(
    str(generated),
    CONNECT_EVENTS,
    300,
    seed,
    events_per_second=rng.choice([0.5, 2, 8]),
    queues=rng.randint(2, 6),
    too_late_share=rng.uniform(0, 0.05),
    duplicate_share=rng.uniform(0, 0.1),
    bare_share=rng.uniform(0, 0.5),
    callback_share=rng.uniform(0, 0.2),
    outbound_share=rng.uniform(0, 0.1),
    unknown_outcome_share=0.02,
    oversized=seed == 0,
  )
  path = tmp_path / 'arrivals.jsonl'
  shuffled_copy(generated, path, rng, share=rng.uniform(0.01, 0.1))
  poll_size = rng.choice([1, 7, 50, 500])
  lateness = rng.choice([60, 600])
  queue_key = ['name', 'arn'][seed % 2]
  rows, late, _, _ = run_job(
    path,
    CONNECT_EVENTS,
    tmp_path / 'out.db',
    f'--replay_poll_size={poll_size}',
    f'--allowed_lateness_seconds={lateness}',
    '--short_abandon_threshold_seconds=5',
    f'--connect_queue_key={queue_key}',
    '--dedupe_ttl_seconds=86400',
  )
  ref = reference_vendor_metrics(
    str(path),
    CONNECT_EVENTS,
    poll_size=poll_size,
    allowed_lateness_s=lateness,
    short_abandon_threshold_s=5,
    connect_queue_key=queue_key,
    dedupe_ttl_s=86400,
  )
  assert rows == expected_rows(ref)
  assert late == sorted(ref.late)
  assert sum(r[0] for r in rows.values()) + len(late) == ref.offered


def test_parsed_events_are_contact_events_or_passed_over():
  for line in SAMPLE.read_bytes().splitlines():
    try:
      event = parse_contact_event(line)
    except parsing.InvalidRecord:
      continue
    assert isinstance(event, (ContactEvent, PassedOver))


# --------------------------------------------------------------------------
# the generator and the reference
# --------------------------------------------------------------------------


def test_generator_same_seed_same_bytes(tmp_path):
  assert_same_seed_same_bytes(lambda seed: gen.generate_vendor_events(CONNECT_EVENTS, 300, seed))
  in_process = tmp_path / 'a.jsonl'
  gen.write_vendor_events(str(in_process), CONNECT_EVENTS, 200, 3)
  run_generator_cli(
    'testing.datagen.vendor_events',
    ['--format', CONNECT_EVENTS, '--out', 'b.jsonl', '--calls', '200', '--seed', '3'],
    tmp_path,
    hash_seed='123',
  )
  assert (tmp_path / 'b.jsonl').read_bytes() == in_process.read_bytes()


def test_reference_counts_what_the_generator_wrote(tmp_path):
  path = tmp_path / 's.jsonl'
  counts = gen.write_vendor_events(
    str(path),
    CONNECT_EVENTS,
    2000,
    9,
    events_per_second=4,
    callback_share=0.3,
    outbound_share=0.1,
    flow_out_share=0.1,
    oversized=True,
  )
  res = reference_vendor_metrics(str(path), CONNECT_EVENTS, allowed_lateness_s=3600)
  assert res.lines == counts['lines']
  assert res.offered == counts['offered']
  kinds = gen.MALFORMED_KINDS[CONNECT_EVENTS]
  assert res.dead_letter_count == counts['malformed'] == len(kinds) + 1
  assert counts['callbacks'] and counts['transfers'] and counts['outbound'] and res.not_inbound
  assert res.offered == sum(r['total_calls'] for r in res.rows.values()) + len(res.late)
  assert res.duplicates >= counts['duplicates']


def test_redeliveries_come_within_thirty_lines():
  lines = gen.generate_vendor_events(CONNECT_EVENTS, 2000, 4, malformed=0, duplicate_share=0.05)
  gaps = redelivery_gaps(lines)
  assert gaps and all(1 <= g <= 40 for g in gaps)


@pytest.mark.parametrize('kind', gen.CONNECT_EVENTS_MALFORMED_KINDS + (gen.OVERSIZED_KIND,))
def test_every_generated_malformed_kind_is_a_dead_letter_for_job_and_reference(kind):
  [case] = [c for c in CASES if c['case'] == 'answered voice call']
  valid = case['records'][0]
  assert parse_connect_event(_raw(valid))[0] == 'entered'
  line = gen.connect_events_malformed_line(kind, valid)
  assert parse_connect_event(line) == ('dead', None)
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_contact_event(line)
  assert error.value.reason != parsing.PARSER_ERROR
