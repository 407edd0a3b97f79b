"""transforms/parsing.py on its own: the shared validation every parser is
built from. Each helper either returns the checked value or raises
InvalidRecord with a stable reason; dead letters are bounded and always
decodable; `dead_letter_output` counts per reason; `event_time_or_none`
gives what parsing gives, also on its fast path. The parsers of the flows
are tested in tests/test_poison_records.py and their own modules."""

import json
from typing import Any, List, NamedTuple

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.utils.timestamp import Duration

from options.config import FieldRules
from tests.support.beam_metrics import committed_counters
from transforms import parsing
from transforms.parsing import InvalidRecord
from transforms.records import SourceRecord

NOW_MS = 1793606400000  # 2026-11-02T08:00:00Z, the clock of these tests


def reason_of(call, *args, **kwargs) -> str:
  with pytest.raises(InvalidRecord) as error:
    call(*args, **kwargs)
  assert isinstance(error.value.detail, str) and error.value.detail
  return error.value.reason


# -- decode_json_object ---------------------------------------------------------


def test_a_json_object_decodes():
  raw = json.dumps({'a': 1, 'b': [1.5, 'x', None, True], 'c': {'d': -2}}).encode()
  assert parsing.decode_json_object(raw) == {'a': 1, 'b': [1.5, 'x', None, True], 'c': {'d': -2}}


def test_surrounding_whitespace_and_a_byte_order_mark_are_fine():
  assert parsing.decode_json_object(b'\xef\xbb\xbf  {"a": 1}\n') == {'a': 1}


@pytest.mark.parametrize(
  'raw, reason',
  [
    (b'', 'empty_record'),
    (b'  \n', 'empty_record'),
    (b'\xef\xbb\xbf', 'empty_record'),
    (b'{"a": 1', 'malformed_json'),
    (b'{"a": 1} {"b": 2}', 'malformed_json'),
    (b'{"a": NaN}', 'malformed_json'),
    (b'{"a": Infinity}', 'malformed_json'),
    (b'[1, 2]', 'not_a_json_object'),
    (b'"text"', 'not_a_json_object'),
    (b'42', 'not_a_json_object'),
    (b'null', 'not_a_json_object'),
    (b'{"a": "\xff"}', 'invalid_utf8'),
    (b'{"a": "\\ud800"}', 'invalid_unicode'),
    (b'{"\\udc00": 1}', 'invalid_unicode'),
    (b'{"a": 1e400}', 'number_out_of_range'),
    (b'{"a": %s}' % (b'1' * 21), 'number_out_of_range'),
    (b'{"a":' * 33 + b'1' + b'}' * 33, 'too_deeply_nested'),
    (b'{"a": "' + b'x' * parsing.MAX_RECORD_BYTES + b'"}', 'oversized_record'),
  ],
)
def test_a_bad_record_is_rejected_with_its_reason(raw, reason):
  assert reason_of(parsing.decode_json_object, raw) == reason


def test_nesting_up_to_the_limit_is_accepted():
  depth = parsing.MAX_JSON_DEPTH
  raw = b'{"a":' * depth + b'1' + b'}' * depth
  value = parsing.decode_json_object(raw)
  for _ in range(depth - 1):
    value = value['a']
  assert value == {'a': 1}


def test_a_record_of_exactly_the_size_limit_is_accepted():
  filler = parsing.MAX_RECORD_BYTES - len(b'{"a":""}')
  raw = b'{"a":"' + b'x' * filler + b'"}'
  assert len(raw) == parsing.MAX_RECORD_BYTES
  assert len(parsing.decode_json_object(raw)['a']) == filler


# -- typed fields -------------------------------------------------------------------


def test_required_str_returns_the_text():
  assert parsing.required_str({'q': 'Q-1'}, 'q') == 'Q-1'
  assert parsing.required_str({'q': 'Zürich €'}, 'q') == 'Zürich €'


