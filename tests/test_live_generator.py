"""The live generator's pure parts (testing/datagen/live.py), without Kafka:
the compressed day, the simulated floor's call lifecycles, the Data
Actions schedule and the paced loop."""

import collections
import json
import threading

import pytest

from scripts.bench.live_latency import early_panes, final_waiting_agrees, status_latency
from testing.datagen.data_actions import PLANTED_CASES, planted_customer_id
from testing.datagen.live import (
  CallFloor,
  DayClock,
  InteractionFeed,
  build_arg_parser,
  contact_rate,
  run_paced,
)
from testing.reference.queue_status import QueueStatusReference

START = 1_790_000_000_000
MINUTE = 60_000
LEAVES = ('CALL_ANSWERED', 'CALL_ENDED')


def _run_out(floor: CallFloor, minutes: float) -> list:
  """The events of `minutes` of the floor, then of its emptying with no
  new contacts."""
  events = floor.advance(START + int(minutes * MINUTE))
  floor.stop_arrivals()
  events += floor.advance(START + 10**9)
  assert floor.next_ms() is None, 'the floor keeps running with no contacts'
  return events


def test_day_clock_compresses_a_day_into_day_minutes():
  clock = DayClock(START, day_minutes=24, start_hour=7)
  assert clock.hour_of_day(START) == 7
  assert clock.hour_of_day(START + MINUTE) == pytest.approx(8)
  assert clock.hour_of_day(START + 17 * MINUTE) == pytest.approx(0)  # wraps at midnight
  assert clock.load(START + 3.5 * MINUTE) == pytest.approx(1.0, abs=0.01)  # 10:30
  flat = DayClock(START, day_minutes=0)
  assert {flat.load(START + k * MINUTE) for k in range(30)} == {1.0}


def test_the_rate_follows_the_curve():
  # A day in 24 minutes at 20 contacts/s at the peak: each simulated hour
  # is one minute, whose started contacts are the curve's rate there.
  clock = DayClock(START, day_minutes=24, start_hour=0)
  floor = CallFloor(clock, 20.0, 8, seed=3)
  started = collections.Counter(
    (e['timestamp'] - START) // MINUTE
    for e in floor.advance(START + 24 * MINUTE - 1)
    if e['event_type'] == 'CALL_STARTED'
  )
  expected = {
    hour: sum(contact_rate(clock, 20.0, START + hour * MINUTE + s * 1000) for s in range(60))
    for hour in range(24)
  }
  for hour in range(24):
    # Poisson: within 5 standard deviations
    assert abs(started[hour] - expected[hour]) < 5 * expected[hour] ** 0.5, (hour, started)
  # The curve: a quiet night, a morning peak, a lunch dip, an afternoon peak.
  night, morning, lunch, afternoon = (expected[h] for h in (3, 10, 13, 14))
  assert night < 0.2 * morning and night < lunch < afternoon < morning
  assert started[3] < 0.3 * started[10] and started[13] < started[10]


def test_a_generated_minute_has_every_queued_call_leave_exactly_once():
  floor = CallFloor(DayClock(START, day_minutes=0), 30.0, 8, seed=5, staffing=0.9)
  events = _run_out(floor, 1)
  assert [e['timestamp'] for e in events] == sorted(e['timestamp'] for e in events)
  by_call = collections.defaultdict(list)
  for e in events:
    by_call[e['call_uuid']].append(e)
  # The floor opened mid-shift: the calls its agents were on only end, and
  # those in the IVR or the queue then are seen from their CALL_QUEUED.
  on_calls = [c for c in by_call.values() if c[0]['event_type'] == 'CALL_ENDED']
  assert {tuple(e['event_type'] for e in c) for c in on_calls} == {('CALL_ENDED',)}
  assert all(c[0]['abandoned'] is False for c in on_calls)
  new = [c for c in by_call.values() if c[0]['event_type'] != 'CALL_ENDED']
  assert sum(c[0]['event_type'] == 'CALL_STARTED' for c in new) in range(1500, 2100)  # 30/s
  answered = abandoned = 0
  for call in new:
    if call[0]['event_type'] != 'CALL_STARTED':
      call.insert(0, dict(call[0], event_type='CALL_STARTED'))  # before the start
      assert call[1]['event_type'] == 'CALL_QUEUED'
    types = [e['event_type'] for e in call]
    assert types[:2] == ['CALL_STARTED', 'CALL_QUEUED'], types
    assert len({e['queue_id'] for e in call}) == 1
    queued_at = call[1]['timestamp']
    leaves = [
      e
      for e in call[2:]
      if e['event_type'] == 'CALL_ANSWERED' or (e['event_type'] == 'CALL_ENDED' and e['abandoned'])
    ]
    assert len(leaves) == 1, types  # leaves its queue exactly once
    leave = leaves[0]
    assert leave['timestamp'] >= queued_at
    assert leave['wait_time_seconds'] == (leave['timestamp'] - queued_at) // 1000 >= 0
    assert types[-1] == 'CALL_ENDED' and types.count('CALL_ENDED') == 1
    if leave['event_type'] == 'CALL_ANSWERED':
      answered += 1
      assert types == ['CALL_STARTED', 'CALL_QUEUED', 'CALL_ANSWERED', 'CALL_ENDED']
      end = call[-1]
      assert end['abandoned'] is False and end['timestamp'] >= leave['timestamp']
      assert end['wait_time_seconds'] == leave['wait_time_seconds']
      assert end['agent_id'] == leave['agent_id'] is not None
    else:
      abandoned += 1
      assert types == ['CALL_STARTED', 'CALL_QUEUED', 'CALL_ENDED'] and leave['agent_id'] is None
  assert answered and abandoned
  assert 0.01 < abandoned / len(new) < 0.5


