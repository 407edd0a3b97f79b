"""Flink's Prometheus reporter (scripts/flink.sh with FLINK_PROMETHEUS_PORTS)
scraped by a real Prometheus with deploy/prometheus/prometheus.yml: the
JobManager and the TaskManager answer on the reporter's ports with Flink's
metrics, and while the main job runs on the cluster, every Flink metric the
alert rules (deploy/prometheus/alerts.yml) and the Grafana dashboard
(deploy/grafana/contact-center.json) use is scraped.

The job's own series on Flink (Beam counters, which the configuration's
relabelling rules rename to the local runner's names) are not asserted
here: a replayed file's job reports them when its bundles finish and drops
them from the reporter the moment it ends, so a scrape sees them or not;
a Kafka-fed job that keeps running is the setting for that.

The cluster must have the reporter: a cluster this module finds running
without it is a failure (it is not restarted under another test's feet)."""

import json
import os
import subprocess
import sys
import time
from typing import Iterator, List, Set

import pytest
import yaml

from tests.integration.conftest import REPO, RUN_DIR, _script_env, flink_script
from tests.test_metrics_endpoint import DASHBOARD, dashboard_queries, metric_names
from tests.test_prometheus_rules import RULES
from tests.test_prometheus_scrape import running_prometheus

REPORTER_PORTS = os.environ.get('FLINK_PROMETHEUS_PORTS', '9249-9259')
REST_PORT = os.environ.get('FLINK_REST_PORT', '8081')
POOL_PORT = os.environ.get('WORKER_POOL_PORT', '50000')


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
  env = dict(_script_env(), FLINK_PROMETHEUS_PORTS=REPORTER_PORTS)
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


def test_flink_metrics_of_the_rules_and_dashboard_are_scraped(flink_with_reporter, tmp_path):
  used = flink_metrics_used()
  assert {'flink_jobmanager_job_numberOfFailedCheckpoints'} < used
  with running_prometheus(tmp_path, {'flink': reporter_targets()}) as server:
    job = subprocess.run(
      [
        sys.executable,
        '-m',
        'pipelines.contact_center',
        '--runner=FlinkRunner',
        f'--flink_master=127.0.0.1:{REST_PORT}',
        f'--flink_job_server_jar={flink_with_reporter}',
        '--environment_type=EXTERNAL',
        f'--environment_config=127.0.0.1:{POOL_PORT}',
        f'--call_events={REPO / "samples" / "call_events.jsonl"}',
        f'--sqlite_path={tmp_path / "out.db"}',
        '--checkpointing_interval=1000',
      ],
      cwd=REPO,
      env=dict(os.environ, PYTHONPATH=str(REPO)),
      capture_output=True,
      text=True,
      timeout=600,
    )
    assert job.returncode == 0, job.stderr[-3000:]
    time.sleep(2)  # a last scrape
    # A job's series leave the reporter when it ends: what was scraped while it ran.
    missing = sorted(
      name
      for name in used
      if not server.api('query', query=f'last_over_time({name}{{job="flink"}}[10m])')['result']
    )
    assert not missing, missing
