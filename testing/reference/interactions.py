#!/usr/bin/env python3
"""Independent reference for the CXone Data Actions flow.

Given a JSON-lines file of the ``cxone-data-actions`` topic (file order =
arrival order), compute in plain Python what the streaming pipeline must
output after replaying it in polls of ``poll_size`` lines:

* interaction volumes per ``(channel, window_start_ms)`` (10 s windows) and
  the interactionIds the volume windows route late;
* pattern alerts ``(customer_id, channel, callback_timestamp_ms)`` for
  three consecutive failures followed by a callback request within 30 s,
  and the interactionIds too late for the pattern;
* counts of dead letters, duplicates, valid interactions, customer updates.

It shares no code with ``pipelines/`` or ``transforms/``; it reuses the
delivery model of ``testing/reference/calls.py`` (polls, watermark, per-key late
gate), which the call-metrics reference is checked with.

Semantics:

* Validity: a JSON object as ``testing/reference/calls.py`` decodes it
  (``load_json_object``), and either ``recordType == "customer_update"``
  with valid texts ``customerId``, ``tier``, ``region`` (``valid_text``) and
  a valid ``timestamp``, or no ``recordType`` (or null) with valid texts
  ``interactionId``, ``customerId``, ``channel``, ``status`` and a valid
  ``timestamp``. A valid timestamp is an int (bool is not; an integral
  float is) in [2000-01-01, 2100-01-01), at most 300 s ahead of the clock.
  Any other ``recordType`` and everything else is a dead letter.
* Watermark while poll p is processed: max timestamp of the valid records
  (interactions and customer updates, duplicates included) of polls < p,
  minus the out-of-orderness bound; -inf before the first poll.
* Interactions are deduplicated by ``interactionId`` (first arrival wins);
  customer updates are not deduplicated.
* Volumes: key = channel, fixed windows, allowed lateness, the per-key
  clock rule of ``testing/reference/calls.py`` (``KeyedLateGate``).
* Pattern, per customer: an interaction arriving in poll p is LATE iff an
  accepted interaction of the same customer's current sequence (see the
  state bound below) has been processed (from a poll < p, its tick <= W_p)
  and has a timestamp > the interaction's timestamp. Accepted interactions
  are ordered per customer sequence by (timestamp, arrival position); every
  index i where items i,
  i+1, i+2 are failures, item i+3 is a callback and ts[i+3] - ts[i] <
  within (Flink CEP ``times(3).consecutive().next().within()``, NO_SKIP;
  exactly ``within`` is pruned) gives the alert (customer, channel of item
  i+3, timestamp of item i+3).
* Pattern state bound, per customer: an accepted interaction is processed
  at the first whole ``pattern_tick_s`` of event time at or after its
  timestamp, once the watermark reaches it; the customer is then due at
  that tick for its earliest unprocessed interaction, else at the first
  whole tick at or after ``within`` past S, where S is the first of its
  pending failures (the trailing consecutive failures, at most three, of its
  processed interactions, less than ``within`` before its last processed
  one) or, with none pending, its last processed interaction. When the
  watermark reaches a due time D, its interactions up to D are processed;
  if none is left unprocessed and its new due time is <= D, the customer is
  FORGOTTEN: a later interaction of it is never late and starts a new
  sequence (no match spans two sequences), processed at its own tick
  (at the next poll when the watermark is already past it).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from testing.reference.calls import (
  KeyedLateGate,
  Timing,
  add_delivery_arguments,
  iter_polls,
  latest_valid_ts_ms,
  load_json_object,
  record_delivery,
  timestamp_ms,
  valid_text,
  watermark_before_poll,
)

CUSTOMER_UPDATE = 'customer_update'
INTERACTION = 'interaction'

VolumeKey = Tuple[str, int]  # (channel, window_start_ms)
Alert = Tuple[str, str, int]  # (customer_id, channel, callback_timestamp_ms)
# An accepted interaction for the pattern matcher:
# (customer, channel, status, timestamp_ms, arrival_index)
PatternEvent = Tuple[str, str, str, int, int]


@dataclass
class InteractionsReference:
  """What the pipeline must produce for one input file.

  ``volumes`` maps ``(channel, window_start_ms)`` to the number of
  interactions; ``late_volume_ids`` holds the interactionIds the volume
  windows route late, so ``valid_interactions == sum(volumes.values()) +
  len(late_volume_ids)``. ``alerts`` holds ``(customer_id, channel,
  callback_timestamp_ms)``; ``pattern_late_ids`` the interactionIds left
  out of the pattern as late. ``valid_interactions`` counts distinct
  interactions (first arrivals), ``duplicates`` the re-delivered ones,
  ``customer_updates`` the valid update lines. ``late_pane_events`` counts
  volume events accepted behind the watermark (late panes);
  ``lines``/``polls`` describe the delivery; ``final_watermark_ms`` is the
  watermark after the last poll (None without valid records).
  """

  volumes: Dict[VolumeKey, int] = field(default_factory=dict)
  late_volume_ids: Set[str] = field(default_factory=set)
  alerts: Set[Alert] = field(default_factory=set)
  pattern_late_ids: Set[str] = field(default_factory=set)
  dead_letter_count: int = 0
  duplicates: int = 0
  valid_interactions: int = 0
  customer_updates: int = 0
  late_pane_events: int = 0
  lines: int = 0
  polls: int = 0
  final_watermark_ms: Optional[int] = None


class _PatternCustomer:
  """One customer's sequence for the pattern, since it was last forgotten.

  ``pending``: accepted, not yet processed (timestamp, arrival, status);
  ``processed_through``: timestamp of the last processed; ``trailing``:
  timestamps of the trailing consecutive failures processed (at most
  three); ``items``: the sequence's accepted interactions (ts, arrival,
  status, channel); ``due``: when it next needs the watermark."""

  __slots__ = ('pending', 'processed_through', 'trailing', 'items', 'due')

  def __init__(self):
    self.pending: List[Tuple[int, int, str]] = []
    self.processed_through: Optional[int] = None
    self.trailing: List[int] = []
    self.items: List[Tuple[int, int, str, str]] = []
    self.due: Optional[int] = None


def _ceil_tick(ms: int, tick_ms: int) -> int:
  return -(-ms // tick_ms) * tick_ms


def _due_ms(c: _PatternCustomer, within_ms: int, tick_ms: int) -> int:
  """When ``c`` next needs the watermark (the rule in the module docstring)."""
  if c.pending:
    return _ceil_tick(min(c.pending)[0], tick_ms)
  pt = c.processed_through
  start = next((t for t in c.trailing if pt - t < within_ms), pt)
  return _ceil_tick(start + within_ms, tick_ms)


def parse_data_action(raw: bytes) -> Optional[Tuple[str, dict]]:
  """In: one line (bytes, no newline). Out: ``("interaction", record)`` or
  ``("customer_update", record)`` with ``timestamp`` normalised to int, or
  None for a dead letter (see the module docstring for the rule)."""
  rec = load_json_object(raw)
  if rec is None:
    return None
  ts = timestamp_ms(rec.get('timestamp'), latest_valid_ts_ms())
  if ts is None:
    return None
  get = rec.get
  record_type = get('recordType')
  if record_type is None:
    kind, required = INTERACTION, ('interactionId', 'customerId', 'channel', 'status')
  elif record_type == CUSTOMER_UPDATE:
    kind, required = CUSTOMER_UPDATE, ('customerId', 'tier', 'region')
  else:
    return None
  for name in required:
    if not valid_text(get(name)):
      return None
  rec['timestamp'] = ts
  return kind, rec


def _alerts_in_order(
  customer: str,
  items: List[Tuple[int, int, str, str]],
  failures: frozenset,
  callbacks: frozenset,
  within_ms: float,
  out: Set[Alert],
) -> None:
  """Add to ``out`` the matches of one customer's ``items`` = (ts,
  arrival_index, status, channel), already sorted by (ts, arrival)."""
  for i in range(len(items) - 3):
    a, b, c, d = items[i], items[i + 1], items[i + 2], items[i + 3]
    if (
      a[2] in failures
      and b[2] in failures
      and c[2] in failures
      and d[2] in callbacks
      and d[0] - a[0] < within_ms
    ):
      out.add((customer, d[3], d[0]))


def brute_force_alerts(
  events: Iterable[PatternEvent],
  failure_statuses: Sequence[str] = ('FAILED',),
  callback_statuses: Sequence[str] = ('CALLBACK_REQUESTED',),
  within_s: float = 30,
) -> Set[Alert]:
  """The pattern alerts of already accepted (non-late, deduplicated)
  interactions.

  In: ``events`` as ``(customer, channel, status, timestamp_ms,
  arrival_index)``. Out: the set of ``(customer, channel of the callback,
  callback timestamp_ms)`` for every run of three failures immediately
  followed by a callback, per customer in (timestamp, arrival_index)
  order, whose callback is less than ``within_s`` after the first failure.
  """
  by_customer: Dict[str, List[Tuple[int, int, str, str]]] = {}
  for customer, channel, status, ts, pos in events:
    by_customer.setdefault(customer, []).append((ts, pos, status, channel))
  alerts: Set[Alert] = set()
  failures, callbacks = frozenset(failure_statuses), frozenset(callback_statuses)
  for customer, items in by_customer.items():
    items.sort()
    _alerts_in_order(customer, items, failures, callbacks, within_s * 1000, alerts)
  return alerts


def reference_interactions(
  path: str,
  volume_window_s: int = 10,
  allowed_lateness_s: int = 60,
  max_out_of_orderness_s: int = 10,
  poll_size: int = 500,
  failure_statuses: Sequence[str] = ('FAILED',),
  callback_statuses: Sequence[str] = ('CALLBACK_REQUESTED',),
  within_s: float = 30,
  pattern_tick_s: float = 5,
) -> InteractionsReference:
  """Compute what the pipeline must output for the file at ``path`` (JSON
  lines, file order = arrival order) delivered in polls of ``poll_size``
  lines. Returns an ``InteractionsReference``."""
  ooo_ms = int(max_out_of_orderness_s * 1000)
  tick_ms = int(pattern_tick_s * 1000)
  gate = KeyedLateGate(int(volume_window_s * 1000), int(allowed_lateness_s * 1000))
  admit = gate.admit

  res = InteractionsReference()
  volumes = res.volumes
  late_volume = res.late_volume_ids
  pattern_late = res.pattern_late_ids
  seen: Set[str] = set()
  # Pattern state: the customers remembered, and when each is due as a
  # heap of (due_ms, customer), entries whose customer is no longer due
  # then skipped; ``sequences``: the forgotten customers' sequences.
  within_ms = int(within_s * 1000)
  customers: Dict[str, _PatternCustomer] = {}
  due: List[Tuple[int, str]] = []
  sequences: List[Tuple[str, List[Tuple[int, int, str, str]]]] = []
  failures, callbacks = frozenset(failure_statuses), frozenset(callback_statuses)

  def schedule(customer: str, c: _PatternCustomer) -> None:
    at = _due_ms(c, within_ms, tick_ms)
    if at != c.due:
      c.due = at
      heapq.heappush(due, (at, customer))

  def advance_watermark(watermark: float) -> None:
    while due and due[0][0] <= watermark:
      at, customer = heapq.heappop(due)
      c = customers.get(customer)
      if c is None or c.due != at:
        continue
      c.pending.sort()
      k = 0
      while k < len(c.pending) and c.pending[k][0] <= at:
        ts, _, status = c.pending[k]
        k += 1
        c.processed_through = ts
        if status in failures:
          c.trailing = (c.trailing + [ts])[-3:]
        else:
          c.trailing = []
      del c.pending[:k]
      if not c.pending and _due_ms(c, within_ms, tick_ms) <= at:
        sequences.append((customer, c.items))
        del customers[customer]
      else:
        schedule(customer, c)

  intern = sys.intern  # a few channel/status strings, a million references

  max_ts: Optional[int] = None
  dead = dups = updates = 0
  n = polls = 0
  with open(path, 'rb') as f:
    for poll in iter_polls(f, poll_size):
      polls += 1
      watermark = watermark_before_poll(max_ts, ooo_ms)
      gate.start_poll(watermark)
      # Due times up to the poll's watermark, before the poll's own
      # interactions arrive (the pipeline's timers fire between polls).
      advance_watermark(watermark)

      for raw in poll:
        pos = n
        n += 1
        if raw[-1:] == b'\n':
          raw = raw[:-1]
        parsed = parse_data_action(raw)
        if parsed is None:
          dead += 1
          continue
        kind, rec = parsed
        ts = rec['timestamp']
        # Every valid record, duplicates included, moves the
        # watermark (from the next poll on).
        if max_ts is None or ts > max_ts:
          max_ts = ts
        if kind == CUSTOMER_UPDATE:
          updates += 1
          continue
        iid = rec['interactionId']
        if iid in seen:
          dups += 1
          continue
        seen.add(iid)
        channel = intern(rec['channel'])
        customer = rec['customerId']

        start = admit(channel, ts)
        if start is None:
          late_volume.add(iid)
        else:
          key = (channel, start)
          volumes[key] = volumes.get(key, 0) + 1

        c = customers.get(customer)
        if c is None:
          c = customers[customer] = _PatternCustomer()
        elif c.processed_through is not None and ts < c.processed_through:
          pattern_late.add(iid)
          continue
        status = intern(rec['status'])
        c.pending.append((ts, pos, status))
        c.items.append((ts, pos, status, channel))
        tick = -(-ts // tick_ms) * tick_ms
        if c.due is None or tick < c.due:
          c.due = tick
          heapq.heappush(due, (tick, customer))

  alerts = res.alerts
  sequences.extend((customer, c.items) for customer, c in customers.items())
  for customer, items in sequences:
    if len(items) > 3:
      items.sort()
      _alerts_in_order(customer, items, failures, callbacks, within_ms, alerts)

  res.dead_letter_count = dead
  res.duplicates = dups
  res.valid_interactions = len(seen)
  res.customer_updates = updates
  record_delivery(res, gate, n, polls, max_ts, ooo_ms)
  return res


def as_json(res: InteractionsReference) -> dict:
  """The result as JSON-ready data: volumes as sorted records, ids and
  alerts as sorted lists, counts as ints."""
  return {
    'lines': res.lines,
    'polls': res.polls,
    'valid_interactions': res.valid_interactions,
    'customer_updates': res.customer_updates,
    'duplicates': res.duplicates,
    'dead_letter_count': res.dead_letter_count,
    'late_pane_events': res.late_pane_events,
    'final_watermark_ms': res.final_watermark_ms,
    'volumes': [
      {'channel': c, 'window_start_ms': s, 'count': v} for (c, s), v in sorted(res.volumes.items())
    ],
    'late_volume_ids': sorted(res.late_volume_ids),
    'alerts': [
      {'customer_id': cu, 'channel': ch, 'timestamp': ts} for cu, ch, ts in sorted(res.alerts)
    ],
    'pattern_late_ids': sorted(res.pattern_late_ids),
  }


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI: compute the reference for a file, print a summary (or JSON) and
  the events/s of the computation itself."""
  p = argparse.ArgumentParser(
    description='Reference (bare-Python) volumes and pattern alerts for a '
    'cxone-data-actions JSON-lines file.',
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  p.add_argument('path', help='JSON-lines records, file order = arrival order')
  add_delivery_arguments(p, '--volume-window-s', 10)
  p.add_argument(
    '--failure-status',
    action='append',
    default=None,
    help='status counted as a failure (repeatable; default FAILED)',
  )
  p.add_argument(
    '--callback-status',
    action='append',
    default=None,
    help='status counted as a callback request (repeatable; default CALLBACK_REQUESTED)',
  )
  p.add_argument('--within-s', type=float, default=30)
  p.add_argument(
    '--json', action='store_true', help='print everything as JSON instead of a summary'
  )
  args = p.parse_args(argv)

  res, timing = Timing.run(
    lambda: reference_interactions(
      args.path,
      args.volume_window_s,
      args.allowed_lateness_s,
      args.max_out_of_orderness_s,
      args.poll_size,
      tuple(args.failure_status or ('FAILED',)),
      tuple(args.callback_status or ('CALLBACK_REQUESTED',)),
      args.within_s,
    )
  )

  if args.json:
    json.dump({**as_json(res), **timing.json_fields(res.lines)}, sys.stdout, indent=1)
    print()
    return 0

  channels = sorted({c for c, _ in res.volumes})
  print(f'file                 {args.path}')
  print(f'lines                {res.lines} in {res.polls} polls of {args.poll_size}')
  print(f'valid interactions   {res.valid_interactions} (deduplicated)')
  print(f'customer updates     {res.customer_updates}')
  print(f'duplicates           {res.duplicates}')
  print(f'dead letters         {res.dead_letter_count}')
  print(
    f'volume rows          {len(res.volumes)} ({len(channels)} channels: {", ".join(channels)})'
  )
  print(
    f'in volumes           {sum(res.volumes.values())} '
    f'(+ late {len(res.late_volume_ids)} = '
    f'{sum(res.volumes.values()) + len(res.late_volume_ids)})'
  )
  print(f'late-pane updates    {res.late_pane_events}')
  print(f'pattern late         {len(res.pattern_late_ids)}')
  print(f'alerts               {len(res.alerts)} ({len({a[0] for a in res.alerts})} customers)')
  for line in timing.summary_lines(res.lines, 21):
    print(line)
  return 0


if __name__ == '__main__':
  sys.exit(main())
