"""EvaluateAlertRules: the lifecycle of every alert rule per queue and
channel, and the notifications of its transitions (docs/alerts.md).

Each figure (transforms/alert_figures.py, and the forecast's) goes to every
rule whose metric, span and scope match it; one state per (rule, queue,
channel), its natural key.

The clock is event time: the span_end of the figures the key evaluated
(the end of a window or span, the as_of of a live figure), never the
processing time, so a replay or a restart from a checkpoint makes the same
transitions, at the same times, with the same notification ids. `for` and
reminders are measured on it: a reminder goes out with the first figure at
or after its due time. No timer: a key's figures are its only clock (the
watermark of the merged tables says nothing of one queue), and a quiet
key, whose value is not refreshed, has nothing new to remind of.

The rules:
- A figure is judged if its span_end is in the rule's business hours (in
  the config's time zone) and its volume is at least the rule's minimum.
  Figures below the volume neither fire nor resolve (counted
  `figures_below_volume`). The first figure outside business hours ends
  the key's alert: a pending one silently, a firing one with a `resolved`
  notification saying business hours ended, so nobody is reminded
  overnight and the next day's breach is notified anew; later figures
  outside hours are ignored (`figures_outside_hours`). A key with no
  figure after hours end keeps its state until its next figure.
- Per key, the figures of a span_end later than the clock, or of the
  clock's own span_end with a higher revision (a later pane), are the
  current value. Breaching (value above/below the threshold) it goes
  pending, then firing (notified `firing`) once it has breached on every
  judged figure for `for`; with no `for` it fires at once. A pending alert
  whose value stops breaching returns to resolved silently. A firing
  alert resolves (notified `resolved`) when the value is back at or beyond
  the clear threshold; between the two it stays firing (hysteresis), and
  is reminded (`reminder`) every `repeat_interval` (0: never).
- Restatement: for each span_end of the last `restatement_horizon` the key
  keeps what it told about it: a breach (firing, reminder), a resolve, or
  nothing while not firing ("quiet"). A figure of such a span_end with a
  higher revision (a LATE pane, a rolling span recomputed) that makes a
  sent breach no longer breach, a sent resolve no longer clear, or a quiet
  span_end breach (a missed breach) is notified `restated`, with the value
  told before as `previous_value`; the current state is not changed by
  it. For the clock's own span_end, a later revision first moves the
  lifecycle, and is a restatement only when the lifecycle notifies
  nothing. Live figures (span now) are never restated and not kept.
- A figure of a span_end the key already judged at the same or a higher
  revision, or older than the kept ones, is stale (`figures_stale`).

Counted (Beam counters): `figures_evaluated`, `figures_below_volume`,
`figures_outside_hours`, `figures_stale` and `notifications_<kind>`.

Notification ids are sha256 hex of (rule, queue, channel, kind, span_end,
revision) of the figure that caused them: a replay makes the same ids, the
receivers' idempotency key.
"""

import datetime
import hashlib
import json
import zoneinfo
from typing import Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.utils.timestamp import Duration

from options.alert_config import (
  ABOVE,
  PREDICTED_SERVICE_LEVEL,
  RATE_METRICS,
  AlertRule,
  AlertRulesConfig,
)
from options.config import checked_millis, millis
from transforms.batching import BatchPerKey
from transforms.records import (
  ALERT_FIRING,
  ALERT_PENDING,
  ALERT_RESOLVED,
  NOTIFY_FIRING,
  NOTIFY_REMINDER,
  NOTIFY_RESOLVED,
  NOTIFY_RESTATED,
  SPAN_INTERVAL,
  SPAN_NOW,
  SPAN_TODAY,
  SPAN_WINDOW,
  Alert,
  AlertFigure,
  AlertNotification,
)
from transforms.state_coders import VersionedStateCoder, compact_json

