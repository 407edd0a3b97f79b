"""Alerting's frozen configuration: the receivers notifications go to and
the rules (AlertOptions, the `--alert_rules` file; docs/alerts.md).

A receiver names where its secrets are, never holds them: a webhook URL
(Slack's holds its token), an HMAC key and SMTP credentials are read from
the environment by the sender, when it sends (clients/alert_receivers.py).

The rule file, YAML (or JSON, by a .json suffix; samples/alert_rules.yaml):

  receivers:     name -> `kind` (webhook, slack, email) and its fields
                 (ReceiverConfig); `url:`, `password:`, `secret:`... are
                 refused: name the variable holding it (`url_env:`...)
  rules:         a list of rules, each with:
    name         unique
    metric       METRICS; `span`: one of METRIC_SPANS[metric], which may
                 be left out where there is only one
    scope        {queues: [ids or fnmatch patterns], channels: [...]};
                 absent: all (a dead_letters rule takes none)
    condition    above (fires while value > threshold) or below (<)
    threshold    a number; rates as fractions or "12.5%"
    clear_threshold   resolves at or beyond it (<= for above, >= for
                 below), on the safe side of the threshold; default it
    for_seconds  event time a breach lasts before it fires; default 0
    min_volume   contacts a figure must rest on to be judged; default 0
    business_hours    {mon: ["08:00-18:00", ...], ..., sun: [...]}, local
                 times of --timezone; days left out are closed; absent:
                 always open
    severity     info, warning (default) or critical
    receivers    names from `receivers:`
    repeat_interval_seconds   between reminders while firing; default
                 3600, 0 for none

Loading validates everything and raises ValueError with one message that
names the rule (by name, else #index) or receiver and the field.
"""

import dataclasses
import datetime
import fnmatch
import json
import math
import re
import zoneinfo
from typing import Any, Dict, FrozenSet, Optional, Sequence, Tuple

import yaml
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.timestamp import Duration

from options.alert_options import AlertOptions
from transforms.records import (
  CHANNELS,
  ROLLING_SPANS,
  SPAN_INTERVAL,
  SPAN_NOW,
  SPAN_TODAY,
  SPAN_WINDOW,
)

WEBHOOK = 'webhook'
SLACK = 'slack'
EMAIL = 'email'
RECEIVER_KINDS = (WEBHOOK, SLACK, EMAIL)


@dataclasses.dataclass(frozen=True)
class ReceiverConfig:
  """One receiver of the rule file's `receivers:` section.

  `kind`: webhook, slack or email. webhook and slack: `url_env`, the
  environment variable holding the URL; webhook: `secret_env`, the one
  holding the HMAC-SHA256 key of its `X-Signature` header ('' for none).
  email: `smtp_host`, `smtp_port`, `sender`, `recipients`, STARTTLS unless
  `starttls` is False (loopback test servers only), and `username_env`,
  `password_env` naming the credentials' variables ('' for none).
  """

  name: str
  kind: str
  url_env: str = ''
  secret_env: str = ''
  smtp_host: str = ''
  smtp_port: int = 587
  sender: str = ''
  recipients: Tuple[str, ...] = ()
  username_env: str = ''
  password_env: str = ''
  starttls: bool = True


