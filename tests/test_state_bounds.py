"""Bounded state under adversarial keys: a flood of distinct queue ids,
channels, call ids or customers leaves no state behind once the watermark
has passed their TTL.

The state left is read from the runner itself (the bundle-based direct
runner's committed keyed state of each step), not from counters the steps
keep about themselves.
"""

from typing import Dict

import apache_beam as beam
import pytest
from apache_beam.runners.direct import evaluation_context
from apache_beam.testing.test_stream import TestStream
from apache_beam.utils.timestamp import Duration

from tests.conftest import BASE_S, call, offered, timed
from transforms.abandon_rate import AbandonRate
from transforms.callback_patterns import DetectCallbackPatterns
from transforms.dedupe import DedupeByKey
from transforms.join_customers import JoinCustomers
from transforms.queue_status import LiveQueueStatus
from transforms.records import (
  QUEUE_ENTERED,
  QUEUE_LEFT,
  CustomerProfile,
  Interaction,
  QueueTransition,
)
from transforms.sharding import DEFAULT_STATE_SHARDS

N_KEYS = 2000
TTL_S = 600
TTL = Duration(seconds=TTL_S)


@pytest.fixture
def runner_states(monkeypatch):
  """After a run: step label -> number of keys holding state or timers."""
  contexts = []
  original_init = evaluation_context.EvaluationContext.__init__

  def recording_init(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    contexts.append(self)

  monkeypatch.setattr(evaluation_context.EvaluationContext, '__init__', recording_init)

  def keys_with_state() -> Dict[str, int]:
    # pylint: disable=protected-access
    (context,) = contexts
    counts = {}
    for transform, keyed in context._transform_keyed_states.items():
      live = [
        key
        for key, state in keyed.items()
        if any(any(tags.values()) for tags in state.state.values())
        or any(state.timers.values())
        or state.global_state
      ]
      if keyed:
        counts[transform.full_label] = len(live)
    return counts

  return keys_with_state


def _stateful_steps(counts: Dict[str, int], suffix: str) -> Dict[str, int]:
  steps = {label: n for label, n in counts.items() if label.endswith(suffix)}
  assert steps, f'no stateful step ending in {suffix} among {sorted(counts)}'
  print(
    f'\n{N_KEYS} distinct keys, watermark past the TTL: keys still holding state or timers {steps}'
  )
  return steps


def _flood_then_pass_ttl(elements, last_event_s: int) -> TestStream:
  """The elements in bundles of 500, the watermark moving with them, then a
  watermark past the last event + TTL (and every window's lateness): as a
  live stream whose key flood has ended, not the end of input."""
  stream = TestStream()
  for i in range(0, len(elements), 500):
    stream.add_elements(elements[i : i + 500])
  return stream.advance_watermark_to(BASE_S + last_event_s + TTL_S + 3600)


def test_a_flood_of_queue_ids_leaves_only_the_shard_cells(options, runner_states):
  calls = [timed(offered(f'c{i}', i * 0.1, queue_id=f'Q-{i}')) for i in range(N_KEYS)]
  with beam.Pipeline(options=options) as p:
    _ = (
      p
      | _flood_then_pass_ttl(calls, N_KEYS // 10)
      | AbandonRate(Duration(seconds=300), Duration(seconds=60), 0, 20, key_idle_ttl=TTL)
    )
  left = _stateful_steps(runner_states(), '(_WindowedCombineFn)')
  # One cell per shard that ever saw a key: its clock and the names of at
  # most MAX_REMEMBERED_KEYS keys (transforms/windowing.py).
  assert sum(left.values()) <= DEFAULT_STATE_SHARDS, left


def test_a_flood_of_call_ids_leaves_no_dedupe_state(options, runner_states):
  calls = [timed(call(f'c{i}', i * 0.1)) for i in range(N_KEYS)]
  with beam.Pipeline(options=options) as p:
    _ = (
      p
      | _flood_then_pass_ttl(calls, N_KEYS // 10)
      | DedupeByKey(lambda e: e.call_uuid, lambda e: e.timestamp, TTL, 'test')
    )
  assert sum(_stateful_steps(runner_states(), '/DropDuplicates').values()) == 0


def _interaction(i: int, at_s: float, status: str = 'FAILED') -> Interaction:
  return Interaction(f'i{i}', f'C-{i}', 'voice', status, int((BASE_S + at_s) * 1000))


def test_a_flood_of_customers_leaves_no_pattern_state(options, runner_states):
  interactions = [timed(_interaction(i, i * 0.1)) for i in range(N_KEYS)]
  with beam.Pipeline(options=options) as p:
    _ = (
      p
      | _flood_then_pass_ttl(interactions, N_KEYS // 10)
      | DetectCallbackPatterns(frozenset({'FAILED'}), frozenset({'CALLBACK_REQUESTED'}))
    )
  assert sum(_stateful_steps(runner_states(), '(_DetectFn)').values()) == 0


def test_a_flood_of_customers_leaves_no_join_state(options, runner_states):
  stream = TestStream(output_tags=['records', 'profiles'])
  for i in range(0, N_KEYS, 500):
    stream.add_elements(
      [
        timed(CustomerProfile(f'C-{j}', 'gold', 'EMEA', int((BASE_S + j * 0.1) * 1000)))
        for j in range(i, i + 500)
      ],
      tag='profiles',
    )
    stream.add_elements(
      [timed(_interaction(j, j * 0.1 + 1)) for j in range(i, i + 500, 7)], tag='records'
    )
  for tag in ('records', 'profiles'):
    stream.advance_watermark_to(BASE_S + N_KEYS // 10 + TTL_S + 3600, tag=tag)
  with beam.Pipeline(options=options) as p:
    streams = p | stream
    _ = (streams['records'], streams['profiles']) | JoinCustomers(
      lambda r, _: r, Interaction, Duration(seconds=30), customer_state_ttl=TTL
    )
  assert sum(_stateful_steps(runner_states(), '/Join').values()) == 0


def test_a_flood_of_queue_ids_leaves_no_live_floor_state(options, runner_states):
  """Each queue sees one contact enter and leave, then goes quiet: once the
  watermark passes its clock + tombstone_ttl its remembered exit and its
  timers go, though its own clock never moves again."""
  transitions = []
  for i in range(N_KEYS):
    at_ms = int((BASE_S + i * 0.1) * 1000)
    for kind, t in ((QUEUE_ENTERED, at_ms), (QUEUE_LEFT, at_ms + 50)):
      transitions.append(timed(QueueTransition(f'c{i}', f'Q-{i}', 'voice', kind, t)))
  with beam.Pipeline(options=options) as p:
    _ = (
      p
      | _flood_then_pass_ttl(transitions, N_KEYS // 10)
      | LiveQueueStatus(
        max_queue_wait=Duration(seconds=120),
        tombstone_ttl=TTL,
        status_interval=Duration(seconds=30),
        max_waiting_listed=3,
        queue_names={},
      )
    )
  assert sum(_stateful_steps(runner_states(), '(_LiveQueueStatusFn)').values()) == 0
