"""What the launch template says about each job option beyond its argparse
declaration: its label, the shape of a valid value, and when it applies.

In: nothing; read by `python -m pipelines.template_metadata`, which builds
templates/contact_center/metadata.json from the options' declarations
(help, default, choices, type, repeatable, group) and this table, in the
table's order (a parent before its children: pipelines/template_spec.py).
Beam's own runner options are described here in the template's words
(`help`, `group`, `default`, `choices`), and so are the Flink flags the
launcher passes through to Beam's Java FlinkPipelineOptions
(`FlinkPassThroughOptions`), which no Python options class declares.
"""

import argparse
from typing import NamedTuple, Optional, Tuple

from options.call_metrics_options import CHANNELS
from options.stream_options import DEFAULT_SINK

TEMPLATE_NAME = 'Contact-center streaming analytics'
TEMPLATE_DESCRIPTION = (
  'Call records (the seed schema, Genesys Cloud notifications or Amazon '
  'Connect contact records) and CXone Data Actions (replayed files or Kafka) '
  'to abandon rate and service level per queue, interaction volume per '
  'channel and callback-pattern alerts, with late and malformed records '
  'routed, not dropped. Secrets are never parameters: they are read from '
  'environment variables named by the *_env parameters.'
)


class Value(NamedTuple):
  """A valid value: the regex it fully matches and, for error messages,
  what that looks like in words."""

  regex: str
  expected: str


# Not given: the option's own declaration says it.
FROM_OPTION = object()


class Param(NamedTuple):
  """One option as a template parameter. `value` is None for choices and
  flags (their regex follows from the declaration). `when=(parent, value,
  ...)`: the parameter applies only while `parent` has one of the values.
  `input_file`: a local path must exist at launch; `sensitive`: error
  messages show a value only up to its first `=`."""

  label: str
  value: Optional[Value] = None
  when: Tuple[str, ...] = ()
  required: bool = False
  input_file: bool = False
  sensitive: bool = False
  # For Beam's options, which are declared without the template in mind.
  group: Optional[str] = None
  help: Optional[str] = None
  default: object = FROM_OPTION
  choices: Optional[Tuple[str, ...]] = None


class FlinkPassThroughOptions:
  """Flags of Beam's Java FlinkPipelineOptions that the launcher passes to
  the Flink job server unchanged. Declared like an options class so that
  the template is built from them alike, but deliberately not a
  PipelineOptions: Python's Beam does not know them (it keeps them for the
  job server as unknown flags)."""

  @classmethod
  def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group('Flink checkpoints and state')
    group.add_argument(
      '--checkpointing_interval',
      type=int,
      help=(
        'Interval between checkpoints; without it no checkpoints are taken and '
        'Kafka offsets are never committed.'
      ),
    )
    group.add_argument(
      '--checkpointing_mode',
      choices=('EXACTLY_ONCE', 'AT_LEAST_ONCE'),
      help='EXACTLY_ONCE or AT_LEAST_ONCE (the sinks are idempotent upserts, so both converge).',
    )
    group.add_argument(
      '--min_pause_between_checkpoints',
      type=int,
      help='Minimum time between the end of a checkpoint and the start of the next.',
    )
    group.add_argument(
      '--checkpoint_timeout_millis',
      type=int,
      help='A checkpoint that takes longer is discarded.',
    )
    group.add_argument(
      '--state_backend',
      choices=('rocksdb', 'filesystem'),
      help=(
        'rocksdb (state on local disk, large state) or filesystem (state on the'
        ' heap); needs state_backend_storage_path.'
      ),
    )
    group.add_argument(
      '--state_backend_storage_path',
      help=(
        'Durable URI where checkpoints are written, e.g. file:///checkpoints or'
        ' s3://bucket/checkpoints.'
      ),
    )
    group.add_argument(
      '--savepoint_path',
      help=(
        'Savepoint or retained checkpoint to start from (upgrades without losing state or offsets).'
      ),
    )
    group.add_argument(
      '--number_of_execution_retries',
      type=int,
      help=(
        'Times Flink restarts the job after a failure before giving up, with a '
        "fixed delay (--execution_retry_delay). Leave empty for the cluster's "
        'restart strategy (scripts/flink.sh: exponential delay from 1 s to 1 '
        'min, never giving up, reset after 10 min without failure).'
      ),
    )
    group.add_argument(
      '--execution_retry_delay',
      type=int,
      help='Delay between restart attempts.',
    )
    group.add_argument(
      '--shutdown_sources_after_idle_ms',
      type=int,
      help=(
        'With checkpointing on, finished sources stay alive this long so that '
        'checkpoints can still complete; the job then finishes. Matters for '
        'bounded inputs (file replay) on Flink.'
      ),
    )
    group.add_argument(
      '--finish_bundle_before_checkpointing',
      action='store_true',
      help=(
        'Finish the current bundle before each checkpoint instead of buffering '
        'its output in the checkpoint.'
      ),
    )
    group.add_argument(
      '--object_reuse',
      action='store_true',
      help=(
        'Hand each record to the next chained operator instead of copying it '
        'through its coder: in a profile the copies were 29 % of the '
        "TaskManager's CPU samples (docs/benchmarks.md). Beam transforms never "
        'mutate their inputs.'
      ),
    )


