"""The job's Prometheus /metrics endpoint on the local runner (--metrics_port).

While the job runs, every scrape reads the job's committed Beam metrics
(result.metrics(), complete on the local runner: pipelines/local_runner.py)
and answers them in the Prometheus text format (version 0.0.4):

- the operator metrics of transforms/operator_metrics.py, by their own
  names: `contact_center_dead_letters_total{source, reason}`,
  `contact_center_late_events_total{source, reason}`, and per windowed table
  `contact_center_newest_window_end_timestamp_seconds{table}` and
  `contact_center_event_time_lag_seconds{table}`, the scrape's time minus
  the newest window end handed to the sinks (so a stalled job's lag grows);
- the sinks' counters with labels: `contact_center_sink_rows_written_total
  {table}`, `contact_center_sink_rejected_rows_total{table, reason}`,
  `contact_center_sink_write_retries_total{sink}`;
- every other Beam metric of the job, by its namespace and name:
  `contact_center_beam_metric_total`, `contact_center_beam_metric_value`, and the
  distributions as a summary `contact_center_beam_distribution` (`_sum`,
  `_count`) with `contact_center_beam_distribution_min` / `_max`.

A job that ends (a file replay) keeps the endpoint up until one scrape has
read its final values, at most --metrics_final_scrape_wait_seconds seconds, so
Prometheus sees the totals. Other runners have their own metrics system
(Flink's Prometheus reporter, scripts/flink.sh); the job refuses
--metrics_port there.
"""

import contextlib
import http.server
import logging
import threading
import time
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from apache_beam.metrics.metric import MetricResults

from transforms import operator_metrics
from transforms.operator_metrics import NAMESPACE, parse_series, series
from transforms.schema import TABLES

_LOGGER = logging.getLogger(__name__)
PREFIX = 'contact_center_'
CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
# The direct runner's metrics are not locked for reading (see
# pipelines/progress.py): a read that races a step's first metric is retried.
READ_ATTEMPTS = 5

# Family -> (type, help) of every family the endpoint may answer.
FAMILIES: Dict[str, Tuple[str, str]] = {
  'dead_letters_total': (
    'counter',
    'Records routed to the dead_letters table, by source and reason.',
  ),
  'late_events_total': (
    'counter',
    'Records routed to the late_events table, by source and reason.',
  ),
  'newest_window_end_timestamp_seconds': (
    'gauge',
    'End (epoch seconds) of the newest window of the table handed to the sinks.',
  ),
  'event_time_lag_seconds': (
    'gauge',
    'Seconds from the end of the newest window of the table handed to the sinks to now.',
  ),
  'live_state_entries': (
    'gauge',
    'Entries a shard of a stateful step holds (keys, ids, waiting sessions), by step and shard.',
  ),
  'sink_rows_written_total': ('counter', 'Rows the sinks wrote, by table (summed over sinks).'),
  'sink_rejected_rows_total': (
    'counter',
    'Rows a sink rejected (now dead letters with source sink:<name>), by table and reason.',
  ),
  'sink_write_retries_total': ('counter', 'Writes a sink retried, by sink.'),
  'beam_metric_total': ('counter', 'Every Beam counter of the job, by namespace and name.'),
  'beam_metric_value': ('gauge', 'Every Beam gauge of the job, by namespace and name.'),
  'beam_distribution': ('summary', 'Every Beam distribution of the job, by namespace and name.'),
  'beam_distribution_min': ('gauge', 'Smallest value of a Beam distribution.'),
  'beam_distribution_max': ('gauge', 'Largest value of a Beam distribution.'),
}
# Families whose values are merged as (timestamp, value): the newest wins.
_TIMESTAMPED = ('beam_metric_value', 'live_state_entries')
# Beam counters of the sinks (transforms/sinks.py, transforms/cassandra/writer.py).
_SINK_NAMESPACE = 'sink'
_RETRIES = {('cassandra_sink', 'write_retries'): 'cassandra'}

