"""WindowedMetric: a metric per key in fixed event-time windows, as rows."""

import operator
from typing import Any, Callable, NamedTuple

import apache_beam as beam
from apache_beam.utils.timestamp import Duration, Timestamp

from transforms.sharding import DEFAULT_STATE_SHARDS
from transforms.windowing import WindowedCombinePerKey, WindowPane

# The event time of the flows' records (epoch ms), also their timestamp.
_EVENT_TIME_MS = operator.attrgetter('timestamp')


class WindowedMetric(beam.PTransform):
  """`combine_fn` per `key_fn` and fixed event-time window, one row per pane.

  Input: PCollection of deduplicated records whose `timestamp` field is
  their event time in epoch ms.
  Outputs (a dict):
    `rows`: PCollection of `to_row(pane)` for every WindowPane (EARLY ones
      of the open window every `early_firing` of processing time if
      set, ON_TIME when the watermark passes the window end, then
      accumulating LATE updates within allowed lateness; `pane_index` orders
      them).
    `late`: PCollection[LateArrival] whose `value` is the input record, for
      records after their window's end + allowed lateness.
  State, lateness and metrics (namespace `metrics_namespace`) are
  WindowedCombinePerKey's (transforms/windowing.py); its step is `Window`,
  so a savepoint restores into `<label>/Window/Combine/...`
  (docs/upgrades.md).
  """

  def __init__(
    self,
    combine_fn: beam.CombineFn,
    key_fn: Callable[[Any], str],
    to_row: Callable[[WindowPane], NamedTuple],
    window_size: Duration,
    allowed_lateness: Duration,
    key_idle_ttl: Duration,
    metrics_namespace: str,
    max_out_of_orderness: Duration = Duration(0),
    early_firing: Duration = Duration(0),
    processing_clock: Callable[[], Timestamp] = Timestamp.now,
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    self._to_row = to_row
    self._windowed = WindowedCombinePerKey(
      combine_fn,
      key_fn,
      _EVENT_TIME_MS,
      window_size,
      allowed_lateness,
      key_idle_ttl,
      metrics_namespace=metrics_namespace,
      max_out_of_orderness=max_out_of_orderness,
      early_firing=early_firing,
      processing_clock=processing_clock,
      shards=shards,
    )

  def expand(self, records):
    windowed = records | 'Window' >> self._windowed
    return {
      'rows': windowed.panes | 'ToRows' >> beam.Map(self._to_row),
      'late': windowed.late,
    }
