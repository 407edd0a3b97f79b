"""The reprocessing job: late calls folded back into their windows' figures.

    python -m pipelines.reprocess --from_time=2026-11-02T08:00:00Z \
        --to_time=2026-11-02T12:00:00Z --dry_run

A batch job over what the main job (pipelines/contact_center.py) wrote:
the late_events rows of its calls (reason after_window_expiry) whose event
time is in [--from_time, --to_time) and that no run folded yet, plus, for
backfill, the calls of `--archive` files in that range. Each window they
belong to gets a RESTATED pane carried on from its latest one, a
metric_revisions row and window_contacts rows for the contacts added; the
late events are marked reprocessed. The store is the first of sqlite and
cassandra that --sink names; the call-metrics options must be the main
job's. The daily and rolling figures are not restated. docs/operations.md,
"Reprocessing late data". `--help` lists every option.
"""

import functools
import logging
import sys
from typing import Callable, List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from options import help_text, reject_secret_flags
from options.call_metrics_options import CallMetricsOptions
from options.cassandra_options import CassandraOptions
from options.config import CallMetricsConfig, SinkConfigs
from options.reprocess_config import ReprocessConfig
from options.reprocess_options import DryRunHelp, ReprocessOptions, dry_run_argv
from options.stream_options import EventTimeOptions, FieldRuleOptions, SinkOptions
from pipelines.contact_center import CALL_EVENTS_SOURCE
from transforms.archive_calls import ReadArchiveCalls
from transforms.parsing import DEAD_LETTERS
from transforms.restatement import CHANGES, TABLE_OUTPUTS, PrintReport, RestateWindows
from transforms.schema import TABLES
from transforms.sink_registry import result_sinks
from transforms.sinks import WriteTables
from transforms.stored_rows import ReadLateCalls, stored_rows_factory
from transforms.windowing import AFTER_WINDOW_EXPIRY

JOB_OPTIONS = (
  ReprocessOptions,
  CallMetricsOptions,
  EventTimeOptions,
  FieldRuleOptions,
  SinkOptions,
  CassandraOptions,
)


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> Callable[[], None]:
  """Wires the reads, the fold and the sinks into `pipeline`, touching no
  store. Returns the launch step that prepares the sinks (a no-op for a
  dry run, which writes nothing); raises ValueError for bad options."""
  config = ReprocessConfig.from_options(options)
  calls = CallMetricsConfig.from_options(options)
  sinks = SinkConfigs.from_options(options)
  stored_rows = stored_rows_factory(sinks)
  late = (
    pipeline
    | 'Range' >> beam.Create([(config.from_ms, config.to_ms)])
    | 'ReadLateCalls'
    >> beam.ParDo(ReadLateCalls(stored_rows, CALL_EVENTS_SOURCE, AFTER_WINDOW_EXPIRY)).with_outputs(
      DEAD_LETTERS, main='calls'
    )
  )
  candidates = [late.calls]
  dead_letters = [late[DEAD_LETTERS]]
  if config.archives:
    archive = pipeline | 'Archive' >> ReadArchiveCalls(
      config.archives, calls, CALL_EVENTS_SOURCE, config.from_ms, config.to_ms
    )
    candidates.append(archive['calls'])
    dead_letters.append(archive['dead_letters'])
  restated = (
    candidates
    | 'Candidates' >> beam.Flatten()
    | 'Restate'
    >> RestateWindows(
      stored_rows=stored_rows,
      window_size=calls.window_size,
      short_abandon_threshold_seconds=calls.short_abandon_threshold_seconds,
      service_level_seconds=calls.service_level_seconds,
      abandon_rate_definition=calls.abandon_rate_definition,
      service_level_definition=calls.service_level_definition,
      queue_names=calls.queue_names,
      contact_detail=calls.contact_detail,
    )
  )
  _ = restated[CHANGES] | 'Report' >> PrintReport(config.dry_run)
  if config.dry_run:
    return lambda: None
  tables = {
    name: restated[name]
    for name in TABLE_OUTPUTS
    if name != 'window_contacts' or calls.contact_detail
  }
  tables[DEAD_LETTERS] = dead_letters | 'DeadLetters' >> beam.Flatten()
  write = WriteTables(result_sinks(sinks), TABLES)
  _ = tables | 'Write' >> write
  return functools.partial(write.prepare, list(tables))


def run(argv: Optional[List[str]] = None) -> beam.runners.runner.PipelineResult:
  """Builds and runs the job on the runner --runner names (the batch
  BundleBasedDirectRunner when none is); raises ValueError, in one line, for bad
  options or a store that refuses the job."""
  argv = dry_run_argv(sys.argv[1:] if argv is None else argv)
  # Before Beam parses (and logs) the flags.
  reject_secret_flags(argv)
  options = PipelineOptions(argv)
  # A batch job: Beam's BundleBasedDirectRunner unless --runner names
  # another (Flink). Not 'DirectRunner': it hands batch jobs to Prism, which
  # it downloads from the internet, and caches that Prism server for every
  # later PrismRunner job of the process.
  standard = options.view_as(StandardOptions)
  standard.runner = standard.runner or 'BundleBasedDirectRunner'
  pipeline = beam.Pipeline(options=options)
  prepare_sinks = build(pipeline, options)
  # After the graph is built (no I/O), before the job runs: the stores hold
  # the tables it writes, or the launch stops with one line saying why.
  prepare_sinks()
  result = pipeline.run()
  result.wait_until_finish()
  return result


def main() -> None:
  if {'-h', '--help'} & set(sys.argv[1:]):
    print(
      help_text((JOB_OPTIONS[0], DryRunHelp, *JOB_OPTIONS[1:]), 'python -m pipelines.reprocess')
    )
    return
  logging.basicConfig(
    level=logging.INFO, format='%(asctime)s %(levelname)s %(name)s: %(message)s', force=True
  )
  logging.getLogger('apache_beam').setLevel(logging.WARNING)
  try:
    run(sys.argv[1:])
  except ValueError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  main()
