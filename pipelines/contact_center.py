"""The main job: contact-center streams to queue and channel metrics.

    python -m pipelines.contact_center --call_events=samples/call_events.jsonl \
        --data_actions=samples/data_actions.jsonl

Flows: call records to abandon metrics per queue and the live floor
(`--call_events`, in the `--call_event_format` seed, genesys_cloud,
amazon_connect or amazon_connect_events), CXone Data Actions to
interaction volumes per channel and callback-pattern alerts
(`--data_actions`), agent events to agents by state and agent metrics
(`--agent_events`, in `--agent_event_format`); any of them; and alerts
on their figures (`--alert_rules`, docs/alerts.md). Sinks:
`--sink` (default sqlite). `--help` lists every option. A file replay on the local runner that takes
more than a few seconds shows its progress on stderr (pipelines/progress.py);
with `--metrics_port` the local runner serves the job's metrics to
Prometheus (pipelines/metrics_server.py).
"""

import contextlib
import functools
import logging
import sys
from typing import Callable, Dict, List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import FlinkRunnerOptions, PipelineOptions

from clients.cxone import CxoneConfig, CxoneError, validate_on_startup
from clients.kafka_check import check_kafka, settings_sources
from options import help_text, reject_secret_flags
from options.agent_options import AgentOptions
from options.alert_options import AlertOptions
from options.call_metrics_options import CallMetricsOptions
from options.cassandra_options import CassandraOptions
from options.config import (
  AgentConfig,
  AlertFlowConfig,
  CallMetricsConfig,
  InteractionConfig,
  KafkaClientConfig,
  KafkaReadConfig,
  SinkConfigs,
)
from options.cxone_options import CxoneOptions
from options.interaction_options import InteractionOptions
from options.kafka_options import KafkaOptions
from options.live_floor_options import LiveFloorOptions
from options.metrics_options import MetricsOptions
from options.stream_options import (
  EventTimeOptions,
  FieldRuleOptions,
  FileReplayOptions,
  SinkOptions,
)
from pipelines import metrics_server, progress
from pipelines.local_runner import local_streaming_runner, validated_beam
from transforms.agent_flow import AgentFlow
from transforms.alert_flow import AlertFlow
from transforms.call_flow import CallMetricsFlow
from transforms.data_actions import data_action_time_ms
from transforms.formats.agent_registry import agent_event_format
from transforms.formats.registry import call_event_format
from transforms.interaction_flow import CxoneInteractionFlow
from transforms.kafka_io import ReadKafkaRecords
from transforms.operator_metrics import CountTableRows
from transforms.replay import ReplayFiles, ReplaySource
from transforms.schema import TABLES
from transforms.sink_registry import result_sinks
from transforms.sinks import WriteTables

CALL_EVENTS_SOURCE = 'cc-call-logs'
DATA_ACTIONS_SOURCE = 'cxone-data-actions'
AGENT_EVENTS_SOURCE = 'cc-agent-events'


def check_kafka_on_startup(options: PipelineOptions) -> None:
  """Logs in to Kafka with the job's client settings when the job reads or
  writes Kafka (unless --skip_kafka_check); raises KafkaCheckError."""
  kafka = options.view_as(KafkaOptions)
  uses_kafka = kafka.source == 'kafka' or 'kafka' in (options.view_as(SinkOptions).sink or [])
  if kafka.skip_kafka_check or not uses_kafka:
    return
  check_kafka(
    KafkaClientConfig.from_options(options).client_settings(),
    options.view_as(FlinkRunnerOptions).flink_job_server_jar,
    settings_sources(kafka.kafka_secret_config_env),
  )


def merge_tables(*flows: Dict[str, beam.PCollection]) -> Dict[str, beam.PCollection]:
  """One PCollection per table: tables that several flows write (late
  events, dead letters) are flattened."""
  by_table: Dict[str, List[beam.PCollection]] = {}
  for flow in flows:
    for name, rows in flow.items():
      by_table.setdefault(name, []).append(rows)
  return {
    name: parts[0] if len(parts) == 1 else (parts | f'Merge[{name}]' >> beam.Flatten())
    for name, parts in by_table.items()
  }


