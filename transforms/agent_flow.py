"""AgentFlow: the whole agent flow from raw agent events to tables."""

import apache_beam as beam

from options.config import AgentConfig
from transforms.agent_metrics import AgentActivityPerAgent, AgentMetricsPerQueue
from transforms.agent_states import AGENT_PRESENCE, AgentStates
from transforms.agent_status import AgentStatusPerQueue
from transforms.formats import agent_registry
from transforms.formats.agent_seed import AGENT_EVENTS
from transforms.records import AgentSpan, LateEvent
from transforms.windowing import LateArrival, to_late_event


def _late_row(source: str, arrival: LateArrival) -> LateEvent:
  """The late_events row of a span that reached its window after the
  window's expiry: one per span (an agent's span late in several queues
  is one row)."""
  span: AgentSpan = arrival.value
  return to_late_event(source, arrival._replace(key=span.agent_id), f'{span.agent_id}@{span.start}')


class AgentFlow(beam.PTransform):
  """Raw agent events of one format to agents by state, agent metrics and
  agent activity.

  Input: PCollection[SourceRecord] in the format `config.agent_event_format`
  names (transforms/formats/agent_registry.py). `config`: the flow's
  settings (options/config.py AgentConfig), by keyword.
  Output: dict table name -> PCollection:
    `agent_status`: AgentStatus per queue and channel, on every change;
    `agent_metrics`: AgentMetrics panes per queue, channel and window;
    `agent_activity`: AgentActivity panes per agent and window;
    `late_events`: agent time that reached its window after the window's
      expiry, reason `after_window_expiry`;
    `dead_letters`: DeadLetter for every record that failed validation.
  """

  def __init__(self, *, source_name: str, config: AgentConfig):
    super().__init__()
    config = AgentConfig.checked(config)
    self._source_name = source_name
    self._agent_events = agent_registry.agent_event_format(config.agent_event_format).agent_events(
      config
    )
    self._states = AgentStates(
      window_size=config.window_size, silence_timeout=config.agent_silence_timeout
    )
    self._status = AgentStatusPerQueue(queue_names=config.queue_names)
    windows = dict(
      window_size=config.window_size,
      allowed_lateness=config.allowed_lateness,
      key_idle_ttl=config.event_time.key_idle_ttl,
      max_out_of_orderness=config.event_time.max_out_of_orderness,
      shards=config.event_time.state_shards,
    )
    self._metrics = AgentMetricsPerQueue(queue_names=config.queue_names, **windows)
    self._activity = AgentActivityPerAgent(**windows)

  def expand(self, records):
    parsed = records | 'AgentEvents' >> self._agent_events
    states = parsed[AGENT_EVENTS] | 'AgentStates' >> self._states
    metrics = states['agent_spans'] | 'AgentMetrics' >> self._metrics
    activity = states['agent_spans'] | 'AgentActivity' >> self._activity
    source = self._source_name
    late = (metrics['late'], activity['late']) | 'LateSpans' >> beam.Flatten()
    return {
      'agent_status': states[AGENT_PRESENCE] | 'AgentStatus' >> self._status,
      'agent_metrics': metrics['rows'],
      'agent_activity': activity['rows'],
      'late_events': late | 'LateRows' >> beam.Map(lambda a: _late_row(source, a)),
      'dead_letters': parsed['dead_letters'],
    }
