"""DedupeByKey on TestStream, and the SQLite sink's idempotent, ordered
upserts."""
import sqlite3

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from tests.conftest import BASE_S, call, drain, timed
from transforms.dedupe import DedupeByKey, _DedupeFn
from transforms.schema import ABANDON_METRICS, DEAD_LETTERS
from transforms.sharding import shard_of
from transforms.records import AbandonMetrics, DeadLetter
from transforms.sqlite_sink import SqliteSink, SqliteWriter


def test_dedupe_keeps_first_arrival_within_ttl_only(options):
  # 'a' and 'a1' share a shard, 'b' and 'b5' another (crc32 % 32; asserted
  # below so a change of sharding cannot quietly void the test).
  assert shard_of('a') == shard_of('a1') != shard_of('b') == shard_of('b5')
  stream = drain(
      TestStream().add_elements([
          timed(call('a', 10, wait=1)),
          timed(call('a', 10, wait=2)),  # re-delivery: dropped
          timed(call('b', 80)),
      ]).advance_watermark_to(BASE_S + 700).add_elements([
          # Expiry follows each shard's own event time, not the watermark:
          # the watermark passed both horizons (610 s, 680 s), but neither
          # shard has seen a later event, so both are still duplicates.
          timed(call('a', 10, wait=3)),
          timed(call('b', 80, wait=3)),
      ]).add_elements([
          # a's shard sees 661 s: past a's horizon (610 s) and the next
          # sweep on the TTL/10 grid (660 s), so 'a' is forgotten
          # (documented limit). b's shard sees 679 s: before b's horizon.
          timed(call('a1', 661)),
          timed(call('b5', 679)),
      ]).add_elements([
          timed(call('a', 10, wait=4)),
          timed(call('b', 80, wait=4)),
      ]))
  with beam.Pipeline(options=options) as p:
    kept = (
        p | stream | DedupeByKey(lambda e: e.call_uuid, lambda e: e.timestamp, 600, 'test')
        | beam.Map(lambda e: (e.call_uuid, e.wait_time_seconds)))
    assert_that(
        kept, equal_to([('a', 1), ('b', 5), ('a1', 5), ('b5', 5), ('a', 4)]))


class _ShardState:
  """What a runner gives the DoFn: one shard's ReadModifyWriteState."""
  def __init__(self):
    self.value = None

  def read(self):
    return self.value

  def write(self, value):
    self.value = value


def test_a_far_future_record_does_not_make_a_shards_state_grow():
  # Year 2090 is a valid timestamp to the parser. The shard's event-time
  # clock jumps there and no sweep comes for decades: ids that arrive after
  # it are already expired by that clock and must not pile up in state.
  fn = _DedupeFn(lambda e: e.call_uuid, lambda e: e.timestamp, 600, 'test')
  state = _ShardState()
  far_future = call('future', 0)._replace(timestamp=3_800_000_000_000)
  kept = list(fn.process((0, [far_future]), state))
  for i in range(1000):
    kept += fn.process((0, [call(f'c{i}', i), call(f'c{i}', i)]), state)
  seen, _, _ = state.value
  assert len(seen) <= 1, len(seen)
  # Nothing is lost: every first arrival went on (duplicates arriving in
  # the same batch as their original are still dropped).
  assert len(kept) == 1001


def metrics_row(pane_index, total):
  return AbandonMetrics('Q-1', 0, 300000, total, 0, 0, total, 0.0, 0.0, 1.0,
                        pane_index, 'LATE' if pane_index else 'ON_TIME')


def test_sqlite_upsert_converges_whatever_the_order(tmp_path):
  path = str(tmp_path / 'sink.db')
  SqliteSink(path).prepare([ABANDON_METRICS, DEAD_LETTERS])
  writer = SqliteWriter(path)
  writer.open()
  writer.upsert(ABANDON_METRICS, [metrics_row(0, 5), metrics_row(2, 9)])
  writer.upsert(ABANDON_METRICS, [metrics_row(1, 7)])  # stale pane: ignored
  writer.upsert(ABANDON_METRICS, [metrics_row(2, 9)])  # retry: idempotent
  letter = DeadLetter('cc-call-logs', 'f:3', 'malformed_json', 'x', '{', 1)
  writer.upsert(DEAD_LETTERS, [letter, letter])
  writer.close()
  conn = sqlite3.connect(path)
  assert conn.execute(
      'SELECT pane_index, total_calls FROM abandon_metrics').fetchall() == [
          (2, 9)
      ]
  assert conn.execute('SELECT COUNT(*) FROM dead_letters').fetchone() == (1,)
