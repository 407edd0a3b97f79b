"""Event-time timers on the delayed watermark (bounded out-of-orderness).

Sources emit the watermark KafkaIO's `CreateTime` policy gives: the largest
event time seen. Every event-time decision of the pipeline is made on that
watermark minus `--max_out_of_orderness`; stateful DoFns do it by setting
their timers that much later and reading fired timers that much earlier.
"""
from typing import NamedTuple

from apache_beam.utils.timestamp import Timestamp


class DelayedClock(NamedTuple):
  """Translates between delayed event time (ms) and timer timestamps."""
  delay_ms: int

  def set(self, timer, effective_ms: int, tag: str = '') -> None:
    """Sets `timer` (its dynamic tag `tag`) to fire when the delayed
    watermark reaches the time."""
    timer.set(
        Timestamp(micros=(effective_ms + self.delay_ms) * 1000),
        dynamic_timer_tag=tag)

  def fired_ms(self, fired: Timestamp) -> int:
    """The delayed event time a fired timer stands for."""
    return fired.micros // 1000 - self.delay_ms


def ceil_to_grid(ms: int, step_ms: int) -> int:
  """The first multiple of `step_ms` at or after `ms` (epoch ms).

  Stateful steps put their wake-ups on such a grid: a timer only tells that
  the watermark passed it, so when the watermark jumps, wake-ups at distinct
  times follow one another in as many rounds of timer firings; on a shared
  grid, all keys wake in the same rounds and their number is bounded by the
  jump divided by the step.
  """
  return -(-ms // step_ms) * step_ms
