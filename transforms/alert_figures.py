"""AlertFigures: the values alert rules test, from the tables that hold them.

Each row of a metrics table becomes one AlertFigure per metric a rule
needs (docs/alerts.md):

  table            span           metrics                       span_end    volume     revision
  abandon_metrics  window         abandon_rate, service_level,  window_end  offered    pane_index
                                  asa_seconds, offered
  rolling_metrics  15m, 30m, 60m  the same                      span_end    offered    panes_counted
  daily_metrics    today          the same                      as_of       offered    panes_counted
  queue_status     now            waiting,                      as_of       waiting    revision
                                  longest_wait_seconds
  agent_status     now            available_agents              as_of       logged_in  revision
  dead_letters     window         dead_letters (queue and       window end  the count  the count
                                  channel '*')

Offered: total_calls. `asa_seconds` is answered wait over answered calls
with a known wait (0 when none), as RollingMetrics and DailyMetrics
compute it. Dead letters are counted per fixed window of their
`received_at` (processing time: a dead letter may have no usable event
time): one state for the job (key '*'), holding the counts of the newest
window and the one before it, so stragglers across a window boundary still
count and the state stays two numbers; a dead letter older than those is
counted (`dead_letters_not_counted`) but in no figure. Each batch of dead
letters restates its window's figure with the count so far (revision = the
count), so a rule fires as soon as a window passes its threshold.

Predicted service level figures (span interval) are made by the forecast
and flattened with these by the job.
"""

from typing import Collection, Dict, Iterator, List, Mapping, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.utils.timestamp import Duration

from options.config import checked_millis
from transforms.batching import BatchPerKey
from transforms.event_time import at_event_time
from transforms.records import (
  SPAN_NOW,
  SPAN_TODAY,
  SPAN_WINDOW,
  AbandonMetrics,
  AgentStatus,
  AlertFigure,
  DailyMetrics,
  DeadLetter,
  QueueStatus,
  RollingMetrics,
)
from transforms.span_counts import asa_seconds
from transforms.state_coders import VersionedStateCoder

ABANDON_METRICS = 'abandon_metrics'
ROLLING_METRICS = 'rolling_metrics'
DAILY_METRICS = 'daily_metrics'
QUEUE_STATUS = 'queue_status'
AGENT_STATUS = 'agent_status'
DEAD_LETTERS = 'dead_letters'
TABLES = (ABANDON_METRICS, ROLLING_METRICS, DAILY_METRICS, QUEUE_STATUS, AGENT_STATUS, DEAD_LETTERS)
# The queue and channel of a figure of the whole job.
WHOLE_JOB = '*'
# The metrics each table's rows give.
_COUNT_METRICS = ('abandon_rate', 'service_level', 'asa_seconds', 'offered')
TABLE_METRICS: Dict[str, Tuple[str, ...]] = {
  ABANDON_METRICS: _COUNT_METRICS,
  ROLLING_METRICS: _COUNT_METRICS,
  DAILY_METRICS: _COUNT_METRICS,
  QUEUE_STATUS: ('waiting', 'longest_wait_seconds'),
  AGENT_STATUS: ('available_agents',),
  DEAD_LETTERS: ('dead_letters',),
}
Wanted = Optional[Collection[Tuple[str, str]]]


def _figures(
  values: Mapping[str, float],
  wanted: Wanted,
  queue_id: str,
  channel: str,
  span: str,
  span_end: int,
  volume: int,
  revision: int,
  queue_name: str,
) -> Iterator:
  """The figures of one row, stamped at their span_end in the global
  window, for the (metric, span) pairs wanted (all when None)."""
  for metric, value in values.items():
    if wanted is None or (metric, span) in wanted:
      figure = AlertFigure(
        metric, queue_id, channel, span, span_end, float(value), volume, revision, queue_name
      )
      yield at_event_time(figure, span_end)


def _count_values(row) -> Dict[str, float]:
  return {
    'abandon_rate': row.abandon_rate,
    'service_level': row.service_level,
    'asa_seconds': asa_seconds(
      row.answered_wait_seconds, row.answered_calls, row.answered_wait_unknown_calls
    ),
    'offered': row.total_calls,
  }


def abandon_figures(row: AbandonMetrics, wanted: Wanted = None) -> Iterator:
  """The figures of one abandon_metrics pane (span window)."""
  yield from _figures(
    _count_values(row),
    wanted,
    row.queue_id,
    row.channel,
    SPAN_WINDOW,
    row.window_end,
    row.total_calls,
    row.pane_index,
    row.queue_name,
  )


def rolling_figures(row: RollingMetrics, wanted: Wanted = None) -> Iterator:
  """The figures of one rolling_metrics row (its span)."""
  yield from _figures(
    {**_count_values(row), 'asa_seconds': row.asa_seconds},
    wanted,
    row.queue_id,
    row.channel,
    row.span,
    row.span_end,
    row.total_calls,
    row.panes_counted,
    row.queue_name,
  )


def daily_figures(row: DailyMetrics, wanted: Wanted = None) -> Iterator:
  """The figures of one daily_metrics row (span today, ending at as_of)."""
  yield from _figures(
    {**_count_values(row), 'asa_seconds': row.asa_seconds},
    wanted,
    row.queue_id,
    row.channel,
    SPAN_TODAY,
    row.as_of,
    row.total_calls,
    row.panes_counted,
    row.queue_name,
  )