@pytest.mark.parametrize(
  'obj, reason',
  [
    ({}, 'missing_field'),
    ({'q': None}, 'missing_field'),
    ({'q': 7}, 'wrong_type'),
    ({'q': ['Q']}, 'wrong_type'),
    ({'q': ''}, 'empty_field'),
    ({'q': '   '}, 'empty_field'),
    ({'q': 'a\nb'}, 'control_character'),
    ({'q': 'a\x7fb'}, 'control_character'),
    ({'q': 'a\u0085b'}, 'control_character'),
    ({'q': 'a\u2028b'}, 'control_character'),
    ({'q': 'x' * 257}, 'field_too_long'),
  ],
)
def test_required_str_rejects(obj, reason):
  assert reason_of(parsing.required_str, obj, 'q') == reason


def test_the_id_length_is_a_rule():
  rules = FieldRules(max_id_length=3)
  assert parsing.required_str({'q': 'abc'}, 'q', rules) == 'abc'
  assert reason_of(parsing.required_str, {'q': 'abcd'}, 'q', rules) == 'field_too_long'
  assert reason_of(parsing.optional_str, {'q': 'abcd'}, 'q', rules) == 'field_too_long'


@pytest.mark.parametrize('obj', [{}, {'q': None}, {'q': ''}, {'q': '  '}])
def test_optional_str_reads_absent_null_and_blank_as_none(obj):
  assert parsing.optional_str(obj, 'q') is None


def test_optional_str_checks_a_present_value():
  assert parsing.optional_str({'q': 'A-7'}, 'q') == 'A-7'
  assert reason_of(parsing.optional_str, {'q': 3}, 'q') == 'wrong_type'
  assert reason_of(parsing.optional_str, {'q': 'a\tb'}, 'q') == 'control_character'


def test_required_bool():
  assert parsing.required_bool({'b': False}, 'b') is False
  assert parsing.required_bool({'b': True}, 'b') is True
  assert reason_of(parsing.required_bool, {}, 'b') == 'missing_field'
  for value in (0, 1, 'true', None):
    expected = 'missing_field' if value is None else 'wrong_type'
    assert reason_of(parsing.required_bool, {'b': value}, 'b') == expected


def test_required_non_negative_number():
  assert parsing.required_non_negative_number({'n': 0}, 'n') == 0
  assert parsing.required_non_negative_number({'n': 12.5}, 'n') == 12.5
  assert parsing.required_non_negative_number({'n': 60}, 'n', maximum=60) == 60
  assert reason_of(parsing.required_non_negative_number, {'n': 60.5}, 'n', 60) == (
    'value_out_of_range'
  )
  assert reason_of(parsing.required_non_negative_number, {'n': -0.1}, 'n') == 'negative_value'
  assert reason_of(parsing.required_non_negative_number, {'n': True}, 'n') == 'wrong_type'
  assert reason_of(parsing.required_non_negative_number, {'n': '5'}, 'n') == 'wrong_type'
  assert reason_of(parsing.required_non_negative_number, {}, 'n') == 'missing_field'


# -- event time ----------------------------------------------------------------------------


def test_an_event_time_in_bounds_is_returned():
  assert parsing.required_event_time_ms({'timestamp': NOW_MS}, now_ms=NOW_MS) == NOW_MS
  # A whole float is an integer; another field name can be asked.
  assert parsing.required_event_time_ms({'t': float(NOW_MS)}, 't', now_ms=NOW_MS) == NOW_MS
  assert (
    parsing.required_event_time_ms({'timestamp': parsing.MIN_EVENT_TIME_MS}, now_ms=NOW_MS)
    == parsing.MIN_EVENT_TIME_MS
  )


