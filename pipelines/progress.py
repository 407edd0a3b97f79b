"""Progress of a file replay on the local runner, read from the job's metrics.

While the main job replays files, a thread reads the running job's committed
metrics every second and, once the replay has run for a few seconds, shows
at most every few seconds: lines replayed of the total (transforms/replay.py
counts both), the largest event time replayed, and the dead letters so far
(every `dead_letters` counter, transforms/parsing.py).

On a terminal (stderr is a tty) that is one progress bar redrawn in place
with a carriage return; otherwise one INFO log line per report. When the
replay ends, a report that was shown is completed by a last one.

Metrics rather than a hook in the chunk reader: dead letters are counted in
other steps, the reader only counts (the same on every runner), and nothing
in a worker has to reach the launching process. The main job polls on the
local runner only, where metrics are complete (pipelines/local_runner.py);
other runners show no progress.
"""

import contextlib
import datetime
import logging
import sys
import threading
import time
from typing import Callable, Iterator, NamedTuple, Optional, TextIO

import apache_beam as beam
from apache_beam.metrics.metric import MetricResults, MetricsFilter
from apache_beam.pipeline import PipelineVisitor
from apache_beam.runners.runner import PipelineResult

from transforms import parsing, replay

_LOGGER = logging.getLogger(__name__)
# Quiet for a replay shorter than this, then a report at most this often.
FIRST_REPORT_AFTER_S = 5.0
TERMINAL_INTERVAL_S = 2.0
LOG_INTERVAL_S = 10.0
POLL_INTERVAL_S = 1.0
BAR_WIDTH = 24


class Progress(NamedTuple):
  """Where a replay is: lines delivered of `total_lines`, the largest event
  time among them (None before any valid one), dead letters so far."""

  lines: int
  total_lines: int
  event_time_ms: Optional[int]
  dead_letters: int


def replay_total_lines(pipeline: beam.Pipeline) -> Optional[int]:
  """Lines the pipeline's file replays deliver; None if it has none."""

  class _FindReplays(PipelineVisitor):
    def __init__(self):
      self.totals = []

    def enter_composite_transform(self, applied):
      if isinstance(applied.transform, replay.ReplayFiles):
        self.totals.append(applied.transform.total_lines)

  finder = _FindReplays()
  pipeline.visit(finder)
  return sum(finder.totals) if finder.totals else None


def read_progress(metrics: MetricResults, total_lines: int) -> Progress:
  """The replay's progress in the committed metrics of a job."""
  lines = metrics.query(
    MetricsFilter().with_namespace(replay.METRICS_NAMESPACE).with_name(replay.LINES_COUNTER)
  )['counters']
  event_times = metrics.query(
    MetricsFilter()
    .with_namespace(replay.METRICS_NAMESPACE)
    .with_name(replay.EVENT_TIME_DISTRIBUTION)
  )['distributions']
  # Every parser counts its dead letters under the name of that output.
  dead_letters = metrics.query(MetricsFilter().with_name(parsing.DEAD_LETTERS))['counters']
  maxima = [d.committed.max for d in event_times if d.committed and d.committed.count]
  return Progress(
    sum(c.committed for c in lines),
    total_lines,
    max(maxima) if maxima else None,
    sum(c.committed for c in dead_letters),
  )


def _event_time(ms: Optional[int]) -> str:
  if ms is None:
    return '-'
  return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc).strftime(
    '%Y-%m-%d %H:%M:%SZ'
  )


def _fraction(progress: Progress) -> float:
  if not progress.total_lines:
    return 1.0
  return min(1.0, progress.lines / progress.total_lines)


def _percent(progress: Progress) -> str:
  # Rounded down: 100% only when every line is in.
  return f'{int(_fraction(progress) * 100)}%'


def _dead_letters(progress: Progress) -> str:
  plural = '' if progress.dead_letters == 1 else 's'
  return f'{progress.dead_letters:,} dead letter{plural}'


