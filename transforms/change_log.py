"""Keyed state kept as a log of changes: a small head cell read at every
bundle, and a bag of change maps appended per bundle, with this DoFn
instance's decoded copy.

Why: a stateful step whose state key holds many entries (a shard's queues
and their windows, a busy queue's waiting contacts and exits) would
otherwise decode and re-encode all of them at every bundle, though a bundle
touches a few; on Flink every such write goes through the Fn API into
RocksDB. Here a bundle appends the entries it changed, `{entry: plain or
None}` (None: gone), and the head carries a random token: while this
instance's copy carries the head's token it is current and the bag is not
read (first bundle of a key here, after a restore, after another instance
or a failed bundle wrote the key: it is). The bag is compacted (rewritten
as one map of the live entries) when it stores twice as many changes as it
kept at its last compaction, and never below MIN_CHANGES_BEFORE_COMPACTION:
a constant number of writes per change, amortised, and a bag bounded by
twice the live entries.

Used by transforms/windowing.py (a shard's keys),
transforms/queue_status.py (a queue's contacts), transforms/span_counts.py
(the rolling and daily figures' keys) and transforms/dedupe.py (ids);
transforms/callback_patterns.py shares the instance copies.
"""

import os
from typing import Any, Callable, Dict, Generic, Iterable, NamedTuple, Optional, Tuple, TypeVar

MIN_CHANGES_BEFORE_COMPACTION = 1000

T = TypeVar('T')
# A bundle's changes: entry key -> its plain (JSON) form, None once gone.
Changes = Dict[str, Any]


class LogSize(NamedTuple):
  """What a head records of its bag: changes stored (superseded ones
  included) and entries kept by the last compaction."""

  stored: int = 0
  kept: int = 0


def new_token() -> bytes:
  """A head's token: random, so a restored or retried state never matches
  a copy made after it."""
  return os.urandom(8)


def merged(change_maps: Iterable[Changes]) -> Changes:
  """The live entries of a bag, in plain form: later maps win, None
  removes."""
  entries: Changes = {}
  for changes in change_maps:
    for key, plain in changes.items():
      if plain is None:
        entries.pop(key, None)
      else:
        entries[key] = plain
  return entries


class InstanceCopies(Generic[T]):
  """This DoFn instance's decoded state per state key, each valid while the
  head it was written with is current."""

  def __init__(self):
    self._copies: Dict[Any, Tuple[bytes, T]] = {}

  def take(self, state_key: Any, token: Optional[bytes]) -> Optional[T]:
    """The copy made with `token`, or None. Taken out while a bundle runs,
    so a bundle that fails half-way leaves no half-updated copy behind."""
    copy = self._copies.pop(state_key, None)
    if copy is not None and token is not None and copy[0] == token:
      return copy[1]
    return None

  def keep(self, state_key: Any, token: bytes, value: T) -> None:
    self._copies[state_key] = (token, value)

  def drop(self, state_key: Any) -> None:
    self._copies.pop(state_key, None)


def append(
  bag_state,
  changes: Changes,
  size: LogSize,
  live_entries: Callable[[], Changes],
  min_changes: int = MIN_CHANGES_BEFORE_COMPACTION,
) -> LogSize:
  """Appends a bundle's `changes` to the bag, or compacts it into
  `live_entries()` (every live entry in plain form); returns its new size."""
  stored = size.stored + len(changes)
  if stored >= 2 * max(size.kept, min_changes):
    entries = live_entries()
    bag_state.clear()
    if entries:
      bag_state.add(entries)
    return LogSize(len(entries), len(entries))
  if changes:
    bag_state.add(changes)
  return LogSize(stored, size.kept)
