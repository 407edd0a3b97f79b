"""The native Flink SQL peer of scripts/bench/flink.py (`--peer flink-sql`).

Runs scripts/bench/abandon_rate.sql with Flink's own SQL client (`bin/sql-client.sh -f`) on
the cluster of scripts/flink.sh, reading the benchmark's topic:

* the jars the PyPI Flink distribution lacks (the SQL gateway that sql-client.sh starts
  embedded, the Kafka SQL connector) come from scripts/stack/flink-sql-pom.xml through
  scripts/stack/fetch_jars.sh, cached in $RUN_DIR/jars/flink-sql; the distribution itself is left
  untouched (sql-client.sh finds its jars through FLINK_OPT_DIR, pointed at a folder of links);
* the source is bounded at the offsets of the job's start, so the job FINISHES once it has
  processed the backlog: processed rate = records / (FINISHED - RUNNING), both instants as
  Flink's REST API records them (the end of input moves the watermark to the end of time, so
  FINISHED comes after every window fired);
* the rate run writes to a blackhole sink; the rows run writes to a Kafka topic that
  `read_rows` reads back, for the comparison with the Beam job's rows.

Before each job `require_records` checks that the topic still holds every record: the broker
deletes records whose CreateTime is older than the retention, and a job reading an emptied
topic reports an absurd rate.
"""

import datetime
import json
import os
import re
import string
import subprocess
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Dict, Optional, Tuple

from testing.reference.calls import parse_valid_event

REPO = Path(__file__).resolve().parents[2]
SQL_FILE = Path(__file__).with_name('abandon_rate.sql')
RUN_DIR = Path(os.environ.get('RUN_DIR', REPO / '.run'))
# The cluster of scripts/flink.sh, on the port it was started with.
REST = f'http://127.0.0.1:{os.environ.get("FLINK_REST_PORT", "8081")}'
FINAL_STATES = ('FINISHED', 'FAILED', 'CANCELED')


def rest(path: str, method: str = 'GET'):
  """The cluster's REST answer to `method path`, parsed ({} when empty)."""
  req = urllib.request.Request(REST + path, method=method)
  with urllib.request.urlopen(req, timeout=10) as r:
    raw = r.read()
  return json.loads(raw) if raw else {}


def topic_record_count(topic: str, bootstrap: str) -> int:
  """Records the topic holds now: end offsets - beginning offsets over its partitions."""
  from kafka import KafkaConsumer, TopicPartition

  consumer = KafkaConsumer(bootstrap_servers=bootstrap)
  try:
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    begin, end = consumer.beginning_offsets(parts), consumer.end_offsets(parts)
    return sum(end[p] - begin[p] for p in parts)
  finally:
    consumer.close()


def require_records(topic: str, bootstrap: str, expected: int, before: str) -> None:
  """Fails loudly unless `topic` holds exactly `expected` records (checked `before` a job)."""
  held = topic_record_count(topic, bootstrap)
  if held != expected:
    raise SystemExit(
      f'topic {topic} holds {held} records, not the {expected} produced, before {before}: '
      'the broker deleted records older than the retention (their CreateTime is the event '
      'time) or the topic changed; a rate measured on it would be meaningless'
    )


def _sql_client_env() -> Tuple[Dict[str, str], Path]:
  """Environment for sql-client.sh and the connector jar; fetches the jars when missing."""
  fetch = subprocess.run(
    [str(REPO / 'scripts' / 'stack' / 'fetch_jars.sh'), 'flink-sql'],
    env={**os.environ, 'RUN_DIR': str(RUN_DIR)},
    capture_output=True,
    text=True,
  )
  if fetch.returncode:
    raise RuntimeError(f'scripts/stack/fetch_jars.sh flink-sql failed:\n{fetch.stderr[-3000:]}')
  env_file = RUN_DIR / 'jars' / 'flink-job-server' / 'flink.env'
  flink_home = Path(re.search(r'^FLINK_HOME=(.*)$', env_file.read_text(), re.M).group(1))
  jars = RUN_DIR / 'jars' / 'flink-sql'
  opt = RUN_DIR / 'flink-sql' / 'opt'
  opt.mkdir(parents=True, exist_ok=True)
  # the distribution's opt/ (sql-client.sh also needs flink-python there) plus the gateway
  for jar in [*flink_home.glob('opt/*.jar'), *jars.glob('flink-sql-gateway-*.jar')]:
    link = opt / jar.name
    if not link.exists():
      link.symlink_to(jar)
  log = RUN_DIR / 'flink-sql' / 'log'
  log.mkdir(exist_ok=True)
  env = {
    **os.environ,
    'FLINK_HOME': str(flink_home),
    'FLINK_OPT_DIR': str(opt),
    'FLINK_CONF_DIR': str(RUN_DIR / 'flink' / 'conf'),
    'FLINK_LOG_DIR': str(log),
  }
  return env, next(jars.glob('flink-sql-connector-kafka-*.jar'))


def render_sql(
  *,
  job_name: str,
  topic: str,
  bootstrap: str,
  parallelism: int,
  window_s: int,
  checkpoint_ms: int,
  rows_topic: Optional[str],
  state_backend: str = 'rocksdb',
) -> str:
  """abandon_rate.sql for one run: a blackhole sink, or the Kafka topic `rows_topic`."""
  if rows_topic:
    sink = (
      f"'connector' = 'kafka', 'topic' = '{rows_topic}', "
      f"'properties.bootstrap.servers' = '{bootstrap}', 'format' = 'json'"
    )
  else:
    sink = "'connector' = 'blackhole'"
  return string.Template(SQL_FILE.read_text()).substitute(
    job_name=job_name,
    topic=topic,
    bootstrap=bootstrap,
    parallelism=parallelism,
    window_s=window_s,
    checkpoint_ms=checkpoint_ms,
    sink_options=sink,
    state_backend=state_backend,
  )