# The rule file's vocabulary (docs/alerts.md).
# Metrics by the spans they exist over: the windowed, rolling and daily
# figures of abandon_metrics; the live floor now; the forecast interval;
# dead letters per window of the job.
RATE_METRICS = ('abandon_rate', 'service_level', 'predicted_service_level')
WINDOWED_METRICS = ('abandon_rate', 'service_level', 'asa_seconds', 'offered')
LIVE_METRICS = ('waiting', 'longest_wait_seconds', 'available_agents')
DEAD_LETTERS = 'dead_letters'
PREDICTED_SERVICE_LEVEL = 'predicted_service_level'
METRICS = (*WINDOWED_METRICS, *LIVE_METRICS, DEAD_LETTERS, PREDICTED_SERVICE_LEVEL)
_WINDOWED_SPANS = (SPAN_WINDOW, *ROLLING_SPANS, SPAN_TODAY)
# metric -> the spans it has figures over; the first is the default when a
# rule names no span and there is only one.
METRIC_SPANS: Dict[str, Tuple[str, ...]] = {
  **{m: _WINDOWED_SPANS for m in WINDOWED_METRICS},
  **{m: (SPAN_NOW,) for m in LIVE_METRICS},
  DEAD_LETTERS: (SPAN_WINDOW,),
  PREDICTED_SERVICE_LEVEL: (SPAN_INTERVAL,),
}
# A rule fires while the value is `above` (>) or `below` (<) its threshold,
# and resolves once it is back at or beyond the clear threshold (<= for
# above, >= for below).
ABOVE = 'above'
BELOW = 'below'
CONDITIONS = (ABOVE, BELOW)
SEVERITIES = ('info', 'warning', 'critical')
WEEKDAYS = ('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')
DEFAULT_REPEAT_INTERVAL = Duration(seconds=3600)
_MINUTES_PER_DAY = 24 * 60
# Environment variable names, as a shell exports them.
_ENV_NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*\Z')
_HOURS_RANGE = re.compile(r'(\d\d):(\d\d)-(\d\d):(\d\d)\Z')
# Keys that would put a secret in the file, and the *_env key to use.
_SECRET_KEYS = {
  'url': 'url_env',
  'webhook_url': 'url_env',
  'secret': 'secret_env',
  'hmac_key': 'secret_env',
  'token': 'url_env',
  'password': 'password_env',
  'username': 'username_env',
}
# The fields each receiver kind takes besides `kind`, and those it needs.
_RECEIVER_FIELDS = {
  WEBHOOK: (('url_env', 'secret_env'), ('url_env',)),
  SLACK: (('url_env',), ('url_env',)),
  EMAIL: (
    ('smtp_host', 'smtp_port', 'sender', 'recipients', 'username_env', 'password_env', 'starttls'),
    ('smtp_host', 'sender', 'recipients'),
  ),
}
_RULE_KEYS = (
  'name',
  'metric',
  'span',
  'scope',
  'condition',
  'threshold',
  'clear_threshold',
  'for_seconds',
  'min_volume',
  'business_hours',
  'severity',
  'receivers',
  'repeat_interval_seconds',
)

# Opening ranges per weekday (Monday first), each (start, end) minutes of
# the local day, end exclusive; a day with none is closed.
BusinessHours = Tuple[Tuple[Tuple[int, int], ...], ...]


