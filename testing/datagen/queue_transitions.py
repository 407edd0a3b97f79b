#!/usr/bin/env python3
"""Seeded generator of queue transitions (contacts entering and leaving
queues), the input of the live floor (transforms/queue_status.py).

Each record has the fields of ``QueueTransition`` (transforms/records.py)::

    {"contact_id": "c-17", "queue_id": "Q-2", "channel": "chat",
     "kind": "ENTERED", "timestamp": <epoch ms>, "entered_at": null,
     "outcome": null}

LIST ORDER IS ARRIVAL ORDER, with the disorder the job has to cope with:

* several queues and channels, some busier than others;
* every record arrives ``U(0, disorder_ms)`` after its event time, so an end
  can arrive before its start (never by more than ``disorder_ms``);
* a share is re-delivered (the same record) 1 to 30 records later;
* lost ends: a contact enters and never leaves;
* ends without starts: a contact leaves a queue it was never seen entering;
* re-entries: a contact that left enters the same queue again, and leaves
  again (or not);
* long waits: a contact leaves after more than ``max_queue_wait_ms``, so the
  job has dropped it as lost before its end arrives;
* zero waits: an entry and an exit at the same millisecond;
* with ``resolution_ms`` (whole seconds, say), ties between contacts and
  waits of exactly ``max_queue_wait_ms``.

Everything is drawn from one ``random.Random(seed)``: the same arguments
always give the same list. Stdlib only, and nothing from the pipeline code.

    python -m testing.datagen.queue_transitions --out transitions.jsonl \
        --contacts 500 --seed 3
"""

from __future__ import annotations

import json
import random
import sys
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence

from testing.datagen.common import (
  check_shares,
  generator_arg_parser,
  reset_counts,
  run_generator_cli,
  write_to,
)

DEFAULT_START_MS = 1793606400000  # 2026-11-02T08:00:00Z
ENTERED = 'ENTERED'
LEFT = 'LEFT'
QUEUES = ('Q-1', 'Q-2', 'Q-3')
CHANNELS = ('voice', 'chat')
# How many records later a re-delivered record shows up again (inclusive).
_REDELIVERY_GAP = (1, 30)
COUNT_KEYS = (
  'records',
  'contacts',
  'duplicates',
  'lost_ends',
  'ends_without_start',
  'reentries',
  'long_waits',
  'zero_waits',
)


class Transition(NamedTuple):
  """The fields of ``QueueTransition``, in its order, so
  ``QueueTransition(*transition)`` rebuilds the job's record."""

  contact_id: str
  queue_id: str
  channel: str
  kind: str
  timestamp: int
  entered_at: Optional[int] = None
  outcome: Optional[str] = None


def _wait_ms(rng: random.Random, mean_wait_ms: int, max_queue_wait_ms: int, long: bool) -> int:
  if long:
    return int(max_queue_wait_ms * rng.uniform(1.05, 2.0))
  # Capped below max_queue_wait, so only the drawn long waits outlive it.
  return min(int(rng.expovariate(1 / mean_wait_ms)), max_queue_wait_ms - 1)


