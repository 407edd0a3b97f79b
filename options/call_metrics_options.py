"""Options of the call-metrics flow (abandon rate per queue)."""
from apache_beam.options.pipeline_options import PipelineOptions


class CallMetricsOptions(PipelineOptions):
  """Windows, lateness and metric definitions for abandon statistics."""
  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('call metrics')
    group.add_argument(
        '--window_size',
        type=int,
        default=300,
        help='Fixed (tumbling) window size in seconds for abandon metrics '
        'per queue.')
    group.add_argument(
        '--allowed_lateness',
        type=int,
        default=60,
        help='Seconds after a window end during which late events still '
        'update the window row (LATE panes). Later events go to the late '
        'output.')
    group.add_argument(
        '--short_abandon_threshold',
        type=float,
        default=0,
        help='Abandoned calls that waited less than this many seconds are '
        'also counted as short abandons (0 = none).')
    group.add_argument(
        '--service_level_seconds',
        type=float,
        default=20,
        help='Answered calls that waited at most this many seconds count as '
        'answered within the service level.')
    group.add_argument(
        '--dedupe_ttl',
        type=int,
        default=600,
        help='Seconds of event time during which a re-delivered call_uuid is '
        'recognised as a duplicate (and, whatever the event time, during the '
        'next 1,000 records of its shard, about 32,000 of the stream). '
        'At-least-once sources re-deliver within a checkpoint interval or '
        'two; keep it above window size + allowed lateness so that a '
        'duplicate can never reach the late output.')