_PORT = '([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])'
_HOST_PORT = '([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\\[[0-9A-Fa-f:.]+\\]):' + _PORT
_CHANNEL = '(' + '|'.join(CHANNELS) + ')'

SECONDS = Value('^[1-9][0-9]*$', 'a whole number of seconds > 0, e.g. 300')
SECONDS_OR_0 = Value('^(0|[1-9][0-9]*)$', 'a whole number of seconds >= 0, e.g. 60')
COUNT = Value('^[1-9][0-9]*$', 'a whole number > 0')
COUNT_OR_0 = Value('^(0|[1-9][0-9]*)$', 'a whole number >= 0')
JSON_LINES_FILE = Value('^[^\\r\\n\\x00]+$', 'a path to an existing JSON-lines file')
TOPIC = Value('^[A-Za-z0-9._-]{0,249}$', 'a Kafka topic name (letters, digits, . _ -) or empty')
PEM_FILE = Value('^[^\\r\\n\\x00]+$', 'a path to an existing PEM file')
MILLIS_OR_0 = Value('^(0|[1-9][0-9]*)$', 'a whole number of milliseconds >= 0, e.g. 5000')
MILLIS = Value('^[1-9][0-9]*$', 'a whole number of milliseconds > 0, e.g. 60000')
ENV_NAME = Value(
  '^[A-Za-z_][A-Za-z0-9_]*$',
  'the name of an environment variable (letters, digits, _), not its value',
)

