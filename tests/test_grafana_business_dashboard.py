"""deploy/grafana/contact-center-business.json, the business figures from the
SQLite result store (the frser-sqlite-datasource plugin): importable, and
every SQL query of it (panels and variables) runs against a real store the
main job wrote on the committed Amazon Connect sample and returns rows with
the columns its panel uses. The per-queue rates are those of the
wallboard's combine() (channels summed, rates recomputed under the job's
definitions), for each definition the job offers. No Grafana runs here: the
queries are rendered as the plugin renders them (Grafana's variables, then
the plugin's $__from and $__to in epoch milliseconds)."""

import collections
import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Tuple

import pytest

from pipelines.wallboard.queries import combine
from tests.support.metrics_job import REPO

DASHBOARD = REPO / 'deploy' / 'grafana' / 'contact-center-business.json'
PLUGIN = 'frser-sqlite-datasource'
DATASOURCE = {'type': PLUGIN, 'uid': '${DS_SQLITE}'}
SAMPLE = REPO / 'samples' / 'amazon_connect.jsonl'
# Each definition of abandon rate and service level the job offers, so each
# branch of the dashboard's rate expressions meets real rows; a short-abandon
# threshold makes the definitions that exclude short abandons differ.
DEFINITIONS = [
  ('abandoned_over_offered', 'answered_within_over_offered'),
  ('exclude_short_abandons', 'abandons_ignored'),
  ('abandoned_over_offered', 'abandons_negative'),
  ('exclude_short_abandons', 'abandons_positive'),
  ('abandoned_over_offered', 'exclude_short_abandons'),
]
Rows = List[Dict[str, object]]


class Store(NamedTuple):
  path: Path
  from_ms: int
  to_ms: int


def dashboard() -> dict:
  return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope='module', params=DEFINITIONS, ids=lambda d: '+'.join(d))
