"""Independent reference for alert rule evaluation
(transforms/alert_evaluation.py).

Given rules (plain values: `Rule`) and batches of figures (objects with
``metric``, ``queue_id``, ``channel``, ``span``, ``span_end``, ``value``,
``volume``, ``revision``, as AlertFigure), compute in plain Python, with
dicts, the alert rows and notifications of every (rule, queue, channel).
It shares no code with ``transforms/`` or ``options/``: it is the oracle
the job is checked against (tests/test_alert_evaluation.py).

Semantics (the job's contract, docs/alerts.md):

* A rule judges a figure of its metric and span whose queue matches one of
  its queue patterns (fnmatch, case-sensitive; none = all) and whose
  channel is one of its channels (none = all). Keys: (rule, queue, channel).
  Within a batch a key's figures are taken by (span_end, revision).
* Breach: value > threshold (above) or < threshold (below). Clear: value
  <= clear (above) or >= clear (below).
* Outside business hours (span_end's local weekday and minute in the zone,
  ranges [start, end) minutes): ignored and counted; if the key is pending
  or firing and span_end is past its clock, the alert ends: resolved (a
  `resolved` notification if it was firing, resolved_at = span_end).
* Current figure: span_end past the clock, or equal with a higher
  revision. It sets the clock. Volume under min_volume: counted, nothing
  else changes but the log (silence). Else, by state: firing -> resolved
  if clear (notify), else a reminder if repeat > 0 and span_end >= last
  firing/reminder + repeat; resolved/none -> firing at once if breach and
  no `for`, pending if breach with `for`; pending -> firing if breach and
  span_end - pending since >= `for`, resolved (silent) if no breach.
* Log per span_end (not for span now): [revision, value, said], said one
  of breach (firing, reminder while breaching), clear (resolved), quiet
  (not pending or firing, nothing sent), none (pending or firing, nothing
  sent). A new entry takes what the figure said; an existing one takes a
  breach or clear said now, or anything when it held quiet or none;
  otherwise only its revision moves.
* Restatement: a figure of a logged span_end with a higher revision that
  is not current (or is current but moved the lifecycle to no
  notification, and the entry said breach or clear) is judged if its
  volume suffices: said breach and no breach now, said clear and no clear
  now, or (not current) said quiet and breach now -> `restated` with the
  logged value as previous; the entry then says breach or quiet as the new
  value does. Otherwise a quiet/none entry takes the new value.
* Anything else (older revision, unlogged past span_end) is stale.
* After each batch, the log keeps span_ends > clock - horizon, the
  newest 512.
* A row per state change or notification; the n-th row of a key has
  revision 2n, delivery 'queued' with a notification, '' without.
"""

from __future__ import annotations

import datetime
import fnmatch
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

KEEP_AT_MOST = 512


class Rule(NamedTuple):
  name: str
  metric: str
  span: str
  above: bool
  threshold: float
  clear: float
  queues: Tuple[str, ...] = ()
  channels: Tuple[str, ...] = ()
  for_ms: int = 0
  min_volume: int = 0
  # Per weekday (Monday first) (start, end) minutes, or None: always.
  hours: Optional[Tuple[Tuple[Tuple[int, int], ...], ...]] = None
  repeat_ms: int = 0


class Row(NamedTuple):
  """An alert row, as the reference compares it."""

  rule: str
  queue_id: str
  channel: str
  state: str
  since: int
  resolved_at: Optional[int]
  kind: str
  delivery: str
  revision: int


class Note(NamedTuple):
  """A notification, as the reference compares it."""

  rule: str
  queue_id: str
  channel: str
  kind: str
  figure_end: int
  revision: int
  value: float
  previous: Optional[float]


@dataclass
class _Key:
  state: str = ''
  since: int = 0
  resolved_at: Optional[int] = None
  clock: Optional[int] = None
  clock_rev: int = 0
  reminded_at: int = 0
  kind: str = ''
  rows: int = 0
  log: Dict[int, list] = field(default_factory=dict)


