#!/usr/bin/env python3
"""Independent reference for the live queue state (transforms/queue_status.py).

Given queue transitions in arrival order (objects or dicts with
``contact_id``, ``queue_id``, ``channel``, ``kind`` "ENTERED"/"LEFT" and
``timestamp`` in epoch ms, as ``QueueTransition`` and the JSON lines of
``testing/datagen/queue_transitions.py``), compute in plain Python, with
dicts, the state of every (queue_id, channel) after each transition: the
contacts waiting, the oldest entry, the longest wait, the listed contacts,
the contacts dropped as lost and the counts of exits without entry and of
lost exits.

It deliberately shares no code with ``pipelines/`` or ``transforms/``: it
is the oracle the job is checked against (tests/test_queue_status_reference.py).

Semantics (the job's contract):

* Key: (queue_id, channel); each key sees only its own transitions, in
  arrival order.
* Per contact the latest transition by event time wins. A contact is either
  waiting (since S, latest entry A) or gone (a tombstone at A), or unknown.
  ENTERED at t: a waiting contact stays waiting with S = min(S, t),
  A = max(A, t); a gone contact whose exit is at or after t stays gone;
  otherwise (unknown, or gone before t) it waits since t.
  LEFT at t: ignored if the contact's latest transition is after t; else the
  contact is gone at t; an unknown contact's exit is also counted as an
  exit without entry.
* The key's clock: the largest timestamp among the key's transitions (the
  ignored ones too).
* After each transition, with M = max_queue_wait: a waiting contact with
  clock - S > M lost its exit: dropped, counted as a lost exit and listed in
  ``lost``; a tombstone with clock - A > T (``tombstone_ttl_ms``, M unless
  given) is forgotten (the contact becomes unknown).
* The state's rows: waiting = the waiting contacts, oldest = min S (None if
  none), longest wait = (as_of - oldest) / 1000 s (0.0 if none), as_of =
  clock; the listed contacts are the ``max_waiting_listed`` first by (S,
  contact id).
* A status row is emitted after a transition when (waiting, oldest, as_of)
  differs from the key's last emitted row (always for a key's first
  transition); a waiting-contacts row when (waiting, listed) differs.
* Processing-time refresh: ``refresh(key, now_ms)`` with ``now_ms`` the
  processing time, while contacts wait: as_of = clock + (now_ms - the
  processing time the clock last advanced at), expiry applied at that as_of,
  and a status row emitted whatever it holds. The clock itself stays.

CLI: ``python -m testing.reference.queue_status FILE.jsonl`` prints the
final state per key as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

ENTERED = 'ENTERED'
LEFT = 'LEFT'

Key = Tuple[str, str]  # (queue_id, channel)


class Status(NamedTuple):
  """A key's status row, without the job's bookkeeping columns
  (updated_at, queue_name)."""

  waiting: int
  oldest_waiting_since: Optional[int]
  longest_wait_seconds: float
  as_of: int


class Waiting(NamedTuple):
  """A key's waiting-contacts row: ``contacts`` the listed (contact_id,
  since) pairs, oldest first; ``waiting`` all of them."""

  contacts: Tuple[Tuple[str, int], ...]
  waiting: int
  as_of: int


class Lost(NamedTuple):
  """A contact dropped after max_queue_wait without an exit: when it
  entered (its earliest entry)."""

  queue_id: str
  channel: str
  contact_id: str
  since: int


def _field(transition: Any, name: str) -> Any:
  if isinstance(transition, dict):
    return transition[name]
  return getattr(transition, name)


@dataclass
class _KeyState:
  # Two plain maps instead of one record per contact: a contact is in at
  # most one of them.
  waiting: Dict[str, List[int]] = field(default_factory=dict)  # id -> [since, at]
  gone: Dict[str, int] = field(default_factory=dict)  # id -> at of the exit
  clock: Optional[int] = None
  clock_advanced_at: int = 0  # processing time (ms) the clock last grew
  last_status: Optional[Tuple[int, Optional[int], int]] = None
  last_listed: Optional[Tuple[int, Tuple[Tuple[str, int], ...]]] = None
  forgotten: bool = False  # its next transition starts it over


class QueueStatusReference:
  """The live queue state, fed one transition at a time.

  ``apply(transition, now_ms)`` in arrival order (``now_ms``: the processing
  time it is handled at, which only the refresh reads);
  ``refresh(key, now_ms)`` for a processing-time refresh. Read the state
  with ``status``, ``waiting_contacts``, ``statuses``, ``all_waiting``;
  ``emitted_status`` / ``emitted_waiting`` hold the rows emitted per key,
  ``history`` the status after every transition of the key (emitted or
  not); ``lost``, ``exits_without_entry`` and ``lost_exits`` accumulate.
  """

  def __init__(
    self, max_queue_wait_ms: int, max_waiting_listed: int, tombstone_ttl_ms: Optional[int] = None
  ) -> None:
    if max_waiting_listed < 0:
      raise ValueError('max_waiting_listed must be >= 0')
    self.max_queue_wait_ms = max_queue_wait_ms
    # How long an exit is remembered (default: max_queue_wait).
    self.tombstone_ttl_ms = max_queue_wait_ms if tombstone_ttl_ms is None else tombstone_ttl_ms
    self.max_waiting_listed = max_waiting_listed
    self._keys: Dict[Key, _KeyState] = {}
    self.emitted_status: Dict[Key, List[Status]] = {}
    self.emitted_waiting: Dict[Key, List[Waiting]] = {}
    self.history: Dict[Key, List[Status]] = {}
    self.lost: List[Lost] = []
    self.exits_without_entry = 0
    self.lost_exits = 0
    self.transitions = 0

  # ---- feeding -------------------------------------------------------------

  def apply(self, transition: Any, now_ms: int = 0) -> Key:
    """Apply one transition; return its key."""
    key = (_field(transition, 'queue_id'), _field(transition, 'channel'))
    contact = _field(transition, 'contact_id')
    kind = _field(transition, 'kind')
    t = _field(transition, 'timestamp')
    state = self._keys.get(key)
    if state is None or state.forgotten:
      state = self._keys[key] = _KeyState()
    self.transitions += 1

    waiting = state.waiting.get(contact)
    gone_at = state.gone.get(contact)
    if kind == ENTERED:
      if waiting is not None:
        # Waiting still: since the earliest entry seen, whatever the order
        # the entries arrived in.
        waiting[0] = min(waiting[0], t)
        waiting[1] = max(waiting[1], t)
      elif gone_at is not None and gone_at >= t:
        pass  # its exit, at or after this entry, wins
      else:
        state.gone.pop(contact, None)
        state.waiting[contact] = [t, t]
    elif kind == LEFT:
      if waiting is not None:
        if waiting[1] <= t:
          del state.waiting[contact]
          state.gone[contact] = t
      elif gone_at is not None:
        if gone_at <= t:
          state.gone[contact] = t
      else:
        self.exits_without_entry += 1
        state.gone[contact] = t
    else:
      raise ValueError(f'unknown transition kind {kind!r}')

    if state.clock is None or t > state.clock:
      state.clock = t
      state.clock_advanced_at = now_ms
    self._expire(key, state, state.clock)
    status = self._status(state, state.clock)
    self.history.setdefault(key, []).append(status)
    self._emit(key, state, status, force_status=False)
    return key

  def advance_watermark(self, watermark_ms: int) -> List[Key]:
    """The watermark passed ``watermark_ms``: forgets every key with nobody
    waiting whose clock + T is behind it; returns those keys."""
    forgotten = []
    for key, state in self._keys.items():
      if (
        not state.forgotten
        and not state.waiting
        and state.clock + self.tombstone_ttl_ms < watermark_ms
      ):
        state.gone.clear()
        state.forgotten = True
        forgotten.append(key)
    return forgotten

  def refresh(self, key: Key, now_ms: int) -> Optional[Status]:
    """A processing-time refresh of ``key`` at processing time ``now_ms``:
    the status row it emits, None if nothing waited (no row)."""
    state = self._keys.get(key)
    if state is None or not state.waiting:
      return None
    as_of = state.clock + max(0, now_ms - state.clock_advanced_at)
    self._expire(key, state, as_of)
    status = self._status(state, as_of)
    self._emit(key, state, status, force_status=True)
    if not state.waiting and not state.gone:
      state.forgotten = True
    return status

  # ---- reading -------------------------------------------------------------

  @property
  def keys(self) -> List[Key]:
    """Every key that saw a transition."""
    return sorted(self._keys)

  def clock(self, key: Key) -> Optional[int]:
    """The key's clock (None if it saw nothing)."""
    state = self._keys.get(key)
    return None if state is None else state.clock

  def status(self, key: Key) -> Status:
    """The key's status now (as of its clock)."""
    state = self._keys[key]
    return self._status(state, state.clock)

  def waiting_contacts(self, key: Key) -> Waiting:
    """The key's waiting-contacts row now (as of its clock)."""
    state = self._keys[key]
    return self._listed(state, state.clock)

  def statuses(self) -> Dict[Key, Status]:
    """Key -> its status now."""
    return {key: self.status(key) for key in self._keys}

  def all_waiting(self) -> Dict[Key, Waiting]:
    """Key -> its waiting-contacts row now."""
    return {key: self.waiting_contacts(key) for key in self._keys}

  def held(self, key: Key) -> Tuple[Dict[str, Tuple[int, int]], Dict[str, int]]:
    """What the key remembers: waiting contact -> (since, latest entry),
    and tombstones: contact -> exit time."""
    state = self._keys[key]
    return {c: (s, a) for c, (s, a) in state.waiting.items()}, dict(state.gone)

  def last_emitted_status(self) -> Dict[Key, Status]:
    """Key -> the last status row it emitted."""
    return {key: rows[-1] for key, rows in self.emitted_status.items() if rows}

  def last_emitted_waiting(self) -> Dict[Key, Waiting]:
    """Key -> the last waiting-contacts row it emitted."""
    return {key: rows[-1] for key, rows in self.emitted_waiting.items() if rows}

  # ---- rules ---------------------------------------------------------------

  def _expire(self, key: Key, state: _KeyState, as_of: int) -> None:
    limit = self.max_queue_wait_ms
    for contact, (since, _) in sorted(state.waiting.items(), key=lambda kv: (kv[1][0], kv[0])):
      if as_of - since > limit:
        del state.waiting[contact]
        self.lost_exits += 1
        self.lost.append(Lost(key[0], key[1], contact, since))
    for contact, at in list(state.gone.items()):
      if as_of - at > self.tombstone_ttl_ms:
        del state.gone[contact]

  def _ordered(self, state: _KeyState) -> List[Tuple[str, int]]:
    return sorted(((c, s) for c, (s, _) in state.waiting.items()), key=lambda cs: (cs[1], cs[0]))

  def _status(self, state: _KeyState, as_of: int) -> Status:
    if not state.waiting:
      return Status(0, None, 0.0, as_of)
    oldest = min(s for s, _ in state.waiting.values())
    return Status(len(state.waiting), oldest, (as_of - oldest) / 1000, as_of)

  def _listed(self, state: _KeyState, as_of: int) -> Waiting:
    ordered = self._ordered(state)
    return Waiting(tuple(ordered[: self.max_waiting_listed]), len(ordered), as_of)

  def _emit(self, key: Key, state: _KeyState, status: Status, force_status: bool) -> None:
    triple = (status.waiting, status.oldest_waiting_since, status.as_of)
    if force_status or triple != state.last_status:
      state.last_status = triple
      self.emitted_status.setdefault(key, []).append(status)
    listed = self._listed(state, status.as_of)
    pair = (listed.waiting, listed.contacts)
    if pair != state.last_listed:
      state.last_listed = pair
      self.emitted_waiting.setdefault(key, []).append(listed)