def test_queues_build_up_and_drain():
  # Understaffed: contacts wait; with no new contacts every queue empties.
  floor = CallFloor(DayClock(START, day_minutes=0), 30.0, 8, seed=9, staffing=0.8)
  floor.advance(START + 2 * MINUTE)
  assert sum(floor.waiting().values()) > 20
  floor.stop_arrivals()
  floor.advance(START + 10**9)
  assert set(floor.waiting().values()) == {0}


def test_the_job_s_rules_see_the_floor_s_waiting_contacts():
  # The job's live-floor contract, through its independent reference: every
  # second of a compressed morning, it counts who waits as the floor does.
  floor = CallFloor(DayClock(START, day_minutes=20), 20.0, 8, seed=5)
  ref = QueueStatusReference(4 * 3600 * 1000, 100, tombstone_ttl_ms=600 * 1000)
  kinds = {'CALL_QUEUED': 'ENTERED', 'CALL_ANSWERED': 'LEFT', 'CALL_ENDED': 'LEFT'}
  busiest = 0
  for second in range(1, 241):
    for e in floor.advance(START + second * 1000):
      if e['event_type'] in kinds:
        ref.apply(
          dict(
            contact_id=e['call_uuid'],
            queue_id=e['queue_id'],
            channel='voice',
            kind=kinds[e['event_type']],
            timestamp=e['timestamp'],
          )
        )
    seen = {q: n for q, n in floor.waiting().items() if n or (q, 'voice') in ref.keys}
    assert {q: ref.status((q, 'voice')).waiting for q, _ in ref.keys} == seen, second
    busiest = max(busiest, sum(seen.values()))
  assert busiest > 10
  assert ref.lost_exits == 0


def test_the_floor_is_deterministic_and_advances_in_steps():
  def floor():
    return CallFloor(DayClock(START, day_minutes=20), 10.0, 4, seed=1, queue_prefix='QX-')

  whole = floor().advance(START + MINUTE)
  stepped = floor()
  parts = []
  for t in range(START, START + MINUTE + 1, 137):
    step = stepped.advance(t)
    assert all(e['timestamp'] <= t for e in step)
    parts += step
  parts += stepped.advance(START + MINUTE)
  assert parts == whole
  assert {e['queue_id'] for e in whole} <= {'QX-101', 'QX-102', 'QX-103', 'QX-104'}


def test_interaction_feed_sends_chunks_with_the_planted_patterns_on_time():
  clock = DayClock(START, day_minutes=0)
  feed = InteractionFeed(clock, 10.0, seed=2, chunk_seconds=30)
  sent = []
  for t in range(START, START + 3 * MINUTE, 1000):
    for line in feed.advance(t):
      sent.append((t, json.loads(line)))
  assert feed.chunks >= 4
  # Nothing goes out before its event time; a first delivery no later than
  # the planted out-of-order case's shuffle (3 s) and one step of the loop.
  first = set()
  for t, rec in sent:
    assert rec['timestamp'] <= t
    if 'interactionId' in rec and rec['interactionId'] not in first:
      first.add(rec['interactionId'])
      assert t - rec['timestamp'] <= 5000, rec
  interactions = [r for _, r in sent if 'interactionId' in r]
  assert 0.8 * 10 * 180 < len(interactions) < 1.2 * 10 * 180 + 6 * 52
  # Every chunk's matching case: three failures, then a callback within 30 s.
  customer = planted_customer_id(0, PLANTED_CASES[0].name)
  case = [r for r in interactions if r['customerId'] == customer]
  assert len(case) >= 4 * 5
  statuses = [r['status'] for r in case[:4]]
  assert statuses == ['FAILED', 'FAILED', 'FAILED', 'CALLBACK_REQUESTED']
  assert case[3]['timestamp'] - case[0]['timestamp'] < 30_000
  assert any(r.get('recordType') == 'customer_update' for _, r in sent)