def read_kafka_topic(config: KafkaReadConfig, topic: str) -> ReadKafkaRecords:
  """The job's Kafka source for one topic, as `config` sets it (also the
  benchmark floor's, scripts/bench/flink_floor.py)."""
  return ReadKafkaRecords(
    topic,
    config.client.bootstrap_servers,
    config.consumer_group,
    config.client.expansion_service,
    config.client.settings,
    config.max_events_per_second,
    config.max_num_records,
  )


def read_sources(
  pipeline: beam.Pipeline,
  options: PipelineOptions,
  calls: CallMetricsConfig,
  interactions: InteractionConfig,
  agents: AgentConfig,
) -> Dict[str, beam.PCollection]:
  """Source name -> PCollection[SourceRecord], from files or Kafka. A
  replayed file's watermark follows the event times its flow's config
  reads (format and field rules)."""
  kafka = options.view_as(KafkaOptions)
  if kafka.source == 'kafka':
    topics = {
      CALL_EVENTS_SOURCE: kafka.kafka_call_events_topic,
      DATA_ACTIONS_SOURCE: kafka.kafka_data_actions_topic,
      AGENT_EVENTS_SOURCE: options.view_as(AgentOptions).kafka_agent_events_topic,
    }
    config = KafkaReadConfig.from_options(options)
    return {
      name: pipeline | f'Kafka[{topic}]' >> read_kafka_topic(config, topic)
      for name, topic in topics.items()
      if topic
    }
  replay = options.view_as(FileReplayOptions)
  files = []
  if replay.call_events:
    event_time_ms = call_event_format(calls.call_event_format).event_time_ms(calls)
    files.append(ReplaySource(CALL_EVENTS_SOURCE, replay.call_events, event_time_ms))
  if replay.data_actions:
    files.append(
      ReplaySource(
        DATA_ACTIONS_SOURCE,
        replay.data_actions,
        functools.partial(data_action_time_ms, rules=interactions.field_rules),
      )
    )
  agent_events = options.view_as(AgentOptions).agent_events
  if agent_events:
    event_time_ms = agent_event_format(agents.agent_event_format).event_time_ms(agents)
    files.append(ReplaySource(AGENT_EVENTS_SOURCE, agent_events, event_time_ms))
  if not files:
    raise ValueError(
      'nothing to read: give --call_events=PATH, --data_actions=PATH and/or '
      '--agent_events=PATH, or --source=kafka'
    )
  return pipeline | 'Replay' >> ReplayFiles(files, replay.replay_poll_size)


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> Callable[[], None]:
  """Wires sources, flows and sinks into `pipeline`, touching no store.

  Returns the launch step that prepares the sinks (files, keyspace,
  tables; WriteTables.prepare): call it after building and before
  `pipeline.run()`, where the job is launched. It raises ValueError, in one
  line, when a sink refuses the job.
  """
  calls = CallMetricsConfig.from_options(options)
  interactions = InteractionConfig.from_options(options)
  agents = AgentConfig.from_options(options)
  sources = read_sources(pipeline, options, calls, interactions, agents)
  flows = []
  if CALL_EVENTS_SOURCE in sources:
    flows.append(
      sources[CALL_EVENTS_SOURCE]
      | 'CallMetrics' >> CallMetricsFlow(source_name=CALL_EVENTS_SOURCE, config=calls)
    )
  if DATA_ACTIONS_SOURCE in sources:
    flows.append(
      sources[DATA_ACTIONS_SOURCE]
      | 'CxoneInteractions'
      >> CxoneInteractionFlow(source_name=DATA_ACTIONS_SOURCE, config=interactions)
    )
  if AGENT_EVENTS_SOURCE in sources:
    flows.append(
      sources[AGENT_EVENTS_SOURCE]
      | 'Agents' >> AgentFlow(source_name=AGENT_EVENTS_SOURCE, config=agents)
    )
  tables = merge_tables(*flows)
  alert_config = AlertFlowConfig.from_options(options, calls)
  if alert_config.rules.rules:
    alerts = tables | 'Alerts' >> AlertFlow(config=alert_config)
    tables = {
      **tables,
      **alerts,
      'dead_letters': (tables['dead_letters'], alerts['dead_letters'])
      | 'AlertDeadLetters' >> beam.Flatten(),
    }
  write = WriteTables(result_sinks(SinkConfigs.from_options(options)), TABLES)
  _ = tables | 'Write' >> write
  _ = tables | 'OperatorMetrics' >> CountTableRows()
  return functools.partial(write.prepare, list(tables))