ALERTS = 'alerts'
ALERT_NOTIFICATIONS = 'alert_notifications'
DISPATCH = 'dispatch'
QUEUED = 'queued'
WHOLE_JOB = '*'
# What a key told about one span_end (restatement): a breach (firing or
# reminder), a resolve, silence while not firing, or nothing to hold
# (silence while pending or firing).
_BREACH = 'breach'
_CLEAR = 'clear'
_QUIET = 'quiet'
_NONE = ''
# The span_ends kept per key at most, whatever the horizon (a rule on 5
# minute windows keeps 24 in two hours).
_MAX_KEPT = 512

_METRIC_LABELS = {
  'abandon_rate': 'abandon rate',
  'service_level': 'service level',
  'asa_seconds': 'average speed of answer',
  'offered': 'offered contacts',
  'waiting': 'contacts waiting',
  'longest_wait_seconds': 'longest wait',
  'available_agents': 'available agents',
  'dead_letters': 'dead letters',
  'predicted_service_level': 'predicted service level',
}


def notification_id(
  rule: str, queue_id: str, channel: str, kind: str, span_end: int, revision: int
) -> str:
  """The idempotency key of a notification: the same figure makes the same
  id on every run."""
  key = compact_json([rule, queue_id, channel, kind, span_end, revision])
  return hashlib.sha256(key.encode('utf-8')).hexdigest()


def format_value(metric: str, value: float) -> str:
  """A value as people read it: rates in %, waits in s, counts whole."""
  if metric in RATE_METRICS:
    return f'{value * 100:.1f}'.rstrip('0').rstrip('.') + ' %'
  if metric in ('asa_seconds', 'longest_wait_seconds'):
    return f'{value:.1f}'.rstrip('0').rstrip('.') + ' s'
  return f'{value:.0f}'


class _Key(NamedTuple):
  rule: AlertRule
  queue_id: str
  channel: str
  queue_name: str


class _Messages:
  """The human text of notifications, times in the config's zone."""

  def __init__(self, zone: zoneinfo.ZoneInfo):
    self._zone = zone

  def local(self, ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, self._zone)

  def _hhmm(self, ms: int) -> str:
    return self.local(ms).strftime('%H:%M')

  def _subject(self, key: _Key, span_end: int, dated: bool = False) -> str:
    """What a figure is of; `dated`: with its end whatever the span (a
    restatement is about a past figure)."""
    rule = key.rule
    where = (
      'the job'
      if key.queue_id == WHOLE_JOB
      else f'queue {key.queue_name or key.queue_id} ({key.channel})'
    )
    at = self._hhmm(span_end)
    span = {
      SPAN_WINDOW: f'in the window ending {at}',
      SPAN_TODAY: f'today as of {at}' if dated else 'today',
      SPAN_NOW: f'at {at}' if dated else 'now',
      SPAN_INTERVAL: f'for the interval ending {at}',
    }.get(rule.span, f'over {rule.span} to {at}' if dated else f'over {rule.span}')
    return f'{where} {_METRIC_LABELS[rule.metric]} {span}'

  def text(
    self,
    kind: str,
    key: _Key,
    span_end: int,
    value: float,
    previous: Optional[float] = None,
    since: int = 0,
    hours_ended: bool = False,
  ) -> str:
    rule = key.rule
    head = f'[{rule.severity}] {rule.name}'
    subject = self._subject(key, span_end, dated=kind == NOTIFY_RESTATED)
    shown = format_value(rule.metric, value)
    threshold = format_value(rule.metric, rule.threshold)
    if kind == NOTIFY_FIRING and rule.metric == PREDICTED_SERVICE_LEVEL:
      # A warning ahead of the breach, said as a supervisor would.
      where = subject.split(' predicted service level ', 1)[0]
      return (
        f'{head}: {where} is forecast to end the interval to {self._hhmm(span_end)} at '
        f'{shown} service level against {threshold}'
      )
    if kind == NOTIFY_FIRING:
      return f'{head}: {subject} is {shown} {rule.condition} {threshold}'
    if kind == NOTIFY_REMINDER:
      return (
        f'{head} still firing since {self._hhmm(since)}: {subject} is {shown} '
        f'({rule.condition} {threshold} fires)'
      )
    if kind == NOTIFY_RESOLVED and hours_ended:
      return f'{head} resolved: business hours ended ({subject} is {shown})'
    if kind == NOTIFY_RESOLVED:
      side = 'at or below' if rule.condition == ABOVE else 'at or above'
      clear = format_value(rule.metric, rule.clear_threshold)
      return f'{head} resolved: {subject} is {shown}, {side} {clear}'
    was = format_value(rule.metric, previous)
    return (
      f'{head} restated: {subject} was {was}, is now {shown} ({rule.condition} {threshold} fires)'
    )