def generate_transitions(
  seed: int,
  contacts: int = 200,
  *,
  queues: Sequence[str] = QUEUES,
  channels: Sequence[str] = CHANNELS,
  start_ms: int = DEFAULT_START_MS,
  mean_gap_ms: int = 3_000,
  mean_wait_ms: int = 60_000,
  max_queue_wait_ms: int = 600_000,
  disorder_ms: int = 20_000,
  duplicate_share: float = 0.1,
  lost_end_share: float = 0.05,
  end_without_start_share: float = 0.05,
  reentry_share: float = 0.1,
  long_wait_share: float = 0.05,
  zero_wait_share: float = 0.02,
  resolution_ms: int = 1,
  stats: Optional[Dict[str, int]] = None,
) -> List[Transition]:
  """``contacts`` contacts' transitions in arrival order.

  Contacts arrive every ``Exp(mean_gap_ms)`` ms of event time from
  ``start_ms``, each in a random (queue, channel), and wait
  ``Exp(mean_wait_ms)`` (below ``max_queue_wait_ms``) unless drawn as a
  long wait. The shares say how many contacts lose their end, have no start,
  come back, wait too long or leave at once; ``duplicate_share`` of the
  records are re-delivered. Timestamps are rounded down to
  ``resolution_ms`` (a source with whole seconds: ties between contacts,
  waits of exactly max_queue_wait). ``stats`` (if given) receives the counts of
  COUNT_KEYS.
  """
  check_shares(
    ('duplicate_share', duplicate_share),
    ('lost_end_share', lost_end_share),
    ('end_without_start_share', end_without_start_share),
    ('reentry_share', reentry_share),
    ('long_wait_share', long_wait_share),
    ('zero_wait_share', zero_wait_share),
  )
  if contacts < 0 or disorder_ms < 0 or max_queue_wait_ms < 1 or resolution_ms < 1:
    raise ValueError(
      'contacts and disorder_ms must be >= 0, max_queue_wait_ms and resolution_ms >= 1'
    )
  counts = reset_counts(stats, COUNT_KEYS)
  rng = random.Random(seed)
  keys = [(q, ch) for q in queues for ch in channels]
  # Uneven traffic: the first keys are the busiest.
  weights = [1 / (i + 1) for i in range(len(keys))]
  events: List[Transition] = []
  clock = start_ms
  for n in range(contacts):
    clock += int(rng.expovariate(1 / mean_gap_ms))
    queue_id, channel = rng.choices(keys, weights)[0]
    contact = f'c-{n}'
    counts['contacts'] += 1
    entered = clock
    # One visit, then maybe more of the same contact in the same queue.
    while True:
      long = rng.random() < long_wait_share
      zero = not long and rng.random() < zero_wait_share
      wait = 0 if zero else _wait_ms(rng, mean_wait_ms, max_queue_wait_ms, long)
      counts['long_waits'] += long
      counts['zero_waits'] += zero
      no_start = rng.random() < end_without_start_share
      lost_end = not no_start and rng.random() < lost_end_share
      if no_start:
        counts['ends_without_start'] += 1
      else:
        events.append(
          Transition(contact, queue_id, channel, ENTERED, entered - entered % resolution_ms)
        )
      if lost_end:
        counts['lost_ends'] += 1
        break
      left = entered + wait
      outcome = rng.choice(('ANSWERED', 'ABANDONED'))
      # Some sources tell the entry time on the exit; the job ignores it.
      entered_at = entered - entered % resolution_ms if rng.random() < 0.5 else None
      events.append(
        Transition(
          contact, queue_id, channel, LEFT, left - left % resolution_ms, entered_at, outcome
        )
      )
      if rng.random() >= reentry_share:
        break
      counts['reentries'] += 1
      # Back shortly after leaving, sometimes in the same millisecond.
      entered = left + int(rng.expovariate(1 / 10_000)) * (rng.random() < 0.8)

  # Arrival: each record late by up to disorder_ms; ties keep generation
  # order (stable sort), so an exit at its entry's millisecond stays after.
  delays = [rng.uniform(0, disorder_ms) for _ in events]
  order = sorted(range(len(events)), key=lambda i: events[i].timestamp + delays[i])
  arrival = list(_with_redeliveries(rng, [events[i] for i in order], duplicate_share, counts))
  counts['records'] = len(arrival)
  return arrival


def _with_redeliveries(
  rng: random.Random, records: List[Transition], share: float, counts: Dict[str, int]
) -> Iterator[Transition]:
  pending: Dict[int, List[Transition]] = {}
  for i, record in enumerate(records):
    yield record
    if rng.random() < share:
      pending.setdefault(i + rng.randint(*_REDELIVERY_GAP), []).append(record)
    for dup in pending.pop(i, ()):
      counts['duplicates'] += 1
      yield dup
  for i in sorted(pending):
    for dup in pending[i]:
      counts['duplicates'] += 1
      yield dup


def write_transitions(out: str, contacts: int, seed: int, **options) -> Dict[str, int]:
  """Write the transitions of ``generate_transitions(seed, contacts,
  **options)`` to ``out`` (JSON lines, ``-`` for stdout); return the
  counts."""
  stats: Dict[str, int] = {}
  records = generate_transitions(seed, contacts, stats=stats, **options)
  write_to(out, (json.dumps(r._asdict(), separators=(',', ':')).encode() for r in records))
  return stats


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI: write a seeded stream of transitions; print the counts to
  stderr."""
  p = generator_arg_parser(
    'Seeded queue transitions (JSON lines, file order = arrival order).',
    '--contacts',
    200,
    'number of contacts',
  )
  p.add_argument('--start-ms', type=int, default=DEFAULT_START_MS)
  p.add_argument('--max-queue-wait-ms', type=int, default=600_000)
  p.add_argument('--disorder-ms', type=int, default=20_000)
  p.add_argument('--resolution-ms', type=int, default=1, help='timestamps rounded down to this')
  return run_generator_cli(p, 'contacts', write_transitions, argv)


if __name__ == '__main__':
  sys.exit(main())
