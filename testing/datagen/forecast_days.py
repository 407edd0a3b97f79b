"""Seeded simulator of contact-center days, the ground truth the service
level forecast is benchmarked on (scripts/bench/forecast.py).

One queue, one day at a time, event by event (arrivals, answers, ends of
handling, abandons, staffing changes):

* arrivals: a Poisson process whose rate follows a planned profile with a
  morning and an afternoon peak, times a factor of the day (the day is
  busier or quieter than planned) and of each window;
* staffing: per interval, the agents the planned rate needs by the
  square-root staffing rule (N = A + β·√A, a common rule of thumb, not
  Erlang C: the simulator does not share the model it judges); some
  intervals fall short of the plan, from their start or from a moment
  inside them (a meeting, an outage); agents leaving finish their call;
* handle times: exponential, around an AHT of the day;
* callers wait first come first served and abandon when their patience
  (exponential) runs out before an agent takes them.

It records what the job's inputs would say: per window, the calls leaving
the queue (offered, answered, answered within the target, abandoned: by
the time they left, as AbandonMetrics counts them), the contacts whose
handling ended there and the agents' work seconds in it (AgentMetrics),
and at every window boundary the staffed agents (AgentStatus: available,
on a contact or wrapping up, so an agent scheduled off but still on a call
counts).

Everything is drawn from the `random.Random` given: the same seed gives
the same days. Stdlib only, and nothing from the pipeline code.
"""

from __future__ import annotations

import collections
import heapq
import math
import random
from dataclasses import dataclass
from typing import Deque, Dict, List, NamedTuple, Tuple

_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class DayShape:
  """The parameters of a simulated day (times in ms from the day's
  midnight, durations in seconds unless named otherwise)."""

  open_ms: int = 8 * _HOUR_MS
  close_ms: int = 20 * _HOUR_MS
  window_ms: int = 300_000
  interval_ms: int = 1_800_000
  service_level_seconds: float = 20.0
  # Planned calls per second at the busiest moment of the profile.
  peak_rate: float = 0.09
  aht_seconds: float = 240.0
  patience_seconds: float = 120.0
  # The square-root staffing rule's β: N = ceil(A + β·√A).
  staffing_beta: float = 1.0
  # The day's volume against plan: uniform in this range.
  day_factor: Tuple[float, float] = (0.85, 1.2)
  # Each window's volume against the day's: uniform in this range.
  window_factor: Tuple[float, float] = (0.85, 1.15)
  # The day's AHT against plan: uniform in this range.
  aht_factor: Tuple[float, float] = (0.9, 1.15)
  # The share of intervals staffed short, and by how much (a share of the
  # plan, uniform in the range); of those, the share that fall short from
  # a moment inside the interval rather than from its start.
  short_share: float = 0.3
  shortfall: Tuple[float, float] = (0.1, 0.35)
  mid_interval_share: float = 0.5


class WindowCounts(NamedTuple):
  """What one window of the day recorded."""

  offered: int
  answered: int
  answered_within: int
  abandoned: int
  handled: int
  work_seconds: float


class SimulatedDay(NamedTuple):
  """One simulated day (epoch ms): `windows` by window start (windows
  without any event are absent, as the job writes no pane for them);
  `staffed`: the staffed agents at each window boundary from opening to
  closing; `planned_agents`: the plan per interval start."""

  open_ms: int
  close_ms: int
  windows: Dict[int, WindowCounts]
  staffed: Dict[int, int]
  planned_agents: Dict[int, int]


def planned_rate(shape: DayShape, at_ms: int) -> float:
  """Planned calls per second at `at_ms` from midnight: a base load with a
  morning peak around 10:30 and an afternoon one around 14:30."""
  hour = at_ms / _HOUR_MS
  profile = (
    0.35 + math.exp(-(((hour - 10.5) / 1.3) ** 2)) + 0.75 * math.exp(-(((hour - 14.5) / 1.5) ** 2))
  )
  return shape.peak_rate * profile / 1.36  # the profile's maximum is about 1.36


def square_root_staffing(traffic: float, beta: float) -> int:
  """Agents for `traffic` erlangs by the square-root staffing rule."""
  return max(1, math.ceil(traffic + beta * math.sqrt(traffic)))


_ARRIVAL, _END, _STAFF, _SAMPLE = range(4)


