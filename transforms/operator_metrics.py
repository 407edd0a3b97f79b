"""The job's operator metrics, counted from the rows the flows hand to the
sinks, in Beam metrics that pipelines/metrics_server.py exports to
Prometheus under the same names.

Per table row (one step beside the sinks, `CountTableRows`):
- late_events rows: counter `late_events_total{source, reason}`;
- dead_letters rows: counter `dead_letters_total{source, reason}`;
- abandon_metrics and interaction_volumes rows: gauge
  `newest_window_end_milliseconds{table}`, the end of the newest window a
  step instance handed to the sinks (the event-time lag is now minus the
  largest of them). A gauge, not a distribution: Flink's reporter exports
  Beam gauges as numbers but Beam distributions as 0, and the lag must be
  alertable there too (deploy/prometheus/alerts.yml records it).

Per shard of a stateful step (its own code calls `set_live_state_entries`
after each write of the shard's state): gauge
`live_state_entries{step, shard}`, the entries the shard holds (keys of the
windowed steps, ids of the de-duplication, waiting sessions of the Genesys
pairing); summed by step it is the step's live state, and a replay that
ended leaves 0 (nothing held forever). Shards are a fixed set
(transforms/sharding.py), so the label stays bounded.

Each Beam metric is in namespace NAMESPACE and named by its Prometheus
series (`name{label="value",...}`), so the exporter needs no table of them.
Label values are the job's own bounded sets: source names (the job's
streams, `sink:<name>` for rows a sink rejected), reason codes of the code,
table names; never a value a producer chose.
"""

import re
from typing import Dict, Tuple

import apache_beam as beam
from apache_beam.metrics.metric import Metrics

from transforms.schema import ABANDON_METRICS, DEAD_LETTERS, INTERACTION_VOLUMES, LATE_EVENTS

NAMESPACE = 'contact_center'
LATE_EVENTS_TOTAL = 'late_events_total'
DEAD_LETTERS_TOTAL = 'dead_letters_total'
NEWEST_WINDOW_END_MS = 'newest_window_end_milliseconds'
LIVE_STATE_ENTRIES = 'live_state_entries'
# Tables of windowed results: their newest window end is the output's event time.
WINDOWED_TABLES = (ABANDON_METRICS.name, INTERACTION_VOLUMES.name)

_SERIES = re.compile(r'^([a-z_][a-z0-9_]*)(?:\{(.*)\})?$')
_LABEL = re.compile(r'([a-z_][a-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_ESCAPES = {'\\': '\\\\', '"': '\\"', '\n': '\\n'}


def series(metric: str, **labels: str) -> str:
  """'metric{a="x",b="y"}' with labels sorted and values escaped as in the
  Prometheus text format; 'metric' without labels."""
  if not labels:
    return metric
  body = ','.join(
    f'{k}="{"".join(_ESCAPES.get(c, c) for c in str(v))}"' for k, v in sorted(labels.items())
  )
  return f'{metric}{{{body}}}'


def set_live_state_entries(step: str, shard: int, entries: int) -> None:
  """Sets the live_state_entries gauge of one shard of `step` (lower case
  and `_` only: Flink's reporter keeps those as they are)."""
  Metrics.gauge(NAMESPACE, series(LIVE_STATE_ENTRIES, step=step, shard=str(shard))).set(entries)


def parse_series(name: str) -> Tuple[str, Dict[str, str]]:
  """(metric, labels) of a `series` string; ValueError for anything else."""
  match = _SERIES.match(name)
  if not match:
    raise ValueError(f'not a series name: {name!r}')
  labels = {
    k: re.sub(r'\\(.)', lambda m: '\n' if m.group(1) == 'n' else m.group(1), v)
    for k, v in _LABEL.findall(match.group(2) or '')
  }
  return match.group(1), labels


class _CountRowsFn(beam.DoFn):
  """Counts each row of one table in its operator metric."""

  def __init__(self, table: str):
    self._table = table
    self._newest_ms = None

  def process(self, row) -> None:
    if self._table in (LATE_EVENTS.name, DEAD_LETTERS.name):
      metric = LATE_EVENTS_TOTAL if self._table == LATE_EVENTS.name else DEAD_LETTERS_TOTAL
      Metrics.counter(NAMESPACE, series(metric, source=row.source, reason=row.reason)).inc()
    elif self._newest_ms is None or row.window_end > self._newest_ms:
      # A gauge keeps the value set last: set only the largest end seen.
      self._newest_ms = row.window_end
      Metrics.gauge(NAMESPACE, series(NEWEST_WINDOW_END_MS, table=self._table)).set(row.window_end)


class CountTableRows(beam.PTransform):
  """Input: table name -> PCollection of its rows (the job's merged
  tables); counts the rows of the tables above, outputs nothing."""

  def expand(self, tables):
    counted = (LATE_EVENTS.name, DEAD_LETTERS.name, *WINDOWED_TABLES)
    for name, rows in tables.items():
      if name in counted:
        _ = rows | f'Count[{name}]' >> beam.ParDo(_CountRowsFn(name))
    return beam.pvalue.PDone(next(iter(tables.values())).pipeline)
