"""The rolling and daily figures (transforms/rolling_metrics.py,
transforms/daily_metrics.py) against their independent reference
(testing/reference/spans.py).

First the reference on hand-written cases; then both steps in one job on
the local runner, fed TestStream polls of generated panes (as AbandonRate
emits them: EARLY panes while a window is open, ON_TIME at its end, LATE
ones within the lateness; some overtaken in transit, some re-delivered;
two queues with their own definitions) over local days with a DST change
in Berlin, New York and Lord Howe (a 30-minute change): every row the job
wrote must be one the reference wrote, the latest row of every key must
be the reference's latest, and the ignored panes its counts.
"""

import datetime
import random
from typing import Any, Dict, List, Sequence, Tuple

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from testing.reference.spans import DailyReference, RollingReference, first_instant, local_day
from tests.conftest import streaming_options
from tests.support.beam_metrics import committed_counters
from tests.support.runner_clock import COLLECTED, collect, runner_clock  # noqa: F401 (fixture)
from transforms.records import AbandonMetrics

MIN = 60_000
HOUR = 60 * MIN


def utc_ms(month: int, day: int, hour: int = 0) -> int:
  moment = datetime.datetime(2026, month, day, hour, tzinfo=datetime.timezone.utc)
  return int(moment.timestamp() * 1000)


def metrics(
  start: int,
  size: int,
  index: int,
  timing: str,
  counts: Dict[str, Any],
  queue: str = 'Q-1',
  channel: str = 'voice',
  definitions: Tuple[str, str] = ('abandoned_over_offered', 'answered_within_over_offered'),
  queue_name: str = '',
) -> AbandonMetrics:
  return AbandonMetrics(
    queue_id=queue,
    window_start=start,
    window_end=start + size,
    abandon_rate=0.0,
    service_level=0.0,
    pane_index=index,
    pane_timing=timing,
    abandon_rate_definition=definitions[0],
    service_level_definition=definitions[1],
    channel=channel,
    queue_name=queue_name or f'{queue} name',
    **counts,
  )


ZERO = dict(
  total_calls=0,
  abandoned_calls=0,
  short_abandoned_calls=0,
  answered_calls=0,
  flow_out_calls=0,
  answered_within_sl=0,
  abandoned_within_sl=0,
  wait_unknown_calls=0,
  answered_wait_unknown_calls=0,
  total_wait_seconds=0.0,
  answered_wait_seconds=0.0,
)


def calls(offered: int, abandoned: int = 0) -> Dict[str, Any]:
  return {**ZERO, 'total_calls': offered, 'abandoned_calls': abandoned}


# ---------------------------------------------------------------------------
# (a) The reference on hand-written cases
# ---------------------------------------------------------------------------


def test_the_reference_sums_the_windows_starting_in_each_span():
  t, size = utc_ms(11, 2, 8), 5 * MIN
  ref = RollingReference(('15m',))
  ref.apply(metrics(t, size, 0, 'EARLY', calls(99)))
  assert ref.emitted == [] and ref.early_ignored == 1
  for k, n in enumerate((1, 2, 4, 8)):
    ref.apply(metrics(t + k * size, size, 0, 'ON_TIME', calls(n, 1)))
  assert [(r.span_end - t, r.total_calls, r.windows) for r in ref.emitted] == [
    (5 * MIN, 1, 1),
    (10 * MIN, 3, 2),
    (15 * MIN, 7, 3),
    (20 * MIN, 14, 3),
  ]
  restated = ref.apply(metrics(t + size, size, 1, 'LATE', calls(3, 3)))
  assert [
    (r.span_end - t, r.total_calls, r.abandoned_calls, r.panes_counted) for r in restated
  ] == [
    (10 * MIN, 4, 4, 3),
    (15 * MIN, 8, 5, 4),
    (20 * MIN, 15, 5, 4),
  ]
  assert restated[-1].abandon_rate == 0.3333
  assert ref.apply(metrics(t + size, size, 0, 'ON_TIME', calls(2, 1))) == []
  assert ref.stale == 1


def test_the_reference_day_counts_early_panes_and_recomputes_rates():
  ref = DailyReference('Europe/Berlin')
  t, size = utc_ms(3, 29, 10), 15 * MIN
  row = ref.apply(metrics(t, size, 0, 'EARLY', {**calls(10, 4), 'short_abandoned_calls': 2}))
  assert (row.local_date, row.total_calls, row.abandon_rate, row.as_of) == (
    '2026-03-29',
    10,
    0.4,
    t + size,
  )
  short_excluded = ('exclude_short_abandons', 'answered_within_over_offered')
  row = ref.apply(metrics(t + size, size, 0, 'ON_TIME', calls(6), definitions=short_excluded))
  # (4 - 2) / (16 - 2) by the newest window's definition.
  assert row.abandon_rate == 0.1429 and row.abandon_rate_definition == 'exclude_short_abandons'
  assert row.day_end - row.day_start == 23 * HOUR


