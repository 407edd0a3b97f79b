"""EvaluateAlertRules (transforms/alert_evaluation.py) on the local runner,
fed TestStream figures: hysteresis, `for`, minimum volume, business hours
in a non-UTC zone, reminders, resolves, restatements by late panes, scope,
and the same outputs whatever the batching."""

import json
import random
from typing import Dict, List, NamedTuple, Sequence

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration

from options.alert_config import AlertRule, AlertRulesConfig, ReceiverConfig
from testing.reference.alerts import AlertsReference, Rule
from testing.reference.alerts import Row as RefRow
from tests.conftest import BASE_S, streaming_options
from tests.support.beam_metrics import committed_counters
from tests.support.runner_clock import COLLECTED, collect, runner_clock  # noqa: F401 (fixture)
from transforms.alert_evaluation import (
  ALERT_STATE_CODER,
  EvaluateAlertRules,
  _AlertState,
  _EvaluateFn,
  notification_id,
)
from transforms.records import Alert, AlertFigure, AlertNotification

T0 = BASE_S * 1000  # Monday 2026-11-02 08:00 UTC
MIN = 60_000
NAMESPACE = 'alert_evaluation_test'


def rule(**fields) -> AlertRule:
  base = dict(
    name='abandon-30m',
    metric='abandon_rate',
    span='30m',
    condition='above',
    threshold=0.1,
    receivers=('slack',),
    repeat_interval=Duration(0),
  )
  base.update(fields)
  return AlertRule(**base)


def fig(
  at_min: float,
  value: float,
  revision: int = 0,
  volume: int = 100,
  queue: str = 'Q-1',
  channel: str = 'voice',
  metric: str = 'abandon_rate',
  span: str = '30m',
) -> AlertFigure:
  return AlertFigure(
    metric, queue, channel, span, T0 + int(at_min * MIN), value, volume, revision, 'Sales'
  )


def wfig(at_min: float, value: float, **fields) -> AlertFigure:
  """A figure of the window ending at `at_min`."""
  return fig(at_min, value, span='window', **fields)


class Outcome(NamedTuple):
  alerts: List[Alert]
  notifications: List[AlertNotification]
  dispatch: List[tuple]
  counters: Dict[str, int]

  def kinds(self) -> List[tuple]:
    """(minute of the figure, kind) of each notification, by figure end
    then as the key sent them."""
    in_order = [((n.figure_end - T0) / MIN, n.kind) for n in self.notifications]
    return sorted(in_order, key=lambda k: k[0])

  def states(self) -> List[tuple]:
    """(minute updated, state, last notification kind, delivery) of each
    alert row, in revision order."""
    return [
      ((a.updated_at - T0) / MIN, a.state, a.last_notification_kind, a.delivery_status)
      for a in self.alerts
    ]


def run(
  rules: Sequence[AlertRule],
  *batches: Sequence[AlertFigure],
  timezone: str = 'UTC',
  horizon: Duration = Duration(seconds=7200),
) -> Outcome:
  """The outputs of the rules on figures, each batch one TestStream
  bundle."""
  config = AlertRulesConfig(
    rules=tuple(rules),
    receivers=(ReceiverConfig(name='slack', kind='slack', url_env='SLACK_URL'),),
    timezone=timezone,
  )
  stream = TestStream()
  for batch in batches:
    stream = stream.add_elements([TimestampedValue(f, f.span_end / 1000) for f in batch])
  stream = stream.advance_watermark_to_infinity()
  COLLECTED.clear()
  p = beam.Pipeline(options=streaming_options())
  out = (
    p
    | stream
    | EvaluateAlertRules(config, restatement_horizon=horizon, metrics_namespace=NAMESPACE)
  )
  assert set(out) == {'alerts', 'alert_notifications', 'dispatch'}
  for name, pcoll in out.items():
    _ = pcoll | f'Keep{name}' >> beam.FlatMap(collect, name)
  result = p.run()
  result.wait_until_finish()
  got = {name: [e for o, e in COLLECTED if o == name] for name in out}
  alerts = sorted(got['alerts'], key=lambda a: (a.rule, a.queue_id, a.channel, a.revision))
  # Notifications in the order of their alert rows: each key's in order.
  dispatch = sorted(
    got['dispatch'], key=lambda d: (d[0].rule, d[0].queue_id, d[0].channel, d[0].revision)
  )
  notifications = [n for _, n in dispatch]
  assert sorted(notifications) == sorted(got['alert_notifications'])
  for row, notification in dispatch:
    assert row.last_notification_id == notification.notification_id
    assert row.last_notification_kind == notification.kind
    assert row.delivery_status == 'queued'
    assert row in alerts
  return Outcome(alerts, notifications, dispatch, committed_counters(result, NAMESPACE))


