"""AbandonRate: abandon statistics per queue and channel in fixed event-time
windows."""

import functools
import operator
from decimal import ROUND_HALF_UP, Decimal
from typing import Callable, Iterable, List, Mapping, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.utils.timestamp import Duration, Timestamp

from transforms.metric_definitions import (
  ABANDON_RATE_DEFINITIONS,
  DEFAULT_ABANDON_RATE,
  DEFAULT_SERVICE_LEVEL,
  SERVICE_LEVEL_DEFINITIONS,
  Counts,
  definition,
)
from transforms.records import (
  ABANDONED,
  ANSWERED,
  CHANNELS,
  FLOW_OUT,
  VOICE,
  AbandonMetrics,
  OfferedCall,
)
from transforms.sharding import DEFAULT_STATE_SHARDS
from transforms.window_audit import metric_revision
from transforms.windowed_metric import WindowedMetric
from transforms.windowing import WindowPane

_FOUR_PLACES = Decimal('0.0001')
# Between the channel and the queue id in a row key: channels (CHANNELS)
# never hold it, so the first one splits the key whatever the queue id.
_KEY_SEPARATOR = '|'


def row_key(call: OfferedCall) -> str:
  """The windowed step's key of a call: its channel and queue."""
  return f'{call.channel}{_KEY_SEPARATOR}{call.queue_id}'


def split_row_key(key: str) -> Tuple[str, str]:
  """(queue_id, channel) of a row_key. A key of state written before
  channels existed is a bare queue id: voice."""
  channel, separator, queue_id = key.partition(_KEY_SEPARATOR)
  if not separator or channel not in CHANNELS:
    return key, VOICE
  return queue_id, channel


class AbandonStats(NamedTuple):
  """The sums AbandonStatsFn keeps (see AbandonMetrics for each)."""

  total_calls: int
  answered_calls: int
  abandoned_calls: int
  short_abandoned_calls: int
  flow_out_calls: int
  answered_within_sl: int
  abandoned_within_sl: int
  wait_unknown_calls: int
  answered_wait_unknown_calls: int
  total_wait_seconds: float
  answered_wait_seconds: float


_OFFERED, _ANSWERED, _ABANDONED, _SHORT, _FLOW_OUT = range(5)
_ANSWERED_WITHIN, _ABANDONED_WITHIN, _WAIT_UNKNOWN = range(5, 8)
_ANSWERED_WAIT_UNKNOWN, _WAIT, _ANSWERED_WAIT = range(8, 11)


def rounded_ratio(numerator: int, denominator: int) -> float:
  """numerator/denominator rounded half-up to 4 places; 0 when nothing.

  Decimal arithmetic, not float: the seed's DECIMAL(5,4) meant exact
  4-place rates, and float rounding turns 0.00005 into 0.0 or 0.0001
  depending on the binary representation.
  """
  if denominator == 0:
    return 0.0
  return float(
    (Decimal(numerator) / Decimal(denominator)).quantize(_FOUR_PLACES, rounding=ROUND_HALF_UP)
  )


class AbandonStatsFn(beam.CombineFn):
  """Sums the numerators and denominators of abandon rate and service level.

  Input: OfferedCall. Accumulator: an 11-item list. Output: AbandonStats.
  `short_abandon_threshold_seconds`: abandons that waited less than this are
  also counted as short abandons (0 = none). `service_level_seconds`: an
  answered (abandoned) call counts as answered (abandoned) within the
  service level if it waited at most this. A call whose wait is unknown is
  never short nor within the service level, adds nothing to the wait sums
  and is counted in `wait_unknown_calls` (and, answered, in
  `answered_wait_unknown_calls`, the ASA denominator's correction).
  """

  def __init__(self, short_abandon_threshold_seconds: float, service_level_seconds: float):
    self._short_threshold = short_abandon_threshold_seconds
    self._sl_seconds = service_level_seconds

  def create_accumulator(self) -> List:
    return [0] * len(AbandonStats._fields)

  def add_input(self, acc: List, call: OfferedCall) -> List:
    acc[_OFFERED] += 1
    wait = call.wait_seconds
    outcome = call.outcome
    if outcome == ABANDONED:
      acc[_ABANDONED] += 1
      if wait is not None:
        if wait < self._short_threshold:
          acc[_SHORT] += 1
        if wait <= self._sl_seconds:
          acc[_ABANDONED_WITHIN] += 1
    elif outcome == ANSWERED:
      acc[_ANSWERED] += 1
      if wait is None:
        acc[_ANSWERED_WAIT_UNKNOWN] += 1
      else:
        acc[_ANSWERED_WAIT] += wait
        if wait <= self._sl_seconds:
          acc[_ANSWERED_WITHIN] += 1
    elif outcome == FLOW_OUT:
      acc[_FLOW_OUT] += 1
    if wait is None:
      acc[_WAIT_UNKNOWN] += 1
    else:
      acc[_WAIT] += wait
    return acc

  def merge_accumulators(self, accumulators: Iterable[List]) -> List:
    merged = self.create_accumulator()
    for acc in accumulators:
      for i, value in enumerate(acc):
        merged[i] += value
    return merged

  def extract_output(self, acc: List) -> AbandonStats:
    return AbandonStats(*acc)


