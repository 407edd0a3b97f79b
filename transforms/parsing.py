"""Shared pieces of record validation: JSON decoding, typed field checks and
dead-letter construction.

Every flow's parser (`ParseCallEvents`, `ParseDataActions`) validates its own
schema with these helpers, so one bad record is described the same way
whichever topic it came from, and a DoFn never raises on bad data.
"""
import json
import math
import re
import time
from typing import Any, Callable, Dict, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.records import DeadLetter, SourceRecord

DEAD_LETTERS = 'dead_letters'

MAX_RECORD_BYTES = 1024 * 1024
# Dead letters keep enough of the raw record to diagnose it, never megabytes.
MAX_DEAD_LETTER_RAW_CHARS = 4096
# Event times outside [2000-01-01, 2100-01-01) are clock or unit errors
# (seconds instead of ms, zeroed clocks), not contact-center events.
MIN_EVENT_TIME_MS = 946684800000
MAX_EVENT_TIME_MS = 4102444800000


class InvalidRecord(Exception):
  """A record failed validation; `reason` is a stable code for metrics."""
  def __init__(self, reason: str, detail: str):
    super().__init__(f'{reason}: {detail}')
    self.reason = reason
    self.detail = detail


def decode_json_object(raw: bytes) -> Dict[str, Any]:
  """Decodes one raw record into a JSON object or raises InvalidRecord."""
  if len(raw) > MAX_RECORD_BYTES:
    raise InvalidRecord(
        'oversized_record', f'{len(raw)} bytes > {MAX_RECORD_BYTES}')
  try:
    text = raw.decode('utf-8')
  except UnicodeDecodeError as e:
    raise InvalidRecord('invalid_utf8', str(e)) from None
  if not text.strip():
    raise InvalidRecord('empty_record', 'record is empty')
  try:
    value = json.loads(text)
  except ValueError as e:
    raise InvalidRecord('malformed_json', str(e)) from None
  if not isinstance(value, dict):
    raise InvalidRecord(
        'not_a_json_object', f'top-level JSON is {type(value).__name__}')
  return value


def _field(obj: Dict[str, Any], name: str) -> Any:
  if name not in obj or obj[name] is None:
    raise InvalidRecord('missing_field', f'"{name}" is missing or null')
  return obj[name]


def required_str(obj: Dict[str, Any], name: str) -> str:
  value = _field(obj, name)
  if not isinstance(value, str):
    raise InvalidRecord(
        'wrong_type', f'"{name}" must be a string, got {type(value).__name__}')
  if not value.strip():
    raise InvalidRecord('empty_field', f'"{name}" is empty')
  return value


def optional_str(obj: Dict[str, Any], name: str) -> Optional[str]:
  value = obj.get(name)
  if value is not None and not isinstance(value, str):
    raise InvalidRecord(
        'wrong_type',
        f'"{name}" must be a string or null, got {type(value).__name__}')
  return value


def required_bool(obj: Dict[str, Any], name: str) -> bool:
  value = _field(obj, name)
  if not isinstance(value, bool):
    raise InvalidRecord(
        'wrong_type', f'"{name}" must be a boolean, got {type(value).__name__}')
  return value


def required_non_negative_number(obj: Dict[str, Any], name: str) -> float:
  value = _field(obj, name)
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise InvalidRecord(
        'wrong_type', f'"{name}" must be a number, got {type(value).__name__}')
  if not math.isfinite(value):
    raise InvalidRecord('not_finite', f'"{name}" is {value}')
  if value < 0:
    raise InvalidRecord('negative_value', f'"{name}" is {value}')
  return value


def required_event_time_ms(obj: Dict[str, Any], name: str = 'timestamp') -> int:
  """An epoch-millisecond event time within plausible bounds."""
  value = _field(obj, name)
  if isinstance(value, float) and value.is_integer():
    value = int(value)
  if isinstance(value, bool) or not isinstance(value, int):
    raise InvalidRecord(
        'wrong_type',
        f'"{name}" must be epoch milliseconds (integer), '
        f'got {type(value).__name__}')
  if not MIN_EVENT_TIME_MS <= value < MAX_EVENT_TIME_MS:
    raise InvalidRecord(
        'absurd_timestamp',
        f'"{name}"={value} is outside [{MIN_EVENT_TIME_MS}, '
        f'{MAX_EVENT_TIME_MS}) epoch ms')
  return value


def dead_letter(record: SourceRecord, error: InvalidRecord) -> DeadLetter:
  """A dead letter carrying a safely truncated, always-decodable raw record."""
  raw_text = record.raw[:MAX_DEAD_LETTER_RAW_CHARS].decode(
      'utf-8', errors='backslashreplace')
  return DeadLetter(
      source=record.source,
      origin=record.origin,
      reason=error.reason,
      detail=error.detail[:500],
      raw=raw_text,
      raw_size=len(record.raw),
      received_at=int(time.time() * 1000))


def dead_letter_output(
    record: SourceRecord, error: InvalidRecord,
    metrics_namespace: str) -> beam.pvalue.TaggedOutput:
  """The `dead_letters` output of a parser for a rejected record, counted
  in total and per reason."""
  Metrics.counter(metrics_namespace, 'dead_letters').inc()
  Metrics.counter(metrics_namespace, f'dead_letter_{error.reason}').inc()
  return beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(record, error))


# The event-time field of every source schema, written plainly: an integer
# right after the key.
_PLAIN_EVENT_TIME = re.compile(rb'"timestamp"\s*:\s*(\d{1,16})\s*[,}]')


def event_time_or_none(parse: Callable[[bytes], Any], raw: bytes,
                       above_ms: Optional[int] = None) -> Optional[int]:
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
  if (above_ms is not None and b'\\' not in raw and
      raw.count(b'"timestamp"') == 1):
    plain = _PLAIN_EVENT_TIME.search(raw)
    if plain is not None and int(plain.group(1)) <= above_ms:
      return None
  try:
    event_ms = parse(raw).timestamp
  except InvalidRecord:
    return None
  return event_ms if above_ms is None or event_ms > above_ms else None
