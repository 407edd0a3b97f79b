"""EARLY panes of the open window (the current interval as it runs) on
TestStream's processing-time clock: the figures so far every
`early_firing_seconds`, only after new elements, then the ON_TIME pane
as the final figure."""

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration, Timestamp

from tests.conftest import BASE_S, drain, offered, timed
from transforms.abandon_rate import AbandonRate

WINDOW = 300
LATENESS = 60
EARLY_S = 10


def _panes(stream, options, early_firing=Duration(seconds=EARLY_S)):
  with beam.Pipeline(options=options) as p:
    rows = (
      p
      | stream
      | AbandonRate(
        Duration(seconds=WINDOW),
        Duration(seconds=LATENESS),
        0,
        20,
        Duration(seconds=3600),
        early_firing=early_firing,
        # TestStream's processing time starts at 0, not at the wall clock.
        processing_clock=lambda: Timestamp(0),
      )
    )
    panes = rows['rows'] | beam.Map(
      lambda m: (m.queue_id, m.pane_index, m.pane_timing, m.total_calls, m.abandoned_calls)
    )
    yield panes


def test_early_panes_show_the_open_window_so_far_then_on_time(options):
  stream = drain(
    TestStream()
    .add_elements([timed(offered('a', 10)), timed(offered('b', 20, abandoned=True))])
    .advance_processing_time(EARLY_S + 1)
    .add_elements([timed(offered('c', 30))])
    .advance_processing_time(EARLY_S + 1)
    # Nothing new: no pane for the quiet stretch.
    .advance_processing_time(EARLY_S + 1)
    .advance_watermark_to(BASE_S + WINDOW)
  )
  for panes in _panes(stream, options):
    assert_that(
      panes,
      equal_to(
        [
          ('Q-1', 0, 'EARLY', 2, 1),
          ('Q-1', 1, 'EARLY', 3, 1),
          ('Q-1', 2, 'ON_TIME', 3, 1),
        ]
      ),
    )


def test_without_early_firing_only_the_on_time_pane(options):
  stream = drain(
    TestStream()
    .add_elements([timed(offered('a', 10))])
    .advance_processing_time(EARLY_S + 1)
    .advance_watermark_to(BASE_S + WINDOW)
  )
  for panes in _panes(stream, options, early_firing=Duration(0)):
    assert_that(panes, equal_to([('Q-1', 0, 'ON_TIME', 1, 0)]))


def test_a_closed_window_gets_no_early_pane(options):
  """Elements after the window end make LATE panes at once; the early
  firing armed by them reports nothing."""
  stream = drain(
    TestStream()
    .add_elements([timed(offered('a', 10))])
    .advance_watermark_to(BASE_S + WINDOW + 5)
    .add_elements([timed(offered('b', 20))])
    .advance_processing_time(EARLY_S + 1)
  )
  for panes in _panes(stream, options):
    assert_that(panes, equal_to([('Q-1', 0, 'ON_TIME', 1, 0), ('Q-1', 1, 'LATE', 2, 0)]))
