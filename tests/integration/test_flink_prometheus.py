"""Flink's Prometheus reporter (scripts/flink.sh with FLINK_PROMETHEUS_PORTS)
scraped by a real Prometheus with deploy/prometheus/prometheus.yml: the
JobManager and the TaskManager answer on the reporter's ports with Flink's
metrics; and while the main job reads Kafka on the cluster (unbounded, so
its series stay in the reporter until the test cancels it), Prometheus has
the exact dead letters and late events by reason of the produced stream
(the plain-Python reference of testing/reference/calls.py), under the local
runner's names the configuration's relabelling gives Flink's flattened Beam
counters, and every Flink metric the alert rules
(deploy/prometheus/alerts.yml) and the Grafana dashboard
(deploy/grafana/contact-center.json) use, KafkaIO's backlog among them.

Needs Kafka and the KafkaIO expansion service (scripts/stack.sh up). The
cluster must have the reporter: a cluster this module finds running
without it is a failure (it is not restarted under another test's feet)."""

import collections
import json
import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Set, Tuple

import apache_beam as beam
import pytest
import yaml
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines import contact_center
from pipelines.contact_center import CALL_EVENTS_SOURCE
from scripts.produce_events import produce_lines, read_lines
from testing.datagen.calls import write_call_events
from testing.reference.calls import comparable_rows, reference_call_metrics
from tests.integration.conftest import REPO, RUN_DIR, flink_script, script_env
from tests.integration.test_flink_poison import poisoned_lines
from tests.integration.test_kafka_flink import (  # noqa: F401  (fixtures)
  PARTITIONS,
  cluster_job_args,
  new_topic,
  root_exception,
  sqlite_table,
  stop_cluster_job,
  wait_for_free_slots,
)
from tests.support.flink_rest import rest
from tests.support.poison import POISON_CALLS
from tests.test_metrics_endpoint import DASHBOARD, dashboard_queries, metric_names
from tests.test_prometheus_rules import RULES
from tests.test_prometheus_scrape import Prometheus, running_prometheus
from transforms.windowing import AFTER_WINDOW_EXPIRY

REPORTER_PORTS = os.environ.get('FLINK_PROMETHEUS_PORTS', '9249-9259')
# KafkaIO's reader gauge of the records not read yet, per split (Beam's
# source.splits/<split>.backlog_elements), as prometheus.yml relabels it.
KAFKA_BACKLOG = 'flink_taskmanager_job_task_operator_source_splits_backlog_elements'
# How long the job may take to reach each state the test waits for.
WAIT_SECONDS = 90


def reporter_targets() -> List[str]:
  """The first ports of the range: the JobManager and a TaskManager take two."""
  first = int(REPORTER_PORTS.split('-')[0])
  return [f'127.0.0.1:{port}' for port in range(first, first + 3)]


