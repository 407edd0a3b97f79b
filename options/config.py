"""The job's settings as typed, immutable values, built once from the options.

In: parsed PipelineOptions (the classes of this package).
Out: frozen dataclasses, one per flow (`CallMetricsConfig`,
`InteractionConfig`, `AgentConfig`) plus the pieces they share
(`EventTimeConfig`, `FieldRules`), handed to the flows by keyword; and the
settings of the stores and Kafka (`SinkConfigs`, `CassandraSettings`,
`KafkaClientConfig`, `KafkaReadConfig`), handed to the sinks and the
source. The transforms take these values and never read options, so
transforms/ imports no options class (tests/test_import_graph.py).
Each `from_options` reads its options once; constructing a config directly
(tests) takes keywords only.

Names: a duration of event time is an `apache_beam` `Duration` and its name
carries no unit (`allowed_lateness`); a bare number carries its unit in its
name (`service_level_seconds`). Wait thresholds stay float seconds: they are
compared with the records' float `wait_seconds`, and a `Duration` keeps whole
microseconds only (2.3 s would become 2.299999 s and move a call that waited
exactly 2.3 s across the threshold).
"""

import dataclasses
import os
import re
import typing
import zoneinfo
from dataclasses import dataclass
from typing import Dict, FrozenSet, Mapping, Optional, Tuple, Type, TypeVar

from apache_beam.options.pipeline_options import FlinkRunnerOptions, PipelineOptions
from apache_beam.utils.timestamp import Duration

# The driver's top-level module only (no cluster code): its consistency
# levels and protocol versions are what a Cassandra setting is checked against.
from cassandra import ConsistencyLevel, ProtocolVersion

from options.agent_options import AgentOptions
from options.alert_config import AlertRulesConfig
from options.alert_options import AlertOptions
from options.call_inputs import (
  load_queue_members,
  load_queue_names,
  parse_channels,
  trigger_topic_kind,
)
from options.call_metrics_options import CallMetricsOptions
from options.cassandra_options import CassandraOptions
from options.interaction_options import InteractionOptions, parse_statuses
from options.kafka_options import KafkaOptions, parse_client_config
from options.live_floor_options import LiveFloorOptions
from options.stream_options import DEFAULT_SINK, EventTimeOptions, FieldRuleOptions, SinkOptions

_MICROS_PER_SECOND = 1_000_000
# Flink's default max parallelism (key groups) for jobs up to parallelism
# 128 (`KeyGroupRangeAssignment.computeDefaultMaxParallelism`).
DEFAULT_STATE_SHARDS = 128


def state_shards(max_parallelism: int) -> int:
  """The shard count of every stateful step (transforms/sharding.py): the
  job's `--max_parallelism`, or DEFAULT_STATE_SHARDS when it is not set
  (<= 0), so sharding never caps a step below the key groups Flink can
  spread it over."""
  return max_parallelism if max_parallelism > 0 else DEFAULT_STATE_SHARDS


def millis(duration: Duration) -> int:
  """A Duration in whole milliseconds (rounded down)."""
  return duration.micros // 1000


def checked_millis(duration: Duration, what: str, *, zero_ok: bool) -> int:
  """A composite's Duration parameter in whole milliseconds (the form its
  DoFn keeps in state and records), converted once in its constructor;
  raises TypeError for a bare number (its unit would be a guess) and
  ValueError naming `what` unless it is > 0 (>= 0 with `zero_ok`)."""
  if not isinstance(duration, Duration):
    raise TypeError(f'{what} must be a Duration, got {duration!r}')
  ms = millis(duration)
  if ms < 0 or not (ms or zero_ok):
    raise ValueError(f'{what} must be {">= 0" if zero_ok else "> 0"}, got {duration!r}')
  return ms


def check_time_zone(name: str) -> None:
  """Raises ValueError naming `name` unless it is an IANA time zone this
  machine knows (the system's zoneinfo, else the tzdata package)."""
  try:
    zoneinfo.ZoneInfo(name)
  except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
    raise ValueError(
      f'--timezone {name!r} is not an IANA time zone name (e.g. Europe/Berlin)'
    ) from e


