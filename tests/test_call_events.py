"""ParseCallEvents: every bad record becomes a dead letter with its reason."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from testing.datagen.calls import MALFORMED_KINDS, OVERSIZED_KIND, malformed_line
from tests.support.beam_metrics import committed_counters
from transforms import parsing
from transforms.call_events import ParseCallEvents, call_event_time_ms, parse_call_event
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
    ('wait_time_seconds', float('inf'), 'malformed_json'),  # Infinity
    ('wait_time_seconds', 1e308, 'value_out_of_range'),
    ('wait_time_seconds', 86400.5, 'value_out_of_range'),
    ('wait_time_seconds', True, 'wrong_type'),
    ('timestamp', True, 'wrong_type'),
    ('timestamp', 1793606400000.5, 'wrong_type'),
    ('agent_id', 42, 'wrong_type'),
    ('event_type', None, 'missing_field'),
    ('queue_id', '   ', 'empty_field'),
  ],
)
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
    SourceRecord('cc-call-logs', 'f:1', raw), parsing.InvalidRecord('invalid_utf8', 'bad byte')
  )
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
      p | TestStream().add_elements(records).advance_watermark_to_infinity() | ParseCallEvents()
    )
    assert_that(
      parsed.events | 'Ids' >> beam.Map(lambda e: (e.call_id, e.timestamp)),
      equal_to([(GOOD['call_uuid'], GOOD['timestamp'])]),
      label='events',
    )
    assert_that(
      parsed.dead_letters | 'Reasons' >> beam.Map(lambda d: (d.origin, d.reason)),
      equal_to([('f:3', 'malformed_json')]),
      label='dead_letters',
    )


def test_parse_counts_every_record_across_bundles(options):
  good = json.dumps(GOOD).encode()
  started = json.dumps(dict(GOOD, event_type='CALL_STARTED')).encode()
  stream = TestStream()
  # Each add_elements is a bundle of its own: per-bundle tallies must add up.
  for n, raw in enumerate([good, started, good, b'[', good, started]):
    stream = stream.add_elements([SourceRecord('cc-call-logs', f'f:{n}', raw)])
  p = beam.Pipeline(options=options)
  _ = p | stream.advance_watermark_to_infinity() | ParseCallEvents()
  result = p.run()
  result.wait_until_finish()
  assert committed_counters(result, 'call_events') == {
    'parsed': 3,
    'other_event_types': 2,
    'dead_letters': 1,
    'dead_letter_malformed_json': 1,
  }


BASE_MS = GOOD['timestamp']
VALID = json.dumps(GOOD)


def _tricky_records():
  """Records on which reading the event time off the bytes could go wrong."""
  base = dict(GOOD)
  yield VALID.encode()
  for ts in (
    0,
    5,
    BASE_MS - 1,
    BASE_MS,
    BASE_MS + 1,
    float(BASE_MS + 1),
    BASE_MS + 0.5,
    -1,
    'x',
    None,
    True,
    10**20,
  ):
    yield json.dumps({**base, 'timestamp': ts}).encode()
  late, early = BASE_MS + 60_000, BASE_MS - 60_000
  for text in (
    # Nested only: the record has no event time.
    json.dumps(
      {**{k: v for k, v in base.items() if k != 'timestamp'}, 'meta': {'timestamp': early}}
    ),
    # Nested before the top-level one.
    json.dumps({**base, 'meta': {'timestamp': early}, 'timestamp': late}),
    # The top-level key spelled with an escape, a nested plain one.
    json.dumps({**base, 'meta': {'timestamp': early}}).replace(
      '"timestamp"', '"\\u0074imestamp"', 1
    ),
    # Duplicate keys: JSON keeps the last.
    VALID.replace('{', f'{{"timestamp": {early}, ', 1).replace(
      f'"timestamp": {BASE_MS}', f'"timestamp": {late}'
    ),
    # "timestamp" as a value; leading zeros (invalid JSON); whitespace;
    # an exponent.
    json.dumps({**base, 'queue_id': 'timestamp'}),
    VALID.replace(f'{BASE_MS}', f'0{BASE_MS}'),
    VALID.replace(f'"timestamp": {BASE_MS}', f'"timestamp" :\t{BASE_MS} '),
    VALID.replace(f'"timestamp": {BASE_MS}', f'"timestamp": {BASE_MS}e0'),
  ):
    yield text.encode()
  for kind in MALFORMED_KINDS:
    yield malformed_line(kind, base)


@pytest.mark.parametrize(
  'above_ms', [None, 0, BASE_MS - 60_001, BASE_MS - 1, BASE_MS, BASE_MS + 59_999, 2**62]
)
def test_event_time_above_a_floor_is_what_parsing_gives(above_ms):
  # The replay reads event times off the raw bytes where that is safe; the
  # answer must be the parser's, record by record.
  for raw in _tricky_records():
    parsed = call_event_time_ms(raw)
    expected = parsed if parsed is not None and (above_ms is None or parsed > above_ms) else None
    assert call_event_time_ms(raw, above_ms) == expected, raw
