"""A real Prometheus server (Debian's `prometheus` package, on loopback,
started here) scrapes the job's /metrics while the job runs a stream with
known poison and late records; Prometheus' HTTP API then answers the exact
dead letters and late events by reason, it has loaded
deploy/prometheus/alerts.yml, and it evaluates every query of the Grafana
dashboard. It also scrapes a running wallboard's own /metrics. The server
runs deploy/prometheus/prometheus.yml with the test's targets."""

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List

import pytest
import yaml

from tests.support.metrics_job import SOURCE, known_stream, start_job
from tests.support.wallboard_helpers import wallboard
from tests.test_graph_build import free_port
from tests.test_metrics_endpoint import DASHBOARD, dashboard_queries
from tests.test_prometheus_rules import RULES
from transforms.schema import TABLES
from transforms.sqlite_sink import SqliteSink

INTERVAL = '1s'
CONFIG = RULES.parent / 'prometheus.yml'


class Prometheus:
  """A Prometheus server on 127.0.0.1:`port`, asked through its HTTP API."""

  def __init__(self, port: int):
    self.url = f'http://127.0.0.1:{port}'

  def api(self, path: str, **params: str) -> dict:
    """The `data` of a successful API answer."""
    query = f'?{urllib.parse.urlencode(params)}' if params else ''
    with urllib.request.urlopen(f'{self.url}/api/v1/{path}{query}', timeout=10) as response:
      answer = json.load(response)
    assert answer['status'] == 'success', answer
    return answer['data']

  def by_reason(self, metric: str) -> Dict[str, float]:
    """reason -> value of the last sample of each `metric` series of the
    job's source. Range selectors skip the staleness markers Prometheus
    writes once the finished job stops answering."""
    data = self.api('query', query=f'last_over_time({metric}{{source="{SOURCE}"}}[10m])')
    return {r['metric']['reason']: float(r['value'][1]) for r in data['result']}


def prometheus_config(targets: Dict[str, List[str]]) -> dict:
  """deploy/prometheus/prometheus.yml with its rules, scraping and
  evaluating every second, its scrape jobs named in `targets` (job ->
  host:port list) on those targets and the others left out."""
  config = yaml.safe_load(CONFIG.read_text())
  config['global'] = {'scrape_interval': INTERVAL, 'evaluation_interval': INTERVAL}
  config['rule_files'] = [str(CONFIG.parent / f) for f in config['rule_files']]
  jobs = [job for job in config['scrape_configs'] if job['job_name'] in targets]
  assert {job['job_name'] for job in jobs} == set(targets)
  for job in jobs:
    job['static_configs'] = [{'targets': targets[job['job_name']]}]
  config['scrape_configs'] = jobs
  return config


@contextlib.contextmanager
def running_prometheus(tmp_path: Path, targets: Dict[str, List[str]]) -> Iterator[Prometheus]:
  """A Prometheus server on a free loopback port, with prometheus_config(targets)."""
  binary = shutil.which('prometheus')
  assert binary, 'prometheus not found: run scripts/stack/install_prometheus.sh'
  port = free_port()
  config = tmp_path / 'prometheus.yml'
  config.write_text(yaml.safe_dump(prometheus_config(targets)))
  log = open(tmp_path / 'prometheus.log', 'wb')  # noqa: SIM115  (the server writes it)
  with log:
    server = subprocess.Popen(
      [
        binary,
        f'--config.file={config}',
        f'--storage.tsdb.path={tmp_path / "data"}',
        f'--web.listen-address=127.0.0.1:{port}',
      ],
      stdout=log,
      stderr=subprocess.STDOUT,
    )
  try:
    wait_ready(f'http://127.0.0.1:{port}/-/ready', server, tmp_path / 'prometheus.log')
    yield Prometheus(port)
  finally:
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def prometheus(tmp_path) -> Iterator[tuple]:
  """(Prometheus, the job's metrics port it scrapes as job contact-center)."""
  metrics_port = free_port()
  with running_prometheus(tmp_path, {'contact-center': [f'127.0.0.1:{metrics_port}']}) as server:
    yield server, metrics_port


