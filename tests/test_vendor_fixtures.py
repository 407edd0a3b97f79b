"""Vendor records counted as each vendor counts them: every case of
tests/fixtures/vendors/*_cases.json (records modelled on the vendors'
documentation, each with its expected outcome and source) through the
parsers, through the formats' transforms on a TestStream, through the main
job end to end, and through the plain-Python reference."""

import collections
import json
import sqlite3
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration

from pipelines import contact_center
from testing.reference.vendors import CONNECT, GENESYS, reference_vendor_metrics
from tests.conftest import drain
from transforms import parsing
from transforms.formats.amazon_connect import ConnectOfferedCalls, PassedOver, parse_contact_record
from transforms.formats.genesys_cloud import GenesysOfferedCalls, parse_genesys_event
from transforms.records import ACD_END, SourceRecord

FIXTURES = Path(__file__).parent / 'fixtures' / 'vendors'
CASES = {
  fmt: json.loads((FIXTURES / f'{fmt}_cases.json').read_text()) for fmt in (CONNECT, GENESYS)
}
# The outcome names of the fixtures, as OfferedCall outcomes.
OUTCOMES = {
  'answered': 'ANSWERED',
  'abandoned': 'ABANDONED',
  'flow_out': 'FLOW_OUT',
  'unknown': 'UNKNOWN',
}
CONNECT_QUEUE = 'Billing'


def _lines(fmt):
  """(case, raw line) in arrival order; a case marked `last` goes last."""
  cases = sorted(CASES[fmt]['cases'], key=lambda c: c.get('last', False))
  return [(case, json.dumps(r).encode()) for case in cases for r in case['records']]


def _case_ids(fmt):
  return [c['case'] for c in CASES[fmt]['cases']]


@pytest.mark.parametrize('case', CASES[CONNECT]['cases'], ids=_case_ids(CONNECT))
def test_connect_record_parses_to_its_documented_outcome(case):
  raw = json.dumps(case['records'][0]).encode()
  expected = case['expected']
  if expected == 'dead_letter':
    with pytest.raises(parsing.InvalidRecord) as error:
      parse_contact_record(raw)
    assert error.value.reason == case['dead_reason']
    assert 'amazon_connect' in error.value.detail
    return
  parsed = parse_contact_record(raw, update_after_ms=600_000)
  if expected == 'not_counted':
    assert parsed == PassedOver(case['counter'])
  elif expected == 'late_record_update':
    assert parsed.record_updated_at is not None
  else:
    assert parsed.record_updated_at is None
    if expected != 'duplicate':
      assert (parsed.outcome, parsed.channel) == (OUTCOMES[expected], case['channel'])


@pytest.mark.parametrize('case', CASES[GENESYS]['cases'], ids=_case_ids(GENESYS))
def test_genesys_records_parse_to_their_documented_outcome(case):
  raws = [json.dumps(r).encode() for r in case['records']]
  expected = case['expected']
  if expected == 'dead_letter':
    with pytest.raises(parsing.InvalidRecord) as error:
      parse_genesys_event(raws[0])
    assert error.value.reason == case['dead_reason']
    return
  events = [parse_genesys_event(raw) for raw in raws]
  if expected == 'not_counted':
    assert events == [None]
    return
  start, end = events
  assert (start.kind, end.kind) == ('acd.start', ACD_END)
  assert start.call_id == end.call_id
  assert (end.outcome, end.channel) == (OUTCOMES[expected], case['channel'])
  assert end.timestamp - start.timestamp == case['wait'] * 1000


def test_a_trigger_topic_names_the_kind_of_bare_bodies():
  [case] = [c for c in CASES[GENESYS]['cases'] if 'Process Automation' in c['case']]
  start_body = json.dumps(case['records'][0]).encode()
  assert parse_genesys_event(start_body).kind == 'acd.start'
  # Read as a trigger on acd.end, the same body lacks acdOutcome.
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_genesys_event(start_body, trigger_kind=ACD_END)
  assert (error.value.reason, error.value.detail) == (
    'missing_field',
    '"acdOutcome" is missing or null',
  )


def _run_transform(transform, fmt, options):
  records = [SourceRecord(fmt, f'f:{i}', raw) for i, (_, raw) in enumerate(_lines(fmt))]
  p = beam.Pipeline(options=options)
  out = p | drain(TestStream().add_elements(records)) | transform
  offered = out['offered'] | 'Offered' >> beam.Map(lambda c: (c.call_id, c.outcome, c.channel))
  reasons = out['dead_letters'] | 'Reasons' >> beam.Map(lambda d: d.reason)
  return p, offered, reasons, out


def _expected_offered(fmt, id_of):
  return [
    (id_of(case), OUTCOMES[case['expected']], case['channel'])
    for case in CASES[fmt]['cases']
    if case['expected'] in OUTCOMES
  ]


def test_connect_cases_on_a_test_stream(options):
  p, offered, reasons, out = _run_transform(
    ConnectOfferedCalls(Duration(seconds=600), 'name'), CONNECT, options
  )
  assert_that(offered, equal_to(_expected_offered(CONNECT, lambda c: c['records'][0]['ContactId'])))
  assert_that(reasons, equal_to(['wrong_stream']), label='dead')
  updates = out['record_updates'] | beam.Map(lambda c: c.call_id)
  assert_that(updates, equal_to(['11111111-0000-4000-8000-000000000002']), label='updates')
  p.run().wait_until_finish()


