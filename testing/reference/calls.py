#!/usr/bin/env python3
"""Independent reference for the call-metrics pipeline's FINAL rows.

Given a JSON-lines file of call events (file order = arrival order), compute
in plain Python, with dicts, what the streaming pipeline must end up with
after replaying that file in polls of ``poll_size`` lines:

* rows keyed by ``(queue_id, window_start_ms)`` with the separate numerators
  and denominator (total, abandoned, short abandons, answered within the
  service level, total wait);
* the call_uuids routed to the late output;
* counts of dead letters, duplicates and other event types.

It deliberately shares no code with ``pipelines/`` or ``transforms/``: it is
the oracle the pipeline is checked against, and the "bare Python" baseline of
the throughput benchmark (a tight json.loads + dict loop). Its delivery model
(``iter_polls``, ``watermark_before_poll``, ``KeyedLateGate``,
``timestamp_ms``, ``load_json_object``, ``record_delivery``) and its CLI
pieces (``add_delivery_arguments``, ``Timing``) are shared with
``testing/reference/interactions.py``.

Semantics (the pipeline's contract, docs/design.md and docs/bad_input.md):

* Validity: line <= 1 MiB (after a UTF-8 byte-order mark, which is
  ignored), UTF-8, strict JSON (no NaN/Infinity, no number beyond a double
  or integer of more than 20 digits, no lone surrogate escape, at most 32
  nested levels), an object with ``call_uuid``/``event_type``/``queue_id``
  valid texts (str, not blank, at most 256 characters, no control
  character), int ``timestamp`` (an integral float is accepted, bool is
  not) in [2000-01-01, 2100-01-01) and at most 300 s ahead of the clock,
  bool ``abandoned``, int/float ``wait_time_seconds`` in [0, 86400] (not
  bool), ``agent_id`` a valid text, blank, null or missing. Anything else is a dead
  letter.
* Watermark before poll p: max timestamp of valid events (any type) in polls
  < p, minus the out-of-orderness bound; -inf before the first poll.
* Only CALL_ENDED enters metrics; the first arrival of a call_uuid wins.
* Fixed windows; an event whose window end + allowed lateness <= watermark
  is LATE iff its key (queue and channel) has a clock: some accepted event
  of that key in an earlier poll has a window end <= watermark (the
  pipeline only learns the watermark through event-time timers, so a key
  it has never seen cannot judge lateness). A key keeps its clock however
  long it is silent (docs/design.md, "When an event is late").
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from itertools import chain, islice
from typing import (
  Any,
  Callable,
  Dict,
  Hashable,
  Iterable,
  Iterator,
  List,
  Optional,
  Sequence,
  Set,
  Tuple,
  TypeVar,
)

MAX_LINE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_INT_DIGITS = 20
MAX_TEXT_CHARS = 256
MAX_WAIT_S = 86400
MAX_FUTURE_SKEW_MS = 300_000
_BOM = b'\xef\xbb\xbf'
_CONTROL = re.compile('[\x00-\x1f\x7f-\x9f\u2028\u2029]')
MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z (inclusive)
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z (exclusive)
_FOUR_PLACES = Decimal('0.0001')

RowKey = Tuple[str, int]
_T = TypeVar('_T')


@dataclass
class ReferenceResult:
  """What the pipeline must produce for one input file.

  ``rows`` maps ``(queue_id, window_start_ms)`` to a dict with
  ``total_calls``, ``abandoned_calls``, ``short_abandoned_calls``,
  ``answered_within_sl``, ``total_wait_seconds``, ``window_end_ms``.
  ``late`` holds the call_uuids routed to the late output.
  ``valid_events`` counts first arrivals of CALL_ENDED events, so
  ``valid_events == sum(total_calls) + len(late)``.
  ``late_pane_events`` counts accepted events whose window end the
  watermark had already passed (they update a fired window);
  ``lines``/``polls`` describe the delivery; ``final_watermark_ms`` is the
  watermark after the last poll (None if no valid event).
  """

  rows: Dict[RowKey, dict] = field(default_factory=dict)
  late: Set[str] = field(default_factory=set)
  dead_letter_count: int = 0
  duplicates: int = 0
  other_event_types: int = 0
  valid_events: int = 0
  late_pane_events: int = 0
  lines: int = 0
  polls: int = 0
  final_watermark_ms: Optional[int] = None

  def total_calls(self) -> int:
    """Sum of ``total_calls`` over all rows."""
    return sum(r['total_calls'] for r in self.rows.values())


def _ratio(num: int, den: int) -> Decimal:
  if not den:
    return Decimal('0.0000')
  return (Decimal(num) / Decimal(den)).quantize(_FOUR_PLACES, rounding=ROUND_HALF_UP)


def abandon_rate(row: dict) -> Decimal:
  """abandoned_calls / total_calls as a Decimal with 4 places (HALF_UP);
  0 when the row has no calls."""
  return _ratio(row['abandoned_calls'], row['total_calls'])


def service_level(row: dict) -> Decimal:
  """answered_within_sl / total_calls as a Decimal with 4 places (HALF_UP);
  0 when the row has no calls."""
  return _ratio(row['answered_within_sl'], row['total_calls'])


# The abandon_metrics columns the tests and benchmarks compare, in the order
# of `comparable_rows`' values.
ROW_COLUMNS = (
  'total_calls',
  'abandoned_calls',
  'short_abandoned_calls',
  'answered_within_sl',
  'total_wait_seconds',
  'window_end',
  'abandon_rate',
  'service_level',
)


def comparable_rows(result: ReferenceResult) -> Dict[Tuple[str, int], list]:
  """(queue_id, window_start) -> the ROW_COLUMNS values of the reference's
  final rows, typed as the job's stores return them."""
  return {
    key: [
      r['total_calls'],
      r['abandoned_calls'],
      r['short_abandoned_calls'],
      r['answered_within_sl'],
      float(r['total_wait_seconds']),
      r['window_end_ms'],
      float(abandon_rate(r)),
      float(service_level(r)),
    ]
    for key, r in result.rows.items()
  }