def accumulator_of(row: AbandonMetrics) -> List:
  """The AbandonStatsFn accumulator of a stored row: every one of its sums
  is a column of the row, so a window's figures can be carried on from
  its latest pane (a reprocessing run, transforms/restatement.py) without
  the calls behind it. A column a row of an older store lacks (None)
  counted nothing."""
  return [getattr(row, name) or 0 for name in AbandonStats._fields]


def _counts(stats: AbandonStats) -> Counts:
  return Counts(
    offered=stats.total_calls,
    abandoned=stats.abandoned_calls,
    short_abandoned=stats.short_abandoned_calls,
    answered_within=stats.answered_within_sl,
    abandoned_within=stats.abandoned_within_sl,
  )


def to_abandon_metrics(
  pane: WindowPane,
  abandon_rate_definition: str = DEFAULT_ABANDON_RATE,
  service_level_definition: str = DEFAULT_SERVICE_LEVEL,
  queue_names: Optional[Mapping[str, str]] = None,
) -> AbandonMetrics:
  """The row of a pane, its rates by the named definitions
  (transforms/metric_definitions.py), its queue named by `queue_names`
  (the id where it has none)."""
  queue_id, channel = split_row_key(pane.key)
  stats: AbandonStats = pane.result
  counts = _counts(stats)
  abandon_rate = definition(ABANDON_RATE_DEFINITIONS, abandon_rate_definition)
  service_level = definition(SERVICE_LEVEL_DEFINITIONS, service_level_definition)
  return AbandonMetrics(
    queue_id=queue_id,
    window_start=pane.window_start,
    window_end=pane.window_end,
    total_calls=stats.total_calls,
    abandoned_calls=stats.abandoned_calls,
    short_abandoned_calls=stats.short_abandoned_calls,
    answered_within_sl=stats.answered_within_sl,
    total_wait_seconds=float(stats.total_wait_seconds),
    abandon_rate=rounded_ratio(*abandon_rate(counts)),
    service_level=rounded_ratio(*service_level(counts)),
    pane_index=pane.pane_index,
    pane_timing=pane.timing,
    answered_calls=stats.answered_calls,
    flow_out_calls=stats.flow_out_calls,
    abandoned_within_sl=stats.abandoned_within_sl,
    wait_unknown_calls=stats.wait_unknown_calls,
    answered_wait_unknown_calls=stats.answered_wait_unknown_calls,
    answered_wait_seconds=float(stats.answered_wait_seconds),
    abandon_rate_definition=abandon_rate_definition,
    service_level_definition=service_level_definition,
    channel=channel,
    queue_name=(queue_names or {}).get(queue_id, queue_id),
  )


class AbandonRate(WindowedMetric):
  """Abandon statistics per queue, channel and fixed window: the
  WindowedMetric of AbandonStatsFn per `row_key` (channel and queue id).

  Input: PCollection[OfferedCall] (deduplicated, event-timed).
  Outputs (a dict):
    `rows`: PCollection[AbandonMetrics], one row per pane (EARLY figures
      so far of the open window every `early_firing` of processing
      time if set, ON_TIME, then LATE updates within allowed lateness;
      accumulating).
    `late`: PCollection[LateArrival] whose `value` is the OfferedCall.
    `revisions`: PCollection[MetricRevision], one per LATE pane: the
      window's figures before and after, and the calls that changed them.
    `counted` (with `contact_detail`): PCollection[CountedElement] whose
      `value` is the OfferedCall, with the first pane that counts it.
  Rates: by the named definitions of transforms/metric_definitions.py
  (default abandoned/offered and answered within target/offered), rounded
  half-up to 4 places, 0 when the denominator is 0.
  """

  def __init__(
    self,
    window_size: Duration,
    allowed_lateness: Duration,
    short_abandon_threshold_seconds: float,
    service_level_seconds: float,
    key_idle_ttl: Duration,
    max_out_of_orderness: Duration = Duration(0),
    abandon_rate_definition: str = DEFAULT_ABANDON_RATE,
    service_level_definition: str = DEFAULT_SERVICE_LEVEL,
    queue_names: Optional[Mapping[str, str]] = None,
    early_firing: Duration = Duration(0),
    processing_clock: Callable[[], Timestamp] = Timestamp.now,
    shards: int = DEFAULT_STATE_SHARDS,
    contact_detail: bool = False,
  ):
    # Unknown names fail here, when the graph is built.
    definition(ABANDON_RATE_DEFINITIONS, abandon_rate_definition)
    definition(SERVICE_LEVEL_DEFINITIONS, service_level_definition)
    super().__init__(
      AbandonStatsFn(short_abandon_threshold_seconds, service_level_seconds),
      row_key,
      functools.partial(
        to_abandon_metrics,
        abandon_rate_definition=abandon_rate_definition,
        service_level_definition=service_level_definition,
        # A plain dict: the function is pickled with the step, and a
        # read-only mapping proxy cannot be.
        queue_names=dict(queue_names or {}),
      ),
      window_size,
      allowed_lateness,
      key_idle_ttl,
      metrics_namespace='abandon_rate',
      max_out_of_orderness=max_out_of_orderness,
      early_firing=early_firing,
      processing_clock=processing_clock,
      shards=shards,
      element_id=operator.attrgetter('call_id'),
      counted=contact_detail,
      to_revision=metric_revision,
    )