class _AlertState:
  """One rule, queue and channel: its lifecycle and what it told."""

  __slots__ = (
    'state',
    'since',
    'resolved_at',
    'value',
    'clock',
    'clock_revision',
    'notified_at',
    'last_id',
    'last_kind',
    'rows',
    'told',
  )

  def __init__(self):
    # '' until the key first breaches.
    self.state: str = ''
    self.since: int = 0
    self.resolved_at: Optional[int] = None
    self.value: float = 0.0
    # The latest span_end judged (the key's event-time clock) and its
    # revision; None before the first.
    self.clock: Optional[int] = None
    self.clock_revision: int = 0
    # The span_end of the last firing or reminder notification.
    self.notified_at: int = 0
    self.last_id: str = ''
    self.last_kind: str = ''
    # Alert rows written: the next row's revision is 2 * rows.
    self.rows: int = 0
    # span_end -> [revision, value told (or last seen), what was told].
    self.told: Dict[int, list] = {}


def _state_to_plain(s: _AlertState) -> list:
  return [
    s.state,
    s.since,
    s.resolved_at,
    s.value,
    s.clock,
    s.clock_revision,
    s.notified_at,
    s.last_id,
    s.last_kind,
    s.rows,
    sorted([end, *entry] for end, entry in s.told.items()),
  ]


def _state_from_plain_v1(plain: list) -> _AlertState:
  s = _AlertState()
  s.state, s.since, s.resolved_at, s.value, s.clock, s.clock_revision = plain[:6]
  s.notified_at, s.last_id, s.last_kind, s.rows = plain[6:10]
  s.told = {end: [revision, value, told] for end, revision, value, told in plain[10]}
  return s


# Format v1: [state, since, resolved_at or null, value, clock or null,
# clock revision, notified at, last notification id, last kind, rows,
# [[span_end, revision, value, told], ...]] (docs/upgrades.md).
ALERT_STATE_CODER = VersionedStateCoder(
  'alert evaluation', 1, _state_to_plain, {1: _state_from_plain_v1}
)


