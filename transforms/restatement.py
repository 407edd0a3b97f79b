"""RestateWindows: folds calls the live job did not count into their windows'
published figures, as a new RESTATED pane with its audit trail.

A reprocessing run (pipelines/reprocess.py) hands it the late calls of the
late_events table and, for backfill, calls of archive files; each window
they belong to is read back from the store (transforms/stored_rows.py) and
carried on from its latest pane: the pane's sums are the AbandonStatsFn
accumulator (transforms/abandon_rate.py accumulator_of), so no call behind
the window is needed. The daily and rolling figures are not restated.
`PrintReport` prints what changed, one line per window (`describe_change`).
"""

import datetime
import logging
import time
from typing import Callable, Iterable, List, Mapping, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils.timestamp import Duration

from options.config import checked_millis
from transforms.abandon_rate import (
  AbandonStats,
  AbandonStatsFn,
  accumulator_of,
  row_key,
  to_abandon_metrics,
)
from transforms.metric_definitions import (
  ABANDON_RATE_DEFINITIONS,
  DEFAULT_ABANDON_RATE,
  DEFAULT_SERVICE_LEVEL,
  SERVICE_LEVEL_DEFINITIONS,
  definition,
)
from transforms.records import AbandonMetrics, LateEvent, OfferedCall
from transforms.stored_rows import METRICS_NAMESPACE, StoredRows, StoredRowsFactory
from transforms.window_audit import metric_revision, window_contact
from transforms.windowing import RESTATED_PANE, WindowPane

_LOGGER = logging.getLogger(__name__)

# The tagged outputs of RestateWindows besides its tables: what changed (or
# was refused) per window, for the run's report.
CHANGES = 'changes'
TABLE_OUTPUTS = ('abandon_metrics', 'metric_revisions', 'window_contacts', 'late_events')

# A call to fold: the call and, for a late call, its late_events row (None
# for a call of an archive file).
Candidate = Tuple[OfferedCall, Optional[LateEvent]]


class WindowChange(NamedTuple):
  """What a run did to one window: its figures before (zeros when it had no
  row) and after, the contacts it added, and why archive calls were refused
  ('' when none were). A refused window whose late calls were folded has
  both."""

  queue_id: str
  queue_name: str
  channel: str
  window_start: int
  window_end: int
  old_total_calls: int
  new_total_calls: int
  old_abandoned_calls: int
  new_abandoned_calls: int
  old_abandon_rate: float
  new_abandon_rate: float
  contacts_added: int
  late_events_folded: int
  refused: str = ''


def now_ms() -> int:
  """The processing-time clock, epoch ms."""
  return int(time.time() * 1000)


def _one_per_call(item: Tuple[str, Iterable[Candidate]]) -> Candidate:
  """One candidate per call id: its late_events row's when it has one (so
  that the row is marked), else the first archive copy."""
  _, candidates = item
  candidates = list(candidates)
  return next((c for c in candidates if c[1] is not None), candidates[0])


