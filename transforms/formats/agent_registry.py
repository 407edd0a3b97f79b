"""The input formats of `--agent_event_format`, by name.

Each gives the replay its event-time function and the agent flow its
transform from PCollection[SourceRecord] to {'agent_events':
PCollection[AgentEvent], 'dead_letters': PCollection[DeadLetter]}, both
built from the agent flow's config (options/config.py AgentConfig).
"""

import functools
from typing import Callable, Dict, NamedTuple

import apache_beam as beam

from options.config import AgentConfig
from transforms.formats import agent_amazon_connect, agent_genesys_cloud, agent_seed
from transforms.formats.registry import EventTimeFn


class AgentEventFormat(NamedTuple):
  event_time_ms: Callable[[AgentConfig], EventTimeFn]
  agent_events: Callable[[AgentConfig], beam.PTransform]


AGENT_FORMATS: Dict[str, AgentEventFormat] = {
  'seed': AgentEventFormat(
    lambda c: functools.partial(agent_seed.agent_event_time_ms, rules=c.field_rules),
    lambda c: agent_seed.SeedAgentEvents(c.field_rules),
  ),
  'genesys_cloud': AgentEventFormat(
    lambda c: functools.partial(
      agent_genesys_cloud.genesys_agent_event_time_ms, rules=c.field_rules
    ),
    agent_genesys_cloud.GenesysAgentEvents,
  ),
  'amazon_connect': AgentEventFormat(
    lambda c: functools.partial(
      agent_amazon_connect.connect_agent_event_time_ms,
      rules=c.field_rules,
      queue_key=c.connect_queue_key,
    ),
    lambda c: agent_amazon_connect.ConnectAgentEvents(c, c.connect_queue_key),
  ),
}


def agent_event_format(name: str) -> AgentEventFormat:
  """The format called `name`; raises ValueError naming the known ones."""
  if name not in AGENT_FORMATS:
    raise ValueError(f'unknown agent event format {name!r}; known: {", ".join(AGENT_FORMATS)}')
  return AGENT_FORMATS[name]