Sample = Tuple[str, Dict[str, str], float]


def _value(result) -> object:
  # The local runner commits every metric; attempted covers a runner that
  # does not.
  return result.committed if result.committed is not None else result.attempted


def _sink_counter(name: str) -> Optional[Tuple[str, Dict[str, str]]]:
  """(family, labels) of a `sink` counter: `<table>_rows` or
  `<table>_rejected_<reason>`; None for another name."""
  for table in TABLES:
    if name == f'{table}_rows':
      return 'sink_rows_written_total', {'table': table}
    if name.startswith(f'{table}_rejected_'):
      reason = name[len(f'{table}_rejected_') :]
      return 'sink_rejected_rows_total', {'table': table, 'reason': reason}
  return None


def samples(results: Dict[str, list], now_s: float) -> List[Sample]:
  """(family, labels, value) of every series, from a MetricResults.query()
  answer, with the lag computed at `now_s`; a series counted by several
  steps is summed (counters) or merged (distributions)."""
  totals: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}

  def add(family: str, labels: Dict[str, str], value: float, merge=lambda a, b: a + b) -> None:
    key = (family, tuple(sorted(labels.items())))
    totals[key] = merge(totals[key], value) if key in totals else value

  for result in results['counters']:
    ns, name, value = result.key.metric.namespace, result.key.metric.name, _value(result)
    if ns == NAMESPACE:
      metric, labels = parse_series(name)
      add(metric, labels, value)
      continue
    add('beam_metric_total', {'namespace': ns, 'name': name}, value)
    sink = _sink_counter(name) if ns == _SINK_NAMESPACE else None
    if sink:
      add(*sink, value)
    if (ns, name) in _RETRIES:
      add('sink_write_retries_total', {'sink': _RETRIES[(ns, name)]}, value)
  for result in results['distributions']:
    ns, name, dist = result.key.metric.namespace, result.key.metric.name, _value(result)
    if not dist or not dist.count:
      continue
    labels = {'namespace': ns, 'name': name}
    add('beam_distribution_sum', labels, dist.sum)
    add('beam_distribution_count', labels, dist.count)
    add('beam_distribution_min', labels, dist.min, min)
    add('beam_distribution_max', labels, dist.max, max)
  for result in results['gauges']:
    gauge = _value(result)
    if gauge is not None and gauge.value is not None:
      ns, name = result.key.metric.namespace, result.key.metric.name
      if ns == NAMESPACE:
        metric, labels = parse_series(name)
        if metric == operator_metrics.NEWEST_WINDOW_END_MS:
          add('newest_window_end_timestamp_seconds', labels, gauge.value / 1000, max)
        elif metric == operator_metrics.LIVE_STATE_ENTRIES:
          # One writer per shard; the newest value of its steps.
          add('live_state_entries', labels, (gauge.timestamp, gauge.value), max)
        continue
      labels = {'namespace': ns, 'name': name}
      # The newest of several steps' gauges, as Beam combines gauges.
      add('beam_metric_value', labels, (gauge.timestamp, gauge.value), max)
  out = [
    (family, dict(labels), value[1] if family in _TIMESTAMPED else value)
    for (family, labels), value in totals.items()
  ]
  out += [
    ('event_time_lag_seconds', labels, now_s - end)
    for family, labels, end in out
    if family == 'newest_window_end_timestamp_seconds'
  ]
  return out


def _family_of(sample_family: str) -> str:
  for suffix in ('_sum', '_count'):
    base = sample_family[: -len(suffix)]
    if sample_family.endswith(suffix) and FAMILIES.get(base, ('',))[0] == 'summary':
      return base
  return sample_family


def number(value: float) -> str:
  """A sample value as the Prometheus text format writes it."""
  return str(int(value)) if float(value).is_integer() else repr(float(value))


def family_lines(name: str, kind: str, text: str, samples: List[str]) -> List[str]:
  """One metric family in the text format: HELP, TYPE, its sample lines
  sorted."""
  return [f'# HELP {name} {text}', f'# TYPE {name} {kind}', *sorted(samples)]


