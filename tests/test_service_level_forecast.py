"""ForecastServiceLevel: the projection on its own (interval alignment,
rate, Erlang C share of the calls to come), then the composite on
TestStream: a figure for the current interval from the three inputs, a
lower one when agents drop, none (counted) without agents, and panes of
the next interval starting a new revision series.

The numbers rest on the worked example of tests/test_erlang_c.py: 100
calls per half hour, AHT 180 s, 20 s target, 14 agents answer 88.835 %
within target; with 9 agents (fewer than the 10 erlangs offered) none.
"""

import datetime
import zoneinfo
from typing import List

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration

from tests.conftest import BASE_S
from tests.support.beam_metrics import committed_counters
from transforms.erlang_c import service_level
from transforms.records import (
  SPAN_INTERVAL,
  VOICE,
  AbandonMetrics,
  AgentMetrics,
  AgentStatus,
  AlertFigure,
)
from transforms.service_level_forecast import (
  ABANDON_METRICS,
  AGENT_METRICS,
  AGENT_STATUS,
  METRIC,
  NO_AGENTS,
  NO_AHT,
  NO_CALLS,
  NO_RATE,
  ForecastServiceLevel,
  Projection,
  forecast_interval,
  interval_bounds,
)
from transforms.windowing import EARLY_PANE, ON_TIME_PANE

T0 = BASE_S * 1000  # 2026-11-02T08:00Z, 09:00 in Berlin
MIN = 60_000
WINDOW = 5 * MIN
INTERVAL = 30 * MIN
NAMESPACE = 'service_level_forecast_test'
SL_14_AGENTS = 0.8883500191794669  # tests/test_erlang_c.py


def zone(name: str) -> zoneinfo.ZoneInfo:
  return zoneinfo.ZoneInfo(name)


def utc_ms(*args) -> int:
  return int(datetime.datetime(*args, tzinfo=datetime.timezone.utc).timestamp() * 1000)


# ---------------------------------------------------------------------------
# The projection
# ---------------------------------------------------------------------------


def test_intervals_align_on_local_midnight():
  half_hour = 30 * MIN
  assert interval_bounds(T0 + 7 * MIN, half_hour, zone('Europe/Berlin')) == (T0, T0 + half_hour)
  # India is UTC+5:30: its hours start at half past in UTC.
  hour = 60 * MIN
  at = utc_ms(2026, 11, 2, 8, 10)
  assert interval_bounds(at, hour, zone('Asia/Kolkata')) == (
    utc_ms(2026, 11, 2, 7, 30),
    utc_ms(2026, 11, 2, 8, 30),
  )
  # The day Berlin leaves summer time (2026-10-25, 03:00 CEST -> 02:00
  # CET): the repeated hour's intervals are both whole half hours.
  first = utc_ms(2026, 10, 25, 0, 40)  # 02:40 CEST
  second = utc_ms(2026, 10, 25, 1, 40)  # 02:40 CET
  assert interval_bounds(first, half_hour, zone('Europe/Berlin')) == (
    utc_ms(2026, 10, 25, 0, 30),
    utc_ms(2026, 10, 25, 1, 0),
  )
  assert interval_bounds(second, half_hour, zone('Europe/Berlin')) == (
    utc_ms(2026, 10, 25, 1, 30),
    utc_ms(2026, 10, 25, 2, 0),
  )


# The three closed windows of the first 15 minutes: (offered, within).
HALF_WAY = {T0: (17, 15), T0 + WINDOW: (17, 15), T0 + 2 * WINDOW: (16, 15)}


def project(**overrides):
  """Halfway through [T0, T0 + 30 min): 50 calls in the three closed
  windows (45 within target), AHT 180 s, 14 agents."""
  arguments = dict(
    calls_through_ms=T0 + 15 * MIN,
    interval_start_ms=T0,
    interval_end_ms=T0 + INTERVAL,
    window_ms=WINDOW,
    since_ms=T0,
    calls=HALF_WAY,
    work={T0: (10, 1800.0)},
    agents=14,
    aht_fallback=None,
    lookback_ms=15 * MIN,
    service_level_seconds=20,
  )
  arguments.update(overrides)
  return forecast_interval(**arguments)


