"""The named abandon-rate and service-level definitions: their formulas, and
for each one the job's rates on generated Genesys Cloud and Amazon Connect
streams against the plain-Python reference (testing/reference/vendors.py),
which computes them on its own."""

import sqlite3

import pytest
from apache_beam.utils.timestamp import Duration

from options import call_metrics_options
from pipelines import contact_center
from testing.datagen.vendor_events import CONNECT, GENESYS, write_vendor_events
from testing.reference.vendors import ABANDON_RATE, SERVICE_LEVEL, rate, reference_vendor_metrics
from transforms import metric_definitions as md
from transforms.abandon_rate import AbandonRate
from transforms.formats import amazon_connect, registry

COUNTS = md.Counts(
  offered=40, abandoned=10, short_abandoned=4, answered_within=18, abandoned_within=6
)


@pytest.mark.parametrize(
  'name, ratio',
  [
    ('abandoned_over_offered', (10, 40)),
    ('exclude_short_abandons', (6, 36)),
  ],
)
def test_abandon_rate_formulas(name, ratio):
  assert md.ABANDON_RATE_DEFINITIONS[name](COUNTS) == ratio


@pytest.mark.parametrize(
  'name, ratio',
  [
    ('answered_within_over_offered', (18, 40)),
    ('abandons_ignored', (18, 34)),
    ('abandons_negative', (18, 40)),
    ('abandons_positive', (24, 40)),
    ('exclude_short_abandons', (18, 36)),
  ],
)
def test_service_level_formulas(name, ratio):
  assert md.SERVICE_LEVEL_DEFINITIONS[name](COUNTS) == ratio


def test_every_definition_is_documented_and_named_in_the_options():
  for kind in (md.ABANDON_RATE_DEFINITIONS, md.SERVICE_LEVEL_DEFINITIONS):
    for fn in kind.values():
      assert fn.__doc__ and '/' in fn.__doc__, fn.__name__
  assert call_metrics_options.ABANDON_RATE_DEFINITIONS == tuple(md.ABANDON_RATE_DEFINITIONS)
  assert call_metrics_options.SERVICE_LEVEL_DEFINITIONS == tuple(md.SERVICE_LEVEL_DEFINITIONS)
  assert call_metrics_options.CALL_EVENT_FORMATS == tuple(registry.FORMATS)
  assert call_metrics_options.CONNECT_QUEUE_KEYS == tuple(amazon_connect.QUEUE_KEYS)
  # The reference knows each definition by the same name.
  assert set(ABANDON_RATE) == set(md.ABANDON_RATE_DEFINITIONS)
  assert set(SERVICE_LEVEL) == set(md.SERVICE_LEVEL_DEFINITIONS)


def test_unknown_names_fail_when_the_graph_is_built():
  windows = (Duration(seconds=300), Duration(seconds=60), 0, 20, Duration(seconds=900))
  with pytest.raises(ValueError, match='unknown definition'):
    AbandonRate(*windows, abandon_rate_definition='abandoned')
  with pytest.raises(ValueError, match='known: answered_within_over_offered'):
    AbandonRate(*windows, service_level_definition='cisco')
  with pytest.raises(ValueError, match='unknown call event format'):
    registry.call_event_format('nice_cxone')


@pytest.fixture(scope='module')
def streams(tmp_path_factory):
  """A generated stream of each vendor format, with short abandons, flow-outs
  and unknown waits in it."""
  work = tmp_path_factory.mktemp('definitions')
  paths = {}
  for fmt, seed in ((GENESYS, 21), (CONNECT, 22)):
    paths[fmt] = work / f'{fmt}.jsonl'
    write_vendor_events(
      str(paths[fmt]),
      fmt,
      700,
      seed,
      events_per_second=2,
      missing_start_share=0.05,
      delayed_start_share=0.05,
    )
  return work, paths


# Each service-level definition once per format, with the abandon-rate
# definitions in turn: every definition is checked on both formats.
CASES = [
  (fmt, md_sl, list(md.ABANDON_RATE_DEFINITIONS)[i % 2])
  for fmt in (GENESYS, CONNECT)
  for i, md_sl in enumerate(md.SERVICE_LEVEL_DEFINITIONS)
]


@pytest.mark.parametrize('fmt, service_level, abandon_rate', CASES)
def test_rates_equal_the_reference_per_definition(streams, fmt, service_level, abandon_rate):
  work, paths = streams
  db = work / f'{fmt}-{service_level}-{abandon_rate}.db'
  lateness = 3600 if fmt == CONNECT else 60
  contact_center.run(
    [
      f'--call_events={paths[fmt]}',
      f'--call_event_format={fmt}',
      f'--sqlite_path={db}',
      '--short_abandon_threshold_seconds=5',
      '--service_level_seconds=20',
      f'--allowed_lateness_seconds={lateness}',
      f'--abandon_rate_definition={abandon_rate}',
      f'--service_level_definition={service_level}',
    ]
  )
  ref = reference_vendor_metrics(
    str(paths[fmt]),
    fmt,
    allowed_lateness_s=lateness,
    short_abandon_threshold_s=5,
    service_level_s=20,
  )
  expected = {
    key: (
      float(rate(row, ABANDON_RATE, abandon_rate)),
      float(rate(row, SERVICE_LEVEL, service_level)),
      abandon_rate,
      service_level,
    )
    for key, row in ref.rows.items()
  }
  with sqlite3.connect(db) as conn:
    rows = {
      (q, c, ws): tuple(rest)
      for q, c, ws, *rest in conn.execute(
        'SELECT queue_id, channel, window_start, abandon_rate, service_level, '
        'abandon_rate_definition, service_level_definition '
        'FROM abandon_metrics'
      )
    }
  assert rows == expected
  # The definitions must differ somewhere on these streams, or the test
  # would not tell them apart (Connect always knows the wait).
  measured = ['short_abandoned_calls', 'abandoned_within_sl']
  if fmt == GENESYS:
    measured.append('wait_unknown_calls')
  totals = {k: sum(r[k] for r in ref.rows.values()) for k in measured}
  assert all(totals.values()), totals
