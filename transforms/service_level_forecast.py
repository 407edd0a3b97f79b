"""ForecastServiceLevel: the service level each queue and channel will end
its current interval at, projected with Erlang C while there is time to act.

One state per (queue, channel), its natural key, fed three inputs tagged
and flattened into one stateful step:
- `abandon_metrics` (AbandonMetrics panes): per window, the calls offered
  (`total_calls`) and answered within the target (`answered_within_sl`);
- `agent_status` (AgentStatus rows): the staffed agents, available + on a
  contact + in after-contact work (not ready agents take no calls);
- `agent_metrics` (AgentMetrics panes): per window, handled contacts and
  their work (talk + hold + after-contact work), giving the recent AHT.

The key's clock is the latest event time its inputs prove: the end of a
window with an ON_TIME or LATE pane, the `as_of` of an agent row, the start
of a window with an EARLY pane. The current interval is the one holding
the clock, aligned on the local clock of `timezone` (each half hour, say).
The windows closed are those the call panes alone prove closed: agent rows
come as agents change, ahead of the ON_TIME pane of the window they end,
and that window is not empty for want of its pane. On each update,
`forecast_interval` projects (docs/forecast.md):

  observed   the latest pane of each window of the interval (EARLY panes
             included: the figures so far);
  rate       calls offered per second over the closed windows of the last
             `arrival_lookback` (a closed window without a pane had no
             call), from the key's first window at the earliest;
  expected   rate × (interval end - the end of the last closed window),
             less the calls already seen in open windows (EARLY panes);
  Erlang C   each expected call is answered within `service_level_seconds`
             with the probability SL(N, λ·AHT, T) (transforms/erlang_c.py),
             N the staffed agents now, AHT over the windows held;
  value      (answered within so far + expected × SL) / (offered so far +
             expected): the default definition, answered within target
             over offered (transforms/metric_definitions.py).

Assumptions, so the figure is read for what it is: Poisson arrivals and
exponential handle times; no abandonment in Erlang C, so with callers who
give up it is pessimistic (a queue past its staffing shows 0 % for the
rest of the interval, where callers abandoning would let some be answered
in time); steady state from now to the interval's end (no ramp, no
backlog: the contacts waiting now are not added); the staffed agents stay
as they are and serve this queue only (agents shared across queues are
counted in each).

Bounded state: the windows of the current interval and of the lookback,
the latest agent row, the last figure. A key without AHT, agents, a closed
window to measure the rate on, or any call, writes no figure and counts
why (`no_aht`, `no_agents`, `no_rate`, `no_calls`); a pane of a window
older than the state holds is counted (`stale_panes`) and dropped.
"""

import datetime
import math
import zoneinfo
from typing import Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Union

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.utils.timestamp import Duration

from options.config import checked_millis
from transforms.agent_status import place_key
from transforms.batching import BatchPerKey
from transforms.erlang_c import service_level
from transforms.records import (
  SPAN_INTERVAL,
  AbandonMetrics,
  AgentMetrics,
  AgentStatus,
  AlertFigure,
)
from transforms.state_coders import VersionedStateCoder
from transforms.windowing import EARLY_PANE

METRIC = 'predicted_service_level'
ABANDON_METRICS = 'abandon_metrics'
AGENT_STATUS = 'agent_status'
AGENT_METRICS = 'agent_metrics'

# Why no figure could be projected (`forecast_interval`), each a counter.
NO_AHT = 'no_aht'
NO_AGENTS = 'no_agents'
NO_RATE = 'no_rate'
NO_CALLS = 'no_calls'
_DAY_MS = 86_400_000


