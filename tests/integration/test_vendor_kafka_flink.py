"""The vendor formats through Kafka on the Flink cluster, end to end.

A generated Genesys Cloud stream and a generated Amazon Connect stream are
produced to fresh Kafka topics (2 partitions, in file order); the main job
reads each with `--source=kafka --call_event_format=...` on the local Flink
cluster (scripts/flink.sh: JobManager and TaskManager), bounded by
`--kafka_max_num_records` to exactly the produced records so that it ends,
and writes SQLite. The rows must equal the plain-Python reference
(testing/reference/vendors.py). The Python workers are LOOPBACK (in this
process), not the cluster's EXTERNAL worker pool: the pool imports the
pipeline code of the checkout that started it, which need not be this one
on a shared cluster.

A bounded KafkaIO read keeps the watermark at -inf until everything is read
(scripts/produce_events.py), so the whole topic is one delivery: the
reference reads the file as one poll, every acd.start meets its acd.end
(the streams lose no start: a start that never came would be released
only at the end of input, where the runners' watermark holds differ), and
nothing is late.

Needs what tests/integration/test_kafka_flink.py needs, plus the cluster;
nothing skips. Run it alone and under the cluster's lock:

  flock /tmp/flink.lock .venv/bin/python -m pytest tests/integration/test_vendor_kafka_flink.py
"""

import sqlite3
import time

import pytest

from pipelines import contact_center
from scripts.produce_events import produce_lines, read_lines
from testing.datagen.vendor_events import CONNECT, GENESYS, write_vendor_events
from testing.reference.vendors import (
  ROW_FIELDS,
  parse_connect,
  parse_genesys,
  reference_vendor_metrics,
)
from tests.integration.test_kafka_flink import (  # noqa: F401 (fixture)
  PARTITIONS,
  new_topic,
  sqlite_table,
  wait_for_free_slots,
)
from tests.support.flink_rest import rest

CALLS = 800


def _rounded(value):
  return round(value, 6) if isinstance(value, float) else value


@pytest.mark.parametrize('fmt', [GENESYS, CONNECT])
def test_vendor_stream_from_kafka_on_the_flink_cluster_matches_the_reference(
  fmt,
  tmp_path,
  new_topic,
  kafka_bootstrap,
  expansion_service,
  flink_job_server_jar,
  flink_standalone,
):
  path = tmp_path / f'{fmt}.jsonl'
  counts = write_vendor_events(
    str(path),
    fmt,
    CALLS,
    31,
    events_per_second=4,
    jitter_seconds=5.0,
    too_late_share=0.0,
    late_within_lateness_share=0.0,
    missing_start_share=0.0,
    delayed_start_share=0.01,
    # Every delivery path and channel rule: bare bodies and callbacks
    # (Genesys), queued callbacks and outbound legs (Connect).
    body_share=0.1 if fmt == GENESYS else 0.0,
    callback_share=0.05,
    outbound_share=0.05 if fmt == CONNECT else 0.0,
  )
  lines = read_lines(str(path))
  topic = new_topic(f'it-{fmt.replace("_", "-")}')
  produced = produce_lines(lines, topic, kafka_bootstrap, keep_metadata=True)
  assert produced['count'] == len(lines) == counts['lines']
  assert len({p for p, _, _ in produced['records']}) == PARTITIONS

  db = tmp_path / 'out.db'
  job_name = f'it-vendor-{topic}'
  args = [
    '--runner=FlinkRunner',
    '--flink_master=127.0.0.1:8081',
    f'--flink_job_server_jar={flink_job_server_jar}',
    '--environment_type=LOOPBACK',
    '--parallelism=2',
    f'--job_name={job_name}',
    '--source=kafka',
    f'--kafka_bootstrap_servers={kafka_bootstrap}',
    f'--kafka_expansion_service={expansion_service}',
    f'--kafka_call_events_topic={topic}',
    '--kafka_data_actions_topic=',
    f'--kafka_max_num_records={len(lines)}',
    f'--kafka_consumer_group=it-{topic}',
    f'--call_event_format={fmt}',
    '--short_abandon_threshold_seconds=5',
    '--service_level_definition=abandons_positive',
    f'--sqlite_path={db}',
  ]
  wait_for_free_slots(2)
  t0 = time.monotonic()
  result = contact_center.run(args)
  print(
    f'\n{fmt}: Flink cluster job {result.state} in {time.monotonic() - t0:.1f} s; '
    f'{len(lines)} records\n  ' + ' '.join(args)
  )
  assert str(result.state).endswith('DONE'), result.state
  assert not [
    j for j in rest('/jobs/overview')['jobs'] if j['name'] == job_name and j['state'] == 'RUNNING'
  ]

  ref = reference_vendor_metrics(str(path), fmt, poll_size=len(lines), short_abandon_threshold_s=5)
  assert not ref.late and ref.ends_without_start == 0
  expected = {
    key: [_rounded(r[f]) for f in ROW_FIELDS] + [r['window_end_ms']] for key, r in ref.rows.items()
  }
  rows = {
    (r['queue_id'], r['channel'], r['window_start']): [_rounded(r[f]) for f in ROW_FIELDS]
    + [r['window_end']]
    for r in sqlite_table(db, 'abandon_metrics')
  }
  assert rows == expected and rows
  assert sum(r[0] for r in rows.values()) == ref.offered == counts['offered']
  assert {r['service_level_definition'] for r in sqlite_table(db, 'abandon_metrics')} == {
    'abandons_positive'
  }
  # Only the Connect records re-sent past the de-duplication TTL.
  late = sqlite_table(db, 'late_events')
  assert {r['reason'] for r in late} <= {'record_update'}
  assert sorted(r['event_id'] for r in late) == sorted(ref.record_updates)
  assert len({r['channel'] for r in sqlite_table(db, 'abandon_metrics')}) > 1

  parse = parse_genesys if fmt == GENESYS else parse_connect
  malformed = {
    f'{topic}/{p}@{o}'
    for line, (p, o, _) in zip(lines, produced['records'])
    if parse(line)[0] == 'dead'
  }
  assert len(malformed) == counts['malformed'] > 0
  with sqlite3.connect(db) as conn:
    dead = {r[0] for r in conn.execute('SELECT origin FROM dead_letters')}
  assert dead == malformed
