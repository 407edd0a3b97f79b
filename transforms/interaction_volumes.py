"""InteractionVolumes: interaction count per channel in fixed event-time
windows."""
import apache_beam as beam
from apache_beam.transforms.combiners import CountCombineFn

from transforms.records import InteractionVolume
from transforms.windowing import WindowedCombinePerKey, WindowPane


def to_interaction_volume(pane: WindowPane) -> InteractionVolume:
  return InteractionVolume(
      channel=pane.key,
      window_start=pane.window_start,
      window_end=pane.window_end,
      volume=pane.result,
      pane_index=pane.pane_index,
      pane_timing=pane.timing)


class InteractionVolumes(beam.PTransform):
  """Interaction volume per channel and fixed window.

  Input: PCollection[Interaction] (deduplicated, event-timed).
  Outputs (a dict):
    `volumes`: PCollection[InteractionVolume], one row per pane, windows
      stamped with their event-time bounds (ON_TIME, then accumulating LATE
      updates within allowed lateness).
    `late`: PCollection[LateArrival] whose `value` is the Interaction.
  """
  def __init__(
      self,
      window_size_seconds: int,
      allowed_lateness_seconds: int,
      key_idle_ttl_seconds: int,
      max_out_of_orderness_seconds: int = 0):
    super().__init__()
    self._windowed = WindowedCombinePerKey(
        CountCombineFn(),
        lambda i: i.channel,
        lambda i: i.timestamp,
        window_size_seconds,
        allowed_lateness_seconds,
        key_idle_ttl_seconds,
        metrics_namespace='interaction_volumes',
        max_out_of_orderness_seconds=max_out_of_orderness_seconds)

  def expand(self, interactions):
    windowed = interactions | 'Window' >> self._windowed
    return {
        'volumes': windowed.panes
        | 'ToRows' >> beam.Map(to_interaction_volume),
        'late': windowed.late,
    }