def interval_bounds(at_ms: int, interval_ms: int, zone: zoneinfo.ZoneInfo) -> Tuple[int, int]:
  """[start, end) (epoch ms) of the interval holding `at_ms`: intervals of
  `interval_ms` from local midnight in `zone`, by the UTC offset in force at
  `at_ms`. Every interval lasts `interval_ms`, even across an offset
  change."""
  local = datetime.datetime.fromtimestamp(at_ms / 1000, tz=zone)
  offset_ms = int(local.utcoffset().total_seconds() * 1000)
  start = at_ms - (at_ms + offset_ms) % interval_ms
  return start, start + interval_ms


def staffed_agents(status: AgentStatus) -> int:
  """The agents who take calls: available, on a contact or wrapping one up."""
  return status.available + status.on_contact + status.after_contact_work


def window_horizon(
  calls_through_ms: int, interval_start_ms: int, window_ms: int, lookback_ms: int
) -> int:
  """The start of the oldest window a projection reads (see
  `forecast_interval`): the interval's first, or the lookback's before it.
  Older windows are dropped from the state."""
  return min(interval_start_ms, calls_through_ms - calls_through_ms % window_ms - lookback_ms)


def average_handle_time(work: Mapping[int, Tuple[int, float]]) -> Optional[float]:
  """Work seconds over handled contacts of the windows `work` (window
  start -> (handled, work seconds)); None when they handled none."""
  handled = sum(h for h, _ in work.values())
  return sum(w for _, w in work.values()) / handled if handled else None


class Projection(NamedTuple):
  """One projection of an interval's final service level.

  `service_level`: projected answered within target over offered (0..1);
  `offered`: calls projected offered in the interval (so far + expected);
  `expected_calls`: of which still to come; `arrivals_per_second`,
  `aht_seconds`, `agents`: the Erlang C inputs; `expected_service_level`:
  Erlang C's share of the expected calls answered within target.
  """

  service_level: float
  offered: float
  expected_calls: float
  arrivals_per_second: float
  aht_seconds: float
  agents: int
  expected_service_level: float


def forecast_interval(
  *,
  calls_through_ms: int,
  interval_start_ms: int,
  interval_end_ms: int,
  window_ms: int,
  since_ms: int,
  calls: Mapping[int, Tuple[int, int]],
  work: Mapping[int, Tuple[int, float]],
  agents: Optional[int],
  aht_fallback: Optional[float],
  lookback_ms: int,
  service_level_seconds: float,
) -> Union[Projection, str]:
  """The projection of the interval [interval_start_ms, interval_end_ms),
  or why there is none (NO_AHT, NO_AGENTS, NO_RATE, NO_CALLS). The one
  function of the step and of the benchmark (scripts/bench/forecast.py).

  `calls`: window start -> (offered, answered within target), the latest
  pane of each window; `calls_through_ms`: the event time the call panes
  are known through (the end of the latest window with an ON_TIME or LATE
  pane, the start of one with an EARLY pane only): windows ending by then
  are closed, a closed window without a pane had no call; `work`: window
  start -> (handled contacts, work seconds); windows of `window_ms` on the
  grid from epoch 0; `since_ms`: the start of the key's first window (the
  rate is not measured before it); `agents`: staffed agents now, None if
  unknown; `aht_fallback`: the AHT to use when the windows held handled
  nothing (the last one measured), None if none.
  """
  aht = average_handle_time(work) or aht_fallback
  if not aht:
    return NO_AHT
  if agents is None:
    return NO_AGENTS
  # The end of the last closed window: calls before it are all known.
  closed_end = calls_through_ms - calls_through_ms % window_ms
  rate_from = max(closed_end - lookback_ms, since_ms)
  if closed_end <= rate_from:
    return NO_RATE
  recent = sum(c[0] for start, c in calls.items() if rate_from <= start < closed_end)
  rate = recent / ((closed_end - rate_from) / 1000)
  offered = within = seen_open = 0
  for start, (total, answered_within) in calls.items():
    if interval_start_ms <= start < interval_end_ms:
      offered += total
      within += answered_within
      if start >= closed_end:
        seen_open += total
  remaining_s = max(0, interval_end_ms - max(closed_end, interval_start_ms)) / 1000
  expected = max(0.0, rate * remaining_s - seen_open)
  if offered + expected <= 0:
    return NO_CALLS
  expected_sl = service_level(agents, rate * aht, service_level_seconds, aht)
  return Projection(
    service_level=(within + expected * expected_sl) / (offered + expected),
    offered=offered + expected,
    expected_calls=expected,
    arrivals_per_second=rate,
    aht_seconds=aht,
    agents=agents,
    expected_service_level=expected_sl,
  )


