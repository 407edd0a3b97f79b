"""DetectCallbackPatterns on TestStream: the CEP semantics case by case, and
a randomized comparison with a brute-force matcher."""

import json
import random

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils.timestamp import Duration

from testing.reference.interactions import brute_force_alerts, reference_interactions
from tests.conftest import BASE_S, drain
from transforms.callback_patterns import DetectCallbackPatterns
from transforms.change_log import InstanceCopies
from transforms.records import Interaction

FAILED, CALLBACK, OK = 'FAILED', 'CALLBACK_REQUESTED', 'COMPLETED'
WITHIN = Duration(seconds=30)


def interaction(iid, at_s, status, customer='C-1', channel='voice'):
  return Interaction(iid, customer, channel, status, int((BASE_S + at_s) * 1000))


def stamped(i):
  return beam.window.TimestampedValue(i, i.timestamp / 1000)


def detect(batches, options):
  """Runs the detector over batches of (interactions, watermark after, s);
  yields (alerts as (customer, channel, seconds after BASE), late ids)."""
  stream = TestStream()
  for interactions, watermark_s in batches:
    stream = stream.add_elements([stamped(i) for i in interactions])
    if watermark_s is not None:
      stream = stream.advance_watermark_to(BASE_S + watermark_s)
  with beam.Pipeline(options=options) as p:
    out = (
      p | drain(stream) | DetectCallbackPatterns(frozenset({FAILED}), frozenset({CALLBACK}), WITHIN)
    )
    alerts = out['matches'] | 'Alerts' >> beam.Map(
      lambda m: (m.customer_id, m.channel, (m.timestamp - BASE_S * 1000) / 1000, m.interaction_ids)
    )
    late = out['late'] | 'Late' >> beam.Map(lambda a: a.value.interaction_id)
    yield alerts, late


def check(batches, options, expected_alerts, expected_late=()):
  for alerts, late in detect(batches, options):
    assert_that(alerts, equal_to(expected_alerts), label='alerts')
    assert_that(late, equal_to(list(expected_late)), label='late')


def seq(*steps, customer='C-1'):
  """Interactions from (id, seconds, status) steps."""
  return [interaction(i, t, s, customer) for i, t, s in steps]


def test_three_failures_then_callback_within_30s_matches(options):
  events = seq(('f1', 0, FAILED), ('f2', 5, FAILED), ('f3', 10, FAILED), ('cb', 20, CALLBACK))
  check([(events, None)], options, [('C-1', 'voice', 20, 'f1,f2,f3,cb')])


def test_four_failures_then_callback_is_one_match_of_the_last_three(options):
  events = seq(
    ('f1', 0, FAILED), ('f2', 1, FAILED), ('f3', 2, FAILED), ('f4', 3, FAILED), ('cb', 4, CALLBACK)
  )
  check([(events, None)], options, [('C-1', 'voice', 4, 'f2,f3,f4,cb')])


def test_two_failures_then_callback_does_not_match(options):
  events = seq(('f1', 0, FAILED), ('f2', 1, FAILED), ('cb', 2, CALLBACK))
  check([(events, None)], options, [])


def test_a_success_between_failures_starts_the_count_again(options):
  events = seq(
    ('f1', 0, FAILED), ('f2', 1, FAILED), ('f3', 2, FAILED), ('ok', 3, OK), ('cb', 4, CALLBACK)
  )
  check([(events, None)], options, [])


@pytest.mark.parametrize('callback_s, matches', [(29.999, True), (30, False), (31, False)])
def test_within_is_measured_from_the_first_failure(options, callback_s, matches):
  events = seq(
    ('f1', 0, FAILED), ('f2', 10, FAILED), ('f3', 20, FAILED), ('cb', callback_s, CALLBACK)
  )
  expected = [('C-1', 'voice', callback_s, 'f1,f2,f3,cb')] if matches else []
  check([(events, None)], options, expected)


def test_out_of_order_arrival_is_sorted_by_event_time(options):
  events = seq(('cb', 20, CALLBACK), ('f2', 5, FAILED), ('f1', 0, FAILED), ('f3', 10, FAILED))
  check([(events, None)], options, [('C-1', 'voice', 20, 'f1,f2,f3,cb')])