PARAMETERS = {
  'source': Param('Source'),
  'kafka_bootstrap_servers': Param(
    'Kafka bootstrap servers',
    Value(
      f'^{_HOST_PORT}(,{_HOST_PORT})*$',
      'comma-separated host:port pairs, e.g. kafka-1:9092,kafka-2:9092 (port 1-65535)',
    ),
  ),
  'kafka_consumer_group': Param(
    'Kafka consumer group',
    Value('^[A-Za-z0-9._-]{1,249}$', 'a consumer group id (letters, digits, . _ -)'),
    when=('source', 'kafka'),
  ),
  'kafka_call_events_topic': Param('Call events topic', TOPIC, when=('source', 'kafka')),
  'kafka_data_actions_topic': Param('CXone Data Actions topic', TOPIC, when=('source', 'kafka')),
  'kafka_config': Param(
    'Kafka client setting',
    Value(
      '^(?![^=]*(password|jaas|secret))[A-Za-z0-9._-]+=[^\\r\\n]*$',
      (
        'key=value with a Kafka client setting name; settings holding '
        'credentials (password, jaas, secret) must come from '
        'kafka_secret_config_env'
      ),
    ),
    sensitive=True,
  ),
  'kafka_secret_config_env': Param(
    'Kafka client setting from the environment',
    Value(
      '^[A-Za-z0-9._-]+=[A-Za-z_][A-Za-z0-9_]*$',
      'key=ENV_VAR, e.g. sasl.jaas.config=KAFKA_SASL_JAAS_CONFIG',
    ),
  ),
  'skip_kafka_check': Param('Skip the Kafka start-up check'),
  'kafka_expansion_service': Param(
    'KafkaIO expansion service',
    Value(f'^{_HOST_PORT}$', 'host:port, e.g. 127.0.0.1:8097 (port 1-65535)'),
  ),
  'max_events_per_second': Param(
    'Read rate cap (events/s)',
    Value('^(?=.*[1-9])[0-9]+(\\.[0-9]+)?$', 'a number > 0, e.g. 500 or 12.5'),
    when=('source', 'kafka'),
  ),
  'kafka_max_num_records': Param('Stop after N records', COUNT, when=('source', 'kafka')),
  'call_events': Param(
    'Call events file', JSON_LINES_FILE, when=('source', 'file'), input_file=True
  ),
  'data_actions': Param(
    'CXone Data Actions file', JSON_LINES_FILE, when=('source', 'file'), input_file=True
  ),
  'replay_poll_size': Param(
    'Lines per replay poll',
    Value('^[1-9][0-9]*$', 'a whole number > 0, e.g. 500'),
    when=('source', 'file'),
  ),
  'max_out_of_orderness_seconds': Param('Max out-of-orderness (s)', SECONDS_OR_0),
  'key_idle_ttl_seconds': Param('Idle key TTL (s)', SECONDS),
  'call_event_format': Param('Call record format'),
  'abandon_rate_definition': Param('Abandon-rate definition'),
  'service_level_definition': Param('Service-level definition'),
  'connect_queue_key': Param(
    'Amazon Connect queue key', when=('call_event_format', 'amazon_connect')
  ),
  'genesys_max_queue_wait_seconds': Param(
    'Genesys: longest wait for an acd.end (s)',
    Value('^[1-9][0-9]*$', 'a whole number of seconds > 0, e.g. 3600'),
    when=('call_event_format', 'genesys_cloud'),
  ),
  'genesys_callback_max_queue_wait_seconds': Param(
    'Genesys: longest wait of a callback (s)',
    Value('^[1-9][0-9]*$', 'a whole number of seconds > 0, e.g. 86400'),
    when=('call_event_format', 'genesys_cloud'),
  ),
  'genesys_trigger_topic': Param(
    'Genesys: topic of bare event bodies',
    Value(
      '^v2\\.detail\\.events\\.conversation\\.[^.\\r\\n]+\\.acd\\.(start|end)$',
      'v2.detail.events.conversation.{id}.acd.start or ...acd.end',
    ),
    when=('call_event_format', 'genesys_cloud'),
  ),
  'channels': Param(
    'Channels counted',
    Value(f'^{_CHANNEL}(,{_CHANNEL})*$', 'a comma-separated list of channels, e.g. voice,chat'),
  ),
  'queue_names': Param(
    'Queue names file', Value('^[^\\r\\n\\x00]+$', 'a path to a CSV or JSON file')
  ),
  'window_seconds': Param('Abandon-metrics window (s)', SECONDS),
  'allowed_lateness_seconds': Param('Call-metrics allowed lateness (s)', SECONDS_OR_0),
  'short_abandon_threshold_seconds': Param(
    'Short-abandon threshold (s)',
    Value('^[0-9]+(\\.[0-9]+)?$', 'a number of seconds >= 0, e.g. 5 or 2.5'),
  ),
  'service_level_seconds': Param(
    'Service-level target (s)', Value('^[0-9]+(\\.[0-9]+)?$', 'a number of seconds >= 0, e.g. 20')
  ),
  'dedupe_ttl_seconds': Param('Call duplicate detection horizon (s)', SECONDS),
  'status_interval_seconds': Param(
    'Queue status refresh (s)', Value('^[1-9][0-9]*$', 'a whole number > 0, e.g. 5')
  ),
  'max_queue_wait_seconds': Param(
    'Longest plausible queue wait (s)', Value('^[1-9][0-9]*$', 'a whole number > 0, e.g. 14400')
  ),
  'max_waiting_listed': Param(
    'Waiting contacts listed per queue', Value('^(0|[1-9][0-9]*)$', 'a whole number >= 0, e.g. 100')
  ),
  'early_firing_seconds': Param(
    'Early panes of the open window (s)', Value('^(0|[1-9][0-9]*)$', 'a whole number >= 0, e.g. 10')
  ),
  'volume_window_seconds': Param('Interaction-volume window (s)', SECONDS),
  'interaction_allowed_lateness_seconds': Param('Interaction allowed lateness (s)', SECONDS_OR_0),
  'interaction_dedupe_ttl_seconds': Param('Interaction duplicate detection horizon (s)', SECONDS),
  'profile_wait_seconds': Param('Profile wait (s)', SECONDS_OR_0),
  'customer_state_ttl_seconds': Param('Customer state TTL (s)', SECONDS),
  'failure_statuses': Param(
    'Failure statuses',
    Value(
      '^[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*$',
      'comma-separated statuses without spaces, e.g. FAILED,ERROR',
    ),
  ),
  'callback_statuses': Param(
    'Callback statuses',
    Value(
      '^[A-Za-z0-9_-]+(,[A-Za-z0-9_-]+)*$',
      'comma-separated statuses without spaces, e.g. CALLBACK_REQUESTED',
    ),
  ),
  'pattern_within_seconds': Param('Pattern window (s)', SECONDS),
  'pattern_tick_seconds': Param(
    'Pattern processing tick (s)', Value('^[1-9][0-9]*$', 'a whole number of seconds > 0, e.g. 5')
  ),
  'agent_events': Param(
    'Agent events file', JSON_LINES_FILE, when=('source', 'file'), input_file=True
  ),
  'kafka_agent_events_topic': Param('Agent events topic', TOPIC, when=('source', 'kafka')),
  'agent_event_format': Param('Agent event format'),
  'queue_members': Param('Queue members file', Value('^[^\\r\\n\\x00]+$', 'a path to a JSON file')),
  'agent_silence_timeout_seconds': Param(
    'Agent silence timeout (s)', Value('^[1-9][0-9]*$', 'a whole number of seconds > 0, e.g. 900')
  ),
  'timezone': Param(
    'Contact-center time zone',
    Value('^[A-Za-z][A-Za-z0-9_+/-]*$', 'an IANA name, e.g. Europe/Berlin'),
  ),
  'alert_rules': Param(
    'Alert rules file',
    Value('^[^\\r\\n\\x00]+$', 'a path to a YAML or JSON file'),
    input_file=True,
  ),
  'alert_delivery_attempts': Param('Alert delivery attempts', COUNT),
  'alert_delivery_timeout_seconds': Param('Alert delivery attempt timeout (s)', SECONDS),
  'forecast_interval_seconds': Param(
    'Forecast interval (s)',
    Value('^[1-9][0-9]*$', 'a whole number of seconds dividing a day, e.g. 1800'),
  ),
  'max_id_length': Param(
    'Max id length (characters)',
    Value('^[1-9][0-9]{0,5}$', 'a whole number of characters > 0, e.g. 256'),
  ),
  'max_wait_seconds': Param(
    'Max wait in queue (s)',
    Value('^[0-9]{1,9}(\\.[0-9]+)?$', 'a number of seconds > 0, e.g. 86400'),
  ),
  'max_future_skew_seconds': Param(
    'Max future skew (s)',
    Value('^(0|[1-9][0-9]{0,8})$', 'a whole number of seconds >= 0, e.g. 300'),
  ),
  # The job writes to DEFAULT_SINK when no --sink is given.
  'sink': Param('Sink', default=DEFAULT_SINK),
  'sqlite_path': Param(
    'SQLite file',
    Value('^[^\\r\\n\\x00]+$', 'a file path (one line, not empty)'),
    when=('sink', 'sqlite'),
  ),
  'contact_detail_ttl_seconds': Param(
    'Contact detail kept (s)',
    Value('^[0-9]+$', 'a whole number of seconds, 0 = no contact detail, e.g. 604800'),
  ),
  'cassandra_hosts': Param(
    'Cassandra contact points',
    Value(
      (
        '^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+)'
        '(,([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+'
        '))*$'
      ),
      'comma-separated host names or addresses, no ports (see cassandra_port)',
    ),
    when=('sink', 'cassandra'),
  ),
  'cassandra_port': Param(
    'Cassandra CQL port', Value(f'^{_PORT}$', 'a port number 1-65535'), when=('sink', 'cassandra')
  ),
  'cassandra_keyspace': Param(
    'Cassandra keyspace',
    Value(
      '^[A-Za-z][A-Za-z0-9_]{0,47}$',
      'a keyspace name: a letter, then up to 47 letters, digits or _',
    ),
    when=('sink', 'cassandra'),
  ),
  'cassandra_replication': Param(
    'Keyspace replication',
    Value(
      '^\\{[^\\r\\n]*\\}$',
      "a CQL map on one line, e.g. {'class': 'NetworkTopologyStrategy', 'dc1': 3}",
    ),
    when=('sink', 'cassandra'),
  ),
  'cassandra_consistency': Param('Write consistency level', when=('sink', 'cassandra')),
  'cassandra_username': Param(
    'Cassandra user', Value('^[^\\r\\n]+$', 'a user name on one line'), when=('sink', 'cassandra')
  ),
  'cassandra_password_env': Param(
    'Cassandra password variable', ENV_NAME, when=('sink', 'cassandra')
  ),
  'cassandra_ssl_ca_file': Param(
    'Cassandra CA file', PEM_FILE, when=('sink', 'cassandra'), input_file=True
  ),
  'cassandra_ssl_cert_file': Param(
    'Cassandra client certificate', PEM_FILE, when=('sink', 'cassandra'), input_file=True
  ),
  'cassandra_ssl_key_file': Param(
    'Cassandra client key', PEM_FILE, when=('sink', 'cassandra'), input_file=True
  ),
  'cassandra_ssl_server_hostname': Param(
    'Cassandra certificate host name',
    Value('^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$', 'a DNS name, e.g. cassandra.example.com'),
    when=('sink', 'cassandra'),
  ),
  'cassandra_protocol_version': Param(
    'Cassandra protocol version', Value('^[3-5]$', '3, 4 or 5'), when=('sink', 'cassandra')
  ),
  'cassandra_local_dc': Param(
    'Cassandra local data center',
    Value('^[^\\r\\n]+$', 'a data center name on one line'),
    when=('sink', 'cassandra'),
  ),
  'cassandra_write_concurrency': Param('Writes in flight', COUNT, when=('sink', 'cassandra')),
  'cassandra_max_retries': Param('Write retries', COUNT_OR_0, when=('sink', 'cassandra')),
  'validate_cxone': Param('Check CXone before starting'),
  'cxone_base_url': Param(
    'CXone API base URL',
    Value(
      '^https?://[^\\s/?#]+(/[^\\s?#]*)?$',
      'an https URL (http only for localhost), e.g. https://api-na1.niceincontact.com',
    ),
    when=('validate_cxone', 'true'),
    required=True,
  ),
  'cxone_token_url': Param(
    'CXone token URL',
    Value('^https?://[^\\s/?#]+(/[^\\s?#]*)?$', 'an https URL (http only for localhost)'),
    when=('validate_cxone', 'true'),
    required=True,
  ),
  'cxone_client_id': Param(
    'CXone OAuth client id',
    Value('^\\S+$', 'a client id without spaces'),
    when=('validate_cxone', 'true'),
    required=True,
  ),
  'cxone_client_secret_env': Param(
    'CXone client secret variable', ENV_NAME, when=('validate_cxone', 'true')
  ),
  'cxone_action_id': Param(
    'CXone Data Action id',
    Value('^\\S+$', 'a Data Action id without spaces'),
    when=('validate_cxone', 'true'),
    required=True,
  ),
  'cxone_timeout_seconds': Param(
    'CXone request timeout (s)',
    Value('^(?=.*[1-9])[0-9]+(\\.[0-9]+)?$', 'a number of seconds > 0, e.g. 10'),
    when=('validate_cxone', 'true'),
  ),
  'cxone_max_retries': Param('CXone retries', COUNT_OR_0, when=('validate_cxone', 'true')),
  'runner': Param(
    'Runner',
    default='BundleBasedDirectRunner',
    choices=('BundleBasedDirectRunner', 'FlinkRunner'),
    group='Runner',
    help=(
      'BundleBasedDirectRunner runs in the launching process (no network '
      'needed); FlinkRunner submits to Flink through the Beam Flink job '
      'server.'
    ),
  ),
  'flink_master': Param(
    'Flink master',
    Value(
      f'^(\\[local\\]|\\[auto\\]|(https?://)?{_HOST_PORT})$',
      '[local], [auto] or host:port, e.g. flink-jobmanager:8081',
    ),
    when=('runner', 'FlinkRunner'),
    group='Flink',
    help=(
      '[local] or [auto]: an embedded Flink in the job server; host:port: the'
      ' REST address of a Flink cluster.'
    ),
  ),
  'flink_job_server_jar': Param(
    'Beam Flink job-server jar',
    Value('^[^\\r\\n\\x00]+\\.jar$', 'a path to an existing .jar file'),
    when=('runner', 'FlinkRunner'),
    required=True,
    input_file=True,
    group='Flink',
    help=(
      'Path of the Beam Flink job-server jar matching the Flink cluster (the '
      'launch image ships one: see templates/README.md). Required so that no '
      'jar is downloaded at launch.'
    ),
  ),
  'parallelism': Param(
    'Parallelism',
    COUNT,
    default=None,
    when=('runner', 'FlinkRunner'),
    group='Flink',
    help='Parallelism of the Flink job. Default: the cluster default.',
  ),
  'max_parallelism': Param(
    'Max parallelism',
    COUNT,
    default='128',
    when=('runner', 'FlinkRunner'),
    group='Flink',
    help=(
      'Upper bound for rescaling a job from a savepoint: the number of Flink '
      "key groups, fixed for the life of the job's state (a savepoint resumes"
      ' at any parallelism up to it, never with another value). The stateful '
      'steps shard their keys 32 ways, so parallelism above 32 adds nothing '
      'to them.'
    ),
  ),
  'environment_type': Param(
    'Python worker environment',
    default='LOOPBACK',
    choices=('LOOPBACK', 'EXTERNAL', 'PROCESS', 'DOCKER'),
    when=('runner', 'FlinkRunner'),
    group='Flink',
    help=(
      'How Flink runs the Python workers: LOOPBACK in the launching process '
      '(embedded Flink), EXTERNAL a worker pool beside the cluster, PROCESS a'
      ' command on each task manager, DOCKER a container per task manager.'
    ),
  ),
  'environment_config': Param(
    'Python worker environment config',
    Value('^[^\\r\\n]+$', 'one line, e.g. 127.0.0.1:50000 for EXTERNAL'),
    when=('environment_type', 'EXTERNAL', 'PROCESS', 'DOCKER'),
    required=True,
    group='Flink',
    help=(
      'EXTERNAL: host:port of the worker pool; PROCESS: JSON with the boot '
      'command; DOCKER: the SDK image.'
    ),
  ),
  'job_name': Param(
    'Job name',
    Value('^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$', 'letters, digits, _ . -, at most 128 characters'),
    when=('runner', 'FlinkRunner'),
    group='Flink',
    help='Name of the job in Flink.',
  ),
  'metrics_port': Param(
    'Prometheus /metrics port',
    Value(f'^{_PORT}$', 'a TCP port, 1-65535'),
    when=('runner', 'BundleBasedDirectRunner'),
  ),
  'metrics_address': Param(
    'Prometheus /metrics address',
    Value('^[0-9A-Za-z.:-]+$', 'an IP address or host name, e.g. 127.0.0.1'),
    when=('runner', 'BundleBasedDirectRunner'),
  ),
  'metrics_final_scrape_wait_seconds': Param(
    'Wait for a last scrape (s)',
    Value('^(0|[1-9][0-9]{0,5})$', 'a whole number of seconds >= 0, e.g. 60'),
    when=('runner', 'BundleBasedDirectRunner'),
  ),
  'checkpointing_interval': Param(
    'Checkpoint interval (ms)', MILLIS, when=('runner', 'FlinkRunner')
  ),
  'checkpointing_mode': Param('Checkpointing mode', when=('runner', 'FlinkRunner')),
  'min_pause_between_checkpoints': Param(
    'Min pause between checkpoints (ms)', MILLIS_OR_0, when=('runner', 'FlinkRunner')
  ),
  'checkpoint_timeout_millis': Param(
    'Checkpoint timeout (ms)', MILLIS, when=('runner', 'FlinkRunner')
  ),
  'state_backend': Param('State backend', when=('runner', 'FlinkRunner')),
  'state_backend_storage_path': Param(
    'Checkpoint storage',
    Value('^[A-Za-z][A-Za-z0-9+.-]*://\\S+$', 'a URI, e.g. file:///var/lib/flink/checkpoints'),
    when=('state_backend', 'rocksdb', 'filesystem'),
    required=True,
  ),
  'savepoint_path': Param(
    'Restore from savepoint',
    Value(
      '^[A-Za-z][A-Za-z0-9+.-]*://\\S+$',
      'a URI, e.g. file:///var/lib/flink/savepoints/savepoint-1a2b3c',
    ),
    when=('runner', 'FlinkRunner'),
  ),
  'number_of_execution_retries': Param(
    'Restart attempts', COUNT_OR_0, when=('runner', 'FlinkRunner')
  ),
  'execution_retry_delay': Param('Restart delay (ms)', MILLIS_OR_0, when=('runner', 'FlinkRunner')),
  'shutdown_sources_after_idle_ms': Param(
    'Finish idle sources after (ms)', MILLIS_OR_0, when=('runner', 'FlinkRunner')
  ),
  'finish_bundle_before_checkpointing': Param(
    'Finish bundles before checkpoints', when=('runner', 'FlinkRunner')
  ),
  'object_reuse': Param('Reuse objects between operators', when=('runner', 'FlinkRunner')),
}
