"""Field checks the vendor formats need beyond transforms/parsing.py: nested
JSON objects and ISO-8601 timestamps.

Built on parsing.InvalidRecord and, for every value that ends up as an event
time, on parsing.required_event_time_ms itself, so the project-wide rules
for event times (plausible range...) apply to ISO-8601 times exactly as to
epoch milliseconds. Total: any JSON value gives a result or an
InvalidRecord with a specific reason, never another exception.
"""

import datetime
import re
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

from options.config import DEFAULT_FIELD_RULES, FieldRules
from transforms import parsing

# What Amazon Connect writes ("2022-01-05T17:20:32Z"), and RFC 3339 in
# general: a full date and time, optional fraction (at most nanoseconds),
# and a mandatory UTC offset. A time without an offset is ambiguous (local
# time of which site?), so it is refused rather than guessed.
_ISO_8601 = re.compile(
  r'([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})'
  r'(?:\.([0-9]{1,9}))?'
  r'(Z|[+-][0-9]{2}:[0-9]{2})'
)
# Longer strings are refused before the pattern looks at them.
_MAX_ISO_CHARS = 35
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def optional_object(obj: Dict[str, Any], name: str) -> Optional[Dict[str, Any]]:
  """A nested JSON object, or None when the field is missing or null."""
  value = obj.get(name)
  if value is not None and not isinstance(value, dict):
    raise parsing.InvalidRecord(
      'wrong_type', f'"{name}" must be an object or null, got {type(value).__name__}'
    )
  return value


def required_object(obj: Dict[str, Any], name: str) -> Dict[str, Any]:
  """A nested JSON object that must be there."""
  value = optional_object(obj, name)
  if value is None:
    raise parsing.InvalidRecord('missing_field', f'"{name}" is missing or null')
  return value


_Value = TypeVar('_Value')


def raw_text(raw: bytes) -> str:
  """A record as its source delivered it, as text (OfferedCall.raw): the
  formats read UTF-8 JSON, so a record that parsed decodes as it is;
  'replace' only keeps this total."""
  return raw.decode('utf-8', errors='replace')


def required_enum(
  obj: Dict[str, Any],
  name: str,
  choices: Mapping[str, _Value],
  rules: FieldRules = DEFAULT_FIELD_RULES,
) -> _Value:
  """What `choices` maps the string field `name` to: a vendor's documented
  enum value. Raises InvalidRecord `unknown_enum_value` naming the known
  values for any other string (and the string rules' reasons)."""
  value = parsing.required_str(obj, name, rules)
  if value not in choices:
    raise parsing.InvalidRecord(
      'unknown_enum_value', f'"{name}" {value[:40]!r} is not one of {", ".join(sorted(choices))}'
    )
  return choices[value]


def iso_time_ms(value: str, name: str, rules: FieldRules = DEFAULT_FIELD_RULES) -> int:
  """Epoch milliseconds of an ISO-8601 date-time with a UTC offset
  ("2026-11-02T08:00:00Z", "2026-11-02T09:00:00.250+01:00"); fractions
  below a millisecond are truncated. Raises InvalidRecord:
  `malformed_timestamp` for anything else (no offset, impossible dates such
  as February 30 or hour 24, leap seconds), `absurd_timestamp` and the
  other event-time reasons of parsing.required_event_time_ms.
  """
  match = _ISO_8601.fullmatch(value) if len(value) <= _MAX_ISO_CHARS else None
  if match is None:
    raise parsing.InvalidRecord(
      'malformed_timestamp',
      f'"{name}" is not an ISO-8601 date-time with a UTC offset: {value[:40]!r}',
    )
  year, month, day, hour, minute, second, fraction, offset = match.groups()
  try:
    if offset == 'Z':
      zone = datetime.timezone.utc
    else:
      sign = -1 if offset[0] == '-' else 1
      zone = datetime.timezone(
        sign * datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
      )
      if int(offset[4:6]) >= 60:
        raise ValueError('offset minutes >= 60')
    moment = datetime.datetime(
      int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone
    )
  except ValueError as e:  # impossible dates and offsets (>= 24 h)
    raise parsing.InvalidRecord('malformed_timestamp', f'"{name}"={value!r}: {e}') from None
  delta = moment - _EPOCH
  millis = delta.days * 86_400_000 + delta.seconds * 1000 + int((fraction or '0').ljust(3, '0')[:3])
  # The project's event-time rules, on the value this field stands for.
  return parsing.required_event_time_ms({name: millis}, name, rules)


def required_iso_time_ms(
  obj: Dict[str, Any], name: str, rules: FieldRules = DEFAULT_FIELD_RULES
) -> int:
  """The ISO-8601 field `name` as epoch milliseconds (see iso_time_ms)."""
  return iso_time_ms(parsing.required_str(obj, name, rules), name, rules)


def optional_iso_time_ms(
  obj: Dict[str, Any], name: str, rules: FieldRules = DEFAULT_FIELD_RULES
) -> Optional[int]:
  """As required_iso_time_ms, None when the field is missing or null."""
  value = obj.get(name)
  if value is None:
    return None
  if not isinstance(value, str):
    raise parsing.InvalidRecord(
      'wrong_type', f'"{name}" must be a string or null, got {type(value).__name__}'
    )
  # Not parsing.optional_str: a blank time is malformed, not "none"; the
  # pattern admits no control character and at most _MAX_ISO_CHARS.
  return iso_time_ms(value, name, rules)


def event_time_above(
  parse: Callable[[bytes], Any], raw: bytes, above_ms: Optional[int] = None
) -> Optional[int]:
  """`parse(raw).timestamp` if `parse` accepts the record and, with
  `above_ms`, the time is above it; else None (for the replay watermark).

  parsing.event_time_or_none is asked without its floor: with one, it reads
  a top-level "timestamp" key off the raw bytes, and in the vendor formats
  that key means nothing (a CTR's `Attributes` may well hold one).
  """
  event_ms = parsing.event_time_or_none(parse, raw)
  if event_ms is None or (above_ms is not None and event_ms <= above_ms):
    return None
  return event_ms
