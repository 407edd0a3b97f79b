"""WindowedMetric on its own: a CombineFn per key and fixed event-time
window, read off each record's `timestamp` field, one `to_row(pane)` per
pane on `rows`, records past allowed lateness on `late` as LateArrivals
carrying the record, and the windowed step named `Window` under the
metric's label (savepoints restore into `<label>/Window/Combine/...`,
docs/upgrades.md)."""

from typing import Any, List, NamedTuple

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from tests.conftest import BASE_S
from tests.support.beam_metrics import committed_counters
from transforms.windowed_metric import WindowedMetric
from transforms.windowing import EARLY_PANE, LATE_PANE, ON_TIME_PANE, LateArrival, WindowPane

WINDOW = 60
LATENESS = 30
NAMESPACE = 'windowed_metric_test'
IDLE_TTL = 600


class Sale(NamedTuple):
  """A record of the kind the flows window: `timestamp` is its event time."""

  shop: str
  id: str
  amount: int
  timestamp: int


class ShopRow(NamedTuple):
  shop: str
  window_start: int
  window_end: int
  total: int
  sales: int
  pane_index: int
  pane_timing: str


def sale(shop: str, id_: str, amount: int, at_s: int) -> TimestampedValue:
  ms = (BASE_S + at_s) * 1000
  return TimestampedValue(Sale(shop, id_, amount, ms), ms / 1000)


class TotalFn(beam.CombineFn):
  """[total amount, number of sales]: a JSON accumulator."""

  def create_accumulator(self):
    return [0, 0]

  def add_input(self, acc, s):
    return [acc[0] + s.amount, acc[1] + 1]

  def merge_accumulators(self, accs):
    return [sum(a[0] for a in accs), sum(a[1] for a in accs)]

  def extract_output(self, acc):
    return tuple(acc)


def shop_of(s: Sale) -> str:
  return s.shop


def to_row(pane: WindowPane) -> ShopRow:
  total, sales = pane.result
  return ShopRow(
    pane.key,
    pane.window_start // 1000 - BASE_S,
    pane.window_end // 1000 - BASE_S,
    total,
    sales,
    pane.pane_index,
    pane.timing,
  )


def metric(**kwargs) -> WindowedMetric:
  return WindowedMetric(
    TotalFn(),
    shop_of,
    to_row,
    Duration(seconds=WINDOW),
    Duration(seconds=LATENESS),
    Duration(seconds=IDLE_TTL),
    metrics_namespace=NAMESPACE,
    **kwargs,
  )


def drain(stream):
  """Ends a TestStream: a watermark past every deadline of these tests
  (an hour of event time, beyond the idle TTL), then infinity. Shorter
  than tests/conftest.py's ten days: the step keeps ticking on its window
  grid while the watermark moves, so ten days of small windows cost
  seconds. The outputs are collected as they come (no assert_that window
  to close first)."""
  return stream.advance_watermark_to(BASE_S + 3600).advance_watermark_to_infinity()


_COLLECTED: List[Any] = []


def _collect(element, output):
  _COLLECTED.append((output, element))
  return ()


def run(stream, options, **kwargs):
  """(rows, late arrivals, counters) of the metric on a TestStream."""
  _COLLECTED.clear()
  p = beam.Pipeline(options=options)
  out = p | stream | 'Sales' >> metric(**kwargs)
  assert set(out) == {'rows', 'late'}
  _ = out['rows'] | 'KeepRows' >> beam.FlatMap(_collect, 'rows')
  _ = out['late'] | 'KeepLate' >> beam.FlatMap(_collect, 'late')
  result = p.run()
  result.wait_until_finish()
  rows = sorted(e for o, e in _COLLECTED if o == 'rows')
  late = sorted((e for o, e in _COLLECTED if o == 'late'), key=lambda a: a.value.id)
  _COLLECTED.clear()
  return rows, late, committed_counters(result, NAMESPACE)


def test_one_row_per_pane_per_key_and_window(options):
  stream = drain(
    TestStream()
    .add_elements(
      [
        sale('north', 'n1', 5, 1),
        sale('north', 'n2', 7, 59),
        sale('south', 's1', 3, 10),
        sale('north', 'n3', 2, 60),
      ]
    )
    .advance_watermark_to(BASE_S + 2 * WINDOW)
  )
  rows, late, counters = run(stream, options)
  assert rows == [
    ShopRow('north', 0, 60, 12, 2, 0, ON_TIME_PANE),
    ShopRow('north', 60, 120, 2, 1, 0, ON_TIME_PANE),
    ShopRow('south', 0, 60, 3, 1, 0, ON_TIME_PANE),
  ]
  assert late == []
  assert counters.get('on_time_panes') == 3


