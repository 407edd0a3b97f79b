"""The main job: contact-center streams to queue and channel metrics.

    python -m pipelines.contact_center --call_events=samples/call_events.jsonl

Sources: a replayed JSON-lines file (`--call_events`). Sinks: `--sink`
(default sqlite). `--help` lists every option.
"""
import logging
import sys
from typing import List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions

from options import help_text
from options.call_metrics_options import CallMetricsOptions
from options.stream_options import EventTimeOptions
from options.stream_options import FileReplayOptions
from options.stream_options import SinkOptions
from transforms.call_events import call_event_time_ms
from transforms.call_flow import CallMetricsFlow
from transforms.replay import ReplayFiles, ReplaySource
from transforms.schema import TABLES
from transforms.sinks import ResultSink, WriteTables
from transforms.sqlite_sink import SqliteSink

CALL_EVENTS_SOURCE = 'cc-call-logs'
# The Python DirectRunner may try to download the Prism binary and hang
# offline; the bundle-based runner is local, supports TestStream replay,
# state and timers, and needs no network.
LOCAL_RUNNER = 'BundleBasedDirectRunner'


def make_sinks(options: PipelineOptions) -> List[ResultSink]:
  sink_options = options.view_as(SinkOptions)
  sinks: List[ResultSink] = []
  for name in sink_options.sink or ['sqlite']:
    if name == 'sqlite':
      sinks.append(SqliteSink(sink_options.sqlite_path))
    else:
      raise ValueError(f'sink {name!r} is not available in this build')
  return sinks


def build(pipeline: beam.Pipeline, options: PipelineOptions) -> None:
  """Wires sources, flows and sinks into `pipeline`."""
  replay = options.view_as(FileReplayOptions)
  event_time = options.view_as(EventTimeOptions)
  calls = options.view_as(CallMetricsOptions)
  if not replay.call_events:
    raise ValueError('nothing to read: give --call_events=PATH')
  sources = pipeline | 'Replay' >> ReplayFiles(
      [ReplaySource(CALL_EVENTS_SOURCE, replay.call_events, call_event_time_ms)],
      event_time.max_out_of_orderness,
      replay.replay_poll_size)
  tables = sources[CALL_EVENTS_SOURCE] | 'CallMetrics' >> CallMetricsFlow(
      CALL_EVENTS_SOURCE,
      calls.window_size,
      calls.allowed_lateness,
      calls.short_abandon_threshold,
      calls.service_level_seconds,
      calls.dedupe_ttl,
      event_time.key_idle_ttl)
  _ = tables | 'Write' >> WriteTables(make_sinks(options), TABLES)


JOB_OPTIONS = (
    FileReplayOptions, EventTimeOptions, CallMetricsOptions, SinkOptions)


def run(argv: Optional[List[str]] = None) -> beam.runners.runner.PipelineResult:
  options = PipelineOptions(argv)
  standard = options.view_as(StandardOptions)
  standard.runner = standard.runner or LOCAL_RUNNER
  standard.streaming = True
  pipeline = beam.Pipeline(options=options)
  build(pipeline, options)
  result = pipeline.run()
  result.wait_until_finish()
  return result


def main() -> None:
  if {'-h', '--help'} & set(sys.argv[1:]):
    print(help_text(JOB_OPTIONS, 'python -m pipelines.contact_center'))
    return
  logging.getLogger().setLevel(logging.INFO)
  try:
    run(sys.argv[1:])
  except ValueError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  main()
