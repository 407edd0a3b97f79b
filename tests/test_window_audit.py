"""The audit trail of the call windows, end to end on the main job: the
contacts behind every window (`window_contacts`) add up to its row, and
every change to a window after its end is one `metric_revisions` row
naming the contacts that caused it. Also the SQLite store's expiry of
contact detail."""

import json
import sqlite3
import time
from collections import defaultdict

import pytest
from apache_beam.utils.timestamp import Duration

from pipelines import contact_center
from testing.datagen.calls import write_call_events
from testing.reference.calls import reference_call_metrics
from transforms.records import ABANDONED, VOICE, WindowContact
from transforms.schema import WINDOW_CONTACTS
from transforms.sqlite_sink import SqliteSink, SqliteWriter
from transforms.windowing import LATE_PANE, ON_TIME_PANE


def _rows(db, sql):
  conn = sqlite3.connect(db)
  conn.row_factory = sqlite3.Row
  try:
    return [dict(r) for r in conn.execute(sql)]
  finally:
    conn.close()


@pytest.fixture(scope='module')
def audited_job(tmp_path_factory):
  """The main job on a generated stream with late panes and late events;
  the store's windows, contacts, revisions and late event ids."""
  tmp = tmp_path_factory.mktemp('audit')
  events, db = tmp / 'calls.jsonl', tmp / 'out.db'
  counts = write_call_events(str(events), 4000, seed=11, events_per_second=4)
  contact_center.run([f'--call_events={events}', f'--sqlite_path={db}'])
  return {
    'counts': counts,
    'reference': reference_call_metrics(str(events)),
    'windows': _rows(db, 'SELECT * FROM abandon_metrics'),
    'contacts': _rows(db, 'SELECT * FROM window_contacts'),
    'revisions': _rows(db, 'SELECT * FROM metric_revisions ORDER BY pane_index'),
    'late': [r['event_id'] for r in _rows(db, 'SELECT event_id FROM late_events')],
  }


def _window(row):
  return (row['queue_id'], row['channel'], row['window_start'])


def test_the_contacts_of_each_window_add_up_to_its_row(audited_job):
  by_window = defaultdict(list)
  for contact in audited_job['contacts']:
    by_window[_window(contact)].append(contact)
  windows = audited_job['windows']
  assert windows and set(by_window) == {_window(w) for w in windows}
  for window in windows:
    contacts = by_window[_window(window)]
    assert len(contacts) == window['total_calls'], window
    assert sum(c['outcome'] == ABANDONED for c in contacts) == window['abandoned_calls']
    assert sum(c['wait_seconds'] for c in contacts) == pytest.approx(window['total_wait_seconds'])
    assert all(
      window['window_start'] <= c['event_timestamp'] < window['window_end'] for c in contacts
    )


def test_every_call_is_behind_one_window_or_late(audited_job):
  ids = [c['contact_id'] for c in audited_job['contacts']]
  late = audited_job['late']
  assert len(set(ids)) == len(ids)
  assert not set(ids) & set(late)
  assert late and sorted(late) == sorted(audited_job['reference'].late)
  assert len(ids) + len(late) == audited_job['counts']['valid']


def test_every_late_pane_is_one_revision_naming_the_contacts_that_changed_it(audited_job):
  revisions = defaultdict(list)
  for revision in audited_job['revisions']:
    revisions[_window(revision)].append(revision)
  late_contacts = defaultdict(set)
  for contact in audited_job['contacts']:
    if contact['pane_timing'] == LATE_PANE:
      late_contacts[(*_window(contact), contact['pane_index'])].add(contact['contact_id'])
  restated = [w for w in audited_job['windows'] if w['pane_index'] > 0]
  assert restated, 'the generated stream must restate some windows'
  windows = audited_job['windows']
  assert set(revisions) == {_window(w) for w in windows if w['pane_timing'] == LATE_PANE}
  for window in audited_job['windows']:
    chain = revisions.get(_window(window), [])
    if not chain:
      continue
    assert chain[-1]['pane_index'] == window['pane_index']
    assert chain[-1]['new_total_calls'] == window['total_calls']
    assert chain[-1]['new_abandon_rate'] == window['abandon_rate']
    for before, after in zip(chain, chain[1:]):
      assert after['previous_pane_index'] == before['pane_index']
      assert after['old_total_calls'] == before['new_total_calls']
    for revision in chain:
      added = json.loads(revision['contact_ids'])
      assert revision['pane_timing'] == LATE_PANE
      assert revision['new_total_calls'] - revision['old_total_calls'] == len(added)
      assert set(added) == late_contacts[(*_window(window), revision['pane_index'])]


def test_contacts_before_the_window_end_count_from_its_first_pane(audited_job):
  on_time = [c for c in audited_job['contacts'] if c['pane_timing'] == ON_TIME_PANE]
  assert on_time and all(c['pane_index'] == 0 for c in on_time)


def test_no_contact_detail_when_its_ttl_is_zero(tmp_path):
  events, db = tmp_path / 'calls.jsonl', tmp_path / 'out.db'
  write_call_events(str(events), 400, seed=3, events_per_second=4)
  contact_center.run(
    [f'--call_events={events}', f'--sqlite_path={db}', '--contact_detail_ttl_seconds=0']
  )
  assert _rows(db, 'SELECT COUNT(*) AS n FROM abandon_metrics')[0]['n'] > 0
  tables = {r['name'] for r in _rows(db, "SELECT name FROM sqlite_master WHERE type = 'table'")}
  assert 'window_contacts' not in tables and 'metric_revisions' in tables


def test_a_negative_ttl_is_refused(tmp_path):
  events = tmp_path / 'calls.jsonl'
  events.write_text('')
  with pytest.raises(ValueError, match='contact_detail_ttl_seconds must be 0 or more'):
    contact_center.run([f'--call_events={events}', '--contact_detail_ttl_seconds=-1'])


def _contact(contact_id):
  return WindowContact('Q1', VOICE, 0, contact_id, ABANDONED, 4.0, 100, 0, ON_TIME_PANE, 'Q1')


def test_sqlite_prunes_contact_detail_past_its_ttl(tmp_path):
  db = str(tmp_path / 'store.db')
  SqliteSink(db).prepare([WINDOW_CONTACTS])
  expiring = SqliteWriter(db, Duration(0))
  kept = SqliteWriter(db, Duration(seconds=3600))
  for writer in (expiring, kept):
    writer.open()
  try:
    expiring.upsert(WINDOW_CONTACTS, [_contact('expired')])
    time.sleep(0.01)
    # A writer prunes the rows already expired before it writes its own.
    kept.upsert(WINDOW_CONTACTS, [_contact('kept')])
  finally:
    expiring.close()
    kept.close()
  rows = _rows(db, 'SELECT contact_id, expires_at FROM window_contacts')
  assert [r['contact_id'] for r in rows] == ['kept']
  assert rows[0]['expires_at'] > time.time() * 1000 + 3500 * 1000