@pytest.fixture(scope='module')
def flink_with_reporter(flink_job_server_jar) -> Iterator[str]:
  """scripts/flink.sh start with the Prometheus reporter; stopped afterwards
  if this fixture started it. Yields the job-server jar."""
  config = RUN_DIR / 'flink' / 'conf' / 'config.yaml'
  if flink_script('status').returncode == 0:
    assert 'metrics.reporter.prom.port' in config.read_text(), (
      'a Flink cluster without the Prometheus reporter is running: stop it '
      '(scripts/flink.sh stop) or start it with FLINK_PROMETHEUS_PORTS=9249-9259'
    )
    yield flink_job_server_jar
    return
  env = dict(script_env(), FLINK_PROMETHEUS_PORTS=REPORTER_PORTS)
  start = subprocess.run(
    [str(REPO / 'scripts' / 'flink.sh'), 'start'],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert start.returncode == 0, f'flink.sh start failed:\n{start.stderr[-4000:]}'
  try:
    yield flink_job_server_jar
  finally:
    flink_script('stop')


def test_flink_processes_answer_prometheus(flink_with_reporter, tmp_path):
  with running_prometheus(tmp_path, {'flink': reporter_targets()}) as server:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
      registered = server.api(
        'query', query='flink_jobmanager_numRegisteredTaskManagers{job="flink"}'
      )['result']
      cpu = server.api('query', query='flink_taskmanager_Status_JVM_CPU_Load{job="flink"}')[
        'result'
      ]
      if registered and cpu:
        break
      time.sleep(1)
    assert [float(r['value'][1]) for r in registered] == [1.0]
    assert len(cpu) == 1, cpu
    up = server.api('query', query='sum(up{job="flink"})')['result']
    assert [float(r['value'][1]) for r in up] == [2.0], 'the JobManager and one TaskManager'


def flink_metrics_used() -> Set[str]:
  """The flink_* metric names the alert rules and the dashboard query."""
  groups = yaml.safe_load(RULES.read_text())['groups']
  queries = [rule['expr'] for group in groups for rule in group['rules']]
  queries += dashboard_queries(json.loads(DASHBOARD.read_text()))
  names = set().union(*(metric_names(q) for q in queries))
  return {name for name in names if name.startswith('flink_')}


class KafkaStream(NamedTuple):
  """Call events produced in two rounds, and what the job must count on
  them (the plain-Python reference of testing/reference/calls.py)."""

  first: List[bytes]  # valid calls over about 12 minutes, the poison between them
  second: List[bytes]  # calls of the first window, produced once that window expired
  first_window_start_ms: int
  dead_letters: Dict[str, int]
  late_events: int


def kafka_stream(tmp_path: Path) -> KafkaStream:
  """The first round ends about now; the second lies in its first window or
  before, so once the job has closed the first round's second window (its
  shards' clocks passed the first window's expiry), every call of the
  second round is late, whatever the batches Kafka delivers."""
  generated = tmp_path / 'first.jsonl'
  write_call_events(
    str(generated),
    720,
    seed=29,
    events_per_second=1,
    jitter_seconds=5.0,
    too_late_share=0.0,
    late_within_lateness_share=0.0,
    malformed=0,
  )
  first = poisoned_lines(read_lines(str(generated)), POISON_CALLS, 29)
  (tmp_path / 'first.produced.jsonl').write_bytes(b''.join(line + b'\n' for line in first))
  windows = comparable_rows(reference_call_metrics(str(tmp_path / 'first.produced.jsonl')))
  start = min(window_start for _, window_start in windows)
  late = tmp_path / 'second.jsonl'
  write_call_events(
    str(late),
    30,
    seed=30,
    start_ms=start + 30_000,
    events_per_second=1,
    jitter_seconds=0.0,
    too_late_share=0.0,
    late_within_lateness_share=0.0,
    duplicate_share=0.0,
    malformed=0,
  )
  second = read_lines(str(late))
  both = tmp_path / 'both.jsonl'
  both.write_bytes(b''.join(line + b'\n' for line in first + second))
  # The job reads each round after the other: one poll each.
  reference = reference_call_metrics(str(both), poll_size=len(first))
  assert reference.dead_letter_count == len(POISON_CALLS)
  assert reference.late, 'the second round must be late'
  return KafkaStream(
    first,
    second,
    start,
    dict(collections.Counter(reason for _, reason in POISON_CALLS)),
    len(reference.late),
  )


def flink_label(text: str) -> str:
  """A label value as Flink's reporter writes it: [a-zA-Z0-9:_] kept, the
  rest _."""
  return re.sub(r'[^a-zA-Z0-9:_]', '_', text)


def by_reason(server: Prometheus, metric: str, job_name: str) -> Dict[Tuple[str, str], float]:
  """(source, reason) -> `metric` of the Flink job summed over its
  operators and subtasks (each reports its own)."""
  selector = f'{metric}{{job="flink", job_name="{flink_label(job_name)}"}}'
  data = server.api('query', query=f'sum by (source, reason) ({selector})')
  return {
    (r['metric']['source'], r['metric']['reason']): float(r['value'][1]) for r in data['result']
  }


def newest_window_start(db: Path) -> int:
  try:
    return max((r['window_start'] for r in sqlite_table(db, 'abandon_metrics')), default=0)
  except sqlite3.OperationalError:
    return 0  # no table yet


def wait_for(what: str, observe: Callable[[], Any], expected: Any, job_name: str) -> None:
  """Polls `observe` until it answers `expected`; fails, with its last
  answer, when the job stops running or after WAIT_SECONDS."""
  deadline = time.monotonic() + WAIT_SECONDS
  while (observed := observe()) != expected:
    jobs = [j for j in rest('/jobs/overview')['jobs'] if j['name'] == job_name]
    assert not jobs or jobs[0]['state'] in ('CREATED', 'INITIALIZING', 'RUNNING'), (
      f'job {jobs[0]["state"]}: {root_exception(jobs[0]["jid"])}'
    )
    assert time.monotonic() < deadline, (
      f'{what}: {observed} after {WAIT_SECONDS} s, expected {expected}'
    )
    time.sleep(1)


def test_kafka_fed_job_on_flink_counts_exactly_in_prometheus(
  flink_with_reporter, new_topic, tmp_path, kafka_bootstrap, expansion_service
):
  """While the main job reads Kafka on the cluster, Prometheus (scraping
  the reporter through deploy/prometheus/prometheus.yml's relabelling) has
  the exact dead letters and late events by reason of the produced stream,
  the Kafka reader's backlog, and every Flink metric the alert rules and
  the dashboard use; then the job is cancelled."""
  used = flink_metrics_used()
  assert {KAFKA_BACKLOG, 'flink_jobmanager_job_numberOfFailedCheckpoints'} < used
  stream = kafka_stream(tmp_path)
  topic = new_topic('it-prom-calls')
  produce_lines(stream.first, topic, kafka_bootstrap)
  db = tmp_path / 'out.db'
  job_name = f'it-prom-{topic}'
  args = cluster_job_args(
    job_name,
    flink_with_reporter,
    kafka_bootstrap,
    expansion_service,
    f'--kafka_call_events_topic={topic}',
    '--kafka_data_actions_topic=',
    f'--kafka_consumer_group=it-{topic}',
    f'--sqlite_path={db}',
  )
  # Dead letters name the topic, late events the stream.
  expected = [
    {(flink_label(topic), reason): n for reason, n in stream.dead_letters.items()},
    {(flink_label(CALL_EVENTS_SOURCE), AFTER_WINDOW_EXPIRY): stream.late_events},
  ]
  with running_prometheus(tmp_path, {'flink': reporter_targets()}) as server:

    def counts() -> List[Dict[Tuple[str, str], float]]:
      return [
        by_reason(server, 'contact_center_dead_letters_total', job_name),
        by_reason(server, 'contact_center_late_events_total', job_name),
      ]

    wait_for_free_slots(2)
    options = PipelineOptions(args)
    pipeline = beam.Pipeline(options=options)
    contact_center.build(pipeline, options)()
    result = pipeline.run()
    try:
      # The second window closed, so the watermark passed the first one's
      # expiry, and with it every shard's clock (its timers fire first).
      wait_for(
        'a row of the second window',
        lambda: newest_window_start(db) >= stream.first_window_start_ms + 300_000,
        True,
        job_name,
      )
      produce_lines(stream.second, topic, kafka_bootstrap)
      wait_for('dead letters and late events by source and reason', counts, expected, job_name)
      wait_for(
        'Flink metrics of the rules and the dashboard not scraped',
        lambda: [n for n in sorted(used) if not server.api('query', query=n)['result']],
        [],
        job_name,
      )
      # Both rounds read: every split reports a backlog, none above what
      # was produced. Not exactly 0: KafkaIO refreshes its estimate of the
      # end offsets on its own schedule, so on a loaded machine a split's
      # last estimate can trail the records it has read (the counts above
      # are exact all the same); docs/operations.md says so.
      backlog = f'{KAFKA_BACKLOG}{{job="flink", job_name="{flink_label(job_name)}"}}'
      produced = len(stream.first) + len(stream.second)
      wait_for(
        'the backlog by split',
        lambda: {
          r['metric']['split']: 0 <= float(r['value'][1]) <= produced
          for r in server.api('query', query=backlog)['result']
        },
        {str(split): True for split in range(PARTITIONS)},
        job_name,
      )
      # The event-time lag on Flink: the newest window end per table
      # (relabelled from the reporter) is the newest row written, and the
      # recording rule of alerts.yml makes it the lag the alert reads.
      series = f'{{job="flink", job_name="{flink_label(job_name)}", table="abandon_metrics"}}'
      wait_for(
        'the newest window end written',
        lambda: [
          float(r['value'][1])
          for r in server.api(
            'query', query=f'max(contact_center_newest_window_end_milliseconds{series})'
          )['result']
        ],
        [float(newest_window_start(db) + 300_000)],
        job_name,
      )
      wait_for(
        'the recorded event-time lag',
        lambda: bool(
          server.api('query', query=f'contact_center_event_time_lag_seconds{series} > 0')['result']
        ),
        True,
        job_name,
      )
      # Live state by step, relabelled from the shards' gauges.
      live = (
        'sum by (step) (contact_center_live_state_entries'
        f'{{job="flink", job_name="{flink_label(job_name)}"}})'
      )
      wait_for(
        'live state of the windowed and de-duplication steps',
        lambda: (
          {'abandon_rate_windows', 'call_events_dedupe'}
          <= {r['metric']['step'] for r in server.api('query', query=live)['result']}
        ),
        True,
        job_name,
      )
      # Everything read, the counts stayed exact (none counted twice).
      assert counts() == expected
    finally:
      stop_cluster_job(job_name, result)
