#!/usr/bin/env python3
"""Micro-benchmarks behind the per-element costs quoted in the README (not a
test):

    .venv/bin/python -m scripts.bench.micro [--events 200000]

1. stamping an element with its event time in a global-window step: what
   the DoFn runner does for a yielded `TimestampedValue` (a new window
   assignment) against `transforms.event_time.at_event_time`;
2. adding 500 outputs with distinct timestamps to a direct-runner bundle,
   stacked (Beam's default) and unstacked (LocalRunner);
3. the replay's watermark scan over a generated calls file: every record
   parsed, against parsing only the records that could move the watermark;
4. the direct runner's copy of one key's state with the 8 clock ticks a
   windowed key keeps armed, deep (Beam) and sharing timestamps (LocalRunner);
5. creating a bundle's executor for 500 elements, with Beam's scan of their
   windows and without it (LocalRunner, for steps without side inputs);
6. one bundle's commit of 3 upserted rows into the SQLite sink's WAL-mode
   file, with synchronous=FULL (SQLite's default) and NORMAL (the sink's);
7. encoding and decoding a shard's batch of 50 offered calls, as it crosses
   between Flink and the Python workers before a stateful step, with the
   coder Beam picks for untyped records (pickling each) and for the
   parsers' declared `OfferedCall` (its RowCoder).
"""

import argparse
import itertools
import os
import sqlite3
import tempfile
import time
import timeit
from pathlib import Path
from types import SimpleNamespace

from apache_beam import coders, pvalue
from apache_beam.runners.direct import evaluation_context, executor
from apache_beam.runners.direct.bundle_factory import _Bundle
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.trigger import _ListStateTag
from apache_beam.transforms.window import GlobalWindow, GlobalWindows, TimestampedValue, WindowFn
from apache_beam.typehints import typehints
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from pipelines import local_runner
from testing.datagen.calls import DEFAULT_START_MS, write_call_events
from transforms.call_events import call_event_time_ms
from transforms.event_time import at_event_time
from transforms.records import ABANDONED, OfferedCall

REPO = Path(__file__).resolve().parents[2]


def _us_per_call(fn, number: int) -> float:
  return timeit.timeit(fn, number=number) / number * 1e6


def stamping() -> None:
  windows = GlobalWindows()

  def runner_assigns_window():
    stamped = TimestampedValue(1, DEFAULT_START_MS / 1000.0)
    context = WindowFn.AssignContext(stamped.timestamp, stamped.value)
    return WindowedValue(stamped.value, stamped.timestamp, windows.assign(context))

  print(
    f'TimestampedValue + window assignment: '
    f'{_us_per_call(runner_assigns_window, 200_000):.2f} us/element'
  )
  print(
    f'at_event_time:                        '
    f'{_us_per_call(lambda: at_event_time(1, DEFAULT_START_MS), 200_000):.2f} us/element'
  )


def bundles() -> None:
  outputs = [at_event_time(i, DEFAULT_START_MS + 37 * i) for i in range(500)]
  pcoll = pvalue.PCollection(None)
  for stacked in (True, False):

    def fill(stacked=stacked):
      bundle = _Bundle(pcoll, stacked)
      for output in outputs:
        bundle.add(output)
      bundle.commit(None)
      return list(bundle.get_elements_iterable())

    per_element = _us_per_call(fill, 200) / len(outputs)
    print(f'bundle add, {"stacked" if stacked else "unstacked"}: {per_element:.2f} us/element')


def replay_scan(events: int) -> None:
  with tempfile.TemporaryDirectory() as work:
    path = os.path.join(work, 'calls.jsonl')
    write_call_events(path, events, seed=42)
    with open(path, 'rb') as f:
      lines = [line.rstrip(b'\n') for line in f]
  t = time.perf_counter()
  parsed_max = max(filter(None, (call_event_time_ms(line) for line in lines)))
  every_record_s = time.perf_counter() - t
  t = time.perf_counter()
  running_max = None
  for line in lines:
    event_ms = call_event_time_ms(line, running_max)
    if event_ms is not None:
      running_max = event_ms
  shortcut_s = time.perf_counter() - t
  assert running_max == parsed_max
  print(
    f'replay scan of {len(lines)} lines: every record parsed {every_record_s:.2f} s, '
    f'only records that could move the watermark {shortcut_s:.2f} s'
  )


def keyed_state_copies() -> None:
  window, tag = GlobalWindow(), _ListStateTag('state')
  for cls in (evaluation_context.DirectUnmergedState, local_runner._KeyedStateSharingTimestamps):  # pylint: disable=protected-access
    state = cls()
    for tick in range(8):
      state.set_timer(
        window, 'tick', TimeDomain.WATERMARK, Timestamp(micros=tick * 300_000_000), f'tick-{tick}'
      )
    state.add_state(window, tag, b'accumulators')
    print(
      f'keyed state copy, {cls.__name__}: {_us_per_call(state.copy, 20_000):.2f} us/key and bundle'
    )


def executor_scans() -> None:
  bundle = _Bundle(pvalue.PCollection(None), False)
  for i in range(500):
    bundle.add(at_event_time(i, DEFAULT_START_MS + i))
  bundle.commit(None)
  step = SimpleNamespace(side_inputs=())
  for cls in (executor.TransformExecutor, local_runner._TransformExecutorWithoutScan):  # pylint: disable=protected-access

    def create(cls=cls):
      return cls(None, None, bundle, None, step, None, None)

    print(
      f'executor for a 500-element bundle, {cls.__name__}: {_us_per_call(create, 2_000):.1f} us'
    )


def sqlite_commits() -> None:
  with tempfile.TemporaryDirectory() as work:
    conn = sqlite3.connect(os.path.join(work, 'bench.db'))
    conn.execute('PRAGMA journal_mode=WAL')
    conn.execute('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)')
    # A late pane's update: the same keys, new values.
    updates = itertools.count()
    for synchronous in ('FULL', 'NORMAL'):
      conn.execute(f'PRAGMA synchronous={synchronous}')

      def commit():
        value = f'{next(updates):0200d}'
        with conn:
          conn.executemany(
            'INSERT INTO t VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v',
            [(k, value) for k in range(3)],
          )

      print(f'SQLite commit, synchronous={synchronous}: {_us_per_call(commit, 500) / 1000:.2f} ms')
    conn.close()


def batch_coders() -> None:
  call = OfferedCall(
    call_id='c-123456789',
    queue_id='Q-3',
    timestamp=DEFAULT_START_MS,
    outcome=ABANDONED,
    wait_seconds=12.5,
  )
  batch = (7, [call] * 50)
  for name, element in (('untyped', typehints.Any), ('OfferedCall', OfferedCall)):
    impl = coders.registry.get_coder(typehints.Tuple[int, typehints.List[element]]).get_impl()
    encoded = impl.encode(batch)

    def round_trip(impl=impl):
      return impl.decode(impl.encode(batch))

    per_element = _us_per_call(round_trip, 2_000) / len(batch[1])
    print(
      f'batch of 50 calls, {name}: {len(encoded)} bytes, {per_element:.2f} us/element round trip'
    )


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument(
    '--events', type=int, default=200_000, help='calls in the file of the replay-scan benchmark'
  )
  args = parser.parse_args()
  stamping()
  bundles()
  replay_scan(args.events)
  keyed_state_copies()
  executor_scans()
  sqlite_commits()
  batch_coders()


if __name__ == '__main__':
  main()
