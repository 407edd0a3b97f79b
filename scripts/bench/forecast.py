#!/usr/bin/env python3
"""How well the service level forecast predicts breaches (not a test):

    .venv/bin/python -m scripts.bench.forecast [--days 200 --seed 1]

Simulates `--days` contact-center days (testing/datagen/forecast_days.py),
then, for every interval of every day and each lead time (20, 15 and 10
minutes before the interval ends), projects the interval's final service
level with `forecast_interval`, the very function the job's
ForecastServiceLevel step calls, from what the job would know then: the
closed windows' counts, the work of the windows its state holds, the
staffed agents at that moment. Compared with the service level the day
then ended the interval at:

  breach      final service level < --target (0.8): predicted vs actual,
              as counts (true/false positives/negatives), precision,
              recall and accuracy;
  mae         mean absolute error of the projected service level, and
              mean_error its bias (projected - actual: < 0 pessimistic);
  unstable    projections with fewer staffed agents than erlangs offered,
              where Erlang C gives the calls to come 0 % in time; the
              scores of the others again as forecast_when_stable;
  baseline    the same for the service level so far (the closed windows
              of the interval), the figure a wallboard already shows.

Intervals without a projection are counted by reason, not scored.
Prints one JSON object.
"""

import argparse
import json
import random
import sys
import zoneinfo
from typing import Dict, List, Optional, Sequence

from testing.datagen.forecast_days import DayShape, SimulatedDay, simulate_day
from transforms.service_level_forecast import (
  Projection,
  average_handle_time,
  forecast_interval,
  interval_bounds,
  window_horizon,
)

LEAD_MINUTES = (20, 15, 10)
# 2026-11-02T00:00Z: the first simulated midnight.
FIRST_MIDNIGHT_MS = 1_793_577_600_000
_DAY_MS = 86_400_000
_MIN_MS = 60_000


class _Score:
  """Breach confusion counts and absolute errors of one predictor."""

  def __init__(self):
    self.tp = self.fp = self.fn = self.tn = 0
    # predicted - actual, per interval scored.
    self.errors: List[float] = []

  def add(self, predicted: float, actual: float, target: float) -> None:
    said, was = predicted < target, actual < target
    self.tp += said and was
    self.fp += said and not was
    self.fn += was and not said
    self.tn += not said and not was
    self.errors.append(predicted - actual)

  def report(self) -> dict:
    n = len(self.errors)
    return {
      'true_positives': self.tp,
      'false_positives': self.fp,
      'false_negatives': self.fn,
      'true_negatives': self.tn,
      'precision': _ratio(self.tp, self.tp + self.fp),
      'recall': _ratio(self.tp, self.tp + self.fn),
      'accuracy': _ratio(self.tp + self.tn, n),
      'mae': round(sum(abs(e) for e in self.errors) / n, 4) if n else None,
      'mean_error': round(sum(self.errors) / n, 4) if n else None,
    }


def _ratio(numerator: int, denominator: int) -> Optional[float]:
  return round(numerator / denominator, 4) if denominator else None


def _interval_service_level(day: SimulatedDay, start: int, end: int, upto: int) -> tuple:
  """(offered, answered within) of the windows in [start, min(end, upto))."""
  offered = within = 0
  for window_start, counts in day.windows.items():
    if start <= window_start < min(end, upto):
      offered += counts.offered
      within += counts.answered_within
  return offered, within


def _command(days: int, seed: int, shape: DayShape) -> str:
  """The command that reproduces a report (the shape's other parameters
  are the defaults: the command line sets only the patience)."""
  command = f'python -m scripts.bench.forecast --days {days} --seed {seed}'
  if shape.patience_seconds != DayShape.patience_seconds:
    command += f' --patience_seconds {shape.patience_seconds:g}'
  return command