def test_late_rows_accumulate_and_expired_records_go_late_whole(options):
  stream = drain(
    TestStream()
    .add_elements([sale('north', 'n1', 5, 1)])
    .advance_watermark_to(BASE_S + WINDOW + 10)
    .add_elements([sale('north', 'n2', 4, 20)])
    .advance_watermark_to(BASE_S + WINDOW + LATENESS)
    .add_elements([sale('north', 'too-late', 100, 30)])
  )
  rows, late, counters = run(stream, options)
  assert rows == [
    ShopRow('north', 0, 60, 5, 1, 0, ON_TIME_PANE),
    ShopRow('north', 0, 60, 9, 2, 1, LATE_PANE),
  ]
  assert len(late) == 1
  arrival = late[0]
  assert isinstance(arrival, LateArrival)
  # The record itself, as it came in: a late-events row can be built from it.
  assert arrival.value == Sale('north', 'too-late', 100, (BASE_S + 30) * 1000)
  assert (arrival.key, arrival.event_timestamp) == ('north', (BASE_S + 30) * 1000)
  assert (arrival.window_start, arrival.window_end) == ((BASE_S) * 1000, (BASE_S + WINDOW) * 1000)
  assert counters.get('late_events') == 1
  assert counters.get('late_panes') == 1


def test_the_event_time_is_the_records_timestamp_field(options):
  """The element's Beam timestamp is not what places it: a record stamped
  in window [0, 60) whose `timestamp` field says 70 s is in [60, 120)."""
  record = Sale('north', 'n1', 5, (BASE_S + 70) * 1000)
  stream = drain(
    TestStream()
    .add_elements([TimestampedValue(record, BASE_S + 10)])
    .advance_watermark_to(BASE_S + 2 * WINDOW)
  )
  rows, _, _ = run(stream, options)
  assert rows == [ShopRow('north', 60, 120, 5, 1, 0, ON_TIME_PANE)]


def test_early_rows_of_the_open_window(options):
  stream = drain(
    TestStream()
    .add_elements([sale('north', 'n1', 5, 1)])
    .advance_processing_time(11)
    .add_elements([sale('north', 'n2', 1, 2)])
    .advance_processing_time(11)
    .advance_watermark_to(BASE_S + WINDOW)
  )
  rows, _, counters = run(
    stream, options, early_firing=Duration(seconds=10), processing_clock=lambda: Timestamp(0)
  )
  assert rows == [
    ShopRow('north', 0, 60, 5, 1, 0, EARLY_PANE),
    ShopRow('north', 0, 60, 6, 2, 1, EARLY_PANE),
    ShopRow('north', 0, 60, 6, 2, 2, ON_TIME_PANE),
  ]
  assert counters.get('early_panes') == 2


def test_out_of_orderness_is_passed_on(options):
  """With a 10 s bound, the watermark at the expiry is 10 s short of it."""
  stream = drain(
    TestStream()
    .add_elements([sale('north', 'n1', 5, 1)])
    .advance_watermark_to(BASE_S + WINDOW + LATENESS)
    .add_elements([sale('north', 'still-in', 1, 2)])
  )
  rows, late, _ = run(stream, options, max_out_of_orderness=Duration(seconds=10))
  assert rows == [
    ShopRow('north', 0, 60, 5, 1, 0, ON_TIME_PANE),
    ShopRow('north', 0, 60, 6, 2, 1, LATE_PANE),
  ]
  assert late == []


def test_the_windowed_step_is_named_window_under_the_label():
  p = beam.Pipeline()
  _ = p | beam.Create([]) | 'Sales' >> metric()
  labels = []

  class Visitor(beam.pipeline.PipelineVisitor):
    def enter_composite_transform(self, node):
      labels.append(node.full_label)

    def visit_transform(self, node):
      labels.append(node.full_label)

  p.visit(Visitor())
  assert 'Sales/Window' in labels
  assert any(label.startswith('Sales/Window/Combine') for label in labels)


@pytest.mark.parametrize('size, lateness', [(0, 30), (60, -1)])
def test_nonsense_windows_are_refused(size, lateness):
  with pytest.raises(ValueError):
    WindowedMetric(
      TotalFn(),
      shop_of,
      to_row,
      Duration(seconds=size),
      Duration(seconds=lateness),
      Duration(seconds=3600),
      NAMESPACE,
    )
