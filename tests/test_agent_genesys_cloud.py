"""`--agent_event_format=genesys_cloud`: Genesys Cloud user notifications to
agent states (transforms/formats/agent_genesys_cloud.py).

tests/fixtures/vendors/genesys_cloud_agent_cases.json holds records modelled
on Genesys' documented bodies, each with its expected parse and source;
the transform runs on TestStreams: a shift in order, out of order with
re-deliveries, the fixture's dead letters and counters."""

import json
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration

from options.call_inputs import load_queue_members
from options.config import AgentConfig, EventTimeConfig, FieldRules
from testing.datagen import genesys_agent_events
from tests.conftest import BASE_S, drain
from tests.support.beam_metrics import committed_counters
from transforms import parsing
from transforms.formats import agent_genesys_cloud as genesys
from transforms.formats.agent_registry import agent_event_format
from transforms.records import AgentEvent, SourceRecord
from transforms.state_coders import StateFormatError

FIXTURES = Path(__file__).parent / 'fixtures'
CASES = json.loads((FIXTURES / 'vendors' / 'genesys_cloud_agent_cases.json').read_text())
MEMBERS_FILE = FIXTURES / 'queue_members.json'
U1, U2, U3, U9 = (f'd4c3b2a1-0000-4000-8000-00000000000{i}' for i in (1, 2, 3, 9))
Q1 = '5f4e3d2c-aaaa-4bbb-8ccc-000000000001'
B = BASE_S * 1000
SAMPLE = Path(__file__).parent.parent / 'samples' / 'genesys_cloud_agent_events.jsonl'


def _config() -> AgentConfig:
  return AgentConfig(
    event_time=EventTimeConfig(
      max_out_of_orderness=Duration(seconds=10), key_idle_ttl=Duration(seconds=3600)
    ),
    field_rules=FieldRules(),
    window_size=Duration(seconds=300),
    allowed_lateness=Duration(seconds=60),
    dedupe_ttl=Duration(seconds=600),
    agent_event_format='genesys_cloud',
    queue_members=load_queue_members(str(MEMBERS_FILE)),
    agent_silence_timeout=Duration(seconds=900),
    queue_names={},
  )


def _iso(ms: int) -> str:
  import datetime

  moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
  return moment.strftime('%Y-%m-%dT%H:%M:%S') + f'.{ms % 1000:03d}Z'


def routing(user: str, status: str, s: float) -> dict:
  ms = B + int(s * 1000)
  return {
    'topicName': f'v2.users.{user}.routingStatus',
    'version': '2',
    'eventBody': {'id': user, 'routingStatus': {'status': status, 'startTime': _iso(ms)}},
  }


def presence(user: str, system: str, s: float) -> dict:
  ms = B + int(s * 1000)
  return {
    'topicName': f'v2.users.{user}.presence',
    'version': '2',
    'eventBody': {
      'source': 'PURECLOUD',
      'presenceDefinition': {'id': f'def-{system}', 'systemPresence': system},
      'primary': True,
      'message': '',
      'modifiedDate': _iso(ms),
    },
  }


def session(kind: str, user: str, conversation: str, s: float, media: str = 'VOICE') -> dict:
  body = {
    'eventTime': B + int(s * 1000),
    'conversationId': conversation,
    'sessionId': f'session-{conversation}',
    'mediaType': media,
    'userId': user,
    'queueId': Q1,
  }
  return {
    'topicName': f'v2.detail.events.conversation.{conversation}.{kind}',
    'version': '2',
    'eventBody': body,
  }


def _raw(record: dict) -> bytes:
  return json.dumps(record).encode()


def _records(notifications, start=0):
  return [SourceRecord('genesys', f'f:{start + i}', _raw(n)) for i, n in enumerate(notifications)]


def event(state, s, contact='', reason='', channels=('voice',), since=None, user=U1, queues=(Q1,)):
  ms = B + int(s * 1000)
  return AgentEvent(
    user,
    ms,
    ms if since is None else B + int(since * 1000),
    state,
    reason,
    list(queues),
    list(channels),
    contact,
  )