def test_customers_are_independent(options):
  a = seq(('a1', 0, FAILED), ('a2', 1, FAILED), customer='A')
  b = seq(('b1', 1.5, FAILED), ('b2', 2, OK), customer='B')
  a2 = seq(('a3', 2, FAILED), ('a4', 3, CALLBACK), customer='A')
  check([(a + b + a2, None)], options, [('A', 'voice', 3, 'a1,a2,a3,a4')])


def test_interaction_behind_processed_ones_goes_late(options):
  first = seq(('f1', 0, FAILED), ('f2', 1, FAILED), ('ok', 10, OK))
  straggler = seq(('f0', 5, FAILED))
  check([(first, 20), (straggler, None)], options, [], ['f0'])


def test_a_forgotten_customer_starts_afresh_as_in_the_reference(options, tmp_path):
  """An interaction arriving more than `within` behind the watermark, after
  its customer's state was dropped (state bound), is neither late nor part
  of the dropped partial match: it starts the customer afresh. The job and
  the reference (testing/reference/interactions.py) agree on it."""
  polls = [
    # C-1's partial match f1 f2 f3; the watermark then jumps to 63 s, past
    # 30 s (the tick `within` after f1), where C-1 is forgotten.
    seq(('f1', 0, FAILED), ('f2', 1, FAILED), ('f3', 2, FAILED))
    + seq(('a1', 4, OK), customer='C-2'),
    seq(('z1', 60, OK), customer='C-2')
    + seq(('z2', 61, OK), ('z3', 62, OK), ('z4', 63, OK), customer='C-3'),
    # 61.5 s behind the watermark, behind f3: fresh, not late, and cb does
    # not complete f1 f2 f3 (no alert at 3 s); y is behind C-2's processed
    # z1, which is remembered: late.
    seq(('x', 1.5, OK), ('cb', 3, CALLBACK))
    + seq(('y', 59, OK), customer='C-2')
    + seq(('pad', 64, OK), customer='C-3'),
    # Past 35 s, C-1 is forgotten again: a new sequence, which matches.
    seq(('g1', 10, FAILED), ('g2', 11, FAILED), ('g3', 12, FAILED), ('gcb', 13, CALLBACK)),
  ]
  lines = [
    json.dumps(
      {
        'interactionId': i.interaction_id,
        'customerId': i.customer_id,
        'channel': i.channel,
        'status': i.status,
        'timestamp': i.timestamp,
      }
    )
    for poll in polls
    for i in poll
  ]
  path = tmp_path / 'stream.jsonl'
  path.write_text(''.join(line + '\n' for line in lines))
  ref = reference_interactions(str(path), max_out_of_orderness_s=0, poll_size=4)
  assert ref.alerts == {('C-1', 'voice', (BASE_S + 13) * 1000)}
  assert ref.pattern_late_ids == {'y'}

  # The watermark after each poll: the largest event time so far, as the
  # reference's (none after the last poll: it does not advance).
  batches = [(poll, max(i.timestamp for i in poll) / 1000 - BASE_S) for poll in polls[:-1]]
  check(batches + [(polls[-1], None)], options, [('C-1', 'voice', 13, 'g1,g2,g3,gcb')], ['y'])


def random_stream(rng, customers=4, n=60):
  """Interactions with random statuses and an arrival order shuffled within
  a bound smaller than the watermark lag, so none is late."""
  events = []
  clock = 0.0
  for k in range(n):
    clock += rng.choice([0.5, 1, 2, 5, 12])
    status = rng.choices([FAILED, CALLBACK, OK], weights=[5, 2, 2])[0]
    events.append(
      interaction(
        f'i{k}', clock, status, f'C-{rng.randrange(customers)}', rng.choice(['voice', 'chat'])
      )
    )
  arrival = sorted(events, key=lambda i: i.timestamp + rng.uniform(0, 8000))
  return events, arrival