class _EvaluateFn(beam.DoFn):
  STATE = ReadModifyWriteStateSpec('alert_state', ALERT_STATE_CODER)

  def __init__(self, rules: AlertRulesConfig, horizon_ms: int, metrics_namespace: str):
    self._rules = {rule.name: rule for rule in rules.rules}
    self._timezone = rules.timezone
    self._horizon_ms = horizon_ms
    counter = lambda name: Metrics.counter(metrics_namespace, name)  # noqa: E731
    self._evaluated = counter('figures_evaluated')
    self._outside_hours = counter('figures_outside_hours')
    self._below_volume = counter('figures_below_volume')
    self._stale = counter('figures_stale')
    self._notified = {
      kind: counter(f'notifications_{kind}')
      for kind in (NOTIFY_FIRING, NOTIFY_RESOLVED, NOTIFY_REMINDER, NOTIFY_RESTATED)
    }
    self._messages: Optional[_Messages] = None

  def setup(self):
    self._messages = _Messages(zoneinfo.ZoneInfo(self._timezone))

  def process(
    self,
    batch: Tuple[str, List[Tuple[str, AlertFigure]]],
    state=beam.DoFn.StateParam(STATE),
  ) -> Iterator:
    _, pairs = batch
    rule_name, first = pairs[0]
    key = _Key(self._rules[rule_name], first.queue_id, first.channel, '')
    alert = state.read() or _AlertState()
    # Event-time order within the batch: the same transitions as if the
    # figures had come one by one, in order.
    for _, figure in sorted(pairs, key=lambda p: (p[1].span_end, p[1].revision)):
      key = key._replace(queue_name=figure.queue_name or key.queue_name)
      yield from self._figure(key, alert, figure)
    self._forget(alert)
    state.write(alert)

  def _figure(self, key: _Key, alert: _AlertState, figure: AlertFigure) -> Iterator:
    rule, end = key.rule, figure.span_end
    if rule.business_hours is not None and not rule.open_at(self._messages.local(end)):
      self._outside_hours.inc()
      if alert.state in (ALERT_PENDING, ALERT_FIRING) and (
        alert.clock is None or end > alert.clock
      ):
        yield from self._close(key, alert, figure)
      return
    told = alert.told.get(end)
    if (
      alert.clock is None
      or end > alert.clock
      or (end == alert.clock and figure.revision > alert.clock_revision)
    ):
      alert.clock, alert.clock_revision = end, figure.revision
      if figure.volume < rule.min_volume:
        self._below_volume.inc()
        active = alert.state in (ALERT_PENDING, ALERT_FIRING)
        self._keep(key, alert, figure, told, _NONE if active else _QUIET)
        return
      self._evaluated.inc()
      notified_before = alert.last_id
      yield from self._lifecycle(key, alert, figure, told)
      if alert.last_id == notified_before and told is not None and told[2] in (_BREACH, _CLEAR):
        yield from self._restate(key, alert, figure, told)
    elif told is not None and figure.revision > told[0]:
      told[0] = figure.revision
      if figure.volume < rule.min_volume:
        self._below_volume.inc()
        return
      self._evaluated.inc()
      yield from self._restate(key, alert, figure, told)
    else:
      self._stale.inc()

  def _lifecycle(
    self, key: _Key, alert: _AlertState, figure: AlertFigure, told: Optional[list]
  ) -> Iterator:
    rule, end, value = key.rule, figure.span_end, figure.value
    alert.value = value
    breach = rule.breaches(value)
    if alert.state == ALERT_FIRING:
      if rule.clears(value):
        alert.state, alert.since, alert.resolved_at = ALERT_RESOLVED, end, end
        self._keep(key, alert, figure, told, _CLEAR)
        yield from self._outputs(key, alert, figure, NOTIFY_RESOLVED)
      elif rule.repeat_interval.micros and end >= alert.notified_at + millis(rule.repeat_interval):
        alert.notified_at = end
        self._keep(key, alert, figure, told, _BREACH if breach else _NONE)
        yield from self._outputs(key, alert, figure, NOTIFY_REMINDER)
      else:
        self._keep(key, alert, figure, told, _NONE)
    elif breach:
      # How long it has breached: since it went pending, or just now.
      held = end - alert.since if alert.state == ALERT_PENDING else 0
      if held >= millis(rule.pending_for):
        alert.state, alert.since, alert.notified_at = ALERT_FIRING, end, end
        self._keep(key, alert, figure, told, _BREACH)
        yield from self._outputs(key, alert, figure, NOTIFY_FIRING)
      else:
        self._keep(key, alert, figure, told, _NONE)
        if alert.state != ALERT_PENDING:
          alert.state, alert.since = ALERT_PENDING, end
          yield from self._outputs(key, alert, figure, None)
    else:
      self._keep(key, alert, figure, told, _QUIET)
      if alert.state == ALERT_PENDING:
        # Never notified: back to the quiet state, resolved_at untouched.
        alert.state, alert.since = ALERT_RESOLVED, end
        yield from self._outputs(key, alert, figure, None)

  def _restate(self, key: _Key, alert: _AlertState, figure: AlertFigure, told: list) -> Iterator:
    """A `restated` notification if the figure, a later revision of a span_end
    the key told about, makes what it told wrong; the state is unchanged."""
    rule, value = key.rule, figure.value
    wrong = (
      (told[2] == _BREACH and not rule.breaches(value))
      or (told[2] == _CLEAR and not rule.clears(value))
      or (told[2] == _QUIET and rule.breaches(value))
    )
    if not wrong:
      if told[2] in (_NONE, _QUIET):
        told[1] = value
      return
    previous = told[1]
    told[1], told[2] = value, _BREACH if rule.breaches(value) else _QUIET
    yield from self._outputs(key, alert, figure, NOTIFY_RESTATED, previous=previous)

  def _close(self, key: _Key, alert: _AlertState, figure: AlertFigure) -> Iterator:
    """Business hours ended: the alert ends with the first figure after."""
    notify = NOTIFY_RESOLVED if alert.state == ALERT_FIRING else None
    alert.state, alert.since = ALERT_RESOLVED, figure.span_end
    if notify:
      alert.resolved_at = figure.span_end
    yield from self._outputs(key, alert, figure, notify, hours_ended=True)

  def _keep(
    self, key: _Key, alert: _AlertState, figure: AlertFigure, told: Optional[list], claim: str
  ) -> None:
    """Records what the key told about the figure's span_end: a breach or
    resolve told stays told until another notification replaces it."""
    if key.rule.span == SPAN_NOW:
      return
    if told is None:
      alert.told[figure.span_end] = [figure.revision, figure.value, claim]
      return
    told[0] = figure.revision
    if claim in (_BREACH, _CLEAR) or told[2] in (_NONE, _QUIET):
      told[1], told[2] = figure.value, claim

  def _forget(self, alert: _AlertState) -> None:
    """Drops what was told about span_ends past the horizon (and beyond the
    newest _MAX_KEPT): their restatements are no longer judged."""
    if alert.clock is None or not alert.told:
      return
    if len(alert.told) <= _MAX_KEPT and min(alert.told) > alert.clock - self._horizon_ms:
      return
    kept = sorted(end for end in alert.told if end > alert.clock - self._horizon_ms)[-_MAX_KEPT:]
    if len(kept) != len(alert.told):
      alert.told = {end: alert.told[end] for end in kept}

  def _outputs(
    self,
    key: _Key,
    alert: _AlertState,
    figure: AlertFigure,
    kind: Optional[str],
    previous: Optional[float] = None,
    hours_ended: bool = False,
  ) -> Iterator:
    """The alert row of a transition and, with `kind`, its notification
    (on the history and to delivery)."""
    rule = key.rule
    notification = None
    if kind is not None:
      self._notified[kind].inc()
      notification = AlertNotification(
        notification_id=notification_id(
          rule.name, key.queue_id, key.channel, kind, figure.span_end, figure.revision
        ),
        rule=rule.name,
        queue_id=key.queue_id,
        channel=key.channel,
        kind=kind,
        severity=rule.severity,
        metric=rule.metric,
        span=rule.span,
        value=figure.value,
        threshold=rule.threshold,
        previous_value=previous,
        figure_end=figure.span_end,
        message=self._messages.text(
          kind, key, figure.span_end, figure.value, previous, alert.since, hours_ended
        ),
        receivers=json.dumps(list(rule.receivers)),
        created_at=figure.span_end,
        queue_name=key.queue_name,
      )
      alert.last_id, alert.last_kind = notification.notification_id, kind
    row = Alert(
      rule=rule.name,
      queue_id=key.queue_id,
      channel=key.channel,
      state=alert.state,
      severity=rule.severity,
      metric=rule.metric,
      span=rule.span,
      value=alert.value,
      threshold=rule.threshold,
      since=alert.since,
      resolved_at=alert.resolved_at,
      last_notification_id=alert.last_id,
      last_notification_kind=alert.last_kind,
      delivery_status=QUEUED if notification else '',
      updated_at=max(alert.clock or figure.span_end, figure.span_end),
      revision=2 * alert.rows,
      queue_name=key.queue_name,
    )
    alert.rows += 1
    yield row
    if notification is not None:
      yield beam.pvalue.TaggedOutput(ALERT_NOTIFICATIONS, notification)
      yield beam.pvalue.TaggedOutput(DISPATCH, (row, notification))


