"""ParseCallEvents: every bad record becomes a dead letter with its reason."""
import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from scripts.generate_events import MALFORMED_KINDS, OVERSIZED_KIND, malformed_line
from transforms import parsing
from transforms.call_events import ParseCallEvents, parse_call_event
from transforms.records import SourceRecord

GOOD = {
    'call_uuid': '550e8400-e29b-41d4-a716-446655440000',
    'event_type': 'CALL_ENDED',
    'timestamp': 1793606400000,
    'queue_id': 'Q-101',
    'abandoned': True,
    'wait_time_seconds': 120,
    'agent_id': None,
}

EXPECTED_REASON = {
    'not_json': 'malformed_json',
    'truncated_json': 'malformed_json',
    'json_array': 'not_a_json_object',
    'json_string': 'not_a_json_object',
    'missing_call_uuid': 'missing_field',
    'missing_timestamp': 'missing_field',
    'timestamp_as_string': 'wrong_type',
    'timestamp_1970': 'absurd_timestamp',
    'timestamp_2300': 'absurd_timestamp',
    'negative_wait': 'negative_value',
    'abandoned_as_string': 'wrong_type',
    'empty_queue_id': 'empty_field',
    'empty_line': 'empty_record',
    'invalid_utf8': 'invalid_utf8',
    OVERSIZED_KIND: 'oversized_record',
}


def test_every_generated_malformed_kind_has_an_expected_reason():
  assert set(MALFORMED_KINDS) | {OVERSIZED_KIND} == set(EXPECTED_REASON)


@pytest.mark.parametrize('kind', sorted(EXPECTED_REASON))
def test_malformed_record_is_rejected_with_its_reason(kind):
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_call_event(malformed_line(kind, GOOD))
  assert error.value.reason == EXPECTED_REASON[kind]


@pytest.mark.parametrize(
    'field, value, reason',
    [
        ('wait_time_seconds', float('inf'), 'not_finite'),
        ('wait_time_seconds', True, 'wrong_type'),
        ('timestamp', True, 'wrong_type'),
        ('timestamp', 1793606400000.5, 'wrong_type'),
        ('agent_id', 42, 'wrong_type'),
        ('event_type', None, 'missing_field'),
        ('queue_id', '   ', 'empty_field'),
    ])
def test_mistyped_fields(field, value, reason):
  event = dict(GOOD, **{field: value})
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_call_event(json.dumps(event).encode())
  assert error.value.reason == reason


def test_valid_event_with_integral_float_timestamp_and_missing_agent():
  event = dict(GOOD, timestamp=1793606400000.0)
  del event['agent_id']
  parsed = parse_call_event(json.dumps(event).encode())
  assert parsed.timestamp == 1793606400000 and parsed.agent_id is None


def test_dead_letter_raw_is_truncated_and_decodable():
  raw = b'\xff' + b'x' * (2 * parsing.MAX_DEAD_LETTER_RAW_CHARS)
  letter = parsing.dead_letter(
      SourceRecord('cc-call-logs', 'f:1', raw),
      parsing.InvalidRecord('invalid_utf8', 'bad byte'))
  assert letter.raw_size == len(raw)
  assert letter.raw.startswith('\\xff')
  assert len(letter.raw) <= parsing.MAX_DEAD_LETTER_RAW_CHARS + 3


def test_parse_routes_events_dead_letters_and_skips_other_types(options):
  good = json.dumps(GOOD).encode()
  started = json.dumps(dict(GOOD, event_type='CALL_STARTED')).encode()
  records = [
      SourceRecord('cc-call-logs', 'f:1', good),
      SourceRecord('cc-call-logs', 'f:2', started),
      SourceRecord('cc-call-logs', 'f:3', b'{"call_uuid": '),
  ]
  with beam.Pipeline(options=options) as p:
    parsed = (
        p | TestStream().add_elements(records).advance_watermark_to_infinity()
        | ParseCallEvents())
    assert_that(
        parsed.events | 'Ids' >> beam.Map(lambda e: (e.call_uuid, e.timestamp)),
        equal_to([(GOOD['call_uuid'], GOOD['timestamp'])]),
        label='events')
    assert_that(
        parsed.dead_letters
        | 'Reasons' >> beam.Map(lambda d: (d.origin, d.reason)),
        equal_to([('f:3', 'malformed_json')]),
        label='dead_letters')
