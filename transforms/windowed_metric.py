"""WindowedMetric: a metric per key in fixed event-time windows, as rows."""

import operator
from typing import Any, Callable, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.utils.timestamp import Duration, Timestamp

from transforms.sharding import DEFAULT_STATE_SHARDS
from transforms.windowing import COUNTED, LATE_PANE, WindowedCombinePerKey, WindowPane

# The event time of the flows' records (epoch ms), also their timestamp.
_EVENT_TIME_MS = operator.attrgetter('timestamp')

# to_revision(previous row or None, new row, ids the pane added): the
# record of one change to a window's published figures.
ToRevision = Callable[[Optional[NamedTuple], NamedTuple, Tuple[str, ...]], NamedTuple]


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
    `counted` (if `counted`, with `element_id`): PCollection[CountedElement] whose
      `value` is the input record, with the first pane that counts it.
    `revisions` (with `to_revision`): one record per LATE pane, the change
      from the window's previous row to the new one.
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
    element_id: Optional[Callable[[Any], str]] = None,
    counted: bool = False,
    to_revision: Optional[ToRevision] = None,
  ):
    super().__init__()
    self._to_row = to_row
    self._counting = counted
    self._to_revision = to_revision
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
      element_id=element_id,
      counted=counted,
    )

  def expand(self, records):
    windowed = records | 'Window' >> self._windowed
    outputs = {
      'rows': windowed.panes | 'ToRows' >> beam.Map(self._to_row),
      'late': windowed.late,
    }
    if self._counting:
      outputs['counted'] = windowed[COUNTED]
    if self._to_revision is not None:
      to_row, to_revision = self._to_row, self._to_revision
      outputs['revisions'] = (
        windowed.panes
        | 'LatePanes' >> beam.Filter(lambda pane: pane.timing == LATE_PANE)
        | 'ToRevisions' >> beam.Map(lambda pane: _revision(pane, to_row, to_revision))
      )
    return outputs


def _revision(
  pane: WindowPane, to_row: Callable[[WindowPane], NamedTuple], to_revision: ToRevision
) -> NamedTuple:
  """The change a LATE pane makes: its previous pane's row (rebuilt from
  the previous result) against its own."""
  previous = (
    None
    if pane.previous is None
    else to_row(pane._replace(result=pane.previous, pane_index=pane.pane_index - 1))
  )
  return to_revision(previous, to_row(pane), pane.added)
