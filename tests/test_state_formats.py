"""State compatibility: each stateful step's state, as this release encodes
it, is committed under tests/fixtures/state_v<N>/; every later release must
decode those files (a savepoint written now is restored by the next
release), and a cell in a format it cannot read fails with the documented
message instead of being misread.

A new format version adds a directory of fixtures; the old ones stay.
"""

import pickle
from pathlib import Path

import pytest

from transforms import (
  acd_pairing,
  agent_states,
  agent_status,
  alert_evaluation,
  alert_figures,
  callback_patterns,
  daily_metrics,
  dedupe,
  join_customers,
  queue_status,
  rolling_metrics,
  service_level_forecast,
  span_counts,
  windowing,
)
from transforms.formats import agent_genesys_cloud
from transforms.records import AgentEvent, CustomerProfile, Interaction, PatternMatch
from transforms.span_counts import WindowCounts
from transforms.state_coders import UPGRADE_DOC, StateFormatError

FIXTURES = Path(__file__).parent / 'fixtures'


# Records as Genesys delivers them (bare bodies), held by the pairing: a
# non-ASCII name shows the cell stays ASCII JSON.
ACD_START_RAW = (
  '{"eventTime":1793606400000,"conversationId":"conv-1","sessionId":"s-1",'
  '"queueId":"queue-7","mediaType":"CALLBACK","ani":"tel:+33 Zoë"}'
)
ACD_END_RAW = (
  '{"eventTime":1793606425000,"conversationId":"conv-2","sessionId":"s-1",'
  '"queueId":"queue-7","mediaType":"CHAT","acdOutcome":"ABANDON"}'
)


def _shard_head():
  return windowing._ShardHead(  # pylint: disable=protected-access
    b'\x01\x02\x03\x04\x05\x06\x07\x08', 1793606700000, 1793607060000, 17, 1796629010000, 3, 0
  )


def _shard_keys():
  # A key with a clock and a window whose ON_TIME pane is out, a key still
  # waiting for its own clock, a remembered key and a forgotten one.
  return {
    'Q-1': [1793607000000, [[1793606700000, [12, 3, 1, 7, 321.5], 2, True, True]], None],
    'Q-2': [1793607000000, [[1793606700000, [1, 0, 0, 1, 4.0], 0, False, False]], 1793607000000],
    'Q-9': 1793606100000,
    'Q-8': None,
  }


def _queue_head():
  return queue_status._Head(  # pylint: disable=protected-access
    token=b'\x01\x02\x03\x04\x05\x06\x07\x08',
    clock=1793606405000,
    clock_seen_at=1796629000000,
    last_status=[1, 1793606400000, 1793606405000],
    last_listed=[1, [['c-1', 1793606400000]]],
    refresh_at=1796629005000,
    revision=1796629000000123,
    stored=3,
    kept=0,
  )


def _customers():
  customer = callback_patterns._CustomerState()  # pylint: disable=protected-access
  failed = Interaction('i-1', 'C-1', 'voice', 'FAILED', 1793606401000)
  customer.buffer = [(1793606402000, 1, Interaction('i-2', 'C-1', 'chat', 'FAILED', 1793606402000))]
  customer.arrivals = 2
  customer.run = [failed]
  customer.processed_through = 1793606401000
  return {'C-1': customer}


def _plain_of(coder, value):
  return coder._to_plain(value)  # pylint: disable=protected-access


def _agent():
  agent = agent_states._Agent(  # pylint: disable=protected-access
    AgentEvent(
      'A-1', 1793606460000, 1793606460000, 'on_contact', '', ['Q-1', 'Q-2'], ['voice'], 'c-1'
    )
  )
  agent.reported_through = 1793606700000
  agent.last_seen = 1793606720000
  return agent


def _queue_agents():
  queue = agent_status._QueueAgents()  # pylint: disable=protected-access
  queue.agents = {'A-1': ['on_contact', '', 1793606460000], 'A-2': ['not_ready', 'Break', 1]}
  queue.last_row = [0, 1, 0, 1, {'Break': 1}]
  queue.revision = 1796629000000123
  return queue


def _genesys_user():
  user = agent_genesys_cloud._UserState()  # pylint: disable=protected-access
  session = agent_genesys_cloud._Session  # pylint: disable=protected-access
  user.routing = ['INTERACTING', 1793606460000]
  user.presence = ['On Queue', 'e08eaf1b-ee47-4fa9-a231-1200e284798f', 1793606400000]
  user.sessions = {'conv-1': session(1793606460000, None, None, 'voice')}
  user.channels = ['voice']
  user.last = ['on_contact', '', 'conv-1', ['voice'], 1793606460000, 1793606460000]
  user.clock = 1793606460000
  user.ready_at = 1793606400000
  return user


def _window_counts():
  return WindowCounts(
    1793606700000,
    1793607000000,
    2,
    (12, 3, 1, 8, 1, 7, 1, 1, 0, 321.5, 200.0),
    'Sales',
    'abandoned_over_offered',
    'answered_within_over_offered',
  )


