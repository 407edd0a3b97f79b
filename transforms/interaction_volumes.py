"""InteractionVolumes: interaction count per channel in fixed event-time
windows."""

import operator

from apache_beam.transforms.combiners import CountCombineFn
from apache_beam.utils.timestamp import Duration

from transforms.records import InteractionVolume
from transforms.sharding import DEFAULT_STATE_SHARDS
from transforms.windowed_metric import WindowedMetric
from transforms.windowing import WindowPane


def to_interaction_volume(pane: WindowPane) -> InteractionVolume:
  return InteractionVolume(
    channel=pane.key,
    window_start=pane.window_start,
    window_end=pane.window_end,
    volume=pane.result,
    pane_index=pane.pane_index,
    pane_timing=pane.timing,
  )


class InteractionVolumes(WindowedMetric):
  """Interaction volume per channel and fixed window: the WindowedMetric of
  a count per `channel`.

  Input: PCollection[Interaction] (deduplicated, event-timed).
  Outputs (a dict):
    `rows`: PCollection[InteractionVolume], one row per pane, windows
      stamped with their event-time bounds (ON_TIME, then accumulating LATE
      updates within allowed lateness).
    `late`: PCollection[LateArrival] whose `value` is the Interaction.
  """

  def __init__(
    self,
    window_size: Duration,
    allowed_lateness: Duration,
    key_idle_ttl: Duration,
    max_out_of_orderness: Duration = Duration(0),
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__(
      CountCombineFn(),
      operator.attrgetter('channel'),
      to_interaction_volume,
      window_size,
      allowed_lateness,
      key_idle_ttl,
      metrics_namespace='interaction_volumes',
      max_out_of_orderness=max_out_of_orderness,
      shards=shards,
    )