# A shift of U1: logs in, goes on queue, a voice call with its wrap-up, a
# chat whose wrap-up is skipped, a break, a missed alert, logs out.
SHIFT = [
  presence(U1, 'Available', 0),
  presence(U1, 'On Queue', 10),
  routing(U1, 'IDLE', 10.5),
  session('user.start', U1, 'c1', 60),
  routing(U1, 'INTERACTING', 61),
  session('user.end', U1, 'c1', 120),
  session('acw', U1, 'c1', 150),
  routing(U1, 'IDLE', 150.2),
  session('user.start', U1, 'c2', 200, 'CHAT'),
  routing(U1, 'INTERACTING', 201),
  session('user.end', U1, 'c2', 260, 'CHAT'),
  routing(U1, 'IDLE', 270),
  presence(U1, 'Break', 300),
  routing(U1, 'OFF_QUEUE', 300.1),
  presence(U1, 'On Queue', 600),
  routing(U1, 'IDLE', 600.1),
  routing(U1, 'NOT_RESPONDING', 700),
  routing(U1, 'IDLE', 710),
  presence(U1, 'Offline', 900),
  routing(U1, 'OFF_QUEUE', 900.1),
]
SHIFT_EVENTS = [
  event('not_ready', 0, reason='AVAILABLE'),
  event('available', 10),
  event('on_contact', 60, contact='c1'),
  event('after_contact_work', 120, contact='c1'),
  event('available', 150),
  event('on_contact', 200, contact='c2', channels=['chat']),
  event('after_contact_work', 260, contact='c2', channels=['chat']),
  event('available', 270, channels=['chat', 'voice']),
  event('not_ready', 300, reason='BREAK', channels=['chat', 'voice']),
  event('available', 600, channels=['chat', 'voice']),
  event('not_ready', 700, reason='NOT_RESPONDING', channels=['chat', 'voice']),
  event('available', 710, channels=['chat', 'voice']),
  event('logged_out', 900, channels=['chat', 'voice']),
]


# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


def _parsed(record: dict) -> dict:
  try:
    parsed = genesys.parse_genesys_agent_notification(_raw(record))
  except parsing.InvalidRecord as error:
    return {'dead_letter': error.reason}
  if isinstance(parsed, genesys.PassedOver):
    return {'passed_over': parsed.counter}
  return parsed._asdict()


@pytest.mark.parametrize('case', CASES['cases'], ids=[c['case'] for c in CASES['cases']])
def test_fixture_records_parse_as_documented(case):
  assert case['source']
  assert [_parsed(r) for r in case['records']] == case['expected']


def test_event_time_function_of_the_replay():
  fmt = agent_event_format('genesys_cloud')
  event_time = fmt.event_time_ms(_config())
  start = session('user.start', U1, 'c1', 60)
  assert event_time(_raw(start), None) == B + 60_000
  assert event_time(_raw(start), B + 60_000) is None
  assert event_time(_raw(routing(U1, 'IDLE', 5)), B) == B + 5000
  # Passed over and invalid records do not move the watermark.
  other = {'topicName': 'v2.users.x.conversations', 'eventBody': {}}
  assert event_time(_raw(other), None) is None
  assert event_time(b'{"topicName": 1}', None) is None


def test_routing_status_topic_and_body_user_must_agree():
  record = routing(U1, 'IDLE', 0)
  record['eventBody']['id'] = U2
  assert _parsed(record) == {'dead_letter': 'topic_mismatch'}


# --------------------------------------------------------------------------
# The state mapping, one user's state at a time
# --------------------------------------------------------------------------


def _derive(*notifications):
  user = genesys._UserState()
  for n in notifications:
    genesys.apply(user, genesys.parse_genesys_agent_notification(_raw(n)))
  derived = genesys.derive(user)
  return derived and (derived.state, derived.reason, derived.contact_id)