def _quoted(value: Any) -> str:
  return json.dumps(value) if isinstance(value, str) else repr(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlertRule:
  """One threshold rule of the rule file (docs/alerts.md).

  Fires for a queue and channel in scope while `metric` over `span` is
  `condition` (above: >, below: <) `threshold` for `pending_for` of event
  time; resolves when it is back at or beyond `clear_threshold` (<= for
  above, >= for below; default the threshold). Rates are fractions (0.1 is
  10 %). `queues`: ids or fnmatch patterns, `channels`: CHANNELS; empty =
  all. Figures resting on fewer than `min_volume` contacts, and figures
  ending outside `business_hours` (None: always open), are not judged.
  `repeat_interval`: event time between reminders while firing, 0 for
  none. Raises ValueError naming the field.
  """

  name: str
  metric: str
  span: str
  condition: str
  threshold: float
  clear_threshold: Optional[float] = None
  queues: Tuple[str, ...] = ()
  channels: Tuple[str, ...] = ()
  pending_for: Duration = Duration(0)
  min_volume: int = 0
  business_hours: Optional[BusinessHours] = None
  severity: str = 'warning'
  receivers: Tuple[str, ...] = ()
  repeat_interval: Duration = DEFAULT_REPEAT_INTERVAL

  def __post_init__(self):
    if not isinstance(self.name, str) or not self.name.strip():
      raise ValueError(f'name: expected a non-empty string, got {_quoted(self.name)}')
    if self.metric not in METRICS:
      raise ValueError(f'metric: expected one of {", ".join(METRICS)}, got {_quoted(self.metric)}')
    if self.span not in METRIC_SPANS[self.metric]:
      raise ValueError(
        f'span: {self.metric} has figures over {", ".join(METRIC_SPANS[self.metric])}, '
        f'got {_quoted(self.span)}'
      )
    if self.condition not in CONDITIONS:
      raise ValueError(f'condition: expected above or below, got {_quoted(self.condition)}')
    for field in ('threshold', 'clear_threshold'):
      value = getattr(self, field)
      if value is None and field == 'clear_threshold':
        object.__setattr__(self, field, self.threshold)
        continue
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f'{field}: expected a number, got {_quoted(value)}')
      if value < 0 or (self.metric in RATE_METRICS and value > 1):
        limits = 'a rate between 0 and 1 (or "12.5%")' if self.metric in RATE_METRICS else '>= 0'
        raise ValueError(f'{field}: expected {limits}, got {_quoted(value)}')
    if (self.condition == ABOVE and self.clear_threshold > self.threshold) or (
      self.condition == BELOW and self.clear_threshold < self.threshold
    ):
      side = 'at or below' if self.condition == ABOVE else 'at or above'
      raise ValueError(
        f'clear_threshold: must be {side} the threshold {self.threshold} for a rule '
        f'{self.condition} it, got {self.clear_threshold}'
      )
    if self.metric == DEAD_LETTERS and (self.queues or self.channels):
      raise ValueError('scope: dead_letters counts the whole job; a rule on it takes no scope')
    for channel in self.channels:
      if channel not in CHANNELS:
        raise ValueError(
          f'scope: channels: expected some of {", ".join(CHANNELS)}, got {_quoted(channel)}'
        )
    for field in ('pending_for', 'repeat_interval'):
      if not isinstance(getattr(self, field), Duration) or getattr(self, field) < Duration(0):
        raise ValueError(f'{field}: expected a Duration >= 0, got {getattr(self, field)!r}')
    if isinstance(self.min_volume, bool) or not isinstance(self.min_volume, int):
      raise ValueError(f'min_volume: expected a whole number, got {_quoted(self.min_volume)}')
    if self.min_volume < 0:
      raise ValueError(f'min_volume: expected >= 0, got {self.min_volume}')
    if self.severity not in SEVERITIES:
      raise ValueError(
        f'severity: expected one of {", ".join(SEVERITIES)}, got {_quoted(self.severity)}'
      )
    if self.business_hours is not None and len(self.business_hours) != len(WEEKDAYS):
      raise ValueError('business_hours: expected the ranges of 7 weekdays, Monday first')

  def breaches(self, value: float) -> bool:
    """Whether `value` is past the threshold (fires, after `pending_for`)."""
    return value > self.threshold if self.condition == ABOVE else value < self.threshold

  def clears(self, value: float) -> bool:
    """Whether `value` resolves a firing alert: at or beyond the clear
    threshold, on the safe side."""
    return (
      value <= self.clear_threshold if self.condition == ABOVE else value >= self.clear_threshold
    )

  def in_scope(self, queue_id: str, channel: str) -> bool:
    """Whether the rule judges figures of this queue and channel."""
    return (not self.channels or channel in self.channels) and (
      not self.queues or any(fnmatch.fnmatchcase(queue_id, q) for q in self.queues)
    )

  def open_at(self, local: datetime.datetime) -> bool:
    """Whether `local` (a time in the config's zone) is in business hours."""
    if self.business_hours is None:
      return True
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in self.business_hours[local.weekday()])


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlertRulesConfig:
  """The rule file (AlertOptions `--alert_rules`): its rules, its
  receivers and the `--timezone` business hours are in. No rules: no alert
  is evaluated."""

  rules: Tuple[AlertRule, ...] = ()
  receivers: Tuple[ReceiverConfig, ...] = ()
  timezone: str = 'UTC'

  def __post_init__(self):
    _check_timezone(self.timezone)
    names = [rule.name for rule in self.rules]
    for name in names:
      if names.count(name) > 1:
        raise ValueError(f'alert rule "{name}": name: used by more than one rule')
    known = {receiver.name for receiver in self.receivers}
    for rule in self.rules:
      for receiver in rule.receivers:
        if receiver not in known:
          raise ValueError(
            f'alert rule "{rule.name}": receivers: {_quoted(receiver)} is not in the '
            f'receivers section (known: {", ".join(sorted(known)) or "none"})'
          )

  @classmethod
  def load(cls, path: str, timezone: str) -> 'AlertRulesConfig':
    """The rule file at `path`, YAML or JSON (by its .json suffix); raises
    ValueError with one message naming the rule (or receiver) and field.
    No message quotes the file's text: a secret put there by mistake stays
    out of the job's logs."""
    _check_timezone(timezone)
    try:
      with open(path, encoding='utf-8') as f:
        text = f.read()
      document = json.loads(text) if path.endswith('.json') else yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
      # Its own message quotes the line; the place is enough.
      mark = e.problem_mark or e.context_mark
      where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
      raise ValueError(f'alert rules file {path}: not valid YAML: {e.problem}{where}') from None
    except (OSError, ValueError, yaml.YAMLError) as e:
      raise ValueError(f'alert rules file {path}: cannot read it: {e}') from None
    try:
      return cls.parse(document, timezone)
    except ValueError as e:
      raise ValueError(f'alert rules file {path}: {e}') from None

  @classmethod
  def parse(cls, document: Any, timezone: str) -> 'AlertRulesConfig':
    """The rule file's parsed document (a mapping of `rules` and
    `receivers`); raises ValueError as `load`."""
    if document is None:
      document = {}
    if not isinstance(document, dict):
      raise ValueError(f'expected a mapping of rules and receivers, got {_kind_of(document)}')
    _no_unknown_keys(document, ('rules', 'receivers'), 'section')
    receivers_section = document.get('receivers') or {}
    if not isinstance(receivers_section, dict):
      raise ValueError('receivers: expected a mapping of receiver names to their settings')
    receivers = tuple(_receiver(str(name), raw) for name, raw in receivers_section.items())
    rules_section = document.get('rules') or []
    if not isinstance(rules_section, list):
      raise ValueError('rules: expected a list of rules')
    rules = tuple(_rule(i, raw) for i, raw in enumerate(rules_section))
    return cls(rules=rules, receivers=receivers, timezone=timezone)

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'AlertRulesConfig':
    """The file of `--alert_rules` in `--timezone`; no rules without the
    option. Raises ValueError."""
    o = options.view_as(AlertOptions)
    if not o.alert_rules:
      return cls(timezone=o.timezone)
    return cls.load(o.alert_rules, o.timezone)

  def receiver(self, name: str) -> ReceiverConfig:
    """The receiver named `name`; KeyError when there is none."""
    for receiver in self.receivers:
      if receiver.name == name:
        return receiver
    raise KeyError(name)

  def needed_figures(self) -> FrozenSet[Tuple[str, str]]:
    """The (metric, span) pairs some rule tests: the only figures worth
    making (transforms/alert_figures.py)."""
    return frozenset((rule.metric, rule.span) for rule in self.rules)


