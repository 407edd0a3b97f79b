"""Pieces shared by the seeded replay-file generators.

``testing/datagen/calls.py`` (call events) and ``testing/datagen/data_actions.py``
(CXone Data Actions) write files whose line order is arrival order, with the
same kinds of disorder layered on top: exact re-deliveries a few lines later
and a cycled list of malformed lines at random positions. The bookkeeping of
that disorder, the output plumbing and the common CLI options live here so
the two generators cannot drift apart.

Everything here draws from the ``random.Random`` instances it is given, in
the same order the generators always did, so the same seed still gives the
same bytes. Stdlib only, and nothing from the pipeline code, so the files can
be produced anywhere.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import datetime as _dt
import heapq
import json
import random
import sys
from typing import (
  IO,
  Any,
  Callable,
  Deque,
  Dict,
  Iterable,
  Iterator,
  List,
  Optional,
  Sequence,
  Tuple,
  TypeVar,
)

_T = TypeVar('_T')

# How many lines later a re-delivered line shows up again (inclusive).
_REDELIVERY_GAP = (1, 30)


# --------------------------------------------------------------------------
# Records and output
# --------------------------------------------------------------------------


def json_line(record: object) -> bytes:
  # Compact separators: smaller files, same JSON.
  return json.dumps(record, separators=(',', ':')).encode('utf-8')


def _write_lines(out: IO[bytes], lines: Iterable[bytes]) -> None:
  # Batch writes: one write() per line is a measurable share of the run.
  buf: List[bytes] = []
  for line in lines:
    buf.append(line)
    if len(buf) >= 4096:
      out.write(b'\n'.join(buf) + b'\n')
      buf.clear()
  if buf:
    out.write(b'\n'.join(buf) + b'\n')


def write_to(path: str, lines: Iterable[bytes]) -> None:
  """Write ``lines`` (bytes, no newline) to ``path``, ``"-"`` for stdout,
  one per line, in binary mode (a malformed kind is invalid UTF-8)."""
  if path == '-':
    _write_lines(sys.stdout.buffer, lines)
    sys.stdout.buffer.flush()
  else:
    with open(path, 'wb') as out:
      _write_lines(out, lines)


# --------------------------------------------------------------------------
# Validation and weighted draws
# --------------------------------------------------------------------------


def check_shares(*named_shares: Tuple[str, float]) -> None:
  """Raise ``ValueError`` naming the first ``(name, share)`` outside
  [0, 1]."""
  for name, share in named_shares:
    if not 0.0 <= share <= 1.0:
      raise ValueError(f'{name} must be in [0, 1]')


def reset_counts(stats: Optional[Dict[str, int]], keys: Iterable[str]) -> Dict[str, int]:
  """Return ``stats`` (a new dict if None) with every key in ``keys`` at 0:
  the caller's dict is filled in place so it sees the counts of a lazy run."""
  counts = stats if stats is not None else {}
  for key in keys:
    counts[key] = 0
  return counts


def cumulative_weights(weights: Iterable[float]) -> List[float]:
  acc = 0.0
  out = []
  for w in weights:
    acc += w
    out.append(acc)
  return out


def pick_index(rng: random.Random, cum: List[float]) -> int:
  """The index of a draw weighted by the cumulative weights ``cum``."""
  # min(): guards against rounding putting the draw past the last bound.
  return min(bisect.bisect_left(cum, rng.random() * cum[-1]), len(cum) - 1)


def pick_weighted(rng: random.Random, values: Sequence[_T], cum: List[float]) -> _T:
  return values[pick_index(rng, cum)]


