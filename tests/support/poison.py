"""Records from careless or hostile producers, each with the dead-letter
reason the parsers give it: shared by the parser tests, the local job test
and the Flink test."""

import json
import time

NOW_MS = int(time.time() * 1000)
CALL = {
  'call_uuid': 'c-1',
  'event_type': 'CALL_ENDED',
  'timestamp': NOW_MS,
  'queue_id': 'Q-1',
  'abandoned': False,
  'wait_time_seconds': 12.5,
  'agent_id': 'A-7',
}
INTERACTION = {
  'interactionId': 'i-1',
  'customerId': 'C-1',
  'channel': 'voice',
  'status': 'FAILED',
  'timestamp': NOW_MS,
}
PROFILE = {
  'recordType': 'customer_update',
  'customerId': 'C-1',
  'tier': 'gold',
  'region': 'EMEA',
  'timestamp': NOW_MS,
}
DAY_MS = 86400 * 1000


def with_fields(base, **fields) -> bytes:
  return json.dumps(dict(base, **fields)).encode()


def with_raw_field(base, field, raw_value: str) -> bytes:
  """`base` with `field` spelled as raw JSON text (escapes, huge numbers)."""
  text = json.dumps(dict(base, **{field: '@@'}))
  return text.replace('"@@"', raw_value).encode()


# Each record alone once stopped the job or corrupted results.
POISON_CALLS = [
  (b'{"a":' * 5000 + b'1' + b'}' * 5000, 'too_deeply_nested'),
  (b'[' * 5000 + b']' * 5000, 'too_deeply_nested'),
  (with_raw_field(CALL, 'wait_time_seconds', '1' + '0' * 400), 'number_out_of_range'),
  (with_raw_field(CALL, 'queue_id', '"Q-\\ud800"'), 'invalid_unicode'),
  (with_raw_field(CALL, 'call_uuid', '"abc\\u0000def"'), 'control_character'),
  (with_raw_field(CALL, 'queue_id', '"Q\\u2028"'), 'control_character'),
  (with_fields(CALL, queue_id='Q' * 5000), 'field_too_long'),
  (with_fields(CALL, call_uuid='c' * 257), 'field_too_long'),
  (with_fields(CALL, timestamp=NOW_MS + 30 * DAY_MS), 'future_timestamp'),
  (with_fields(CALL, wait_time_seconds=1e308), 'value_out_of_range'),
  (with_raw_field(CALL, 'wait_time_seconds', '1e400'), 'number_out_of_range'),
  (with_raw_field(CALL, 'wait_time_seconds', 'NaN'), 'malformed_json'),
  (with_raw_field(CALL, 'wait_time_seconds', '-Infinity'), 'malformed_json'),
]
POISON_DATA_ACTIONS = [
  (with_raw_field(INTERACTION, 'customerId', '"C-\\udfff"'), 'invalid_unicode'),
  (with_raw_field(INTERACTION, 'channel', '"voice\\u0000"'), 'control_character'),
  (with_fields(INTERACTION, interactionId='i' * 5000), 'field_too_long'),
  (with_fields(INTERACTION, timestamp=NOW_MS + 30 * DAY_MS), 'future_timestamp'),
  (with_raw_field(PROFILE, 'tier', '"gold\\u001b[31m"'), 'control_character'),
  (with_fields(PROFILE, region='r' * 300), 'field_too_long'),
  (b'{"recordType":' * 100 + b'1' + b'}' * 100, 'too_deeply_nested'),
]
