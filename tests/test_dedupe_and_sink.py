"""DedupeByKey on TestStream, and the SQLite sink's idempotent, ordered
upserts."""

import sqlite3

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration

from tests.conftest import BASE_S, call, drain, timed
from transforms import dedupe
from transforms.change_log import MIN_CHANGES_BEFORE_COMPACTION
from transforms.dedupe import DedupeByKey, _DedupeFn
from transforms.records import AbandonMetrics, DeadLetter
from transforms.schema import ABANDON_METRICS, DEAD_LETTERS
from transforms.sharding import shard_of
from transforms.sqlite_sink import SqliteSink, SqliteWriter

SHARDS = 32
TTL = Duration(seconds=600)


def test_dedupe_keeps_first_arrival_within_ttl_only(options, monkeypatch):
  # The TTL rule alone: ids are also remembered for the next
  # MIN_RECORDS_REMEMBERED records of their shard (tested below).
  monkeypatch.setattr(dedupe, 'MIN_RECORDS_REMEMBERED', 1)
  # 'a' and 'a1' share a shard, 'b' and 'b5' another (of SHARDS; asserted
  # below so a change of sharding cannot quietly void the test).
  assert shard_of('a', SHARDS) == shard_of('a1', SHARDS) != shard_of('b', SHARDS)
  assert shard_of('b', SHARDS) == shard_of('b5', SHARDS)
  stream = drain(
    TestStream()
    .add_elements(
      [
        timed(call('a', 10, wait=1)),
        timed(call('a', 10, wait=2)),  # re-delivery: dropped
        timed(call('b', 80)),
      ]
    )
    .advance_watermark_to(BASE_S + 605)
    .add_elements(
      [
        # Neither shard has seen an event past its horizon (610 s, 680 s),
        # nor has the watermark passed them: both are still duplicates.
        timed(call('a', 10, wait=3)),
        timed(call('b', 80, wait=3)),
      ]
    )
    .add_elements(
      [
        # a's shard sees 661 s: past a's horizon (610 s), so 'a' is
        # forgotten (documented limit). b's shard sees 679 s: before b's
        # horizon (680 s).
        timed(call('a1', 661)),
        timed(call('b5', 679)),
      ]
    )
    .add_elements(
      [
        timed(call('a', 10, wait=4)),
        timed(call('b', 80, wait=4)),
      ]
    )
  )
  with beam.Pipeline(options=options) as p:
    kept = (
      p
      | stream
      | DedupeByKey(lambda e: e.call_uuid, lambda e: e.timestamp, TTL, 'test', shards=SHARDS)
      | beam.Map(lambda e: (e.call_uuid, e.wait_time_seconds))
    )
    assert_that(kept, equal_to([('a', 1), ('b', 5), ('a1', 5), ('b5', 5), ('a', 4)]))


class _Value:
  """What a runner gives the DoFn for a ReadModifyWriteState."""

  def __init__(self):
    self.value = None

  def read(self):
    return self.value

  def write(self, value):
    self.value = value


class _Bag:
  """What a runner gives the DoFn for a BagState."""

  def __init__(self):
    self.values = []

  def read(self):
    return iter(list(self.values))

  def add(self, value):
    self.values.append(dict(value))

  def clear(self):
    self.values = []


class _Timer:
  """What a runner gives the DoFn for a timer: the last time it was set."""

  def __init__(self):
    self.fire_at = None

  def set(self, timestamp, dynamic_timer_tag=''):
    del dynamic_timer_tag
    self.fire_at = timestamp


class _Shard:
  """One shard's state, committed only when a batch runs to its end (as a
  runner commits a bundle's state)."""

  def __init__(self):
    self.clock, self.ids = _Value(), _Bag()

  def run(self, fn, elements, shard=0):
    clock, ids = _Value(), _Bag()
    clock.value, ids.values = self.clock.value, list(self.ids.values)
    kept = [wv.value.call_uuid for wv in fn.process((shard, elements), clock, ids, _Timer())]
    self.clock, self.ids = clock, ids
    return kept

  def stored_ids(self):
    return {k for added in self.ids.values for k in added}


def new_fn():
  return _DedupeFn(lambda e: e.call_uuid, lambda e: e.timestamp, 600_000, 'test')


def test_after_a_far_future_record_ids_are_remembered_by_arrivals():
  # Year 2090 is a valid timestamp to the parser. The shard's event-time
  # clock jumps there: by it every later id is expired on arrival. They are
  # still remembered for the next records (re-deliveries are dropped), and
  # they do not pile up in state.
  fn, shard = new_fn(), _Shard()
  far_future = call('future', 0)._replace(timestamp=3_800_000_000_000)
  kept = shard.run(fn, [far_future])
  for i in range(5000):
    kept += shard.run(fn, [call(f'c{i}', i)] + ([call(f'c{i - 3}', i - 3)] if i >= 3 else []))
    stored = sum(len(added) for added in shard.ids.values)
    assert stored <= 2 * MIN_CHANGES_BEFORE_COMPACTION + 2, (i, stored)
  assert len(kept) == 5001