class _RestateWindowFn(beam.DoFn):
  """(window key, candidates) -> the window's new pane and audit rows."""

  def __init__(
    self,
    stored_rows: StoredRowsFactory,
    window_ms: int,
    stats_fn: AbandonStatsFn,
    to_row: Callable[[WindowPane], AbandonMetrics],
    contact_detail: bool,
    clock: Callable[[], int],
  ):
    self._stored_rows = stored_rows
    self._window_ms = window_ms
    self._stats_fn = stats_fn
    self._to_row = to_row
    self._contact_detail = contact_detail
    self._clock = clock
    self._store: Optional[StoredRows] = None
    self._restated = Metrics.counter(METRICS_NAMESPACE, 'windows_restated')
    self._added = Metrics.counter(METRICS_NAMESPACE, 'contacts_added')
    self._folded = Metrics.counter(METRICS_NAMESPACE, 'late_events_folded')
    self._counted = Metrics.counter(METRICS_NAMESPACE, 'already_counted')
    self._refused = Metrics.counter(METRICS_NAMESPACE, 'windows_refused')
    self._refused_calls = Metrics.counter(METRICS_NAMESPACE, 'archive_calls_refused')

  def setup(self):
    self._store = self._stored_rows()
    self._store.open()

  def teardown(self):
    if self._store is not None:
      self._store.close()
      self._store = None

  def process(self, item: Tuple[Tuple[str, str, int], Iterable[Candidate]]):
    (queue_id, channel, window_start), candidates = item
    stored = self._store.window(queue_id, channel, window_start)
    row = stored.row
    known = stored.contact_ids
    candidates = sorted(candidates, key=lambda c: c[0].call_id)
    fresh = [c for c in candidates if c[0].call_id not in known]
    # Late calls the store already counts (a previous run folded them and
    # its mark was lost): no figure changes; marked again below.
    counted_late = [c[1] for c in candidates if c[1] is not None and c[0].call_id in known]
    self._counted.inc(len(candidates) - len(fresh))
    late = [c for c in fresh if c[1] is not None]
    archive = [c for c in fresh if c[1] is None]
    refused = self._refusal(row, len(stored.contact_ids), len(archive))
    if refused:
      self._refused.inc()
      self._refused_calls.inc(len(archive))
      _LOGGER.warning('queue %s (%s) window %s: %s', queue_id, channel, _utc(window_start), refused)
      archive = []
    added = late + archive
    now = self._clock()
    marks = [event._replace(reprocessed_at=now) for event in counted_late]
    if added:
      yield from self._restate(row, queue_id, channel, window_start, added, now, refused)
      marks += [event._replace(reprocessed_at=now) for _, event in late]
    elif refused:
      old = row or _no_row(queue_id, channel, window_start, self._window_ms)
      yield beam.pvalue.TaggedOutput(CHANGES, _change(old, old, 0, 0, refused))
    for mark in marks:
      yield beam.pvalue.TaggedOutput('late_events', mark)

  def _refusal(self, row: Optional[AbandonMetrics], known: int, archive_calls: int) -> str:
    """Why the window's archive calls cannot be folded, '' when they can:
    the window counts contacts the store no longer lists (their detail
    expired, or was never written), so which archive calls it counts
    cannot be told; or the stored window is not on this run's grid."""
    if row is None or not archive_calls:
      return ''
    if row.window_end - row.window_start != self._window_ms:
      return (
        f'refused {archive_calls} archive contacts: the stored window is '
        f'{(row.window_end - row.window_start) // 1000} s, not --window_seconds '
        f'{self._window_ms // 1000}'
      )
    if row.total_calls > known:
      return (
        f'refused {archive_calls} archive contacts: the window counts '
        f'{row.total_calls} contacts but the store lists {known} of them (their '
        'detail expired or was never kept), so which are counted cannot be told'
      )
    return ''

  def _restate(
    self,
    row: Optional[AbandonMetrics],
    queue_id: str,
    channel: str,
    window_start: int,
    added: List[Candidate],
    now: int,
    refused: str,
  ):
    fn = self._stats_fn
    acc = accumulator_of(row) if row is not None else fn.create_accumulator()
    for call, _ in added:
      acc = fn.add_input(acc, call)
    window_end = row.window_end if row is not None else window_start + self._window_ms
    pane_index = row.pane_index + 1 if row is not None else 0
    new = self._to_row(
      WindowPane(
        row_key(added[0][0]),
        window_start,
        window_end,
        AbandonStats(*acc),
        pane_index,
        RESTATED_PANE,
      )
    )
    old = row or _no_row(queue_id, channel, window_start, self._window_ms)
    ids = [call.call_id for call, _ in added]
    yield beam.pvalue.TaggedOutput('abandon_metrics', new)
    yield beam.pvalue.TaggedOutput('metric_revisions', metric_revision(row, new, ids, now))
    if self._contact_detail:
      for call, _ in added:
        yield beam.pvalue.TaggedOutput(
          'window_contacts',
          window_contact(call, window_start, pane_index, RESTATED_PANE, new.queue_name),
        )
    late = sum(1 for _, event in added if event is not None)
    yield beam.pvalue.TaggedOutput(CHANGES, _change(old, new, len(added), late, refused))
    self._restated.inc()
    self._added.inc(len(added))
    self._folded.inc(late)