@pytest.mark.parametrize(
  'zone, date, hours',
  [
    ('Europe/Berlin', '2026-03-29', 23),
    ('Europe/Berlin', '2026-10-25', 25),
    ('America/New_York', '2026-03-08', 23),
    ('America/New_York', '2026-11-01', 25),
    ('Australia/Lord_Howe', '2026-10-04', 23.5),
    ('Australia/Lord_Howe', '2026-04-05', 24.5),
    ('Asia/Kolkata', '2026-03-29', 24),
  ],
)
def test_the_reference_days_and_the_jobs_agree(zone, date, hours):
  from transforms.daily_metrics import day_bounds

  ref = DailyReference(zone)
  start, end = ref.bounds(date)
  assert end - start == hours * HOUR
  assert (start, end) == day_bounds(zone, date)
  assert local_day(ref.zone, start).isoformat() == date
  assert first_instant(ref.zone, local_day(ref.zone, start - 1)) < start


# ---------------------------------------------------------------------------
# (b) The job against the reference
# ---------------------------------------------------------------------------

KEYS = (
  ('Q-1', 'voice', ('abandoned_over_offered', 'answered_within_over_offered')),
  ('Q-2', 'chat', ('exclude_short_abandons', 'abandons_ignored')),
)
# From halfway on, Q-1 is renamed and counted by other definitions (a
# restart with new settings): spans across the change take the newest.
RESTARTED = ('exclude_short_abandons', 'abandons_positive')


def _grow(rng: random.Random, acc: Dict[str, Any]) -> Dict[str, Any]:
  """`acc` with a few more calls, each answered, abandoned or flowed out,
  its wait known or not."""
  acc = dict(acc)
  for _ in range(rng.randint(0, 6)):
    acc['total_calls'] += 1
    wait = None if rng.random() < 0.1 else rng.randint(0, 900) / 10
    outcome = rng.choices(('answered', 'abandoned', 'flow_out'), (6, 3, 1))[0]
    if wait is None:
      acc['wait_unknown_calls'] += 1
    else:
      acc['total_wait_seconds'] += wait
    if outcome == 'answered':
      acc['answered_calls'] += 1
      if wait is None:
        acc['answered_wait_unknown_calls'] += 1
      else:
        acc['answered_wait_seconds'] += wait
        acc['answered_within_sl'] += wait <= 20
    elif outcome == 'abandoned':
      acc['abandoned_calls'] += 1
      if wait is not None:
        acc['short_abandoned_calls'] += wait < 5
        acc['abandoned_within_sl'] += wait <= 20
    else:
      acc['flow_out_calls'] += 1
  return acc


def generate_panes(
  seed: int, start_ms: int, hours: int, window_min: int, lateness_min: int
) -> List[Tuple[int, AbandonMetrics]]:
  """(emitted at, pane) in arrival order: per key and window (a few
  without calls, hence without panes) 0-2 EARLY panes while it is open,
  the ON_TIME pane at its end, 0-2 LATE ones within the lateness, counts
  accumulating; then some panes overtaken by the next one and some
  re-delivered up to 6 panes later."""
  rng = random.Random(seed)
  size = window_min * MIN
  emitted: List[Tuple[int, int, AbandonMetrics]] = []
  for queue, channel, definitions in KEYS:
    for start in range(start_ms, start_ms + hours * HOUR, size):
      if rng.random() < 0.15:
        continue
      end = start + size
      times = [('EARLY', start + rng.randrange(size)) for _ in range(rng.choice((0, 0, 1, 2)))]
      times = sorted(times, key=lambda x: x[1]) + [('ON_TIME', end)]
      late = sorted(
        end + rng.randrange(1, lateness_min * MIN) for _ in range(rng.choice((0, 0, 1, 2)))
      )
      times += [('LATE', at) for at in sorted(late)]
      name, defined = f'{queue} name', definitions
      if queue == 'Q-1' and start >= start_ms + hours * HOUR // 2:
        name, defined = 'Q-1 renamed', RESTARTED
      acc = dict(ZERO)
      for index, (timing, at) in enumerate(times):
        acc = _grow(rng, acc)
        pane = metrics(start, size, index, timing, acc, queue, channel, defined, name)
        emitted.append((at, len(emitted), pane))
  arrival = [(at, pane) for at, _, pane in sorted(emitted, key=lambda e: e[:2])]
  for i in range(len(arrival) - 1):
    if rng.random() < 0.08:
      arrival[i], arrival[i + 1] = arrival[i + 1], arrival[i]
  for i in reversed(range(len(arrival))):
    if rng.random() < 0.04:
      arrival.insert(min(len(arrival), i + rng.randint(1, 6)), arrival[i])
  return arrival


