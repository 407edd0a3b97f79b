"""Spreading many small keys (call ids, customers, queues) over shard keys
for stateful steps.

Why: a stateful DoFn keyed by millions of ids makes per-key work on some
runners grow with the number of live keys (the Python direct runner scans
every key's timers on each watermark step and runs one bundle per key), and
one timer per id is overhead everywhere. A shard keeps the state of its ids
in one map with one set of timers, and a bundle's elements of one shard are
one batch (transforms/batching.py).

How many: as many as the job's key groups, Flink's `--max_parallelism`
(Flink distributes keys over that many key groups; a step can never run on
more instances than that), so sharding never caps a step below what the
cluster can give it (docs/design.md, "Keyed state"). Without the option,
DEFAULT_STATE_SHARDS, Flink's own default number of key groups
(options/config.py, `state_shards`).
"""

import zlib
from typing import Any, Callable, Tuple

import apache_beam as beam

from options.config import DEFAULT_STATE_SHARDS

__all__ = ['DEFAULT_STATE_SHARDS', 'KeyByShard', 'shard_of']


def shard_of(key: str, shards: int) -> int:
  """A stable shard for a key (crc32: the same on every worker and run)."""
  return zlib.crc32(key.encode('utf-8')) % shards


class KeyByShard(beam.PTransform):
  """PCollection[T] -> PCollection[(shard, T)], shard = shard_of(key_fn(T))."""

  def __init__(self, key_fn: Callable[[Any], str], shards: int):
    super().__init__()
    self._key_fn = key_fn
    self._shards = shards

  def expand(self, pcoll):
    key_fn, shards = self._key_fn, self._shards
    return pcoll | beam.Map(lambda e: (shard_of(key_fn(e), shards), e)).with_output_types(
      Tuple[int, Any]
    )
