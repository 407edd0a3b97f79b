"""Pure parts of the Kafka source and sink: the rate cap never drops, rows
become keyed JSON, client secrets come from the environment only."""
import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from options.kafka_options import parse_client_config
from transforms.kafka_io import Throttle, to_kafka_kv
from transforms.records import AbandonMetrics
from transforms.schema import ABANDON_METRICS


def test_rate_cap_blocks_but_passes_every_element(options):
  elements = list(range(60))
  with beam.Pipeline(options=options) as p:
    passed = (
        p | TestStream().add_elements(elements).advance_watermark_to_infinity()
        | Throttle(max_per_second=200))
    assert_that(passed, equal_to(elements))


def test_rate_cap_rejects_a_non_positive_rate():
  with pytest.raises(ValueError, match='rate cap'):
    Throttle(0)


def test_rows_are_json_keyed_by_primary_key():
  row = AbandonMetrics('Q-1', 1000, 301000, 4, 1, 0, 3, 40.0, 0.25, 0.75, 2,
                       'LATE')
  key, value = to_kafka_kv(ABANDON_METRICS, row)
  assert key == b'Q-1|1000'
  assert json.loads(value) == row._asdict()


def test_client_secrets_are_placeholders_the_kafka_client_resolves():
  config = parse_client_config(
      ['security.protocol=SASL_SSL', 'sasl.mechanism=PLAIN'],
      ['sasl.jaas.config=KAFKA_JAAS'],
      environ={'KAFKA_JAAS': 'secret-jaas'})
  assert config == {
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'PLAIN',
      'sasl.jaas.config': '${env:KAFKA_JAAS}',
      'config.providers': 'env',
      'config.providers.env.class':
          'org.apache.kafka.common.config.provider.EnvVarConfigProvider',
  }
  assert 'secret-jaas' not in repr(config)


def test_no_config_provider_without_secret_settings():
  assert parse_client_config(['security.protocol=SSL'], None, environ={}) == {
      'security.protocol': 'SSL'}


@pytest.mark.parametrize('pair', [
    'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule '
    'required username="u" password="hunter2";',
    'ssl.truststore.password=hunter2',
    'ssl.key.password=hunter2',
    'basic.auth.user.info.secret=hunter2',
])
def test_credentials_are_refused_as_plain_settings_without_echoing_them(pair):
  with pytest.raises(ValueError) as error:
    parse_client_config([pair], [], environ={})
  assert 'hunter2' not in str(error.value)
  assert '--kafka_secret_config_env' in str(error.value)


def test_secret_setting_needs_a_variable_name():
  with pytest.raises(ValueError) as error:
    parse_client_config([], ['sasl.jaas.config=not a name'], environ={})
  assert 'not a name' not in str(error.value)


def test_missing_secret_variable_is_a_clear_error_without_values():
  with pytest.raises(ValueError) as error:
    parse_client_config([], ['sasl.jaas.config=KAFKA_JAAS'], environ={})
  assert 'KAFKA_JAAS' in str(error.value)


def test_malformed_setting_is_a_clear_error():
  with pytest.raises(ValueError) as error:
    parse_client_config(['no-equals-sign-secret'], [], environ={})
  assert 'expected key=value' in str(error.value)