def _no_row(queue_id: str, channel: str, window_start: int, window_ms: int) -> AbandonMetrics:
  """The figures of a window without a row: all zeros."""
  return AbandonMetrics(
    queue_id=queue_id,
    window_start=window_start,
    window_end=window_start + window_ms,
    total_calls=0,
    abandoned_calls=0,
    short_abandoned_calls=0,
    answered_within_sl=0,
    total_wait_seconds=0.0,
    abandon_rate=0.0,
    service_level=0.0,
    pane_index=-1,
    pane_timing='',
    channel=channel,
    queue_name=queue_id,
  )


def _change(
  old: AbandonMetrics, new: AbandonMetrics, added: int, late: int, refused: str
) -> WindowChange:
  return WindowChange(
    queue_id=new.queue_id,
    queue_name=new.queue_name or new.queue_id,
    channel=new.channel,
    window_start=new.window_start,
    window_end=new.window_end,
    old_total_calls=old.total_calls,
    new_total_calls=new.total_calls,
    old_abandoned_calls=old.abandoned_calls,
    new_abandoned_calls=new.abandoned_calls,
    old_abandon_rate=old.abandon_rate,
    new_abandon_rate=new.abandon_rate,
    contacts_added=added,
    late_events_folded=late,
    refused=refused,
  )


class RestateWindows(beam.PTransform):
  """Folds calls into their windows' latest figures, once each.

  Input: PCollection[Candidate]: (OfferedCall, its late_events row) for a
  late call, (OfferedCall, None) for a call of an archive file.
  Candidates are de-duplicated by call id (a late call's row wins) and
  grouped by window (queue, channel and start on the grid of
  `window_size`); per window the store (`stored_rows`, read in the DoFn's
  setup) gives the latest pane and the contacts it already counts, which
  are skipped: a second run changes no figure. Archive calls of a window
  whose stored row counts more contacts than the store lists are refused
  (its late calls, by definition never counted, are still folded).
  Outputs (a dict, tables by name):
    `abandon_metrics`: AbandonMetrics, the window's new pane: the stored
      sums plus the new calls (AbandonStatsFn), rates by the named
      definitions, pane_index the stored one + 1 (0 for a window without
      a row), pane_timing RESTATED;
    `metric_revisions`: MetricRevision, one per restated window, the
      figures before and after and the ids of the contacts added;
    `window_contacts`: WindowContact per contact added, of the RESTATED
      pane (none without `contact_detail`);
    `late_events`: the late_events rows folded (or found already counted),
      with reprocessed_at = now (the table's version column: the mark
      sticks);
    `changes`: WindowChange per restated or refused window, for the report.
  """

  def __init__(
    self,
    *,
    stored_rows: StoredRowsFactory,
    window_size: Duration,
    short_abandon_threshold_seconds: float,
    service_level_seconds: float,
    abandon_rate_definition: str = DEFAULT_ABANDON_RATE,
    service_level_definition: str = DEFAULT_SERVICE_LEVEL,
    queue_names: Optional[Mapping[str, str]] = None,
    contact_detail: bool = True,
    clock: Callable[[], int] = now_ms,
  ):
    super().__init__()
    # Unknown names fail here, when the graph is built.
    definition(ABANDON_RATE_DEFINITIONS, abandon_rate_definition)
    definition(SERVICE_LEVEL_DEFINITIONS, service_level_definition)
    self._window_ms = checked_millis(window_size, 'window_size', zero_ok=False)
    self._fn = _RestateWindowFn(
      stored_rows,
      self._window_ms,
      AbandonStatsFn(short_abandon_threshold_seconds, service_level_seconds),
      _RowOf(abandon_rate_definition, service_level_definition, dict(queue_names or {})),
      contact_detail,
      clock,
    )

  def expand(self, candidates):
    window_ms = self._window_ms
    windows = (
      candidates
      | 'ByCall' >> beam.Map(lambda c: (c[0].call_id, c))
      | 'GroupByCall' >> beam.GroupByKey()
      | 'OnePerCall' >> beam.Map(_one_per_call)
      | 'ByWindow'
      >> beam.Map(
        lambda c: ((c[0].queue_id, c[0].channel, c[0].timestamp - c[0].timestamp % window_ms), c)
      )
      | 'GroupByWindow' >> beam.GroupByKey()
    )
    outputs = windows | 'Restate' >> beam.ParDo(self._fn).with_outputs(*TABLE_OUTPUTS, CHANGES)
    return {name: outputs[name] for name in (*TABLE_OUTPUTS, CHANGES)}