@pytest.mark.parametrize(
  'value, reason',
  [
    (None, 'missing_field'),
    ('1793606400000', 'wrong_type'),
    (True, 'wrong_type'),
    (NOW_MS + 0.5, 'wrong_type'),
    (parsing.MIN_EVENT_TIME_MS - 1, 'absurd_timestamp'),
    (NOW_MS // 1000, 'absurd_timestamp'),  # seconds, not ms
    (parsing.MAX_EVENT_TIME_MS, 'absurd_timestamp'),
  ],
)
def test_an_implausible_event_time_is_rejected(value, reason):
  assert reason_of(parsing.required_event_time_ms, {'timestamp': value}, now_ms=NOW_MS) == reason


def test_the_future_skew_is_measured_from_the_clock():
  rules = FieldRules(max_future_skew=Duration(seconds=300))
  at_limit = {'timestamp': NOW_MS + 300_000}
  past_limit = {'timestamp': NOW_MS + 300_001}
  assert parsing.required_event_time_ms(at_limit, rules=rules, now_ms=NOW_MS) == NOW_MS + 300_000
  assert reason_of(parsing.required_event_time_ms, past_limit, rules=rules, now_ms=NOW_MS) == (
    'future_timestamp'
  )
  # The same record is fine once the clock has moved on.
  assert parsing.required_event_time_ms(past_limit, rules=rules, now_ms=NOW_MS + 1) == (
    NOW_MS + 300_001
  )


# -- dead letters -----------------------------------------------------------------------------


def test_as_invalid_record_keeps_invalid_records_and_names_other_errors():
  error = InvalidRecord('missing_field', 'x')
  assert parsing.as_invalid_record(error) is error
  wrapped = parsing.as_invalid_record(ValueError('the record said: secret'))
  assert (wrapped.reason, wrapped.detail) == (parsing.PARSER_ERROR, 'ValueError')


def test_a_dead_letter_describes_the_record():
  record = SourceRecord('cc-call-logs', 'calls.jsonl:7', b'{"a": 1')
  letter = parsing.dead_letter(record, InvalidRecord('malformed_json', 'Expecting ","'))
  assert letter.source == 'cc-call-logs'
  assert letter.origin == 'calls.jsonl:7'
  assert (letter.reason, letter.detail) == ('malformed_json', 'Expecting ","')
  assert (letter.raw, letter.raw_size) == ('{"a": 1', 7)
  assert letter.received_at > parsing.MIN_EVENT_TIME_MS


def test_a_dead_letter_of_a_huge_undecodable_record_is_bounded_and_decodable():
  raw = b'\xff\xfe' + b'x' * (5 * parsing.MAX_DEAD_LETTER_RAW_CHARS)
  letter = parsing.dead_letter(
    SourceRecord('s', 'o', raw), InvalidRecord('invalid_utf8', 'd' * 900)
  )
  assert letter.raw_size == len(raw)
  assert letter.raw.startswith('\\xff\\xfe')
  assert len(letter.raw) <= parsing.MAX_DEAD_LETTER_RAW_CHARS + 6
  assert len(letter.detail) <= 500
  letter.raw.encode('utf-8')
  json.dumps(letter._asdict())


class Parsed(NamedTuple):
  name: str
  timestamp: int


def parse_test_record(raw: bytes) -> Parsed:
  obj = parsing.decode_json_object(raw)
  return Parsed(parsing.required_str(obj, 'name'), parsing.required_event_time_ms(obj))


class _ParseOrDeadLetter(beam.DoFn):
  """A parser as every flow writes one, built on the helpers."""

  def process(self, record: SourceRecord):
    try:
      if record.raw == b'boom':
        raise KeyError('a bug, not bad data')
      yield parse_test_record(record.raw)
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, 'parsing_test')


_COLLECTED: List[Any] = []


def _collect(element, output):
  _COLLECTED.append((output, element))
  return ()


