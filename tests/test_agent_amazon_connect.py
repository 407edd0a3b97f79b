"""The Amazon Connect agent event stream (`--agent_event_format=amazon_connect`):
every case of tests/fixtures/vendors/amazon_connect_agent_cases.json
(records modelled on Amazon's documented examples, each with its expected
AgentEvent or dead-letter reason and its source) through the parser and
through the transform on a TestStream, the queue keys, the replay's event
time, the Beam counters, totality on mangled records, and the committed
sample against its generator."""

import collections
import json
import random
import subprocess
import sys
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to

from options.config import AgentConfig
from testing.datagen import agent_events
from tests.conftest import drain
from transforms import parsing
from transforms.formats import agent_registry
from transforms.formats.agent_amazon_connect import (
  METRICS_NAMESPACE,
  ConnectAgentEvents,
  connect_agent_event_time_ms,
  parse_connect_agent_event,
)
from transforms.formats.fields import iso_time_ms
from transforms.records import AGENT_STATES, CHANNELS, AgentEvent, SourceRecord

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = json.loads(
  (ROOT / 'tests' / 'fixtures' / 'vendors' / 'amazon_connect_agent_cases.json').read_text()
)
CASES = FIXTURE['cases']
VALID = [c for c in CASES if c['expected'] != 'dead_letter']
DEAD = [c for c in CASES if c['expected'] == 'dead_letter']
SAMPLE = ROOT / 'samples' / 'amazon_connect_agent_events.jsonl'


def _raw(case) -> bytes:
  return json.dumps(case['record']).encode()


def _expected(case) -> AgentEvent:
  fields = dict(case['expected'])
  fields['timestamp'] = iso_time_ms(fields['timestamp'], 'timestamp')
  fields['since'] = iso_time_ms(fields['since'], 'since')
  return AgentEvent(**fields)


def _config() -> AgentConfig:
  return AgentConfig.from_options(PipelineOptions(['--agent_event_format=amazon_connect']))


def test_the_fixture_covers_every_agent_state_and_cites_each_source():
  assert {c['expected']['state'] for c in VALID} == set(AGENT_STATES)
  for case in CASES:
    assert 'Amazon Connect' in case['source'], case['case']
  # Every documented contact state and event type appears in some case.
  contact_states = {
    contact['State']
    for case in VALID
    for contact in case['record']['CurrentAgentSnapshot']['Contacts']
  }
  assert contact_states == {
    'INCOMING',
    'PENDING',
    'CONNECTING',
    'CONNECTED',
    'CONNECTED_ONHOLD',
    'PAUSED',
    'MISSED',
    'REJECTED',
    'ERROR',
    'ENDED',
  }
  assert {c['record']['EventType'] for c in VALID} == {
    'LOGIN',
    'LOGOUT',
    'STATE_CHANGE',
    'HEART_BEAT',
  }


@pytest.mark.parametrize('case', CASES, ids=[c['case'] for c in CASES])
def test_each_record_parses_to_its_documented_outcome(case):
  if case['expected'] == 'dead_letter':
    with pytest.raises(parsing.InvalidRecord) as error:
      parse_connect_agent_event(_raw(case))
    assert error.value.reason == case['dead_reason']
    return
  event = parse_connect_agent_event(_raw(case))
  assert event == _expected(case)
  assert event.since <= event.timestamp
  assert set(event.channels) <= set(CHANNELS)


def test_a_record_of_another_connect_stream_names_it_and_this_format():
  [contact_record] = [c for c in DEAD if 'contact record' in c['case']]
  with pytest.raises(parsing.InvalidRecord) as error:
    parse_connect_agent_event(_raw(contact_record))
  assert '--call_event_format=amazon_connect' in error.value.detail
  assert '--agent_event_format=amazon_connect' in error.value.detail


def test_queue_key_arn_gives_the_queue_arns_and_leaves_the_agent_queue_out():
  case = VALID[0]
  event = parse_connect_agent_event(_raw(case), queue_key='arn')
  profile = case['record']['CurrentAgentSnapshot']['Configuration']['RoutingProfile']
  arns = [q['ARN'] for q in profile['InboundQueues']]
  assert event.queues == sorted(a for a in arns if '/queue/agent/' not in a)
  assert [a.rsplit('/', 1)[1] for a in event.queues] == parse_connect_agent_event(_raw(case)).queues
  with pytest.raises(ValueError, match='queue key'):
    ConnectAgentEvents(_config(), queue_key='name_or_arn')


def test_a_logout_needs_no_snapshot():
  [case] = [c for c in VALID if c['record']['EventType'] == 'LOGOUT']
  record = dict(case['record'])
  del record['CurrentAgentSnapshot']
  event = parse_connect_agent_event(json.dumps(record).encode())
  assert (event.state, event.since, event.queues, event.channels) == (
    'logged_out',
    event.timestamp,
    [],
    [],
  )


def test_a_status_start_after_the_event_is_read_as_the_event_time():
  case = next(c for c in VALID if c['case'] == 'agent sets Available')
  record = json.loads(_raw(case))
  record['CurrentAgentSnapshot']['AgentStatus']['StartTimestamp'] = '2026-11-02T09:00:00.000Z'
  event = parse_connect_agent_event(json.dumps(record).encode())
  assert event.since == event.timestamp


