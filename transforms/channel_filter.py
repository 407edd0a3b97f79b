"""KeepChannels: the records of the channels a job counts (`--channels`)."""

from typing import Any, FrozenSet, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

METRICS_NAMESPACE = 'call_metrics'


class _KeepChannelsFn(beam.DoFn):
  def __init__(self, channels: FrozenSet[str], counter_name: str):
    self._channels = channels
    self._other_channels = Metrics.counter(METRICS_NAMESPACE, counter_name)

  def process(self, record: Any) -> Iterator[Any]:
    if record.channel in self._channels:
      yield record
    else:
      self._other_channels.inc()


class KeepChannels(beam.PTransform):
  """Input: PCollection of records with a `channel` (OfferedCall,
  QueueTransition). Output: those whose `channel` is in `channels`, of the
  same type, timestamps kept; the others are passed over and counted in
  `call_metrics/<counter_name>` (a filter, not an error: no dead letter)."""

  def __init__(self, channels: FrozenSet[str], counter_name: str = 'other_channels'):
    super().__init__()
    self._channels = frozenset(channels)
    self._counter_name = counter_name

  def expand(self, records):
    return records | beam.ParDo(
      _KeepChannelsFn(self._channels, self._counter_name)
    ).with_output_types(records.element_type)