@pytest.mark.parametrize('seed', range(5))
def test_randomized_against_brute_force(options, seed):
  rng = random.Random(seed)
  events, arrival = random_stream(rng)
  # Deliver in batches; the watermark trails the max event time by 10 s,
  # more than the 8 s arrival shuffle, so nothing is late.
  batches, max_ts = [], 0
  for k in range(0, len(arrival), 7):
    batch = arrival[k : k + 7]
    max_ts = max([max_ts] + [i.timestamp for i in batch])
    batches.append((batch, max_ts / 1000 - BASE_S - 10))
  expected = brute_force_alerts(
    [(i.customer_id, i.channel, i.status, i.timestamp, arrival.index(i)) for i in arrival]
  )
  expected = sorted((c, ch, (ts - BASE_S * 1000) / 1000) for c, ch, ts in expected)
  for alerts, late in detect(batches, options):
    assert_that(alerts | 'Key' >> beam.Map(lambda a: a[:3]), equal_to(expected), label='alerts')
    assert_that(late, equal_to([]), label='late')


class _Cell:
  """A state cell as a runner keeps it: encoded by the step's coder."""

  def __init__(self, coder):
    self.coder = coder
    self.encoded = None

  def read(self):
    return None if self.encoded is None else self.coder.decode(self.encoded)

  def write(self, value):
    self.encoded = self.coder.encode(value)

  def clear(self):
    self.encoded = None


class _Timer:
  def __init__(self):
    self.at = None

  def set(self, timestamp, dynamic_timer_tag=''):
    self.at = timestamp


def _run_detector(batches, read_back: bool):
  """Feeds batches straight to the detector's DoFn, one shard, waking it
  when the watermark passes its timer; with `read_back`, its copy of the
  customers is dropped before every call, so every call reads the state.
  Returns the matches' ids and the encoded state after every call."""
  # pylint: disable=protected-access
  from apache_beam.utils.timestamp import Timestamp

  from transforms import callback_patterns

  fn = DetectCallbackPatterns(frozenset({FAILED}), frozenset({CALLBACK}), WITHIN)._fn
  customers = _Cell(callback_patterns.CUSTOMERS_CODER)
  token = _Cell(callback_patterns.TOKEN_CODER)
  wake = _Timer()
  matches, states = [], []

  def collect(outputs):
    for out in outputs:
      if hasattr(out, 'value') and hasattr(out.value, 'interaction_ids'):
        matches.append(out.value.interaction_ids)
    if read_back:
      fn._copies = InstanceCopies()  # the next batch reads the state back
    states.append(customers.encoded)
    if customers.encoded is not None:
      # Every write is the text of the whole map, as if encoded anew.
      plain = callback_patterns._customers_to_plain(customers.coder.decode(customers.encoded))
      assert customers.encoded[1:].decode() == (callback_patterns.compact_json(plain))

  for interactions, watermark_s in batches:
    collect(fn.process((0, interactions), customers, token, wake))
    watermark = Timestamp(BASE_S + watermark_s)
    while wake.at is not None and wake.at <= watermark:
      fired, wake.at = wake.at, None
      collect(fn.on_wake(0, fired, customers, token, wake))
  return matches, states


# Seeds whose streams hold matches.
@pytest.mark.parametrize('seed', [4, 6, 7])
def test_the_state_written_is_the_state_read_back(seed):
  # The detector keeps its own copy of the map and re-encodes only the
  # customers that changed: the state it writes must still be the whole
  # map, and a detector that reads every state back must do the same.
  rng = random.Random(seed)
  _, arrival = random_stream(rng)
  batches, max_ts = [], 0
  for k in range(0, len(arrival), 7):
    batch = arrival[k : k + 7]
    max_ts = max([max_ts] + [i.timestamp for i in batch])
    batches.append((batch, max_ts / 1000 - BASE_S - 10))
  batches.append(([], max_ts / 1000 - BASE_S + 3600))
  with_copy = _run_detector(batches, read_back=False)
  reading_back = _run_detector(batches, read_back=True)
  assert with_copy[0] and with_copy[0] == reading_back[0]
  # Same maps (tokens differ from run to run, the customers do not).
  assert with_copy[1] == reading_back[1]
