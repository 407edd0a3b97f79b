"""ReplayFiles on its own: JSON-lines files replayed as unbounded streams,
one SourceRecord per line in file order, polls of `poll_size` lines, and
before each poll a watermark at the largest valid event time delivered so
far (invalid records never move it), per source; its progress metrics and
its refusals.

The watermark is observed the way a stateful step sees it: a probe keeps
event-time timers armed on a 10 s grid and each record reports the latest
grid point whose timer had fired when it arrived."""

import json
from typing import Any, List, Optional

import apache_beam as beam
import pytest
from apache_beam.coders import BooleanCoder, VarIntCoder
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from tests.conftest import BASE_S
from tests.support.beam_metrics import committed_counters
from transforms.records import SourceRecord
from transforms.replay import (
  EVENT_TIME_DISTRIBUTION,
  LINES_COUNTER,
  METRICS_NAMESPACE,
  ReplayFiles,
  ReplaySource,
)

BASE_MS = BASE_S * 1000
GRID_MS = 10_000
GRID_POINTS = 40

_COLLECTED: List[Any] = []


def _collect(element, output):
  _COLLECTED.append((output, element))
  return ()


def event_time_ms(raw: bytes, above_ms: Optional[int]) -> Optional[int]:
  """A record's event time if it is valid (JSON with "valid" not false)
  and above `above_ms`."""
  try:
    obj = json.loads(raw)
  except ValueError:
    return None
  if not isinstance(obj, dict) or obj.get('valid') is False:
    return None
  event_ms = obj['timestamp']
  return event_ms if above_ms is None or event_ms > above_ms else None


def line(at_s: int, valid: bool = True, **fields) -> str:
  obj = dict({'timestamp': BASE_MS + at_s * 1000}, **fields)
  if not valid:
    obj['valid'] = False
  return json.dumps(obj)


def write(tmp_path, name: str, lines: List[str], trailing_newline: bool = True) -> str:
  path = tmp_path / name
  text = '\n'.join(lines) + ('\n' if trailing_newline else '')
  path.write_bytes(text.encode())
  return str(path)


class _WatermarkProbe(beam.DoFn):
  """Per record: (origin, the latest grid point, in s after BASE_S, whose
  timer had fired when the record arrived; None before any)."""

  ARMED = ReadModifyWriteStateSpec('armed', BooleanCoder())
  SEEN = ReadModifyWriteStateSpec('seen', VarIntCoder())
  TICK = TimerSpec('tick', TimeDomain.WATERMARK)

  def process(
    self,
    keyed,
    armed=beam.DoFn.StateParam(ARMED),
    seen=beam.DoFn.StateParam(SEEN),
    tick=beam.DoFn.TimerParam(TICK),
  ):
    _, record = keyed
    if not armed.read():
      armed.write(True)
      for k in range(GRID_POINTS):
        tick.set(Timestamp(micros=(BASE_MS + k * GRID_MS) * 1000), dynamic_timer_tag=str(k))
    fired = seen.read()
    yield record.origin, None if fired is None else (fired - BASE_MS) // 1000

  @on_timer(TICK)
  def on_tick(self, fired_at=beam.DoFn.TimestampParam, seen=beam.DoFn.StateParam(SEEN)):
    fired_ms = fired_at.micros // 1000
    seen.write(max(seen.read() or fired_ms, fired_ms))


def replay(sources, poll_size, options, probe=True):
  """Runs ReplayFiles; returns ({source: [records]}, {source: {origin:
  watermark seen}}, result)."""
  _COLLECTED.clear()
  replay_files = ReplayFiles(sources, poll_size)
  p = beam.Pipeline(options=options)
  outputs = p | replay_files
  for name, records in outputs.items():
    _ = records | f'Keep[{name}]' >> beam.FlatMap(_collect, ('record', name))
    if probe:
      _ = (
        records
        | f'Key[{name}]' >> beam.Map(lambda r: (0, r))
        | f'Probe[{name}]' >> beam.ParDo(_WatermarkProbe())
        | f'KeepSeen[{name}]' >> beam.FlatMap(_collect, ('seen', name))
      )
  result = p.run()
  result.wait_until_finish()
  records, seen = {}, {}
  for (kind, name), element in _COLLECTED:
    if kind == 'record':
      records.setdefault(name, []).append(element)
    else:
      seen.setdefault(name, {})[element[0]] = element[1]
  _COLLECTED.clear()
  return records, seen, result


def _line_no(record: SourceRecord) -> int:
  return int(record.origin.rsplit(':', 1)[1])


LINES = [
  line(10),  # 1
  line(20),  # 2
  line(300, valid=False),  # 3: invalid, must not move the watermark
  line(15),  # 4: behind the watermark, does not move it
  'not json at all',  # 5
  line(30),  # 6
  line(25),  # 7
]


def test_every_line_is_one_source_record_in_file_order(tmp_path, options):
  path = write(tmp_path, 'calls.jsonl', LINES)
  records, _, _ = replay([ReplaySource('calls', path, event_time_ms)], 2, options, probe=False)
  assert sorted(records['calls'], key=_line_no) == [
    SourceRecord('calls', f'calls.jsonl:{n}', text.encode()) for n, text in enumerate(LINES, 1)
  ]