def run_job(
  arrival: Sequence[Tuple[int, AbandonMetrics]],
  rng: random.Random,
  timezone: str,
  lateness_min: int,
):
  """Both steps on one TestStream of `arrival` in polls of 1-12 panes; after
  each poll the watermark moves to the earliest emission time still to
  come, as AbandonRate's output watermark would be. Returns the result."""
  from transforms.daily_metrics import ComputeDailyMetrics
  from transforms.rolling_metrics import ComputeRollingMetrics

  stream = TestStream()
  watermark = None
  i = 0
  while i < len(arrival):
    n = rng.randint(1, 12)
    poll = arrival[i : i + n]
    i += n
    stream.add_elements([TimestampedValue(p, at / 1000) for at, p in poll])
    if i < len(arrival):
      to_come = min(at for at, _ in arrival[i:])
      if watermark is None or to_come > watermark:
        watermark = to_come
        stream.advance_watermark_to(Timestamp(micros=watermark * 1000))
  stream.advance_watermark_to_infinity()

  pipeline = beam.Pipeline(options=streaming_options())
  panes = pipeline | stream
  lateness = Duration(seconds=lateness_min * 60)
  rolling = panes | ComputeRollingMetrics(
    allowed_lateness=lateness, metrics_namespace='rolling_reference_test'
  )
  daily = panes | ComputeDailyMetrics(
    timezone=timezone, allowed_lateness=lateness, metrics_namespace='daily_reference_test'
  )
  for name, rows in (
    ('rolling', rolling['rolling_metrics']),
    ('daily', daily['daily_metrics']),
    ('dead', rolling['dead_letters']),
    ('dead', daily['dead_letters']),
  ):
    _ = rows | f'Collect {name} {id(rows)}' >> beam.FlatMap(collect, name)
  result = pipeline.run()
  result.wait_until_finish()
  return result


def check_rows(rows: List[Any], reference_rows: Dict[Any, Any], reference_emitted, key_of) -> None:
  """Every job row is one the reference wrote, each key's latest is the
  reference's latest, and panes_counted grows with each row of a key."""
  emitted = set(reference_emitted)
  latest: Dict[Any, Any] = {}
  for row in rows:
    assert row in emitted, row
    key = key_of(row)
    if key in latest:
      assert row.panes_counted > latest[key].panes_counted, row
    latest[key] = row
  assert latest == reference_rows


SCENARIOS = [
  # (seed, time zone, first window (UTC), hours, window minutes)
  (1, 'Europe/Berlin', utc_ms(3, 28, 18), 32, 15),
  (2, 'Europe/Berlin', utc_ms(10, 24, 18), 32, 15),
  (3, 'America/New_York', utc_ms(3, 7, 23), 30, 15),
  (4, 'America/New_York', utc_ms(10, 31, 22), 30, 15),
  (5, 'Australia/Lord_Howe', utc_ms(10, 3, 10), 20, 5),
]


@pytest.mark.parametrize('seed, zone, start_ms, hours, window_min', SCENARIOS)
def test_the_job_agrees_with_the_reference(runner_clock, seed, zone, start_ms, hours, window_min):
  lateness_min = 20
  arrival = generate_panes(seed, start_ms, hours, window_min, lateness_min)
  result = run_job(arrival, random.Random(seed), zone, lateness_min)
  rolling_ref, daily_ref = RollingReference(), DailyReference(zone)
  for _, pane in arrival:
    rolling_ref.apply(pane)
    daily_ref.apply(pane)
  assert rolling_ref.stale > 0 and daily_ref.stale > 0 and rolling_ref.early_ignored > 0
  days = {key[2] for key in daily_ref.rows}
  assert len(days) >= 2  # the change day and its neighbour
  assert any(r.day_end - r.day_start != 24 * HOUR for r in daily_ref.rows.values())

  assert [r for o, r in COLLECTED if o == 'dead'] == []
  check_rows(
    [r for o, r in COLLECTED if o == 'rolling'],
    rolling_ref.rows,
    rolling_ref.emitted,
    lambda r: (r.queue_id, r.channel, r.span, r.span_end),
  )
  check_rows(
    [r for o, r in COLLECTED if o == 'daily'],
    daily_ref.rows,
    daily_ref.emitted,
    lambda r: (r.queue_id, r.channel, r.local_date),
  )
  rolling_counters = committed_counters(result, 'rolling_reference_test')
  daily_counters = committed_counters(result, 'daily_reference_test')
  assert rolling_counters['early_panes_ignored'] == rolling_ref.early_ignored
  assert rolling_counters['stale_panes'] == rolling_ref.stale
  assert daily_counters['stale_panes'] == daily_ref.stale
  # Drained: every window dropped, every day closed.
  assert rolling_counters['windows_held'] == daily_counters['windows_held'] == 0
  assert rolling_counters.get('expired_panes', 0) == 0
  assert daily_counters['days_closed'] == len(daily_ref.rows)
