"""The runner's floor for the call flow (not a test, not the product).

The same replay and parsing as the main job, then the most trivial windowed
aggregation Beam offers: `WindowInto(FixedWindows) | CombinePerKey(count)`
per queue, no dedupe, no lateness handling, no sink. Whatever the main job
costs beyond this is ours; up to this, it is the runner's.

    .venv/bin/python -m scripts.bench.replay_floor --call_events=FILE
    .venv/bin/python -m scripts.bench.local --flow calls --job floor
"""

import logging
import sys
from typing import List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import window
from apache_beam.transforms.combiners import CountCombineFn

from options.call_metrics_options import CallMetricsOptions
from options.stream_options import FileReplayOptions
from pipelines.contact_center import CALL_EVENTS_SOURCE
from pipelines.local_runner import local_streaming_runner
from transforms.call_events import ParseCallEvents, call_event_time_ms
from transforms.replay import ReplayFiles, ReplaySource


def run(argv: Optional[List[str]] = None) -> None:
  options = PipelineOptions(argv)
  runner = local_streaming_runner(options)
  replay = options.view_as(FileReplayOptions)
  if not replay.call_events:
    raise ValueError('give --call_events=FILE')
  window_size = options.view_as(CallMetricsOptions).window_seconds
  with beam.Pipeline(runner=runner, options=options) as pipeline:
    records = (
      pipeline
      | 'Replay'
      >> ReplayFiles(
        [ReplaySource(CALL_EVENTS_SOURCE, replay.call_events, call_event_time_ms)],
        replay.replay_poll_size,
      )
    )[CALL_EVENTS_SOURCE]
    events = (records | 'Parse' >> ParseCallEvents()).events
    _ = (
      events
      | 'KeyByQueue' >> beam.Map(lambda e: (e.queue_id, e))
      | 'Window' >> beam.WindowInto(window.FixedWindows(window_size))
      | 'Count' >> beam.CombinePerKey(CountCombineFn())
    )


if __name__ == '__main__':
  logging.getLogger().setLevel(logging.WARNING)
  run(sys.argv[1:])
