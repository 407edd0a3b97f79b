"""AlertFigures (transforms/alert_figures.py): each table's rows as the
figures rules test, only those wanted; dead letters counted per window of
their received_at, on the local runner."""

from typing import List

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration

from tests.conftest import BASE_S, streaming_options
from tests.support.beam_metrics import committed_counters
from tests.support.runner_clock import COLLECTED, collect, runner_clock  # noqa: F401 (fixture)
from transforms.alert_figures import (
  AlertFigures,
  abandon_figures,
  agent_status_figures,
  daily_figures,
  queue_status_figures,
  rolling_figures,
)
from transforms.records import (
  AbandonMetrics,
  AgentStatus,
  AlertFigure,
  DailyMetrics,
  DeadLetter,
  QueueStatus,
  RollingMetrics,
)

T0 = BASE_S * 1000
MIN = 60_000
NAMESPACE = 'alert_figures_test'


def pane(pane_index: int = 0, **fields) -> AbandonMetrics:
  row = AbandonMetrics(
    queue_id='Q-1',
    window_start=T0,
    window_end=T0 + 5 * MIN,
    total_calls=40,
    abandoned_calls=5,
    short_abandoned_calls=1,
    answered_within_sl=28,
    total_wait_seconds=900.0,
    abandon_rate=0.125,
    service_level=0.7,
    pane_index=pane_index,
    pane_timing='ON_TIME',
    answered_calls=34,
    answered_wait_unknown_calls=4,
    answered_wait_seconds=600.0,
    channel='chat',
    queue_name='Sales',
  )
  return row._replace(**fields)


def counts(**fields) -> dict:
  """The count columns RollingMetrics and DailyMetrics share."""
  base = dict(
    queue_id='Q-2',
    channel='voice',
    total_calls=120,
    abandoned_calls=12,
    short_abandoned_calls=2,
    answered_calls=100,
    flow_out_calls=8,
    answered_within_sl=90,
    abandoned_within_sl=3,
    wait_unknown_calls=0,
    answered_wait_unknown_calls=0,
    total_wait_seconds=3000.0,
    answered_wait_seconds=2500.0,
    abandon_rate=0.1,
    service_level=0.75,
    asa_seconds=25.0,
    abandon_rate_definition='abandoned_over_offered',
    service_level_definition='answered_within_over_offered',
    windows=6,
    panes_counted=7,
    queue_name='Support',
  )
  base.update(fields)
  return base


def rolling(**fields) -> RollingMetrics:
  return RollingMetrics(span='30m', span_start=T0, span_end=T0 + 30 * MIN, **counts(**fields))


def daily(**fields) -> DailyMetrics:
  return DailyMetrics(
    local_date='2026-11-02',
    timezone='Europe/Berlin',
    day_start=T0 - 60 * MIN,
    day_end=T0 + 23 * 60 * MIN,
    as_of=T0 + 45 * MIN,
    **counts(**fields),
  )


def queue_status() -> QueueStatus:
  return QueueStatus('Q-1', 'voice', 3, T0, 95.0, T0 + 95_000, T0 + 96_000, 'Sales', 7001)


def agent_status() -> AgentStatus:
  return AgentStatus('Q-1', 'voice', 10, 2, 5, 1, 2, '{}', T0 + 50_000, T0 + 51_000, 8002, 'Sales')


def values(windowed) -> List[AlertFigure]:
  """The figures of a row function, checking each is stamped at its end."""
  figures = []
  for w in windowed:
    assert w.timestamp.micros == w.value.span_end * 1000
    figures.append(w.value)
  return figures


def test_an_abandon_metrics_pane_gives_window_figures():
  end = T0 + 5 * MIN
  assert values(abandon_figures(pane(pane_index=2))) == [
    AlertFigure('abandon_rate', 'Q-1', 'chat', 'window', end, 0.125, 40, 2, 'Sales'),
    AlertFigure('service_level', 'Q-1', 'chat', 'window', end, 0.7, 40, 2, 'Sales'),
    # 600 s over the 30 answered calls whose wait is known.
    AlertFigure('asa_seconds', 'Q-1', 'chat', 'window', end, 20.0, 40, 2, 'Sales'),
    AlertFigure('offered', 'Q-1', 'chat', 'window', end, 40.0, 40, 2, 'Sales'),
  ]
  unknown_waits = pane(answered_calls=3, answered_wait_unknown_calls=3)
  assert values(abandon_figures(unknown_waits, {('asa_seconds', 'window')}))[0].value == 0.0


