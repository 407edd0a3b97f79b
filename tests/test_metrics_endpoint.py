"""The job's /metrics endpoint on the local runner (--metrics_port,
pipelines/metrics_server.py): scraped while a stream with known poison and
late records runs, its last answer has the exact dead letters and late
events by reason and the event-time lag of the newest window, in a format
`promtool check metrics` (Debian's prometheus package) accepts; and every
metric of the job the Grafana dashboard (deploy/grafana/contact-center.json)
queries is in that scrape (Flink's own: tests/integration/test_flink_prometheus.py)."""

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Dict, Iterator, List, NamedTuple, Set, Tuple

import pytest

from pipelines import contact_center
from tests.support.metrics_job import REPO, SOURCE, KnownStream, known_stream, start_job
from tests.test_graph_build import free_port

Series = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]
DASHBOARD = REPO / 'deploy' / 'grafana' / 'contact-center.json'


def parse(body: str) -> Series:
  """(name, sorted labels) -> value of every sample line."""
  out: Series = {}
  for line in body.splitlines():
    if not line or line.startswith('#'):
      continue
    head, value = line.rsplit(' ', 1)
    name, _, labels = head.partition('{')
    pairs = [p.split('=', 1) for p in labels.rstrip('}').split(',') if p]
    out[(name, tuple(sorted((k, v.strip('"')) for k, v in pairs)))] = float(value)
  return out


def by_reason(series: Series, name: str) -> Dict[str, float]:
  return {
    dict(labels)['reason']: value
    for (n, labels), value in series.items()
    if n == name and dict(labels)['source'] == SOURCE
  }


def scrape_until_stopped(url: str, job: subprocess.Popen) -> Tuple[List[str], float]:
  """Every answer of `url` until the job stops serving it, and the time of
  the last one."""
  bodies, last_at = [], 0.0
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline:
    try:
      with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers['Content-Type'].startswith('text/plain; version=0.0.4')
        bodies.append(response.read().decode('utf-8'))
        last_at = time.time()
    except (urllib.error.URLError, ConnectionError):
      if job.poll() is not None:
        return bodies, last_at
    time.sleep(0.2)
  raise AssertionError('the job did not stop serving /metrics in 300 s')


class Scraped(NamedTuple):
  stream: KnownStream
  bodies: List[str]
  last_at: float


@pytest.fixture(scope='module')
def scraped(tmp_path_factory) -> Iterator[Scraped]:
  """Every answer of /metrics while the job ran the known stream and
  after it finished, and the time of the last one."""
  tmp_path = tmp_path_factory.mktemp('metrics_job')
  stream = known_stream(tmp_path)
  port = free_port()
  job = start_job(stream, tmp_path, port, ['--metrics_final_scrape_wait_seconds=60'])
  try:
    bodies, last_at = scrape_until_stopped(f'http://127.0.0.1:{port}/metrics', job)
  finally:
    job.kill() if job.poll() is None else None
  assert job.wait(timeout=60) == 0, (tmp_path / 'job.log').read_text()[-3000:]
  yield Scraped(stream, bodies, last_at)


def test_scrapes_of_a_running_job(scraped):
  stream, bodies, last_at = scraped
  final = parse(bodies[-1])
  lines = ('contact_center_beam_metric_total', (('name', 'lines'), ('namespace', 'replay')))
  assert final[lines] == len(stream.path.read_bytes().splitlines())
  # Scraped while the replay ran, too.
  assert any(0 < parse(body).get(lines, 0) < final[lines] for body in bodies[:-1]), len(bodies)

  assert by_reason(final, 'contact_center_dead_letters_total') == stream.dead_letters
  assert by_reason(final, 'contact_center_late_events_total') == {
    'after_window_expiry': stream.late_events
  }
  table = (('table', 'abandon_metrics'),)
  newest = final[('contact_center_newest_window_end_timestamp_seconds', table)]
  assert newest == stream.newest_window_end_s
  lag = final[('contact_center_event_time_lag_seconds', table)]
  assert 0 <= last_at - newest - lag < 10
  rows = final[('contact_center_sink_rows_written_total', (('table', 'dead_letters'),))]
  assert rows == sum(stream.dead_letters.values())

  # Live state by step and shard: held while the replay ran, all of it
  # released once it ended (nothing is kept forever).
  def live(body: str) -> Dict[str, float]:
    steps: Dict[str, float] = {}
    for (family, labels), value in parse(body).items():
      if family == 'contact_center_live_state_entries':
        step = dict(labels)['step']
        steps[step] = steps.get(step, 0) + value
    return steps

  assert {'call_events_dedupe', 'abandon_rate_windows'} <= set(live(bodies[-1]))
  assert any(live(body).get('abandon_rate_windows', 0) > 0 for body in bodies[:-1])
  assert set(live(bodies[-1]).values()) == {0}
  # Beam's own counters too, by namespace and name.
  assert final[
    ('contact_center_beam_metric_total', (('name', 'dead_letters'), ('namespace', 'call_events')))
  ] == sum(stream.dead_letters.values())

  promtool = shutil.which('promtool')
  assert promtool, 'promtool not found: run scripts/stack/install_prometheus.sh'
  lint = subprocess.run(
    [promtool, 'check', 'metrics'], input=bodies[-1], capture_output=True, text=True, timeout=60
  )
  assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr


