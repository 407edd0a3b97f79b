"""The job's /metrics endpoint on the local runner (--metrics_port,
pipelines/metrics_server.py): scraped while a stream with known poison and
late records runs, its last answer has the exact dead letters and late
events by reason and the event-time lag of the newest window, in a format
`promtool check metrics` (Debian's prometheus package) accepts."""

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Dict, List, Tuple

import pytest

from pipelines import contact_center
from tests.support.metrics_job import SOURCE, known_stream, start_job
from tests.test_graph_build import free_port

Series = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


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


def test_scrapes_of_a_running_job(tmp_path):
  stream = known_stream(tmp_path)
  port = free_port()
  job = start_job(stream, tmp_path, port, ['--metrics_final_scrape_wait=60'])
  try:
    bodies, last_at = scrape_until_stopped(f'http://127.0.0.1:{port}/metrics', job)
  finally:
    job.kill() if job.poll() is None else None
  assert job.wait(timeout=60) == 0, (tmp_path / 'job.log').read_text()[-3000:]
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
