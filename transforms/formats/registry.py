"""The input formats of `--call_event_format`, by name.

Each format gives the replay its watermark function (which records advance
it, and with which event time) and the call-metrics flow its
`offered calls` transform: raw records to de-duplicated OfferedCall records
plus dead letters.
"""
import functools
from typing import Callable, Dict, NamedTuple, Optional

import apache_beam as beam

from transforms.formats import amazon_connect, genesys_cloud, seed
from transforms.parsing import DEFAULT_FIELD_RULES, FieldRules


class FormatSettings(NamedTuple):
  """What the formats need from the job's options."""
  dedupe_ttl_seconds: int
  watermark_delay_seconds: int
  connect_queue_key: str = 'name'
  genesys_max_queue_wait_seconds: int = 3600
  field_rules: FieldRules = DEFAULT_FIELD_RULES


EventTimeFn = Callable[[bytes, Optional[int]], Optional[int]]


class CallEventFormat(NamedTuple):
  """`event_time_ms(settings)`: the replay's event-time function;
  `offered_calls(settings)`: the PTransform from PCollection[SourceRecord]
  to {'offered': PCollection[OfferedCall], 'dead_letters': ...}."""
  event_time_ms: Callable[[FormatSettings], EventTimeFn]
  offered_calls: Callable[[FormatSettings], beam.PTransform]


FORMATS: Dict[str, CallEventFormat] = {
    'seed': CallEventFormat(
        lambda s: functools.partial(
            seed.call_event_time_ms, rules=s.field_rules),
        lambda s: seed.SeedOfferedCalls(s.dedupe_ttl_seconds, s.field_rules)),
    'genesys_cloud': CallEventFormat(
        lambda s: functools.partial(
            genesys_cloud.genesys_event_time_ms, rules=s.field_rules),
        lambda s: genesys_cloud.GenesysOfferedCalls(
            s.dedupe_ttl_seconds, s.genesys_max_queue_wait_seconds,
            s.watermark_delay_seconds, s.field_rules)),
    'amazon_connect': CallEventFormat(
        lambda s: functools.partial(
            amazon_connect.contact_record_time_ms,
            queue_key=s.connect_queue_key, rules=s.field_rules),
        lambda s: amazon_connect.ConnectOfferedCalls(
            s.dedupe_ttl_seconds, s.connect_queue_key, s.field_rules)),
}


def call_event_format(name: str) -> CallEventFormat:
  """The format called `name`; raises ValueError naming the known ones."""
  if name not in FORMATS:
    raise ValueError(
        f'unknown call event format {name!r}; known: {", ".join(FORMATS)}')
  return FORMATS[name]
