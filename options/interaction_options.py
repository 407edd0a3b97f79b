"""Options of the CXone interaction flow (volumes, join, patterns)."""

from typing import FrozenSet

from apache_beam.options.pipeline_options import PipelineOptions

from options.deprecation import RenamedFlag


def parse_statuses(value: str) -> FrozenSet[str]:
  """'FAILED, DROPPED' -> frozenset({'FAILED', 'DROPPED'}).

  The options keep the comma-separated string: portable runners send every
  option to the job server as a protobuf Struct, which cannot hold a set.
  """
  statuses = frozenset(s.strip() for s in value.split(',') if s.strip())
  if not statuses:
    raise ValueError(f'give at least one status, got {value!r}')
  return statuses


class InteractionOptions(PipelineOptions):
  """Interaction volumes per channel, the customer join and pattern alerts."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('CXone interactions')
    group.add_argument(
      '--volume_window_seconds',
      '--volume_window_size',
      action=RenamedFlag,
      type=int,
      default=10,
      help='Fixed window size in seconds for interaction volume per channel.',
    )
    group.add_argument(
      '--interaction_allowed_lateness_seconds',
      '--interaction_allowed_lateness',
      action=RenamedFlag,
      type=int,
      default=60,
      help='Seconds after a volume window end during which late '
      'interactions still update the window row (LATE panes). Later ones '
      'go to the late output. The call-metrics flow has its own '
      '--allowed_lateness_seconds.',
    )
    group.add_argument(
      '--interaction_dedupe_ttl_seconds',
      '--interaction_dedupe_ttl',
      action=RenamedFlag,
      type=int,
      default=600,
      help='Seconds of event time during which a re-delivered '
      'interactionId is recognised as a duplicate (and, whatever the event '
      'time, during the next 1,000 records of its shard). Keep it above '
      '--volume_window_seconds + --interaction_allowed_lateness_seconds so that a '
      'duplicate can never reach the late output. The call-metrics flow '
      'has its own --dedupe_ttl_seconds.',
    )
    group.add_argument(
      '--profile_wait_seconds',
      '--profile_wait',
      action=RenamedFlag,
      type=int,
      default=30,
      help='Seconds of event time an alert waits for a first customer '
      'profile before going on with tier UNKNOWN.',
    )
    group.add_argument(
      '--customer_state_ttl_seconds',
      '--customer_state_ttl',
      action=RenamedFlag,
      type=int,
      default=86400,
      help='Seconds of event time without activity after which a '
      "customer's profile state is dropped.",
    )
    group.add_argument(
      '--failure_statuses',
      default='FAILED',
      help='Comma-separated interaction statuses that count as failures.',
    )
    group.add_argument(
      '--callback_statuses',
      default='CALLBACK_REQUESTED',
      help='Comma-separated interaction statuses that are callback requests.',
    )
    group.add_argument(
      '--pattern_within_seconds',
      '--pattern_within',
      action=RenamedFlag,
      type=int,
      default=30,
      help='Seconds from the first of three failures to the callback '
      'request within which the pattern matches (Flink CEP within()).',
    )
    group.add_argument(
      '--pattern_tick_seconds',
      '--pattern_tick',
      action=RenamedFlag,
      type=int,
      default=5,
      help='Seconds of event time: buffered interactions are fed to the '
      'pattern when the (delayed) watermark passes the next multiple of '
      'this after them. Larger: fewer timer firings, alerts up to this '
      'much later, stragglers judged late at this granularity.',
    )