class Coverage:
  """Makes ``n_draws`` weighted draws of ``n_values`` values show every value.

  Skewed weights leave the tail out: the call generator's queue volumes
  shrink by 0.8 per cycle of eight queues, so 1,000 queues over 20,000
  calls showed about 244 of them and 20,000 queues about 384; Zipf-like
  customer activity shows about 244,000 of 1,000,000 customers in as many
  interactions. A benchmark asking for N keys must get N keys, so with at
  least as many draws as values every value comes up at least once:

  * value ``j`` (in the weights' order, heaviest first) is due at draw
    ``(j + 1) * n_draws // n_values - 1``: unless it came up before, that
    draw is it instead of what the weights picked. First appearances
    thus spread over the whole stream, as keys show up in a real one, and a
    skew the draws already cover (eight queues over hundreds of calls) is
    left byte for byte as it was;
  * draws the caller makes without ``take`` (the Data Actions generator's
    retries, of customers already seen) can delay a due value: once no more
    draws are left than values unseen (``reserved`` counts the positions
    such draws may still take), every draw is an unseen value.

  With fewer draws than values nothing is changed: the weights decide.
  """

  def __init__(self, n_draws: int, n_values: int) -> None:
    self._n_draws = n_draws
    self._n_values = n_values
    self._seen = bytearray(n_values)
    # Nothing to do with fewer draws than values, or once all are seen.
    self._unseen = n_values if n_draws >= n_values else 0
    self._next_due = 0  # values below it are due
    self._overdue: Deque[int] = collections.deque()
    self._scan = 0  # where to look for an unseen value that is not due yet

  def take(self, position: int, drawn: int, reserved: int = 0) -> Tuple[int, bool]:
    """The value of draw ``position`` (0-based, of ``n_draws``) whose
    weighted pick was ``drawn``, and whether the coverage chose it (even if
    the weights happened to pick the same)."""
    if not self._unseen:
      return drawn, False
    n, m = self._n_draws, self._n_values
    while self._next_due < m and (self._next_due + 1) * n // m - 1 <= position:
      if not self._seen[self._next_due]:
        self._overdue.append(self._next_due)
      self._next_due += 1
    while self._overdue and self._seen[self._overdue[0]]:
      self._overdue.popleft()
    value, chosen = drawn, True
    if self._overdue:
      value = self._overdue.popleft()
    elif self._unseen >= n - position - reserved:
      # Every value below _next_due is seen (the overdue ones are).
      self._scan = max(self._scan, self._next_due)
      while self._seen[self._scan]:
        self._scan += 1
      value = self._scan
    else:
      chosen = False
    if not self._seen[value]:
      self._seen[value] = 1
      self._unseen -= 1
    return value, chosen


# --------------------------------------------------------------------------
# Arrival-order emission with re-deliveries and malformed lines
# --------------------------------------------------------------------------


def plan_malformed(
  rng: random.Random,
  kinds: Sequence[str],
  oversized_kind: str,
  oversized: bool,
  malformed: Optional[int],
  slots: int,
) -> Dict[int, List[str]]:
  """Where the malformed lines go: ``{base line index: [kind, ...]}``.

  In: the generator's malformed-line ``rng``, its ``kinds`` (cycled),
  whether ``oversized_kind`` joins them, the requested number
  (``None``: one of each kind) and the number of base lines ``slots``
  (index ``slots`` means after the last one).
  """
  kinds = list(kinds) + ([oversized_kind] if oversized else [])
  n_bad = len(kinds) if malformed is None else malformed
  if n_bad < 0:
    raise ValueError('malformed must be >= 0')
  positions: Dict[int, List[str]] = {}
  for j in range(n_bad):
    positions.setdefault(rng.randint(0, slots), []).append(kinds[j % len(kinds)])
  return positions