class _Tally:
  """Per-window counters: [offered, answered, within, abandoned, handled,
  work seconds]."""

  def __init__(self, window_ms: int):
    self.window_ms = window_ms
    self.windows: Dict[int, List[float]] = {}

  def _of(self, at_ms: float) -> List[float]:
    start = int(at_ms) - int(at_ms) % self.window_ms
    slot = self.windows.get(start)
    if slot is None:
      slot = self.windows[start] = [0, 0, 0, 0, 0, 0.0]
    return slot

  def answered(self, at_ms: float, waited_s: float, target_s: float) -> None:
    slot = self._of(at_ms)
    slot[0] += 1
    slot[1] += 1
    slot[2] += waited_s <= target_s

  def abandoned(self, at_ms: float) -> None:
    slot = self._of(at_ms)
    slot[0] += 1
    slot[3] += 1

  def handled(self, start_ms: float, end_ms: float) -> None:
    self._of(end_ms)[4] += 1
    at = start_ms
    while at < end_ms:  # the work seconds of each window it spans
      boundary = int(at) - int(at) % self.window_ms + self.window_ms
      upto = min(end_ms, boundary)
      self._of(at)[5] += (upto - at) / 1000
      at = upto


def simulate_day(
  rng: random.Random, midnight_ms: int, shape: DayShape = DayShape()
) -> SimulatedDay:
  """One day from `midnight_ms` (epoch ms of its midnight)."""
  open_ms, close_ms = midnight_ms + shape.open_ms, midnight_ms + shape.close_ms
  day_factor = rng.uniform(*shape.day_factor)
  aht_s = shape.aht_seconds * rng.uniform(*shape.aht_factor)
  events: List[Tuple[float, int, int, float]] = []
  seq = 0

  def push(at: float, kind: int, value: float = 0.0) -> None:
    nonlocal seq
    heapq.heappush(events, (at, seq, kind, value))
    seq += 1

  # Arrivals, window by window at the window's rate.
  for start in range(open_ms, close_ms, shape.window_ms):
    rate = planned_rate(shape, start - midnight_ms) * day_factor
    rate *= rng.uniform(*shape.window_factor)
    at = start + rng.expovariate(rate) * 1000
    while at < start + shape.window_ms:
      push(at, _ARRIVAL)
      at += rng.expovariate(rate) * 1000
  # Staffing per interval, by the plan, some intervals short.
  planned: Dict[int, int] = {}
  for start in range(open_ms, close_ms, shape.interval_ms):
    middle = start + shape.interval_ms // 2 - midnight_ms
    agents = planned[start] = square_root_staffing(
      planned_rate(shape, middle) * shape.aht_seconds, shape.staffing_beta
    )
    push(start, _STAFF, agents)
    if rng.random() < shape.short_share:
      short = max(1, round(agents * rng.uniform(*shape.shortfall)))
      at = start
      if rng.random() < shape.mid_interval_share:
        at = start + rng.uniform(0.15, 0.85) * shape.interval_ms
      push(at, _STAFF, agents - short)
  for boundary in range(open_ms, close_ms + 1, shape.window_ms):
    push(boundary, _SAMPLE)

  tally = _Tally(shape.window_ms)
  staffed: Dict[int, int] = {}
  # Callers waiting: (arrival ms, the ms their patience runs out).
  queue: Deque[Tuple[float, float]] = collections.deque()
  agents = busy = 0

  def dispatch(now: float) -> None:
    nonlocal busy
    while busy < agents and queue:
      arrived, gives_up = queue.popleft()
      if gives_up < now:
        tally.abandoned(gives_up)  # left before an agent was free
        continue
      tally.answered(now, (now - arrived) / 1000, shape.service_level_seconds)
      busy += 1
      ends = now + rng.expovariate(1 / aht_s) * 1000
      tally.handled(now, ends)
      push(ends, _END)

  while events:
    now, _, kind, value = heapq.heappop(events)
    if kind == _ARRIVAL:
      queue.append((now, now + rng.expovariate(1 / shape.patience_seconds) * 1000))
    elif kind == _END:
      busy -= 1
    elif kind == _STAFF:
      agents = int(value)
    else:
      staffed[int(now)] = max(agents, busy)
    dispatch(now)
  for _, gives_up in queue:  # nobody free before their patience ran out
    tally.abandoned(gives_up)
  windows = {
    start: WindowCounts(int(o), int(a), int(w), int(ab), int(h), float(s))
    for start, (o, a, w, ab, h, s) in sorted(tally.windows.items())
  }
  return SimulatedDay(open_ms, close_ms, windows, staffed, planned)
