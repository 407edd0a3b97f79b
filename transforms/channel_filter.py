"""KeepChannels: the offered calls of the channels a job counts
(`--channels`)."""

from typing import FrozenSet, Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.records import OfferedCall

METRICS_NAMESPACE = 'call_metrics'


class _KeepChannelsFn(beam.DoFn):
  def __init__(self, channels: FrozenSet[str]):
    self._channels = channels
    self._other_channels = Metrics.counter(METRICS_NAMESPACE, 'other_channels')

  def process(self, call: OfferedCall) -> Iterator[OfferedCall]:
    if call.channel in self._channels:
      yield call
    else:
      self._other_channels.inc()


class KeepChannels(beam.PTransform):
  """Input: PCollection[OfferedCall]. Output: the calls whose `channel` is
  in `channels`, timestamps kept; the others are passed over and counted in
  `call_metrics/other_channels` (a filter, not an error: no dead letter)."""

  def __init__(self, channels: FrozenSet[str]):
    super().__init__()
    self._channels = frozenset(channels)

  def expand(self, calls):
    return calls | beam.ParDo(_KeepChannelsFn(self._channels)).with_output_types(OfferedCall)