class ArrivalStream:
  """Emits the records of a replay file in arrival order, with the planned
  malformed lines and the re-deliveries woven in.

  ``push`` schedules a record by arrival time; ``drain(limit)`` yields the
  lines of everything arriving at or before ``limit`` (the caller knows
  when nothing generated later can arrive earlier); ``flush`` yields what
  was scheduled past the last record. ``make_malformed(kind, record)``
  builds one malformed line shaped like ``record`` (the record about to be
  emitted, or ``flush``'s fallback); ``on_emit(record)`` is called after
  each record so the generator can remember neighbours. ``counts`` gets
  ``lines``, ``malformed`` and ``duplicates`` incremented.
  """

  def __init__(
    self,
    bad_positions: Dict[int, List[str]],
    rng_dup: random.Random,
    counts: Dict[str, int],
    make_malformed: Callable[[str, Any], bytes],
    on_emit: Optional[Callable[[Any], None]] = None,
  ) -> None:
    self.bad_positions = bad_positions
    self.rng_dup = rng_dup
    self.counts = counts
    self.make_malformed = make_malformed
    self.on_emit = on_emit
    # (arrival_ms, seq, line, dupable, record); seq keeps generation
    # order on equal arrival times.
    self.heap: List[Tuple[float, int, bytes, bool, Any]] = []
    self._seq = 0
    # Re-deliveries keyed by the base-line index after which they go.
    self.pending_dups: Dict[int, List[bytes]] = {}
    self.emitted = 0  # base records emitted (not duplicates/malformed)

  def push(self, arrival: float, line: bytes, dupable: bool, record: Any) -> None:
    """Schedule ``line`` (of ``record``) to arrive at ``arrival`` ms;
    ``dupable`` lines are re-delivered once, 1-30 lines later."""
    heapq.heappush(self.heap, (arrival, self._seq, line, dupable, record))
    self._seq += 1

  def emit(self, line: bytes, dupable: bool, record: Any) -> Iterator[bytes]:
    """Emit one base line plus whatever is scheduled around it."""
    counts = self.counts
    for kind in self.bad_positions.pop(self.emitted, ()):
      counts['malformed'] += 1
      counts['lines'] += 1
      yield self.make_malformed(kind, record)
    counts['lines'] += 1
    yield line
    if dupable:
      # Exact same bytes again a few lines later: at-least-once
      # redelivery after a producer retry or a consumer rebalance.
      self.pending_dups.setdefault(
        self.emitted + self.rng_dup.randint(*_REDELIVERY_GAP), []
      ).append(line)
    for dup in self.pending_dups.pop(self.emitted, ()):
      counts['duplicates'] += 1
      counts['lines'] += 1
      yield dup
    self.emitted += 1
    if self.on_emit is not None:
      self.on_emit(record)

  def drain(self, limit_ms: float) -> Iterator[bytes]:
    """Emit everything arriving at or before ``limit_ms``."""
    heap = self.heap
    while heap and heap[0][0] <= limit_ms:
      _, _, line, dupable, record = heapq.heappop(heap)
      yield from self.emit(line, dupable, record)

  def flush(self, fallback: Any) -> Iterator[bytes]:
    """After the last drain: re-deliveries scheduled past the last line,
    then the trailing malformed lines (shaped like ``fallback``)."""
    counts = self.counts
    for key in sorted(self.pending_dups):
      for dup in self.pending_dups[key]:
        counts['duplicates'] += 1
        counts['lines'] += 1
        yield dup
    self.pending_dups.clear()
    for key in sorted(self.bad_positions):
      for kind in self.bad_positions[key]:
        counts['malformed'] += 1
        counts['lines'] += 1
        yield self.make_malformed(kind, fallback)
    self.bad_positions.clear()


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def parse_start(value: str) -> int:
  """Epoch ms, or an ISO-8601 time such as 2026-11-02T08:00:00Z."""
  if value.lstrip('-').isdigit():
    return int(value)
  parsed = _dt.datetime.fromisoformat(value.replace('Z', '+00:00'))
  if parsed.tzinfo is None:
    parsed = parsed.replace(tzinfo=_dt.timezone.utc)
  return int(parsed.timestamp() * 1000)


def parse_share(value: str) -> float:
  share = float(value)
  if not 0.0 <= share <= 1.0:
    raise argparse.ArgumentTypeError('a share must be in [0, 1]')
  return share


def generator_arg_parser(
  description: str, count_flag: str, count_default: int, count_help: str
) -> argparse.ArgumentParser:
  """A generator CLI's parser with ``--out``, the record-count option
  ``count_flag`` and ``--seed``, in that order (as in ``--help``)."""
  p = argparse.ArgumentParser(
    description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
  )
  p.add_argument('--out', required=True, help="output file ('-' for stdout)")
  p.add_argument(count_flag, type=int, default=count_default, help=count_help)
  p.add_argument('--seed', type=int, default=1, help='random seed')
  return p


def add_start_argument(p: argparse.ArgumentParser, default_ms: int, first: str) -> None:
  """Add ``--start-ms``: the event time of the ``first`` record."""
  p.add_argument(
    '--start-ms',
    type=parse_start,
    default=default_ms,
    help=f'event time of the first {first}: epoch ms or ISO-8601 such as 2026-11-02T08:00:00Z',
  )


def add_malformed_arguments(p: argparse.ArgumentParser, n_kinds: int) -> None:
  """Add ``--malformed`` (default None: one of each of the ``n_kinds``
  kinds) and ``--oversized``."""
  p.add_argument(
    '--malformed',
    type=int,
    default=None,
    help='number of malformed lines, cycling through the kinds '
    f'(default: one of each, {n_kinds}, +1 with --oversized)',
  )
  p.add_argument(
    '--oversized', action='store_true', help='include a > 1 MiB line among the malformed kinds'
  )


def run_generator_cli(
  parser: argparse.ArgumentParser,
  count_dest: str,
  write: Callable[..., Dict[str, int]],
  argv: Optional[Sequence[str]],
) -> int:
  """Parse ``argv``, call ``write(out, n, seed, **other_options)`` (every
  other option is a keyword of the generator) and print the counts (JSON)
  to stderr."""
  options = vars(parser.parse_args(argv)).copy()
  out = options.pop('out')
  n = options.pop(count_dest)
  seed = options.pop('seed')
  counts = write(out, n, seed, **options)
  print(json.dumps({'out': out, **counts}), file=sys.stderr)
  return 0