class _KeyState:
  """One queue and channel: its windows, agents, clock and last figure."""

  __slots__ = (
    'window_ms',
    'since',
    'clock',
    'calls_through',
    'calls',
    'work',
    'agents',
    'aht',
    'interval_end',
    'revision',
    'last_figure',
  )

  def __init__(self):
    self.window_ms: Optional[int] = None
    # The start of the key's first window, and its clock (epoch ms): the
    # latest event time of all three inputs, which places the interval.
    self.since: Optional[int] = None
    self.clock: Optional[int] = None
    # The call panes' own clock (see forecast_interval): agent rows come as
    # agents change, ahead of the ON_TIME panes of the windows they close.
    self.calls_through: Optional[int] = None
    # Window start -> [offered, answered within, pane index].
    self.calls: Dict[int, List] = {}
    # Window start -> [handled, work seconds, pane index].
    self.work: Dict[int, List] = {}
    # [staffed agents, revision] of the latest agent row, or None.
    self.agents: Optional[List[int]] = None
    # The last AHT measured: used while the windows held handled nothing.
    self.aht: Optional[float] = None
    # The interval of the last figure, its revision and [value, volume].
    self.interval_end: Optional[int] = None
    self.revision = -1
    self.last_figure: Optional[List] = None


def _to_plain(state: _KeyState) -> list:
  return [
    state.window_ms,
    state.since,
    state.clock,
    state.calls_through,
    [[start, *c] for start, c in state.calls.items()],
    [[start, *w] for start, w in state.work.items()],
    state.agents,
    state.aht,
    state.interval_end,
    state.revision,
    state.last_figure,
  ]


def _from_plain_v1(plain: list) -> _KeyState:
  state = _KeyState()
  state.window_ms, state.since, state.clock, state.calls_through, calls, work = plain[:6]
  state.agents, state.aht, state.interval_end, state.revision, state.last_figure = plain[6:11]
  state.calls = {start: list(c) for start, *c in calls}
  state.work = {start: list(w) for start, *w in work}
  return state


# Format v1: [window ms, since, clock, calls through, [[window start,
# offered, answered within, pane index], ...], [[window start, handled, work
# seconds, pane index], ...], [staffed, revision] or null, last AHT or null,
# interval end of the last figure, its revision, [value, volume] or null]
# (each null until known; docs/forecast.md).
FORECAST_STATE_CODER = VersionedStateCoder(
  'service level forecast', 1, _to_plain, {1: _from_plain_v1}
)


class _Settings(NamedTuple):
  interval_ms: int
  timezone: str
  service_level_seconds: float
  lookback_ms: int
  queue_names: Mapping[str, str]


def _event_time_ms(tagged: Tuple[str, NamedTuple]) -> int:
  tag, record = tagged
  return record.as_of if tag == AGENT_STATUS else record.window_start


def _later(clock: Optional[int], known: int) -> int:
  return known if clock is None else max(clock, known)


def _key(tagged: Tuple[str, NamedTuple]) -> str:
  record = tagged[1]
  return place_key(record.queue_id, record.channel)


