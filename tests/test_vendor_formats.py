"""The vendor input formats: Genesys Cloud notifications (parsing, acd.start /
acd.end pairing) and Amazon Connect contact records, on TestStream; every
dead-letter reason; the ISO-8601 field rules."""

import copy
import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration

from options.config import FieldRules
from testing.datagen.vendor_events import (
  CONNECT_MALFORMED_KINDS,
  GENESYS_MALFORMED_KINDS,
  OVERSIZED_KIND,
  connect_malformed_line,
  genesys_malformed_line,
)
from tests.conftest import BASE_S, drain, timed
from tests.support.beam_metrics import committed_counters
from transforms import parsing
from transforms.acd_pairing import PairAcdSessions
from transforms.formats import fields
from transforms.formats.amazon_connect import (
  ConnectOfferedCalls,
  PassedOver,
  contact_record_time_ms,
  parse_contact_record,
)
from transforms.formats.genesys_cloud import (
  GenesysOfferedCalls,
  genesys_event_time_ms,
  parse_genesys_event,
)
from transforms.records import (
  ABANDONED,
  ACD_END,
  ACD_START,
  ANSWERED,
  FLOW_OUT,
  UNKNOWN_OUTCOME,
  AcdEvent,
  OfferedCall,
  SourceRecord,
)

BASE_MS = BASE_S * 1000
DEDUPE_TTL = Duration(seconds=600)
CONVERSATION = '3f1c2a4e-8a0b-4c55-9d1e-2b7a6c5d4e3f'
SESSION = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d'
QUEUE = 'c0ffee00-1111-4222-8333-444455556666'


def genesys(
  suffix='acd.end', at_s=30, conversation=CONVERSATION, session=SESSION, bare=False, **body
):
  """A Genesys notification (EventBridge event unless `bare`) as a dict."""
  event_body = {
    'eventTime': BASE_MS + at_s * 1000,
    'conversationId': conversation,
    'participantId': 'p-1',
    'sessionId': session,
    'queueId': QUEUE,
    'mediaType': 'VOICE',
    'direction': 'INBOUND',
  }
  if suffix == 'acd.end':
    event_body.update(acdOutcome='ANSWERED', disconnectType='TRANSFER', connectedDurationMs=12000)
  event_body.update(body)
  note = {
    'topicName': f'v2.detail.events.conversation.{conversation}.{suffix}',
    'version': '2',
    'eventBody': event_body,
    'metadata': {'CorrelationId': 'c-1'},
  }
  if bare:
    return note
  return {
    'version': '0',
    'id': 'e-1',
    'detail-type': note['topicName'],
    'source': 'aws.partner/genesys.com/cloud/org/bus',
    'time': '2026-11-02T08:00:30Z',
    'detail': note,
  }


def raw(record) -> bytes:
  return json.dumps(record).encode()


def ctr(contact_id='ct-1', dequeue='2026-11-02T08:00:42Z', duration=12, agent=True, **changes):
  """An Amazon Connect contact record as a dict."""
  record = {
    'ContactId': contact_id,
    'Channel': 'VOICE',
    'InitiationMethod': 'INBOUND',
    'InitiationTimestamp': '2026-11-02T08:00:10Z',
    'DisconnectTimestamp': '2026-11-02T08:04:00Z',
    'LastUpdateTimestamp': '2026-11-02T08:05:00Z',
    'Queue': {
      'ARN': 'arn:aws:connect:us-east-1:1:instance/i/queue/q-1',
      'Name': 'Billing',
      'EnqueueTimestamp': '2026-11-02T08:00:30Z',
      'DequeueTimestamp': dequeue,
      'Duration': duration,
    },
    'Agent': ({'Username': 'a-1', 'ConnectedToAgentTimestamp': dequeue} if agent else None),
    'Attributes': {'timestamp': 5},
    'DisconnectReason': 'CUSTOMER_DISCONNECT',
  }
  if not agent:  # the caller hung up in queue
    record['DisconnectTimestamp'] = dequeue
  record.update(changes)
  return record


# --- Genesys Cloud: parsing ---------------------------------------------------


@pytest.mark.parametrize('bare', [False, True])
def test_acd_end_of_either_form_is_an_offered_call_half(bare):
  line = raw(genesys(bare=bare))
  event = parse_genesys_event(line)
  assert event == AcdEvent(
    ACD_END, f'{CONVERSATION}:{SESSION}', QUEUE, BASE_MS + 30_000, ANSWERED, 'voice', line.decode()
  )