def _kind_of(value: Any) -> str:
  """What a misplaced value is, without quoting it (it may be a secret)."""
  return {str: 'a string', list: 'a list', dict: 'a mapping'}.get(type(value), 'a value')


def _check_timezone(name: str) -> None:
  try:
    zoneinfo.ZoneInfo(name)
  except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
    raise ValueError(
      f'--timezone: expected an IANA time zone name (e.g. Europe/Berlin), got {_quoted(name)}'
    ) from None


def _no_unknown_keys(raw: dict, known: Sequence[str], what: str) -> None:
  for key in raw:
    if key not in known:
      raise ValueError(f'{key}: unknown {what} (known: {", ".join(known)})')


class _Fields:
  """Reads the fields of one raw mapping, each error naming the field."""

  def __init__(self, raw: dict):
    self._raw = raw

  def has(self, key: str) -> bool:
    return self._raw.get(key) is not None

  def string(self, key: str, default: Optional[str] = None) -> str:
    value = self._raw.get(key, default)
    if not isinstance(value, str) or not value:
      raise ValueError(f'{key}: expected a non-empty string, got {_quoted(value)}')
    return value

  def whole(self, key: str, default: int) -> int:
    value = self._raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise ValueError(f'{key}: expected a whole number >= 0, got {_quoted(value)}')
    return value

  def number(self, key: str, percent_ok: bool) -> float:
    """A number; "12.5%" is 0.125 where `percent_ok` (rates)."""
    value = self._raw.get(key)
    if percent_ok and isinstance(value, str) and value.strip().endswith('%'):
      try:
        return float(value.strip()[:-1]) / 100
      except ValueError:
        pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ValueError(f'{key}: expected a number, got {_quoted(value)}')
    return float(value)

  def strings(self, key: str) -> Tuple[str, ...]:
    value = self._raw.get(key, [])
    if isinstance(value, str):
      value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
      raise ValueError(f'{key}: expected a list of names, got {_quoted(value)}')
    return tuple(value)

  def flag(self, key: str, default: bool) -> bool:
    value = self._raw.get(key, default)
    if not isinstance(value, bool):
      raise ValueError(f'{key}: expected true or false, got {_quoted(value)}')
    return value