# --------------------------------------------------------------------------
# Shared pieces of the delivery model (also used by reference_interactions)
# --------------------------------------------------------------------------


def latest_valid_ts_ms() -> int:
  """The latest event time accepted now: the clock plus the future skew."""
  return int(time.time() * 1000) + MAX_FUTURE_SKEW_MS


def timestamp_ms(value: object, latest_ms: int) -> Optional[int]:
  """In: a decoded JSON ``timestamp`` value and the latest acceptable
  event time. Out: it as an int epoch-ms if it is a valid event time, else
  None.

  Valid: an int (bool is not) or an integral float, in
  [MIN_TS_MS, MAX_TS_MS) and at most ``latest_ms``. Floats are accepted
  because some producers serialise every number as a double.
  """
  if type(value) is float and value.is_integer():
    value = int(value)
  if type(value) is int and MIN_TS_MS <= value < MAX_TS_MS and value <= latest_ms:
    return value
  return None


def valid_text(value: object) -> bool:
  """An id or key field: a str, not blank, at most MAX_TEXT_CHARS
  characters, without control characters."""
  return (
    type(value) is str
    and len(value) <= MAX_TEXT_CHARS
    and bool(value.strip())
    and not _CONTROL.search(value)
  )


def valid_optional_text(value: object) -> bool:
  """An optional id field: null, a blank str (read as none), or a valid
  text."""
  return value is None or (type(value) is str and (not value.strip() or valid_text(value)))


def _not_json(text: str):
  raise ValueError(f'{text} is not JSON')


def _int(text: str) -> int:
  if len(text.lstrip('-')) > MAX_INT_DIGITS:
    raise ValueError('integer too long')
  return int(text)


def _float(text: str) -> float:
  value = float(text)
  if not math.isfinite(value):
    raise ValueError('number beyond a double')
  return value


def _depth(value: object) -> int:
  if type(value) is dict:
    return 1 + max(map(_depth, value.values()), default=0)
  if type(value) is list:
    return 1 + max(map(_depth, value), default=0)
  return 0


def load_json_object(raw: bytes) -> Optional[dict]:
  """In: one line (bytes, no newline). Out: the decoded JSON object, or
  None if the line is over ``MAX_LINE_BYTES``, not UTF-8, not strict JSON,
  nested too deep, holds a lone surrogate or is not an object: the checks
  every record kind starts with."""
  if raw[:3] == _BOM:
    raw = raw[3:]
  if len(raw) > MAX_LINE_BYTES:
    return None
  try:
    obj = json.loads(
      raw.decode('utf-8'), parse_constant=_not_json, parse_int=_int, parse_float=_float
    )
    if type(obj) is not dict or _depth(obj) > MAX_DEPTH:
      return None
    if b'\\u' in raw:
      json.dumps(obj, ensure_ascii=False).encode('utf-8')
  except (UnicodeError, ValueError, RecursionError):
    return None
  return obj


