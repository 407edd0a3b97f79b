"""What the rolling and daily figures share (transforms/rolling_metrics.py,
transforms/daily_metrics.py): one window's counts as kept in state, the
rule of which pane of a window counts, the columns of a span summed
from its windows, and their state: per shard of (queue_id, channel), a
head and a log of its keys' changes (SpanShard, SpanShardLog).

A window's latest pane (highest `pane_index`) replaces its earlier ones:
AbandonRate's panes accumulate (transforms/windowing.py), so the latest
counts every call of the window. A pane whose index is not above the one
kept (an older pane overtaken in transit, or a re-delivered copy) changes
nothing.

A span's counts are the sums of its windows' counts; its rates are
recomputed from those sums by the named definitions
(transforms/metric_definitions.py), never averaged over windows; its
definitions and queue name are those of its newest window (a job restarted
with other definitions recomputes every span by the new ones: the counts do
not depend on them).
"""

import json
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

from transforms.abandon_rate import rounded_ratio
from transforms.change_log import InstanceCopies, LogSize, append, merged, new_token
from transforms.metric_definitions import (
  ABANDON_RATE_DEFINITIONS,
  DEFAULT_ABANDON_RATE,
  DEFAULT_SERVICE_LEVEL,
  SERVICE_LEVEL_DEFINITIONS,
  Counts,
  definition,
)
from transforms.records import AbandonMetrics, DeadLetter
from transforms.state_coders import VersionedStateCoder

# The AbandonMetrics columns a span sums, in the order WindowCounts.counts
# and the state hold them; the last two are seconds (floats), the others
# calls.
COUNT_FIELDS = (
  'total_calls',
  'abandoned_calls',
  'short_abandoned_calls',
  'answered_calls',
  'flow_out_calls',
  'answered_within_sl',
  'abandoned_within_sl',
  'wait_unknown_calls',
  'answered_wait_unknown_calls',
  'total_wait_seconds',
  'answered_wait_seconds',
)
_FLOAT_FIELDS = ('total_wait_seconds', 'answered_wait_seconds')

# The tagged output of the panes refused, and the dead-letter reasons of
# a pane neither step can count.
DEAD_LETTERS = 'dead_letters'
UNKNOWN_DEFINITION = 'unknown_metric_definition'
BAD_WINDOW = 'bad_window'


class WindowCounts(NamedTuple):
  """One window's latest pane as a span step keeps it: `counts` in
  COUNT_FIELDS order; the definitions as named ('' in a row of the first
  schema: the defaults, which were its rates)."""

  window_start: int
  window_end: int
  pane_index: int
  counts: Tuple
  queue_name: str
  abandon_rate_definition: str
  service_level_definition: str


def window_counts(metrics: AbandonMetrics) -> WindowCounts:
  """The state entry of a pane (checked first with `pane_problem`)."""
  return WindowCounts(
    window_start=metrics.window_start,
    window_end=metrics.window_end,
    pane_index=metrics.pane_index,
    counts=tuple(
      float(getattr(metrics, f)) if f in _FLOAT_FIELDS else int(getattr(metrics, f))
      for f in COUNT_FIELDS
    ),
    queue_name=metrics.queue_name,
    abandon_rate_definition=metrics.abandon_rate_definition or DEFAULT_ABANDON_RATE,
    service_level_definition=metrics.service_level_definition or DEFAULT_SERVICE_LEVEL,
  )


def pane_problem(metrics: AbandonMetrics) -> Optional[Tuple[str, str]]:
  """(reason, detail) when a pane cannot be counted in any span, else
  None: a window that ends before it starts, or a definition this release
  does not know (its rates could not be recomputed)."""
  if metrics.window_end <= metrics.window_start:
    return BAD_WINDOW, f'window [{metrics.window_start}, {metrics.window_end}) is empty'
  for kind, name in (
    (ABANDON_RATE_DEFINITIONS, metrics.abandon_rate_definition),
    (SERVICE_LEVEL_DEFINITIONS, metrics.service_level_definition),
  ):
    if name:
      try:
        definition(kind, name)
      except ValueError as e:
        return UNKNOWN_DEFINITION, str(e)
  return None