def _rolling_keys():
  # A key with a clock, a key without one yet, and a key gone.
  with_clock = rolling_metrics._RollingState()  # pylint: disable=protected-access
  with_clock.clock = 1793607010000
  with_clock.windows = {1793606700000: _window_counts()}
  without = rolling_metrics._RollingState()  # pylint: disable=protected-access
  without.windows = {1793606700000: _window_counts()}
  to_plain = rolling_metrics._key_to_plain  # pylint: disable=protected-access
  return {
    '["Q-1","voice"]': to_plain(with_clock),
    '["Q-2","chat"]': to_plain(without),
    '["Q-3","voice"]': None,
  }


def _days_keys():
  days = {}
  for date, clear_at in (('2026-11-02', 1793664000000), ('2026-11-03', 1793750400000)):
    day = days[date] = daily_metrics._DayState()  # pylint: disable=protected-access
    day.clear_at = clear_at
    day.windows = {1793606700000: _window_counts()}
  return {'["Q-1","voice"]': daily_metrics._days_to_plain(days)}  # pylint: disable=protected-access


def _forecast():
  state = service_level_forecast._KeyState()  # pylint: disable=protected-access
  state.window_ms, state.since, state.clock = 300000, 1793606400000, 1793607010000
  state.calls_through = 1793607000000
  state.calls = {1793606700000: [12, 8, 2]}
  state.work = {1793606700000: [9, 1620.5, 1]}
  state.agents, state.aht = [7, 1796629000000123], 180.05
  state.interval_end, state.revision, state.last_figure = 1793608200000, 3, [0.7812, 31]
  return state


def _alert():
  state = alert_evaluation._AlertState()  # pylint: disable=protected-access
  state.state, state.since, state.value = 'firing', 1793607000000, 0.4
  state.clock, state.clock_revision, state.notified_at = 1793607000000, 2, 1793607000000
  state.last_id, state.last_kind, state.rows = 'f2961755c49fb9ec', 'firing', 2
  state.told = {1793607000000: [2, 0.4, alert_evaluation._BREACH]}  # pylint: disable=protected-access
  return state


# step file -> (coder, a state value as this release holds it)
CASES = {
  'rolling_metrics_head.bin': (
    rolling_metrics.ROLLING_LOG.head_coder,
    span_counts._SpanHead(b'\x01\x02\x03\x04\x05\x06\x07\x08', 1793608260000, 2, 0),  # pylint: disable=protected-access
  ),
  'rolling_metrics_keys.bin': (rolling_metrics.ROLLING_LOG.keys_coder, _rolling_keys()),
  'daily_metrics_head.bin': (
    daily_metrics.DAY_LOG.head_coder,
    span_counts._SpanHead(b'\x01\x02\x03\x04\x05\x06\x07\x08', 1793696460000, 1, 0),  # pylint: disable=protected-access
  ),
  'daily_metrics_keys.bin': (daily_metrics.DAY_LOG.keys_coder, _days_keys()),
  'alert_state.bin': (alert_evaluation.ALERT_STATE_CODER, _alert()),
  'dead_letter_counts.bin': (
    alert_figures.DEAD_LETTER_COUNTS_CODER,
    {1793607000000: 3, 1793607300000: 1},
  ),
  'service_level_forecast.bin': (service_level_forecast.FORECAST_STATE_CODER, _forecast()),
  'windowed_head.bin': (windowing.HEAD_CODER, _shard_head()),
  'windowed_keys.bin': (windowing.KEYS_CODER, _shard_keys()),
  'queue_status_head.bin': (queue_status.HEAD_CODER, _queue_head()),
  'queue_status_contacts.bin': (
    queue_status.CONTACTS_CODER,
    {
      'c-1': [1, 1793606401000, 1793606400000],
      'c-2': [0, 1793606405000, 1793606405000],
      'c-3': None,
    },
  ),
  'agent_state.bin': (agent_states.AGENT_STATE_CODER, _agent()),
  'agent_status.bin': (agent_status.QUEUE_AGENTS_CODER, _queue_agents()),
  'genesys_user_state.bin': (agent_genesys_cloud.USER_STATE_CODER, _genesys_user()),
  'dedupe_clock.bin': (
    dedupe.CLOCK_CODER,
    dedupe._ShardClock(  # pylint: disable=protected-access
      b'\x01\x02\x03\x04\x05\x06\x07\x08', 1793606401000, 1200, 1500, 700
    ),
  ),
  'dedupe_ids.bin': (
    dedupe.IDS_CODER,
    {'call-1': [1793607001000, 3], 'call-2': [1793607002000, 4]},
  ),
  'callback_patterns.bin': (callback_patterns.CUSTOMERS_CODER, _customers()),
  'callback_patterns_token.bin': (
    callback_patterns.TOKEN_CODER,
    b'\x01\x02\x03\x04\x05\x06\x07\x08',
  ),
  'join_profile.bin': (
    join_customers.PROFILES_CODER,
    ('p', CustomerProfile('C-1', 'GOLD', 'EMEA', 1793606400000)),
  ),
  'join_activity.bin': (
    join_customers.PROFILES_CODER,
    ('r', join_customers._Activity('C-1', 1793606405000)),
  ),  # pylint: disable=protected-access
  'join_waiting.bin': (
    join_customers.WAITING_CODER,
    {
      'C-2': [
        PatternMatch(
          'C-2',
          'voice',
          1793606420000,
          3,
          'REPEATED_FAILURE_CALLBACK',
          1793606400000,
          'i-1,i-2,i-3,i-4',
        )._asdict()
      ]
    },
  ),
  'join_compact_at.bin': (join_customers.COMPACT_AT_CODER, 1793615040000),
}
# Steps whose format moved on: file -> (coder, the value its committed v1
# state decodes to now, the fixture directory of the format written now, a
# value of that format).
MOVED_ON = {
  # v2: the channel of each start and end (Genesys mediaType); v1 cells,
  # written before channels, hold voice calls. v3: each half's record as
  # delivered; older cells have none ('').
  'acd_pairing_starts.bin': (
    acd_pairing.STARTS_CODER,
    {'conv-1:s-1': (1793606400000, 'voice', '')},
    'state_v3',
    {'conv-1:s-1': (1793606400000, 'callback', ACD_START_RAW)},
  ),
  'acd_pairing_ends.bin': (
    acd_pairing.ENDS_CODER,
    {'conv-2:s-1': (1793606425000, 'queue-7', 'ABANDONED', 'voice', '')},
    'state_v3',
    {'conv-2:s-1': (1793606425000, 'queue-7', 'ABANDONED', 'chat', ACD_END_RAW)},
  ),
}
# The committed v2 cells of the steps whose format moved on since: file ->
# (coder, the value they decode to now).
V2_DECODED = {
  'acd_pairing_starts.bin': (
    acd_pairing.STARTS_CODER,
    {'conv-1:s-1': (1793606400000, 'callback', '')},
  ),
  'acd_pairing_ends.bin': (
    acd_pairing.ENDS_CODER,
    {'conv-2:s-1': (1793606425000, 'queue-7', 'ABANDONED', 'chat', '')},
  ),
}