def test_rolling_and_daily_rows_give_their_span_figures():
  got = values(rolling_figures(rolling(), {('abandon_rate', '30m'), ('abandon_rate', '15m')}))
  assert got == [
    AlertFigure('abandon_rate', 'Q-2', 'voice', '30m', T0 + 30 * MIN, 0.1, 120, 7, 'Support')
  ]
  got = values(daily_figures(daily(), {('service_level', 'today'), ('asa_seconds', 'today')}))
  assert got == [
    AlertFigure('service_level', 'Q-2', 'voice', 'today', T0 + 45 * MIN, 0.75, 120, 7, 'Support'),
    AlertFigure('asa_seconds', 'Q-2', 'voice', 'today', T0 + 45 * MIN, 25.0, 120, 7, 'Support'),
  ]
  assert values(daily_figures(daily(), {('service_level', '30m')})) == []


def test_live_rows_give_now_figures():
  assert values(queue_status_figures(queue_status())) == [
    AlertFigure('waiting', 'Q-1', 'voice', 'now', T0 + 95_000, 3.0, 3, 7001, 'Sales'),
    AlertFigure('longest_wait_seconds', 'Q-1', 'voice', 'now', T0 + 95_000, 95.0, 3, 7001, 'Sales'),
  ]
  assert values(agent_status_figures(agent_status())) == [
    AlertFigure('available_agents', 'Q-1', 'voice', 'now', T0 + 50_000, 2.0, 10, 8002, 'Sales'),
  ]


def dead_letter(received_s: float) -> TimestampedValue:
  at = T0 + int(received_s * 1000)
  return TimestampedValue(DeadLetter('calls', 'f:1', 'bad_json', '', '{', 1, at), at / 1000)


def run(stream, wanted=None):
  """The figures AlertFigures makes of a TestStream of mixed table rows,
  each table its own PCollection."""
  p = beam.Pipeline(options=streaming_options())
  rows = p | stream
  tables = {
    name: rows | f'Only{name}' >> beam.Filter(lambda r, t=kind: isinstance(r, t))
    for name, kind in (
      ('abandon_metrics', AbandonMetrics),
      ('rolling_metrics', RollingMetrics),
      ('daily_metrics', DailyMetrics),
      ('queue_status', QueueStatus),
      ('agent_status', AgentStatus),
      ('dead_letters', DeadLetter),
    )
  }
  figures = tables | AlertFigures(
    wanted=wanted, dead_letter_window=Duration(seconds=60), metrics_namespace=NAMESPACE
  )
  _ = figures | beam.FlatMap(collect, 'figures')
  result = p.run()
  result.wait_until_finish()
  return [e for _, e in COLLECTED], committed_counters(result, NAMESPACE)


def test_the_composite_makes_only_wanted_figures_of_every_table(runner_clock):
  stream = (
    TestStream()
    .add_elements(
      [
        TimestampedValue(r, T0 / 1000)
        for r in (pane(), rolling(), daily(), queue_status(), agent_status())
      ]
    )
    .advance_watermark_to_infinity()
  )
  wanted = {('abandon_rate', 'window'), ('offered', '30m'), ('waiting', 'now')}
  figures, _ = run(stream, wanted)
  assert sorted((f.metric, f.span, f.queue_id, f.value) for f in figures) == [
    ('abandon_rate', 'window', 'Q-1', 0.125),
    ('offered', '30m', 'Q-2', 120.0),
    ('waiting', 'now', 'Q-1', 3.0),
  ]


def test_dead_letters_are_counted_per_window_of_received_at(runner_clock):
  stream = (
    TestStream()
    .add_elements([dead_letter(1), dead_letter(2)])
    .add_elements([dead_letter(59.9)])
    .add_elements([dead_letter(61), dead_letter(130)])
    # Window [0, 60) is two windows behind [120, 180): no longer counted.
    .add_elements([dead_letter(3)])
    .add_elements([dead_letter(70)])
    .advance_watermark_to_infinity()
  )
  figures, counters = run(stream, {('dead_letters', 'window')})
  by_window = {}
  for f in figures:
    assert (f.metric, f.queue_id, f.channel, f.span) == ('dead_letters', '*', '*', 'window')
    assert f.value == f.volume == f.revision
    by_window.setdefault((f.span_end - T0) // 1000, []).append(f.revision)
  # Each window restated with its count so far, in order.
  assert {w: sorted(r)[-1] for w, r in by_window.items()} == {60: 3, 120: 2, 180: 1}
  assert all(r == sorted(r) for r in by_window.values())
  assert counters.get('dead_letters_not_counted') == 1
