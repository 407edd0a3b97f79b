"""Spreading many small keys (call ids, customers) over a fixed set of shard
keys for stateful steps.

Why: a stateful DoFn keyed by millions of ids makes per-key work on some
runners grow with the number of live keys (the Python direct runner scans
every key's timers on each watermark step and runs one bundle per key), and
one timer per id is overhead everywhere. A shard keeps the state of its ids
in one map with one timer. The shard count bounds the step's parallelism,
so it is far above any parallelism this pipeline runs with.
"""

import zlib
from typing import Any, Callable, Tuple

import apache_beam as beam

NUM_SHARDS = 32


def shard_of(key: str, num_shards: int = NUM_SHARDS) -> int:
  """A stable shard for a key (crc32: the same on every worker and run)."""
  return zlib.crc32(key.encode('utf-8')) % num_shards


class KeyByShard(beam.PTransform):
  """PCollection[T] -> PCollection[(shard, T)], shard = shard_of(key_fn(T))."""

  def __init__(self, key_fn: Callable[[Any], str]):
    super().__init__()
    self._key_fn = key_fn

  def expand(self, pcoll):
    key_fn = self._key_fn
    return pcoll | beam.Map(lambda e: (shard_of(key_fn(e)), e)).with_output_types(Tuple[int, Any])
