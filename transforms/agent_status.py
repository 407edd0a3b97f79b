"""AgentStatusPerQueue: agents by state in each queue and channel now.

One state per (queue, channel), its natural key: the agents logged in
there with their state and reason. Each agent's latest presence by its
`as_of` wins (presences of one agent reach the queue in order, but a
runner may reorder them across a shuffle), a logged-out agent leaves the
queue, and a queue with nobody logged in holds no state. A row is written
whenever the counts or the not-ready reasons change.
"""

import json
from typing import Dict, Iterator, List, Mapping, Tuple

import apache_beam as beam
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec
from apache_beam.utils.timestamp import Timestamp

from transforms.batching import BatchPerKey
from transforms.records import (
  AGENT_AFTER_CONTACT_WORK,
  AGENT_AVAILABLE,
  AGENT_LOGGED_OUT,
  AGENT_NOT_READY,
  AGENT_ON_CONTACT,
  AGENT_ON_HOLD,
  AgentPresence,
  AgentStatus,
)
from transforms.state_coders import VersionedStateCoder

_KEY_SEPARATOR = '|'


def place_key(queue_id: str, channel: str) -> str:
  """The key of a queue and channel in the agents' steps (as the call
  metrics' row key: channel, then queue)."""
  return f'{channel}{_KEY_SEPARATOR}{queue_id}'


def presence_key(presence: AgentPresence) -> str:
  """The step's key of a presence: its channel and queue."""
  return place_key(presence.queue_id, presence.channel)


def agent_counts(agents: Mapping[str, List]) -> Tuple[int, int, int, int, Dict[str, int]]:
  """(available, on contact incl. on hold, after-contact work, not ready,
  not-ready agents by reason) of agent id -> [state, reason, as_of]."""
  available = on_contact = after_contact_work = not_ready = 0
  reasons: Dict[str, int] = {}
  for state, reason, _ in agents.values():
    if state == AGENT_AVAILABLE:
      available += 1
    elif state in (AGENT_ON_CONTACT, AGENT_ON_HOLD):
      on_contact += 1
    elif state == AGENT_AFTER_CONTACT_WORK:
      after_contact_work += 1
    elif state == AGENT_NOT_READY:
      not_ready += 1
      reasons[reason] = reasons.get(reason, 0) + 1
  return available, on_contact, after_contact_work, not_ready, dict(sorted(reasons.items()))


class _QueueAgents:
  __slots__ = ('agents', 'last_row', 'revision')

  def __init__(self):
    # agent id -> [state, reason, as_of]
    self.agents: Dict[str, List] = {}
    self.last_row: List = []
    self.revision = 0


def _to_plain(queue: _QueueAgents) -> list:
  return [queue.agents, queue.last_row, queue.revision]


def _from_plain_v1(plain: list) -> _QueueAgents:
  queue = _QueueAgents()
  queue.agents, queue.last_row, queue.revision = plain
  return queue


# Format v1: [{agent id: [state, reason, as_of]}, last row's [counts...,
# reasons], revision] (docs/upgrades.md).
QUEUE_AGENTS_CODER = VersionedStateCoder('agent status', 1, _to_plain, {1: _from_plain_v1})


class _AgentStatusFn(beam.DoFn):
  STATE = ReadModifyWriteStateSpec('queue_agents', QUEUE_AGENTS_CODER)

  def __init__(self, queue_names: Mapping[str, str], processing_clock):
    self._queue_names = dict(queue_names)
    self._processing_clock = processing_clock

  def process(
    self,
    batch: Tuple[str, List[AgentPresence]],
    state=beam.DoFn.StateParam(STATE),
  ) -> Iterator[AgentStatus]:
    key, presences = batch
    queue = state.read() or _QueueAgents()
    for presence in presences:
      known = queue.agents.get(presence.agent_id)
      if known is not None and known[2] > presence.as_of:
        continue  # an older presence of this agent
      if presence.state == AGENT_LOGGED_OUT:
        queue.agents.pop(presence.agent_id, None)
      else:
        queue.agents[presence.agent_id] = [presence.state, presence.reason, presence.as_of]
    available, on_contact, acw, not_ready, reasons = agent_counts(queue.agents)
    row = [available, on_contact, acw, not_ready, reasons]
    if row != queue.last_row:
      queue.last_row = row
      now = self._processing_clock()
      queue.revision = max(now.micros, queue.revision + 1)
      channel, _, queue_id = key.partition(_KEY_SEPARATOR)
      yield AgentStatus(
        queue_id=queue_id,
        channel=channel,
        logged_in=available + on_contact + acw + not_ready,
        available=available,
        on_contact=on_contact,
        after_contact_work=acw,
        not_ready=not_ready,
        not_ready_reasons=json.dumps(reasons, separators=(',', ':')),
        as_of=max([p.as_of for p in presences] + [a[2] for a in queue.agents.values()]),
        updated_at=now.micros // 1000,
        revision=queue.revision,
        queue_name=self._queue_names.get(queue_id, queue_id),
      )
    if queue.agents:
      state.write(queue)
    else:
      # Nobody logged in: the last row says so; the revision restarts from
      # the clock, which has moved on.
      state.clear()


class AgentStatusPerQueue(beam.PTransform):
  """Agents by state per queue and channel.

  Input: PCollection[AgentPresence] (AgentStates' `agent_presence`).
  Output: PCollection[AgentStatus], a row per (queue, channel) whenever
  its counts or not-ready reasons change. `processing_clock`: for
  `updated_at` and `revision` (tests give a fixed one).
  """

  def __init__(self, *, queue_names: Mapping[str, str], processing_clock=Timestamp.now):
    super().__init__()
    self._fn = _AgentStatusFn(queue_names, processing_clock)

  def expand(self, presences):
    return (
      presences
      | 'BatchPerQueue' >> BatchPerKey(presence_key, lambda p: p.as_of, str)
      | 'QueueAgents' >> beam.ParDo(self._fn).with_output_types(AgentStatus)
    )
