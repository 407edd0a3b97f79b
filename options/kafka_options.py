"""Options of the Kafka source and sink (cross-language KafkaIO)."""

import os
import re
from typing import Dict, List, Optional

from apache_beam.options.pipeline_options import PipelineOptions

# Kafka's own config provider (kafka-clients >= 3.5): a `${env:NAME}` value is
# replaced by the environment variable NAME inside the Java consumer or
# producer, in whichever JVM creates it (the job server when it splits the
# source, the Flink TaskManagers). The value itself never enters the job.
ENV_PROVIDER = {
  'config.providers': 'env',
  'config.providers.env.class': 'org.apache.kafka.common.config.provider.EnvVarConfigProvider',
}
# Setting names that hold credentials (as the template's kafka_config regex):
# refused as --kafka_config values.
SECRET_SETTING = re.compile(r'password|jaas|secret', re.I)
_ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def env_placeholder(env_name: str) -> str:
  """The value Kafka's env config provider resolves to $env_name."""
  return '${env:%s}' % env_name


def parse_client_config(
  pairs: Optional[List[str]],
  secret_env_pairs: Optional[List[str]],
  environ: Optional[Dict[str, str]] = None,
) -> Dict[str, str]:
  """Kafka client settings from `key=value` pairs and `key=ENV_VAR` pairs.

  A secret setting (a SASL JAAS config, a key or truststore password) is a
  `${env:ENV_VAR}` placeholder that the Kafka client resolves where it runs
  (ENV_PROVIDER is added), so its value never appears in argv, pipeline
  options, the expansion request, the job graph or a log. ENV_VAR must be
  set where the job is launched (the job server reads the topics'
  partitions with it) and on every worker. `key=value` pairs may not carry
  credentials. Raises ValueError, without echoing any value.
  """
  environ = os.environ if environ is None else environ
  config: Dict[str, str] = {}
  for pair in pairs or []:
    key, sep, value = pair.partition('=')
    if not sep or not key:
      raise ValueError(f'expected key=value, got {pair.split("=")[0]!r}=...')
    if SECRET_SETTING.search(key):
      raise ValueError(
        f'--kafka_config={key.strip()}=... would put a credential into the '
        'job; give it as --kafka_secret_config_env='
        f'{key.strip()}=ENV_VAR instead'
      )
    config[key.strip()] = value
  for pair in secret_env_pairs or []:
    key, sep, env_name = pair.partition('=')
    if not sep or not key or not _ENV_NAME.fullmatch(env_name):
      raise ValueError(f'expected key=ENV_VAR, got {pair.split("=")[0]!r}=...')
    if env_name not in environ:
      raise ValueError(f'environment variable {env_name} (for Kafka setting {key}) is not set')
    config[key.strip()] = env_placeholder(env_name)
  if secret_env_pairs:
    config.update(ENV_PROVIDER)
  return config


class KafkaOptions(PipelineOptions):
  """Where and how to read and write Kafka."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('kafka')
    group.add_argument(
      '--source',
      choices=('file', 'kafka'),
      default='file',
      help='Read the replay files (--call_events/--data_actions) or the '
      'Kafka topics. Kafka needs a portable runner (FlinkRunner) and the '
      'KafkaIO expansion service.',
    )
    group.add_argument(
      '--kafka_bootstrap_servers',
      default='127.0.0.1:9092',
      help='Kafka bootstrap servers (host:port,...).',
    )
    group.add_argument(
      '--kafka_consumer_group',
      default='contact-center-analytics',
      help='Consumer group; offsets are committed on checkpoints only.',
    )
    group.add_argument(
      '--kafka_call_events_topic',
      default='cc-call-logs',
      help='Topic of call events (empty: do not read call events).',
    )
    group.add_argument(
      '--kafka_data_actions_topic',
      default='cxone-data-actions',
      help='Topic of CXone Data Action events (empty: do not read them).',
    )
    group.add_argument(
      '--kafka_config',
      action='append',
      default=None,
      help='Extra Kafka client setting key=value for consumer and '
      'producer (repeat), e.g. security.protocol=SASL_SSL.',
    )
    group.add_argument(
      '--kafka_secret_config_env',
      action='append',
      default=None,
      help='Kafka client setting taken from an environment variable, '
      'key=ENV_VAR (repeat), e.g. sasl.jaas.config=KAFKA_SASL_JAAS_CONFIG. '
      'The job carries only a ${env:ENV_VAR} placeholder that the Kafka '
      'client resolves itself: set ENV_VAR where the job is launched and '
      'on every Flink TaskManager.',
    )
    group.add_argument(
      '--skip_kafka_check',
      action='store_true',
      default=False,
      help='Do not connect to Kafka before the job is built. By default '
      "the launcher logs in with the job's client settings (through "
      'kafka-clients in --flink_job_server_jar) and stops with one line '
      'saying what to fix: wrong credentials, TLS trust, plaintext '
      'against a TLS listener.',
    )
    group.add_argument(
      '--kafka_expansion_service',
      default='127.0.0.1:8097',
      help='Address of the running KafkaIO expansion service '
      '(scripts/stack/expansion_service.sh starts one from Maven Central jars).',
    )
    group.add_argument(
      '--max_events_per_second',
      type=float,
      default=None,
      help='Optional cap on records read per second per reader; it '
      'throttles (blocks), never drops.',
    )
    group.add_argument(
      '--kafka_max_num_records',
      type=int,
      default=None,
      help='Stop after this many records per topic (tests, demos); default: read forever.',
    )
