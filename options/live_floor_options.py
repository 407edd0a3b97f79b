"""Options of the live floor: contacts waiting now, the longest wait, and
the open window's early figures."""

from apache_beam.options.pipeline_options import PipelineOptions

from options.deprecation import RenamedFlag


class LiveFloorOptions(PipelineOptions):
  """Queue status from contact lifecycle events, and early panes of the
  open window."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('live floor')
    group.add_argument(
      '--status_interval_seconds',
      '--status_interval',
      action=RenamedFlag,
      type=int,
      default=5,
      help='Seconds of processing time between refreshes of a queue_status '
      'row while contacts wait in the queue, so its longest wait keeps '
      'growing without new events (it is also written on every change).',
    )
    group.add_argument(
      '--max_queue_wait_seconds',
      '--max_queue_wait',
      action=RenamedFlag,
      type=int,
      default=14400,
      help='Seconds of event time after which a contact still waiting is '
      'taken to have lost its exit event: dropped from queue_status, '
      'counted (queue_status/lost_exits) and written to late_events with '
      'reason queue_exit_lost. Bounds the state.',
    )
    group.add_argument(
      '--max_waiting_listed',
      type=int,
      default=100,
      help='The oldest waiting contacts listed per queue and channel in '
      'waiting_contacts (all of them are counted in queue_status).',
    )
    group.add_argument(
      '--early_firing_seconds',
      type=int,
      default=10,
      help='Seconds of processing time between EARLY panes of the open '
      'window of abandon_metrics (its figures so far); 0: none, only the '
      'ON_TIME and LATE panes.',
    )
