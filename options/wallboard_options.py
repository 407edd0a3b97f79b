"""Options of the SLA wallboard (`python -m pipelines.wallboard`).

The sink it reads and that sink's settings are the job's own flags:
`--sink` and `--sqlite_path` (SinkOptions), the `--cassandra_*` options
(CassandraOptions) and `--max_out_of_orderness_seconds` (EventTimeOptions),
so the wallboard is started with the flags the job ran with.
"""

from apache_beam.options.pipeline_options import PipelineOptions

from options.deprecation import RenamedFlag

# The sinks whose tables the wallboard can read (Kafka topics it cannot).
READABLE_SINKS = ('sqlite', 'cassandra')


class WallboardOptions(PipelineOptions):
  """Where the wallboard reads, where it listens, and its SLA thresholds."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('wallboard')
    group.add_argument(
      '--store',
      choices=READABLE_SINKS,
      default=None,
      help='Deprecated, use --sink: the sink to read.',
    )
    group.add_argument(
      '--host',
      default='127.0.0.1',
      help='Address the web server listens on. The default serves this '
      'machine only; 0.0.0.0 serves the network (the page shows contact-'
      'center data to anyone who can reach it).',
    )
    group.add_argument('--port', type=int, default=8050, help='TCP port of the web server.')
    group.add_argument(
      '--abandon_rate_warn',
      type=float,
      default=5.0,
      help='Abandon rate in percent from which a queue tile turns amber.',
    )
    group.add_argument(
      '--abandon_rate_alert',
      type=float,
      default=10.0,
      help='Abandon rate in percent from which a queue tile turns red.',
    )
    group.add_argument(
      '--service_level_target',
      type=float,
      default=80.0,
      help='Service level target in percent (answered within '
      '--service_level_seconds of the job, over calls offered); a queue '
      'below it turns red.',
    )
    group.add_argument(
      '--longest_wait_warn_seconds',
      '--longest_wait_warn',
      action=RenamedFlag,
      type=float,
      default=60.0,
      help='Seconds the longest-waiting contact of a queue has waited from '
      'which its longest wait (and the tile) turns amber.',
    )
    group.add_argument(
      '--longest_wait_alert_seconds',
      '--longest_wait_alert',
      action=RenamedFlag,
      type=float,
      default=120.0,
      help='Seconds the longest-waiting contact of a queue has waited from '
      'which its longest wait (and the tile) turns red.',
    )
    group.add_argument(
      '--queue_groups',
      default=None,
      help='JSON file of queue groups, {"group name": ["queue id", ...], '
      '...}: a page opened as /?group=NAME shows those queues only.',
    )
    group.add_argument(
      '--refresh_seconds',
      type=float,
      default=2.0,
      help='How often the server reads the sink; pages get the new '
      'numbers pushed (server-sent events) right after each read.',
    )
