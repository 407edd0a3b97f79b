"""AbandonRate on TestStream: panes, lateness, late output, rounding."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration

from tests.conftest import BASE_S, drain, offered, timed
from transforms.abandon_rate import AbandonRate, AbandonStats, AbandonStatsFn, rounded_ratio
from transforms.records import FLOW_OUT, UNKNOWN_OUTCOME
from transforms.sharding import DEFAULT_STATE_SHARDS

WINDOW = 300
LATENESS = 60
# The AbandonRate of these tests: the window and lateness above, idle keys
# dropped after an hour.
WINDOWS = dict(
  window_size=Duration(seconds=WINDOW),
  allowed_lateness=Duration(seconds=LATENESS),
  key_idle_ttl=Duration(seconds=3600),
)


def run_abandon_rate(stream, options, short_threshold=0, sl=20, shards=DEFAULT_STATE_SHARDS):
  """Runs AbandonRate on a TestStream; returns (panes, late call ids)."""
  with beam.Pipeline(options=options) as p:
    out = (
      p
      | stream
      | AbandonRate(
        short_abandon_threshold_seconds=short_threshold,
        service_level_seconds=sl,
        shards=shards,
        **WINDOWS,
      )
    )
    panes = out['rows'] | 'Panes' >> beam.Map(
      lambda m: (
        m.queue_id,
        m.window_start // 1000 - BASE_S,
        m.pane_index,
        m.pane_timing,
        m.total_calls,
        m.abandoned_calls,
      )
    )
    late = out['late'] | 'Late' >> beam.Map(lambda a: a.value.call_id)
    yield panes, late


def check(stream, options, expected_panes, expected_late):
  for panes, late in run_abandon_rate(stream, options):
    assert_that(panes, equal_to(expected_panes), label='panes')
    assert_that(late, equal_to(expected_late), label='late')


def test_on_time_pane_fires_when_watermark_passes_window_end(options):
  stream = drain(
    (
      TestStream()
      .add_elements(
        [
          timed(offered('a', 10)),
          timed(offered('b', 20, abandoned=True)),
          timed(offered('c', 30, queue_id='Q-2')),
        ]
      )
      .advance_watermark_to(BASE_S + WINDOW)
    )
  )
  check(stream, options, [('Q-1', 0, 0, 'ON_TIME', 2, 1), ('Q-2', 0, 0, 'ON_TIME', 1, 0)], [])


def test_late_event_within_lateness_updates_the_row_accumulating(options):
  stream = drain(
    (
      TestStream()
      .add_elements([timed(offered('a', 10))])
      .advance_watermark_to(BASE_S + WINDOW + 30)
      .add_elements([timed(offered('b', 20, abandoned=True))])
    )
  )
  check(stream, options, [('Q-1', 0, 0, 'ON_TIME', 1, 0), ('Q-1', 0, 1, 'LATE', 2, 1)], [])


def test_late_events_arriving_together_update_the_row_once(options):
  """Late elements of one bundle give one LATE pane per window (like Beam's
  AfterCount(1) late firing), counting all of them; an expired one beside
  them still goes to the late output. (Q-2 has no clock of its own yet: its
  window is reported when its shard's clock first fires after it, see
  transforms/windowing.py.)"""
  stream = drain(
    (
      TestStream()
      .add_elements([timed(offered('a', 10))])
      .advance_watermark_to(BASE_S + WINDOW + 30)
      .add_elements(
        [
          timed(offered('b', 20, abandoned=True)),
          timed(offered('c', 40)),
          timed(offered('d', 50, queue_id='Q-2')),
        ]
      )
      .advance_watermark_to(BASE_S + 2 * WINDOW + LATENESS)
      .add_elements([timed(offered('too-late', 60)), timed(offered('e', 610))])
    )
  )
  check(
    stream,
    options,
    [
      ('Q-1', 0, 0, 'ON_TIME', 1, 0),
      ('Q-1', 0, 1, 'LATE', 3, 1),
      ('Q-2', 0, 0, 'ON_TIME', 1, 0),
      ('Q-1', 600, 0, 'ON_TIME', 1, 0),
    ],
    ['too-late'],
  )


def test_a_key_judges_lateness_by_its_own_clock_not_its_neighbours(options):
  """docs/design.md, "When an event is late": a queue the job has never
  seen cannot judge lateness yet, whatever the other queues know, and
  whether or not they share its shard (one shard here: Q-1, Q-11 and Q-2
  all share it). Its expired event opens its window."""
  stream = drain(
    (
      TestStream()
      .add_elements([timed(offered('a', 10))])
      .advance_watermark_to(BASE_S + WINDOW + LATENESS + 1)
      .add_elements(
        [
          timed(offered('unjudged-1', 20, queue_id='Q-11')),
          timed(offered('unjudged-2', 20, queue_id='Q-2')),
        ]
      )
    )
  )
  for panes, late in run_abandon_rate(stream, options, shards=1):
    assert_that(
      panes,
      equal_to(
        [
          ('Q-1', 0, 0, 'ON_TIME', 1, 0),
          ('Q-11', 0, 0, 'LATE', 1, 0),
          ('Q-2', 0, 0, 'LATE', 1, 0),
        ]
      ),
      label='panes',
    )
    assert_that(late, equal_to([]), label='late')


@pytest.mark.parametrize('shards', [1, 128])
def test_a_queue_keeps_its_clock_after_its_idle_ttl(options, shards):
  """A queue silent far past its idle TTL (its windows' state is gone) is
  remembered by name: its expired event is late, never a fresh row over a
  window that already has one; alone in its shard or not."""
  stream = drain(
    (
      TestStream()
      .add_elements([timed(offered('a', 10)), timed(offered('b', 10, queue_id='Q-2'))])
      .advance_watermark_to(BASE_S + WINDOW + LATENESS + 1)
      .advance_watermark_to(BASE_S + 3 * 3600)
      .add_elements([timed(offered('too-late', 20))])
    )
  )
  for panes, late in run_abandon_rate(stream, options, shards=shards):
    assert_that(
      panes,
      equal_to([('Q-1', 0, 0, 'ON_TIME', 1, 0), ('Q-2', 0, 0, 'ON_TIME', 1, 0)]),
      label='panes',
    )
    assert_that(late, equal_to(['too-late']), label='late')


def test_event_after_expiry_goes_to_late_output(options):
  stream = drain(
    (
      TestStream()
      .add_elements([timed(offered('a', 10))])
      .advance_watermark_to(BASE_S + WINDOW + LATENESS + 1)
      .add_elements([timed(offered('too-late', 20))])
    )
  )
  check(stream, options, [('Q-1', 0, 0, 'ON_TIME', 1, 0)], ['too-late'])


@pytest.mark.parametrize(
  'watermark_s, expired_s, on_time_s',
  [
    # Window [300, 600) never had an event when the watermark passed its
    # expiry (660); its first event must not open a fresh row.
    (2000, 400, 1990),
    # A jump of 3,000 s crosses 20 window ends and expiries, more than the
    # ticks a key keeps armed (TICKS_AHEAD): they must re-arm as they fire,
    # or the clock stalls and the event of a long-expired window opens a
    # row. (Within the key idle TTL of 3,600 s: an idle key stops ticking.)
    (3000, 2000, 3010),
  ],
)
def test_first_event_of_an_already_expired_window_is_routed_late(
  options, watermark_s, expired_s, on_time_s
):
  stream = drain(
    (
      TestStream()
      .add_elements([timed(offered('a', 10))])
      .advance_watermark_to(BASE_S + watermark_s)
      .add_elements(
        [timed(offered('first-of-expired', expired_s)), timed(offered('on-time', on_time_s))]
      )
    )
  )
  check(
    stream,
    options,
    [('Q-1', 0, 0, 'ON_TIME', 1, 0), ('Q-1', on_time_s - on_time_s % WINDOW, 0, 'ON_TIME', 1, 0)],
    ['first-of-expired'],
  )


def test_late_first_event_of_a_window_gets_a_late_pane(options):
  # Window [300, 600) is past its end but within lateness when its first
  # event arrives: a LATE pane, no ON_TIME pane.
  stream = drain(
    (
      TestStream()
      .add_elements([timed(offered('a', 10))])
      .advance_watermark_to(BASE_S + 620)
      .add_elements([timed(offered('b', 400))])
    )
  )
  check(stream, options, [('Q-1', 0, 0, 'ON_TIME', 1, 0), ('Q-1', 300, 0, 'LATE', 1, 0)], [])


def test_a_never_seen_queue_is_counted_not_lost(options):
  # Documented limit: a key without any fired timer cannot know the
  # watermark, so its first event opens a row instead of going late.
  stream = drain(
    (
      TestStream()
      .add_elements([timed(offered('a', 10))])
      .advance_watermark_to(BASE_S + 2000)
      .add_elements([timed(offered('new-q', 20, queue_id='Q-9'))])
    )
  )
  check(stream, options, [('Q-1', 0, 0, 'ON_TIME', 1, 0), ('Q-9', 0, 0, 'ON_TIME', 1, 0)], [])


def test_stats_numerators_and_denominators():
  fn = AbandonStatsFn(short_abandon_threshold_seconds=5, service_level_seconds=20)
  acc = fn.create_accumulator()
  for event in [
    offered('a', 0, abandoned=True, wait=3),  # short abandon
    offered('b', 0, abandoned=True, wait=30),
    offered('c', 0, wait=20),  # answered exactly at the SL target
    offered('d', 0, wait=21),
  ]:
    acc = fn.add_input(acc, event)
  merged = fn.merge_accumulators([acc, fn.create_accumulator()])
  stats = fn.extract_output(merged)
  assert stats == AbandonStats(
    total_calls=4,
    answered_calls=2,
    abandoned_calls=2,
    short_abandoned_calls=1,
    flow_out_calls=0,
    answered_within_sl=1,
    abandoned_within_sl=1,
    wait_unknown_calls=0,
    answered_wait_unknown_calls=0,
    total_wait_seconds=74,
    answered_wait_seconds=41,
  )


def test_unknown_waits_and_flow_outs_are_offered_never_within_or_short():
  fn = AbandonStatsFn(short_abandon_threshold_seconds=5, service_level_seconds=20)
  acc = fn.create_accumulator()
  for event in [
    offered('a', 0, abandoned=True, wait=None),  # not short, not within
    offered('b', 0, wait=None),  # answered, wait unknown: not within
    offered('c', 0, outcome=FLOW_OUT, wait=2),
    offered('d', 0, outcome=UNKNOWN_OUTCOME, wait=None),
    offered('e', 0, wait=4),
  ]:
    acc = fn.add_input(acc, event)
  assert fn.extract_output(acc) == AbandonStats(
    total_calls=5,
    answered_calls=2,
    abandoned_calls=1,
    short_abandoned_calls=0,
    flow_out_calls=1,
    answered_within_sl=1,
    abandoned_within_sl=0,
    wait_unknown_calls=3,
    answered_wait_unknown_calls=1,
    total_wait_seconds=6,
    answered_wait_seconds=4,
  )


@pytest.mark.parametrize(
  'numerator, denominator, expected',
  [
    (0, 0, 0.0),  # no calls: no division
    (0, 5, 0.0),
    (1, 3, 0.3333),
    (2, 3, 0.6667),
    (1, 20000, 0.0001),  # 0.00005 rounds half up, not to even
    (1, 20001, 0.0),
    (10, 10, 1.0),  # the seed's DECIMAL(5,4) cast overflowed here
    (123, 1000, 0.123),
  ],
)
def test_rates_round_half_up_to_four_places(numerator, denominator, expected):
  assert rounded_ratio(numerator, denominator) == expected


def test_out_of_orderness_delays_every_decision_by_the_bound(options):
  # With a 10 s bound, watermark 305 s means "event time 295 s has passed":
  # an event of [0, 300) is still on time, and expiry is at 300 + 60 + 10.
  stream = drain(
    (
      TestStream()
      .add_elements([timed(offered('a', 10))])
      .advance_watermark_to(BASE_S + WINDOW + 5)
      .add_elements([timed(offered('still-on-time', 20))])
      .advance_watermark_to(BASE_S + WINDOW + LATENESS + 5)
      .add_elements([timed(offered('late-pane', 30))])
      .advance_watermark_to(BASE_S + WINDOW + LATENESS + 11)
      .add_elements([timed(offered('too-late', 40))])
    )
  )
  with beam.Pipeline(options=options) as p:
    out = (
      p
      | stream
      | AbandonRate(
        short_abandon_threshold_seconds=0,
        service_level_seconds=20,
        max_out_of_orderness=Duration(seconds=10),
        **WINDOWS,
      )
    )
    assert_that(
      out['rows'] | 'Panes' >> beam.Map(lambda m: (m.pane_index, m.pane_timing, m.total_calls)),
      equal_to([(0, 'ON_TIME', 2), (1, 'LATE', 3)]),
      label='panes',
    )
    assert_that(
      out['late'] | 'Late' >> beam.Map(lambda a: a.value.call_id),
      equal_to(['too-late']),
      label='late',
    )