class _FakeClock:
  def __init__(self, stop: threading.Event, until_ms: int):
    self.t = START
    self.stop = stop
    self.until = until_ms

  def now(self) -> int:
    return self.t

  def wait(self, seconds: float) -> bool:
    self.t += max(1, int(seconds * 1000))
    if self.t >= self.until:
      self.stop.set()
    return self.stop.is_set()


def test_run_paced_sends_each_record_when_due_keyed_and_stamped():
  stop = threading.Event()
  clock = _FakeClock(stop, START + 30_000)
  stop.wait = clock.wait  # the loop's only sleep
  floor = CallFloor(DayClock(START, day_minutes=0), 20.0, 4, seed=4)
  feed = InteractionFeed(DayClock(START, day_minutes=0), 5.0, seed=4)
  sent = []
  told = []
  stats = run_paced(
    floor,
    feed,
    lambda topic, value, key, ts: sent.append((clock.t, topic, value, key, ts)),
    stop,
    now_ms=clock.now,
    on_call=lambda event, at: told.append(event['call_uuid']),
  )
  calls = [s for s in sent if s[1] == 'cc-call-logs']
  actions = [s for s in sent if s[1] == 'cxone-data-actions']
  assert stats.call_events == len(calls) == len(told) > 500
  assert stats.data_actions == len(actions) > 100
  for at, _, value, key, ts in calls:
    event = json.loads(value)
    assert key == event['call_uuid'].encode() and ts == event['timestamp'] <= at
    assert at - ts <= 50  # sent within one wake-up of its time
  for _, _, value, key, ts in actions:
    assert key == json.loads(value)['customerId'].encode()
    assert ts == json.loads(value)['timestamp']


def test_cli_defaults():
  args = build_arg_parser().parse_args([])
  assert (args.bootstrap, args.rate, args.queues, args.day_minutes) == (
    '127.0.0.1:9092',
    20.0,
    8,
    20.0,
  )


def test_live_latency_matches_rows_to_the_events_that_caused_them():
  def call(kind, ts, abandoned=False, queue='QL-101'):
    return {'event_type': kind, 'timestamp': ts, 'queue_id': queue, 'abandoned': abandoned}

  sent = [
    (call('CALL_QUEUED', 1000), 1000),
    (call('CALL_QUEUED', 1500), 1500),
    (call('CALL_ANSWERED', 2000), 2000),
    (call('CALL_ENDED', 2500, abandoned=True), 2500),
    (call('CALL_ENDED', 2600), 2600),  # an answered call's end: not an exit
    (call('CALL_QUEUED', 3000), 3000),  # no row came for it
  ]

  def row(recv, as_of, waiting, queue='QL-101'):
    return (
      recv,
      'cc-queue-status',
      {'queue_id': queue, 'as_of': as_of, 'waiting': waiting, 'updated_at': recv - 100},
    )

  rows = [
    row(1700, 1500, 2),  # both entries in one batch
    row(1900, 1800, 2),  # a refresh: as_of is no event's time
    row(2300, 2000, 1),
    row(2900, 2600, 0),  # the abandon and the end in one batch
  ]
  got = status_latency(sent, rows, since_ms=0)
  assert got['send_to_row_read_s'] == {'count': 4, 'p50': 0.35, 'p99': 0.7, 'max': 0.7}
  assert got['events_without_row'] == 1
  assert got['refresh_rows'] == 1
  assert final_waiting_agrees(rows, {'QL-101': 0, 'QL-102': 0})['equal'] == 2
  assert final_waiting_agrees(rows, {'QL-101': 1})['differ'] == {'QL-101': (0, 1)}
  assert status_latency(sent, rows, since_ms=1600)['send_to_row_read_s']['count'] == 2

  window = 300_000
  ends = [(call('CALL_ENDED', 10_000 + k), 10_000 + k) for k in range(3)]
  panes = [
    (
      12_000,
      'cc-abandon-metrics',
      {'queue_id': 'QL-101', 'window_start': 0, 'total_calls': 2, 'pane_timing': 'EARLY'},
    ),
    (
      22_000,
      'cc-abandon-metrics',
      {'queue_id': 'QL-101', 'window_start': 0, 'total_calls': 3, 'pane_timing': 'EARLY'},
    ),
  ]
  early = early_panes(ends, panes, 0, window)
  assert early['offered_call_to_first_pane_counting_it_s']['count'] == 3
  assert early['offered_call_to_first_pane_counting_it_s']['max'] == 11.998
  assert early['that_pane_s_timing'] == {'EARLY': 3}
  assert early['between_early_panes_of_a_window_s']['p50'] == 10.0
