"""Pure parts of the Kafka source and sink: the rate cap never drops, rows
become strict JSON keyed unambiguously, rows the producer would refuse
become dead letters, client secrets come from the environment only."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from options.kafka_options import parse_client_config
from tests.support.beam_metrics import committed_counters
from transforms import kafka_io
from transforms.kafka_io import Throttle, ToKafkaRecords, max_request_size, to_kafka_kv
from transforms.records import AbandonMetrics, DeadLetter, PatternAlert
from transforms.schema import ABANDON_METRICS, DEAD_LETTERS, PATTERN_ALERTS
from transforms.sinks import REJECTED


def test_rate_cap_blocks_but_passes_every_element(options):
  elements = list(range(60))
  with beam.Pipeline(options=options) as p:
    passed = (
      p
      | TestStream().add_elements(elements).advance_watermark_to_infinity()
      | Throttle(max_per_second=200)
    )
    assert_that(passed, equal_to(elements))


def test_rate_cap_rejects_a_non_positive_rate():
  with pytest.raises(ValueError, match='rate cap'):
    Throttle(0)


def metrics_row(queue_id='Q-1', wait=40.0) -> AbandonMetrics:
  return AbandonMetrics(queue_id, 1000, 301000, 4, 1, 0, 3, wait, 0.25, 0.75, 2, 'LATE')


def test_rows_are_json_keyed_by_primary_key():
  row = metrics_row()
  key, value = to_kafka_kv(ABANDON_METRICS, row)
  assert key == b'["Q-1","voice",1000]'
  assert json.loads(value) == row._asdict()


def test_composite_keys_cannot_collide():
  def alert(customer, channel):
    return PatternAlert(customer, channel, 1000, 3, 'callback', 'GOLD', 'EU', 900, 'i1,i2')

  keys = [
    to_kafka_kv(PATTERN_ALERTS, alert(customer, channel))[0]
    for customer, channel in (('A|x', 'y'), ('A', 'x|y'), ('A",x', 'y'), ('A', '",x",y'))
  ]
  assert len(set(keys)) == len(keys)
  assert [json.loads(k) for k in keys][:2] == [['A|x', 'y', 1000], ['A', 'x|y', 1000]]


def test_values_are_strict_json_in_utf8():
  key, value = to_kafka_kv(ABANDON_METRICS, metrics_row(queue_id='Fila-ç'))
  assert 'ç'.encode('utf-8') in key and 'ç'.encode('utf-8') in value
  for wait in (float('inf'), float('-inf'), float('nan')):
    with pytest.raises(ValueError):
      to_kafka_kv(ABANDON_METRICS, metrics_row(wait=wait))
  with pytest.raises(UnicodeEncodeError):
    to_kafka_kv(ABANDON_METRICS, metrics_row(queue_id='Q-\ud800'))


def check_rejected(letters):
  by_reason = {d.reason: d for d in letters}
  assert len(letters) == len(by_reason) == 3, letters
  assert {d.source for d in letters} == {'sink:kafka'}
  assert by_reason['not_strict_json'].origin == ('abandon_metrics:["Q-inf","voice",1000]')
  assert 'total_wait_seconds' in by_reason['not_strict_json'].detail
  # The origin is ASCII: the lone surrogate is escaped.
  assert by_reason['not_encodable'].origin == ('abandon_metrics:["Q-\\ud800","voice",1000]')
  too_large = by_reason['row_too_large']
  assert too_large.origin.startswith('abandon_metrics:["QQQQ')
  assert len(too_large.origin) < 300 and '...sha256:' in too_large.origin
  assert 'max.request.size' in too_large.detail
  assert json.loads(too_large.raw)['queue_id'] == 'Q' * 700


def test_rows_the_producer_would_refuse_become_dead_letters(options):
  # Exactly at the limit passes; one byte more (in key and value) does not.
  fits = metrics_row(queue_id='Q' * 699)
  key, value = to_kafka_kv(ABANDON_METRICS, fits)
  limit = len(key) + len(value) + kafka_io.RECORD_OVERHEAD_BYTES
  too_large = metrics_row(queue_id='Q' * 700)
  not_json = metrics_row(queue_id='Q-inf', wait=float('inf'))
  not_unicode = metrics_row(queue_id='Q-\ud800')
  rows = [fits, too_large, not_json, not_unicode]

  p = beam.Pipeline(options=options)
  encoded = (
    p
    | TestStream().add_elements(rows).advance_watermark_to_infinity()
    | ToKafkaRecords(ABANDON_METRICS, max_request_bytes=limit)
  )
  assert_that(encoded.records, equal_to([(key, value)]), label='records')
  assert_that(encoded[REJECTED], check_rejected, label='rejected')
  result = p.run()
  result.wait_until_finish()
  assert committed_counters(result, 'sink') == {
    'abandon_metrics_rejected_row_too_large': 1,
    'abandon_metrics_rejected_not_strict_json': 1,
    'abandon_metrics_rejected_not_encodable': 1,
  }


def test_a_dead_letter_the_producer_would_refuse_is_only_counted(options):
  letter = DeadLetter('cc-call-logs', 'f:1', 'malformed_json', 'x', 'y' * 2000, 2000, 1793606400000)
  p = beam.Pipeline(options=options)
  encoded = (
    p
    | TestStream().add_elements([letter]).advance_watermark_to_infinity()
    | ToKafkaRecords(DEAD_LETTERS, max_request_bytes=1000)
  )
  assert_that(encoded.records, equal_to([]), label='records')
  assert_that(encoded[REJECTED], equal_to([]), label='rejected')
  result = p.run()
  result.wait_until_finish()
  assert committed_counters(result, 'sink') == {'dead_letters_rejected_row_too_large': 1}


def test_max_request_size_comes_from_the_producer_config():
  assert max_request_size({}) == 1024 * 1024
  assert max_request_size({'max.request.size': '5242880'}) == 5242880
  for bad in ('5MB', '0', '-1'):
    with pytest.raises(ValueError, match='max.request.size'):
      max_request_size({'max.request.size': bad})


def test_client_secrets_are_placeholders_the_kafka_client_resolves():
  config = parse_client_config(
    ['security.protocol=SASL_SSL', 'sasl.mechanism=PLAIN'],
    ['sasl.jaas.config=KAFKA_JAAS'],
    environ={'KAFKA_JAAS': 'secret-jaas'},
  )
  assert config == {
    'security.protocol': 'SASL_SSL',
    'sasl.mechanism': 'PLAIN',
    'sasl.jaas.config': '${env:KAFKA_JAAS}',
    'config.providers': 'env',
    'config.providers.env.class': 'org.apache.kafka.common.config.provider.EnvVarConfigProvider',
  }
  assert 'secret-jaas' not in repr(config)


def test_no_config_provider_without_secret_settings():
  assert parse_client_config(['security.protocol=SSL'], None, environ={}) == {
    'security.protocol': 'SSL'
  }


@pytest.mark.parametrize(
  'pair',
  [
    'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule '
    'required username="u" password="hunter2";',
    'ssl.truststore.password=hunter2',
    'ssl.key.password=hunter2',
    'basic.auth.user.info.secret=hunter2',
  ],
)
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
