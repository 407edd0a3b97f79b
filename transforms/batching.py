"""BatchPerKey: the elements of one bundle, grouped by key, as one element per
key.

Why: every element a stateful step receives costs a state read and write
(the whole per-key state: pickled on the direct runner, a state round trip on
portable runners) plus the runner's per-element bookkeeping. Grouping a
bundle's elements per key first makes that cost per batch, and a batch never
spans a watermark change: a runner does not move a step's output watermark
while a bundle is open, so every element of a batch was seen at the same
input watermark, exactly as if the stateful step had received them one by
one. No state, no timers, no waiting: the batch is emitted when the bundle
finishes, so latency is unchanged.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple

import apache_beam as beam

from transforms.event_time import at_event_time


class _BatchPerKeyFn(beam.DoFn):
  def __init__(self, key_fn: Callable[[Any], Any], event_time_ms: Callable[[Any], int]):
    self._key_fn = key_fn
    self._event_time_ms = event_time_ms
    self._batches: Dict[Any, List[Any]] = {}
    self._min_event_ms: Optional[int] = None

  def start_bundle(self):
    self._batches = {}
    self._min_event_ms = None

  # The element only: a DoFn that asks for its element's timestamp or
  # window is invoked per window, a few comparisons more per element.
  def process(self, element):
    key = self._key_fn(element)
    batch = self._batches.get(key)
    if batch is None:
      self._batches[key] = [element]
    else:
      batch.append(element)
    event_ms = self._event_time_ms(element)
    if self._min_event_ms is None or event_ms < self._min_event_ms:
      self._min_event_ms = event_ms

  def finish_bundle(self):
    # One timestamp for all batches of the bundle, the earliest element's:
    # never ahead of any element it carries, so no downstream hold is
    # skipped. Consumers read event time from the records themselves.
    for key, batch in self._batches.items():
      yield at_event_time((key, batch), self._min_event_ms)
    self._batches = {}


class BatchPerKey(beam.PTransform):
  """Groups each bundle's elements by key.

  Input: PCollection[T] in the global window, each element timestamped
  with its event time `event_time_ms(T)` (epoch ms), as every parser and
  stateful step here stamps its outputs.
  Output: PCollection[(K, List[T])], K = key_fn(T): per bundle, one element
  per key with that key's elements in arrival order, timestamped with the
  bundle's earliest event time, in the global window.
  """

  def __init__(
    self, key_fn: Callable[[Any], Any], event_time_ms: Callable[[Any], int], key_type: type = str
  ):
    super().__init__()
    self._key_fn = key_fn
    self._event_time_ms = event_time_ms
    self._key_type = key_type

  def expand(self, pcoll):
    # Typed output, so the stateful consumer gets a deterministic key coder
    # and the records keep their registered coders inside the list.
    element_type = pcoll.element_type or Any
    return pcoll | beam.ParDo(_BatchPerKeyFn(self._key_fn, self._event_time_ms)).with_output_types(
      Tuple[self._key_type, List[element_type]]
    )