def _check_types(config: object) -> None:
  """Raises TypeError naming the field whose value is not of its declared
  type (e.g. a bare int where a Duration belongs, or two values swapped)."""
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    expected = typing.get_origin(field.type) or field.type
    if expected is typing.Union:  # Optional[X]
      expected = tuple(typing.get_origin(a) or a for a in typing.get_args(field.type))
    if expected is float:
      expected = (int, float)
    if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
      raise TypeError(
        f'{type(config).__name__}.{field.name} must be '
        f'{getattr(field.type, "__name__", field.type)}, got {value!r}'
      )


@dataclass(frozen=True, kw_only=True)
class FieldRules:
  """Limits every parser applies to untrusted fields (FieldRuleOptions).

  `max_id_length`: characters of an id or key field (they become sink keys:
  Cassandra rejects key components over 64 KiB, Kafka records over 1 MiB).
  `max_wait_seconds`: the largest plausible wait in queue.
  `max_future_skew`: how far past the processing-time clock an event time
  may be; a far-future event would hold keys, timers and dedupe entries
  open and make every later event of its partition late.
  """

  max_id_length: int = 256
  max_wait_seconds: float = 86400.0
  max_future_skew: Duration = Duration(seconds=300)

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'FieldRules':
    """The rules set by `FieldRuleOptions`; raises ValueError."""
    o = options.view_as(FieldRuleOptions)
    return cls(
      max_id_length=o.max_id_length,
      max_wait_seconds=o.max_wait_seconds,
      max_future_skew=Duration(seconds=o.max_future_skew_seconds),
    )

  def __post_init__(self):
    _check_types(self)
    if self.max_id_length < 1:
      raise ValueError(f'--max_id_length must be >= 1, got {self.max_id_length}')
    if not 0 < self.max_wait_seconds < float('inf'):
      raise ValueError(f'--max_wait_seconds must be > 0 and finite, got {self.max_wait_seconds}')
    if self.max_future_skew < Duration(0):
      raise ValueError(f'--max_future_skew must be >= 0, got {self.max_future_skew!r}')


DEFAULT_FIELD_RULES = FieldRules()


@dataclass(frozen=True, kw_only=True)
class EventTimeConfig:
  """How event time and the watermark behave, the same for every flow
  (EventTimeOptions).

  `max_out_of_orderness`: how far every event-time decision trails the
  source's watermark (the largest event time seen).
  `key_idle_ttl`: event time after its last event and its last open
  window during which a key of a windowed step keeps its windows' state.
  `state_shards`: the shards every stateful step spreads its keys over
  (transforms/sharding.py): the job's `--max_parallelism`, or Flink's
  default key groups.
  """

  max_out_of_orderness: Duration
  key_idle_ttl: Duration
  state_shards: int = DEFAULT_STATE_SHARDS

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'EventTimeConfig':
    o = options.view_as(EventTimeOptions)
    return cls(
      max_out_of_orderness=Duration(seconds=o.max_out_of_orderness_seconds),
      key_idle_ttl=Duration(seconds=o.key_idle_ttl_seconds),
      state_shards=state_shards(options.view_as(FlinkRunnerOptions).max_parallelism),
    )

  def __post_init__(self):
    _check_types(self)
    if self.state_shards < 1:
      raise ValueError(f'state shards must be >= 1, got {self.state_shards}')


@dataclass(frozen=True, kw_only=True)
class LiveFloorConfig:
  """The live half of the call flow (LiveFloorOptions).

  `status_interval`: processing time between refreshes of a waiting
  queue's status; `max_queue_wait`: event time after which a waiting
  contact's exit counts as lost; `max_waiting_listed`: waiting contacts
  listed per queue; `early_firing`: processing time between EARLY panes of
  the open window, Duration(0) for none.
  """

  status_interval: Duration = Duration(seconds=5)
  max_queue_wait: Duration = Duration(seconds=14400)
  max_waiting_listed: int = 100
  early_firing: Duration = Duration(seconds=10)

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'LiveFloorConfig':
    """Raises ValueError for a value out of range."""
    o = options.view_as(LiveFloorOptions)
    return cls(
      status_interval=Duration(seconds=o.status_interval_seconds),
      max_queue_wait=Duration(seconds=o.max_queue_wait_seconds),
      max_waiting_listed=o.max_waiting_listed,
      early_firing=Duration(seconds=o.early_firing_seconds),
    )

  def __post_init__(self):
    _check_types(self)
    if self.status_interval <= Duration(0):
      raise ValueError(f'--status_interval must be > 0, got {self.status_interval!r}')
    if self.max_queue_wait <= Duration(0):
      raise ValueError(f'--max_queue_wait must be > 0, got {self.max_queue_wait!r}')
    if self.max_waiting_listed < 0:
      raise ValueError(f'--max_waiting_listed must be >= 0, got {self.max_waiting_listed}')
    if self.early_firing < Duration(0):
      raise ValueError(f'--early_firing_seconds must be >= 0, got {self.early_firing!r}')


