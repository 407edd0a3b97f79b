"""Shared pieces of record validation: JSON decoding, typed field checks and
dead-letter construction.

Every flow's parser (`ParseCallEvents`, `ParseDataActions`) validates its own
schema with these helpers, so one bad record is described the same way
whichever topic it came from, and a DoFn never raises on bad data.
"""

import json
import logging
import math
import re
import time
from typing import Any, Callable, Dict, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from options.config import DEFAULT_FIELD_RULES, FieldRules, millis
from transforms.records import DeadLetter, SourceRecord

DEAD_LETTERS = 'dead_letters'
# The output of every call-event format's queue entries and exits
# (QueueTransition), the input of the live floor (transforms/queue_status.py).
QUEUE_TRANSITIONS = 'queue_transitions'

MAX_RECORD_BYTES = 1024 * 1024
# Dead letters keep enough of the raw record to diagnose it, never megabytes.
MAX_DEAD_LETTER_RAW_CHARS = 4096
# Event times outside [2000-01-01, 2100-01-01) are clock or unit errors
# (seconds instead of ms, zeroed clocks), not contact-center events.
MIN_EVENT_TIME_MS = 946684800000
MAX_EVENT_TIME_MS = 4102444800000
# No record of any source nests deeper than a few levels; Python's decoder
# recurses per level and a few KB of brackets exhaust its stack.
MAX_JSON_DEPTH = 32
# Integers longer than this cannot be an epoch-ms time, a count or a wait
# (int64 has 19 digits); decoding thousands of digits is quadratic and their
# float conversion overflows.
MAX_INTEGER_DIGITS = 20
UTF8_BOM = b'\xef\xbb\xbf'


class InvalidRecord(Exception):
  """A record failed validation; `reason` is a stable code for metrics."""

  def __init__(self, reason: str, detail: str):
    super().__init__(f'{reason}: {detail}')
    self.reason = reason
    self.detail = detail


def _bounded_int(text: str) -> int:
  if len(text.lstrip('-')) > MAX_INTEGER_DIGITS:
    raise InvalidRecord('number_out_of_range', f'an integer of {len(text)} digits')
  return int(text)


def _finite_float(text: str) -> float:
  value = float(text)
  if not math.isfinite(value):
    raise InvalidRecord('number_out_of_range', f'{text[:40]} does not fit a double')
  return value


def _no_constant(name: str):
  raise InvalidRecord('malformed_json', f'{name} is not a JSON value')


_DECODER = json.JSONDecoder(
  parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant
)
# The same checks but integers, which the C scanner then decodes itself (a
# Python call per integer doubled the decoding time): `_decode` looks at
# the integers afterwards and leaves any record this one rejects or that
# holds a long integer to _DECODER, so the outcome and the reason are
# _DECODER's.
_FAST_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)
_FAST_SCAN = _FAST_DECODER.scan_once
_INTEGER_LIMIT = 10**MAX_INTEGER_DIGITS
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r'[\[\]{}]')
# The only way a decoded string can hold a surrogate code point: a \uD800 to
# \uDFFF escape (raw UTF-8 cannot encode one). A pair is fine, a lone one is
# not a Unicode scalar value and fails any later encoding.
_SURROGATE_ESCAPE = re.compile(r'\\u[dD][89a-fA-F]')


def _check_depth(text: str) -> None:
  """Raises InvalidRecord if arrays/objects nest deeper than MAX_JSON_DEPTH,
  before the recursive decoder sees the text."""
  if text.count('{') + text.count('[') <= MAX_JSON_DEPTH:
    return
  depth = 0
  for bracket in _BRACKET.finditer(_STRING_LITERAL.sub('""', text)):
    if bracket.group() in '[{':
      depth += 1
      if depth > MAX_JSON_DEPTH:
        raise InvalidRecord('too_deeply_nested', f'more than {MAX_JSON_DEPTH} nested levels')
    else:
      depth -= 1


def _check_unicode(value: Any) -> None:
  """Raises InvalidRecord if a string anywhere in a decoded value holds a
  lone surrogate."""
  if isinstance(value, str):
    try:
      value.encode('utf-8')
    except UnicodeEncodeError:
      raise InvalidRecord('invalid_unicode', 'a string holds a lone surrogate escape') from None
  elif isinstance(value, dict):
    for key, item in value.items():
      _check_unicode(key)
      _check_unicode(item)
  elif isinstance(value, list):
    for item in value:
      _check_unicode(item)


def _has_long_integer(value: Any) -> bool:
  """True if a decoded value holds an integer of more than
  MAX_INTEGER_DIGITS digits."""
  kind = type(value)
  if kind is int:
    return not -_INTEGER_LIMIT < value < _INTEGER_LIMIT
  if kind is not dict and kind is not list:
    return False
  for item in value.values() if kind is dict else value:
    kind = type(item)
    if kind is int:
      if not -_INTEGER_LIMIT < item < _INTEGER_LIMIT:
        return True
    elif (kind is dict or kind is list) and _has_long_integer(item):
      return True
  return False


