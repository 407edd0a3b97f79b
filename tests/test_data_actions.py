"""ParseDataActions routing and InteractionVolumes windows."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration

from tests.conftest import BASE_S, drain
from tests.support.beam_metrics import committed_counters
from transforms import parsing
from transforms.data_actions import ParseDataActions, parse_data_action
from transforms.interaction_volumes import InteractionVolumes
from transforms.records import CustomerProfile, Interaction, SourceRecord

T0 = BASE_S * 1000
INTERACTION = {
  'interactionId': 'i-1',
  'customerId': 'C-1',
  'channel': 'chat',
  'status': 'FAILED',
  'timestamp': T0,
}
UPDATE = {
  'recordType': 'customer_update',
  'customerId': 'C-1',
  'tier': 'GOLD',
  'region': 'EMEA',
  'timestamp': T0,
}


def raw(obj) -> bytes:
  return json.dumps(obj).encode()


def test_interaction_and_update_are_told_apart():
  assert parse_data_action(raw(INTERACTION)) == Interaction('i-1', 'C-1', 'chat', 'FAILED', T0)
  assert parse_data_action(raw(UPDATE)) == CustomerProfile('C-1', 'GOLD', 'EMEA', T0)


@pytest.mark.parametrize(
  'obj, reason',
  [
    (dict(INTERACTION, recordType='agent_update'), 'unknown_record_type'),
    ({k: v for k, v in INTERACTION.items() if k != 'customerId'}, 'missing_field'),
    (dict(INTERACTION, channel=''), 'empty_field'),
    (dict(INTERACTION, timestamp='now'), 'wrong_type'),
    (dict(INTERACTION, timestamp=12), 'absurd_timestamp'),
    ({k: v for k, v in UPDATE.items() if k != 'tier'}, 'missing_field'),
    (dict(UPDATE, recordType=7), 'wrong_type'),
    ([INTERACTION], 'not_a_json_object'),
  ],
)
def test_bad_records_have_specific_reasons(obj, reason):
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_data_action(raw(obj))
  assert error.value.reason == reason


def test_updates_go_to_the_side_output(options):
  records = [
    SourceRecord('cxone-data-actions', 'f:1', raw(INTERACTION)),
    SourceRecord('cxone-data-actions', 'f:2', raw(UPDATE)),
    SourceRecord('cxone-data-actions', 'f:3', b'[1, 2'),
  ]
  with beam.Pipeline(options=options) as p:
    parsed = (
      p | TestStream().add_elements(records).advance_watermark_to_infinity() | ParseDataActions()
    )
    assert_that(
      parsed.interactions | 'I' >> beam.Map(lambda i: i.interaction_id),
      equal_to(['i-1']),
      label='interactions',
    )
    assert_that(
      parsed.customer_updates | 'U' >> beam.Map(lambda u: u.tier),
      equal_to(['GOLD']),
      label='updates',
    )
    assert_that(
      parsed.dead_letters | 'D' >> beam.Map(lambda d: d.reason),
      equal_to(['malformed_json']),
      label='dead_letters',
    )


def test_parse_counts_both_kinds_across_bundles(options):
  stream = TestStream()
  # Each add_elements is a bundle of its own: per-bundle tallies must add up.
  for n, obj in enumerate([INTERACTION, UPDATE, INTERACTION, INTERACTION]):
    stream = stream.add_elements([SourceRecord('cxone-data-actions', f'f:{n}', raw(obj))])
  p = beam.Pipeline(options=options)
  _ = p | stream.advance_watermark_to_infinity() | ParseDataActions()
  result = p.run()
  result.wait_until_finish()
  assert committed_counters(result, 'data_actions') == {'interactions': 3, 'customer_updates': 1}


def interaction(iid, at_s, channel):
  i = Interaction(iid, 'C-1', channel, 'COMPLETED', int((BASE_S + at_s) * 1000))
  return beam.window.TimestampedValue(i, i.timestamp / 1000)


def test_volume_windows_are_stamped_with_event_time_bounds(options):
  stream = drain(
    TestStream()
    .add_elements(
      [
        interaction('a', 1, 'chat'),
        interaction('b', 2, 'chat'),
        interaction('c', 3, 'voice'),
        interaction('d', 12, 'chat'),
      ]
    )
    .advance_watermark_to(BASE_S + 100)
    .add_elements(
      [
        # [10, 20) expired at 20 + 60 = 80 < 100: late output.
        interaction('too-late', 15, 'chat'),
      ]
    )
  )
  with beam.Pipeline(options=options) as p:
    out = (
      p
      | stream
      | InteractionVolumes(Duration(seconds=10), Duration(seconds=60), Duration(seconds=3600))
    )
    assert_that(
      out['rows']
      | 'V'
      >> beam.Map(
        lambda v: (v.channel, v.window_start - T0, v.window_end - T0, v.volume, v.pane_timing)
      ),
      equal_to(
        [
          ('chat', 0, 10000, 2, 'ON_TIME'),
          ('voice', 0, 10000, 1, 'ON_TIME'),
          ('chat', 10000, 20000, 1, 'ON_TIME'),
        ]
      ),
      label='volumes',
    )
    assert_that(
      out['late'] | 'L' >> beam.Map(lambda a: a.value.interaction_id),
      equal_to(['too-late']),
      label='late',
    )