@pytest.mark.parametrize(
  'notifications, expected',
  [
    ([routing(U1, 'IDLE', 1)], ('available', '', '')),
    ([routing(U1, 'INTERACTING', 1)], ('on_contact', '', '')),
    ([routing(U1, 'COMMUNICATING', 1)], ('on_contact', '', '')),
    ([routing(U1, 'NOT_RESPONDING', 1)], ('not_ready', 'NOT_RESPONDING', '')),
    ([routing(U1, 'OFF_QUEUE', 1)], ('not_ready', 'OFF_QUEUE', '')),
    ([presence(U1, 'Meal', 0), routing(U1, 'OFF_QUEUE', 1)], ('not_ready', 'MEAL', '')),
    ([presence(U1, 'Offline', 0), routing(U1, 'OFF_QUEUE', 1)], ('logged_out', '', '')),
    ([routing(U1, 'IDLE', 0), presence(U1, 'Offline', 1)], ('logged_out', '', '')),
    ([routing(U1, 'IDLE', 0), presence(U1, 'Training', 1)], ('not_ready', 'TRAINING', '')),
    ([routing(U1, 'OFF_QUEUE', 0), presence(U1, 'OnQueue', 1)], ('available', '', '')),
    ([presence(U1, 'Busy', 0)], ('not_ready', 'BUSY', '')),
    # A session open after the latest IDLE: on it, whatever the routing says.
    (
      [routing(U1, 'NOT_RESPONDING', 5), session('user.start', U1, 'c1', 3)],
      ('on_contact', '', 'c1'),
    ),
    ([routing(U1, 'IDLE', 5), session('user.start', U1, 'c1', 3)], ('available', '', '')),
    (
      [
        routing(U1, 'INTERACTING', 1),
        session('user.start', U1, 'c1', 2),
        session('user.end', U1, 'c1', 9),
      ],
      ('after_contact_work', '', 'c1'),
    ),
    # After-call work ends with the acw event, or with the next IDLE.
    (
      [
        routing(U1, 'INTERACTING', 1),
        session('user.start', U1, 'c1', 2),
        session('user.end', U1, 'c1', 9),
        session('acw', U1, 'c1', 20),
      ],
      ('available', '', ''),
    ),
    (
      [
        session('user.start', U1, 'c1', 2),
        session('user.end', U1, 'c1', 9),
        routing(U1, 'IDLE', 12),
      ],
      ('available', '', ''),
    ),
    # ... or after Genesys' longest ACW timeout, when neither came.
    (
      [
        routing(U1, 'INTERACTING', 1),
        session('user.start', U1, 'c1', 2),
        session('user.end', U1, 'c1', 9),
        session('user.start', U1, 'c2', 9 + 3601),
        session('user.end', U1, 'c2', 9 + 3602),
        session('acw', U1, 'c2', 9 + 3700),
      ],
      ('available', '', ''),
    ),
    ([], None),
  ],
)
def test_state_mapping(notifications, expected):
  assert _derive(*notifications) == expected


def test_stale_and_duplicate_notifications_change_nothing():
  user = genesys._UserState()
  parse = genesys.parse_genesys_agent_notification
  assert genesys.apply(user, parse(_raw(routing(U1, 'IDLE', 10)))) == genesys._Outcome.APPLIED
  assert genesys.apply(user, parse(_raw(routing(U1, 'IDLE', 10)))) == genesys._Outcome.DUPLICATE
  assert genesys.apply(user, parse(_raw(routing(U1, 'OFF_QUEUE', 5)))) == genesys._Outcome.STALE
  start = parse(_raw(session('user.start', U1, 'c1', 20)))
  assert genesys.apply(user, start) == genesys._Outcome.APPLIED
  assert genesys.apply(user, start) == genesys._Outcome.DUPLICATE
  assert user.routing == ['IDLE', B + 10_000]


