"""JoinCustomers on TestStream: latest profile by event time, bounded wait
for a first profile, state TTL."""

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration

from tests.conftest import BASE_S
from transforms.join_customers import JoinCustomers
from transforms.records import CustomerProfile, Interaction

WAIT_S = 30
TTL_S = 3600


def record(iid, at_s, customer='C-1'):
  return Interaction(iid, customer, 'chat', 'COMPLETED', int((BASE_S + at_s) * 1000))


def profile(at_s, tier, region='EMEA', customer='C-1'):
  return CustomerProfile(customer, tier, region, int((BASE_S + at_s) * 1000))


def stamped(x):
  return beam.window.TimestampedValue(x, x.timestamp / 1000)


def run_join(batches, options):
  """batches: (records, profiles, watermark after in s or None)."""
  stream = TestStream(output_tags=['records', 'profiles'])
  for records, profiles, watermark_s in batches:
    if records:
      stream = stream.add_elements([stamped(r) for r in records], tag='records')
    if profiles:
      stream = stream.add_elements([stamped(p) for p in profiles], tag='profiles')
    if watermark_s is not None:
      for tag in ('records', 'profiles'):
        stream = stream.advance_watermark_to(BASE_S + watermark_s, tag=tag)
  for tag in ('records', 'profiles'):
    stream = stream.advance_watermark_to(BASE_S + 10 * 86400, tag=tag)
    stream = stream.advance_watermark_to_infinity(tag=tag)
  with beam.Pipeline(options=options) as p:
    streams = p | stream
    yield (
      (streams['records'], streams['profiles'])
      | JoinCustomers(
        lambda r, prof: (r.interaction_id, prof.tier),
        Interaction,
        Duration(seconds=WAIT_S),
        Duration(seconds=TTL_S),
      )
    )


def check(batches, options, expected):
  for joined in run_join(batches, options):
    assert_that(joined, equal_to(expected))


def test_record_after_profile_is_enriched_at_once(options):
  check([([], [profile(0, 'GOLD')], 5), ([record('i1', 10)], [], None)], options, [('i1', 'GOLD')])


def test_record_waits_for_a_profile_arriving_within_the_wait(options):
  check(
    [([record('i1', 10)], [], 20), ([], [profile(25, 'SILVER')], None)], options, [('i1', 'SILVER')]
  )


def test_record_goes_on_as_unknown_after_the_wait(options):
  check(
    [
      ([record('i1', 10)], [], 10 + WAIT_S + 1),
      ([], [profile(60, 'SILVER')], None),
      ([record('i2', 70)], [], None),
    ],
    options,
    [('i1', 'UNKNOWN'), ('i2', 'SILVER')],
  )


def test_latest_profile_by_event_time_wins_not_latest_arrival(options):
  check(
    [
      ([], [profile(50, 'PLATINUM')], 55),
      ([], [profile(40, 'BRONZE')], 60),  # older update delivered late
      ([record('i1', 70)], [], None),
    ],
    options,
    [('i1', 'PLATINUM')],
  )


def test_profile_state_expires_after_ttl_of_inactivity(options):
  check(
    [
      ([], [profile(0, 'GOLD')], 10),
      ([], [], TTL_S + 100),
      ([record('i1', TTL_S + 200)], [], None),
    ],
    options,
    [('i1', 'UNKNOWN')],
  )


def test_activity_keeps_the_profile_alive(options):
  check(
    [
      ([], [profile(0, 'GOLD')], 10),
      ([record('i1', TTL_S - 100)], [], TTL_S + 100),
      ([record('i2', TTL_S + 200)], [], None),
    ],
    options,
    [('i1', 'GOLD'), ('i2', 'GOLD')],
  )