class _ForecastFn(beam.DoFn):
  STATE = ReadModifyWriteStateSpec('forecast_state', FORECAST_STATE_CODER)

  def __init__(self, settings: _Settings, metrics_namespace: str):
    self._settings = settings
    self._zone: Optional[zoneinfo.ZoneInfo] = None
    self._missing = {
      reason: Metrics.counter(metrics_namespace, reason)
      for reason in (NO_AHT, NO_AGENTS, NO_RATE, NO_CALLS)
    }
    self._stale_panes = Metrics.counter(metrics_namespace, 'stale_panes')
    self._figures = Metrics.counter(metrics_namespace, 'figures')

  def setup(self):
    self._zone = zoneinfo.ZoneInfo(self._settings.timezone)

  def process(
    self,
    batch: Tuple[str, List[Tuple[str, NamedTuple]]],
    state=beam.DoFn.StateParam(STATE),
  ) -> Iterator[AlertFigure]:
    key, tagged = batch
    keyed = state.read() or _KeyState()
    for tag, record in tagged:
      if tag == AGENT_STATUS:
        self._agents(keyed, record)
      else:
        self._pane(keyed, tag, record)
    # Every record moves the clock but a stale pane, which needs a clock.
    start, end = interval_bounds(keyed.clock, self._settings.interval_ms, self._zone)
    self._prune(keyed)
    yield from self._figure(key, keyed, start, end)
    state.write(keyed)

  def _agents(self, keyed: _KeyState, status: AgentStatus) -> None:
    if keyed.agents is None or status.revision > keyed.agents[1]:
      keyed.agents = [staffed_agents(status), status.revision]
    keyed.clock = _later(keyed.clock, status.as_of)

  def _pane(self, keyed: _KeyState, tag: str, pane: Union[AbandonMetrics, AgentMetrics]) -> None:
    start = pane.window_start
    if keyed.window_ms is None:
      keyed.window_ms = pane.window_end - start
    if keyed.clock is not None and start < self._horizon(keyed):
      self._stale_panes.inc()
      return
    keyed.since = start if keyed.since is None else min(keyed.since, start)
    known = pane.window_start if pane.pane_timing == EARLY_PANE else pane.window_end
    keyed.clock = _later(keyed.clock, known)
    if tag == ABANDON_METRICS:
      keyed.calls_through = _later(keyed.calls_through, known)
      held = keyed.calls.get(start)
      if held is None or pane.pane_index > held[2]:
        keyed.calls[start] = [pane.total_calls, pane.answered_within_sl, pane.pane_index]
    else:
      held = keyed.work.get(start)
      if held is None or pane.pane_index > held[2]:
        work = pane.talk_seconds + pane.hold_seconds + pane.after_contact_work_seconds
        keyed.work[start] = [pane.handled_contacts, work, pane.pane_index]

  def _horizon(self, keyed: _KeyState) -> int:
    start, _ = interval_bounds(keyed.clock, self._settings.interval_ms, self._zone)
    # The call panes' clock is never ahead of the key's (it is one of its
    # inputs); before any, the key's.
    through = keyed.clock if keyed.calls_through is None else keyed.calls_through
    return window_horizon(through, start, keyed.window_ms, self._settings.lookback_ms)

  def _prune(self, keyed: _KeyState) -> None:
    if keyed.window_ms is None:
      return  # no pane yet: no window held
    horizon = self._horizon(keyed)
    keyed.calls = {s: c for s, c in keyed.calls.items() if s >= horizon}
    keyed.work = {s: w for s, w in keyed.work.items() if s >= horizon}

  def _figure(self, key: str, keyed: _KeyState, start: int, end: int) -> Iterator[AlertFigure]:
    work = {s: (w[0], w[1]) for s, w in keyed.work.items()}
    keyed.aht = average_handle_time(work) or keyed.aht
    if keyed.calls_through is None:
      self._missing[NO_RATE].inc()  # no call pane yet
      return
    projection = forecast_interval(
      calls_through_ms=keyed.calls_through,
      interval_start_ms=start,
      interval_end_ms=end,
      window_ms=keyed.window_ms,
      since_ms=keyed.since,
      calls={s: (c[0], c[1]) for s, c in keyed.calls.items()},
      work=work,
      agents=None if keyed.agents is None else keyed.agents[0],
      aht_fallback=keyed.aht,
      lookback_ms=self._settings.lookback_ms,
      service_level_seconds=self._settings.service_level_seconds,
    )
    if isinstance(projection, str):
      self._missing[projection].inc()
      return
    figure = [round(projection.service_level, 4), math.ceil(projection.offered - 1e-9)]
    if keyed.interval_end != end:
      keyed.interval_end, keyed.revision, keyed.last_figure = end, -1, None
    if figure == keyed.last_figure:
      return
    keyed.last_figure = figure
    keyed.revision += 1
    self._figures.inc()
    channel, _, queue_id = key.partition('|')
    yield AlertFigure(
      metric=METRIC,
      queue_id=queue_id,
      channel=channel,
      span=SPAN_INTERVAL,
      span_end=end,
      value=figure[0],
      volume=figure[1],
      revision=keyed.revision,
      queue_name=self._settings.queue_names.get(queue_id, queue_id),
    )