def _route(figure: AlertFigure, by_figure: Mapping[Tuple[str, str], Tuple[AlertRule, ...]]):
  """(rule name, figure) for each rule that judges the figure."""
  for rule in by_figure.get((figure.metric, figure.span), ()):
    if rule.in_scope(figure.queue_id, figure.channel):
      yield rule.name, figure


def _evaluation_key(pair: Tuple[str, AlertFigure]) -> str:
  rule, figure = pair
  return compact_json([rule, figure.queue_id, figure.channel])


class EvaluateAlertRules(beam.PTransform):
  """The alerts of `rules` on a stream of figures.

  Input: PCollection[AlertFigure] in the global window, each stamped with
  its span_end (AlertFigures does; the forecast's likewise).
  Outputs (dict):
    `alerts`: PCollection[Alert], a row per (rule, queue, channel) at every
      state change and every notification, revision 2n for its n-th row
      (delivery writes the same row back with revision + 1);
      `delivery_status` 'queued' on a row that sent a notification, ''
      on one that did not.
    `alert_notifications`: PCollection[AlertNotification], each firing,
      resolved, reminder and restated notification (the history).
    `dispatch`: PCollection[Tuple[Alert, AlertNotification]], each
      notification with its alert row, for delivery.
  Each output is timestamped with the earliest span_end of the figures
  evaluated with it, in the global window. The rules of the lifecycle are
  in the module docstring.
  `restatement_horizon`: how long, in event time behind a key's clock, what
  it told about a span_end is kept to judge its restatements (the metrics'
  allowed lateness plus the longest span is enough).
  """

  def __init__(
    self,
    rules: AlertRulesConfig,
    *,
    restatement_horizon: Duration = Duration(seconds=7200),
    metrics_namespace: str = 'alert_evaluation',
  ):
    super().__init__()
    self._rules = rules
    self._horizon_ms = checked_millis(restatement_horizon, 'restatement_horizon', zero_ok=True)
    self._metrics_namespace = metrics_namespace
    by_figure: Dict[Tuple[str, str], Tuple[AlertRule, ...]] = {}
    for rule in rules.rules:
      by_figure[(rule.metric, rule.span)] = (*by_figure.get((rule.metric, rule.span), ()), rule)
    self._by_figure = by_figure

  def expand(self, figures):
    outputs = (
      figures
      | 'Route' >> beam.FlatMap(_route, self._by_figure).with_output_types(Tuple[str, AlertFigure])
      | 'BatchPerKey' >> BatchPerKey(_evaluation_key, lambda pair: pair[1].span_end, str)
      | 'Evaluate'
      >> beam.ParDo(_EvaluateFn(self._rules, self._horizon_ms, self._metrics_namespace))
      .with_output_types(
        Alert,
        **{ALERT_NOTIFICATIONS: AlertNotification, DISPATCH: Tuple[Alert, AlertNotification]},
      )
      .with_outputs(ALERT_NOTIFICATIONS, DISPATCH, main=ALERTS)
    )
    return {
      ALERTS: outputs[ALERTS],
      ALERT_NOTIFICATIONS: outputs[ALERT_NOTIFICATIONS],
      DISPATCH: outputs[DISPATCH],
    }