JOB_OPTIONS = (
  FileReplayOptions,
  KafkaOptions,
  EventTimeOptions,
  FieldRuleOptions,
  CallMetricsOptions,
  LiveFloorOptions,
  InteractionOptions,
  AgentOptions,
  AlertOptions,
  SinkOptions,
  CassandraOptions,
  CxoneOptions,
  MetricsOptions,
)


def run(argv: Optional[List[str]] = None) -> beam.runners.runner.PipelineResult:
  # Before Beam parses (and logs) the flags.
  reject_secret_flags(sys.argv[1:] if argv is None else argv)
  options = PipelineOptions(argv)
  # Before anything is built or submitted: a misconfigured tenant or Kafka
  # client stops the launch with one error saying what to fix.
  if options.view_as(CxoneOptions).validate_cxone:
    validate_on_startup(CxoneConfig.from_options(options))
  check_kafka_on_startup(options)
  runner = local_streaming_runner(options)
  metrics = options.view_as(MetricsOptions)
  if metrics.metrics_port is not None and runner is None:
    raise ValueError(
      "--metrics_port serves the local runner's metrics; on Flink, scrape "
      "Flink's Prometheus reporter (scripts/flink.sh, docs/operations.md)"
    )
  pipeline = beam.Pipeline(runner=runner, options=options)
  prepare_sinks = build(pipeline, options)
  # After the graph is built (no I/O), before the job is submitted: the
  # workers find the sinks' tables, and a store that refuses the job (an
  # unreachable Cassandra, an outdated keyspace) stops the launch with one
  # error saying what to fix.
  prepare_sinks()
  total_lines = progress.replay_total_lines(pipeline)
  # Bound before the launch, so a port in use stops it; it answers the
  # job's metrics once the job runs (pipelines/metrics_server.py).
  serving = (
    metrics_server.serving_metrics(
      metrics.metrics_address, metrics.metrics_port, metrics.metrics_final_scrape_wait_seconds
    )
    if metrics.metrics_port is not None
    else contextlib.nullcontext()
  )
  with serving as server:
    result = pipeline.run()
    if server is not None:
      server.read_metrics = result.metrics
    # Progress is read from the running job's metrics, complete on the local
    # runner only (pipelines/local_runner.py); other runners show none.
    showing = (
      progress.showing_progress(result, total_lines, progress.stderr_reporter())
      if runner is not None and validated_beam() and total_lines is not None
      else contextlib.nullcontext()
    )
    with showing:
      result.wait_until_finish()
  return result


def main() -> None:
  if {'-h', '--help'} & set(sys.argv[1:]):
    print(help_text(JOB_OPTIONS, 'python -m pipelines.contact_center'))
    return
  logging.basicConfig(
    level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s', force=True
  )
  # The local runner's start notice says nothing the user did not ask for.
  logging.getLogger('apache_beam.runners.direct').setLevel(logging.WARNING)
  try:
    run(sys.argv[1:])
  except (ValueError, CxoneError) as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  main()