def test_dead_letter_output_tags_and_counts_every_rejection(options):
  good = json.dumps({'name': 'n', 'timestamp': NOW_MS}).encode()
  records = [
    SourceRecord('src', 'f:1', good),
    SourceRecord('src', 'f:2', b'{"name": '),
    SourceRecord('src', 'f:3', b'[1]'),
    SourceRecord('src', 'f:4', b'{"name": "x"}'),
    SourceRecord('src', 'f:5', b'boom'),
  ]
  stream = TestStream()
  for record in records:  # one bundle each: per-bundle counts must add up
    stream = stream.add_elements([record])
  _COLLECTED.clear()
  p = beam.Pipeline(options=options)
  out = (
    p
    | stream.advance_watermark_to_infinity()
    | beam.ParDo(_ParseOrDeadLetter()).with_outputs(parsing.DEAD_LETTERS, main='parsed')
  )
  _ = out.parsed | 'Parsed' >> beam.FlatMap(_collect, 'parsed')
  _ = (
    out[parsing.DEAD_LETTERS]
    | 'Dead' >> beam.Map(lambda d: (d.origin, d.reason))
    | ('KeepDead' >> beam.FlatMap(_collect, 'dead'))
  )
  result = p.run()
  result.wait_until_finish()
  collected = sorted(_COLLECTED)
  _COLLECTED.clear()
  assert collected == [
    ('dead', ('f:2', 'malformed_json')),
    ('dead', ('f:3', 'not_a_json_object')),
    ('dead', ('f:4', 'missing_field')),
    ('dead', ('f:5', parsing.PARSER_ERROR)),
    ('parsed', Parsed('n', NOW_MS)),
  ]
  assert committed_counters(result, 'parsing_test') == {
    'dead_letters': 4,
    'dead_letter_malformed_json': 1,
    'dead_letter_not_a_json_object': 1,
    'dead_letter_missing_field': 1,
    f'dead_letter_{parsing.PARSER_ERROR}': 1,
  }


# -- event_time_or_none ----------------------------------------------------------------------


def _raw(**fields) -> bytes:
  return json.dumps(dict({'name': 'n', 'timestamp': NOW_MS - 5000}, **fields)).encode()


def test_event_time_or_none_is_the_parsed_event_time():
  assert parsing.event_time_or_none(parse_test_record, _raw()) == NOW_MS - 5000


def test_event_time_or_none_is_none_for_an_invalid_record():
  assert parsing.event_time_or_none(parse_test_record, b'{"name": ') is None
  assert parsing.event_time_or_none(parse_test_record, _raw(name='')) is None


@pytest.mark.parametrize(
  'raw',
  [
    _raw(),
    _raw(timestamp=NOW_MS - 1),
    _raw(timestamp=NOW_MS),
    _raw(timestamp=NOW_MS + 1),
    _raw(timestamp=NOW_MS + 1, name=''),  # invalid: never advances
    _raw(timestamp=NOW_MS - 1, name=''),
    b'{"timestamp": %d, "name": "n"}' % (NOW_MS + 9),
    b'{"timestamp":%d}' % (NOW_MS - 9),  # no name: invalid
    # Nested "timestamp" keys: the top level decides.
    b'{"name": "n", "x": {"timestamp": %d}, "timestamp": %d}' % (NOW_MS - 9, NOW_MS + 9),
    b'{"name": "n", "x": {"timestamp": %d}}' % (NOW_MS + 9),
    # An escape can hide or spell a key.
    b'{"name": "n\\"", "timestamp": %d}' % (NOW_MS + 9),
    b'{"name": "n", "time\\u0073tamp": %d}' % (NOW_MS + 9),
    b'{"name": "n", "timestamp": %d.0}' % (NOW_MS + 9),
    b'{"name": "n", "timestamp": "%d"}' % (NOW_MS + 9),
  ],
)
def test_event_time_or_none_above_a_bound_agrees_with_parsing(raw):
  """With `above_ms`, the answer is the parse's event time if above the
  bound, else None, whether or not the fast path skipped the parse."""
  try:
    parsed = parse_test_record(raw).timestamp
  except InvalidRecord:
    parsed = None
  for above_ms in (NOW_MS - 10, NOW_MS, NOW_MS + 10):
    expected = parsed if parsed is not None and parsed > above_ms else None
    assert parsing.event_time_or_none(parse_test_record, raw, above_ms) == expected, above_ms