def run_job(sql: str, workdir: Path, timeout_s: float = 900) -> Dict[str, float]:
  """Submits `sql` with sql-client.sh -f, waits for the job to finish; its timings.

  Out: jid, running_ms / finished_ms (Flink's own timestamps), seconds = finished - running.
  """
  env, connector = _sql_client_env()
  name = re.search(r"'pipeline.name' = '([^']+)'", sql).group(1)
  path = workdir / f'{name}.sql'
  path.write_text(sql)
  out = subprocess.run(
    [env['FLINK_HOME'] + '/bin/sql-client.sh', '-j', str(connector), '-f', str(path)],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  match = re.search(r'Job ID: ([0-9a-f]{32})', out.stdout)
  if out.returncode or not match:
    raise RuntimeError(
      f'sql-client.sh failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}'
    )
  jid = match.group(1)
  deadline = time.monotonic() + timeout_s
  while True:
    job = rest(f'/jobs/{jid}')
    if job['state'] in FINAL_STATES:
      break
    if time.monotonic() > deadline:
      raise RuntimeError(f'Flink SQL job {jid} still {job["state"]} after {timeout_s} s')
    time.sleep(0.2)
  if job['state'] != 'FINISHED':
    exc = rest(f'/jobs/{jid}/exceptions').get('root-exception', '')
    raise RuntimeError(f'Flink SQL job {jid} {job["state"]}: {exc[:3000]}')
  running, finished = job['timestamps']['RUNNING'], job['timestamps']['FINISHED']
  return {
    'jid': jid,
    'running_ms': running,
    'finished_ms': finished,
    'seconds': (finished - running) / 1000,
  }


def read_rows(topic: str, bootstrap: str) -> Dict[Tuple[str, int], Tuple[int, int]]:
  """The rows job's output: (queue_id, window_start epoch ms) -> (total, abandoned)."""
  from kafka import KafkaConsumer

  consumer = KafkaConsumer(
    topic,
    bootstrap_servers=bootstrap,
    auto_offset_reset='earliest',
    enable_auto_commit=False,
    consumer_timeout_ms=5000,
  )
  rows = {}
  try:
    for msg in consumer:
      row = json.loads(msg.value)
      start = datetime.datetime.fromisoformat(row['window_start'].replace('Z', '+00:00'))
      if start.tzinfo is None:  # table.local-time-zone is UTC
        start = start.replace(tzinfo=datetime.timezone.utc)
      rows[(row['queue_id'], round(start.timestamp() * 1000))] = (
        row['total_calls'],
        row['abandoned_calls'],
      )
  finally:
    consumer.close()
  return rows


def _flink_json_call_key(raw: bytes, window_s: int) -> Optional[Tuple[str, int]]:
  """(queue_id, window start) a line counts in for abandon_rate.sql, None if it counts nowhere.

  Flink's JSON format is lenient where the product is strict: a BIGINT field also reads a
  numeric string, a BOOLEAN any string (not "true": false), and fields the query does not
  select (wait_time_seconds, agent_id) are not checked at all."""
  try:
    obj = json.loads(raw.decode('utf-8', 'replace'))
    ts = int(obj['timestamp'])
  except (ValueError, TypeError, KeyError):
    return None
  if not (
    isinstance(obj, dict)
    and obj.get('event_type') == 'CALL_ENDED'
    and obj.get('call_uuid')
    and obj.get('queue_id')
    and obj.get('abandoned') is not None
    and 946684800000 <= ts < 4102444800000
  ):
    return None
  return obj['queue_id'], ts - ts % (window_s * 1000)


def lenient_lines(lines, window_s: int) -> Counter:
  """Per window, the lines the product rejects (testing/reference/calls.py) that the SQL counts."""
  return Counter(
    key
    for key in (
      _flink_json_call_key(raw, window_s) for raw in lines if parse_valid_event(raw) is None
    )
    if key
  )


def compare_rows(
  sql_rows: Dict[tuple, tuple], beam_rows: Dict[tuple, tuple], lenient: Counter
) -> Dict:
  """Where the two jobs' (total, abandoned) per (queue, window start) differ.

  A window is explained when the SQL's total exceeds ours by exactly the `lenient` lines in
  it (lines our parser dead-letters and Flink's JSON format reads); `equal` holds when every
  window is equal or explained."""
  keys = sql_rows.keys() | beam_rows.keys()
  diff = {
    k: {'flink_sql': sql_rows.get(k), 'beam': beam_rows.get(k), 'lenient_lines': lenient[k]}
    for k in sorted(keys)
    if sql_rows.get(k) != beam_rows.get(k)
  }
  explained = [
    k
    for k, d in diff.items()
    if d['flink_sql']
    and d['beam']
    and lenient[k]
    and d['flink_sql'][0] - d['beam'][0] == lenient[k]
  ]
  return {
    'windows': len(keys),
    'equal': len(keys) - len(diff),
    'differ_by_lines_only_flink_json_accepts': len(explained),
    'unexplained': {f'{k[0]}@{k[1]}': d for k, d in diff.items() if k not in explained},
    'ok': len(diff) == len(explained),
  }