def exposition(results: Dict[str, list], now_s: float) -> str:
  """The Prometheus text format of a MetricResults.query() answer: each
  family's HELP and TYPE, then its series sorted. Every family is
  declared, with no series until the job counts one (a sink that never
  retried), as Prometheus' own client libraries do."""
  by_family: Dict[str, List[str]] = {family: [] for family in FAMILIES}
  for family, labels, value in samples(results, now_s):
    line = f'{PREFIX}{series(family, **labels)} {number(value)}'
    by_family[_family_of(family)].append(line)
  lines = []
  for family in sorted(by_family):
    lines += family_lines(f'{PREFIX}{family}', *FAMILIES[family], by_family[family])
  return '\n'.join(lines) + '\n'


class MetricsServer(http.server.ThreadingHTTPServer):
  """Answers GET /metrics with `exposition(read_metrics().query())`, no
  series before `read_metrics` is set (the job is being launched), and
  notes in `final_scrape` a scrape that began after `finished` was set."""

  daemon_threads = True

  def __init__(self, address: Tuple[str, int]):
    super().__init__(address, _Handler)
    self.read_metrics: Optional[Callable[[], MetricResults]] = None
    self.finished = threading.Event()
    self.final_scrape = threading.Event()

  def query(self) -> Dict[str, list]:
    """The job's metrics now; RuntimeError if every read raced the job."""
    if self.read_metrics is None:
      return {'counters': [], 'distributions': [], 'gauges': []}
    for attempt in range(READ_ATTEMPTS):
      try:
        return self.read_metrics().query()
      except RuntimeError:
        if attempt == READ_ATTEMPTS - 1:
          raise
        time.sleep(0.05)
    raise AssertionError('unreachable')


class _Handler(http.server.BaseHTTPRequestHandler):
  server: MetricsServer

  def do_GET(self) -> None:  # noqa: N802  (http.server's name)
    if self.path.split('?', 1)[0] != '/metrics':
      self.send_error(404, 'only /metrics is served')
      return
    # Read after checking: a scrape that began after the job finished has
    # the final values.
    final = self.server.finished.is_set()
    try:
      body = exposition(self.server.query(), time.time()).encode('utf-8')
    except RuntimeError:
      self.send_error(503, 'the job metrics could not be read, retry')
      return
    self.send_response(200)
    self.send_header('Content-Type', CONTENT_TYPE)
    self.send_header('Content-Length', str(len(body)))
    self.end_headers()
    self.wfile.write(body)
    if final:
      self.server.final_scrape.set()

  def log_message(self, format, *args) -> None:  # noqa: A002  (http.server's signature)
    # One line per scrape would drown the job's own log.
    pass


@contextlib.contextmanager
def serving_metrics(address: str, port: int, final_scrape_wait_s: float) -> Iterator[MetricsServer]:
  """Serves http://address:port/metrics while the block runs, from the
  server's `read_metrics` (set it to the running job's `result.metrics`);
  when the block ends without an error, waits up to `final_scrape_wait_s`
  for one scrape of the final values, then stops the server. ValueError
  when the port cannot be bound."""
  try:
    server = MetricsServer((address, port))
  except OSError as e:
    raise ValueError(f'--metrics_port={port}: cannot listen on {address}: {e.strerror}') from e
  thread = threading.Thread(target=server.serve_forever, name='metrics-server', daemon=True)
  thread.start()
  _LOGGER.info('serving the job metrics on http://%s:%d/metrics', address, server.server_port)
  try:
    yield server
    server.finished.set()
    if final_scrape_wait_s > 0:
      _LOGGER.info(
        'job finished: waiting up to %s s for a scrape of the final metrics', final_scrape_wait_s
      )
      server.final_scrape.wait(final_scrape_wait_s)
  finally:
    server.shutdown()
    server.server_close()
    thread.join()
