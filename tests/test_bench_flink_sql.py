"""The row comparison and SQL rendering of the native Flink SQL peer (scripts/bench/flink_sql.py).

The peer itself runs on the cluster in `scripts/bench/flink.py --peer flink-sql`; these pin
what its verdict means: which lines may make a window differ, and that any other difference
fails the comparison.
"""

import json
from collections import Counter

import pytest

from scripts.bench import flink_sql
from testing.datagen.calls import malformed_line

WINDOW_S = 60
BASE = {
  'call_uuid': 'c-1',
  'event_type': 'CALL_ENDED',
  'timestamp': 1_790_000_030_000,
  'queue_id': 'Q-1',
  'abandoned': True,
  'wait_time_seconds': 12,
  'agent_id': None,
}
KEY = ('Q-1', BASE['timestamp'] - BASE['timestamp'] % (WINDOW_S * 1000))


@pytest.mark.parametrize('kind', ['timestamp_as_string', 'negative_wait', 'abandoned_as_string'])
def test_lines_flink_json_reads_and_the_product_rejects_are_counted(kind):
  assert flink_sql.lenient_lines([malformed_line(kind, BASE)], WINDOW_S) == Counter({KEY: 1})


@pytest.mark.parametrize(
  'kind',
  [
    'not_json',
    'truncated_json',
    'json_array',
    'json_string',
    'missing_call_uuid',
    'missing_timestamp',
    'timestamp_1970',
    'timestamp_2300',
    'empty_queue_id',
    'empty_line',
  ],
)
def test_lines_the_query_drops_too_are_not_counted(kind):
  assert flink_sql.lenient_lines([malformed_line(kind, BASE)], WINDOW_S) == Counter()


def test_a_valid_line_is_not_counted():
  line = json.dumps(BASE, separators=(',', ':')).encode()
  assert flink_sql.lenient_lines([line], WINDOW_S) == Counter()


def test_equal_rows_are_ok():
  rows = {KEY: (10, 2), ('Q-2', 0): (5, 0)}
  out = flink_sql.compare_rows(dict(rows), dict(rows), Counter())
  assert out['ok'] and out['equal'] == 2 and not out['unexplained']


def test_a_window_off_by_its_lenient_lines_is_explained():
  out = flink_sql.compare_rows({KEY: (12, 2)}, {KEY: (10, 2)}, Counter({KEY: 2}))
  assert out['ok'] and out['differ_by_lines_only_flink_json_accepts'] == 1


@pytest.mark.parametrize(
  'sql, beam, lenient',
  [
    ({KEY: (11, 2)}, {KEY: (10, 2)}, Counter()),  # no line explains it
    ({KEY: (12, 2)}, {KEY: (10, 2)}, Counter({KEY: 1})),  # more than its lines
    ({KEY: (10, 2)}, {}, Counter({KEY: 1})),  # a window only one job has
    ({}, {KEY: (10, 2)}, Counter()),
  ],
)
def test_any_other_difference_fails(sql, beam, lenient):
  out = flink_sql.compare_rows(sql, beam, lenient)
  assert not out['ok'] and len(out['unexplained']) == 1


@pytest.mark.parametrize('rows_topic, connector', [(None, 'blackhole'), ('t-rows', 'kafka')])
def test_render_fills_every_placeholder(rows_topic, connector):
  sql = flink_sql.render_sql(
    job_name='j',
    topic='t',
    bootstrap='127.0.0.1:9092',
    parallelism=2,
    window_s=WINDOW_S,
    checkpoint_ms=10000,
    rows_topic=rows_topic,
  )
  assert '${' not in sql
  assert f"'connector' = '{connector}'" in sql
  assert "INTERVAL '60' SECOND" in sql and "'topic' = 't'" in sql