def run(
  days: int,
  seed: int,
  *,
  shape: DayShape = DayShape(),
  target: float = 0.8,
  lookback_minutes: int = 15,
  leads: Sequence[int] = LEAD_MINUTES,
) -> dict:
  rng = random.Random(seed)
  utc = zoneinfo.ZoneInfo('UTC')
  lookback_ms = lookback_minutes * _MIN_MS
  window_ms = shape.window_ms
  forecast = {lead: _Score() for lead in leads}
  stable = {lead: _Score() for lead in leads}
  baseline = {lead: _Score() for lead in leads}
  missing: Dict[int, Dict[str, int]] = {lead: {} for lead in leads}
  unstable = {lead: 0 for lead in leads}
  intervals = actual_breaches = 0
  for d in range(days):
    day = simulate_day(rng, FIRST_MIDNIGHT_MS + d * _DAY_MS, shape)
    aht_fallback: Optional[float] = None
    for start in range(day.open_ms, day.close_ms, shape.interval_ms):
      end = start + shape.interval_ms
      offered, within = _interval_service_level(day, start, end, end)
      if not offered:
        continue
      actual = within / offered
      intervals += 1
      actual_breaches += actual < target
      for lead in sorted(leads, reverse=True):  # in time order
        clock = end - lead * _MIN_MS
        # What the job's state would hold at `clock`: closed windows only
        # (the simulator's windows are final, as ON_TIME panes are).
        horizon = window_horizon(
          clock, interval_bounds(clock, shape.interval_ms, utc)[0], window_ms, lookback_ms
        )
        held = [s for s in day.windows if horizon <= s and s + window_ms <= clock]
        calls = {s: (day.windows[s].offered, day.windows[s].answered_within) for s in held}
        work = {s: (day.windows[s].handled, day.windows[s].work_seconds) for s in held}
        aht_fallback = average_handle_time(work) or aht_fallback
        projection = forecast_interval(
          calls_through_ms=clock,
          interval_start_ms=start,
          interval_end_ms=end,
          window_ms=window_ms,
          since_ms=day.open_ms,
          calls=calls,
          work=work,
          agents=day.staffed[clock],
          aht_fallback=aht_fallback,
          lookback_ms=lookback_ms,
          service_level_seconds=shape.service_level_seconds,
        )
        if not isinstance(projection, Projection):
          missing[lead][projection] = missing[lead].get(projection, 0) + 1
          continue
        forecast[lead].add(projection.service_level, actual, target)
        traffic = projection.arrivals_per_second * projection.aht_seconds
        if projection.agents <= traffic:
          unstable[lead] += 1
        else:
          stable[lead].add(projection.service_level, actual, target)
        so_far_offered, so_far_within = _interval_service_level(day, start, end, clock)
        so_far = so_far_within / so_far_offered if so_far_offered else 1.0
        baseline[lead].add(so_far, actual, target)
  return {
    'command': _command(days, seed, shape),
    'days': days,
    'seed': seed,
    'target': target,
    'service_level_seconds': shape.service_level_seconds,
    'patience_seconds': shape.patience_seconds,
    'interval_minutes': shape.interval_ms // _MIN_MS,
    'window_minutes': window_ms // _MIN_MS,
    'arrival_lookback_minutes': lookback_minutes,
    'intervals': intervals,
    'actual_breaches': actual_breaches,
    'by_lead_minutes': {
      str(lead): {
        'scored': len(forecast[lead].errors),
        'no_forecast': missing[lead],
        'unstable': unstable[lead],
        'forecast': forecast[lead].report(),
        'forecast_when_stable': stable[lead].report(),
        'baseline_so_far': baseline[lead].report(),
      }
      for lead in leads
    },
  }


def main(argv: Optional[List[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--days', type=int, default=200, help='simulated days (default 200)')
  parser.add_argument('--seed', type=int, default=1, help='random seed (default 1)')
  parser.add_argument(
    '--patience_seconds',
    type=float,
    default=DayShape.patience_seconds,
    help='mean patience of the simulated callers (default %(default)s); a very '
    'large value is a center where nobody abandons, as Erlang C assumes',
  )
  args = parser.parse_args(argv)
  if args.days < 1:
    parser.error('--days must be >= 1')
  if not args.patience_seconds > 0:
    parser.error('--patience_seconds must be > 0')
  shape = DayShape(patience_seconds=args.patience_seconds)
  json.dump(run(args.days, args.seed, shape=shape), sys.stdout, indent=2)
  sys.stdout.write('\n')


if __name__ == '__main__':
  main()