def test_the_calls_to_come_are_answered_in_time_with_the_erlang_c_probability():
  projection = project()
  assert isinstance(projection, Projection)
  # 50 calls in 900 s: 10 erlangs at 180 s; 50 more expected in 900 s.
  assert projection.arrivals_per_second == pytest.approx(50 / 900)
  assert projection.expected_calls == pytest.approx(50)
  assert projection.expected_service_level == pytest.approx(SL_14_AGENTS)
  assert projection.service_level == pytest.approx((45 + 50 * SL_14_AGENTS) / 100)
  assert projection.offered == pytest.approx(100)


def test_fewer_agents_than_erlangs_answer_none_of_the_calls_to_come_in_time():
  projection = project(agents=9)
  assert projection.expected_service_level == 0
  assert projection.service_level == pytest.approx(45 / 100)


def test_calls_seen_in_an_open_window_are_not_expected_again():
  # An EARLY pane of the open window [15, 20) already shows 6 calls: 44
  # more are expected, not 50.
  calls = {**HALF_WAY, T0 + 3 * WINDOW: (6, 6)}
  projection = project(calls=calls, calls_through_ms=T0 + 15 * MIN)
  assert projection.expected_calls == pytest.approx(44)
  assert projection.offered == pytest.approx(100)
  assert projection.service_level == pytest.approx((51 + 44 * SL_14_AGENTS) / 100)


def test_no_projection_without_its_inputs():
  assert project(work={}) == NO_AHT
  assert project(work={}, aht_fallback=180.0).aht_seconds == 180.0
  assert project(agents=None) == NO_AGENTS
  # Nothing closed since the key's first window: no rate to measure.
  assert project(since_ms=T0 + 15 * MIN) == NO_RATE
  assert project(calls={}) == NO_CALLS


def test_the_rate_is_measured_over_the_lookback_only():
  calls = {T0 - 10 * MIN: (200, 0), T0 + 10 * MIN: (30, 30)}
  projection = project(calls=calls, lookback_ms=10 * MIN)
  # The window of 10 minutes before the interval is outside the lookback.
  assert projection.arrivals_per_second == pytest.approx(30 / 600)


# ---------------------------------------------------------------------------
# The composite on TestStream
# ---------------------------------------------------------------------------


def calls_pane(window: int, total: int, within: int, timing: str = ON_TIME_PANE, index: int = 0):
  start = T0 + window * WINDOW
  return AbandonMetrics(
    queue_id='Q-1',
    window_start=start,
    window_end=start + WINDOW,
    total_calls=total,
    abandoned_calls=0,
    short_abandoned_calls=0,
    answered_within_sl=within,
    total_wait_seconds=0.0,
    abandon_rate=0.0,
    service_level=within / total,
    pane_index=index,
    pane_timing=timing,
    channel=VOICE,
  )


def work_pane(window: int, handled: int, talk: float):
  start = T0 + window * WINDOW
  return AgentMetrics(
    queue_id='Q-1',
    channel=VOICE,
    window_start=start,
    window_end=start + WINDOW,
    handled_contacts=handled,
    talk_seconds=talk,
    hold_seconds=0.0,
    after_contact_work_seconds=0.0,
    available_seconds=0.0,
    not_ready_seconds=0.0,
    aht_seconds=talk / handled,
    occupancy=1.0,
    pane_index=0,
    pane_timing=ON_TIME_PANE,
  )


def agents(available: int, on_contact: int, acw: int, not_ready: int, at_min: float, revision: int):
  as_of = T0 + int(at_min * MIN)
  return AgentStatus(
    queue_id='Q-1',
    channel=VOICE,
    logged_in=available + on_contact + acw + not_ready,
    available=available,
    on_contact=on_contact,
    after_contact_work=acw,
    not_ready=not_ready,
    not_ready_reasons='{}',
    as_of=as_of,
    updated_at=as_of,
    revision=revision,
  )


