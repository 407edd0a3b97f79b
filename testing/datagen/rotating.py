"""Live events of a rotating population, for endurance runs (scripts/bench/soak.py).

Every `rotate_s` (a "generation", 60 s by default) the calls go to a fresh set
of queues and the interactions come from a fresh set of customers; the ids of
earlier generations are never used again, so they go idle. A job whose state
is bounded keeps a flat state size under this load; one that keeps something
per id forever grows with every generation.

Records are stamped with the moment they are made (event time = wall time),
so nothing is late and the final rows follow from the calls alone
(testing/reference/calls.py). Stdlib only, seeded.

Call event (``cc-call-logs``)::

    {"call_uuid": "...", "event_type": "CALL_ENDED", "timestamp": <ms>,
     "queue_id": "Q-G17-3", "abandoned": false, "wait_time_seconds": 14,
     "agent_id": "A-G17-3"}

Interaction (``cxone-data-actions``, testing/datagen/data_actions.py's shape)::

    {"interactionId": "...", "customerId": "C-G17-0042", "channel": "voice",
     "status": "COMPLETED", "timestamp": <ms>}
"""

from __future__ import annotations

import random
import uuid
from typing import Tuple

from testing.datagen.common import json_line

CHANNELS = ('voice', 'chat', 'email', 'sms')
STATUSES = ('COMPLETED',) * 17 + ('FAILED', 'CALLBACK_REQUESTED', 'ABANDONED')


class RotatingPopulation:
  """Makes call events and interactions whose ids belong to the generation of
  their timestamp (`timestamp // rotate_ms`)."""

  def __init__(
    self,
    seed: int = 1,
    rotate_s: float = 60,
    queues: int = 8,
    customers: int = 200,
    abandon_share: float = 0.1,
  ):
    self.rng = random.Random(seed)
    self.rotate_ms = int(rotate_s * 1000)
    self.queues = queues
    self.customers = customers
    self.abandon_share = abandon_share

  def generation(self, t_ms: int) -> int:
    return t_ms // self.rotate_ms

  def _uuid(self) -> str:
    return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

  def call(self, t_ms: int) -> Tuple[bytes, str]:
    """(line, queue id) of one ended call at t_ms."""
    g = self.generation(t_ms)
    q = self.rng.randrange(self.queues)
    abandoned = self.rng.random() < self.abandon_share
    queue_id = f'Q-G{g}-{q}'
    record = {
      'call_uuid': self._uuid(),
      'event_type': 'CALL_ENDED',
      'timestamp': t_ms,
      'queue_id': queue_id,
      'abandoned': abandoned,
      'wait_time_seconds': self.rng.randint(0, 90),
      'agent_id': None if abandoned else f'A-G{g}-{q}',
    }
    return json_line(record), queue_id

  def interaction(self, t_ms: int) -> bytes:
    g = self.generation(t_ms)
    record = {
      'interactionId': self._uuid(),
      'customerId': f'C-G{g}-{self.rng.randrange(self.customers):04d}',
      'channel': self.rng.choice(CHANNELS),
      'status': self.rng.choice(STATUSES),
      'timestamp': t_ms,
    }
    return json_line(record)