def test_replay_event_time_is_the_event_timestamp_of_valid_records_only():
  case = VALID[0]
  at = iso_time_ms(case['record']['EventTimestamp'], 'EventTimestamp')
  assert connect_agent_event_time_ms(_raw(case)) == at
  assert connect_agent_event_time_ms(_raw(case), at) is None
  assert connect_agent_event_time_ms(_raw(case), at - 1) == at
  assert connect_agent_event_time_ms(_raw(DEAD[0])) is None
  assert connect_agent_event_time_ms(b'{"timestamp": 1793606400000}') is None


def test_registered_as_amazon_connect():
  fmt = agent_registry.agent_event_format('amazon_connect')
  config = _config()
  assert isinstance(fmt.agent_events(config), ConnectAgentEvents)
  case = VALID[0]
  at = iso_time_ms(case['record']['EventTimestamp'], 'EventTimestamp')
  assert fmt.event_time_ms(config)(_raw(case), None) == at


def _mangled(rng: random.Random, value):
  """`value` with one random node replaced by a value of another type."""
  if isinstance(value, dict) and value and rng.random() < 0.8:
    key = rng.choice(sorted(value))
    return {**value, key: _mangled(rng, value[key])}
  if isinstance(value, list) and value and rng.random() < 0.8:
    i = rng.randrange(len(value))
    return value[:i] + [_mangled(rng, value[i])] + value[i + 1 :]
  return rng.choice([None, 0, -1, 1.5, True, '', ' ', 'x' * 300, '\x00', [], {}, [None], 'Z'])


def test_mangled_records_are_events_or_invalid_records_never_other_errors():
  rng = random.Random(7)
  outcomes = collections.Counter()
  for _ in range(3000):
    record = _mangled(rng, rng.choice(VALID)['record'])
    raw = json.dumps(record).encode()
    try:
      event = parse_connect_agent_event(raw)
    except parsing.InvalidRecord as error:
      outcomes[error.reason] += 1
      continue
    assert event.state in AGENT_STATES and event.since <= event.timestamp
    outcomes['parsed'] += 1
  assert outcomes['parsed'] and len(outcomes) > 5
  for raw in (b'', b'[]', b'{', b'\xff', b'{"EventType": "HEART_BEAT"}', b'{}' * 10):
    with pytest.raises(parsing.InvalidRecord):
      parse_connect_agent_event(raw)


def test_cases_on_a_test_stream_with_their_counters(options):
  records = [SourceRecord('agents', f'f:{i}', _raw(c)) for i, c in enumerate(CASES)]
  p = beam.Pipeline(options=options)
  out = p | drain(TestStream().add_elements(records)) | ConnectAgentEvents(_config())
  assert_that(out['agent_events'], equal_to([_expected(c) for c in VALID]))
  reasons = out['dead_letters'] | beam.Map(lambda d: d.reason)
  assert_that(reasons, equal_to([c['dead_reason'] for c in DEAD]), label='dead')
  result = p.run()
  result.wait_until_finish()
  counters = {
    m.key.metric.name: m.committed
    for m in result.metrics().query()['counters']
    if m.key.metric.namespace == METRICS_NAMESPACE
  }
  types = collections.Counter(c['record']['EventType'].lower() for c in VALID)
  assert counters['parsed'] == len(VALID)
  for event_type, count in types.items():
    assert counters[event_type] == count, event_type
  assert counters['dead_letters'] == len(DEAD)
  for reason, count in collections.Counter(c['dead_reason'] for c in DEAD).items():
    assert counters[f'dead_letter_{reason}'] == count, reason


def test_events_are_timed_at_their_event_timestamp(options):
  p = beam.Pipeline(options=options)
  records = [SourceRecord('agents', f'f:{i}', _raw(c)) for i, c in enumerate(VALID)]
  out = p | beam.Create(records) | ConnectAgentEvents(_config())
  stamped = out['agent_events'] | beam.Map(
    lambda e, ts=beam.DoFn.TimestampParam: (e.timestamp, ts.micros // 1000)
  )
  assert_that(stamped, equal_to([(e.timestamp, e.timestamp) for e in map(_expected, VALID)]))
  p.run().wait_until_finish()


def test_the_committed_sample_is_what_its_generator_writes(tmp_path):
  out = tmp_path / 'agents.jsonl'
  subprocess.run(
    [sys.executable, '-m', 'testing.datagen.agent_events', '--out', str(out)]
    + agent_events.SAMPLE_ARGS,
    check=True,
    cwd=ROOT,
  )
  assert out.read_bytes() == SAMPLE.read_bytes()


def test_the_sample_parses_to_a_working_day_with_its_malformed_lines_dead():
  states = collections.Counter()
  reasons = collections.Counter()
  heartbeats = 0
  latest = {}
  delivered = set()
  for line in SAMPLE.read_bytes().splitlines():
    try:
      event = parse_connect_agent_event(line)
    except parsing.InvalidRecord as error:
      reasons[error.reason] += 1
      continue
    states[event.state] += 1
    heartbeats += event.heartbeat
    if not event.heartbeat and line not in delivered:
      # Each agent's records come in order: no state starts before the one
      # it ends (the agent-state step would take it as stale); only
      # re-deliveries come late.
      delivered.add(line)
      before = latest.get(event.agent_id)
      assert before is None or event.since >= before.since, (before, event)
      latest[event.agent_id] = event
  assert set(states) == set(AGENT_STATES)
  assert heartbeats > 0
  assert sorted(reasons) == sorted(agent_events.MALFORMED_REASONS)
