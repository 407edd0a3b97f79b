"""WriteTables and the SQLite sink: a row the store refuses becomes a dead
letter in the same store instead of failing its bundle, a rejected dead
letter is only logged and counted, and files of an older release get the
columns the records have grown."""

import logging
import sqlite3
import time

import apache_beam as beam
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from tests.support.beam_metrics import committed_counters
from transforms.records import AbandonMetrics, DeadLetter
from transforms.schema import ABANDON_METRICS, DEAD_LETTERS, TABLES
from transforms.sinks import WriteRows, WriteTables
from transforms.sqlite_sink import SqliteSink, SqliteWriter

RECEIVED_AT = 1793606400000


def metrics_row(queue_id: str, total: int = 3) -> AbandonMetrics:
  return AbandonMetrics(queue_id, 0, 300000, total, 0, 0, total, 0.0, 0.0, 1.0, 0, 'ON_TIME')


def letter(origin: str, raw_size: int = 1) -> DeadLetter:
  return DeadLetter('cc-call-logs', origin, 'malformed_json', 'x', '{', raw_size, RECEIVED_AT)


def table_rows(path, sql):
  conn = sqlite3.connect(path)
  try:
    return conn.execute(sql).fetchall()
  finally:
    conn.close()


def test_sqlite_writes_the_good_rows_and_returns_the_refused_ones(tmp_path):
  path = str(tmp_path / 'sink.db')
  SqliteSink(path).prepare([ABANDON_METRICS])
  writer = SqliteWriter(path)
  writer.open()
  rejected = writer.upsert(
    ABANDON_METRICS,
    [
      metrics_row('Q-1'),
      metrics_row('Q-2', total=2**70),  # beyond SQLite's 64-bit INTEGER
      metrics_row('Q-\ud800'),  # a lone surrogate: not valid UTF-8
      metrics_row('Q-3'),
    ],
  )
  writer.close()

  assert [(r.index, r.reason) for r in rejected] == [(1, 'not_encodable'), (2, 'not_encodable')]
  assert rejected[0].detail.startswith('OverflowError: ')
  assert table_rows(path, 'SELECT queue_id FROM abandon_metrics ORDER BY queue_id') == [
    ('Q-1',),
    ('Q-3',),
  ]


def test_a_batch_without_bad_rows_rejects_nothing(tmp_path):
  path = str(tmp_path / 'sink.db')
  SqliteSink(path).prepare([ABANDON_METRICS])
  writer = SqliteWriter(path)
  writer.open()
  assert writer.upsert(ABANDON_METRICS, [metrics_row('Q-1')]) == []
  writer.close()


def write_tables(options, path, metrics, letters):
  """Runs WriteTables into SQLite on a stream of both tables' records."""
  pipeline = beam.Pipeline(options=options)
  records = (
    pipeline | TestStream().add_elements([*metrics, *letters]).advance_watermark_to_infinity()
  )
  tables = {
    'abandon_metrics': records
    | 'Metrics'
    >> beam.Filter(lambda r: isinstance(r, AbandonMetrics)).with_output_types(AbandonMetrics),
    'dead_letters': records
    | 'Letters' >> beam.Filter(lambda r: isinstance(r, DeadLetter)).with_output_types(DeadLetter),
  }
  write = WriteTables([SqliteSink(path)], TABLES)
  _ = tables | write
  write.prepare(tables)
  result = pipeline.run()
  result.wait_until_finish()
  return committed_counters(result, 'sink')


def test_a_refused_row_becomes_a_dead_letter_in_the_same_store(options, tmp_path):
  path = str(tmp_path / 'sink.db')
  started_ms = int(time.time() * 1000)
  counters = write_tables(
    options, path, [metrics_row('Q-1'), metrics_row('Q-2', total=2**70)], [letter('calls.jsonl:7')]
  )
  ended_ms = int(time.time() * 1000)

  assert table_rows(path, 'SELECT queue_id FROM abandon_metrics') == [('Q-1',)]
  letters = table_rows(
    path,
    'SELECT source, origin, reason, detail, raw, raw_size, '
    'received_at FROM dead_letters ORDER BY source',
  )
  assert [row[:3] for row in letters] == [
    ('cc-call-logs', 'calls.jsonl:7', 'malformed_json'),
    ('sink:sqlite', 'abandon_metrics:["Q-2","voice",0]', 'not_encodable'),
  ]
  _, _, _, detail, raw, raw_size, received_at = letters[1]
  assert 'too large' in detail and f'"total_calls": {2**70}' in raw
  assert raw_size == len(raw) and started_ms <= received_at <= ended_ms
  assert counters['abandon_metrics_rejected_not_encodable'] == 1
  assert counters['abandon_metrics_rows'] == 1


def test_write_rows_outputs_the_refused_rows_of_full_batches_too(options, tmp_path):
  # batch_size=1: every row is flushed in process(), not finish_bundle().
  path = str(tmp_path / 'sink.db')
  SqliteSink(path).prepare([ABANDON_METRICS])
  pipeline = beam.Pipeline(options=options)
  rejected = (
    pipeline
    | TestStream()
    .add_elements([metrics_row('Q-1'), metrics_row('Q-2', total=2**70), metrics_row('Q-3')])
    .advance_watermark_to_infinity()
    | WriteRows(lambda: SqliteWriter(path), ABANDON_METRICS, 'sqlite', batch_size=1)
  )
  assert_that(
    rejected | beam.Map(lambda d: (d.source, d.origin, d.reason)),
    equal_to([('sink:sqlite', 'abandon_metrics:["Q-2","voice",0]', 'not_encodable')]),
  )
  pipeline.run().wait_until_finish()
  assert table_rows(path, 'SELECT queue_id FROM abandon_metrics ORDER BY queue_id') == [
    ('Q-1',),
    ('Q-3',),
  ]


def test_a_refused_dead_letter_is_logged_and_counted_not_looped(options, tmp_path, caplog):
  path = str(tmp_path / 'sink.db')
  caplog.set_level(logging.ERROR, logger='transforms.sinks')
  counters = write_tables(
    options, path, [], [letter('calls.jsonl:1'), letter('calls.jsonl:2', raw_size=2**70)]
  )

  assert table_rows(path, 'SELECT origin FROM dead_letters') == [('calls.jsonl:1',)]
  assert counters['dead_letters_rejected_not_encodable'] == 1
  [logged] = [r.getMessage() for r in caplog.records if 'calls.jsonl:2' in r.getMessage()]
  assert 'not_encodable' in logged


def test_an_older_file_gets_the_columns_the_records_have_grown(tmp_path):
  path = str(tmp_path / 'old.db')
  conn = sqlite3.connect(path)
  with conn:  # dead_letters as an older release made it
    conn.execute(
      'CREATE TABLE dead_letters (source TEXT, origin TEXT, reason TEXT, '
      'detail TEXT, raw TEXT, raw_size INTEGER, '
      'PRIMARY KEY (source, origin))'
    )
    conn.execute("INSERT INTO dead_letters VALUES ('s', 'old:1', 'malformed_json', 'x', '{', 1)")
  conn.close()

  SqliteSink(path).prepare([DEAD_LETTERS])
  SqliteSink(path).prepare([DEAD_LETTERS])  # again: nothing left to add
  writer = SqliteWriter(path)
  writer.open()
  assert writer.upsert(DEAD_LETTERS, [letter('new:1')]) == []
  writer.close()

  assert table_rows(path, 'SELECT origin, received_at FROM dead_letters ORDER BY origin') == [
    ('new:1', RECEIVED_AT),
    ('old:1', None),
  ]