def store(request, tmp_path_factory) -> Iterator[Store]:
  """The job's SQLite store of the sample, and a dashboard time range from
  its first window to now (its dead letters were rejected just now)."""
  abandon_rate, service_level = request.param
  path = tmp_path_factory.mktemp('business') / 'out.db'
  job = subprocess.run(
    [
      sys.executable,
      '-m',
      'pipelines.contact_center',
      f'--call_events={SAMPLE}',
      '--call_event_format=amazon_connect',
      # The default lateness: the sample then has late events to show.
      '--allowed_lateness_seconds=60',
      '--short_abandon_threshold_seconds=10',
      f'--abandon_rate_definition={abandon_rate}',
      f'--service_level_definition={service_level}',
      f'--sqlite_path={path}',
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert job.returncode == 0, job.stderr[-3000:]
  first = query(path, 'SELECT MIN(window_start) AS first FROM abandon_metrics')[0]['first']
  yield Store(path, first, int(time.time() * 1000) + 60_000)


def query(path: Path, sql: str) -> Rows:
  connection = sqlite3.connect(f'file:{path}?mode=ro', uri=True)
  connection.row_factory = sqlite3.Row
  try:
    return [dict(row) for row in connection.execute(sql)]
  finally:
    connection.close()


def variable_values(store: Store, variable: dict) -> List[str]:
  """The values of a variable with every option selected (its "All")."""
  rows = query(store.path, variable['query'])
  return [row.get('__value', next(iter(row.values()))) for row in rows]


def render(sql: str, store: Store, variables: Dict[str, List[str]]) -> str:
  """`sql` as the plugin runs it: Grafana's ${name:singlequote} with the
  variable's selected values, then the plugin's $__from/$__to (ms)."""

  def quoted(match: re.Match) -> str:
    return ','.join("'" + value.replace("'", "''") + "'" for value in variables[match.group(1)])

  sql = re.sub(r'\$\{(\w+):singlequote\}', quoted, sql)
  sql = sql.replace('$__from', str(store.from_ms)).replace('$__to', str(store.to_ms))
  assert '$' not in sql, f'a variable the test does not render: {sql}'
  return sql


def panel_results(store: Store) -> Dict[str, Tuple[dict, Rows]]:
  """Panel title -> (its target, the rows its query returns with every
  queue and channel selected)."""
  board = dashboard()
  variables = {v['name']: variable_values(store, v) for v in board['templating']['list']}
  out = {}
  for panel in board['panels']:
    (target,) = panel['targets']
    out[panel['title']] = (
      target,
      query(store.path, render(target['rawQueryText'], store, variables)),
    )
  return out


def test_dashboard_is_importable_with_the_sqlite_plugin():
  board = dashboard()
  assert board['title'] and board['uid']
  (source,) = board['__inputs']
  assert (source['name'], source['type'], source['pluginId']) == ('DS_SQLITE', 'datasource', PLUGIN)
  assert {'type': 'datasource', 'id': PLUGIN} in [
    {k: r[k] for k in ('type', 'id')} for r in board['__requires']
  ]
  panel_types = {r['id'] for r in board['__requires'] if r['type'] == 'panel'}
  ids = [panel['id'] for panel in board['panels']]
  assert len(ids) == len(set(ids))
  for panel in board['panels']:
    assert panel['type'] in panel_types, panel['title']
    assert set(panel['gridPos']) == {'x', 'y', 'w', 'h'}, panel['title']
    assert panel['datasource'] == DATASOURCE, panel['title']
    for target in panel['targets']:
      assert target['datasource'] == DATASOURCE, panel['title']
      # The plugin runs queryText; its editor renders rawQueryText into it.
      assert target['queryText'] == target['rawQueryText']
      assert target['queryType'] in ('table', 'time series')
    if 'repeat' in panel:
      assert panel['repeat'] in {v['name'] for v in board['templating']['list']}, panel['title']
  for variable in board['templating']['list']:
    assert variable['datasource'] == DATASOURCE and variable['query'] == variable['definition']


def test_variables_list_the_store_queues_and_channels(store):
  variables = {v['name']: v for v in dashboard()['templating']['list']}
  queues = query(store.path, variables['queue']['query'])
  stored = query(store.path, 'SELECT DISTINCT queue_id, queue_name FROM abandon_metrics')
  assert {(q['__value'], q['__text']) for q in queues} == {
    (s['queue_id'], s['queue_name']) for s in stored
  }
  channels = variable_values(store, variables['channel'])
  assert sorted(channels) == ['callback', 'chat', 'voice']


def test_every_query_returns_rows_with_the_columns_its_panel_uses(store):
  for title, (target, rows) in panel_results(store).items():
    assert rows, f'{title}: no rows'
    columns = set(rows[0])
    panel = next(p for p in dashboard()['panels'] if p['title'] == title)
    used = set(target['timeColumns']) | {
      override['matcher']['options']
      for override in panel['fieldConfig']['overrides']
      if override['matcher']['id'] == 'byName'
    }
    assert used <= columns, (title, used - columns)
    for column in target['timeColumns']:
      # The plugin reads a number as epoch seconds.
      seconds = [row[column] for row in rows]
      assert all(isinstance(s, int) for s in seconds), (title, column)
      assert store.from_ms // 1000 <= min(seconds) and max(seconds) < store.to_ms // 1000
    if target['queryType'] == 'time series':
      # The plugin turns long rows into one series per text column value:
      # sorted by time, with numbers to plot.
      times = [row[target['timeColumns'][0]] for row in rows]
      assert times == sorted(times), title
      assert any(isinstance(v, (int, float)) for v in rows[0].values() if v not in times), title


def test_queue_rates_sum_the_channels_like_the_wallboard(store):
  """Per queue and window, the rates are the wallboard's combine() of the
  stored channel rows: summed counts, the definition's rate of the sums."""
  ((_, rows),) = [r for t, r in panel_results(store).items() if t.startswith('Abandon rate')]
  stored = query(store.path, 'SELECT * FROM abandon_metrics')
  channels = collections.defaultdict(list)
  for row in stored:
    channels[(row['window_start'] // 1000, row['queue_name'])].append(row)
  assert len(rows) == len(channels) > 0
  assert any(len(c) > 1 for c in channels.values()), 'no queue has two channels in a window'
  for row in rows:
    expected = combine(channels[(row['time'], row['queue'])])
    for rate in ('abandon_rate', 'service_level'):
      # combine() rounds to 4 places as the job does; the panel shows the quotient.
      assert row[rate] == pytest.approx(expected[rate], abs=5e-5), (row, rate)


def test_offered_late_and_dead_letters_count_the_stored_rows(store):
  results = {title: rows for title, (_, rows) in panel_results(store).items()}
  offered = collections.Counter()
  for row in query(store.path, 'SELECT * FROM abandon_metrics'):
    offered[(row['window_start'] // 1000, row['channel'])] += row['total_calls']
  assert {(r['time'], r['channel']): r['offered'] for r in results['Offered per channel']} == (
    offered
  )
  for title, table, column in (
    ('Late events by reason', 'late_events', 'late_events'),
    ('Dead letters by reason', 'dead_letters', 'dead_letters'),
  ):
    by_reason = collections.Counter(
      (r['source'], r['reason']) for r in query(store.path, f'SELECT * FROM {table}')
    )
    assert {(r['source'], r['reason']): r[column] for r in results[title]} == by_reason
  newest = results['Per queue and channel, newest window']
  assert {r['window_start'] for r in newest} == {max(t for t, _ in offered)}
  assert len(results['Newest dead letters']) == min(100, sum(by_reason.values()))