def test_state_coder_round_trip():
  user = genesys._UserState()
  for n in SHIFT[:11]:
    genesys.apply(user, genesys.parse_genesys_agent_notification(_raw(n)))
  user.last = ['on_contact', '', 'c2', ['chat'], B + 200_000, B + 200_000]
  user.logged_out_at = B
  encoded = genesys.USER_STATE_CODER.encode(user)
  assert encoded[0] == 1
  decoded = genesys.USER_STATE_CODER.decode(encoded)
  assert genesys._state_to_plain(decoded) == genesys._state_to_plain(user)
  assert genesys.derive(decoded) == genesys.derive(user)
  with pytest.raises(StateFormatError):
    genesys.USER_STATE_CODER.decode(b'\x02' + encoded[1:])


# --------------------------------------------------------------------------
# The transform
# --------------------------------------------------------------------------


def _run(stream, options):
  p = beam.Pipeline(options=options)
  out = p | drain(stream) | genesys.GenesysAgentEvents(_config())
  # The states; heartbeats apart (test_heartbeats_while_logged_in).
  out['heartbeats'] = out['agent_events'] | 'Heartbeats' >> beam.Filter(lambda e: e.heartbeat)
  out['agent_events'] = out['agent_events'] | 'States' >> beam.Filter(lambda e: not e.heartbeat)
  return p, out


def test_a_shift_in_order(options):
  p, out = _run(TestStream().add_elements(_records(SHIFT)), options)
  assert_that(out['agent_events'], equal_to(SHIFT_EVENTS))
  assert_that(out['dead_letters'], equal_to([]), label='dead')
  p.run().wait_until_finish()


def test_a_shift_notification_by_notification_reversed_in_pairs_with_redeliveries(options):
  """Each notification its own bundle, every pair swapped, every third
  delivered twice: the same states."""
  order = []
  for i in range(0, len(SHIFT), 2):
    order.extend(reversed(SHIFT[i : i + 2]))
  stream = TestStream()
  for i, n in enumerate(order):
    stream = stream.add_elements(_records([n], i))
    if i % 3 == 0:
      stream = stream.add_elements(_records([n], 100 + i))
  p, out = _run(stream, options)
  # Besides the shift's states, what a pair in reverse says until its
  # other half comes: INTERACTING before its user.start (a contact not
  # known yet), OFF_QUEUE before the Offline presence.
  expected_states = {(e.state, e.reason, e.contact_id) for e in SHIFT_EVENTS} | {
    ('on_contact', '', ''),
    ('not_ready', 'OFF_QUEUE', ''),
  }

  def check(events):
    # The last state is the shift's, and every state on the way one of
    # those above.
    # (Its times follow the OFF_QUEUE's, delivered before the logout: a
    # user's events never go back in time.)
    last = max(events, key=lambda e: e.timestamp)
    assert last.state == 'logged_out'
    assert 0 < last.since - SHIFT_EVENTS[-1].since <= 101
    assert sorted(events, key=lambda e: e.timestamp) == sorted(events, key=lambda e: e.since)
    unknown = {(e.state, e.reason, e.contact_id) for e in events} - expected_states
    assert not unknown, unknown

  assert_that(out['agent_events'], check)
  p.run().wait_until_finish()