@pytest.mark.parametrize(
  'acd_outcome, outcome',
  [
    ('ANSWERED', ANSWERED),
    ('ABANDON', ABANDONED),
    ('FLOW_OUT', FLOW_OUT),
    ('UNKNOWN', UNKNOWN_OUTCOME),
  ],
)
def test_acd_outcomes(acd_outcome, outcome):
  assert parse_genesys_event(raw(genesys(acdOutcome=acd_outcome))).outcome == outcome


def test_acd_start_has_no_outcome_and_needs_none():
  event = parse_genesys_event(raw(genesys('acd.start', at_s=10)))
  assert (event.kind, event.timestamp, event.outcome) == (ACD_START, BASE_MS + 10_000, None)


@pytest.mark.parametrize('suffix', ['customer.end', 'flow.end', 'user.start'])
def test_other_conversation_topics_are_passed_over(suffix):
  # Passed over before their body is looked at: it need not have a queue.
  record = genesys(suffix)
  del record['detail']['eventBody']['queueId']
  assert parse_genesys_event(raw(record)) is None
  assert genesys_event_time_ms(raw(record)) is None  # no watermark either


def test_other_genesys_topics_are_passed_over():
  record = {'topicName': 'v2.users.u-1.presence', 'eventBody': {}}
  assert parse_genesys_event(raw(record)) is None


GENESYS_REASON = {
  'not_json': 'malformed_json',
  'truncated_json': 'malformed_json',
  'json_array': 'not_a_json_object',
  'detail_not_object': 'wrong_type',
  'missing_topic_name': 'missing_field',
  'unknown_topic': 'unknown_topic',
  'topic_conversation_mismatch': 'topic_mismatch',
  'missing_event_body': 'missing_field',
  'missing_event_time': 'missing_field',
  'event_time_as_string': 'wrong_type',
  'event_time_1970': 'absurd_timestamp',
  'missing_session_id': 'missing_field',
  'empty_queue_id': 'empty_field',
  'unknown_acd_outcome': 'unknown_enum_value',
  'unknown_media_type': 'unknown_enum_value',
  'contact_record_instead': 'wrong_stream',
  'empty_line': 'empty_record',
  'invalid_utf8': 'invalid_utf8',
  OVERSIZED_KIND: 'oversized_record',
}


def test_every_generated_genesys_malformed_kind_has_an_expected_reason():
  assert set(GENESYS_MALFORMED_KINDS) | {OVERSIZED_KIND} == set(GENESYS_REASON)


@pytest.mark.parametrize('bare', [False, True])
@pytest.mark.parametrize('kind', sorted(GENESYS_REASON))
def test_genesys_malformed_record_is_rejected_with_its_reason(kind, bare):
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_genesys_event(genesys_malformed_line(kind, genesys(bare=bare)))
  assert error.value.reason == GENESYS_REASON[kind]


@pytest.mark.parametrize(
  'change, reason',
  [
    ({'detail': None}, 'missing_field'),
    ({'detail': {'topicName': 42}}, 'wrong_type'),
    ({'detail': {'topicName': '   '}}, 'empty_field'),
  ],
)
def test_genesys_envelope_problems(change, reason):
  record = dict(genesys(), **change)
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_genesys_event(raw(record))
  assert error.value.reason == reason


@pytest.mark.parametrize(
  'body, reason',
  [
    ({'eventTime': 1793606400000.5}, 'wrong_type'),
    ({'eventTime': True}, 'wrong_type'),
    ({'mediaType': 7}, 'wrong_type'),
    ({'participantId': ['p']}, 'wrong_type'),
    ({'disconnectType': {}}, 'wrong_type'),
    ({'queueId': None}, 'missing_field'),
    ({'acdOutcome': None}, 'missing_field'),
    ({'acdOutcome': 'abandon'}, 'unknown_enum_value'),
    ({'conversationId': 'another'}, 'topic_mismatch'),
  ],
)
def test_genesys_body_problems(body, reason):
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_genesys_event(raw(genesys(**body)))
  assert error.value.reason == reason


def test_event_body_must_be_an_object():
  record = genesys()
  record['detail']['eventBody'] = '{"eventTime": 1}'
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_genesys_event(raw(record))
  assert error.value.reason == 'wrong_type'


