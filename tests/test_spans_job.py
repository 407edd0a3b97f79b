"""The main job's rolling and daily figures against the plain-Python
reference (testing/reference/spans.py), on both runners: generated calls
across a local midnight in Europe/Berlin on the night its clocks go back,
late and duplicated calls included. The reference is fed the job's own
final panes (abandon_metrics, each window's latest pane), so this checks
the wiring of the two steps into the job and that the end of the input
closes nothing before its last panes arrived."""

import datetime
import sqlite3

from pipelines import contact_center
from testing.datagen.calls import write_call_events
from testing.reference.spans import reference_daily, reference_rolling
from tests.support.prism import on_both_runners, runner_flags
from transforms.records import AbandonMetrics, DailyMetrics, RollingMetrics

ZONE = 'Europe/Berlin'
# 20 minutes before local midnight of 2026-10-25, the day of 25 hours.
START_MS = (
  int(datetime.datetime(2026, 10, 24, 21, 40, tzinfo=datetime.timezone.utc).timestamp()) * 1000
)


def _rows(conn: sqlite3.Connection, record: type, table: str) -> list:
  columns = ', '.join(record._fields)
  return [record(*row) for row in conn.execute(f'SELECT {columns} FROM {table}')]


@on_both_runners
def test_rolling_and_daily_figures_equal_the_reference(tmp_path, runner):
  events = tmp_path / 'calls.jsonl'
  write_call_events(str(events), 3000, seed=31, start_ms=START_MS, events_per_second=2, queues=5)
  db = tmp_path / 'out.db'
  contact_center.run(
    [
      f'--call_events={events}',
      f'--sqlite_path={db}',
      f'--timezone={ZONE}',
      '--allowed_lateness_seconds=60',
      *runner_flags(runner),
    ]
  )
  with sqlite3.connect(db) as conn:
    panes = _rows(conn, AbandonMetrics, 'abandon_metrics')
    rolling = _rows(conn, RollingMetrics, 'rolling_metrics')
    daily = _rows(conn, DailyMetrics, 'daily_metrics')

  assert {d.local_date for d in daily} == {'2026-10-24', '2026-10-25'}
  final = sorted(panes, key=lambda p: (p.window_start, p.queue_id, p.channel))
  expected_rolling = reference_rolling(final).rows
  assert {(r.queue_id, r.channel, r.span, r.span_end): r for r in rolling} == expected_rolling
  expected_daily = reference_daily(final, ZONE).rows
  assert {(d.queue_id, d.channel, d.local_date): d for d in daily} == expected_daily
  # The 25-hour day.
  assert {d.day_end - d.day_start for d in daily if d.local_date == '2026-10-25'} == {
    25 * 3_600_000
  }