def queue_status_figures(row: QueueStatus, wanted: Wanted = None) -> Iterator:
  """The live figures of one queue_status row (span now)."""
  yield from _figures(
    {'waiting': row.waiting, 'longest_wait_seconds': row.longest_wait_seconds},
    wanted,
    row.queue_id,
    row.channel,
    SPAN_NOW,
    row.as_of,
    row.waiting,
    row.revision,
    row.queue_name,
  )


def agent_status_figures(row: AgentStatus, wanted: Wanted = None) -> Iterator:
  """The live figure of one agent_status row (span now)."""
  yield from _figures(
    {'available_agents': row.available},
    wanted,
    row.queue_id,
    row.channel,
    SPAN_NOW,
    row.as_of,
    row.logged_in,
    row.revision,
    row.queue_name,
  )


_ROW_FIGURES = {
  ABANDON_METRICS: abandon_figures,
  ROLLING_METRICS: rolling_figures,
  DAILY_METRICS: daily_figures,
  QUEUE_STATUS: queue_status_figures,
  AGENT_STATUS: agent_status_figures,
}


def _counts_to_plain(counts: Dict[int, int]) -> list:
  return sorted([end, count] for end, count in counts.items())


def _counts_from_plain_v1(plain: list) -> Dict[int, int]:
  return {end: count for end, count in plain}


# Format v1: [[window end (epoch ms), dead letters counted], ...], at most
# _WINDOWS_KEPT of them (docs/upgrades.md).
DEAD_LETTER_COUNTS_CODER = VersionedStateCoder(
  'alert figures dead letters', 1, _counts_to_plain, {1: _counts_from_plain_v1}
)
_WINDOWS_KEPT = 2


class _CountDeadLettersFn(beam.DoFn):
  COUNTS = ReadModifyWriteStateSpec('dead_letter_counts', DEAD_LETTER_COUNTS_CODER)

  def __init__(self, window_ms: int, metrics_namespace: str):
    self._window_ms = window_ms
    self._not_counted = Metrics.counter(metrics_namespace, 'dead_letters_not_counted')

  def process(
    self, batch: Tuple[str, List[DeadLetter]], counts_state=beam.DoFn.StateParam(COUNTS)
  ) -> Iterator:
    _, dead_letters = batch
    counts = counts_state.read() or {}
    changed = set()
    kept_ms = _WINDOWS_KEPT * self._window_ms
    for dead_letter in dead_letters:
      end = (dead_letter.received_at // self._window_ms + 1) * self._window_ms
      if end <= max(counts, default=end) - kept_ms:
        self._not_counted.inc()
        continue
      counts[end] = counts.get(end, 0) + 1
      changed.add(end)
    newest = max(counts)
    for old in [end for end in counts if end <= newest - kept_ms]:
      del counts[old]
      changed.discard(old)
    counts_state.write(counts)
    for end in sorted(changed):
      yield at_event_time(
        AlertFigure(
          'dead_letters',
          WHOLE_JOB,
          WHOLE_JOB,
          SPAN_WINDOW,
          end,
          float(counts[end]),
          counts[end],
          counts[end],
        ),
        end,
      )


class AlertFigures(beam.PTransform):
  """The figures alert rules test, from the metrics tables.

  Input: a dict of table name (TABLES) -> PCollection of its rows, any
  subset. Output: PCollection[AlertFigure] in the global window, each
  stamped with its span_end (event time): the figures of the module
  docstring, only the (metric, span) pairs in `wanted` (all when None;
  AlertRulesConfig.needed_figures() names those the rules test), so
  tables no rule reads make nothing. `dead_letter_window`: the fixed
  window dead letters are counted per.
  """

  def __init__(
    self,
    *,
    wanted: Wanted = None,
    dead_letter_window: Duration = Duration(seconds=300),
    metrics_namespace: str = 'alert_figures',
  ):
    super().__init__()
    self._wanted = None if wanted is None else frozenset(wanted)
    self._dead_letter_window_ms = checked_millis(
      dead_letter_window, 'dead_letter_window', zero_ok=False
    )
    self._metrics_namespace = metrics_namespace

  def _needs(self, table: str) -> bool:
    return self._wanted is None or any(m in TABLE_METRICS[table] for m, _ in self._wanted)

  def expand(self, tables):
    unknown = set(tables) - set(TABLES)
    if unknown or not tables:
      raise ValueError(f'AlertFigures: expected some of the tables {TABLES}, got {sorted(tables)}')
    branches = []
    for table, rows in sorted(tables.items()):
      if not self._needs(table):
        continue
      if table == DEAD_LETTERS:
        figures = (
          rows
          | 'BatchDeadLetters' >> BatchPerKey(lambda _: WHOLE_JOB, lambda d: d.received_at)
          | 'CountDeadLetters'
          >> beam.ParDo(
            _CountDeadLettersFn(self._dead_letter_window_ms, self._metrics_namespace)
          ).with_output_types(AlertFigure)
        )
      else:
        figures = rows | f'{table}Figures' >> beam.FlatMap(
          _ROW_FIGURES[table], self._wanted
        ).with_output_types(AlertFigure)
      branches.append(figures)
    pipeline = next(iter(tables.values())).pipeline
    if not branches:
      return pipeline | 'NoFigures' >> beam.Create([]).with_output_types(AlertFigure)
    return branches | 'AllFigures' >> beam.Flatten(pipeline=pipeline)
