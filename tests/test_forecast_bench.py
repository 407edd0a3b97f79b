"""The forecast benchmark (scripts/bench/forecast.py) on a tiny input, and
the day simulator it rests on (testing/datagen/forecast_days.py): what the
simulator records adds up, the same seed gives the same report, every
interval is scored or counted, and a center staffed far above its traffic
neither breaches nor is predicted to."""

import dataclasses
import json
import random

from scripts.bench import forecast
from testing.datagen.forecast_days import DayShape, simulate_day

MIDNIGHT_MS = forecast.FIRST_MIDNIGHT_MS


def test_every_call_is_answered_or_abandoned_and_every_answer_handled():
  day = simulate_day(random.Random(5), MIDNIGHT_MS)
  windows = day.windows.values()
  offered = sum(w.offered for w in windows)
  answered = sum(w.answered for w in windows)
  assert offered > 500
  assert offered == answered + sum(w.abandoned for w in windows)
  assert sum(w.handled for w in windows) == answered
  assert all(w.answered_within <= w.answered for w in windows)
  # Work seconds: about AHT per handled contact (the day's AHT is 0.9 to
  # 1.15 times the shape's 240 s).
  aht = sum(w.work_seconds for w in windows) / answered
  assert 180 < aht < 320
  # A staffed count at every window boundary of the opening hours.
  assert sorted(day.staffed) == list(range(day.open_ms, day.close_ms + 1, 300_000))


def test_the_same_seed_gives_the_same_report():
  first = forecast.run(2, 3)
  assert first == forecast.run(2, 3)
  assert first != forecast.run(2, 4)


def test_every_interval_is_scored_or_counted_without_a_forecast():
  report = forecast.run(2, 3)
  assert report['intervals'] == 2 * 24  # 08:00 to 20:00, half hours
  assert set(report['by_lead_minutes']) == {'20', '15', '10'}
  for lead in report['by_lead_minutes'].values():
    score = lead['forecast']
    counted = sum(score[k] for k in ('true_positives', 'false_positives', 'false_negatives'))
    assert counted + score['true_negatives'] == lead['scored']
    assert lead['scored'] + sum(lead['no_forecast'].values()) == report['intervals']
    actual = score['true_positives'] + score['false_negatives']
    assert actual <= report['actual_breaches']
    assert 0 <= score['mae'] <= 1


def test_a_center_staffed_far_above_its_traffic_is_never_predicted_to_breach():
  shape = dataclasses.replace(DayShape(), staffing_beta=5.0, short_share=0.0)
  report = forecast.run(2, 3, shape=shape)
  assert report['actual_breaches'] == 0
  for lead in report['by_lead_minutes'].values():
    assert lead['forecast']['false_positives'] == 0
    assert lead['unstable'] == 0


def test_the_command_prints_its_report_as_json(capsys):
  forecast.main(['--days', '1', '--seed', '2'])
  report = json.loads(capsys.readouterr().out)
  assert report['command'] == 'python -m scripts.bench.forecast --days 1 --seed 2'
  assert report['days'] == 1


def test_the_patience_flag_is_in_the_command_that_reproduces_the_report(capsys):
  forecast.main(['--days', '1', '--seed', '2', '--patience_seconds', '600'])
  report = json.loads(capsys.readouterr().out)
  assert (
    report['command'] == 'python -m scripts.bench.forecast --days 1 --seed 2 --patience_seconds 600'
  )
  assert report['patience_seconds'] == 600
  for lead in report['by_lead_minutes'].values():
    stable = lead['forecast_when_stable']
    assert (
      sum(
        stable[k]
        for k in ('true_positives', 'false_positives', 'false_negatives', 'true_negatives')
      )
      + lead['unstable']
      == lead['scored']
    )
