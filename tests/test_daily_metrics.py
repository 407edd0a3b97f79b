"""ComputeDailyMetrics on TestStreams of AbandonMetrics panes: the day so
far per queue, channel and local date, EARLY panes included, restated by a
LATE pane; stale panes ignored; the day's state cleared after its end and
the lateness; local days of 23 and 25 hours; unknown time zones refused."""

from typing import Any, List, Tuple

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from tests.conftest import streaming_options
from tests.support.beam_metrics import committed_counters
from tests.support.runner_clock import COLLECTED, collect, runner_clock  # noqa: F401 (fixture)
from tests.test_rolling_metrics import MIN, T0, at, pane, wm
from transforms.daily_metrics import ComputeDailyMetrics, day_bounds, local_date
from transforms.records import DailyMetrics

NAMESPACE = 'daily_metrics_test'
HOUR = 60 * MIN
# T0 is 2026-11-02T08:00:00Z.
DAY_START = T0 - 8 * HOUR


def run(
  stream: TestStream, timezone: str = 'UTC', lateness_s: int = 60, **options: Any
) -> Tuple[List, dict]:
  """(rows in emission order, counters)."""
  pipeline = beam.Pipeline(options=streaming_options())
  out = (
    pipeline
    | stream
    | ComputeDailyMetrics(
      timezone=timezone,
      allowed_lateness=Duration(seconds=lateness_s),
      metrics_namespace=NAMESPACE,
      processing_clock=lambda: Timestamp(1234),
      **options,
    )
  )
  _ = out['daily_metrics'] | 'Rows' >> beam.FlatMap(collect, 'rows')
  _ = out['dead_letters'] | 'Dead' >> beam.FlatMap(collect, 'dead')
  result = pipeline.run()
  result.wait_until_finish()
  return [r for o, r in COLLECTED if o == 'rows'], committed_counters(result, NAMESPACE)


def short(row: DailyMetrics) -> Tuple:
  """(date, as_of in minutes from T0, calls, abandoned, abandon rate,
  windows, panes counted)."""
  return (
    row.local_date,
    (row.as_of - T0) // MIN,
    row.total_calls,
    row.abandoned_calls,
    row.abandon_rate,
    row.windows,
    row.panes_counted,
  )


def test_the_day_so_far_counts_early_panes_and_is_restated_by_late_ones(runner_clock):
  stream = (
    TestStream()
    .add_elements([at(pane(0, 0, 'EARLY', 4, 1))])
    .add_elements([at(pane(0, 1, 'EARLY', 8, 1))])
    .advance_watermark_to(wm(5))
    .add_elements([at(pane(0, 2, 'ON_TIME', 10, 2))])
    .add_elements([at(pane(5, 0, 'EARLY', 5, 0))])
    .advance_watermark_to(wm(10))
    .add_elements([at(pane(5, 1, 'ON_TIME', 10, 0))])
    # Window 0 restated after window 5 closed.
    .add_elements([TimestampedValue(pane(0, 3, 'LATE', 12, 4), wm(3))])
    .advance_watermark_to_infinity()
  )
  rows, counters = run(stream)
  assert [short(r) for r in rows] == [
    ('2026-11-02', 5, 4, 1, 0.25, 1, 1),
    ('2026-11-02', 5, 8, 1, 0.125, 1, 2),
    ('2026-11-02', 5, 10, 2, 0.2, 1, 3),
    ('2026-11-02', 10, 15, 2, 0.1333, 2, 4),
    ('2026-11-02', 10, 20, 2, 0.1, 2, 5),
    ('2026-11-02', 10, 22, 4, 0.1818, 2, 6),
  ]
  last = rows[-1]
  assert (last.queue_id, last.channel, last.queue_name) == ('Q-1', 'voice', 'Sales')
  assert (last.timezone, last.day_start, last.day_end) == ('UTC', DAY_START, DAY_START + 24 * HOUR)
  assert last.answered_calls == 18 and last.asa_seconds == 4.0
  assert last.service_level == 0.8182
  assert counters['days_closed'] == 1
  assert counters['windows_held'] == 0


def test_stale_panes_change_nothing(runner_clock):
  stream = (
    TestStream()
    .add_elements([at(pane(0, 2, 'LATE', 9))])
    # Overtaken in transit, and a copy.
    .add_elements([at(pane(0, 0, 'EARLY', 3)), at(pane(0, 1, 'ON_TIME', 5))])
    .add_elements([at(pane(0, 2, 'LATE', 9))])
    .advance_watermark_to_infinity()
  )
  rows, counters = run(stream)
  assert [short(r) for r in rows] == [('2026-11-02', 5, 9, 0, 0.0, 1, 3)]
  assert counters['stale_panes'] == 3