class _RowOf:
  """to_abandon_metrics by the job's definitions and queue names (a class,
  not a partial of a lambda, so that it pickles with the DoFn)."""

  def __init__(self, abandon_rate: str, service_level: str, queue_names: dict):
    self._abandon_rate = abandon_rate
    self._service_level = service_level
    self._queue_names = queue_names

  def __call__(self, pane: WindowPane) -> AbandonMetrics:
    return to_abandon_metrics(pane, self._abandon_rate, self._service_level, self._queue_names)


def _utc(epoch_ms: int) -> datetime.datetime:
  return datetime.datetime.fromtimestamp(epoch_ms / 1000, datetime.timezone.utc)


def _percent(rate: float) -> str:
  return f'{rate * 100:.2f}'.rstrip('0').rstrip('.') + ' %'


def describe_change(change: WindowChange) -> str:
  """One line of the run's report, e.g. "queue Sales (voice) 2026-11-02
  10:05–10:10 UTC: offered 40 -> 42, abandoned 5 -> 6, abandon rate
  12.5 % -> 14.29 %, +2 contacts"; a refusal follows after '; '."""
  start, end = _utc(change.window_start), _utc(change.window_end)
  where = f'queue {change.queue_name} ({change.channel}) {start:%Y-%m-%d %H:%M}–{end:%H:%M} UTC'
  parts = []
  if change.contacts_added:
    parts.append(
      f'offered {change.old_total_calls} -> {change.new_total_calls}, '
      f'abandoned {change.old_abandoned_calls} -> {change.new_abandoned_calls}, '
      f'abandon rate {_percent(change.old_abandon_rate)} -> '
      f'{_percent(change.new_abandon_rate)}, +{change.contacts_added} contacts'
    )
  if change.refused:
    parts.append(change.refused)
  return f'{where}: {"; ".join(parts)}'


def report_lines(changes: Iterable[WindowChange], dry_run: bool) -> List[str]:
  """The run's report: a line per window (describe_change), in queue,
  channel and time order, then a summary."""
  changes = sorted(changes, key=lambda c: (c.queue_id, c.channel, c.window_start))
  restated = [c for c in changes if c.contacts_added]
  refused = [c for c in changes if c.refused]
  summary = (
    f'{len(restated)} windows restated, '
    f'{sum(c.contacts_added for c in restated)} contacts added '
    f'({sum(c.late_events_folded for c in restated)} late events folded), '
    f'{len(refused)} windows refused archive contacts'
  )
  if dry_run:
    summary += '; dry run: nothing written'
  return [*(describe_change(c) for c in changes), summary]


class PrintReport(beam.PTransform):
  """Prints the run's report (report_lines) to the standard output of the
  worker that runs its one step: the launching process on the local
  runners.

  Input: PCollection[WindowChange]. Output: PCollection[str], the lines
  printed.
  """

  def __init__(self, dry_run: bool):
    super().__init__()
    self._dry_run = dry_run

  def expand(self, changes):
    dry_run = self._dry_run
    return (
      changes
      | 'All' >> beam.combiners.ToList()
      | 'Print' >> beam.FlatMap(lambda cs: _printed(report_lines(cs, dry_run)))
    )


def _printed(lines: List[str]) -> List[str]:
  # One write, so that the report's lines stay together and in order.
  print('\n'.join(lines), flush=True)
  return lines