_Config = TypeVar('_Config', bound='FlowConfig')


@dataclass(frozen=True, kw_only=True)
class FlowConfig:
  """What every flow has: the job's event time and field rules, and its own
  window size, allowed lateness and duplicate horizon.

  Every Duration of a flow is whole seconds, as the options count them
  (its transforms convert them to milliseconds).
  """

  event_time: EventTimeConfig
  field_rules: FieldRules
  window_size: Duration
  allowed_lateness: Duration
  dedupe_ttl: Duration

  def __post_init__(self):
    _check_types(self)
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, Duration) and value.micros % _MICROS_PER_SECOND:
        raise ValueError(f'{type(self).__name__}.{field.name} must be whole seconds, got {value!r}')

  @classmethod
  def checked(cls: Type[_Config], config: object) -> _Config:
    """`config` if it is a `cls`; else TypeError (a flow handed another
    flow's config)."""
    if not isinstance(config, cls):
      raise TypeError(f'config must be {cls.__name__}, got {type(config).__name__}')
    return config


@dataclass(frozen=True, kw_only=True)
class CallMetricsConfig(FlowConfig):
  """The call-metrics flow (CallMetricsOptions): input format, abandon-rate
  and service-level definitions and thresholds."""

  call_event_format: str
  abandon_rate_definition: str
  service_level_definition: str
  short_abandon_threshold_seconds: float
  service_level_seconds: float
  connect_queue_key: str
  genesys_max_queue_wait: Duration
  genesys_callback_max_queue_wait: Duration
  # `acd.start` or `acd.end`: the topic of bare Genesys bodies
  # (--genesys_trigger_topic); None: told by their fields.
  genesys_trigger_kind: Optional[str]
  channels: FrozenSet[str]
  queue_names: Mapping[str, str]
  live_floor: LiveFloorConfig = dataclasses.field(default_factory=LiveFloorConfig)
  # The contact center's IANA time zone (--timezone): daily_metrics count
  # from its local midnight.
  timezone: str = 'UTC'
  # Whether the flow lists the contacts behind each window
  # (window_contacts): --contact_detail_ttl_seconds is not zero.
  contact_detail: bool = True

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'CallMetricsConfig':
    o = options.view_as(CallMetricsOptions)
    return cls(
      event_time=EventTimeConfig.from_options(options),
      field_rules=FieldRules.from_options(options),
      window_size=Duration(seconds=o.window_seconds),
      allowed_lateness=Duration(seconds=o.allowed_lateness_seconds),
      dedupe_ttl=Duration(seconds=o.dedupe_ttl_seconds),
      call_event_format=o.call_event_format,
      abandon_rate_definition=o.abandon_rate_definition,
      service_level_definition=o.service_level_definition,
      short_abandon_threshold_seconds=o.short_abandon_threshold_seconds,
      service_level_seconds=o.service_level_seconds,
      connect_queue_key=o.connect_queue_key,
      genesys_max_queue_wait=Duration(seconds=o.genesys_max_queue_wait_seconds),
      genesys_callback_max_queue_wait=Duration(seconds=o.genesys_callback_max_queue_wait_seconds),
      genesys_trigger_kind=trigger_topic_kind(o.genesys_trigger_topic),
      channels=parse_channels(o.channels),
      queue_names=load_queue_names(o.queue_names),
      live_floor=LiveFloorConfig.from_options(options),
      timezone=options.view_as(AlertOptions).timezone,
      contact_detail=options.view_as(SinkOptions).contact_detail_ttl_seconds > 0,
    )

  def __post_init__(self):
    super().__post_init__()
    check_time_zone(self.timezone)