def timed_at(record, at_ms: int) -> TimestampedValue:
  return TimestampedValue(record, at_ms / 1000)


# What the job wrote, in order: the local runner runs every step in this
# process.
_FIGURES: List[AlertFigure] = []


def _keep(figure: AlertFigure) -> None:
  _FIGURES.append(figure)


def run(stream: TestStream, options) -> tuple:
  """The figures in the order written, and the step's counters."""
  _FIGURES.clear()
  p = beam.Pipeline(options=options)
  inputs = p | stream
  out = inputs | ForecastServiceLevel(
    interval=Duration(seconds=1800),
    timezone='Europe/Berlin',
    service_level_seconds=20,
    arrival_lookback=Duration(seconds=900),
    queue_names={'Q-1': 'Sales'},
    metrics_namespace=NAMESPACE,
  )
  _ = out | beam.Map(_keep)
  result = p.run()
  result.wait_until_finish()
  figures = list(_FIGURES)
  _FIGURES.clear()
  return figures, committed_counters(result, NAMESPACE)


def stream_of(*steps) -> TestStream:
  """A TestStream with the three tagged inputs; each step is (tag, record,
  event ms) or a watermark (an int, ms)."""
  stream = TestStream(output_tags={ABANDON_METRICS, AGENT_STATUS, AGENT_METRICS})
  for step in steps:
    if isinstance(step, int):
      stream = stream.advance_watermark_to(step / 1000, tag=None)
    else:
      tag, record, at_ms = step
      stream = stream.add_elements([timed_at(record, at_ms)], tag=tag)
  return stream.advance_watermark_to_infinity()


def test_a_figure_for_the_interval_then_a_lower_one_when_agents_drop(options):
  figures, counters = run(
    stream_of(
      (AGENT_METRICS, work_pane(0, 10, 1800.0), T0 + 5 * MIN),
      (ABANDON_METRICS, calls_pane(0, 17, 15), T0 + 5 * MIN),
      (ABANDON_METRICS, calls_pane(1, 17, 15), T0 + 10 * MIN),
      (ABANDON_METRICS, calls_pane(2, 16, 15), T0 + 15 * MIN),
      (AGENT_STATUS, agents(4, 8, 2, 3, 15, revision=1), T0 + 15 * MIN),
      T0 + 15 * MIN,
      # Five agents leave (not ready agents take no calls either).
      (AGENT_STATUS, agents(0, 8, 1, 8, 16, revision=2), T0 + 16 * MIN),
    ),
    options,
  )
  assert figures, counters
  assert all(
    (f.metric, f.queue_id, f.channel, f.span, f.span_end, f.queue_name)
    == (METRIC, 'Q-1', VOICE, SPAN_INTERVAL, T0 + INTERVAL, 'Sales')
    for f in figures
  )
  assert [f.revision for f in figures] == list(range(len(figures)))
  staffed, dropped = figures[-2], figures[-1]
  assert staffed.value == round((45 + 50 * SL_14_AGENTS) / 100, 4)
  assert staffed.volume == 100
  assert dropped.value == 0.45
  assert dropped.volume == 100
  # Until agents were known, nothing could be projected, and it was counted.
  assert counters.get(NO_AGENTS, 0) >= 1
  assert counters.get('figures') == len(figures)


def test_no_figure_without_agents_and_a_new_series_for_the_next_interval(options):
  figures, counters = run(
    stream_of(
      (AGENT_METRICS, work_pane(0, 10, 1800.0), T0 + 5 * MIN),
      (ABANDON_METRICS, calls_pane(0, 17, 15), T0 + 5 * MIN),
      (ABANDON_METRICS, calls_pane(1, 17, 15), T0 + 10 * MIN),
      T0 + 10 * MIN,
      (AGENT_STATUS, agents(14, 0, 0, 0, 11, revision=1), T0 + 11 * MIN),
      T0 + 11 * MIN,
      # The interval's last window closes: the clock is in the next one.
      (ABANDON_METRICS, calls_pane(5, 20, 20), T0 + 30 * MIN),
    ),
    options,
  )
  # One per update before the agents came (three, a bundle each here).
  assert counters.get(NO_AGENTS, 0) >= 1
  by_interval = {}
  for figure in figures:
    by_interval.setdefault(figure.span_end, []).append(figure.revision)
  assert by_interval == {T0 + INTERVAL: [0], T0 + 2 * INTERVAL: [0]}
  # The next interval: nothing of it seen, its 30 minutes all expected at
  # the rate of the last 15 minutes (20 calls, in [25, 30)).
  nxt = figures[-1]
  assert nxt.volume == 40