def _receiver(name: str, raw: Any) -> ReceiverConfig:
  where = f'receiver "{name}"'
  if not isinstance(raw, dict):
    raise ValueError(f'{where}: expected a mapping of its settings, got {_kind_of(raw)}')
  for key in raw:
    if key in _SECRET_KEYS:
      # Never the value: it is a secret.
      raise ValueError(
        f'{where}: {key}: secrets are not kept in the rule file; put it in an environment '
        f'variable and name the variable in {_SECRET_KEYS[key]}'
      )
  fields = _Fields(raw)
  try:
    kind = fields.string('kind')
    if kind not in RECEIVER_KINDS:
      raise ValueError(f'kind: expected one of {", ".join(RECEIVER_KINDS)}, got {_quoted(kind)}')
    allowed, required = _RECEIVER_FIELDS[kind]
    for key in raw:
      if key != 'kind' and key not in allowed:
        raise ValueError(f'{key}: not a setting of a {kind} receiver (known: {", ".join(allowed)})')
    for key in required:
      if not fields.has(key):
        raise ValueError(f'{key}: required for a {kind} receiver')
    settings: Dict[str, Any] = {}
    for key in allowed:
      if key not in raw:
        continue
      if key == 'smtp_port':
        settings[key] = fields.whole(key, 587)
        if not 0 < settings[key] < 65536:
          raise ValueError(f'smtp_port: expected a port 1..65535, got {settings[key]}')
      elif key == 'starttls':
        settings[key] = fields.flag(key, True)
      elif key == 'recipients':
        settings[key] = fields.strings(key)
        if not settings[key]:
          raise ValueError('recipients: expected at least one address')
      else:
        settings[key] = fields.string(key)
        if key.endswith('_env') and not _ENV_NAME.match(settings[key]):
          # Not the value: it may be the secret itself, put there by mistake.
          raise ValueError(
            f'{key}: expected the name of an environment variable (letters, digits, _), '
            'not its value'
          )
    if kind == EMAIL and bool(settings.get('username_env')) != bool(settings.get('password_env')):
      raise ValueError('username_env, password_env: give both or neither')
    return ReceiverConfig(name=name, kind=kind, **settings)
  except ValueError as e:
    raise ValueError(f'{where}: {e}') from None


