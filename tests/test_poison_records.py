"""Total parsers: whatever bytes arrive, a parser returns a record or raises
InvalidRecord with a specific reason, and an accepted record is safe for
every later step (UTF-8 encodable, bounded ids, finite bounded numbers, an
event time not in the future)."""

import json
import math
import time

import pytest
from apache_beam.utils.timestamp import Duration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from options.config import DEFAULT_FIELD_RULES, FieldRules
from tests.support.poison import (
  CALL,
  INTERACTION,
  NOW_MS,
  POISON_CALLS,
  POISON_DATA_ACTIONS,
  PROFILE,
  with_fields,
  with_raw_field,
)
from transforms import parsing
from transforms.call_events import parse_call_event
from transforms.data_actions import parse_data_action
from transforms.records import CustomerProfile


@pytest.mark.parametrize('raw, reason', POISON_CALLS)
def test_poison_call_event_is_rejected_with_its_reason(raw, reason):
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_call_event(raw)
  assert error.value.reason == reason


@pytest.mark.parametrize('raw, reason', POISON_DATA_ACTIONS)
def test_poison_data_action_is_rejected_with_its_reason(raw, reason):
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_data_action(raw)
  assert error.value.reason == reason


@pytest.mark.parametrize(
  'text, reason, detail',
  [
    ('{"a":[1,{"b":[%s]}]}' % ('9' * 21), 'number_out_of_range', 'an integer of 21 digits'),
    ('{"a":-%s}' % ('9' * 21), 'number_out_of_range', 'an integer of 22 digits'),
    ('{"a":[%s,1e400]}' % ('1' * 30), 'number_out_of_range', 'an integer of 30 digits'),
    ('{"a":%s,"b":}' % ('1' * 30), 'number_out_of_range', 'an integer of 30 digits'),
    ('{"a":%s}' % ('1' * 5000), 'number_out_of_range', 'an integer of 5000 digits'),
    ('%s' % ('1' * 25), 'number_out_of_range', 'an integer of 25 digits'),
    ('{"a":1e400,"b":%s}' % ('1' * 30), 'number_out_of_range', '1e400 does not fit a double'),
    ('{"a":"%s","b":' % ('1' * 30), 'malformed_json', None),
  ],
)
def test_the_first_problem_of_a_record_is_its_reason(text, reason, detail):
  # Integers are checked after decoding, other checks while decoding: the
  # reason is still the first problem in the text.
  with pytest.raises(parsing.InvalidRecord) as error:
    parsing.decode_json_object(text.encode())
  assert error.value.reason == reason
  if detail is not None:
    assert error.value.detail == detail


def test_integers_of_up_to_twenty_digits_are_accepted_anywhere():
  text = '{"a":[%s,{"b":-%s}],"c":"%s"}' % ('9' * 20, '9' * 20, '9' * 40)
  assert parsing.decode_json_object(text.encode()) == {
    'a': [int('9' * 20), {'b': -int('9' * 20)}],
    'c': '9' * 40,
  }


def test_a_byte_order_mark_before_a_record_is_ignored():
  assert parse_call_event(b'\xef\xbb\xbf' + with_fields(CALL)).call_uuid == 'c-1'
  assert parse_data_action(b'\xef\xbb\xbf' + with_fields(INTERACTION)).channel == ('voice')


def test_a_surrogate_pair_is_valid_unicode():
  event = parse_call_event(with_raw_field(CALL, 'queue_id', '"Q-\\ud83d\\ude00"'))
  assert event.queue_id == 'Q-\U0001f600'


def test_brackets_inside_strings_do_not_count_as_nesting():
  event = parse_call_event(with_fields(CALL, agent_id='[{' * 100))
  assert event.agent_id == '[{' * 100


def test_field_rules_are_configurable():
  rules = FieldRules(max_id_length=10, max_wait_seconds=60, max_future_skew=Duration(0))
  for raw, reason in [
    (with_fields(CALL, queue_id='Q-12345678'), None),
    (with_fields(CALL, queue_id='Q-123456789'), 'field_too_long'),
    (with_fields(CALL, wait_time_seconds=61), 'value_out_of_range'),
    (with_fields(CALL, timestamp=int(time.time() * 1000) + 3_600_000), 'future_timestamp'),
  ]:
    if reason is None:
      assert parse_call_event(raw, rules).queue_id == 'Q-12345678'
      continue
    with pytest.raises(parsing.InvalidRecord) as error:
      parse_call_event(raw, rules)
    assert error.value.reason == reason