def test_late_and_repeated_notifications_are_counted_and_change_nothing(options):
  stream = (
    TestStream()
    .add_elements(_records([presence(U1, 'On Queue', 10), routing(U1, 'IDLE', 10.5)]))
    .add_elements(
      _records([session('user.start', U1, 'c1', 60), routing(U1, 'INTERACTING', 61)], 10)
    )
    # Older than what the state reflects: a presence before the last one,
    # and re-deliveries.
    .add_elements(
      _records(
        [
          presence(U1, 'Available', 0),
          session('user.start', U1, 'c1', 60),
          routing(U1, 'IDLE', 10.5),
        ],
        20,
      )
    )
    .add_elements(_records([session('user.end', U1, 'c1', 120)], 30))
    # The acw and the IDLE in reverse order.
    .add_elements(_records([routing(U1, 'IDLE', 150.2)], 40))
    .add_elements(_records([session('acw', U1, 'c1', 150)], 50))
  )
  p, out = _run(stream, options)
  assert_that(
    out['agent_events'],
    equal_to(
      [
        event('available', 10),
        event('on_contact', 60, contact='c1'),
        event('after_contact_work', 120, contact='c1'),
        event('available', 150.2),
      ]
    ),
  )
  result = p.run()
  result.wait_until_finish()
  counters = committed_counters(result, genesys.METRICS_NAMESPACE)
  # The re-delivered IDLE is older than the INTERACTING since: stale.
  assert counters['stale_notifications'] == 2
  assert counters['duplicates'] == 1
  assert counters['agent_events'] == 4


def test_after_a_logout_older_notifications_are_stale_and_a_login_starts_over(options):
  stream = (
    TestStream()
    .add_elements(_records([presence(U2, 'On Queue', 10), routing(U2, 'IDLE', 10)]))
    .add_elements(_records([presence(U2, 'Offline', 100)], 10))
    .add_elements(_records([session('user.start', U2, 'c9', 50)], 20))
    .add_elements(_records([presence(U2, 'On Queue', 200), routing(U2, 'IDLE', 200)], 30))
  )
  p, out = _run(stream, options)
  queues = sorted(load_queue_members(str(MEMBERS_FILE))[U2])
  assert_that(
    out['agent_events'],
    equal_to(
      [
        event('available', 10, user=U2, queues=queues),
        event('logged_out', 100, user=U2, queues=queues),
        event('available', 200, user=U2, queues=queues),
      ]
    ),
  )
  result = p.run()
  result.wait_until_finish()
  counters = committed_counters(result, genesys.METRICS_NAMESPACE)
  assert counters['stale_notifications'] == 1
  assert counters['logouts'] == 1


