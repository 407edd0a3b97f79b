"""Shared test helpers: local streaming pipeline options and event builders,
and the `unit` / `integration` markers (pyproject.toml) given by directory."""

from pathlib import Path
from typing import Optional

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.window import TimestampedValue

from transforms.records import ABANDONED, ANSWERED, CallEvent, OfferedCall

# Tests under these directories talk to the real services; all others are unit.
_INTEGRATION_DIRS = ('integration', 'flink')
_TESTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items) -> None:
  for item in items:
    first = Path(item.fspath).resolve().relative_to(_TESTS_DIR).parts[0]
    item.add_marker(pytest.mark.integration if first in _INTEGRATION_DIRS else pytest.mark.unit)


# A window-aligned base time (2026-11-02T08:00:00Z) so window arithmetic in
# tests reads naturally: BASE_S + 0..299 is the first 300 s window.
BASE_S = 1793606400


def streaming_options(**extra) -> PipelineOptions:
  """Options for the main job's local runner (pipelines/local_runner.py):
  the bundle-based direct runner, which needs no network and runs
  TestStream, state and timers."""
  return PipelineOptions(runner='pipelines.local_runner.LocalRunner', streaming=True, **extra)


@pytest.fixture
def options() -> PipelineOptions:
  return streaming_options()


def call(
  call_uuid: str,
  at_s: float,
  queue_id: str = 'Q-1',
  abandoned: bool = False,
  wait: float = 5,
  event_type: str = 'CALL_ENDED',
  agent_id: Optional[str] = None,
) -> CallEvent:
  """A CallEvent at BASE_S + at_s seconds."""
  return CallEvent(
    call_uuid, event_type, int((BASE_S + at_s) * 1000), queue_id, abandoned, wait, agent_id
  )


def offered(
  call_id: str,
  at_s: float,
  queue_id: str = 'Q-1',
  abandoned: bool = False,
  wait: Optional[float] = 5,
  outcome: Optional[str] = None,
) -> OfferedCall:
  """An OfferedCall leaving its queue at BASE_S + at_s seconds, answered
  unless `abandoned` or another `outcome` is given."""
  return OfferedCall(
    call_id,
    queue_id,
    int((BASE_S + at_s) * 1000),
    outcome or (ABANDONED if abandoned else ANSWERED),
    wait,
  )


def timed(event) -> TimestampedValue:
  """The event stamped with its own event time, as ParseCallEvents does."""
  return TimestampedValue(event, event.timestamp / 1000)


def drain(stream):
  """Ends a TestStream: first a finite watermark past every deadline, then
  infinity.

  The bundle-based direct runner does not hold a stage's output watermark
  for its pending timers, so output produced by timers that fire only on the
  final jump to infinity reaches `assert_that`'s GroupByKey after its window
  closed. Real runners (Flink) hold the watermark; tests must not depend on
  that difference.
  """
  return stream.advance_watermark_to(BASE_S + 10 * 86400).advance_watermark_to_infinity()