def iter_polls(lines: Iterable[bytes], poll_size: int) -> Iterator[Iterator[bytes]]:
  """In: the lines of a file (file order = arrival order) and the number of
  lines per poll. Out: one iterator per poll over its lines (unchanged,
  newline included).

  Lazy, so a huge ``poll_size`` does not load the file; like
  ``itertools.groupby``, each poll must be consumed before the next one.
  """
  if poll_size < 1:
    raise ValueError('poll_size must be >= 1')
  it = iter(lines)
  for first in it:
    yield chain((first,), islice(it, poll_size - 1))


def watermark_before_poll(max_ts: Optional[int], max_out_of_orderness_ms: int) -> float:
  """W_p: the watermark while poll p is processed, from ``max_ts``, the
  max timestamp of the valid records of polls < p (None if there was none:
  -inf). The source emits it once per poll, so it never moves inside one.
  """
  return -math.inf if max_ts is None else max_ts - max_out_of_orderness_ms


class KeyedLateGate:
  """The pipeline's late gate for fixed event-time windows per key.

  ``start_poll(W_p)`` at every poll boundary, then ``admit(key, ts)`` for
  each event of the poll in arrival order.

  A window expires when the watermark reaches its end + allowed lateness.
  An event of an expired window is LATE iff its key has a clock: among the
  key's accepted events of EARLIER polls, the minimum window end is <= the
  watermark. The pipeline only learns the watermark through event-time
  timers, so a key it has never seen (or whose timers cannot have fired
  yet) cannot judge lateness; a key with a clock keeps it however long it
  is silent.
  """

  __slots__ = (
    'window_ms',
    'lateness_ms',
    'watermark',
    'late_pane_events',
    '_clock_min_end',
    '_poll_min_end',
  )

  def __init__(self, window_ms: int, allowed_lateness_ms: int) -> None:
    if window_ms <= 0:
      raise ValueError('window size must be > 0')
    self.window_ms = window_ms
    self.lateness_ms = allowed_lateness_ms
    self.watermark = -math.inf
    # Accepted events that arrived behind the watermark's window end:
    # they update an already fired window (a late pane).
    self.late_pane_events = 0
    # Per-key minimum window end of accepted events: committed (earlier
    # polls, what the gate may use) and pending (the current poll).
    self._clock_min_end: Dict[Hashable, int] = {}
    self._poll_min_end: Dict[Hashable, int] = {}

  def start_poll(self, watermark: float) -> None:
    """Enter a new poll whose watermark is ``watermark``; the previous
    poll's accepted events now count for the keys' clocks."""
    self.watermark = watermark
    if self._poll_min_end:
      clock = self._clock_min_end
      for key, end in self._poll_min_end.items():
        if end < clock.get(key, math.inf):
          clock[key] = end
      self._poll_min_end = {}

  def admit(self, key: Hashable, ts: int) -> Optional[int]:
    """In: the event's key and timestamp (ms). Out: the start (ms) of its
    window if accepted, None if it is routed late."""
    window_ms = self.window_ms
    start = ts - ts % window_ms
    end = start + window_ms
    watermark = self.watermark
    if end <= watermark:
      if (
        end + self.lateness_ms <= watermark and self._clock_min_end.get(key, math.inf) <= watermark
      ):
        return None
      self.late_pane_events += 1
    pending = self._poll_min_end
    if end < pending.get(key, math.inf):
      pending[key] = end
    return start


def record_delivery(
  res: Any,
  gate: KeyedLateGate,
  lines: int,
  polls: int,
  max_ts: Optional[int],
  max_out_of_orderness_ms: int,
) -> None:
  """Fill the delivery fields both references' results share:
  ``late_pane_events`` (from ``gate``), ``lines``, ``polls`` and
  ``final_watermark_ms`` (the watermark after the last poll, None if no
  record was valid)."""
  res.late_pane_events = gate.late_pane_events
  res.lines = lines
  res.polls = polls
  res.final_watermark_ms = None if max_ts is None else max_ts - max_out_of_orderness_ms


# --------------------------------------------------------------------------
# Shared pieces of the reference CLIs
# --------------------------------------------------------------------------


def add_delivery_arguments(
  p: argparse.ArgumentParser, window_flag: str, window_default: int
) -> None:
  """Add the window size option ``window_flag``, ``--allowed-lateness-s``,
  ``--max-out-of-orderness-s`` and ``--poll-size`` (pipeline defaults)."""
  p.add_argument(window_flag, type=int, default=window_default)
  p.add_argument('--allowed-lateness-s', type=int, default=60)
  p.add_argument('--max-out-of-orderness-s', type=int, default=10)
  p.add_argument(
    '--poll-size', type=int, default=500, help='lines per poll (the watermark moves between polls)'
  )