def test_a_window_counts_in_the_local_day_it_starts_in(runner_clock):
  # Berlin is UTC+1 in November: 22:55Z-23:00Z starts at 23:55 on the 2nd,
  # 23:00Z-23:05Z at 00:00 on the 3rd.
  before, after = (pane(m, 0, 'ON_TIME', 1) for m in (14 * 60 + 55, 15 * 60))
  stream = TestStream().add_elements([at(before), at(after)]).advance_watermark_to_infinity()
  rows, counters = run(stream, timezone='Europe/Berlin')
  by_date = {r.local_date: r for r in rows}
  assert sorted(by_date) == ['2026-11-02', '2026-11-03']
  assert by_date['2026-11-02'].day_end == by_date['2026-11-03'].day_start == T0 + 15 * HOUR
  assert by_date['2026-11-02'].as_of == T0 + 15 * HOUR
  assert counters['days_closed'] == 2


def test_the_days_state_is_cleared_after_its_end_and_the_lateness(runner_clock):
  late_window = pane(15 * 60 + 55, 0, 'ON_TIME', 3)  # 23:55Z-24:00Z, the day's last
  stream = (
    TestStream()
    .add_elements([at(pane(0, 0, 'ON_TIME', 10)), at(late_window)])
    .advance_watermark_to(wm(16 * 60 + 0.5))  # within the lateness: kept
    .add_elements([TimestampedValue(pane(0, 1, 'LATE', 11), wm(1))])
    .advance_watermark_to(wm(16 * 60 + 1))  # day end + 1 min: cleared
    # Past the lateness AbandonRate sends no pane of the day; one that came
    # anyway finds nothing kept and starts the day over.
    .add_elements([TimestampedValue(pane(0, 2, 'LATE', 12), wm(1))])
    .advance_watermark_to_infinity()
  )
  rows, counters = run(stream)
  # (calls, abandoned, rate, windows, panes counted)
  assert [short(r)[2:] for r in rows] == [
    (13, 0, 0.0, 2, 2),
    (14, 0, 0.0, 2, 3),
    (12, 0, 0.0, 1, 3),
  ]
  assert counters['days_closed'] == 2


@pytest.mark.parametrize(
  'timezone, date, hours',
  [
    ('Europe/Berlin', '2026-03-29', 23),
    ('Europe/Berlin', '2026-10-25', 25),
    ('Europe/Berlin', '2026-10-26', 24),
    ('America/New_York', '2026-03-08', 23),
    ('America/New_York', '2026-11-01', 25),
    ('UTC', '2026-11-02', 24),
    # Midnight skipped: Santiago springs forward at 24:00 to 01:00.
    ('America/Santiago', '2026-09-06', 23),
  ],
)
def test_day_bounds(timezone, date, hours):
  start, end = day_bounds(timezone, date)
  assert end - start == hours * HOUR
  assert local_date(timezone, start) == date
  assert local_date(timezone, start - 1) < date
  assert local_date(timezone, end - 1) == date


def test_an_unknown_time_zone_is_refused_naming_it():
  for name in ('Europe/Berlín', 'CEST', 'Europe', '../etc/passwd', ''):
    with pytest.raises(ValueError, match='unknown time zone'):
      ComputeDailyMetrics(timezone=name, allowed_lateness=Duration(0))
  with pytest.raises(ValueError, match="'Mars/Olympus'"):
    ComputeDailyMetrics(timezone='Mars/Olympus', allowed_lateness=Duration(0))


def test_the_state_format_is_versioned():
  from tests.test_rolling_metrics import _Bag, _Cell, stored
  from transforms.change_log import InstanceCopies
  from transforms.daily_metrics import DAY_LOG, _DayState
  from transforms.span_counts import SpanShard, window_counts
  from transforms.state_coders import StateFormatError

  shard = SpanShard()
  shard.armed_at = DAY_START + 25 * HOUR
  day = _DayState()
  day.clear_at = DAY_START + 25 * HOUR
  window = window_counts(pane(5, 0, 'EARLY', 3, 2))
  day.windows[window.window_start] = window
  shard.keys[('Q-1', 'voice')] = {'2026-11-02': day}
  shard.changed.add(('Q-1', 'voice'))
  head, keys = _Cell(DAY_LOG.head_coder), _Bag(DAY_LOG.keys_coder)
  DAY_LOG.write(InstanceCopies(), 0, shard, head, keys)
  assert head.encoded[0] == 1 and keys.encoded[0][0] == 1
  decoded = stored(DAY_LOG, head, keys)
  assert decoded.armed_at == shard.armed_at
  [(key, days)] = decoded.keys.items()
  assert key == ('Q-1', 'voice') and list(days) == ['2026-11-02']
  assert (days['2026-11-02'].clear_at, days['2026-11-02'].windows) == (
    day.clear_at,
    {window.window_start: window},
  )
  with pytest.raises(StateFormatError, match='daily metrics head: .* does not decode'):
    DAY_LOG.head_coder.decode(b'\x01[1]')


