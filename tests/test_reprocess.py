"""The reprocessing job (pipelines/reprocess.py) on stores the main job wrote:
late calls folded back into their windows give the figures the plain-Python
reference computes with unlimited lateness, once, with their audit rows."""

import json
import shutil
import sqlite3
import sys

import pytest

from options.reprocess_config import parse_time_ms
from options.reprocess_options import dry_run_argv
from pipelines import contact_center, reprocess
from testing.datagen.calls import write_call_events
from testing.reference.calls import ROW_COLUMNS, comparable_rows, reference_call_metrics
from tests.support.beam_metrics import committed_counters
from transforms.abandon_rate import AbandonStatsFn, accumulator_of, to_abandon_metrics
from transforms.parsing import InvalidRecord
from transforms.records import ABANDONED, ANSWERED, FLOW_OUT, AbandonMetrics, OfferedCall
from transforms.stored_rows import UNREADABLE_LATE_EVENT, offered_call_of
from transforms.windowing import RESTATED_PANE, WindowPane

B = 1793606400000  # 2026-11-02T08:00:00Z, the generator's start
S = 1000
WINDOW = 300 * S
# The whole generated day, as the operator would give it.
RANGE = ['--from_time=2026-11-02T00:00:00Z', '--to_time=2026-11-03T00:00:00Z']
# No lateness at all: the late calls go to late_events.
MAIN_FLAGS = ['--allowed_lateness_seconds=0']


def abandon_rows(db) -> dict:
  """(queue_id, window_start) -> the ROW_COLUMNS of the stored row."""
  with sqlite3.connect(db) as conn:
    return {
      (q, ws): list(rest)
      for q, ws, *rest in conn.execute(
        f'SELECT queue_id, window_start, {", ".join(ROW_COLUMNS)} FROM abandon_metrics'
      )
    }


def select(db, sql: str, *params) -> list:
  with sqlite3.connect(db) as conn:
    if not conn.execute(
      'SELECT 1 FROM sqlite_master WHERE name = ?', (sql.split(' FROM ')[1].split()[0],)
    ).fetchone():
      return []
    return conn.execute(sql, params).fetchall()


def snapshot(db) -> dict:
  """Every table a run may write, whole."""
  tables = ('abandon_metrics', 'metric_revisions', 'window_contacts', 'late_events', 'dead_letters')
  return {t: sorted(select(db, f'SELECT * FROM {t}'), key=repr) for t in tables}


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
  """A generated call file with calls later than any lateness, and the
  store the main job wrote from it (never written by a test: copy it)."""
  directory = tmp_path_factory.mktemp('reprocess')
  calls = directory / 'calls.jsonl'
  write_call_events(str(calls), 1500, seed=4, events_per_second=4, queues=3, too_late_share=0.02)
  db = directory / 'main.db'
  contact_center.run([f'--call_events={calls}', f'--sqlite_path={db}', *MAIN_FLAGS])
  assert len(select(db, 'SELECT event_id FROM late_events')) > 5, 'the file must make late calls'
  return calls, db


@pytest.fixture
def store(generated, tmp_path):
  """A copy of the main job's store for one test."""
  _, db = generated
  copy = tmp_path / 'store.db'
  shutil.copy(db, copy)
  return copy


def run_reprocess(db, *extra):
  return reprocess.run([f'--sqlite_path={db}', *RANGE, *extra])