def test_a_last_line_without_newline_and_blank_lines_are_delivered(tmp_path, options):
  lines = [line(10), '', line(20)]
  path = write(tmp_path, 'x.jsonl', lines, trailing_newline=False)
  records, _, _ = replay([ReplaySource('x', path, event_time_ms)], 2, options, probe=False)
  assert sorted((_line_no(r), r.raw) for r in records['x']) == [
    (1, lines[0].encode()),
    (2, b''),
    (3, lines[2].encode()),
  ]


@pytest.mark.parametrize(
  'poll_size, expected',
  [
    # Before each poll: the largest valid event time of the polls before.
    (1, {1: None, 2: 10, 3: 20, 4: 20, 5: 20, 6: 20, 7: 30}),
    (2, {1: None, 2: None, 3: 20, 4: 20, 5: 20, 6: 20, 7: 30}),
    (3, {1: None, 2: None, 3: None, 4: 20, 5: 20, 6: 20, 7: 30}),
    (7, {n: None for n in range(1, 8)}),
  ],
)
def test_the_watermark_before_a_poll_is_the_largest_valid_event_time_so_far(
  tmp_path, options, poll_size, expected
):
  path = write(tmp_path, 'calls.jsonl', LINES)
  _, seen, _ = replay([ReplaySource('calls', path, event_time_ms)], poll_size, options)
  assert {int(o.rsplit(':', 1)[1]): s for o, s in seen['calls'].items()} == expected


def test_each_source_has_its_own_watermark(tmp_path, options):
  """`ahead`'s event times run far ahead of `behind`'s; `behind`'s records
  see only their own watermark."""
  ahead = write(tmp_path, 'ahead.jsonl', [line(200), line(210), line(220)])
  behind = write(tmp_path, 'behind.jsonl', [line(10), line(20), line(30)])
  records, seen, _ = replay(
    [ReplaySource('ahead', ahead, event_time_ms), ReplaySource('behind', behind, event_time_ms)],
    1,
    options,
  )
  assert seen['behind'] == {'behind.jsonl:1': None, 'behind.jsonl:2': 10, 'behind.jsonl:3': 20}
  assert seen['ahead'] == {'ahead.jsonl:1': None, 'ahead.jsonl:2': 200, 'ahead.jsonl:3': 210}
  # Each output holds its own file's records only.
  assert {r.source for r in records['ahead']} == {'ahead'}
  assert sorted(r.origin for r in records['behind']) == [f'behind.jsonl:{n}' for n in (1, 2, 3)]


def test_total_lines_and_the_progress_metrics(tmp_path, options):
  calls = write(tmp_path, 'calls.jsonl', LINES)
  agents = write(tmp_path, 'agents.jsonl', [line(5), line(40, valid=False), line(7)])
  sources = [
    ReplaySource('calls', calls, event_time_ms),
    ReplaySource('agents', agents, event_time_ms),
  ]
  assert ReplayFiles(sources, 3).total_lines == len(LINES) + 3
  _, _, result = replay(sources, 3, options, probe=False)
  assert committed_counters(result, METRICS_NAMESPACE) == {LINES_COUNTER: len(LINES) + 3}
  distributions = [
    d
    for d in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))[
      'distributions'
    ]
    if d.key.metric.name == EVENT_TIME_DISTRIBUTION
  ]
  # One per source's reader. The largest valid event time delivered: the
  # invalid 300 s and 40 s lines do not count.
  assert max(d.committed.max for d in distributions) == BASE_MS + 30_000


def test_an_empty_file_delivers_nothing(tmp_path, options):
  empty = write(tmp_path, 'empty.jsonl', [], trailing_newline=False)
  other = write(tmp_path, 'other.jsonl', [line(10)])
  sources = [
    ReplaySource('empty', empty, event_time_ms),
    ReplaySource('other', other, event_time_ms),
  ]
  assert ReplayFiles(sources, 5).total_lines == 1
  records, _, _ = replay(sources, 5, options, probe=False)
  assert 'empty' not in records
  assert [r.origin for r in records['other']] == ['other.jsonl:1']


@pytest.mark.parametrize('poll_size', [0, -1])
def test_a_poll_size_below_one_is_refused(tmp_path, poll_size):
  path = write(tmp_path, 'x.jsonl', [line(10)])
  with pytest.raises(ValueError, match='poll size'):
    ReplayFiles([ReplaySource('x', path, event_time_ms)], poll_size)


def test_no_sources_or_two_of_one_name_are_refused(tmp_path):
  path = write(tmp_path, 'x.jsonl', [line(10)])
  with pytest.raises(ValueError, match='distinct'):
    ReplayFiles([], 1)
  with pytest.raises(ValueError, match='distinct'):
    ReplayFiles([ReplaySource('x', path, event_time_ms), ReplaySource('x', path, event_time_ms)], 1)
