"""Building the main job's graph does no I/O on its stores: no file is
created or written, no connection opened. The sinks are prepared by the
launch step `build` returns (run() calls it before submitting the job)."""

import contextlib
import os
import socket
import sqlite3
import sys
from typing import Iterator, List, Tuple

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from options.config import SinkConfigs
from pipelines import contact_center
from transforms.sink_registry import SINKS, result_sink

JOB_INPUTS = [
  '--call_events=samples/call_events.jsonl',
  '--data_actions=samples/data_actions.jsonl',
  '--streaming',
]
# Python's audit events for what a graph build must not do (the replay
# reading its input files is allowed: it plans the stream from them).
_IO_EVENTS = ('open', 'os.mkdir', 'os.rename', 'os.remove', 'socket.connect', 'sqlite3.connect')
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
_recordings: List[List[Tuple[str, tuple]]] = []
_hooked = False


def _audit(event: str, args: tuple) -> None:
  if _recordings and event in _IO_EVENTS:
    _recordings[-1].append((event, args))


def _is_io(event: str, args: tuple) -> bool:
  if event != 'open':
    return True
  _, mode, flags = args
  if isinstance(mode, str):
    return any(c in mode for c in 'wax+')
  return bool(flags & _WRITE_FLAGS)


@contextlib.contextmanager
def recorded_io() -> Iterator[List[Tuple[str, tuple]]]:
  """The file writes, directory changes and connections made inside."""
  global _hooked  # pylint: disable=global-statement
  if not _hooked:
    # An audit hook cannot be removed; it records only inside this block.
    sys.addaudithook(_audit)
    _hooked = True
  events: List[Tuple[str, tuple]] = []
  _recordings.append(events)
  try:
    yield events
  finally:
    _recordings.pop()
  events[:] = [e for e in events if _is_io(*e)]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_building_the_job_creates_no_sqlite_file(tmp_path):
  path = tmp_path / 'out' / 'contact_center.db'
  options = PipelineOptions([*JOB_INPUTS, f'--sqlite_path={path}'])
  pipeline = beam.Pipeline(options=options)  # Beam makes a temp dir here
  with recorded_io() as events:
    prepare_sinks = contact_center.build(pipeline, options)
  assert events == []
  assert not path.parent.exists()

  prepare_sinks()
  with contextlib.closing(sqlite3.connect(path)) as conn:
    tables = {
      name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    }
  assert tables == {
    'abandon_metrics',
    'late_events',
    'dead_letters',
    'interaction_volumes',
    'pattern_alerts',
    'queue_status',
    'waiting_contacts',
    'rolling_metrics',
    'daily_metrics',
    'window_contacts',
    'metric_revisions',
  }


def test_the_recorder_sees_what_preparing_a_sink_does(tmp_path):
  # The check above can fail: preparing is I/O, and it is recorded.
  options = PipelineOptions([*JOB_INPUTS, f'--sqlite_path={tmp_path / "out.db"}'])
  prepare_sinks = contact_center.build(beam.Pipeline(options=options), options)
  with recorded_io() as events:
    prepare_sinks()
  assert 'sqlite3.connect' in {event for event, _ in events}


def test_an_unreachable_cassandra_fails_at_launch_not_at_build(tmp_path):
  port = free_port()  # nothing listens there
  db = tmp_path / 'out.db'
  args = [
    *JOB_INPUTS,
    '--sink=cassandra',
    '--sink=sqlite',
    f'--sqlite_path={db}',
    '--cassandra_hosts=127.0.0.1',
    f'--cassandra_port={port}',
  ]
  options = PipelineOptions(args)
  pipeline = beam.Pipeline(options=options)  # Beam makes a temp dir here
  with recorded_io() as events:
    prepare_sinks = contact_center.build(pipeline, options)
  assert events == []

  message = f'Cassandra at 127.0.0.1:{port}: connection refused'
  with pytest.raises(ValueError, match=message):
    prepare_sinks()
  # run() stops at the same step, before the job starts: the sink after
  # Cassandra was never prepared, no row written.
  with pytest.raises(ValueError, match=message) as refused:
    contact_center.run(args)
  assert '\n' not in str(refused.value)
  assert not db.exists()


def test_sinks_come_from_the_registry():
  options = PipelineOptions(['--sqlite_path=unused.db', *(f'--sink={name}' for name in SINKS)])
  configs = SinkConfigs.from_options(options)
  assert [type(result_sink(name, configs)).__name__ for name in SINKS] == [
    'SqliteSink',
    'CassandraSink',
    'KafkaSink',
  ]
  with pytest.raises(ValueError, match="unknown sink 'parquet'; known: sqlite, cassandra, kafka"):
    result_sink('parquet', configs)