def test_genesys_watermark_function_follows_the_parser():
  end = raw(genesys())
  assert genesys_event_time_ms(end) == BASE_MS + 30_000
  assert genesys_event_time_ms(end, BASE_MS + 29_999) == BASE_MS + 30_000
  assert genesys_event_time_ms(end, BASE_MS + 30_000) is None
  assert genesys_event_time_ms(b'{') is None


# --- Genesys Cloud: pairing ---------------------------------------------------


def acd(kind, call_id, at_s, queue='Q-1', outcome=ANSWERED):
  return AcdEvent(
    kind, call_id, queue, BASE_MS + int(at_s * 1000), outcome if kind == ACD_END else None
  )


def run_pairing(stream, options, expected, max_wait=3600, delay=10):
  """Runs PairAcdSessions, asserts its offered calls as (call_id, wait,
  outcome, ms after BASE_S) equal `expected`; returns its counters."""
  p = beam.Pipeline(options=options)
  offered = (
    p
    | stream
    | PairAcdSessions(Duration(seconds=max_wait), Duration(seconds=delay), 'pairing_test')
  )
  assert_that(
    offered | beam.Map(lambda c: (c.call_id, c.wait_seconds, c.outcome, c.timestamp - BASE_MS)),
    equal_to(expected),
  )
  result = p.run()
  result.wait_until_finish()
  return committed_counters(result, 'pairing_test')


def test_start_then_end_and_end_then_start_in_one_bundle_pair(options):
  stream = drain(
    TestStream().add_elements(
      [
        timed(acd(ACD_START, 'a', 10)),
        timed(acd(ACD_END, 'a', 22.5)),
        timed(acd(ACD_END, 'b', 14, outcome=ABANDONED)),
        timed(acd(ACD_START, 'b', 11)),
      ]
    )
  )
  counters = run_pairing(
    stream, options, [('a', 12.5, ANSWERED, 22_500), ('b', 3.0, ABANDONED, 14_000)]
  )
  assert counters == {'paired': 2}


def test_a_start_arriving_after_its_end_within_the_bound_pairs(options):
  # With a 10 s bound, the end at 100 s waits until the watermark reaches
  # 110 s (100 s rounded up to the 5 s grid, plus the bound).
  stream = drain(
    TestStream()
    .add_elements([timed(acd(ACD_END, 'a', 100))])
    .advance_watermark_to(BASE_S + 109)
    .add_elements([timed(acd(ACD_START, 'a', 40))])
  )
  counters = run_pairing(stream, options, [('a', 60.0, ANSWERED, 100_000)])
  assert counters == {'paired': 1}


def test_an_end_alone_counts_with_its_wait_unknown_then_its_start_expires(options):
  stream = drain(
    TestStream()
    .add_elements([timed(acd(ACD_END, 'a', 100))])
    .advance_watermark_to(BASE_S + 111)
    .add_elements(
      [
        # Too late for its end; it waits for none, then expires.
        timed(acd(ACD_START, 'a', 40))
      ]
    )
    .advance_watermark_to(BASE_S + 40 + 3600 + 10 + 5)
  )
  counters = run_pairing(stream, options, [('a', None, ANSWERED, 100_000)])
  assert counters == {'ends_without_start': 1, 'starts_without_end': 1}


def test_a_start_waits_at_most_max_queue_wait_for_its_end(options):
  # 'a' waits from 0 s; with a 60 s maximum it is dropped when the watermark
  # passes 60 s (70 s at the source), before its end comes.
  stream = drain(
    TestStream()
    .add_elements([timed(acd(ACD_START, 'a', 0))])
    .advance_watermark_to(BASE_S + 60 + 10)
    .add_elements([timed(acd(ACD_START, 'b', 65))])
    .advance_watermark_to(BASE_S + 130)
    .add_elements([timed(acd(ACD_END, 'a', 110)), timed(acd(ACD_END, 'b', 120))])
  )
  counters = run_pairing(
    stream, options, [('a', None, ANSWERED, 110_000), ('b', 55.0, ANSWERED, 120_000)], max_wait=60
  )
  assert counters == {'paired': 1, 'starts_without_end': 1, 'ends_without_start': 1}


def test_an_end_before_its_start_has_no_wait(options):
  stream = drain(
    TestStream().add_elements([timed(acd(ACD_START, 'a', 50)), timed(acd(ACD_END, 'a', 20))])
  )
  counters = run_pairing(stream, options, [('a', None, ANSWERED, 20_000)])
  assert counters == {'paired': 1, 'negative_waits': 1}