@pytest.mark.parametrize('shards', [1, 2, 128])
def test_keys_sharing_a_shard_keep_their_own_days(runner_clock, shards):
  """Whatever the keys a shard holds (shards=1: all), each day is cleared
  at its own time: at day end + 1 min Q-1's 2 November goes, Q-2's
  3 November stays, so a pane of each afterwards starts Q-1's day over
  and adds to Q-2's."""
  next_day = pane(16 * 60 + 5, 0, 'ON_TIME', 4, queue='Q-2')  # 00:05Z on the 3rd
  stream = (
    TestStream()
    # One batch: three days of two keys, maybe in one shard.
    .add_elements(
      [at(pane(0, 0, 'ON_TIME', 10)), at(pane(0, 0, 'ON_TIME', 6, queue='Q-2')), at(next_day)]
    )
    .advance_watermark_to(wm(16 * 60 + 1))  # day end + 1 min
    .add_elements(
      [
        TimestampedValue(pane(0, 1, 'LATE', 11), wm(1)),
        TimestampedValue(pane(16 * 60 + 5, 1, 'LATE', 5, queue='Q-2'), wm(16 * 60 + 10)),
      ]
    )
    .advance_watermark_to_infinity()
  )
  rows, counters = run(stream, shards=shards)
  assert sorted((r.queue_id, short(r)) for r in rows) == [
    ('Q-1', ('2026-11-02', 5, 10, 0, 0.0, 1, 1)),
    ('Q-1', ('2026-11-02', 5, 11, 0, 0.0, 1, 2)),  # started over
    ('Q-2', ('2026-11-02', 5, 6, 0, 0.0, 1, 1)),
    ('Q-2', ('2026-11-03', 16 * 60 + 10, 4, 0, 0.0, 1, 1)),
    ('Q-2', ('2026-11-03', 16 * 60 + 10, 5, 0, 0.0, 1, 2)),
  ]
  assert counters['days_closed'] == 4
  assert counters['windows_held'] == 0


def test_one_timer_per_shard_at_its_earliest_clearing_and_keys_left_empty_go():
  from tests.test_rolling_metrics import _Bag, _Cell, _Timer, stored
  from transforms.daily_metrics import DAY_LOG, _DailyMetricsFn

  fn = _DailyMetricsFn('UTC', 60_000, 0, NAMESPACE, lambda: Timestamp(1234))
  head, keys = _Cell(DAY_LOG.head_coder), _Bag(DAY_LOG.keys_coder)
  cells = {'head_state': head, 'keys_state': keys}
  timer = _Timer()
  day_end = DAY_START + 24 * HOUR
  next_day = pane(16 * 60, 0, 'ON_TIME', 1, queue='Q-2')  # 00:00Z on the 3rd
  list(fn.process((0, [next_day, pane(0, 0, 'ON_TIME', 1)]), **cells, clear=timer))
  assert timer.armed == [(day_end + MIN, '')]
  list(fn.process((0, [pane(5, 0, 'ON_TIME', 1, queue='Q-2')]), **cells, clear=timer))
  assert len(timer.armed) == 1  # the same earliest clearing: armed as it was
  fn.on_clear(fired=Timestamp(micros=(day_end + MIN) * 1000), shard_id=0, **cells, clear=timer)
  shard = stored(DAY_LOG, head, keys)
  # Q-1 had nothing left: gone from the shard's map; Q-2 keeps the 3rd.
  assert {k: list(days) for k, days in shard.keys.items()} == {('Q-2', 'voice'): ['2026-11-03']}
  assert timer.armed[-1] == (day_end + 24 * HOUR + MIN, '')
  fired = Timestamp(micros=(day_end + 24 * HOUR + MIN) * 1000)
  fn.on_clear(fired=fired, shard_id=0, **cells, clear=timer)
  assert head.encoded is None and keys.encoded == [] and len(timer.armed) == 2