# Steps whose state key moved on (v1 cells held one natural key's state, the
# key being the state key; v2 cells hold a shard's keys): a v1 cell cannot
# be read into a shard, so it is refused with the documented message
# (docs/upgrades.md: drain, then start without the savepoint); its
# committed fixture stays. file -> (coder, the fixture directory of the
# format written now, a value of that format).


def _written_now():
  yield from ((name, 'state_v1', coder, value) for name, (coder, value) in CASES.items())
  yield from ((name, d, coder, value) for name, (coder, _, d, value) in MOVED_ON.items())


@pytest.mark.parametrize('name, directory, coder, value', sorted(_written_now()))
def test_this_release_writes_the_committed_state(name, directory, coder, value):
  assert coder.encode(value) == (FIXTURES / directory / name).read_bytes()


def _decoded_v1():
  yield from ((name, coder, value) for name, (coder, value) in CASES.items())
  yield from ((name, coder, value) for name, (coder, value, _, _) in MOVED_ON.items())


@pytest.mark.parametrize('name, coder, value', sorted(_decoded_v1()))
def test_committed_v1_state_is_decoded(name, coder, value):
  decoded = coder.decode((FIXTURES / 'state_v1' / name).read_bytes())
  assert _plain_of(coder, decoded) == _plain_of(coder, value)
  assert type(decoded) is type(value)


@pytest.mark.parametrize('name', sorted(V2_DECODED))
def test_committed_v2_state_is_decoded(name):
  """Cells written before the pairing kept the records: their halves have
  none (''), the rest as written."""
  coder, value = V2_DECODED[name]
  assert coder.decode((FIXTURES / 'state_v2' / name).read_bytes()) == value


def test_state_of_an_unknown_format_is_refused_with_the_documented_message():
  coder = windowing.HEAD_CODER
  with pytest.raises(StateFormatError) as error:
    coder.decode(bytes((9,)) + b'[]')
  message = str(error.value)
  assert 'windowed head: state in format v9' in message
  assert 'this release reads v1' in message and UPGRADE_DOC in message


def test_pickled_state_of_an_older_release_is_refused_not_misread():
  with pytest.raises(StateFormatError, match='pickled state'):
    dedupe.CLOCK_CODER.decode(pickle.dumps({'token': b'x'}))


def test_a_cell_that_does_not_fit_its_format_is_refused():
  with pytest.raises(StateFormatError, match='does not decode'):
    join_customers.PROFILES_CODER.decode(b'\x01["p",{"customer_id":"C"}]')
