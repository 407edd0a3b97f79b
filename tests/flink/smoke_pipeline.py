"""Tiny streaming-style Beam pipeline used to prove the portable FlinkRunner works.

Create(20 timestamped elements) -> FixedWindows(10 s) -> CombinePerKey(sum)
-> stateful DoFn in the global window with an event-time timer -> one output file.

The output file (given by --output) is written once, atomically, with sorted lines:
  window,<key>,<window_start>,<sum>      one per (key, window)
  total,<key>,<n_windows>,<sum>          emitted by the event-time timer per key
so its content is exactly EXPECTED_LINES whatever the runner or parallelism.

Run, e.g.:
  python tests/flink/smoke_pipeline.py --output /tmp/out.txt \
    --runner=FlinkRunner --flink_master=[local] --flink_job_server_jar=JAR \
    --environment_type=LOOPBACK --streaming
"""

import argparse
import logging
import os
import sys
import typing

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms import userstate, window
from apache_beam.transforms.timeutil import TimeDomain

# (key, value, event time in seconds): 20 elements over 3 keys and 3 windows.
EVENTS = [
  ('a', 1, 1),
  ('b', 2, 2),
  ('a', 3, 4),
  ('c', 5, 5),
  ('b', 1, 7),
  ('a', 2, 9),
  ('c', 4, 11),
  ('a', 6, 12),
  ('b', 3, 13),
  ('a', 1, 15),
  ('c', 2, 17),
  ('b', 4, 19),
  ('a', 7, 21),
  ('b', 5, 22),
  ('c', 1, 24),
  ('a', 2, 25),
  ('b', 6, 26),
  ('c', 3, 27),
  ('a', 4, 28),
  ('b', 1, 29),
]


def _expected_lines():
  windows = {}
  for k, v, t in EVENTS:
    ws = (t // 10) * 10
    windows[(k, ws)] = windows.get((k, ws), 0) + v
  lines = [f'window,{k},{ws},{s}' for (k, ws), s in windows.items()]
  for key in sorted({k for k, _, _ in EVENTS}):
    sums = [s for (k, _), s in windows.items() if k == key]
    lines.append(f'total,{key},{len(sums)},{sum(sums)}')
  return sorted(lines)


EXPECTED_LINES = _expected_lines()


class FormatWindow(beam.DoFn):
  def process(self, kv, win=beam.DoFn.WindowParam):
    key, total = kv
    yield key, (int(win.start), total)


class TotalPerKey(beam.DoFn):
  """Stateful DoFn: sums per key in state; an event-time timer emits the total."""

  SEEN = userstate.BagStateSpec(
    'seen', coders.TupleCoder((coders.VarIntCoder(), coders.VarIntCoder()))
  )
  FLUSH = userstate.TimerSpec('flush', TimeDomain.WATERMARK)

  def process(
    self,
    kv,
    ts=beam.DoFn.TimestampParam,
    seen=beam.DoFn.StateParam(SEEN),
    flush=beam.DoFn.TimerParam(FLUSH),
  ):
    key, (win_start, total) = kv
    seen.add((win_start, total))
    yield f'window,{key},{win_start},{total}'
    # Fires once the watermark passes the last window of the input.
    flush.set(100)

  @userstate.on_timer(FLUSH)
  def on_flush(self, key=beam.DoFn.KeyParam, seen=beam.DoFn.StateParam(SEEN)):
    items = list(seen.read())
    seen.clear()
    yield f'total,{key},{len(items)},{sum(t for _, t in items)}'


class WriteSorted(beam.DoFn):
  """Writes all lines (grouped under one key) to a single file, atomically."""

  def __init__(self, path):
    self._path = path

  def process(self, kv):
    _, lines = kv
    tmp = f'{self._path}.tmp.{os.getpid()}'
    with open(tmp, 'w') as f:
      for line in sorted(lines):
        f.write(line + '\n')
    os.replace(tmp, self._path)
    yield self._path


def build(p, output):
  return (
    p
    | 'Events' >> beam.Create(EVENTS)
    | 'Stamp' >> beam.Map(lambda e: window.TimestampedValue((e[0], e[1]), e[2]))
    | 'Fixed10s' >> beam.WindowInto(window.FixedWindows(10))
    | 'Sum' >> beam.CombinePerKey(sum)
    | 'WithWindow'
    >> beam.ParDo(FormatWindow()).with_output_types(typing.Tuple[str, typing.Tuple[int, int]])
    | 'Global' >> beam.WindowInto(window.GlobalWindows())
    | 'TotalPerKey' >> beam.ParDo(TotalPerKey())
    | 'One' >> beam.Map(lambda line: (None, line))
    | 'Gather' >> beam.GroupByKey()
    | 'Write' >> beam.ParDo(WriteSorted(output))
  )


def run(argv=None):
  parser = argparse.ArgumentParser()
  parser.add_argument('--output', required=True)
  known, rest = parser.parse_known_args(argv)
  output = os.path.abspath(known.output)
  p = beam.Pipeline(options=PipelineOptions(rest))
  build(p, output)
  result = p.run()
  state = result.wait_until_finish()
  logging.info(
    'pipeline finished: %s (job %s)', state, result.job_id() if hasattr(result, 'job_id') else '?'
  )
  if state != 'DONE':
    raise SystemExit(f'pipeline ended in state {state}')
  return output


if __name__ == '__main__':
  logging.basicConfig(level=logging.INFO, stream=sys.stderr)
  run()
