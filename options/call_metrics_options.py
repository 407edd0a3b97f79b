"""Options of the call-metrics flow (abandon rate per queue)."""

from apache_beam.options.pipeline_options import PipelineOptions

from options.deprecation import RenamedFlag

# The choices are spelled out, not imported: options/ stays free of the
# transforms; tests/test_metric_definitions.py checks they match.
CALL_EVENT_FORMATS = ('seed', 'genesys_cloud', 'amazon_connect', 'amazon_connect_events')
ABANDON_RATE_DEFINITIONS = ('abandoned_over_offered', 'exclude_short_abandons')
SERVICE_LEVEL_DEFINITIONS = (
  'answered_within_over_offered',
  'abandons_ignored',
  'abandons_negative',
  'abandons_positive',
  'exclude_short_abandons',
)
CONNECT_QUEUE_KEYS = ('name', 'arn')
# transforms/records.py CHANNELS, spelled out for the same reason.
CHANNELS = (
  'voice',
  'chat',
  'email',
  'task',
  'message',
  'callback',
  'video',
  'cobrowse',
  'screenshare',
  'unknown',
)


class CallMetricsOptions(PipelineOptions):
  """Input format, windows, lateness and metric definitions for abandon
  statistics."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('call metrics')
    group.add_argument(
      '--call_event_format',
      choices=CALL_EVENT_FORMATS,
      default='seed',
      help='Format of the call records, from files and Kafka alike: seed '
      '(the cc-call-logs schema), genesys_cloud (conversation detail '
      'notifications through Amazon EventBridge, or bare), '
      'amazon_connect (contact trace records through Kinesis) or '
      'amazon_connect_events (contact events through Amazon EventBridge).',
    )
    group.add_argument(
      '--abandon_rate_definition',
      choices=ABANDON_RATE_DEFINITIONS,
      default='abandoned_over_offered',
      help='abandoned_over_offered (Genesys Cloud, Amazon Connect) or '
      'exclude_short_abandons: (abandoned - short) / (offered - short) '
      '(Talkdesk, Cisco).',
    )
    group.add_argument(
      '--service_level_definition',
      choices=SERVICE_LEVEL_DEFINITIONS,
      default='answered_within_over_offered',
      help="answered_within_over_offered; Cisco's abandons_ignored "
      '(answered within / (offered - abandoned within)), '
      'abandons_negative (answered within / offered), abandons_positive '
      '((answered within + abandoned within) / offered); or '
      'exclude_short_abandons (answered within / (offered - short '
      'abandoned), Talkdesk). "Within" means a known wait <= '
      '--service_level_seconds.',
    )
    group.add_argument(
      '--connect_queue_key',
      choices=CONNECT_QUEUE_KEYS,
      default='name',
      help='amazon_connect: the queue of a contact is its Queue.Name or its Queue.ARN.',
    )
    group.add_argument(
      '--genesys_max_queue_wait_seconds',
      '--genesys_max_queue_wait',
      action=RenamedFlag,
      type=int,
      default=3600,
      help='genesys_cloud: seconds of event time an acd.start waits for '
      'its acd.end before it is dropped (bounds the pairing state); a '
      'call that waited longer counts with its wait unknown.',
    )
    group.add_argument(
      '--genesys_callback_max_queue_wait_seconds',
      '--genesys_callback_max_queue_wait',
      action=RenamedFlag,
      type=int,
      default=86400,
      help='genesys_cloud: as --genesys_max_queue_wait_seconds, for callbacks '
      '(mediaType CALLBACK), which routinely wait hours for an agent.',
    )
    group.add_argument(
      '--genesys_trigger_topic',
      default=None,
      help='genesys_cloud: the topic of the Process Automation trigger '
      'whose bare event bodies this job reads, e.g. '
      "'v2.detail.events.conversation.{id}.acd.end'; unset, a bare "
      "body's topic is told by its fields (docs/vendor_formats.md).",
    )
    group.add_argument(
      '--channels',
      default=','.join(CHANNELS),
      help='Comma-separated channels whose contacts the call metrics count '
      f'({", ".join(CHANNELS)}); contacts of other channels are passed '
      'over and counted.',
    )
    group.add_argument(
      '--queue_names',
      default=None,
      help='A CSV (queue_id,queue_name) or JSON object file naming queue '
      'ids, e.g. exported from the Genesys Cloud queues API; outputs and '
      'the wallboard show the names; unknown ids stay ids.',
    )
    group.add_argument(
      '--window_seconds',
      '--window_size',
      action=RenamedFlag,
      type=int,
      default=300,
      help='Fixed (tumbling) window size in seconds for abandon metrics per queue.',
    )
    group.add_argument(
      '--allowed_lateness_seconds',
      '--allowed_lateness',
      action=RenamedFlag,
      type=int,
      default=60,
      help='Seconds after a window end during which late calls still '
      'update the window row (LATE panes). Later calls go to the late '
      'output. The interaction flow has its own '
      '--interaction_allowed_lateness_seconds.',
    )
    group.add_argument(
      '--short_abandon_threshold_seconds',
      '--short_abandon_threshold',
      action=RenamedFlag,
      type=float,
      default=0,
      help='Abandoned calls that waited less than this many seconds are '
      'also counted as short abandons (0 = none); a call whose wait is '
      'unknown is never a short abandon.',
    )
    group.add_argument(
      '--service_level_seconds',
      type=float,
      default=20,
      help='Answered calls that waited at most this many seconds count as '
      'answered within the service level.',
    )
    group.add_argument(
      '--dedupe_ttl_seconds',
      '--dedupe_ttl',
      action=RenamedFlag,
      type=int,
      default=600,
      help='Seconds of event time during which a re-delivered call_uuid is '
      'recognised as a duplicate (and, whatever the event time, during the '
      'next 1,000 records of its shard, about 32,000 of the stream). '
      'At-least-once sources re-deliver within a checkpoint interval or '
      'two; keep it above window size + allowed lateness so that a '
      'duplicate can never reach the late output. The interaction flow has '
      'its own --interaction_dedupe_ttl_seconds.',
    )