def test_a_partition_far_behind_the_shards_clock_still_has_its_duplicates_dropped():
  # Reading a backlog, one source partition runs 2 h of event time ahead of
  # another in the same shard: the slow partition's ids are expired by the
  # shard's clock on arrival, and their re-deliveries come 15 records later.
  fast = [call(f'fast{i}', 7200 + i) for i in range(3000)]
  slow = [call(f'slow{i}', i) for i in range(3000)]
  fn, shard = new_fn(), _Shard()
  kept = []
  for k in range(0, 3000, 10):
    kept += shard.run(fn, fast[k : k + 10])
    kept += shard.run(fn, slow[k : k + 10] + (slow[k - 15 : k - 5] if k >= 15 else []))
  assert len(kept) == 6000


def test_a_shards_ids_are_compacted_and_stay_bounded():
  fn, shard = new_fn(), _Shard()
  # One call per second of event time for 10,000 s, TTL 600 s: about 600
  # live ids at any time.
  for start in range(0, 10_000, 10):
    shard.run(fn, [call(f'c{i}', i) for i in range(start, start + 10)])
    stored = sum(len(added) for added in shard.ids.values)
    assert stored <= 2 * MIN_CHANGES_BEFORE_COMPACTION + 10, (start, stored)
  # Live ids survive compactions, in this instance and in a fresh one.
  assert shard.run(fn, [call('c9990', 9990), call('c5', 5)]) == ['c5']
  assert shard.run(new_fn(), [call('c9991', 9991)]) == []


def test_another_instance_reads_the_ids_back_from_state():
  # Another worker, or this one after a restart: no copy of the ids, so
  # they come from the state.
  shard = _Shard()
  assert shard.run(new_fn(), [call('a', 10), call('b', 20)]) == ['a', 'b']
  assert shard.run(new_fn(), [call('a', 10), call('c', 30)]) == ['c']
  assert shard.run(new_fn(), [call('b', 20), call('c', 30)]) == []


def test_an_instance_copy_older_or_newer_than_the_state_is_not_used():
  fn, shard = new_fn(), _Shard()
  shard.run(fn, [call('a', 10)])
  checkpoint = _Shard()
  checkpoint.clock, checkpoint.ids = shard.clock, shard.ids
  assert shard.run(fn, [call('b', 20)]) == ['b']
  # Restored from the checkpoint (before 'b'): fn's copy knows 'b', the
  # state does not; 'b' must go through again, 'a' must not.
  assert checkpoint.run(fn, [call('a', 10), call('b', 20)]) == ['b']


def test_a_batch_that_fails_half_way_leaves_no_half_updated_copy():
  fn, shard = new_fn(), _Shard()
  shard.run(fn, [call('a', 10)])
  clock, ids = _Value(), _Bag()
  clock.value, ids.values = shard.clock.value, list(shard.ids.values)
  outputs = fn.process((0, [call('b', 20), call('c', 30)]), clock, ids, _Timer())
  next(outputs)  # 'b' is recorded in fn's working map, then the bundle fails
  outputs.close()
  # The runner retries the bundle on the uncommitted state: 'b' is new.
  assert shard.run(fn, [call('b', 20), call('c', 30)]) == ['b', 'c']


def test_a_shard_is_forgotten_once_the_watermark_passes_its_ttl(options):
  # Nothing newer reached the shard, but the watermark passed 10 s + TTL:
  # every id it held expired, so its state is dropped (tests/
  # test_state_bounds.py counts what is left) and a re-delivery that late
  # goes through (downstream it is behind every window: a late event).
  stream = drain(
    TestStream()
    .add_elements(
      [
        timed(call('a', 10, wait=1)),
      ]
    )
    .advance_watermark_to(BASE_S + 609)
    .add_elements(
      [
        timed(call('a', 10, wait=2)),  # still within the TTL: dropped
      ]
    )
    .advance_watermark_to(BASE_S + 611)
    .add_elements(
      [
        timed(call('a', 10, wait=3)),
      ]
    )
  )
  with beam.Pipeline(options=options) as p:
    kept = (
      p
      | stream
      | DedupeByKey(lambda e: e.call_uuid, lambda e: e.timestamp, TTL, 'test', shards=SHARDS)
      | beam.Map(lambda e: (e.call_uuid, e.wait_time_seconds))
    )
    assert_that(kept, equal_to([('a', 1), ('a', 3)]))


def metrics_row(pane_index, total):
  return AbandonMetrics(
    'Q-1',
    0,
    300000,
    total,
    0,
    0,
    total,
    0.0,
    0.0,
    1.0,
    pane_index,
    'LATE' if pane_index else 'ON_TIME',
  )


def test_sqlite_upsert_converges_whatever_the_order(tmp_path):
  path = str(tmp_path / 'sink.db')
  SqliteSink(path).prepare([ABANDON_METRICS, DEAD_LETTERS])
  writer = SqliteWriter(path)
  writer.open()
  writer.upsert(ABANDON_METRICS, [metrics_row(0, 5), metrics_row(2, 9)])
  writer.upsert(ABANDON_METRICS, [metrics_row(1, 7)])  # stale pane: ignored
  writer.upsert(ABANDON_METRICS, [metrics_row(2, 9)])  # retry: idempotent
  letter = DeadLetter('cc-call-logs', 'f:3', 'malformed_json', 'x', '{', 1, 1793606400000)
  writer.upsert(DEAD_LETTERS, [letter, letter])
  writer.close()
  conn = sqlite3.connect(path)
  assert conn.execute('SELECT pane_index, total_calls FROM abandon_metrics').fetchall() == [(2, 9)]
  assert conn.execute('SELECT COUNT(*) FROM dead_letters').fetchone() == (1,)