def rejected_pane(
  metrics: AbandonMetrics, source: str, reason: str, detail: str, received_at: int
) -> DeadLetter:
  """The dead letter of a pane `pane_problem` refused."""
  raw = json.dumps(metrics._asdict(), sort_keys=True)
  return DeadLetter(
    source=source,
    origin=(
      f'abandon_metrics/{metrics.channel}/{metrics.queue_id}/'
      f'{metrics.window_start}#{metrics.pane_index}'
    ),
    reason=reason,
    detail=detail,
    raw=raw,
    raw_size=len(raw.encode('utf-8')),
    received_at=received_at,
  )


def is_newer(pane: WindowCounts, kept: Optional[WindowCounts]) -> bool:
  """Whether `pane` replaces the pane kept for its window (None: none)."""
  return kept is None or pane.pane_index > kept.pane_index


def window_to_plain(window: WindowCounts) -> list:
  """A state entry as plain JSON values: [start, end, pane index, [counts],
  queue name, abandon rate definition, service level definition]."""
  return [
    window.window_start,
    window.window_end,
    window.pane_index,
    list(window.counts),
    window.queue_name,
    window.abandon_rate_definition,
    window.service_level_definition,
  ]


def window_from_plain(plain: list) -> WindowCounts:
  start, end, pane_index, counts, queue_name, abandon_rate, service_level = plain
  if len(counts) != len(COUNT_FIELDS):
    raise ValueError(f'{len(counts)} counts, expected {len(COUNT_FIELDS)}')
  return WindowCounts(
    start, end, pane_index, tuple(counts), queue_name, abandon_rate, service_level
  )


def asa_seconds(
  answered_wait_seconds: float, answered_calls: int, answered_wait_unknown: int
) -> float:
  """Average speed of answer: the answered calls' wait over the answered
  calls whose wait is known; 0 when none."""
  known = answered_calls - answered_wait_unknown
  return answered_wait_seconds / known if known > 0 else 0.0


def span_columns(windows: Sequence[WindowCounts]) -> Dict[str, Any]:
  """The columns RollingMetrics and DailyMetrics share, over `windows`
  (at least one): the counts summed in ascending window order (so every
  run adds the floats in the same order), the rates by the newest window's
  definitions, asa_seconds, the definitions and queue name of the newest
  window, `windows` and `panes_counted` (sum of pane_index + 1)."""
  ordered = sorted(windows, key=lambda w: w.window_start)
  sums: List[Any] = [0] * len(COUNT_FIELDS)
  for window in ordered:
    for i, value in enumerate(window.counts):
      sums[i] += value
  columns = dict(zip(COUNT_FIELDS, sums))
  for name in _FLOAT_FIELDS:
    columns[name] = float(columns[name])
  newest = ordered[-1]
  counts = Counts(
    offered=columns['total_calls'],
    abandoned=columns['abandoned_calls'],
    short_abandoned=columns['short_abandoned_calls'],
    answered_within=columns['answered_within_sl'],
    abandoned_within=columns['abandoned_within_sl'],
  )
  abandon_rate = definition(ABANDON_RATE_DEFINITIONS, newest.abandon_rate_definition)
  service_level = definition(SERVICE_LEVEL_DEFINITIONS, newest.service_level_definition)
  columns.update(
    abandon_rate=rounded_ratio(*abandon_rate(counts)),
    service_level=rounded_ratio(*service_level(counts)),
    asa_seconds=asa_seconds(
      columns['answered_wait_seconds'],
      columns['answered_calls'],
      columns['answered_wait_unknown_calls'],
    ),
    abandon_rate_definition=newest.abandon_rate_definition,
    service_level_definition=newest.service_level_definition,
    windows=len(ordered),
    panes_counted=sum(w.pane_index + 1 for w in ordered),
    queue_name=newest.queue_name,
  )
  return columns


def span_shard_key(metrics: AbandonMetrics) -> str:
  """What both span steps shard a pane's (queue_id, channel) by
  (transforms/sharding.py shard_of): 'queue_id|channel'."""
  return f'{metrics.queue_id}|{metrics.channel}'