class ForecastServiceLevel(beam.PTransform):
  """The projected service level at the end of each queue's current
  interval (Erlang C; the method and its assumptions in the module
  docstring and docs/forecast.md).

  Input: a dict of PCollections in the global window:
    `abandon_metrics`: AbandonMetrics panes (AbandonRate's `rows`);
    `agent_status`: AgentStatus rows (AgentStatusPerQueue);
    `agent_metrics`: AgentMetrics panes (AgentMetricsPerQueue's `rows`).
  Output: PCollection[AlertFigure], metric 'predicted_service_level', span
  'interval', `span_end` the interval's end, `value` the projected service
  level (0..1, 4 places), `volume` the calls projected offered in the
  interval (rounded up); a figure per (queue, channel) whenever an input
  changes it, `revision` 0, 1, ... per key and interval.
  `interval`: the interval's length, dividing a day (e.g. 30 minutes),
  aligned on local midnight in `timezone` (an IANA name);
  `service_level_seconds`: the answer-time target; `arrival_lookback`: how
  far back the arrival rate is measured (e.g. 15 minutes).
  """

  def __init__(
    self,
    *,
    interval: Duration,
    timezone: str,
    service_level_seconds: float,
    arrival_lookback: Duration,
    queue_names: Optional[Mapping[str, str]] = None,
    metrics_namespace: str = 'service_level_forecast',
  ):
    super().__init__()
    interval_ms = checked_millis(interval, 'forecast interval', zero_ok=False)
    if _DAY_MS % interval_ms:
      raise ValueError(f'forecast interval must divide a day, got {interval!r}')
    try:
      zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
      raise ValueError(f'unknown time zone {timezone!r}; give an IANA name') from None
    if not service_level_seconds >= 0:
      raise ValueError(f'service_level_seconds must be >= 0, got {service_level_seconds}')
    self._fn = _ForecastFn(
      _Settings(
        interval_ms=interval_ms,
        timezone=timezone,
        service_level_seconds=service_level_seconds,
        lookback_ms=checked_millis(arrival_lookback, 'arrival lookback', zero_ok=False),
        queue_names=dict(queue_names or {}),
      ),
      metrics_namespace,
    )

  def expand(self, inputs):
    missing = {ABANDON_METRICS, AGENT_STATUS, AGENT_METRICS} - set(inputs)
    if missing:
      raise ValueError(f'ForecastServiceLevel needs inputs {sorted(missing)}')
    tagged = [
      inputs[tag] | f'Tag[{tag}]' >> beam.Map(lambda record, tag=tag: (tag, record))
      for tag in (ABANDON_METRICS, AGENT_STATUS, AGENT_METRICS)
    ]
    return (
      tagged
      | 'Merge' >> beam.Flatten()
      | 'BatchPerQueue' >> BatchPerKey(_key, _event_time_ms, str)
      | 'Forecast' >> beam.ParDo(self._fn).with_output_types(AlertFigure)
    )
