"""AbandonRate: per-queue abandon statistics in fixed event-time windows."""
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, List, NamedTuple

import apache_beam as beam

from transforms.records import AbandonMetrics, CallEvent
from transforms.windowing import WindowedCombinePerKey, WindowPane

_FOUR_PLACES = Decimal('0.0001')


class AbandonStats(NamedTuple):
  total_calls: int
  abandoned_calls: int
  short_abandoned_calls: int
  answered_within_sl: int
  total_wait_seconds: float


def rounded_ratio(numerator: int, denominator: int) -> float:
  """numerator/denominator rounded half-up to 4 places; 0 when nothing.

  Decimal arithmetic, not float: the seed's DECIMAL(5,4) meant exact
  4-place rates, and float rounding turns 0.00005 into 0.0 or 0.0001
  depending on the binary representation.
  """
  if denominator == 0:
    return 0.0
  return float(
      (Decimal(numerator) / Decimal(denominator)).quantize(
          _FOUR_PLACES, rounding=ROUND_HALF_UP))


class AbandonStatsFn(beam.CombineFn):
  """Sums the numerators and denominators of abandon rate and service level.

  Input: CallEvent. Accumulator: a 5-item list. Output: AbandonStats.
  `short_abandon_threshold_seconds`: abandons that waited less than this are
  also counted as short abandons (0 = none). `service_level_seconds`: an
  answered call counts within the service level if it waited at most this.
  """
  def __init__(
      self, short_abandon_threshold_seconds: float,
      service_level_seconds: float):
    self._short_threshold = short_abandon_threshold_seconds
    self._sl_seconds = service_level_seconds

  def create_accumulator(self) -> List:
    return [0, 0, 0, 0, 0]

  def add_input(self, acc: List, event: CallEvent) -> List:
    acc[0] += 1
    wait = event.wait_time_seconds
    if event.abandoned:
      acc[1] += 1
      if wait < self._short_threshold:
        acc[2] += 1
    elif wait <= self._sl_seconds:
      acc[3] += 1
    acc[4] += wait
    return acc

  def merge_accumulators(self, accumulators: Iterable[List]) -> List:
    merged = self.create_accumulator()
    for acc in accumulators:
      for i, value in enumerate(acc):
        merged[i] += value
    return merged

  def extract_output(self, acc: List) -> AbandonStats:
    return AbandonStats(*acc)


def to_abandon_metrics(pane: WindowPane) -> AbandonMetrics:
  stats: AbandonStats = pane.result
  return AbandonMetrics(
      queue_id=pane.key,
      window_start=pane.window_start,
      window_end=pane.window_end,
      total_calls=stats.total_calls,
      abandoned_calls=stats.abandoned_calls,
      short_abandoned_calls=stats.short_abandoned_calls,
      answered_within_sl=stats.answered_within_sl,
      total_wait_seconds=float(stats.total_wait_seconds),
      abandon_rate=rounded_ratio(stats.abandoned_calls, stats.total_calls),
      service_level=rounded_ratio(stats.answered_within_sl, stats.total_calls),
      pane_index=pane.pane_index,
      pane_timing=pane.timing)


class AbandonRate(beam.PTransform):
  """Abandon statistics per queue and fixed window.

  Input: PCollection[CallEvent] (CALL_ENDED, deduplicated, event-timed).
  Outputs (a dict):
    `metrics`: PCollection[AbandonMetrics], one row per pane (ON_TIME, then LATE
      updates within allowed lateness; accumulating).
    `late`: PCollection[LateArrival] whose `value` is the CallEvent.
  Rates: abandon_rate = abandoned/total and service_level =
  answered_within_sl/total, both rounded half-up to 4 places, 0 for 0 calls.
  """
  def __init__(
      self,
      window_size_seconds: int,
      allowed_lateness_seconds: int,
      short_abandon_threshold_seconds: float,
      service_level_seconds: float,
      key_idle_ttl_seconds: int,
      watermark_delay_seconds: int = 0):
    super().__init__()
    self._windowed = WindowedCombinePerKey(
        AbandonStatsFn(short_abandon_threshold_seconds, service_level_seconds),
        lambda e: e.queue_id,
        lambda e: e.timestamp,
        window_size_seconds,
        allowed_lateness_seconds,
        key_idle_ttl_seconds,
        metrics_namespace='abandon_rate',
        watermark_delay_seconds=watermark_delay_seconds)

  def expand(self, events):
    windowed = events | 'Window' >> self._windowed
    return {
        'metrics': windowed.panes | 'ToRows' >> beam.Map(to_abandon_metrics),
        'late': windowed.late,
    }