def test_folding_the_late_calls_gives_the_reference_figures(generated, store, capsys):
  calls, _ = generated
  before = abandon_rows(store)
  late = {
    event_id: (q, ws)
    for event_id, q, ws in select(store, 'SELECT event_id, key, window_start FROM late_events')
  }

  result = run_reprocess(store)

  after = abandon_rows(store)
  unlimited = reference_call_metrics(str(calls), allowed_lateness_s=10**9)
  assert after == comparable_rows(unlimited)
  assert after != before
  added = {}
  for event_id, window in late.items():
    added.setdefault(window, set()).add(event_id)
  changed = {key for key in after if after[key] != before.get(key)}
  assert changed == set(added)
  panes = {
    (q, ws): (pane, timing)
    for q, ws, pane, timing in select(
      store, 'SELECT queue_id, window_start, pane_index, pane_timing FROM abandon_metrics'
    )
  }
  with sqlite3.connect(generated[1]) as conn:
    old_panes = dict(
      ((q, ws), pane)
      for q, ws, pane in conn.execute(
        'SELECT queue_id, window_start, pane_index FROM abandon_metrics'
      )
    )
  for key in changed:
    assert panes[key] == (old_panes[key] + 1, RESTATED_PANE)
  revisions = select(
    store,
    'SELECT queue_id, window_start, pane_index, previous_pane_index, old_total_calls, '
    'new_total_calls, old_abandoned_calls, new_abandoned_calls, old_abandon_rate, '
    'new_abandon_rate, contact_ids FROM metric_revisions WHERE pane_timing = ?',
    RESTATED_PANE,
  )
  assert len(revisions) == len(changed)
  for q, ws, pane, previous, old_n, new_n, old_ab, new_ab, old_rate, new_rate, ids in revisions:
    key = (q, ws)
    assert set(json.loads(ids)) == added[key]
    assert json.loads(ids) == sorted(added[key])
    assert (pane, previous) == (old_panes[key] + 1, old_panes[key])
    assert (old_n, old_ab, old_rate) == (before[key][0], before[key][1], before[key][6])
    assert (new_n, new_ab, new_rate) == (after[key][0], after[key][1], after[key][6])
    assert new_n - old_n == len(added[key])
  # The live job's contacts, if it lists them, are of its own panes.
  contacts = select(
    store,
    'SELECT contact_id, queue_id, window_start, pane_index FROM window_contacts '
    'WHERE pane_timing = ?',
    RESTATED_PANE,
  )
  assert sorted(c for c, *_ in contacts) == sorted(late)
  for contact_id, q, ws, pane in contacts:
    assert late[contact_id] == (q, ws) and pane == old_panes[(q, ws)] + 1
  unmarked = select(store, 'SELECT event_id FROM late_events WHERE reprocessed_at = 0')
  assert unmarked == []
  counters = committed_counters(result, 'reprocess')
  assert counters['late_events_folded'] == len(late)
  assert counters['windows_restated'] == len(changed)
  report = capsys.readouterr().out
  assert f'{len(changed)} windows restated, {len(late)} contacts added' in report


def test_a_second_run_changes_nothing(store):
  run_reprocess(store)
  first = snapshot(store)
  run_reprocess(store)
  assert snapshot(store) == first

  # A late event the live job wrote again without the mark: still counted
  # once (its id is in the window's revision), and marked again.
  [(event_id,)] = select(store, 'SELECT event_id FROM late_events ORDER BY event_id LIMIT 1')
  with sqlite3.connect(store) as conn:
    conn.execute('UPDATE late_events SET reprocessed_at = 0 WHERE event_id = ?', (event_id,))
  run_reprocess(store)
  again = snapshot(store)
  for table in ('abandon_metrics', 'metric_revisions', 'window_contacts'):
    assert again[table] == first[table], table
  [(mark,)] = select(store, 'SELECT reprocessed_at FROM late_events WHERE event_id = ?', event_id)
  assert mark > 0


def test_a_dry_run_writes_nothing_and_prints_the_changes(generated, store, capsys):
  calls, _ = generated
  before = snapshot(store)
  old = abandon_rows(store)

  run_reprocess(store, '--dry_run')

  assert snapshot(store) == before
  lines = capsys.readouterr().out.strip().splitlines()
  new = comparable_rows(reference_call_metrics(str(calls), allowed_lateness_s=10**9))
  changed = sorted(key for key in new if new[key] != old.get(key))
  assert len(lines) == len(changed) + 1
  for line, (queue, start) in zip(lines, changed):
    assert line.startswith(f'queue {queue} (voice) 2026-11-02 ')
    assert f'offered {old[(queue, start)][0]} -> {new[(queue, start)][0]}, ' in line
    assert f'abandoned {old[(queue, start)][1]} -> {new[(queue, start)][1]}, ' in line
  assert lines[-1].endswith('dry run: nothing written')


def test_a_bare_dry_run_flag_is_taken():
  assert dry_run_argv(['--dry_run', '--sink=sqlite']) == ['--dry_run=true', '--sink=sqlite']
  assert dry_run_argv(['--x=1', '--dry_run']) == ['--x=1', '--dry_run=true']
  assert dry_run_argv(['--dry_run', 'false']) == ['--dry_run', 'false']


