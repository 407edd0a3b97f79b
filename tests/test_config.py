"""The job's settings (options/config.py): frozen configs built once from
the options, each flow with its own lateness and duplicate horizon, handed
to the flows by keyword; a wrong value or keyword fails at once."""

import dataclasses
import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration

from options.config import (
  CallMetricsConfig,
  EventTimeConfig,
  FieldRules,
  InteractionConfig,
  checked_millis,
)
from tests.conftest import BASE_S, drain
from transforms.call_flow import CallMetricsFlow
from transforms.interaction_flow import CxoneInteractionFlow
from transforms.records import SourceRecord

T0 = BASE_S * 1000


def from_flags(*flags: str):
  options = PipelineOptions(list(flags))
  return (CallMetricsConfig.from_options(options), InteractionConfig.from_options(options))


def assert_seconds(value, expected: float) -> None:
  # A Duration also compares equal to a bare number: check the type too.
  assert isinstance(value, Duration), value
  assert value == Duration(seconds=expected)


def test_configs_are_built_from_the_options():
  calls, interactions = from_flags(
    '--max_out_of_orderness_seconds=5',
    '--key_idle_ttl_seconds=300',
    '--window_seconds=60',
    '--allowed_lateness_seconds=30',
    '--dedupe_ttl_seconds=120',
    '--short_abandon_threshold_seconds=2.5',
    '--service_level_seconds=15',
    '--genesys_max_queue_wait_seconds=1800',
    '--call_event_format=genesys_cloud',
    '--max_future_skew_seconds=60',
    '--max_id_length=64',
    '--volume_window_seconds=20',
    '--pattern_within_seconds=40',
    '--pattern_tick_seconds=2',
    '--profile_wait_seconds=10',
    '--customer_state_ttl_seconds=3600',
    '--failure_statuses=FAILED,DROPPED',
  )
  assert_seconds(calls.event_time.max_out_of_orderness, 5)
  assert_seconds(calls.event_time.key_idle_ttl, 300)
  assert_seconds(calls.window_size, 60)
  assert_seconds(calls.allowed_lateness, 30)
  assert_seconds(calls.dedupe_ttl, 120)
  assert_seconds(calls.genesys_max_queue_wait, 1800)
  assert calls.short_abandon_threshold_seconds == 2.5
  assert calls.service_level_seconds == 15
  assert calls.call_event_format == 'genesys_cloud'
  assert calls.field_rules == FieldRules(max_id_length=64, max_future_skew=Duration(seconds=60))
  assert_seconds(interactions.window_size, 20)
  assert_seconds(interactions.pattern_within, 40)
  assert_seconds(interactions.pattern_tick, 2)
  assert_seconds(interactions.profile_wait, 10)
  assert_seconds(interactions.customer_state_ttl, 3600)
  assert interactions.failure_statuses == frozenset({'FAILED', 'DROPPED'})
  # One event time and one set of field rules for the whole job.
  assert interactions.event_time == calls.event_time
  assert interactions.field_rules == calls.field_rules


def test_each_flow_has_its_own_lateness_and_dedupe():
  calls, interactions = from_flags(
    '--allowed_lateness_seconds=30',
    '--dedupe_ttl_seconds=120',
    '--interaction_allowed_lateness_seconds=90',
    '--interaction_dedupe_ttl_seconds=900',
  )
  assert_seconds(calls.allowed_lateness, 30)
  assert_seconds(calls.dedupe_ttl, 120)
  assert_seconds(interactions.allowed_lateness, 90)
  assert_seconds(interactions.dedupe_ttl, 900)


def test_by_default_both_flows_have_the_same_lateness_and_dedupe():
  calls, interactions = from_flags()
  assert_seconds(interactions.allowed_lateness, 60)
  assert_seconds(interactions.dedupe_ttl, 600)
  assert interactions.allowed_lateness == calls.allowed_lateness
  assert interactions.dedupe_ttl == calls.dedupe_ttl


def test_configs_are_frozen():
  calls, interactions = from_flags()
  for config in (calls, interactions, calls.event_time, calls.field_rules):
    name = dataclasses.fields(config)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
      setattr(config, name, getattr(config, name))


def test_configs_take_keywords_only():
  with pytest.raises(TypeError):
    EventTimeConfig(Duration(seconds=10), Duration(seconds=900))  # pylint: disable=too-many-function-args


def test_an_unknown_keyword_is_refused():
  calls, _ = from_flags()
  with pytest.raises(TypeError, match='dedupe_ttl_seconds'):
    dataclasses.replace(calls, dedupe_ttl_seconds=Duration(seconds=600))


