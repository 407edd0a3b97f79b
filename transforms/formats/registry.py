"""The input formats of `--call_event_format`, by name.

Each format gives the replay its watermark function (which records advance
it, and with which event time) and the call-metrics flow its
`offered calls` transform: raw records to de-duplicated OfferedCall records
plus dead letters.
"""

import functools
from typing import Callable, Dict, NamedTuple, Optional

import apache_beam as beam

from options.config import CallMetricsConfig
from transforms.formats import amazon_connect, amazon_connect_events, genesys_cloud, seed

EventTimeFn = Callable[[bytes, Optional[int]], Optional[int]]


class CallEventFormat(NamedTuple):
  """`event_time_ms(config)`: the replay's event-time function;
  `offered_calls(config)`: the PTransform from PCollection[SourceRecord]
  to {'offered': PCollection[OfferedCall], 'dead_letters': ...}. Both read
  what they need from the call-metrics flow's config."""

  event_time_ms: Callable[[CallMetricsConfig], EventTimeFn]
  offered_calls: Callable[[CallMetricsConfig], beam.PTransform]


FORMATS: Dict[str, CallEventFormat] = {
  'seed': CallEventFormat(
    lambda c: functools.partial(seed.call_event_time_ms, rules=c.field_rules),
    lambda c: seed.SeedOfferedCalls(c.dedupe_ttl, c.field_rules, shards=c.event_time.state_shards),
  ),
  'genesys_cloud': CallEventFormat(
    lambda c: functools.partial(
      genesys_cloud.genesys_event_time_ms,
      rules=c.field_rules,
      trigger_kind=c.genesys_trigger_kind,
    ),
    lambda c: genesys_cloud.GenesysOfferedCalls(
      c.dedupe_ttl,
      c.genesys_max_queue_wait,
      c.event_time.max_out_of_orderness,
      c.field_rules,
      callback_max_queue_wait=c.genesys_callback_max_queue_wait,
      trigger_kind=c.genesys_trigger_kind,
      shards=c.event_time.state_shards,
    ),
  ),
  'amazon_connect': CallEventFormat(
    lambda c: functools.partial(
      amazon_connect.contact_record_time_ms, queue_key=c.connect_queue_key, rules=c.field_rules
    ),
    lambda c: amazon_connect.ConnectOfferedCalls(
      c.dedupe_ttl, c.connect_queue_key, c.field_rules, shards=c.event_time.state_shards
    ),
  ),
  'amazon_connect_events': CallEventFormat(
    lambda c: functools.partial(
      amazon_connect_events.contact_event_time_ms,
      queue_key=c.connect_queue_key,
      rules=c.field_rules,
    ),
    lambda c: amazon_connect_events.ConnectContactEventsCalls(
      c.dedupe_ttl, c.connect_queue_key, c.field_rules, shards=c.event_time.state_shards
    ),
  ),
}


def call_event_format(name: str) -> CallEventFormat:
  """The format called `name`; raises ValueError naming the known ones."""
  if name not in FORMATS:
    raise ValueError(f'unknown call event format {name!r}; known: {", ".join(FORMATS)}')
  return FORMATS[name]
