"""Options shared by every flow: event time, sources and sinks."""

from apache_beam.options.pipeline_options import PipelineOptions

from options.deprecation import RenamedFlag

# The sinks --sink may name, in the order --help and the template
# list them: the names of the sink registry (transforms/sink_registry.py),
# which options may not import (it builds the sinks from options/config.py);
# tests/test_import_graph.py checks that the two agree.
SINK_NAMES = ('sqlite', 'cassandra', 'kafka')
# The sink written when no --sink is given: embedded, needs no service.
DEFAULT_SINK = 'sqlite'


class EventTimeOptions(PipelineOptions):
  """How event time and the watermark behave, for every flow."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('event time')
    group.add_argument(
      '--max_out_of_orderness_seconds',
      '--max_out_of_orderness',
      action=RenamedFlag,
      type=int,
      default=10,
      help='Bounded out-of-orderness in seconds: every event-time decision '
      '(window firing and expiry, pattern order, profile wait) uses the '
      "source's watermark (the largest event time seen) minus this.",
    )
    group.add_argument(
      '--key_idle_ttl_seconds',
      '--key_idle_ttl',
      action=RenamedFlag,
      type=int,
      default=900,
      help='Seconds of event time after its last event and its last open '
      'window during which a key (queue and channel, interaction channel, '
      "agent) keeps its windows' state; after that it is remembered by name "
      'only, so its late events are still judged late (docs/design.md, '
      '"When an event is late").',
    )


class FieldRuleOptions(PipelineOptions):
  """Limits on untrusted fields, applied by every parser (a record that
  breaks one is a dead letter with the rule's reason)."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('field rules')
    group.add_argument(
      '--max_id_length',
      type=int,
      default=256,
      help='Most characters of an id or key field (call_uuid, queue_id, '
      'agent_id, interactionId, customerId, channel, status, tier, '
      'region...); longer: dead letter field_too_long.',
    )
    group.add_argument(
      '--max_wait_seconds',
      type=float,
      default=86400,
      help='Largest wait in queue accepted, in seconds; larger: dead letter value_out_of_range.',
    )
    group.add_argument(
      '--max_future_skew_seconds',
      '--max_future_skew',
      action=RenamedFlag,
      type=int,
      default=300,
      help='Seconds an event time may be ahead of the processing-time '
      'clock (producer clock skew); later: dead letter future_timestamp.',
    )


class FileReplayOptions(PipelineOptions):
  """Local replay of JSON-lines files as streams (no Kafka needed)."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('file replay')
    group.add_argument(
      '--call_events',
      default=None,
      help='Path of a JSON-lines file of call events to replay, one event '
      'per line, file order = arrival order.',
    )
    group.add_argument(
      '--data_actions',
      default=None,
      help='Path of a JSON-lines file of CXone Data Action events '
      '(interactions and customer updates) to replay.',
    )
    group.add_argument(
      '--replay_poll_size',
      type=int,
      default=500,
      help='Lines delivered per poll of the replay; the watermark advances '
      'between polls (like Kafka max.poll.records).',
    )


class SinkOptions(PipelineOptions):
  """Where results go."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('sinks')
    group.add_argument(
      '--sink',
      action='append',
      choices=SINK_NAMES,
      default=None,
      help=f'Where the results are written, one of {", ".join(SINK_NAMES)}; repeat '
      f'for several (default: {DEFAULT_SINK}).',
    )
    group.add_argument(
      '--sqlite_path',
      default='./output/contact_center.db',
      help='SQLite database file of the embedded sink, created on demand.',
    )
    group.add_argument(
      '--contact_detail_ttl_seconds',
      type=int,
      default=7 * 24 * 3600,
      help='How long the contacts behind each window (window_contacts, the '
      "wallboard's drill-down) are kept after they are written: a Cassandra "
      'TTL, pruned from SQLite (default 7 days). 0 writes no contact '
      'detail at all.',
    )