class SpanShard:
  """One shard's state of a span step (transforms/sharding.py): each
  natural key's (queue_id, channel) state, a key with nothing left being
  removed, the time the shard's one event-time timer is armed at (ms of
  delayed event time, None when none is), and the keys changed since the
  shard was last written (its log, transforms/change_log.py)."""

  __slots__ = ('armed_at', 'keys', 'changed', 'log', 'token')

  def __init__(self):
    self.armed_at: Optional[int] = None
    self.keys: Dict[Tuple[str, str], Any] = {}
    self.changed: Set[Tuple[str, str]] = set()
    self.log = LogSize()
    # The head's token this state was read or written with.
    self.token: Optional[bytes] = None


def counted_windows_to_plain(at: Optional[int], windows: Dict[int, WindowCounts]) -> list:
  """[time or null, [window, ...]]: one time in ms and counted windows,
  each as window_to_plain."""
  return [at, [window_to_plain(w) for w in windows.values()]]


def counted_windows_from_plain(plain: list) -> Tuple[Optional[int], Dict[int, WindowCounts]]:
  at, windows = plain
  return at, {w.window_start: w for w in map(window_from_plain, windows)}


class _SpanHead(NamedTuple):
  token: bytes
  armed_at: Optional[int]
  stored: int
  kept: int


def _entry_key(key: Tuple[str, str]) -> str:
  # Queue ids are producers' strings: a JSON pair, not a separator.
  return json.dumps(list(key), separators=(',', ':'))


class SpanShardLog:
  """How a span step (`name`) keeps a SpanShard: a head cell and its keys
  as a log of changes (transforms/change_log.py), each key's state made
  plain and back by `key_to_plain` and `key_from_plain`.

  Formats v1: the head `[token as hex, armed at or null, changes stored,
  keys kept]` (`<name> head`); the keys `{"[queue_id,channel]": the key's
  state as key_to_plain makes it, or null once gone}` (`<name> keys`).
  """

  def __init__(
    self, name: str, key_to_plain: Callable[[Any], Any], key_from_plain: Callable[[Any], Any]
  ):
    self.head_coder = VersionedStateCoder(
      f'{name} head',
      1,
      lambda h: [h.token.hex(), *h[1:]],
      {1: lambda p: _SpanHead(bytes.fromhex(p[0]), *p[1:])},
    )
    self.keys_coder = VersionedStateCoder(f'{name} keys', 1, dict, {1: dict})
    self._key_to_plain = key_to_plain
    self._key_from_plain = key_from_plain

  def read(
    self, copies: InstanceCopies, shard_id: int, head_state, keys_state
  ) -> Optional[SpanShard]:
    """The shard as last written (None: it holds nothing): `copies`' while
    current, else read back from the log."""
    head = head_state.read()
    copy = copies.take(shard_id, head and head.token)
    if head is None or copy is not None:
      return copy
    shard = SpanShard()
    shard.armed_at, shard.log = head.armed_at, LogSize(head.stored, head.kept)
    shard.token = head.token
    for entry, plain in merged(keys_state.read()).items():
      queue_id, channel = json.loads(entry)
      shard.keys[(queue_id, channel)] = self._key_from_plain(plain)
    return shard

  def write(self, copies: InstanceCopies, shard_id: int, shard: SpanShard, head_state, keys_state):
    """Appends the keys changed since the last write and writes the head;
    clears the state when the shard holds no key."""
    if not shard.keys:
      head_state.clear()
      keys_state.clear()
      return
    to_plain, keys = self._key_to_plain, shard.keys
    shard.log = append(
      keys_state,
      {_entry_key(key): to_plain(keys[key]) if key in keys else None for key in shard.changed},
      shard.log,
      lambda: {_entry_key(key): to_plain(state) for key, state in keys.items()},
    )
    shard.changed = set()
    shard.token = new_token()
    head_state.write(_SpanHead(shard.token, shard.armed_at, *shard.log))
    copies.keep(shard_id, shard.token, shard)

  @staticmethod
  def unchanged(copies: InstanceCopies, shard_id: int, shard: SpanShard) -> None:
    """Gives back a shard read and left unchanged: the copy stays current."""
    if shard.token is not None:
      copies.keep(shard_id, shard.token, shard)