def wait_ready(url: str, server: subprocess.Popen, log: Path) -> None:
  deadline = time.monotonic() + 60
  while time.monotonic() < deadline:
    assert server.poll() is None, log.read_text()[-3000:]
    try:
      with urllib.request.urlopen(url, timeout=2):
        return
    except OSError:
      time.sleep(0.2)
  raise AssertionError(f'prometheus not ready in 60 s: {log.read_text()[-3000:]}')


def test_prometheus_has_the_exact_counts_by_reason(prometheus, tmp_path):
  server, metrics_port = prometheus
  stream = known_stream(tmp_path)
  job = start_job(stream, tmp_path, metrics_port, ['--metrics_final_scrape_wait_seconds=60'])
  try:
    # The job ends after a scrape of its final values (its final wait).
    assert job.wait(timeout=300) == 0, (tmp_path / 'job.log').read_text()[-3000:]
  finally:
    job.kill() if job.poll() is None else None

  up = server.api('query', query='max_over_time(up{job="contact-center"}[10m])')['result']
  assert [float(r['value'][1]) for r in up] == [1.0]
  assert server.by_reason('contact_center_dead_letters_total') == stream.dead_letters
  assert server.by_reason('contact_center_late_events_total') == {
    'after_window_expiry': stream.late_events
  }
  newest = server.api(
    'query',
    query='last_over_time(contact_center_newest_window_end_timestamp_seconds'
    '{table="abandon_metrics"}[10m])',
  )['result']
  assert [float(r['value'][1]) for r in newest] == [stream.newest_window_end_s]

  # The alert rules load and evaluate against the scraped series.
  groups = server.api('rules', type='alert')['groups']
  rules = {rule['name']: rule for group in groups for rule in group['rules']}
  expected = {
    rule['alert']
    for group in yaml.safe_load(RULES.read_text())['groups']
    for rule in group['rules']
    if 'alert' in rule
  }
  assert set(rules) == expected
  assert all(rule['health'] == 'ok' for rule in rules.values()), rules

  # Every dashboard query is valid PromQL (api() asserts success; a job of
  # a few seconds is too short for the rates to have series).
  for query in dashboard_queries(json.loads(DASHBOARD.read_text())):
    server.api('query', query=query.replace('$job', 'contact-center'))


def test_prometheus_scrapes_the_wallboard(tmp_path):
  """The wallboard process's own /metrics, as the `wallboard` job of
  deploy/prometheus/prometheus.yml scrapes it: requests by route, reads of
  the store."""
  db = tmp_path / 'results.db'
  SqliteSink(str(db)).prepare(TABLES.values())
  with wallboard([f'--sqlite_path={db}', '--refresh_seconds=0.5']) as url:
    target = urllib.parse.urlsplit(url).netloc
    with running_prometheus(tmp_path, {'wallboard': [target]}) as server:
      for _ in range(3):
        with urllib.request.urlopen(f'{url}api/snapshot', timeout=10) as response:
          assert response.status == 200

      def scraped(query: str) -> List[float]:
        return [float(r['value'][1]) for r in server.api('query', query=query)['result']]

      snapshots = (
        'contact_center_wallboard_requests_total'
        '{job="wallboard", route="/api/snapshot", status="200"}'
      )
      deadline = time.monotonic() + 60
      while scraped(snapshots) != [3.0] and time.monotonic() < deadline:
        time.sleep(0.5)
      assert scraped(snapshots) == [3.0]
      assert scraped('up{job="wallboard"}') == [1.0]
      [reads] = scraped('contact_center_wallboard_store_read_seconds_count{job="wallboard"}')
      assert reads >= 1
      assert scraped('contact_center_wallboard_store_read_errors_total{job="wallboard"}') == [0.0]