def test_an_early_pane_counts_its_calls_so_far(options):
  figures, _ = run(
    stream_of(
      (AGENT_METRICS, work_pane(0, 10, 1800.0), T0 + 5 * MIN),
      (ABANDON_METRICS, calls_pane(0, 17, 15), T0 + 5 * MIN),
      (ABANDON_METRICS, calls_pane(1, 17, 15), T0 + 10 * MIN),
      (ABANDON_METRICS, calls_pane(2, 16, 15), T0 + 15 * MIN),
      (AGENT_STATUS, agents(14, 0, 0, 0, 15, revision=1), T0 + 15 * MIN),
      T0 + 15 * MIN,
      (ABANDON_METRICS, calls_pane(3, 6, 6, timing=EARLY_PANE), T0 + 15 * MIN),
    ),
    options,
  )
  assert figures[-1].value == round((51 + 44 * SL_14_AGENTS) / 100, 4)
  assert figures[-1].volume == 100


def test_bad_settings_fail_when_the_graph_is_built():
  kwargs = dict(
    interval=Duration(seconds=1800),
    timezone='Europe/Berlin',
    service_level_seconds=20,
    arrival_lookback=Duration(seconds=900),
  )
  ForecastServiceLevel(**kwargs)
  with pytest.raises(ValueError, match='divide a day'):
    ForecastServiceLevel(**{**kwargs, 'interval': Duration(seconds=7 * 60)})
  with pytest.raises(ValueError, match='time zone'):
    ForecastServiceLevel(**{**kwargs, 'timezone': 'Mars/Olympus'})
  with pytest.raises(TypeError):
    ForecastServiceLevel(**{**kwargs, 'arrival_lookback': 900})


def test_agents_alone_project_nothing_and_count_it(options):
  figures, counters = run(
    stream_of((AGENT_STATUS, agents(14, 0, 0, 0, 3, revision=1), T0 + 3 * MIN)), options
  )
  assert figures == []
  # No window seen at all: no rate (nor AHT) to project with.
  assert counters.get(NO_RATE) == 1


def test_an_agent_row_ahead_of_the_call_panes_does_not_empty_the_window_not_yet_reported(options):
  # The agent row at 15:30 comes before the ON_TIME pane of [10, 15): the
  # projection runs on the calls known through 10 minutes (34 calls in 600
  # s, 68 more expected in the 20 minutes left), not on an empty [10, 15).
  figures, _ = run(
    stream_of(
      (AGENT_METRICS, work_pane(0, 10, 1800.0), T0 + 5 * MIN),
      (ABANDON_METRICS, calls_pane(0, 17, 15), T0 + 5 * MIN),
      (ABANDON_METRICS, calls_pane(1, 17, 15), T0 + 10 * MIN),
      T0 + 10 * MIN,
      (AGENT_STATUS, agents(14, 0, 0, 0, 15.5, revision=1), T0 + int(15.5 * MIN)),
      T0 + int(15.5 * MIN),
      (ABANDON_METRICS, calls_pane(2, 16, 15), T0 + 15 * MIN),
    ),
    options,
  )
  before, after = figures
  rate = 34 / 600
  sl = service_level(14, rate * 180, 20, 180)
  assert before.volume == 102
  assert before.value == round((30 + 68 * sl) / 102, 4)
  assert after.volume == 100
  assert after.value == round((45 + 50 * SL_14_AGENTS) / 100, 4)