def _decode(text: str) -> Any:
  """_DECODER's result for a text of at most MAX_JSON_DEPTH levels, or its
  InvalidRecord."""
  try:
    # The scanner alone is decode() of a text without surrounding
    # whitespace; anything else goes the long way.
    value, end = _FAST_SCAN(text, 0)
    if end == len(text) and not _has_long_integer(value):
      return value
  except Exception:  # pylint: disable=broad-except
    pass  # _DECODER says why
  try:
    return _DECODER.decode(text)
  except ValueError as e:
    raise InvalidRecord('malformed_json', str(e)[:200]) from None


def decode_json_object(raw: bytes) -> Dict[str, Any]:
  """Decodes one raw record into a JSON object or raises InvalidRecord.

  Total by construction: the size, nesting depth, number range and Unicode
  checks leave the decoder nothing to raise but ValueError (malformed).
  """
  if raw.startswith(UTF8_BOM):
    raw = raw[len(UTF8_BOM) :]
  if len(raw) > MAX_RECORD_BYTES:
    raise InvalidRecord('oversized_record', f'{len(raw)} bytes > {MAX_RECORD_BYTES}')
  try:
    text = raw.decode('utf-8')
  except UnicodeDecodeError as e:
    raise InvalidRecord('invalid_utf8', str(e)) from None
  if not text or text.isspace():
    raise InvalidRecord('empty_record', 'record is empty')
  _check_depth(text)
  value = _decode(text)
  if not isinstance(value, dict):
    raise InvalidRecord('not_a_json_object', f'top-level JSON is {type(value).__name__}')
  if _SURROGATE_ESCAPE.search(text):
    _check_unicode(value)
  return value


def _field(obj: Dict[str, Any], name: str) -> Any:
  if name not in obj or obj[name] is None:
    raise InvalidRecord('missing_field', f'"{name}" is missing or null')
  return obj[name]


# C0 and C1 controls, DEL, and the line/paragraph separators: none belongs in
# an id, and each breaks a log line, a CSV export or a sink key.
_CONTROL_CHARACTER = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029]')


def _checked_text(value: str, name: str, rules: FieldRules) -> str:
  if len(value) > rules.max_id_length:
    raise InvalidRecord(
      'field_too_long', f'"{name}" has {len(value)} characters > {rules.max_id_length}'
    )
  if not value or value.isspace():
    raise InvalidRecord('empty_field', f'"{name}" is empty')
  # Printable ASCII holds no control character: most ids are, and the two
  # checks are much cheaper than the search.
  if not (value.isascii() and value.isprintable()) and (_CONTROL_CHARACTER.search(value)):
    raise InvalidRecord('control_character', f'"{name}" contains a control character')
  return value


def required_str(obj: Dict[str, Any], name: str, rules: FieldRules = DEFAULT_FIELD_RULES) -> str:
  """A non-empty string field within the id rules (length, no controls)."""
  value = obj.get(name)
  if type(value) is not str:
    value = _field(obj, name)
    if not isinstance(value, str):
      raise InvalidRecord('wrong_type', f'"{name}" must be a string, got {type(value).__name__}')
  return _checked_text(value, name, rules)


def optional_str(
  obj: Dict[str, Any], name: str, rules: FieldRules = DEFAULT_FIELD_RULES
) -> Optional[str]:
  """Like required_str, but a missing, null or blank field is None (a
  producer's way of saying "none", e.g. no agent on an abandoned call)."""
  value = obj.get(name)
  if value is None:
    return None
  if not isinstance(value, str):
    raise InvalidRecord(
      'wrong_type', f'"{name}" must be a string or null, got {type(value).__name__}'
    )
  if not value.strip():
    return None
  return _checked_text(value, name, rules)


def required_bool(obj: Dict[str, Any], name: str) -> bool:
  value = _field(obj, name)
  if not isinstance(value, bool):
    raise InvalidRecord('wrong_type', f'"{name}" must be a boolean, got {type(value).__name__}')
  return value


def required_non_negative_number(
  obj: Dict[str, Any], name: str, maximum: Optional[float] = None
) -> float:
  """A finite number in [0, maximum]."""
  value = _field(obj, name)
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise InvalidRecord('wrong_type', f'"{name}" must be a number, got {type(value).__name__}')
  # Finite: decode_json_object rejects what does not fit a double.
  if value < 0:
    raise InvalidRecord('negative_value', f'"{name}" is {value}')
  if maximum is not None and value > maximum:
    raise InvalidRecord('value_out_of_range', f'"{name}" is {value:.6g} > {maximum:g}')
  return value