class AlertsReference:
  """Feed batches with `batch(figures)`; read `rows`, `notes`, `counts`."""

  def __init__(self, rules: Sequence[Rule], timezone: str, horizon_ms: int):
    self.rules = list(rules)
    self.zone = zoneinfo.ZoneInfo(timezone)
    self.horizon_ms = horizon_ms
    self.keys: Dict[Tuple[str, str, str], _Key] = {}
    self.rows: List[Row] = []
    self.notes: List[Note] = []
    self.counts: Dict[str, int] = {}

  def _count(self, name: str) -> None:
    self.counts[name] = self.counts.get(name, 0) + 1

  def batch(self, figures: Iterable[Any]) -> None:
    per_key: Dict[Tuple[str, str, str], List[Any]] = {}
    for f in figures:
      for rule in self.rules:
        if (f.metric, f.span) != (rule.metric, rule.span):
          continue
        if rule.channels and f.channel not in rule.channels:
          continue
        if rule.queues and not any(fnmatch.fnmatchcase(f.queue_id, q) for q in rule.queues):
          continue
        per_key.setdefault((rule.name, f.queue_id, f.channel), []).append(f)
    by_name = {rule.name: rule for rule in self.rules}
    for k, fs in per_key.items():
      key = self.keys.setdefault(k, _Key())
      for f in sorted(fs, key=lambda f: (f.span_end, f.revision)):
        self._one(by_name[k[0]], k, key, f)
      if key.clock is not None:
        ends = sorted(e for e in key.log if e > key.clock - self.horizon_ms)[-KEEP_AT_MOST:]
        key.log = {e: key.log[e] for e in ends}

  def _breach(self, r: Rule, v: float) -> bool:
    return v > r.threshold if r.above else v < r.threshold

  def _clear(self, r: Rule, v: float) -> bool:
    return v <= r.clear if r.above else v >= r.clear

  def _emit(self, r, k, key: _Key, f, kind: Optional[str], previous=None) -> None:
    if kind:
      self._count(f'notifications_{kind}')
      self.notes.append(Note(*k, kind, f.span_end, f.revision, f.value, previous))
      key.kind = kind
    self.rows.append(
      Row(
        *k, key.state, key.since, key.resolved_at, key.kind, 'queued' if kind else '', 2 * key.rows
      )
    )
    key.rows += 1

  def _log(self, r: Rule, key: _Key, f, said: str) -> None:
    if r.span == 'now':
      return
    entry = key.log.get(f.span_end)
    if entry is None:
      key.log[f.span_end] = [f.revision, f.value, said]
    else:
      entry[0] = f.revision
      if said in ('breach', 'clear') or entry[2] in ('quiet', 'none'):
        entry[1], entry[2] = f.value, said

  def _one(self, r: Rule, k, key: _Key, f) -> None:
    end = f.span_end
    if r.hours is not None:
      local = datetime.datetime.fromtimestamp(end / 1000, self.zone)
      minute = local.hour * 60 + local.minute
      if not any(a <= minute < b for a, b in r.hours[local.weekday()]):
        self._count('figures_outside_hours')
        if key.state in ('pending', 'firing') and end > key.clock:
          was_firing = key.state == 'firing'
          key.state, key.since = 'resolved', end
          if was_firing:
            key.resolved_at = end
          self._emit(r, k, key, f, 'resolved' if was_firing else None)
        return
    entry = key.log.get(end)
    current = (
      key.clock is None or end > key.clock or (end == key.clock and f.revision > key.clock_rev)
    )
    if not current:
      if entry is None or f.revision <= entry[0]:
        self._count('figures_stale')
        return
      entry[0] = f.revision
      if f.volume < r.min_volume:
        self._count('figures_below_volume')
        return
      self._count('figures_evaluated')
      self._restate(r, k, key, f, entry, missed_ok=True)
      return
    key.clock, key.clock_rev = end, f.revision
    active = key.state in ('pending', 'firing')
    if f.volume < r.min_volume:
      self._count('figures_below_volume')
      self._log(r, key, f, 'none' if active else 'quiet')
      return
    self._count('figures_evaluated')
    breach, notes_before = self._breach(r, f.value), len(self.notes)
    if key.state == 'firing':
      if self._clear(r, f.value):
        key.state, key.since, key.resolved_at = 'resolved', end, end
        self._log(r, key, f, 'clear')
        self._emit(r, k, key, f, 'resolved')
      elif r.repeat_ms > 0 and end >= key.reminded_at + r.repeat_ms:
        key.reminded_at = end
        self._log(r, key, f, 'breach' if breach else 'none')
        self._emit(r, k, key, f, 'reminder')
      else:
        self._log(r, key, f, 'none')
    elif key.state == 'pending':
      if breach and end - key.since >= r.for_ms:
        key.state, key.since, key.reminded_at = 'firing', end, end
        self._log(r, key, f, 'breach')
        self._emit(r, k, key, f, 'firing')
      elif breach:
        self._log(r, key, f, 'none')
      else:
        key.state, key.since = 'resolved', end
        self._log(r, key, f, 'quiet')
        self._emit(r, k, key, f, None)
    elif breach and r.for_ms == 0:
      key.state, key.since, key.reminded_at = 'firing', end, end
      self._log(r, key, f, 'breach')
      self._emit(r, k, key, f, 'firing')
    elif breach:
      key.state, key.since = 'pending', end
      self._log(r, key, f, 'none')
      self._emit(r, k, key, f, None)
    else:
      self._log(r, key, f, 'quiet')
    if len(self.notes) == notes_before and entry is not None and entry[2] in ('breach', 'clear'):
      self._restate(r, k, key, f, entry, missed_ok=False)

  def _restate(self, r: Rule, k, key: _Key, f, entry: list, missed_ok: bool) -> None:
    said, v = entry[2], f.value
    wrong = (
      (said == 'breach' and not self._breach(r, v))
      or (said == 'clear' and not self._clear(r, v))
      or (missed_ok and said == 'quiet' and self._breach(r, v))
    )
    if wrong:
      previous = entry[1]
      entry[1], entry[2] = v, 'breach' if self._breach(r, v) else 'quiet'
      self._emit(r, k, key, f, 'restated', previous)
    elif said in ('quiet', 'none'):
      entry[1] = v
