"""ComputeRollingMetrics on TestStreams of AbandonMetrics panes: the rows
of each span ending at each window end, restated by a LATE pane; EARLY,
stale and expired panes ignored and counted; state dropped by its timers;
panes that cannot be counted dead-lettered."""

import functools
from typing import Any, List, Tuple

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from tests.conftest import BASE_S, streaming_options
from tests.support.beam_metrics import committed_counters
from tests.support.runner_clock import COLLECTED, collect, runner_clock  # noqa: F401 (fixture)
from transforms.change_log import InstanceCopies
from transforms.records import AbandonMetrics, RollingMetrics
from transforms.rolling_metrics import ComputeRollingMetrics, span_millis

T0 = BASE_S * 1000
MIN = 60_000
NAMESPACE = 'rolling_metrics_test'


def pane(
  start_min: int,
  pane_index: int,
  timing: str,
  calls: int,
  abandoned: int = 0,
  queue: str = 'Q-1',
  size_min: int = 5,
  **extra: Any,
) -> AbandonMetrics:
  """A pane of window [T0 + start_min, + size_min): `calls` offered,
  `abandoned` of them abandoned, the others answered within the service
  level after 4 s each."""
  answered = calls - abandoned
  fields = dict(
    queue_id=queue,
    window_start=T0 + start_min * MIN,
    window_end=T0 + (start_min + size_min) * MIN,
    total_calls=calls,
    abandoned_calls=abandoned,
    short_abandoned_calls=0,
    answered_within_sl=answered,
    total_wait_seconds=4.0 * answered,
    abandon_rate=0.0,
    service_level=0.0,
    pane_index=pane_index,
    pane_timing=timing,
    answered_calls=answered,
    answered_wait_seconds=4.0 * answered,
    abandon_rate_definition='abandoned_over_offered',
    service_level_definition='answered_within_over_offered',
    queue_name='Sales',
  )
  return AbandonMetrics(**{**fields, **extra})


def at(p: AbandonMetrics) -> TimestampedValue:
  """The pane stamped as AbandonRate stamps an ON_TIME pane: its end."""
  return TimestampedValue(p, p.window_end / 1000)


def wm(minutes: float) -> float:
  return BASE_S + minutes * 60