def required_event_time_ms(
  obj: Dict[str, Any],
  name: str = 'timestamp',
  rules: FieldRules = DEFAULT_FIELD_RULES,
  now_ms: Optional[int] = None,
) -> int:
  """An epoch-millisecond event time within plausible bounds and no later
  than the processing-time clock (`now_ms`, default: now) plus the allowed
  future skew."""
  value = obj.get(name)
  if type(value) is not int:
    value = _field(obj, name)
  if isinstance(value, float) and value.is_integer():
    value = int(value)
  if isinstance(value, bool) or not isinstance(value, int):
    raise InvalidRecord(
      'wrong_type', f'"{name}" must be epoch milliseconds (integer), got {type(value).__name__}'
    )
  if not MIN_EVENT_TIME_MS <= value < MAX_EVENT_TIME_MS:
    raise InvalidRecord(
      'absurd_timestamp',
      f'"{name}"={value} is outside [{MIN_EVENT_TIME_MS}, {MAX_EVENT_TIME_MS}) epoch ms',
    )
  if now_ms is None:
    now_ms = int(time.time() * 1000)
  max_skew_ms = millis(rules.max_future_skew)
  if value > now_ms + max_skew_ms:
    raise InvalidRecord(
      'future_timestamp',
      f'"{name}"={value} is {(value - now_ms) / 1000:.0f} s ahead of the '
      f'clock (at most {max_skew_ms // 1000} s)',
    )
  return value


# Reason of a record whose parser raised something other than InvalidRecord:
# a bug, not bad data, but still one dead letter rather than a failed bundle
# re-read after every restart.
PARSER_ERROR = 'parser_error'


def as_invalid_record(error: Exception) -> InvalidRecord:
  """`error` itself if it is an InvalidRecord, else a PARSER_ERROR naming
  the exception type (its message may quote the record)."""
  if isinstance(error, InvalidRecord):
    return error
  return InvalidRecord(PARSER_ERROR, type(error).__name__)


def dead_letter(record: SourceRecord, error: InvalidRecord) -> DeadLetter:
  """A dead letter carrying a safely truncated, always-decodable raw record."""
  raw_text = record.raw[:MAX_DEAD_LETTER_RAW_CHARS].decode('utf-8', errors='backslashreplace')
  return DeadLetter(
    source=record.source,
    origin=record.origin,
    reason=error.reason,
    detail=error.detail[:500],
    raw=raw_text,
    raw_size=len(record.raw),
    received_at=int(time.time() * 1000),
  )


def dead_letter_output(
  record: SourceRecord, error: Exception, metrics_namespace: str
) -> beam.pvalue.TaggedOutput:
  """The `dead_letters` output of a parser for a rejected record, counted
  in total and per reason. Any exception is accepted (as_invalid_record):
  whatever a parser raises, the record becomes one dead letter."""
  if not isinstance(error, InvalidRecord):
    logging.getLogger(__name__).warning(
      'parser raised %s on %s: record sent to dead letters', type(error).__name__, record.origin
    )
  error = as_invalid_record(error)
  Metrics.counter(metrics_namespace, 'dead_letters').inc()
  Metrics.counter(metrics_namespace, f'dead_letter_{error.reason}').inc()
  return beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(record, error))


# The event-time field of every source schema, written plainly: an integer
# right after the key.
_PLAIN_EVENT_TIME = re.compile(rb'"timestamp"\s*:\s*(\d{1,16})\s*[,}]')


def event_time_or_none(
  parse: Callable[[bytes], Any], raw: bytes, above_ms: Optional[int] = None
) -> Optional[int]:
  """`parse(raw).timestamp`, or None for an invalid record: sources that
  model a watermark advance it with valid records only.

  With `above_ms`, also None for a valid record whose event time is at most
  `above_ms` (it cannot move the watermark), and such a record is not
  parsed when its event time can be read off the raw bytes: no backslash
  (an escape could spell another "timestamp" key or hide a quote) and one
  "timestamp" only, followed by a colon and an integer. That occurrence is
  then a key; at the top level it is the event time, nested the record is
  invalid. Either way the answer is the one parsing would give. (A replay
  scan: most records of a stream are not the newest yet, and parsing them
  all was a tenth of a local run.)
  """
  if above_ms is not None and b'\\' not in raw and raw.count(b'"timestamp"') == 1:
    plain = _PLAIN_EVENT_TIME.search(raw)
    if plain is not None and int(plain.group(1)) <= above_ms:
      return None
  try:
    event_ms = parse(raw).timestamp
  except Exception:  # pylint: disable=broad-except
    return None  # the parse step makes it a dead letter
  return event_ms if above_ms is None or event_ms > above_ms else None