def test_heartbeats_while_logged_in(options):
  """Genesys says nothing while a state holds: a logged-in user is
  refreshed every third of the silence timeout of event time after its
  latest event, on that grid; not once logged out."""
  stream = (
    TestStream()
    .add_elements(_records([presence(U1, 'On Queue', 10), routing(U1, 'IDLE', 10)]))
    .add_elements(_records([presence(U1, 'Meal', 100)], 10))
    .advance_watermark_to(BASE_S + 2000)
    .add_elements(_records([presence(U1, 'Offline', 2000)], 20))
  )
  p, out = _run(stream, options)
  assert_that(
    out['heartbeats'] | beam.Map(lambda e: ((e.timestamp - B) // 1000, e.since == e.timestamp)),
    equal_to([(600, True), (900, True), (1200, True), (1500, True), (1800, True)]),
  )
  assert_that(
    out['agent_events'] | beam.Map(lambda e: (e.state, e.reason)),
    equal_to([('available', ''), ('not_ready', 'MEAL'), ('logged_out', '')]),
    label='states',
  )
  p.run().wait_until_finish()


def test_a_logged_out_user_is_forgotten_after_the_duplicate_horizon(options):
  """Before the horizon a notification older than the logout is stale
  (above); once the delayed watermark passes the logout + dedupe_ttl,
  nothing is kept: the same notification is news."""
  horizon_s = 100 + 600 + 10
  stream = (
    TestStream()
    .add_elements(_records([presence(U3, 'On Queue', 10), routing(U3, 'IDLE', 10)]))
    .add_elements(_records([presence(U3, 'Offline', 100)], 10))
    .advance_watermark_to(BASE_S + horizon_s + 1)
    .add_elements(_records([routing(U3, 'IDLE', 50)], 20))
  )
  p, out = _run(stream, options)
  queues = ['5f4e3d2c-aaaa-4bbb-8ccc-000000000002']
  assert_that(
    out['agent_events'],
    equal_to(
      [
        event('available', 10, user=U3, queues=queues),
        event('logged_out', 100, user=U3, queues=queues),
        event('available', 50, user=U3, queues=queues),
      ]
    ),
  )
  result = p.run()
  result.wait_until_finish()
  assert 'stale_notifications' not in committed_counters(result, genesys.METRICS_NAMESPACE)


def test_fixture_records_on_a_test_stream(options):
  records = [r for case in CASES['cases'] for r in case['records']]
  p, out = _run(TestStream().add_elements(_records(records)), options)
  reasons = out['dead_letters'] | beam.Map(lambda d: d.reason)
  expected_reasons = [
    e['dead_letter'] for case in CASES['cases'] for e in case['expected'] if 'dead_letter' in e
  ]
  assert_that(reasons, equal_to(expected_reasons))
  assert_that(
    out['agent_events'],
    lambda events: _same({e.agent_id for e in events}, {U1, U2, U3}),
    label='users',
  )
  result = p.run()
  result.wait_until_finish()
  counters = committed_counters(result, genesys.METRICS_NAMESPACE)
  assert counters['users_without_queues'] == 1
  assert counters['other_topics'] == 3
  assert counters['secondary_presences'] == 1
  assert counters['dead_letters'] == len(expected_reasons)
  assert counters['dead_letter_topic_mismatch'] == 2


# --------------------------------------------------------------------------
# The sample and its generator
# --------------------------------------------------------------------------


def _same(got, expected):
  assert got == expected, (got, expected)


def _generate(tmp_path, name, *args):
  path, members = tmp_path / name, tmp_path / f'{name}.members.json'
  subprocess.run(
    [
      sys.executable,
      '-m',
      'testing.datagen.genesys_agent_events',
      '--out',
      str(path),
      '--members',
      str(members),
      *args,
    ],
    check=True,
    cwd=Path(__file__).parent.parent,
  )
  return path.read_bytes(), members.read_bytes()


def test_generator_same_seed_same_bytes_and_makes_the_sample(tmp_path):
  first = _generate(tmp_path, 'a.jsonl')
  assert first == _generate(tmp_path, 'b.jsonl')
  assert first == (SAMPLE.read_bytes(), MEMBERS_FILE.read_bytes())
  assert _generate(tmp_path, 'c.jsonl', '--seed', '8')[0] != first[0]


def test_sample_parses_with_only_its_malformed_lines_dead(options):
  lines = SAMPLE.read_bytes().splitlines()
  dead = []
  for line in lines:
    try:
      genesys.parse_genesys_agent_notification(line)
    except parsing.InvalidRecord as error:
      dead.append(error.reason)
  assert sorted(dead) == sorted(genesys_agent_events.MALFORMED_REASONS)
  records = [SourceRecord('sample', f's:{i}', line) for i, line in enumerate(lines)]
  p, out = _run(TestStream().add_elements(records), options)

  def check(events):
    _same(
      {e.state for e in events},
      {'available', 'on_contact', 'after_contact_work', 'not_ready', 'logged_out'},
    )
    # Each user's events in one order by `timestamp` and by `since` (the
    # agent-state step resolves by `since`), strictly.
    by_user = {}
    for e in sorted(events, key=lambda e: e.timestamp):
      by_user.setdefault(e.agent_id, []).append(e)
    for user_events in by_user.values():
      assert all(a.since < b.since for a, b in zip(user_events, user_events[1:]))
      assert all(a.timestamp < b.timestamp for a, b in zip(user_events, user_events[1:]))
      assert user_events[-1].state == 'logged_out'

  assert_that(out['agent_events'], check)
  result = p.run()
  result.wait_until_finish()
  counters = committed_counters(result, genesys.METRICS_NAMESPACE)
  assert counters['dead_letters'] == len(genesys_agent_events.MALFORMED_REASONS)
  assert counters['other_topics'] == 5
  assert counters['users_without_queues'] >= 3  # the supervisor's presences
