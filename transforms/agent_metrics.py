"""Agent time per window: per queue and channel (AgentMetricsPerQueue) and
per agent (AgentActivityPerAgent), from AgentStates' spans.

Both are WindowedMetrics of AgentTimeFn (transforms/windowed_metric.py):
the call metrics' fixed windows, allowed lateness and late output. A span
of an agent serving several queues or channels counts in each of them.
"""

from typing import Iterable, Iterator, List, Mapping, NamedTuple

import apache_beam as beam
from apache_beam.utils.timestamp import Duration

from transforms.abandon_rate import rounded_ratio
from transforms.agent_status import place_key
from transforms.records import (
  AGENT_AFTER_CONTACT_WORK,
  AGENT_AVAILABLE,
  AGENT_NOT_READY,
  AGENT_ON_CONTACT,
  AGENT_ON_HOLD,
  AgentActivity,
  AgentMetrics,
  AgentSpan,
)
from transforms.sharding import DEFAULT_STATE_SHARDS
from transforms.windowed_metric import WindowedMetric
from transforms.windowing import WindowPane

# Accumulator slots: handled contacts, then milliseconds per state.
_HANDLED = 0
_SLOTS = {
  AGENT_ON_CONTACT: 1,
  AGENT_ON_HOLD: 2,
  AGENT_AFTER_CONTACT_WORK: 3,
  AGENT_AVAILABLE: 4,
  AGENT_NOT_READY: 5,
}


class AgentTime(NamedTuple):
  """Handled contacts and milliseconds per state of a window."""

  handled: int
  talk_ms: int
  hold_ms: int
  after_contact_work_ms: int
  available_ms: int
  not_ready_ms: int

  @property
  def working_ms(self) -> int:
    return self.talk_ms + self.hold_ms + self.after_contact_work_ms


class AgentTimeFn(beam.CombineFn):
  """AgentSpans to AgentTime: integer milliseconds (exact sums whatever
  the order; seconds only in the rows)."""

  def create_accumulator(self) -> List[int]:
    return [0] * 6

  def add_input(self, acc: List[int], span: AgentSpan) -> List[int]:
    acc[_HANDLED] += span.handled
    slot = _SLOTS.get(span.state)
    if slot is not None:
      acc[slot] += span.end - span.start
    return acc

  def merge_accumulators(self, accumulators: Iterable[List[int]]) -> List[int]:
    merged = self.create_accumulator()
    for acc in accumulators:
      for i, value in enumerate(acc):
        merged[i] += value
    return merged

  def extract_output(self, acc: List[int]) -> AgentTime:
    return AgentTime(*acc)


def _figures(time: AgentTime) -> dict:
  working = time.working_ms
  return {
    'handled_contacts': time.handled,
    'talk_seconds': time.talk_ms / 1000,
    'hold_seconds': time.hold_ms / 1000,
    'after_contact_work_seconds': time.after_contact_work_ms / 1000,
    'available_seconds': time.available_ms / 1000,
    'not_ready_seconds': time.not_ready_ms / 1000,
    # Seconds per contact, to 4 places, from exact milliseconds.
    'aht_seconds': rounded_ratio(working, time.handled * 1000) if time.handled else 0.0,
    'occupancy': rounded_ratio(working, working + time.available_ms),
  }


def _per_place(span: AgentSpan) -> Iterator[AgentSpan]:
  """The span once per (queue, channel) the agent serves."""
  for queue_id in span.queues:
    for channel in span.channels:
      yield span._replace(queues=[queue_id], channels=[channel])


def _place_key(span: AgentSpan) -> str:
  return place_key(span.queues[0], span.channels[0])


def to_agent_metrics(pane: WindowPane, queue_names: Mapping[str, str]) -> AgentMetrics:
  channel, _, queue_id = pane.key.partition('|')
  return AgentMetrics(
    queue_id=queue_id,
    channel=channel,
    window_start=pane.window_start,
    window_end=pane.window_end,
    pane_index=pane.pane_index,
    pane_timing=pane.timing,
    queue_name=queue_names.get(queue_id, queue_id),
    **_figures(pane.result),
  )


def to_agent_activity(pane: WindowPane) -> AgentActivity:
  return AgentActivity(
    agent_id=pane.key,
    window_start=pane.window_start,
    window_end=pane.window_end,
    pane_index=pane.pane_index,
    pane_timing=pane.timing,
    **_figures(pane.result),
  )


class AgentMetricsPerQueue(beam.PTransform):
  """Input: PCollection[AgentSpan]. Outputs (dict): `rows`:
  PCollection[AgentMetrics] panes per queue, channel and window; `late`:
  PCollection[LateArrival] of spans after their window's expiry."""

  def __init__(
    self,
    *,
    window_size: Duration,
    allowed_lateness: Duration,
    key_idle_ttl: Duration,
    max_out_of_orderness: Duration,
    queue_names: Mapping[str, str],
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    names = dict(queue_names)
    self._metric = WindowedMetric(
      AgentTimeFn(),
      _place_key,
      lambda pane: to_agent_metrics(pane, names),
      window_size,
      allowed_lateness,
      key_idle_ttl,
      metrics_namespace='agent_metrics',
      max_out_of_orderness=max_out_of_orderness,
      shards=shards,
    )

  def expand(self, spans):
    return (
      spans
      | 'PerQueue' >> beam.FlatMap(_per_place).with_output_types(AgentSpan)
      | 'Metric' >> self._metric
    )


class AgentActivityPerAgent(beam.PTransform):
  """Input: PCollection[AgentSpan]. Outputs (dict): `rows`:
  PCollection[AgentActivity] panes per agent and window; `late`: as
  AgentMetricsPerQueue's."""

  def __init__(
    self,
    *,
    window_size: Duration,
    allowed_lateness: Duration,
    key_idle_ttl: Duration,
    max_out_of_orderness: Duration,
    shards: int = DEFAULT_STATE_SHARDS,
  ):
    super().__init__()
    self._metric = WindowedMetric(
      AgentTimeFn(),
      lambda span: span.agent_id,
      to_agent_activity,
      window_size,
      allowed_lateness,
      key_idle_ttl,
      metrics_namespace='agent_activity',
      max_out_of_orderness=max_out_of_orderness,
      shards=shards,
    )

  def expand(self, spans):
    return spans | 'Metric' >> self._metric