def run(
  stream: TestStream,
  spans=('15m',),
  lateness_s: int = 60,
  out_of_orderness_s: int = 0,
  **options: Any,
) -> Tuple[List, List, dict]:
  """(rows in emission order, dead letters, counters)."""
  pipeline = beam.Pipeline(options=streaming_options())
  out = (
    pipeline
    | stream
    | ComputeRollingMetrics(
      spans=spans,
      allowed_lateness=Duration(seconds=lateness_s),
      max_out_of_orderness=Duration(seconds=out_of_orderness_s),
      metrics_namespace=NAMESPACE,
      processing_clock=lambda: Timestamp(1234),
      **options,
    )
  )
  _ = out['rolling_metrics'] | 'Rows' >> beam.FlatMap(collect, 'rows')
  _ = out['dead_letters'] | 'Dead' >> beam.FlatMap(collect, 'dead')
  _ = (
    out['rolling_metrics']
    | 'Stamps' >> beam.Map(lambda r, t=beam.DoFn.TimestampParam: (r.span_end, t.micros // 1000))
    | 'KeepStamps' >> beam.FlatMap(collect, 'stamps')
  )
  result = pipeline.run()
  result.wait_until_finish()
  rows = [r for o, r in COLLECTED if o == 'rows']
  dead = [r for o, r in COLLECTED if o == 'dead']
  return rows, dead, committed_counters(result, NAMESPACE)


def short(row: RollingMetrics) -> Tuple:
  """(span, span start and end in minutes from T0, calls, abandoned,
  abandon rate, windows, panes counted)."""
  return (
    row.span,
    (row.span_start - T0) // MIN,
    (row.span_end - T0) // MIN,
    row.total_calls,
    row.abandoned_calls,
    row.abandon_rate,
    row.windows,
    row.panes_counted,
  )


def test_span_names():
  assert [span_millis(s) for s in ('15m', '30m', '60m')] == [15 * MIN, 30 * MIN, 60 * MIN]
  with pytest.raises(ValueError, match="'5m'.*15m, 30m, 60m"):
    span_millis('5m')
  with pytest.raises(ValueError, match='distinct'):
    ComputeRollingMetrics(spans=('15m', '15m'), allowed_lateness=Duration(0))
  with pytest.raises(TypeError, match='allowed lateness'):
    ComputeRollingMetrics(allowed_lateness=60)


def test_a_late_pane_restates_every_span_containing_its_window(runner_clock):
  stream = (
    TestStream()
    .add_elements([at(pane(0, 0, 'ON_TIME', 10, 1))])
    .advance_watermark_to(wm(5))
    .add_elements([at(pane(5, 0, 'ON_TIME', 10, 2))])
    .advance_watermark_to(wm(10))
    .add_elements([at(pane(10, 0, 'ON_TIME', 20, 0))])
    .advance_watermark_to(wm(15))
    .add_elements([at(pane(15, 0, 'ON_TIME', 10, 5))])
    .advance_watermark_to(wm(20))
    # Window 5 restated: 2 more calls, both abandoned.
    .add_elements([TimestampedValue(pane(5, 1, 'LATE', 12, 4), wm(7))])
    .advance_watermark_to_infinity()
  )
  rows, dead, counters = run(stream, spans=('15m', '30m'))
  assert [short(r) for r in rows] == [
    ('15m', -10, 5, 10, 1, 0.1, 1, 1),
    ('30m', -25, 5, 10, 1, 0.1, 1, 1),
    ('15m', -5, 10, 20, 3, 0.15, 2, 2),
    ('30m', -20, 10, 20, 3, 0.15, 2, 2),
    ('15m', 0, 15, 40, 3, 0.075, 3, 3),
    ('30m', -15, 15, 40, 3, 0.075, 3, 3),
    ('15m', 5, 20, 40, 7, 0.175, 3, 3),
    ('30m', -10, 20, 50, 8, 0.16, 4, 4),
    # The LATE pane of window 5: the spans ending at 10, 15 and 20 hold
    # it (the one ending at 5 does not).
    ('15m', -5, 10, 22, 5, 0.2273, 2, 3),
    ('15m', 0, 15, 42, 5, 0.119, 3, 4),
    ('15m', 5, 20, 42, 9, 0.2143, 3, 4),
    ('30m', -20, 10, 22, 5, 0.2273, 2, 3),
    ('30m', -15, 15, 42, 5, 0.119, 3, 4),
    ('30m', -10, 20, 52, 10, 0.1923, 4, 5),
  ]
  last = rows[-1]
  assert last.queue_id == 'Q-1' and last.channel == 'voice' and last.queue_name == 'Sales'
  assert last.answered_calls == 42 and last.answered_wait_seconds == 168.0
  assert last.asa_seconds == 4.0 and last.service_level == round(42 / 52, 4)
  assert last.abandon_rate_definition == 'abandoned_over_offered'
  assert dead == []
  assert counters.get('stale_panes', 0) == 0
  # Each row is timestamped at its span's end.
  stamps = [stamp for o, stamp in COLLECTED if o == 'stamps']
  assert len(stamps) == len(rows) and all(end == at for end, at in stamps)


def test_the_state_format_is_versioned():
  from transforms.rolling_metrics import ROLLING_LOG, _RollingState
  from transforms.span_counts import SpanShard, window_counts
  from transforms.state_coders import StateFormatError

  shard = SpanShard()
  shard.armed_at = T0 + 21 * MIN
  window = window_counts(pane(5, 2, 'LATE', 7, 1))
  for queue, clock in (('Q-1', T0), ('Q-2', None)):
    state = shard.keys[(queue, 'voice')] = _RollingState()
    state.clock = clock
    state.windows[window.window_start] = window
    shard.changed.add((queue, 'voice'))
  head, keys = _Cell(ROLLING_LOG.head_coder), _Bag(ROLLING_LOG.keys_coder)
  ROLLING_LOG.write(InstanceCopies(), 0, shard, head, keys)
  assert head.encoded[0] == 1 and all(cell[0] == 1 for cell in keys.encoded)
  decoded = stored(ROLLING_LOG, head, keys)
  assert decoded.armed_at == shard.armed_at
  assert {k: (s.clock, s.windows) for k, s in decoded.keys.items()} == {
    ('Q-1', 'voice'): (T0, {window.window_start: window}),
    ('Q-2', 'voice'): (None, {window.window_start: window}),
  }
  with pytest.raises(StateFormatError, match='rolling metrics head: state in format v2'):
    ROLLING_LOG.head_coder.decode(b'\x02' + head.encoded[1:])


def test_early_stale_and_copied_panes_change_nothing(runner_clock):
  stream = (
    TestStream()
    .add_elements([at(pane(0, 0, 'EARLY', 3))])  # not final: ignored
    .add_elements([at(pane(0, 1, 'EARLY', 5))])
    .advance_watermark_to(wm(5))
    .add_elements([at(pane(0, 2, 'ON_TIME', 6))])
    .add_elements([at(pane(0, 4, 'LATE', 9))])
    # Overtaken in transit by the pane above, and a copy of it.
    .add_elements([at(pane(0, 3, 'LATE', 8)), at(pane(0, 4, 'LATE', 9))])
    .advance_watermark_to_infinity()
  )
  rows, _, counters = run(stream)
  assert [short(r) for r in rows] == [
    ('15m', -10, 5, 6, 0, 0.0, 1, 3),
    ('15m', -10, 5, 9, 0, 0.0, 1, 5),
  ]
  assert counters['early_panes_ignored'] == 2
  assert counters['stale_panes'] == 2


def _expiry_stream() -> TestStream:
  return (
    TestStream()
    .add_elements([at(pane(0, 0, 'ON_TIME', 1)), at(pane(20, 0, 'ON_TIME', 2))])
    .advance_watermark_to(wm(22))
    # Ended 2 min before the key's clock, past the lateness: ignored.
    .add_elements([TimestampedValue(pane(15, 1, 'LATE', 7), wm(16))])
    # Still within it: its spans are summed whole.
    .add_elements([TimestampedValue(pane(20, 1, 'LATE', 3), wm(21))])
    .advance_watermark_to_infinity()
  )


def test_windows_are_dropped_after_the_longest_span_and_lateness(runner_clock):
  # 15m span, 1 min lateness: window 0-5 is dropped at 21 min.
  rows, _, counters = run(_expiry_stream())
  assert [short(r) for r in rows] == [
    ('15m', -10, 5, 1, 0, 0.0, 1, 1),
    ('15m', 10, 25, 2, 0, 0.0, 1, 1),
    ('15m', 10, 25, 3, 0, 0.0, 1, 2),
  ]
  assert counters['expired_panes'] == 1
  assert counters['windows_dropped'] == 2
  assert counters['windows_held'] == 0  # in and out: nothing left


def test_timers_wait_for_the_out_of_orderness(runner_clock):
  # With 2 min of out-of-orderness window 0-5 goes at watermark 23 min:
  # at 22 min the key has no clock yet and the pane of window 15 counts.
  rows, _, counters = run(_expiry_stream(), out_of_orderness_s=120)
  assert [short(r) for r in rows][2:] == [
    ('15m', 5, 20, 7, 0, 0.0, 1, 2),
    ('15m', 10, 25, 9, 0, 0.0, 2, 3),
    ('15m', 10, 25, 10, 0, 0.0, 2, 4),
  ]
  assert counters.get('expired_panes', 0) == 0
  assert counters['windows_dropped'] == 3


def test_panes_that_cannot_be_counted_are_dead_letters(runner_clock):
  stream = (
    TestStream()
    .add_elements(
      [
        at(pane(0, 0, 'ON_TIME', 1, size_min=10)),  # 10 min does not divide 15m
        at(pane(0, 0, 'ON_TIME', 1, abandon_rate_definition='made_up')),
        at(pane(0, 0, 'ON_TIME', 1, size_min=0)),
        at(pane(5, 0, 'ON_TIME', 1, queue='Q-2')),
      ]
    )
    .advance_watermark_to_infinity()
  )
  rows, dead, counters = run(stream, spans=('15m',))
  assert [(r.queue_id, short(r)) for r in rows] == [('Q-2', ('15m', -5, 10, 1, 0, 0.0, 1, 1))]
  assert sorted((d.reason, d.source, d.received_at) for d in dead) == [
    ('bad_window', NAMESPACE, 1234000),
    ('unknown_metric_definition', NAMESPACE, 1234000),
    ('window_does_not_divide_span', NAMESPACE, 1234000),
  ]
  assert all(d.origin.startswith('abandon_metrics/voice/Q-1/') for d in dead)
  assert 'made_up' in next(d.detail for d in dead if d.reason == 'unknown_metric_definition')
  assert counters['rejected_panes'] == 3


def test_rows_of_keys_are_apart_and_empty_definitions_are_the_defaults(runner_clock):
  old = pane(0, 0, 'ON_TIME', 4, 1)._replace(abandon_rate_definition='', queue_name='')
  chat = pane(0, 0, 'ON_TIME', 2, 2, channel='chat')
  stream = TestStream().add_elements([at(old), at(chat)]).advance_watermark_to_infinity()
  rows, _, _ = run(stream)
  by_key = {(r.queue_id, r.channel): r for r in rows}
  assert by_key[('Q-1', 'voice')].abandon_rate == 0.25
  assert by_key[('Q-1', 'voice')].abandon_rate_definition == 'abandoned_over_offered'
  assert by_key[('Q-1', 'voice')].queue_name == ''
  assert by_key[('Q-1', 'chat')].abandon_rate == 1.0


@pytest.mark.parametrize('shards', [1, 2, 128])
def test_keys_sharing_a_shard_keep_their_own_windows_and_clocks(runner_clock, shards):
  """Whatever the keys a shard holds (shards=1: all), each key's rows,
  expiry and clock are its own: the shard's timer drops Q-1's first window
  at 21 min, and Q-1's clock then refuses a pane Q-2 (no clock yet)
  counts."""
  stream = (
    TestStream()
    # One batch: three keys, maybe in one shard.
    .add_elements(
      [
        at(pane(0, 0, 'ON_TIME', 1)),
        at(pane(20, 0, 'ON_TIME', 2)),
        at(pane(10, 0, 'ON_TIME', 2, queue='Q-2')),
        at(pane(10, 0, 'ON_TIME', 5, 5, channel='chat')),
      ]
    )
    .advance_watermark_to(wm(22))
    .add_elements(
      [
        TimestampedValue(pane(15, 0, 'LATE', 7), wm(16)),  # Q-1's clock: 21 min
        TimestampedValue(pane(15, 0, 'LATE', 3, queue='Q-2'), wm(16)),
      ]
    )
    .advance_watermark_to_infinity()
  )
  rows, dead, counters = run(stream, shards=shards)
  assert sorted((r.queue_id, r.channel, short(r)) for r in rows) == [
    ('Q-1', 'chat', ('15m', 0, 15, 5, 5, 1.0, 1, 1)),
    ('Q-1', 'voice', ('15m', -10, 5, 1, 0, 0.0, 1, 1)),
    ('Q-1', 'voice', ('15m', 10, 25, 2, 0, 0.0, 1, 1)),
    ('Q-2', 'voice', ('15m', 0, 15, 2, 0, 0.0, 1, 1)),
    ('Q-2', 'voice', ('15m', 5, 20, 5, 0, 0.0, 2, 2)),
  ]
  assert dead == []
  assert counters['expired_panes'] == 1
  assert counters['windows_dropped'] == 5
  assert counters['windows_held'] == 0


def test_the_shard_count_must_be_positive():
  with pytest.raises(ValueError, match='shards'):
    ComputeRollingMetrics(allowed_lateness=Duration(0), shards=0)


class _Cell:
  """A state cell as the runner keeps it: encoded by the step's coder."""

  def __init__(self, coder):
    self.coder, self.encoded = coder, None

  def read(self):
    return None if self.encoded is None else self.coder.decode(self.encoded)

  def write(self, value):
    self.encoded = self.coder.encode(value)

  def clear(self):
    self.encoded = None


class _Bag:
  """A bag state as the runner keeps it: each value encoded by the coder."""

  def __init__(self, coder):
    self.coder, self.encoded = coder, []

  def read(self):
    return [self.coder.decode(cell) for cell in self.encoded]

  def add(self, value):
    self.encoded.append(self.coder.encode(value))

  def clear(self):
    self.encoded = []


def stored(log, head, keys):
  """The shard as read back from its cells, with no instance copy."""
  return log.read(InstanceCopies(), 0, head, keys)


class _Timer:
  def __init__(self):
    self.armed = []

  def set(self, timestamp, dynamic_timer_tag=''):
    self.armed.append((timestamp.micros // 1000, dynamic_timer_tag))


def test_one_timer_per_shard_at_its_earliest_expiry_and_keys_left_empty_go():
  from transforms.rolling_metrics import ROLLING_LOG, _RollingMetricsFn

  fn = _RollingMetricsFn(['15m'], 60_000, 0, NAMESPACE, lambda: Timestamp(1234))
  head, keys = _Cell(ROLLING_LOG.head_coder), _Bag(ROLLING_LOG.keys_coder)
  cells = {'head_state': head, 'keys_state': keys}
  timer = _Timer()
  panes = [pane(10, 0, 'ON_TIME', 1), pane(0, 0, 'ON_TIME', 1, queue='Q-2')]
  list(fn.process((0, panes), **cells, expiry=timer))
  # Expiry: end + 15 min + 1 min. Q-2's window 0-5 is the shard's earliest.
  assert timer.armed == [(T0 + 21 * MIN, '')]
  list(fn.process((0, [pane(20, 0, 'ON_TIME', 1, queue='Q-2')]), **cells, expiry=timer))
  assert len(timer.armed) == 1  # a later expiry: armed as it was
  expire = functools.partial(fn.on_expiry, shard_id=0, **cells, expiry=timer)
  expire(fired=Timestamp(micros=(T0 + 21 * MIN) * 1000))
  shard = stored(ROLLING_LOG, head, keys)
  assert timer.armed[-1] == (T0 + 31 * MIN, '') and shard.armed_at == T0 + 31 * MIN
  assert shard.keys[('Q-2', 'voice')].clock == T0 + 21 * MIN
  assert shard.keys[('Q-1', 'voice')].clock is None
  expire(fired=Timestamp(micros=(T0 + 31 * MIN) * 1000))
  # Q-1 had nothing left: gone from the shard's map.
  assert list(stored(ROLLING_LOG, head, keys).keys) == [('Q-2', 'voice')]
  assert timer.armed[-1] == (T0 + 41 * MIN, '')
  expire(fired=Timestamp(micros=(T0 + 41 * MIN) * 1000))
  # Empty: cleared, nothing armed.
  assert head.encoded is None and keys.encoded == [] and len(timer.armed) == 3
