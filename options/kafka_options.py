"""Options of the Kafka source and sink (cross-language KafkaIO)."""
import os
from typing import Dict, List, Optional

from apache_beam.options.pipeline_options import PipelineOptions


def parse_client_config(
    pairs: Optional[List[str]],
    secret_env_pairs: Optional[List[str]],
    environ: Optional[Dict[str, str]] = None) -> Dict[str, str]:
  """Kafka client settings from `key=value` pairs and `key=ENV_VAR` pairs.

  Secrets (a SASL JAAS config, a truststore password) come from environment
  variables named on the command line, so their values never appear in
  argv, pipeline options or logs.
  """
  environ = os.environ if environ is None else environ
  config: Dict[str, str] = {}
  for pair in pairs or []:
    key, sep, value = pair.partition('=')
    if not sep or not key:
      raise ValueError(f'expected key=value, got {pair.split("=")[0]!r}=...')
    config[key.strip()] = value
  for pair in secret_env_pairs or []:
    key, sep, env_name = pair.partition('=')
    if not sep or not key or not env_name:
      raise ValueError(f'expected key=ENV_VAR, got {pair!r}')
    if env_name not in environ:
      raise ValueError(
          f'environment variable {env_name} (for Kafka setting {key}) is '
          'not set')
    config[key.strip()] = environ[env_name]
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
        'KafkaIO expansion service.')
    group.add_argument(
        '--kafka_bootstrap_servers',
        default='127.0.0.1:9092',
        help='Kafka bootstrap servers (host:port,...).')
    group.add_argument(
        '--kafka_consumer_group',
        default='contact-center-analytics',
        help='Consumer group; offsets are committed on checkpoints only.')
    group.add_argument(
        '--kafka_call_events_topic',
        default='cc-call-logs',
        help='Topic of call events (empty: do not read call events).')
    group.add_argument(
        '--kafka_data_actions_topic',
        default='cxone-data-actions',
        help='Topic of CXone Data Action events (empty: do not read them).')
    group.add_argument(
        '--kafka_config',
        action='append',
        default=None,
        help='Extra Kafka client setting key=value for consumer and '
        'producer (repeat), e.g. security.protocol=SASL_SSL.')
    group.add_argument(
        '--kafka_secret_config_env',
        action='append',
        default=None,
        help='Kafka client setting taken from an environment variable, '
        'key=ENV_VAR (repeat), e.g. sasl.jaas.config=KAFKA_JAAS_CONFIG.')
    group.add_argument(
        '--kafka_expansion_service',
        default='127.0.0.1:8097',
        help='Address of the running KafkaIO expansion service '
        '(scripts/expansion_service.sh starts one from Maven Central jars).')
    group.add_argument(
        '--max_events_per_second',
        type=float,
        default=None,
        help='Optional cap on records read per second per reader; it '
        'throttles (blocks), never drops.')
    group.add_argument(
        '--kafka_max_num_records',
        type=int,
        default=None,
        help='Stop after this many records per topic (tests, demos); '
        'default: read forever.')