def one_per_bundle(*figures: AlertFigure) -> List[List[AlertFigure]]:
  return [[f] for f in figures]


def test_hysteresis_fires_above_the_threshold_and_resolves_at_the_clear_one(runner_clock):
  r = rule(clear_threshold=0.08)
  figures = [fig(0, 0.05), fig(5, 0.125), fig(10, 0.09), fig(15, 0.11), fig(20, 0.08)]
  figures += [fig(25, 0.09), fig(30, 0.11)]
  got = run([r], *one_per_bundle(*figures))
  assert got.kinds() == [(5, 'firing'), (20, 'resolved'), (30, 'firing')]
  assert got.states() == [
    (5, 'firing', 'firing', 'queued'),
    (20, 'resolved', 'resolved', 'queued'),
    (30, 'firing', 'firing', 'queued'),
  ]
  assert [a.revision for a in got.alerts] == [0, 2, 4]
  firing, resolved, _ = got.notifications
  assert firing.message == (
    '[warning] abandon-30m: queue Sales (voice) abandon rate over 30m is 12.5 % above 10 %'
  )
  assert resolved.message == (
    '[warning] abandon-30m resolved: queue Sales (voice) abandon rate over 30m is 8 %, '
    'at or below 8 %'
  )
  assert firing.notification_id == notification_id(
    'abandon-30m', 'Q-1', 'voice', 'firing', T0 + 5 * MIN, 0
  )
  assert json.loads(firing.receivers) == ['slack']
  assert (firing.value, firing.threshold, firing.previous_value) == (0.125, 0.1, None)
  assert got.alerts[1].resolved_at == T0 + 20 * MIN and got.alerts[0].resolved_at is None
  assert got.counters['figures_evaluated'] == 7
  assert got.counters['notifications_firing'] == 2
  assert got.counters['notifications_resolved'] == 1

  # The same figures in one bundle, shuffled: the same outputs, ids included.
  shuffled = list(figures)
  random.Random(7).shuffle(shuffled)
  again = run([r], shuffled)
  assert again.notifications == got.notifications
  assert again.alerts == got.alerts


def test_for_holds_pending_until_the_breach_lasted(runner_clock):
  r = rule(pending_for=Duration(seconds=600))
  got = run(
    [r],
    *one_per_bundle(
      fig(0, 0.2),
      fig(5, 0.2),
      fig(10, 0.2),  # pending at 0, fires at 10
      fig(15, 0.05),  # resolved
      fig(20, 0.2),
      fig(25, 0.05),  # pending, back to resolved silently
    ),
  )
  assert got.kinds() == [(10, 'firing'), (15, 'resolved')]
  assert [(s[0], s[1]) for s in got.states()] == [
    (0, 'pending'),
    (10, 'firing'),
    (15, 'resolved'),
    (20, 'pending'),
    (25, 'resolved'),
  ]
  assert [a.delivery_status for a in got.alerts] == ['', 'queued', 'queued', '', '']
  # A pending alert that never fired keeps the last resolve's time.
  assert got.alerts[-1].resolved_at == T0 + 15 * MIN
  assert got.alerts[1].since == T0 + 10 * MIN


def test_figures_below_the_minimum_volume_neither_fire_nor_resolve(runner_clock):
  r = rule(min_volume=20)
  got = run(
    [r],
    *one_per_bundle(
      fig(0, 0.5, volume=5),  # would fire
      fig(5, 0.2, volume=20),  # fires
      fig(10, 0.0, volume=19),  # would resolve
      fig(15, 0.2, volume=30),
      fig(20, 0.0, volume=30),  # resolves
    ),
  )
  assert got.kinds() == [(5, 'firing'), (20, 'resolved')]
  assert got.counters['figures_below_volume'] == 2
  assert got.counters['figures_evaluated'] == 3


