"""The main job's replay progress: its format, its rate limit (on a fake
clock), what it reads from a real run's metrics, and a quiet sample run."""

import io
import logging
import os
import sqlite3
import subprocess
import sys

import apache_beam as beam

from pipelines import contact_center, progress
from pipelines.local_runner import local_streaming_runner
from pipelines.progress import Progress
from transforms.call_events import call_event_time_ms
from transforms.data_actions import data_action_time_ms

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALL_EVENTS = os.path.join(REPO, 'samples', 'call_events.jsonl')
DATA_ACTIONS = os.path.join(REPO, 'samples', 'data_actions.jsonl')
# 2026-11-02T08:05:00Z
AT_MS = 1793606700000
HALF = Progress(2500, 5000, AT_MS, 3)


def test_a_log_line_says_lines_of_the_total_event_time_and_dead_letters():
  assert progress.progress_line(HALF) == (
    'replayed 2,500 of 5,000 lines (50%), event time 2026-11-02 08:05:00Z, 3 dead letters'
  )
  assert progress.progress_line(Progress(0, 10, None, 1)) == (
    'replayed 0 of 10 lines (0%), event time -, 1 dead letter'
  )


def test_a_bar_fills_with_the_lines_replayed():
  assert progress.progress_bar(HALF) == (
    '[############------------]  50%  2,500/5,000 lines  '
    'event time 2026-11-02 08:05:00Z  3 dead letters'
  )
  # Rounded down: 100 % only once every line is in.
  assert progress.progress_bar(Progress(9999, 10000, AT_MS, 0)).startswith(
    '[#######################-]  99%  9,999/10,000 lines'
  )
  assert progress.progress_bar(Progress(0, 0, None, 0)).startswith(
    '[########################] 100%  0/0 lines'
  )


class FakeClock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def run_reporter(terminal, seconds, step=0.5, **kwargs):
  """Reports every `step` seconds of a fake clock for `seconds`; returns
  the stream and the clock times at which something was shown."""
  clock, stream = FakeClock(), io.StringIO()
  reporter = progress.ProgressReporter(stream, terminal, clock, **kwargs)
  shown = []
  start = clock.now
  while clock.now - start <= seconds:
    before = stream.getvalue()
    lines = int((clock.now - start) * 100)
    reporter.report(Progress(lines, 10000, AT_MS, 0))
    if stream.getvalue() != before:
      shown.append(clock.now - start)
    clock.now += step
  return reporter, stream, shown


def test_a_terminal_bar_waits_a_few_seconds_then_redraws_at_most_every_two():
  _, stream, shown = run_reporter(terminal=True, seconds=12)
  assert shown == [5.0, 7.0, 9.0, 11.0]
  # Redrawn in place: carriage returns, no new line.
  assert stream.getvalue().count('\r') == 4
  assert '\n' not in stream.getvalue()


def test_log_lines_come_at_most_every_ten_seconds(caplog):
  with caplog.at_level(logging.INFO, logger=progress.__name__):
    _, stream, _ = run_reporter(terminal=False, seconds=30)
  assert stream.getvalue() == ''
  messages = [r.getMessage() for r in caplog.records if r.name == progress.__name__]
  assert messages == [
    'replayed 500 of 10,000 lines (5%), event time 2026-11-02 08:05:00Z, 0 dead letters',
    'replayed 1,500 of 10,000 lines (15%), event time 2026-11-02 08:05:00Z, 0 dead letters',
    'replayed 2,500 of 10,000 lines (25%), event time 2026-11-02 08:05:00Z, 0 dead letters',
  ]


def test_a_short_replay_shows_nothing_not_even_at_the_end():
  reporter, stream, shown = run_reporter(terminal=True, seconds=4)
  reporter.finish(Progress(10000, 10000, AT_MS, 0))
  assert shown == [] and stream.getvalue() == ''


def test_the_end_redraws_the_bar_over_a_longer_one_and_ends_its_line():
  clock, stream = FakeClock(), io.StringIO()
  reporter = progress.ProgressReporter(stream, terminal=True, clock=clock, first_after_s=0)
  longer = Progress(500, 10000, AT_MS, 1234567)
  reporter.report(longer)
  done = Progress(10000, 10000, AT_MS, 0)
  reporter.finish(done)
  width = len(progress.progress_bar(longer))
  assert len(progress.progress_bar(done)) < width
  assert stream.getvalue() == (
    '\r' + progress.progress_bar(longer) + '\r' + progress.progress_bar(done).ljust(width) + '\n'
  )


def test_the_progress_of_a_run_is_read_from_its_metrics(tmp_path):
  db = tmp_path / 'out.db'
  options = beam.options.pipeline_options.PipelineOptions(
    [f'--call_events={CALL_EVENTS}', f'--data_actions={DATA_ACTIONS}', f'--sqlite_path={db}']
  )
  pipeline = beam.Pipeline(runner=local_streaming_runner(options), options=options)
  prepare_sinks = contact_center.build(pipeline, options)
  prepare_sinks()
  total = progress.replay_total_lines(pipeline)
  assert total == sum(1 for path in (CALL_EVENTS, DATA_ACTIONS) for _ in open(path, 'rb'))
  # A report shown already: the end of the run then shows the last one.
  clock, stream = FakeClock(), io.StringIO()
  reporter = progress.ProgressReporter(stream, terminal=True, clock=clock, first_after_s=0)
  reporter.report(Progress(0, total, None, 0))
  result = pipeline.run()
  with progress.showing_progress(result, total, reporter):
    result.wait_until_finish()
  with sqlite3.connect(db) as conn:
    dead_letters = conn.execute('select count(*) from dead_letters').fetchone()
  last_event_ms = max(
    ms
    for path, event_time_ms in (
      (CALL_EVENTS, call_event_time_ms),
      (DATA_ACTIONS, data_action_time_ms),
    )
    for ms in map(event_time_ms, open(path, 'rb').read().splitlines())
    if ms is not None
  )
  final = Progress(total, total, last_event_ms, dead_letters[0])
  assert dead_letters[0] > 0
  last = stream.getvalue().split('\r')[-1]
  assert last.endswith('\n') and last.rstrip() == progress.progress_bar(final)
  assert progress.read_progress(result.metrics(), total) == final


def test_a_run_without_a_file_replay_has_no_total():
  assert progress.replay_total_lines(beam.Pipeline()) is None


def test_the_sample_run_prints_no_beam_warning(tmp_path):
  # As a user runs it, with stderr captured (not a terminal): nothing but
  # progress lines, if the machine is slow enough for any.
  run = subprocess.run(
    [
      sys.executable,
      '-m',
      'pipelines.contact_center',
      f'--call_events={CALL_EVENTS}',
      f'--data_actions={DATA_ACTIONS}',
      f'--sqlite_path={tmp_path}/out.db',
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    check=True,
  )
  assert run.stdout == ''
  unexpected = [
    line for line in run.stderr.splitlines() if f'INFO {progress.__name__}: replayed ' not in line
  ]
  assert not unexpected, run.stderr