@dataclass(frozen=True, kw_only=True)
class AlertFlowConfig:
  """Alert rules on the call and agent figures, their delivery and the
  service-level forecast (AlertOptions, docs/alerts.md).

  `rules`: the rule file, validated (no rules: no alert step at all);
  `delivery_attempts`, `delivery_timeout`, `delivery_backoff`: per
  notification and receiver; `forecast_interval`, `forecast_lookback`: the
  interval whose end the forecast projects, and how far back it measures
  arrivals; `window_size`, `allowed_lateness`, `service_level_seconds`,
  `queue_names`: the call metrics' own.
  """

  rules: AlertRulesConfig
  delivery_attempts: int
  delivery_timeout: Duration
  delivery_backoff: Duration = Duration(seconds=1)
  forecast_interval: Duration
  forecast_lookback: Duration = Duration(seconds=900)
  window_size: Duration
  allowed_lateness: Duration
  service_level_seconds: float
  queue_names: Mapping[str, str]

  @classmethod
  def from_options(cls, options: PipelineOptions, calls: CallMetricsConfig) -> 'AlertFlowConfig':
    """Reads and validates the rule file (ValueError naming the rule and
    field); the call metrics' settings come from `calls`."""
    o = options.view_as(AlertOptions)
    return cls(
      rules=AlertRulesConfig.from_options(options),
      delivery_attempts=o.alert_delivery_attempts,
      delivery_timeout=Duration(seconds=o.alert_delivery_timeout_seconds),
      forecast_interval=Duration(seconds=o.forecast_interval_seconds),
      window_size=calls.window_size,
      allowed_lateness=calls.allowed_lateness,
      service_level_seconds=calls.service_level_seconds,
      queue_names=calls.queue_names,
    )

  def __post_init__(self):
    _check_types(self)
    if self.delivery_attempts < 1:
      raise ValueError(f'--alert_delivery_attempts must be >= 1, got {self.delivery_attempts}')
    if self.delivery_timeout <= Duration(0):
      raise ValueError(
        f'--alert_delivery_timeout_seconds must be > 0, got {self.delivery_timeout!r}'
      )
    interval_s = self.forecast_interval.micros // _MICROS_PER_SECOND
    if interval_s <= 0 or 86400 % interval_s:
      raise ValueError(
        f'--forecast_interval_seconds must divide a day (e.g. 1800), got {interval_s}'
      )


@dataclass(frozen=True, kw_only=True)
class InteractionConfig(FlowConfig):
  """The CXone interaction flow (InteractionOptions): volume windows, the
  callback pattern and the customer join."""

  failure_statuses: FrozenSet[str]
  callback_statuses: FrozenSet[str]
  pattern_within: Duration
  pattern_tick: Duration
  profile_wait: Duration
  customer_state_ttl: Duration

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'InteractionConfig':
    """Raises ValueError for an empty status list."""
    o = options.view_as(InteractionOptions)
    return cls(
      event_time=EventTimeConfig.from_options(options),
      field_rules=FieldRules.from_options(options),
      window_size=Duration(seconds=o.volume_window_seconds),
      allowed_lateness=Duration(seconds=o.interaction_allowed_lateness_seconds),
      dedupe_ttl=Duration(seconds=o.interaction_dedupe_ttl_seconds),
      failure_statuses=parse_statuses(o.failure_statuses),
      callback_statuses=parse_statuses(o.callback_statuses),
      pattern_within=Duration(seconds=o.pattern_within_seconds),
      pattern_tick=Duration(seconds=o.pattern_tick_seconds),
      profile_wait=Duration(seconds=o.profile_wait_seconds),
      customer_state_ttl=Duration(seconds=o.customer_state_ttl_seconds),
    )


@dataclass(frozen=True, kw_only=True)
class AgentConfig(FlowConfig):
  """The agent flow (AgentOptions): its input format, queue membership and
  silence timeout. Its windows, lateness and duplicate horizon are the call
  metrics' (the same rules and late output, on the same grid)."""

  agent_event_format: str
  queue_members: Mapping[str, Tuple[str, ...]]
  agent_silence_timeout: Duration
  queue_names: Mapping[str, str]
  # amazon_connect: queues by the id at the end of their ARN, or the ARN
  # (--connect_queue_key; agent events carry no queue names).
  connect_queue_key: str = 'name'

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'AgentConfig':
    """Raises ValueError for an unreadable --queue_members file."""
    calls = options.view_as(CallMetricsOptions)
    o = options.view_as(AgentOptions)
    return cls(
      event_time=EventTimeConfig.from_options(options),
      field_rules=FieldRules.from_options(options),
      window_size=Duration(seconds=calls.window_seconds),
      allowed_lateness=Duration(seconds=calls.allowed_lateness_seconds),
      dedupe_ttl=Duration(seconds=calls.dedupe_ttl_seconds),
      agent_event_format=o.agent_event_format,
      queue_members=load_queue_members(o.queue_members),
      agent_silence_timeout=Duration(seconds=o.agent_silence_timeout_seconds),
      queue_names=load_queue_names(calls.queue_names),
      connect_queue_key=calls.connect_queue_key,
    )

  def __post_init__(self):
    super().__post_init__()
    if self.agent_silence_timeout <= Duration(0):
      raise ValueError(f'--agent_silence_timeout must be > 0, got {self.agent_silence_timeout!r}')