def test_business_hours_are_in_the_config_zone_and_their_end_resolves(runner_clock):
  # Monday 09:00-17:00 in New York: 14:00-22:00 UTC on 2026-11-02 (EST).
  monday = (((9 * 60, 17 * 60),),) + ((),) * 6
  r = rule(business_hours=monday, span='window')
  hour = 60
  got = run(
    [r],
    *one_per_bundle(
      wfig(5 * hour + 55, 0.5),  # 08:55 local: closed
      wfig(6 * hour + 5, 0.5),  # 09:05: fires
      wfig(13 * hour + 55, 0.5),  # 16:55: still firing
      wfig(14 * hour + 5, 0.5),  # 17:05: hours ended, resolved
      wfig(14 * hour + 10, 0.5),  # closed: ignored
    ),
    timezone='America/New_York',
  )
  assert got.kinds() == [(6 * hour + 5, 'firing'), (14 * hour + 5, 'resolved')]
  firing, closed = got.notifications
  assert 'in the window ending 09:05' in firing.message
  assert closed.message.startswith('[warning] abandon-30m resolved: business hours ended')
  assert got.counters['figures_outside_hours'] == 3
  # A pending alert ends silently when hours end.
  pending = rule(business_hours=monday, span='window', pending_for=Duration(seconds=900))
  got = run(
    [pending],
    *one_per_bundle(wfig(13 * hour + 55, 0.5), wfig(14 * hour + 5, 0.5)),
    timezone='America/New_York',
  )
  assert got.notifications == []
  assert [(a.state, a.since - T0) for a in got.alerts] == [
    ('pending', (13 * hour + 55) * MIN),
    ('resolved', (14 * hour + 5) * MIN),
  ]
  # In UTC the first figure (13:55 UTC) is in the same hours and fires:
  # the zone, not UTC, decided.
  utc = run([r], *one_per_bundle(wfig(5 * hour + 55, 0.5), wfig(6 * hour + 5, 0.5)))
  assert utc.kinds() == [(5 * hour + 55, 'firing')]


def test_reminders_every_repeat_interval_of_event_time_while_firing(runner_clock):
  r = rule(repeat_interval=Duration(seconds=600))
  got = run([r], *one_per_bundle(*(fig(m, 0.2) for m in range(0, 25, 5)), fig(25, 0.01)))
  assert got.kinds() == [(0, 'firing'), (10, 'reminder'), (20, 'reminder'), (25, 'resolved')]
  reminder = got.notifications[1]
  assert reminder.message.startswith('[warning] abandon-30m still firing since 08:00: ')
  assert got.counters['notifications_reminder'] == 2
  assert [a.state for a in got.alerts] == ['firing', 'firing', 'firing', 'resolved']