def test_metrics_port_is_for_the_local_runner():
  with pytest.raises(ValueError, match="Flink's Prometheus reporter"):
    contact_center.run(
      ['--runner=FlinkRunner', '--metrics_port=9464', '--call_events=samples/call_events.jsonl']
    )


def test_a_port_in_use_stops_the_launch(tmp_path):
  with socket.socket() as taken:
    taken.bind(('127.0.0.1', 0))
    taken.listen()
    port = taken.getsockname()[1]
    with pytest.raises(ValueError, match=f'--metrics_port={port}: cannot listen'):
      contact_center.run(
        [
          f'--metrics_port={port}',
          '--call_events=samples/call_events.jsonl',
          f'--sqlite_path={tmp_path / "out.db"}',
        ]
      )


# PromQL words that are not metric names: aggregations, their modifiers,
# set operators (functions are told by the parenthesis after them).
_PROMQL_WORDS = {'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool'}
_PROMQL_WORDS |= {'and', 'or', 'unless', 'sum', 'min', 'max', 'avg', 'count', 'topk', 'bottomk'}


def dashboard_queries(dashboard: dict) -> List[str]:
  """Every PromQL expression of the dashboard: panel targets and variables."""
  queries = [t['expr'] for panel in dashboard['panels'] for t in panel['targets']]
  for variable in dashboard['templating']['list']:
    match = re.fullmatch(r'label_values\((\w+), *\w+\)', variable['definition'])
    assert match, variable['definition']
    queries.append(match.group(1))
  return queries


def metric_names(expr: str) -> Set[str]:
  """The metric names an expression selects: its identifiers once label
  matchers, ranges, strings, grouping clauses and function calls are out."""
  expr = re.sub(r'"(?:[^"\\]|\\.)*"', '', expr)
  expr = re.sub(r'\{[^}]*\}|\[[^\]]*\]', '', expr)
  expr = re.sub(r'\b(?:by|without|on|ignoring|group_left|group_right) *\([^)]*\)', '', expr)
  names = set(re.findall(r'\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?! *\()', expr))
  return names - _PROMQL_WORDS


def test_metric_names_of_a_query():
  assert metric_names(
    'sum by (source, reason) (rate(a_total{job=~"$job", x="sum"}[5m])) / on (x) b * 1000'
  ) == {'a_total', 'b'}


def test_dashboard_is_importable_and_queries_only_exported_metrics(scraped):
  dashboard = json.loads(DASHBOARD.read_text())
  # What Grafana's import needs: a title and uid, the data source as an
  # import input every query uses, panels with unique ids and a place.
  assert dashboard['title'] and dashboard['uid']
  inputs = {i['name']: i for i in dashboard['__inputs']}
  assert inputs['DS_PROMETHEUS']['pluginId'] == 'prometheus'
  ids = [panel['id'] for panel in dashboard['panels']]
  assert len(ids) == len(set(ids))
  for panel in dashboard['panels']:
    assert set(panel['gridPos']) == {'x', 'y', 'w', 'h'}, panel['title']
    assert panel['targets'], panel['title']
    for target in [panel, *panel['targets']]:
      assert target['datasource'] == {'type': 'prometheus', 'uid': '${DS_PROMETHEUS}'}

  # Declared families count: a sink that never retried has no series yet.
  # Flink's own series are found in a scrape of Flink's reporter
  # (tests/integration/test_flink_prometheus.py).
  body = scraped.bodies[-1]
  exported = {name for name, _ in parse(body)} | set(re.findall(r'^# TYPE (\S+)', body, re.M))
  queried = set().union(*(metric_names(q) for q in dashboard_queries(dashboard)))
  job_series = {name for name in queried if not name.startswith('flink_')}
  assert job_series, 'the dashboard queries no metric of the job'
  assert job_series <= exported, sorted(job_series - exported)