_KEYSPACE_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]{0,47}')


@dataclass(frozen=True, kw_only=True)
class CassandraSettings:
  """Where and how the Cassandra sink writes and the wallboard reads
  (CassandraOptions); picklable, and without the password.

  `password_env` names the environment variable read when connecting. TLS
  is on when `ssl_ca_file` is set; `ssl_cert_file` and `ssl_key_file` add a
  client certificate, `ssl_server_hostname` is the name the nodes'
  certificates must carry (default: the address connected to).
  `protocol_version` None negotiates the highest version both sides speak.
  """

  hosts: Tuple[str, ...]
  port: int
  keyspace: str
  replication: str
  consistency: str
  username: Optional[str]
  password_env: str
  ssl_ca_file: Optional[str]
  ssl_cert_file: Optional[str]
  ssl_key_file: Optional[str]
  ssl_server_hostname: Optional[str]
  protocol_version: Optional[int]
  local_dc: Optional[str]
  write_concurrency: int
  max_retries: int

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'CassandraSettings':
    """Validated settings from `CassandraOptions`; raises ValueError."""
    o = options.view_as(CassandraOptions)
    settings = cls(
      hosts=tuple(h.strip() for h in o.cassandra_hosts.split(',') if h.strip()),
      port=o.cassandra_port,
      keyspace=o.cassandra_keyspace,
      replication=o.cassandra_replication.strip(),
      consistency=o.cassandra_consistency,
      username=o.cassandra_username,
      password_env=o.cassandra_password_env,
      ssl_ca_file=o.cassandra_ssl_ca_file,
      ssl_cert_file=o.cassandra_ssl_cert_file,
      ssl_key_file=o.cassandra_ssl_key_file,
      ssl_server_hostname=o.cassandra_ssl_server_hostname,
      protocol_version=o.cassandra_protocol_version,
      local_dc=o.cassandra_local_dc,
      write_concurrency=o.cassandra_write_concurrency,
      max_retries=o.cassandra_max_retries,
    )
    settings.validate()
    return settings

  def __post_init__(self):
    # Types only: `validate` also checks this machine's environment and
    # files, which a test may build settings without on purpose.
    _check_types(self)

  def validate(self) -> None:
    """Raises ValueError for settings that cannot work, before any worker
    starts. The keyspace and replication are spliced into CQL, hence the
    strict checks."""
    if not self.hosts:
      raise ValueError('--cassandra_hosts: no host given')
    if not _KEYSPACE_NAME.fullmatch(self.keyspace):
      raise ValueError(
        f'--cassandra_keyspace={self.keyspace!r}: a keyspace name is a '
        'letter then up to 47 letters, digits or underscores'
      )
    if not (
      self.replication.startswith('{')
      and self.replication.endswith('}')
      and ';' not in self.replication
    ):
      raise ValueError(
        '--cassandra_replication must be a CQL map such as '
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
      )
    if self.consistency not in ConsistencyLevel.name_to_value:
      raise ValueError(f'unknown consistency level {self.consistency!r}')
    if self.write_concurrency < 1 or self.max_retries < 0:
      raise ValueError(
        '--cassandra_write_concurrency must be >= 1 and --cassandra_max_retries >= 0'
      )
    if self.username and self.password_env not in os.environ:
      raise ValueError(
        f'--cassandra_username is set but the environment variable '
        f'{self.password_env} (--cassandra_password_env) is not'
      )
    for flag, path in (
      ('ca', self.ssl_ca_file),
      ('cert', self.ssl_cert_file),
      ('key', self.ssl_key_file),
    ):
      if path and not os.path.isfile(path):
        raise ValueError(f'--cassandra_ssl_{flag}_file={path}: no such file')
    if not self.ssl_ca_file and (
      self.ssl_cert_file or self.ssl_key_file or self.ssl_server_hostname
    ):
      raise ValueError(
        '--cassandra_ssl_cert_file, --cassandra_ssl_key_file and '
        '--cassandra_ssl_server_hostname need TLS: give '
        '--cassandra_ssl_ca_file too'
      )
    if self.ssl_key_file and not self.ssl_cert_file:
      raise ValueError('--cassandra_ssl_key_file needs --cassandra_ssl_cert_file')
    if (
      self.protocol_version is not None
      and self.protocol_version not in ProtocolVersion.SUPPORTED_VERSIONS
    ):
      raise ValueError(
        f'--cassandra_protocol_version={self.protocol_version}: the driver '
        f'speaks {sorted(ProtocolVersion.SUPPORTED_VERSIONS)}'
      )


