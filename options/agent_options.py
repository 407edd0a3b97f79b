"""Options of the agent flow: agents by state per queue, occupancy and
handle time."""

from apache_beam.options.pipeline_options import PipelineOptions

from options.deprecation import RenamedFlag

# Spelled out, not imported: options/ stays free of the transforms;
# tests/test_agent_formats.py checks they match the registry.
AGENT_EVENT_FORMATS = ('seed', 'amazon_connect', 'genesys_cloud')


class AgentOptions(PipelineOptions):
  """Agent-state input and the agent flow's settings."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('agents')
    group.add_argument(
      '--agent_events',
      default=None,
      help='A JSON-lines file of agent events to replay (local runner), in --agent_event_format.',
    )
    group.add_argument(
      '--kafka_agent_events_topic',
      default=None,
      help='The Kafka topic of agent events (--source=kafka); unset: no agent flow.',
    )
    group.add_argument(
      '--agent_event_format',
      choices=AGENT_EVENT_FORMATS,
      default='seed',
      help="Format of the agent events: seed (the product's AGENT_STATE "
      'JSON), amazon_connect (the Amazon Connect agent event stream) or '
      'genesys_cloud (user routing-status and presence notifications with '
      'the conversation user and after-call-work events; needs '
      '--queue_members).',
    )
    group.add_argument(
      '--queue_members',
      default=None,
      help='A JSON object file mapping agent (user) ids to the queue ids '
      'they take contacts from, e.g. exported from the Genesys Cloud '
      'queue members API; genesys_cloud events name no queues.',
    )
    group.add_argument(
      '--agent_silence_timeout_seconds',
      '--agent_silence_timeout',
      action=RenamedFlag,
      type=int,
      default=900,
      help='Seconds of event time without any event of an agent (heartbeats '
      'included) after which it is taken as logged out, counted in '
      'agents/silent_logouts.',
    )