def reference_queue_status(
  transitions: Iterable[Any],
  max_queue_wait_ms: int,
  max_waiting_listed: int,
  tombstone_ttl_ms: Optional[int] = None,
) -> QueueStatusReference:
  """The reference after all ``transitions`` (arrival order), no refresh."""
  ref = QueueStatusReference(max_queue_wait_ms, max_waiting_listed, tombstone_ttl_ms)
  for transition in transitions:
    ref.apply(transition)
  return ref


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI: the final state per key of a JSON-lines file of transitions."""
  p = argparse.ArgumentParser(
    description='Reference (bare-Python) live queue state for a JSON-lines file.',
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  p.add_argument('path', help='JSON-lines queue transitions, file order = arrival order')
  p.add_argument('--max-queue-wait-s', type=float, default=3600)
  p.add_argument('--max-waiting-listed', type=int, default=20)
  args = p.parse_args(argv)
  with open(args.path, 'rb') as f:
    transitions = [json.loads(line) for line in f if line.strip()]
  ref = reference_queue_status(
    transitions, int(args.max_queue_wait_s * 1000), args.max_waiting_listed
  )
  json.dump(
    {
      'transitions': ref.transitions,
      'exits_without_entry': ref.exits_without_entry,
      'lost_exits': ref.lost_exits,
      'keys': [
        {
          'queue_id': q,
          'channel': ch,
          **ref.status((q, ch))._asdict(),
          'contacts': [
            {'contact_id': c, 'since': s} for c, s in ref.waiting_contacts((q, ch)).contacts
          ],
        }
        for q, ch in ref.keys
      ],
    },
    sys.stdout,
    indent=1,
  )
  print()
  return 0


if __name__ == '__main__':
  sys.exit(main())