@dataclass(frozen=True, kw_only=True)
class KafkaClientConfig:
  """Where the job's Kafka is and how its clients log in (KafkaOptions), for
  the source, the sink and the start-up check.

  `settings`: the client settings of --kafka_config and
  --kafka_secret_config_env (parse_client_config): a secret is a
  `${env:NAME}` placeholder the Kafka client resolves where it runs, never
  its value. `expansion_service`: the KafkaIO expansion service's address.
  """

  bootstrap_servers: str
  expansion_service: str
  settings: Mapping[str, str] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'KafkaClientConfig':
    """Raises ValueError for client settings that cannot work
    (parse_client_config), without echoing any value."""
    o = options.view_as(KafkaOptions)
    return cls(
      bootstrap_servers=o.kafka_bootstrap_servers,
      expansion_service=o.kafka_expansion_service,
      settings=parse_client_config(o.kafka_config, o.kafka_secret_config_env),
    )

  def __post_init__(self):
    _check_types(self)

  def client_settings(self) -> Dict[str, str]:
    """What a consumer or producer is given: bootstrap.servers and `settings`."""
    return {'bootstrap.servers': self.bootstrap_servers, **self.settings}


@dataclass(frozen=True, kw_only=True)
class KafkaReadConfig:
  """The job's Kafka source (KafkaOptions): its client, its consumer group,
  the optional cap on records per second per reader (throttled, never
  dropped) and on records per topic (tests, demos)."""

  client: KafkaClientConfig
  consumer_group: str
  max_events_per_second: Optional[float] = None
  max_num_records: Optional[int] = None

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'KafkaReadConfig':
    """Raises ValueError for client settings that cannot work."""
    o = options.view_as(KafkaOptions)
    return cls(
      client=KafkaClientConfig.from_options(options),
      consumer_group=o.kafka_consumer_group,
      max_events_per_second=o.max_events_per_second,
      max_num_records=o.kafka_max_num_records,
    )

  def __post_init__(self):
    _check_types(self)


@dataclass(frozen=True, kw_only=True)
class SinkConfigs:
  """The result stores of --sink (SinkOptions), in order, with the settings
  of those named, for the sink registry (transforms/sink_registry.py).

  A store's settings are read and checked only when it is named: a job
  writing SQLite needs no Cassandra password variable and no Kafka secret.
  """

  names: Tuple[str, ...]
  sqlite_path: str
  cassandra: Optional[CassandraSettings] = None
  kafka: Optional[KafkaClientConfig] = None
  # How long rows of expiring tables (window_contacts) are kept after
  # they are written (--contact_detail_ttl_seconds); zero: none written.
  contact_detail_ttl: Duration = Duration(seconds=7 * 24 * 3600)

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'SinkConfigs':
    """DEFAULT_SINK when no --sink is given; raises ValueError for settings
    a named store refuses."""
    o = options.view_as(SinkOptions)
    names = tuple(o.sink or [DEFAULT_SINK])
    return cls(
      names=names,
      sqlite_path=o.sqlite_path,
      contact_detail_ttl=Duration(seconds=o.contact_detail_ttl_seconds),
      cassandra=CassandraSettings.from_options(options) if 'cassandra' in names else None,
      kafka=KafkaClientConfig.from_options(options) if 'kafka' in names else None,
    )

  def __post_init__(self):
    _check_types(self)
    if self.contact_detail_ttl < Duration(0):
      raise ValueError(
        '--contact_detail_ttl_seconds must be 0 or more, '
        f'got {self.contact_detail_ttl.micros // 10**6}'
      )
    for name, settings in (('cassandra', self.cassandra), ('kafka', self.kafka)):
      if name in self.names and settings is None:
        raise ValueError(f'sink {name} is named but its settings are not given')