def test_a_repeat_reaching_the_pairing_is_counted_once(options):
  stream = drain(
    TestStream().add_elements(
      [
        timed(acd(ACD_END, 'a', 20)),
        timed(acd(ACD_END, 'a', 20)),
        timed(acd(ACD_START, 'b', 5)),
        timed(acd(ACD_START, 'b', 5)),
        timed(acd(ACD_START, 'a', 10)),
      ]
    )
  )
  counters = run_pairing(stream, options, [('a', 10.0, ANSWERED, 20_000)])
  assert counters == {'paired': 1, 'repeated_in_pairing': 2, 'starts_without_end': 1}


def test_max_queue_wait_must_be_positive():
  with pytest.raises(ValueError, match='max queue wait'):
    PairAcdSessions(Duration(0), Duration(seconds=10), 'x')


def records(*lines):
  return [SourceRecord('genesys', f'f:{i}', line) for i, line in enumerate(lines, 1)]


def run_offered_calls(transform, stream, options, namespace, expected, expected_dead):
  """Runs a format's offered-calls transform, asserts its offered calls and
  the (origin, reason) of its dead letters; returns the format's
  counters."""
  p = beam.Pipeline(options=options)
  out = p | stream | transform
  assert_that(out['offered'], equal_to(expected), label='offered')
  assert_that(
    out['dead_letters'] | beam.Map(lambda d: (d.origin, d.reason)),
    equal_to(expected_dead),
    label='dead_letters',
  )
  result = p.run()
  result.wait_until_finish()
  return committed_counters(result, namespace)


def test_genesys_stream_to_offered_calls(options):
  start = raw(genesys('acd.start', at_s=10))
  end = raw(genesys(at_s=25, bare=True))
  lines = records(
    end,
    start,
    start,
    end,  # re-delivered by EventBridge: dropped
    raw(genesys('customer.end', at_s=300)),
    raw(genesys('acd.end', at_s=40, session='s-2', acdOutcome='ABANDON')),
    b'not json',
    raw(genesys(eventTime='soon')),
  )
  stream = drain(TestStream().add_elements(lines))
  counters = run_offered_calls(
    GenesysOfferedCalls(DEDUPE_TTL, Duration(seconds=3600), Duration(seconds=10)),
    stream,
    options,
    'genesys_cloud',
    [
      # Both halves' records, the start's first, though the end came first.
      OfferedCall(
        f'{CONVERSATION}:{SESSION}',
        QUEUE,
        BASE_MS + 25_000,
        ANSWERED,
        15.0,
        raw=f'{start.decode()}\n{end.decode()}',
      ),
      OfferedCall(
        f'{CONVERSATION}:s-2', QUEUE, BASE_MS + 40_000, ABANDONED, None, raw=lines[5].raw.decode()
      ),
    ],
    [('f:7', 'malformed_json'), ('f:8', 'wrong_type')],
  )
  assert counters == {
    'acd_starts': 2,
    'acd_ends': 3,
    'other_topics': 1,
    'duplicates': 2,
    'paired': 1,
    'ends_without_start': 1,
    'dead_letters': 2,
    'dead_letter_malformed_json': 1,
    'dead_letter_wrong_type': 1,
    # the dedupe shards that held ids, dropped when the stream drains
    'dedupe_shards_expired': 3,
  }


# --- Amazon Connect -----------------------------------------------------------


def test_answered_and_abandoned_contacts():
  line = raw(ctr())
  answered = parse_contact_record(line)
  assert answered == OfferedCall(
    'ct-1', 'Billing', BASE_MS + 42_000, ANSWERED, 12, raw=line.decode()
  )
  assert parse_contact_record(raw(ctr(agent=False))).outcome == ABANDONED
  no_connection = ctr(
    Agent={'Username': 'a', 'ConnectedToAgentTimestamp': None},
    DisconnectTimestamp='2026-11-02T08:00:42Z',
  )
  assert parse_contact_record(raw(no_connection)).outcome == ABANDONED


def test_queue_key_arn():
  offered = parse_contact_record(raw(ctr()), 'arn')
  assert offered.queue_id.endswith('/queue/q-1')


@pytest.mark.parametrize('queue', [None, 'absent'])
def test_a_contact_that_never_queued_is_passed_over(queue):
  record = ctr(agent=False)
  if queue is None:
    record['Queue'] = None
  else:
    del record['Queue']
  assert parse_contact_record(raw(record)) == PassedOver('never_queued')
  assert contact_record_time_ms(raw(record)) is None