def test_late_panes_restate_what_was_notified(runner_clock):
  r = rule(span='window')
  on_time = [wfig(5, 0.12), wfig(10, 0.12), wfig(15, 0.05), wfig(20, 0.05), wfig(25, 0.05)]
  late = [
    [wfig(5, 0.05, revision=1)],  # the firing at 5 no longer holds
    [wfig(5, 0.05, revision=1)],  # the same pane again: stale
    [wfig(20, 0.2, revision=1)],  # a missed breach at 20
    [wfig(10, 0.05, revision=1)],  # nothing was told about 10 (firing on)
    [wfig(15, 0.15, revision=1)],  # the resolve at 15 no longer holds
    [wfig(5, 0.2, revision=0)],  # an older revision: stale
    [wfig(25, 0.15, revision=1)],  # the clock's own span_end: fires
  ]
  got = run([r], *one_per_bundle(*on_time), *late)
  assert got.kinds() == [
    (5, 'firing'),
    (5, 'restated'),
    (15, 'resolved'),
    (15, 'restated'),
    (20, 'restated'),
    (25, 'firing'),
  ]
  restated = {(n.figure_end - T0) // MIN: n for n in got.notifications if n.kind == 'restated'}
  assert [(m, n.previous_value, n.value) for m, n in sorted(restated.items())] == [
    (5, 0.12, 0.05),
    (15, 0.05, 0.15),
    (20, 0.05, 0.2),
  ]
  assert restated[5].message == (
    '[warning] abandon-30m restated: queue Sales (voice) abandon rate in the window ending '
    '08:05 was 12 %, is now 5 % (above 10 % fires)'
  )
  assert restated[5].notification_id == notification_id(
    'abandon-30m', 'Q-1', 'voice', 'restated', T0 + 5 * MIN, 1
  )
  # Restatements change no state: the rows between say resolved.
  assert [s[1:3] for s in got.states()] == [
    ('firing', 'firing'),
    ('resolved', 'resolved'),
    ('resolved', 'restated'),
    ('resolved', 'restated'),
    ('resolved', 'restated'),
    ('firing', 'firing'),
  ]
  assert got.counters['figures_stale'] == 2
  assert got.counters['notifications_restated'] == 3


def test_a_later_pane_of_the_newest_window_voiding_a_firing_is_restated(runner_clock):
  # Clear at 8 %: 9 % neither breaches nor resolves, so the alert stays
  # firing, but what was sent about the window ending 08:05 no longer holds.
  r = rule(span='window', clear_threshold=0.08)
  got = run([r], [wfig(5, 0.2)], [wfig(5, 0.09, revision=1)], [wfig(5, 0.07, revision=2)])
  assert got.kinds() == [(5, 'firing'), (5, 'restated'), (5, 'resolved')]
  assert [a.state for a in got.alerts] == ['firing', 'firing', 'resolved']
  assert got.notifications[1].previous_value == 0.2


def test_each_queue_and_channel_in_scope_has_its_own_alert(runner_clock):
  r = rule(queues=('sales-*',), channels=('voice', 'chat'))
  got = run(
    [r, rule(name='all-queues', threshold=0.3)],
    [
      fig(0, 0.2, queue='sales-east'),
      fig(0, 0.2, queue='sales-west', channel='chat'),
      fig(0, 0.9, queue='support'),  # only all-queues judges it
      fig(0, 0.9, queue='sales-east', channel='email'),
      fig(0, 0.9, metric='service_level'),  # no rule on it
    ],
    [fig(5, 0.01, queue='sales-east')],
  )
  assert sorted((a.rule, a.queue_id, a.channel, a.state, a.revision) for a in got.alerts) == [
    ('abandon-30m', 'sales-east', 'voice', 'firing', 0),
    ('abandon-30m', 'sales-east', 'voice', 'resolved', 2),
    ('abandon-30m', 'sales-west', 'chat', 'firing', 0),
    ('all-queues', 'sales-east', 'email', 'firing', 0),
    ('all-queues', 'support', 'voice', 'firing', 0),
  ]


def test_below_rules_and_live_figures(runner_clock):
  r = rule(
    name='few-agents',
    metric='available_agents',
    span='now',
    condition='below',
    threshold=2,
    clear_threshold=3,
  )
  now = dict(metric='available_agents', span='now')
  got = run(
    [r],
    *one_per_bundle(
      fig(0, 1, revision=10, **now),
      fig(0.5, 2, revision=11, **now),
      fig(1, 3, revision=12, **now),
    ),
  )
  assert got.kinds() == [(0, 'firing'), (1, 'resolved')]
  assert got.notifications[0].message == (
    '[warning] few-agents: queue Sales (voice) available agents now is 1 below 2'
  )


def test_the_state_coder_round_trips_and_is_versioned():
  state = _AlertState()
  state.state, state.since, state.clock, state.rows = 'firing', T0, T0 + MIN, 3
  state.told = {T0: [1, 0.12, 'breach'], T0 + MIN: [0, 0.05, 'quiet']}
  encoded = ALERT_STATE_CODER.encode(state)
  assert encoded[0] == 1
  decoded = ALERT_STATE_CODER.decode(encoded)
  assert ALERT_STATE_CODER.encode(decoded) == encoded
  assert decoded.told == state.told and decoded.state == 'firing'


# ---------------------------------------------------------------------------
# Against the independent reference (testing/reference/alerts.py)
# ---------------------------------------------------------------------------


def reference_rule(r: AlertRule) -> Rule:
  return Rule(
    name=r.name,
    metric=r.metric,
    span=r.span,
    above=r.condition == 'above',
    threshold=r.threshold,
    clear=r.clear_threshold,
    queues=r.queues,
    channels=r.channels,
    for_ms=r.pending_for.micros // 1000,
    min_volume=r.min_volume,
    hours=r.business_hours,
    repeat_ms=r.repeat_interval.micros // 1000,
  )


def random_rules(rng: random.Random) -> List[AlertRule]:
  rules = []
  for i in range(rng.randint(1, 3)):
    above = rng.random() < 0.6
    rules.append(
      rule(
        name=f'r{i}',
        span='window',
        condition='above' if above else 'below',
        threshold=0.1,
        clear_threshold=rng.choice([0.1, 0.08 if above else 0.12]),
        queues=rng.choice([(), ('Q-1',), ('Q-*',)]),
        pending_for=Duration(seconds=rng.choice([0, 0, 300, 600])),
        min_volume=rng.choice([0, 0, 20]),
        # Berlin 09:00 is the stream's start; some rules close at 10:00.
        business_hours=rng.choice([None, (((9 * 60, 10 * 60),),) + ((),) * 6]),
        repeat_interval=Duration(seconds=rng.choice([0, 600, 900])),
      )
    )
  return rules


def random_batches(rng: random.Random) -> List[List[AlertFigure]]:
  """Window figures of two queues every 5 minutes for 2.5 hours, with late
  revisions of earlier windows (some past the horizon), duplicates and
  stale revisions, in bundles of one to three."""
  values = [0.05, 0.08, 0.1, 0.12, 0.2]
  revisions: Dict[tuple, int] = {}
  stream: List[AlertFigure] = []
  for step in range(1, 31):
    for queue in ('Q-1', 'X-2'):
      if rng.random() < 0.9:
        revisions[(queue, step)] = 0
        stream.append(
          wfig(5 * step, rng.choice(values), volume=rng.choice([5, 50, 50]), queue=queue)
        )
      if rng.random() < 0.35:
        # A later pane of the newest window, or a late one of an older.
        old = step if rng.random() < 0.3 else rng.randint(max(1, step - 10), step)
        if (queue, old) in revisions:
          revision = revisions[(queue, old)] = revisions[(queue, old)] + rng.choice([0, 1, 1])
          stream.append(
            wfig(5 * old, rng.choice(values), revision=revision, volume=50, queue=queue)
          )
  batches = []
  while stream:
    size = rng.randint(1, 3)
    batches.append(stream[:size])
    stream = stream[size:]
  return batches


def test_the_job_makes_the_references_alerts_on_random_streams(runner_clock):
  for seed in range(12):
    rng = random.Random(seed)
    rules = random_rules(rng)
    batches = random_batches(rng)
    reference = AlertsReference(
      [reference_rule(r) for r in rules], 'Europe/Berlin', horizon_ms=30 * MIN
    )
    for batch in batches:
      reference.batch(batch)
    got = run(rules, *batches, timezone='Europe/Berlin', horizon=Duration(seconds=1800))
    assert sorted(
      (
        RefRow(
          a.rule,
          a.queue_id,
          a.channel,
          a.state,
          a.since,
          a.resolved_at,
          a.last_notification_kind,
          a.delivery_status,
          a.revision,
        )
        for a in got.alerts
      ),
      key=repr,
    ) == sorted(reference.rows, key=repr), seed
    assert sorted(
      (n.notification_id, n.kind, n.figure_end, n.value, n.previous_value)
      for n in got.notifications
    ) == sorted(
      (
        notification_id(n.rule, n.queue_id, n.channel, n.kind, n.figure_end, n.revision),
        n.kind,
        n.figure_end,
        n.value,
        n.previous,
      )
      for n in reference.notes
    ), seed
    for name, count in reference.counts.items():
      assert got.counters.get(name) == count, (seed, name)


def test_dead_letters_of_the_whole_job(runner_clock):
  r = rule(name='poison', metric='dead_letters', span='window', threshold=10, severity='critical')
  dead = dict(metric='dead_letters', span='window', queue='*', channel='*')
  # The window's count restated as dead letters come (revision = count).
  got = run([r], *one_per_bundle(*(fig(5, n, revision=n, **dead) for n in (4, 9, 12, 15))))
  assert got.kinds() == [(5, 'firing')]
  assert got.notifications[0].message == (
    '[critical] poison: the job dead letters in the window ending 08:05 is 12 above 10'
  )


class _Cell:
  """A state cell for driving the DoFn directly."""

  def __init__(self):
    self.value = None

  def read(self):
    return self.value

  def write(self, value):
    # Through the coder, as a runner stores it.
    self.value = ALERT_STATE_CODER.decode(ALERT_STATE_CODER.encode(value))


def test_what_a_key_told_stays_bounded_by_the_horizon_and_a_cap():
  config = AlertRulesConfig(rules=(rule(span='window', receivers=()),))
  for horizon, bound in ((Duration(seconds=1800), 6), (Duration(seconds=10**7), 512)):
    fn = _EvaluateFn(config, horizon.micros // 1000, NAMESPACE)
    fn.setup()
    cell = _Cell()
    for step in range(1, 700):
      figure = wfig(5 * step, 0.2 if step % 7 else 0.01)
      list(fn.process(('k', [('abandon-30m', figure)]), state=cell))
    assert len(cell.value.told) == bound
    assert max(cell.value.told) == T0 + 5 * 699 * MIN