def progress_line(progress: Progress) -> str:
  """One log line: `replayed 1,000 of 4,000 lines (25%), event time
  2026-11-02 08:05:00Z, 3 dead letters`."""
  return (
    f'replayed {progress.lines:,} of {progress.total_lines:,} lines '
    f'({_percent(progress)}), '
    f'event time {_event_time(progress.event_time_ms)}, '
    f'{_dead_letters(progress)}'
  )


def progress_bar(progress: Progress) -> str:
  """A terminal progress bar: `[######------------------]  25%  1,000/4,000
  lines  event time 2026-11-02 08:05:00Z  3 dead letters`."""
  done = int(_fraction(progress) * BAR_WIDTH)
  return (
    f'[{"#" * done}{"-" * (BAR_WIDTH - done)}] '
    f'{_percent(progress):>4}  '
    f'{progress.lines:,}/{progress.total_lines:,} lines  '
    f'event time {_event_time(progress.event_time_ms)}  '
    f'{_dead_letters(progress)}'
  )


class ProgressReporter:
  """Shows progress reports, rate-limited: none before `first_after_s`
  from construction, then at most one per `interval_s` (by `clock`), and
  `finish` completes what was shown. On a terminal `stream` gets a bar
  redrawn in place; otherwise reports are INFO log lines."""

  def __init__(
    self,
    stream: TextIO,
    terminal: bool,
    clock: Callable[[], float] = time.monotonic,
    first_after_s: float = FIRST_REPORT_AFTER_S,
    interval_s: Optional[float] = None,
  ):
    self._stream = stream
    self._terminal = terminal
    self._clock = clock
    self._interval_s = interval_s or (TERMINAL_INTERVAL_S if terminal else LOG_INTERVAL_S)
    self._next_at = clock() + first_after_s
    self._shown = False
    self._bar_width = 0

  def report(self, progress: Progress) -> None:
    """Shows `progress` if a report is due."""
    now = self._clock()
    if now >= self._next_at:
      self._next_at = now + self._interval_s
      self._show(progress)

  def finish(self, progress: Progress) -> None:
    """Shows the last state if any report was shown (ends the bar's line)."""
    if self._shown:
      self._show(progress)
      if self._terminal:
        self._stream.write('\n')
        self._stream.flush()

  def _show(self, progress: Progress) -> None:
    self._shown = True
    if not self._terminal:
      _LOGGER.info('%s', progress_line(progress))
      return
    bar = progress_bar(progress)
    # Blanks over what a longer previous bar left on the line.
    self._stream.write('\r' + bar.ljust(self._bar_width))
    self._stream.flush()
    self._bar_width = len(bar)


def stderr_reporter() -> ProgressReporter:
  """A reporter to stderr: a bar if it is a terminal, else log lines."""
  return ProgressReporter(sys.stderr, terminal=sys.stderr.isatty())


@contextlib.contextmanager
def showing_progress(
  result: PipelineResult, total_lines: int, reporter: ProgressReporter
) -> Iterator[None]:
  """Gives `reporter` the progress of `result`'s replay while the block
  runs (typically `result.wait_until_finish()`), from a daemon thread, and
  finishes the report when the block ends, failed or not."""
  done = threading.Event()

  def poll() -> Optional[Progress]:
    try:
      return read_progress(result.metrics(), total_lines)
    except RuntimeError:
      # The direct runner's metrics are not locked for reading: a step that
      # reports its first metric while they are read fails the read
      # (dictionary changed size); the next poll reads them.
      return None

  def keep_reporting() -> None:
    while not done.wait(POLL_INTERVAL_S):
      progress = poll()
      if progress is not None:
        reporter.report(progress)

  thread = threading.Thread(target=keep_reporting, name='replay-progress', daemon=True)
  thread.start()
  try:
    yield
  finally:
    done.set()
    thread.join()
    progress = poll()
    if progress is not None:
      reporter.finish(progress)