def test_connect_watermark_ignores_a_timestamp_attribute():
  # The CTR has "Attributes": {"timestamp": 5}: the event time is still
  # the dequeue time, with or without a floor.
  line = raw(ctr())
  assert contact_record_time_ms(line) == BASE_MS + 42_000
  assert contact_record_time_ms(line, BASE_MS) == BASE_MS + 42_000
  assert contact_record_time_ms(line, BASE_MS + 42_000) is None
  missing_name = ctr()
  del missing_name['Queue']['Name']
  assert contact_record_time_ms(raw(missing_name)) is None
  assert contact_record_time_ms(raw(missing_name), queue_key='arn') == (BASE_MS + 42_000)


CONNECT_REASON = {
  'not_json': 'malformed_json',
  'truncated_json': 'malformed_json',
  'json_array': 'not_a_json_object',
  'missing_contact_id': 'missing_field',
  'queue_not_object': 'wrong_type',
  'missing_dequeue_timestamp': 'missing_field',
  'dequeue_not_iso': 'malformed_timestamp',
  'dequeue_without_offset': 'malformed_timestamp',
  'dequeue_as_epoch_number': 'wrong_type',
  'dequeue_before_enqueue': 'dequeue_before_enqueue',
  'dequeue_1970': 'absurd_timestamp',
  'negative_duration': 'negative_value',
  'duration_as_string': 'wrong_type',
  'agent_not_object': 'wrong_type',
  'connected_timestamp_garbage': 'malformed_timestamp',
  'empty_queue_name': 'empty_field',
  'unknown_channel': 'unknown_enum_value',
  'unknown_initiation_method': 'unknown_enum_value',
  'contact_event_instead': 'wrong_stream',
  'empty_line': 'empty_record',
  'invalid_utf8': 'invalid_utf8',
  OVERSIZED_KIND: 'oversized_record',
}


def test_every_generated_connect_malformed_kind_has_an_expected_reason():
  assert set(CONNECT_MALFORMED_KINDS) | {OVERSIZED_KIND} == set(CONNECT_REASON)


@pytest.mark.parametrize('kind', sorted(CONNECT_REASON))
def test_connect_malformed_record_is_rejected_with_its_reason(kind):
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_contact_record(connect_malformed_line(kind, ctr()))
  assert error.value.reason == CONNECT_REASON[kind]


@pytest.mark.parametrize(
  'change, reason',
  [
    ({'Channel': None}, 'missing_field'),
    ({'InitiationTimestamp': '2026-11-02 08:00:10Z'}, 'malformed_timestamp'),
    ({'DisconnectTimestamp': 1793606400000}, 'wrong_type'),
    ({'LastUpdateTimestamp': ''}, 'malformed_timestamp'),
    ({'Agent': ['a']}, 'wrong_type'),
  ],
)
def test_connect_contact_problems(change, reason):
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_contact_record(raw(ctr(**change)))
  assert error.value.reason == reason


@pytest.mark.parametrize(
  'field, value, reason',
  [
    ('ARN', 7, 'wrong_type'),
    ('EnqueueTimestamp', None, 'missing_field'),
    ('Duration', True, 'wrong_type'),
    ('Duration', float('nan'), 'malformed_json'),  # NaN is not JSON
    ('Duration', None, 'missing_field'),
  ],
)
def test_connect_queue_problems(field, value, reason):
  record = ctr()
  record['Queue'][field] = value
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_contact_record(raw(record))
  assert error.value.reason == reason


def test_the_queue_key_in_use_is_required():
  record = ctr()
  record['Queue']['ARN'] = None
  assert parse_contact_record(raw(record)).queue_id == 'Billing'
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_contact_record(raw(record), 'arn')
  assert error.value.reason == 'missing_field'


def test_connect_stream_to_offered_calls(options):
  first = ctr('ct-1')
  update = copy.deepcopy(first)
  update['LastUpdateTimestamp'] = '2026-11-02T08:09:00Z'
  never_queued = ctr('ct-3', agent=False, Queue=None)
  lines = [
    SourceRecord('ctr', f'f:{i}', line)
    for i, line in enumerate(
      [
        raw(first),
        raw(first),
        raw(update),
        raw(ctr('ct-2', agent=False)),
        raw(never_queued),
        b'[1]',
      ],
      1,
    )
  ]
  counters = run_offered_calls(
    ConnectOfferedCalls(DEDUPE_TTL, 'name'),
    drain(TestStream().add_elements(lines)),
    options,
    'amazon_connect',
    [
      # The first arrival's record.
      OfferedCall('ct-1', 'Billing', BASE_MS + 42_000, ANSWERED, 12, raw=raw(first).decode()),
      OfferedCall('ct-2', 'Billing', BASE_MS + 42_000, ABANDONED, 12, raw=lines[3].raw.decode()),
    ],
    [('f:6', 'not_a_json_object')],
  )
  assert counters == {
    'queued_contacts': 4,
    'never_queued': 1,
    'duplicates': 2,
    'dead_letters': 1,
    'dead_letter_not_a_json_object': 1,
    'dedupe_shards_expired': 2,
  }