def _rule(index: int, raw: Any) -> AlertRule:
  name = raw.get('name') if isinstance(raw, dict) else None
  where = f'alert rule "{name}"' if isinstance(name, str) and name else f'alert rule #{index + 1}'
  try:
    if not isinstance(raw, dict):
      raise ValueError(f'expected a mapping of its fields, got {_kind_of(raw)}')
    _no_unknown_keys(raw, _RULE_KEYS, 'field')
    fields = _Fields(raw)
    metric = fields.string('metric')
    if metric not in METRICS:
      raise ValueError(f'metric: expected one of {", ".join(METRICS)}, got {_quoted(metric)}')
    spans = METRIC_SPANS[metric]
    if fields.has('span'):
      span = fields.string('span')
    elif len(spans) == 1:
      span = spans[0]
    else:
      raise ValueError(f'span: required for {metric}, one of {", ".join(spans)}')
    scope = raw.get('scope') or {}
    if not isinstance(scope, dict):
      raise ValueError('scope: expected a mapping of queues and channels')
    try:
      _no_unknown_keys(scope, ('queues', 'channels'), 'key')
      queues, channels = _Fields(scope).strings('queues'), _Fields(scope).strings('channels')
    except ValueError as e:
      raise ValueError(f'scope: {e}') from None
    rate = metric in RATE_METRICS
    return AlertRule(
      name=fields.string('name'),
      metric=metric,
      span=span,
      condition=fields.string('condition'),
      threshold=fields.number('threshold', rate),
      clear_threshold=fields.number('clear_threshold', rate)
      if fields.has('clear_threshold')
      else None,
      queues=queues,
      channels=channels,
      pending_for=Duration(seconds=fields.whole('for_seconds', 0)),
      min_volume=fields.whole('min_volume', 0),
      business_hours=_business_hours(raw['business_hours'])
      if fields.has('business_hours')
      else None,
      severity=fields.string('severity', 'warning'),
      receivers=fields.strings('receivers'),
      repeat_interval=Duration(
        seconds=fields.whole('repeat_interval_seconds', DEFAULT_REPEAT_INTERVAL.micros // 10**6)
      ),
    )
  except ValueError as e:
    raise ValueError(f'{where}: {e}') from None


def _business_hours(raw: Any) -> BusinessHours:
  """{mon: ['08:00-18:00', ...], ...} as BusinessHours; days not given are
  closed."""
  if not isinstance(raw, dict):
    raise ValueError('business_hours: expected a mapping of weekdays (mon..sun) to ranges')
  try:
    _no_unknown_keys(raw, WEEKDAYS, 'weekday')
  except ValueError as e:
    raise ValueError(f'business_hours: {e}') from None
  days = []
  for day in WEEKDAYS:
    ranges = raw.get(day) or []
    if isinstance(ranges, str):
      ranges = [ranges]
    if not isinstance(ranges, list):
      raise ValueError(f'business_hours: {day}: expected a list of "HH:MM-HH:MM" ranges')
    parsed = []
    for text in ranges:
      match = _HOURS_RANGE.match(text) if isinstance(text, str) else None
      if match is None:
        raise ValueError(
          f'business_hours: {day}: expected "HH:MM-HH:MM" (quoted in YAML), got {_quoted(text)}'
        )
      h1, m1, h2, m2 = (int(g) for g in match.groups())
      start, end = h1 * 60 + m1, h2 * 60 + m2
      if h1 > 23 or m1 > 59 or m2 > 59 or not start < end <= _MINUTES_PER_DAY:
        raise ValueError(
          f'business_hours: {day}: {_quoted(text)} is not a range within one day '
          '(start before end, end at most 24:00)'
        )
      parsed.append((start, end))
    days.append(tuple(parsed))
  return tuple(days)