class Timing:
  """Wall and CPU time of one reference computation, and the rates the
  CLIs report (CPU time too: wall time is noisy on a shared box)."""

  def __init__(self, elapsed: float, cpu: float) -> None:
    self.elapsed = elapsed
    self.cpu = cpu

  @staticmethod
  def run(compute: Callable[[], _T]) -> Tuple[_T, 'Timing']:
    """Call ``compute()``; return its result and how long it took."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    result = compute()
    return result, Timing(time.perf_counter() - t0, time.process_time() - c0)

  def rate(self, lines: int) -> float:
    """Input lines per wall-clock second."""
    return lines / self.elapsed if self.elapsed > 0 else float('inf')

  def json_fields(self, lines: int) -> dict:
    """The timing keys of the ``--json`` output."""
    return {
      'elapsed_s': round(self.elapsed, 3),
      'cpu_s': round(self.cpu, 3),
      'events_per_s': round(self.rate(lines)),
    }

  def summary_lines(self, lines: int, width: int) -> List[str]:
    """The timing lines of the text summary, labels padded to ``width``."""
    cpu_rate = lines / self.cpu if self.cpu > 0 else float('inf')
    return [
      f'{"elapsed":<{width}}{self.elapsed:.3f} s wall, {self.cpu:.3f} s CPU',
      f'{"events/s":<{width}}{self.rate(lines):,.0f} (input lines / wall time); '
      f'{cpu_rate:,.0f} per CPU second',
    ]


def parse_valid_event(raw: bytes) -> Optional[dict]:
  """Return the event dict if ``raw`` (one line, no newline) is a valid call
  event, else None. ``timestamp`` is normalised to int.

  The loop in ``reference_call_metrics`` inlines the same checks for
  speed; this function is the readable statement of the rule (and is
  tested against the inlined loop).
  """
  ev = load_json_object(raw)
  if ev is None:
    return None
  if not (
    valid_text(ev.get('call_uuid'))
    and valid_text(ev.get('event_type'))
    and valid_text(ev.get('queue_id'))
  ):
    return None
  ts = timestamp_ms(ev.get('timestamp'), latest_valid_ts_ms())
  if ts is None:
    return None
  if type(ev.get('abandoned')) is not bool:
    return None
  w = ev.get('wait_time_seconds')
  tw = type(w)
  if not (tw is int or tw is float) or not 0 <= w <= MAX_WAIT_S:
    return None
  if not valid_optional_text(ev.get('agent_id')):
    return None
  ev['timestamp'] = ts
  return ev


def reference_call_metrics(
  path: str,
  window_size_s: int = 300,
  allowed_lateness_s: int = 60,
  max_out_of_orderness_s: int = 10,
  poll_size: int = 500,
  short_abandon_threshold_s: float = 0,
  service_level_s: float = 20,
) -> ReferenceResult:
  """Compute the final rows the pipeline must produce for the file at
  ``path`` (JSON lines, file order = arrival order), delivered in polls of
  ``poll_size`` lines. Returns a ``ReferenceResult``.
  """
  if poll_size < 1:
    raise ValueError('poll_size must be >= 1')
  ooo_ms = int(max_out_of_orderness_s * 1000)
  gate = KeyedLateGate(int(window_size_s * 1000), int(allowed_lateness_s * 1000))
  admit = gate.admit

  res = ReferenceResult()
  rows = res.rows
  late = res.late
  seen: Set[str] = set()
  max_ts = None  # max timestamp of valid events so far (any type)
  dead = dups = others = 0

  load = load_json_object
  text = valid_text
  optional_text = valid_optional_text
  latest_ms = latest_valid_ts_ms()
  n = 0
  polls = 0
  with open(path, 'rb') as f:
    for poll in iter_polls(f, poll_size):
      # The watermark and the queues' clocks only move between polls,
      # as in a source that emits a watermark per poll.
      polls += 1
      gate.start_poll(watermark_before_poll(max_ts, ooo_ms))
      for raw in poll:
        n += 1
        if raw[-1:] == b'\n':
          raw = raw[:-1]

        # --- validity (inlined copy of parse_valid_event) ---
        ev = load(raw)
        if ev is None:
          dead += 1
          continue
        get = ev.get
        cu = get('call_uuid')
        et = get('event_type')
        q = get('queue_id')
        ts = get('timestamp')
        ab = get('abandoned')
        w = get('wait_time_seconds')
        a = get('agent_id')
        if type(ts) is float and ts.is_integer():
          ts = int(ts)
        tw = type(w)
        if (
          not text(cu)
          or not text(et)
          or not text(q)
          or type(ts) is not int
          or not MIN_TS_MS <= ts < MAX_TS_MS
          or ts > latest_ms
          or type(ab) is not bool
          or not (tw is int or tw is float)
          or not 0 <= w <= MAX_WAIT_S
          or not optional_text(a)
        ):
          dead += 1
          continue

        # Valid events of any type advance the watermark (next poll on).
        if max_ts is None or ts > max_ts:
          max_ts = ts
        if et != 'CALL_ENDED':
          others += 1
          continue
        if cu in seen:
          dups += 1
          continue
        seen.add(cu)

        # The pipeline keys its windows by channel and queue; the seed's
        # calls are voice.
        start = admit(f'voice|{q}', ts)
        if start is None:
          late.add(cu)
          continue
        row = rows.get((q, start))
        if row is None:
          row = rows[(q, start)] = {
            'total_calls': 0,
            'abandoned_calls': 0,
            'short_abandoned_calls': 0,
            'answered_within_sl': 0,
            'total_wait_seconds': 0,
            'window_end_ms': start + gate.window_ms,
          }
        row['total_calls'] += 1
        row['total_wait_seconds'] += w
        if ab:
          row['abandoned_calls'] += 1
          if w < short_abandon_threshold_s:
            row['short_abandoned_calls'] += 1
        elif w <= service_level_s:
          row['answered_within_sl'] += 1

  res.dead_letter_count = dead
  res.duplicates = dups
  res.other_event_types = others
  res.valid_events = len(seen)
  record_delivery(res, gate, n, polls, max_ts, ooo_ms)
  return res


def rows_as_records(result: ReferenceResult) -> list:
  """Rows as a sorted list of flat dicts (queue_id, window_start_ms, ...,
  abandon_rate and service_level as strings), e.g. for JSON output."""
  out = []
  for (q, start), row in sorted(result.rows.items()):
    rec = {
      'queue_id': q,
      'window_start_ms': start,
      **row,
      'abandon_rate': str(abandon_rate(row)),
      'service_level': str(service_level(row)),
    }
    out.append(rec)
  return out


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI: compute the reference for a file, print a summary (or JSON) and
  the events/s of the computation itself."""
  p = argparse.ArgumentParser(
    description='Reference (bare-Python) call metrics for a JSON-lines file.',
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  p.add_argument('path', help='JSON-lines call events, file order = arrival order')
  add_delivery_arguments(p, '--window-size-s', 300)
  p.add_argument('--short-abandon-threshold-s', type=float, default=0)
  p.add_argument('--service-level-s', type=float, default=20)
  p.add_argument(
    '--json', action='store_true', help='print rows and counts as JSON instead of a summary'
  )
  args = p.parse_args(argv)

  res, timing = Timing.run(
    lambda: reference_call_metrics(
      args.path,
      args.window_size_s,
      args.allowed_lateness_s,
      args.max_out_of_orderness_s,
      args.poll_size,
      args.short_abandon_threshold_s,
      args.service_level_s,
    )
  )

  if args.json:
    json.dump(
      {
        'lines': res.lines,
        'valid_events': res.valid_events,
        'duplicates': res.duplicates,
        'other_event_types': res.other_event_types,
        'dead_letter_count': res.dead_letter_count,
        'late_pane_events': res.late_pane_events,
        'late': sorted(res.late),
        'rows': rows_as_records(res),
        **timing.json_fields(res.lines),
      },
      sys.stdout,
      indent=1,
    )
    print()
    return 0

  total = res.total_calls()
  abandoned = sum(r['abandoned_calls'] for r in res.rows.values())
  within = sum(r['answered_within_sl'] for r in res.rows.values())
  queues = sorted({q for q, _ in res.rows})
  print(f'file               {args.path}')
  print(f'lines              {res.lines} in {res.polls} polls of {args.poll_size}')
  print(f'valid CALL_ENDED   {res.valid_events} (deduplicated)')
  print(f'duplicates         {res.duplicates}')
  print(f'other event types  {res.other_event_types}')
  print(f'dead letters       {res.dead_letter_count}')
  print(f'late (routed)      {len(res.late)}')
  print(f'late-pane updates  {res.late_pane_events} (accepted behind the watermark)')
  print(f'rows               {len(res.rows)} ({len(queues)} queues)')
  print(f'calls in rows      {total}  (+ late = {total + len(res.late)})')
  print(f'abandon rate       {_ratio(abandoned, total)}')
  print(f'service level      {_ratio(within, total)} (<= {args.service_level_s:g} s)')
  for line in timing.summary_lines(res.lines, 19):
    print(line)
  return 0


if __name__ == '__main__':
  sys.exit(main())
