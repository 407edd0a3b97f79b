"""The seed's call-event parser, under the name its users import it by; the
format itself lives in transforms/formats/seed.py with the other input
formats."""

from transforms.formats.seed import (
  DEAD_LETTERS,
  METRICS_EVENT_TYPE,
  ParseCallEvents,
  call_event_time_ms,
  parse_call_event,
)

__all__ = (
  'DEAD_LETTERS',
  'METRICS_EVENT_TYPE',
  'ParseCallEvents',
  'call_event_time_ms',
  'parse_call_event',
)