@pytest.mark.parametrize(
  'field, value',
  [
    ('dedupe_ttl', 600),  # a bare number where a Duration belongs
    ('field_rules', Duration(seconds=900)),  # a value in the wrong field
    ('event_time', FieldRules()),
    ('short_abandon_threshold_seconds', Duration(seconds=2)),
    ('call_event_format', None),
  ],
)
def test_a_value_of_the_wrong_type_is_refused(field, value):
  calls, _ = from_flags()
  with pytest.raises(TypeError, match=f'CallMetricsConfig.{field} must be'):
    dataclasses.replace(calls, **{field: value})


def test_a_fraction_of_a_second_is_refused():
  _, interactions = from_flags()
  with pytest.raises(ValueError, match='InteractionConfig.pattern_tick'):
    dataclasses.replace(interactions, pattern_tick=Duration(seconds=0.5))


def test_a_composite_duration_is_checked_once_into_milliseconds():
  assert checked_millis(Duration(seconds=2), 'window size', zero_ok=False) == 2000
  assert checked_millis(Duration(0), 'allowed lateness', zero_ok=True) == 0
  # A bare number left by a caller of the old int-seconds signature.
  with pytest.raises(TypeError, match='dedupe TTL must be a Duration, got 600'):
    checked_millis(600, 'dedupe TTL', zero_ok=False)
  with pytest.raises(ValueError, match=r'window size must be > 0, got Duration\(0\)'):
    checked_millis(Duration(0), 'window size', zero_ok=False)
  with pytest.raises(ValueError, match='allowed lateness must be >= 0'):
    checked_millis(Duration(seconds=-1), 'allowed lateness', zero_ok=True)


def test_a_flow_refuses_another_flows_config_and_positional_arguments():
  calls, interactions = from_flags()
  with pytest.raises(TypeError, match='must be CallMetricsConfig, got InteractionConfig'):
    CallMetricsFlow(source_name='cc-call-logs', config=interactions)
  with pytest.raises(TypeError, match='must be InteractionConfig, got CallMetricsConfig'):
    CxoneInteractionFlow(source_name='cxone-data-actions', config=calls)
  with pytest.raises(TypeError):
    CallMetricsFlow('cc-call-logs', calls)  # pylint: disable=too-many-function-args
  with pytest.raises(TypeError, match='allowed_lateness'):
    CxoneInteractionFlow(  # pylint: disable=unexpected-keyword-arg
      source_name='cxone-data-actions', config=interactions, allowed_lateness=Duration(seconds=60)
    )


def interaction(iid: str, at_s: int) -> SourceRecord:
  return SourceRecord(
    'cxone-data-actions',
    f'f:{iid}',
    json.dumps(
      {
        'interactionId': iid,
        'customerId': 'C-1',
        'channel': 'chat',
        'status': 'COMPLETED',
        'timestamp': T0 + at_s * 1000,
      }
    ).encode(),
  )


@pytest.mark.parametrize(
  'flags, late',
  [
    ((), ['straggler']),
    # The call flow's lateness does not reach the interaction flow...
    (('--allowed_lateness_seconds=120',), ['straggler']),
    # ... its own does: [10 s, 20 s) then expires at 140 s, after 100 s.
    (('--interaction_allowed_lateness_seconds=120',), []),
  ],
)
def test_the_interaction_flow_applies_its_own_lateness(options, flags, late):
  _, config = from_flags('--max_out_of_orderness_seconds=0', *flags)
  stream = drain(
    TestStream()
    .add_elements([interaction('a', 1), interaction('b', 12)])
    .advance_watermark_to(BASE_S + 100)
    .add_elements(
      [
        # Window [10 s, 20 s) expires at 20 s + allowed lateness.
        interaction('straggler', 15)
      ]
    )
  )
  with beam.Pipeline(options=options) as p:
    tables = p | stream | CxoneInteractionFlow(source_name='cxone-data-actions', config=config)
    assert_that(
      tables['late_events'] | 'L' >> beam.Map(lambda e: e.event_id), equal_to(late), label='late'
    )
    assert_that(
      tables['interaction_volumes']
      | 'V' >> beam.Map(lambda v: (v.window_start - T0, v.volume, v.pane_timing)),
      equal_to([(0, 1, 'ON_TIME'), (10000, 1, 'ON_TIME')] + ([] if late else [(10000, 2, 'LATE')])),
      label='volumes',
    )