def test_an_unreadable_late_event_becomes_a_dead_letter(store):
  events = [e for (e,) in select(store, 'SELECT event_id FROM late_events ORDER BY event_id')]
  bad_json, bad_call = events[:2]
  with sqlite3.connect(store) as conn:
    conn.execute("UPDATE late_events SET record = '{not json' WHERE event_id = ?", (bad_json,))
    # A row of the previous release (its call in `raw`, no `record`).
    conn.execute(
      "UPDATE late_events SET raw = ?, record = '' WHERE event_id = ?",
      (json.dumps({'call_id': bad_call, 'queue_id': 'Q-101'}), bad_call),
    )

  result = run_reprocess(store)

  letters = select(
    store, "SELECT origin, reason, raw FROM dead_letters WHERE origin LIKE 'late_events:%'"
  )
  assert sorted(letters) == sorted(
    [
      (
        f'late_events:{bad_call}',
        UNREADABLE_LATE_EVENT,
        json.dumps({'call_id': bad_call, 'queue_id': 'Q-101'}),
      ),
      (f'late_events:{bad_json}', UNREADABLE_LATE_EVENT, '{not json'),
    ]
  )
  assert committed_counters(result, 'reprocess')[f'dead_letter_{UNREADABLE_LATE_EVENT}'] == 2
  unmarked = select(store, 'SELECT event_id FROM late_events WHERE reprocessed_at = 0')
  assert sorted(unmarked) == sorted([(bad_call,), (bad_json,)])
  restated = select(store, 'SELECT 1 FROM window_contacts WHERE pane_timing = ?', RESTATED_PANE)
  assert len(restated) == len(events) - 2


def test_late_events_of_the_previous_release_are_folded(generated, store):
  """Rows written before `record` hold the normalised call in `raw`: read
  from there, they give the same figures."""
  calls, _ = generated
  lines = {line.decode('utf-8', errors='replace') for line in calls.read_bytes().split(b'\n')}
  rows = select(store, 'SELECT raw, record FROM late_events')
  # This release's rows: what the producer sent, and the routed call.
  assert rows and all(raw in lines and raw != record for raw, record in rows)
  with sqlite3.connect(store) as conn:
    conn.execute("UPDATE late_events SET raw = record, record = ''")

  run_reprocess(store)

  unlimited = reference_call_metrics(str(calls), allowed_lateness_s=10**9)
  assert abandon_rows(store) == comparable_rows(unlimited)
  assert select(store, 'SELECT event_id FROM late_events WHERE reprocessed_at = 0') == []
  assert select(store, "SELECT 1 FROM dead_letters WHERE origin LIKE 'late_events:%'") == []


def seed_line(call: str, at_ms: int, queue: str, abandoned: bool = False, wait: int = 12) -> str:
  return json.dumps(
    {
      'call_uuid': call,
      'event_type': 'CALL_ENDED',
      'timestamp': at_ms,
      'queue_id': queue,
      'abandoned': abandoned,
      'wait_time_seconds': wait,
      'agent_id': 'a-1',
    }
  )


def test_backfill_from_an_archive_builds_missing_windows_and_refuses_counted_ones(tmp_path, capsys):
  # Q-1 has four calls in its first window, then calls that carry the
  # watermark past it, then one call of that window: late.
  late_call = seed_line('late-1', B + 50 * S, 'Q-1', abandoned=True)
  lines = [seed_line(f'c{i}', B + (10 + 20 * i) * S, 'Q-1') for i in range(4)]
  lines += [seed_line(f'f{i}', B + (400 + 60 * i) * S, 'Q-1') for i in range(10)]
  lines.append(late_call)
  calls = tmp_path / 'calls.jsonl'
  calls.write_text('\n'.join(lines) + '\n')
  db = tmp_path / 'store.db'
  # No contact detail: the window's contacts are not known to the store.
  flags = ['--contact_detail_ttl_seconds=0', f'--sqlite_path={db}']
  contact_center.run([f'--call_events={calls}', '--replay_poll_size=2', *MAIN_FLAGS, *flags])
  assert select(db, 'SELECT event_id FROM late_events') == [('late-1',)]
  assert abandon_rows(db)[('Q-1', B)][0] == 4
  hour = B + 12 * WINDOW
  archive = tmp_path / 'archive.jsonl'
  archive.write_text(
    '\n'.join(
      [
        late_call,  # the late call again: folded once
        seed_line('a1', hour + 10 * S, 'Q-2'),
        seed_line('a2', hour + 20 * S, 'Q-2', abandoned=True, wait=40),
        seed_line('old-1', B + 60 * S, 'Q-1'),  # a counted window: refused
        seed_line('later', B + 2 * 86400 * S, 'Q-2'),  # outside the range
        '{not json',
      ]
    )
    + '\n'
  )

  reprocess.run([*RANGE, f'--archive={archive}', *flags])

  rows = abandon_rows(db)
  # The missing window, whole: total, abandoned, short, answered within 20 s.
  assert rows[('Q-2', hour)][:4] == [2, 1, 0, 1]
  assert rows[('Q-1', B)][:2] == [5, 1]  # the late call only
  assert ('Q-2', B + 2 * 86400 * S - (B + 2 * 86400 * S) % WINDOW) not in rows
  revisions = {
    (q, ws): rest
    for q, ws, *rest in select(
      db,
      'SELECT queue_id, window_start, pane_index, previous_pane_index, old_total_calls, '
      'new_total_calls, contact_ids FROM metric_revisions',
    )
  }
  assert revisions[('Q-2', hour)] == [0, -1, 0, 2, '["a1", "a2"]']
  assert revisions[('Q-1', B)][2:] == [4, 5, '["late-1"]']
  assert select(
    db, 'SELECT pane_index, pane_timing FROM abandon_metrics WHERE queue_id = ?', 'Q-2'
  ) == [(0, RESTATED_PANE)]
  assert select(db, 'SELECT reprocessed_at > 0 FROM late_events') == [(1,)]
  assert select(db, 'SELECT COUNT(*) FROM window_contacts') in ([], [(0,)])
  assert [
    r for (r,) in select(db, 'SELECT reason FROM dead_letters WHERE origin = ?', 'archive.jsonl:5')
  ] == ['malformed_json']
  report = capsys.readouterr().out
  assert 'queue Q-1 (voice) 2026-11-02 08:00–08:05 UTC: offered 4 -> 5' in report
  assert 'refused 1 archive contacts: the window counts 4 contacts but the store lists 0' in report
  assert 'queue Q-2 (voice) 2026-11-02 09:00–09:05 UTC: offered 0 -> 2' in report