def test_field_rules_refuse_nonsense_limits():
  with pytest.raises(ValueError, match='max_id_length'):
    FieldRules(max_id_length=0)
  with pytest.raises(ValueError, match='max_wait_seconds'):
    FieldRules(max_wait_seconds=float('inf'))


def test_any_exception_becomes_a_parser_error_dead_letter():
  record = parsing.SourceRecord('cc-call-logs', 'f:1', b'{}')
  letter = parsing.dead_letter_output(record, KeyError('x'), 'test').value
  assert (letter.reason, letter.detail) == (parsing.PARSER_ERROR, 'KeyError')


def _assert_safe(record) -> None:
  """What every step after a parser relies on."""
  for value in record:
    if isinstance(value, str):
      value.encode('utf-8')  # a lone surrogate raises here
      assert len(value) <= DEFAULT_FIELD_RULES.max_id_length
      assert not parsing._CONTROL_CHARACTER.search(value)  # pylint: disable=protected-access
    elif isinstance(value, float):
      assert math.isfinite(value)
  json.dumps(record._asdict(), allow_nan=False)
  assert record.timestamp <= int(time.time() * 1000) + (
    DEFAULT_FIELD_RULES.max_future_skew.micros // 1000
  )


def _parses_totally(parse, raw: bytes):
  try:
    record = parse(raw)
  except parsing.InvalidRecord as error:
    assert error.reason and isinstance(error.detail, str)
    return None
  _assert_safe(record)
  return record


PROPERTY_SETTINGS = settings(
  max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(st.binary(max_size=2000))
def test_call_parser_is_total_over_arbitrary_bytes(raw):
  _parses_totally(parse_call_event, raw)


@PROPERTY_SETTINGS
@given(st.binary(max_size=2000))
def test_data_action_parser_is_total_over_arbitrary_bytes(raw):
  _parses_totally(parse_data_action, raw)


JSON_SCALARS = (
  st.none()
  | st.booleans()
  | st.integers()
  | st.floats(allow_nan=False, allow_infinity=False)
  | st.text(max_size=300)
  | st.integers(min_value=parsing.MIN_EVENT_TIME_MS, max_value=NOW_MS)
)
JSON_VALUES = st.recursive(
  JSON_SCALARS,
  lambda children: (
    st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
  ),
  max_leaves=20,
)
# Raw JSON texts no encoder writes but a producer can: escapes, huge and
# special numbers, deep nesting.
RAW_JSON_VALUES = st.sampled_from(
  [
    '"\\ud800"',
    '"\\udfff x"',
    '"\\ud83d\\ude00"',
    '"a\\u0000"',
    '1' * 500,
    '1e400',
    '-1e400',
    'NaN',
    'Infinity',
    '[' * 3000 + ']' * 3000,
    '1e308',
    '"\\u2029"',
    '-0',
    '0.0000000000000000000001',
  ]
)


def _records(base):
  field = st.sampled_from(sorted(base))
  return st.one_of(
    st.builds(lambda f, v: with_fields(base, **{f: v}), field, JSON_VALUES),
    st.builds(lambda f, v: with_raw_field(base, f, v), field, RAW_JSON_VALUES),
    st.builds(
      lambda d: json.dumps(dict(base, **d)).encode(),
      st.dictionaries(field, JSON_VALUES, max_size=len(base)),
    ),
  )


@PROPERTY_SETTINGS
@given(_records(CALL))
def test_call_parser_is_total_over_arbitrary_json_in_every_field(raw):
  _parses_totally(parse_call_event, raw)


@PROPERTY_SETTINGS
@given(st.one_of(_records(INTERACTION), _records(PROFILE)))
def test_data_action_parser_is_total_over_arbitrary_json_in_every_field(raw):
  record = _parses_totally(parse_data_action, raw)
  if isinstance(record, CustomerProfile):
    assert record.tier and record.region