def test_connect_queue_key_is_checked_when_the_graph_is_built():
  with pytest.raises(ValueError, match='queue key'):
    ConnectOfferedCalls(DEDUPE_TTL, 'id')


# --- ISO-8601 -----------------------------------------------------------------


@pytest.mark.parametrize(
  'text, ms',
  [
    ('2026-11-02T08:00:00Z', BASE_MS),
    ('2026-11-02T08:00:00.5Z', BASE_MS + 500),
    ('2026-11-02T08:00:00.123456789Z', BASE_MS + 123),
    ('2026-11-02T09:30:00+01:30', BASE_MS),
    ('2026-11-02T03:00:00-05:00', BASE_MS),
    ('2026-11-02T07:59:59.999+00:00', BASE_MS - 1),
    ('2028-02-29T00:00:00Z', 1835395200000),
    ('2100-01-01T00:30:00+01:00', 4102443000000),  # 2099-12-31T23:30Z
  ],
)
def test_iso_times(text, ms):
  # Far-future dates parse; the future-skew rule is tested apart.
  no_skew_limit = FieldRules(max_future_skew=Duration(seconds=10**10))
  assert fields.iso_time_ms(text, 't', no_skew_limit) == ms


@pytest.mark.parametrize(
  'text, reason',
  [
    ('2026-11-02T08:00:00', 'malformed_timestamp'),  # no offset
    ('2026-11-02 08:00:00Z', 'malformed_timestamp'),
    ('2026-11-02t08:00:00z', 'malformed_timestamp'),
    ('2026-11-02T08:00Z', 'malformed_timestamp'),
    ('2026-02-30T08:00:00Z', 'malformed_timestamp'),
    ('2026-11-02T24:00:00Z', 'malformed_timestamp'),
    ('2026-12-31T23:59:60Z', 'malformed_timestamp'),  # leap second
    ('2026-11-02T08:00:00+24:00', 'malformed_timestamp'),
    ('2026-11-02T08:00:00+01:60', 'malformed_timestamp'),
    ('2026-11-02T08:00:00.1234567890Z', 'malformed_timestamp'),
    ('0000-01-01T00:00:00Z', 'malformed_timestamp'),
    ('2026-11-02T08:00:00Z' + ' ' * 20, 'malformed_timestamp'),
    ('１９７０-01-01T00:00:00Z', 'malformed_timestamp'),  # non-ASCII digits
    ('1999-12-31T23:59:59Z', 'absurd_timestamp'),
    ('2100-01-01T00:00:00Z', 'absurd_timestamp'),
    ('2100-01-01T00:30:00-01:00', 'absurd_timestamp'),
  ],
)
def test_bad_iso_times(text, reason):
  with pytest.raises(parsing.InvalidRecord) as error:
    fields.iso_time_ms(text, 't')
  assert error.value.reason == reason


@pytest.mark.parametrize(
  'value, reason',
  [
    (None, 'missing_field'),
    (1793606400000, 'wrong_type'),
    (['2026-11-02T08:00:00Z'], 'wrong_type'),
  ],
)
def test_required_iso_field_types(value, reason):
  with pytest.raises(parsing.InvalidRecord) as error:
    fields.required_iso_time_ms({'t': value}, 't')
  assert error.value.reason == reason
  if value is None:
    assert fields.optional_iso_time_ms({'t': value}, 't') is None


def test_objects():
  assert fields.optional_object({}, 'x') is None
  assert fields.required_object({'x': {'a': 1}}, 'x') == {'a': 1}
  for value, reason in ((None, 'missing_field'), ([], 'wrong_type'), ('{}', 'wrong_type')):
    with pytest.raises(parsing.InvalidRecord) as error:
      fields.required_object({'x': value}, 'x')
    assert error.value.reason == reason