@pytest.mark.parametrize(
  'args, message',
  [
    (
      ['--to_time=2026-11-02T00:00:00Z'],
      'error: --from_time is required: an ISO 8601 time such as 2026-11-02T08:00:00Z',
    ),
    (
      ['--from_time=2026-11-02T10:00:00Z', '--to_time=2026-11-02T09:00:00Z'],
      'error: --to_time must be after --from_time',
    ),
    (
      ['--from_time=yesterday', '--to_time=2026-11-02T09:00:00Z'],
      "error: --from_time='yesterday' is not an ISO 8601 time such as 2026-11-02T08:00:00Z",
    ),
    (
      [*RANGE, '--archive=/nonexistent/calls.jsonl'],
      'error: --archive=/nonexistent/calls.jsonl: no such file',
    ),
    (
      [*RANGE, '--sink=kafka'],
      'error: --sink kafka: reprocessing reads the late events and windows back from '
      'sqlite or cassandra; name one of them',
    ),
  ],
)
def test_bad_options_end_the_launch_with_one_line(monkeypatch, tmp_path, args, message):
  monkeypatch.setattr(sys, 'argv', ['reprocess', f'--sqlite_path={tmp_path / "s.db"}', *args])
  with pytest.raises(SystemExit) as exit_:
    reprocess.main()
  assert exit_.value.code == message
  assert not (tmp_path / 's.db').exists()


def test_times_without_an_offset_are_utc():
  assert parse_time_ms('2026-11-02T08:00:00', '--from_time') == B
  assert parse_time_ms('2026-11-02T09:00:00+01:00', '--from_time') == B
  assert parse_time_ms('2026-11-02T08:00:00Z', '--from_time') == B


def test_a_stored_row_gives_back_its_accumulator():
  fn = AbandonStatsFn(short_abandon_threshold_seconds=5, service_level_seconds=20)
  acc = fn.create_accumulator()
  for i, (outcome, wait) in enumerate(
    [(ANSWERED, 3), (ANSWERED, None), (ABANDONED, 2), (ABANDONED, 30.5), (FLOW_OUT, 7)]
  ):
    acc = fn.add_input(acc, OfferedCall(f'c{i}', 'Q', B, outcome, wait))
  row = to_abandon_metrics(
    WindowPane('voice|Q', B, B + WINDOW, fn.extract_output(acc), 0, 'ON_TIME')
  )
  assert accumulator_of(row) == acc
  # A row of a store written before the vendor columns counted none.
  assert accumulator_of(row._replace(flow_out_calls=None))[4] == 0
  assert isinstance(row, AbandonMetrics)


def test_a_late_event_record_is_read_back_as_its_call():
  call = OfferedCall('c-1', 'Q-1', B, ABANDONED, None, 'chat')
  assert offered_call_of(json.dumps(call._asdict(), sort_keys=True)) == call
  # The previous release's JSON had no `raw`.
  without_raw = {k: v for k, v in call._asdict().items() if k != 'raw'}
  assert offered_call_of(json.dumps(without_raw), 'raw') == call
  for raw in ('[]', '{"call_id": "c"}', json.dumps({**call._asdict(), 'outcome': 'GONE'})):
    with pytest.raises(InvalidRecord) as error:
      offered_call_of(raw)
    assert error.value.reason == UNREADABLE_LATE_EVENT