def test_genesys_cases_on_a_test_stream(options):
  transform = GenesysOfferedCalls(
    Duration(seconds=600),
    Duration(seconds=3600),
    Duration(seconds=10),
    callback_max_queue_wait=Duration(seconds=86400),
  )
  p, offered, reasons, _ = _run_transform(transform, GENESYS, options)

  def call_id(case):
    body = case['records'][-1].get('detail', {}).get('eventBody') or case['records'][-1]
    body = body.get('eventBody', body)
    return f'{body["conversationId"]}:{body["sessionId"]}'

  assert_that(offered, equal_to(_expected_offered(GENESYS, call_id)))
  assert_that(reasons, equal_to(['wrong_stream', 'unknown_enum_value']), label='dead')
  p.run().wait_until_finish()


def _write_fixture(tmp_path, fmt):
  path = tmp_path / f'{fmt}.jsonl'
  path.write_bytes(b''.join(raw + b'\n' for _, raw in _lines(fmt)))
  return path


def _job(path, fmt, db, *extra):
  contact_center.run(
    [f'--call_events={path}', f'--call_event_format={fmt}', f'--sqlite_path={db}', *extra]
  )
  with sqlite3.connect(db) as conn:
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute('SELECT * FROM abandon_metrics')]
    late = sorted((r[0], r[1]) for r in conn.execute('SELECT event_id, reason FROM late_events'))
    dead = sorted(r[0] for r in conn.execute('SELECT reason FROM dead_letters'))
  return rows, late, dead


def _counts_by_channel(fmt, default_queue):
  """(queue, channel) -> Counter of outcomes the cases document."""
  counts = collections.defaultdict(collections.Counter)
  for case in CASES[fmt]['cases']:
    if case['expected'] in OUTCOMES:
      counts[(case.get('queue', default_queue), case['channel'])][case['expected']] += 1
  return dict(counts)


def _totals(rows):
  """(queue, channel) -> outcome counts summed over windows."""
  totals = collections.defaultdict(collections.Counter)
  for r in rows:
    total = totals[(r['queue_id'], r['channel'])]
    total['answered'] += r['answered_calls']
    total['abandoned'] += r['abandoned_calls']
    total['flow_out'] += r['flow_out_calls']
    total['unknown'] += (
      r['total_calls'] - r['answered_calls'] - r['abandoned_calls'] - r['flow_out_calls']
    )
  return {k: +v for k, v in totals.items()}


def test_connect_fixture_end_to_end(tmp_path):
  path = _write_fixture(tmp_path, CONNECT)
  rows, late, dead = _job(path, CONNECT, tmp_path / 'c.db', '--allowed_lateness_seconds=3600')
  assert _totals(rows) == _counts_by_channel(CONNECT, CONNECT_QUEUE)
  assert late == [('11111111-0000-4000-8000-000000000002', 'record_update')]
  assert dead == ['wrong_stream']
  # Amazon's abandonment rate for the voice contacts queued in Billing:
  # one caller hung up in queue of seven queued; the callback request,
  # the transfer and the flow disconnects are not abandons.
  [voice] = [r for r in rows if (r['queue_id'], r['channel']) == (CONNECT_QUEUE, 'voice')]
  assert (voice['total_calls'], voice['abandoned_calls'], voice['abandon_rate']) == (7, 1, 0.1429)
  ref = reference_vendor_metrics(str(path), CONNECT, allowed_lateness_s=3600)
  assert {(q, c) for q, c, _ in ref.rows} == {(r['queue_id'], r['channel']) for r in rows}
  assert sorted(ref.record_updates) == [late[0][0]] and not ref.late
  assert (ref.not_inbound, ref.passed_over, ref.duplicates) == (2, 1, 1)


def test_genesys_fixture_end_to_end_with_queue_names(tmp_path):
  path = _write_fixture(tmp_path, GENESYS)
  queue_names = CASES[GENESYS]['queue_names']
  # As the Genesys Cloud queues API lists them (GET /api/v2/routing/queues).
  export = {'entities': [{'id': k, 'name': v} for k, v in queue_names.items()]}
  names = tmp_path / 'queues.json'
  names.write_text(json.dumps(export))
  rows, late, dead = _job(path, GENESYS, tmp_path / 'g.db', f'--queue_names={names}')
  [billing] = [k for k, v in queue_names.items() if v == 'Billing']
  assert _totals(rows) == _counts_by_channel(GENESYS, billing)
  assert {r['queue_id']: r['queue_name'] for r in rows} == queue_names
  assert late == []
  assert dead == ['unknown_enum_value', 'wrong_stream']
  [callback] = [r for r in rows if r['channel'] == 'callback']
  # Two hours in queue: paired under --genesys_callback_max_queue_wait_seconds,
  # not dropped at --genesys_max_queue_wait_seconds.
  assert (callback['wait_unknown_calls'], callback['answered_wait_seconds']) == (0, 7200)
  ref = reference_vendor_metrics(str(path), GENESYS)
  assert {(q, c) for q, c, _ in ref.rows} == {(r['queue_id'], r['channel']) for r in rows}
  assert ref.passed_over == 1 and ref.dead_letter_count == 2


def test_channels_filter_counts_only_the_chosen_channels(tmp_path):
  path = _write_fixture(tmp_path, CONNECT)
  rows, _, _ = _job(
    path, CONNECT, tmp_path / 'f.db', '--allowed_lateness_seconds=3600', '--channels=voice,chat'
  )
  assert {r['channel'] for r in rows} == {'voice', 'chat'}
  ref = reference_vendor_metrics(
    str(path), CONNECT, allowed_lateness_s=3600, channels={'voice', 'chat'}
  )
  assert ref.other_channels == 3  # the callback, the task, the e-mail
  assert sum(r['total_calls'] for r in rows) == ref.offered == 8
