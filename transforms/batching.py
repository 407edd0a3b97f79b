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
from typing import Any, Callable, Dict, List, Tuple

import apache_beam as beam
from apache_beam.utils import windowed_value

from transforms.event_time import IN_GLOBAL_WINDOW


class _BatchPerKeyFn(beam.DoFn):
  def __init__(self, key_fn: Callable[[Any], Any]):
    self._key_fn = key_fn
    self._batches: Dict[Any, List[Any]] = {}
    self._min_timestamp_micros = None

  def start_bundle(self):
    self._batches = {}
    self._min_timestamp_micros = None

  def process(self, element, windowed=beam.DoFn.WindowedValueParam):
    key = self._key_fn(element)
    batch = self._batches.get(key)
    if batch is None:
      self._batches[key] = [element]
    else:
      batch.append(element)
    # The WindowedValue's integer timestamp: a TimestampParam would be a new
    # Timestamp object per element, and comparing those costs more again.
    micros = windowed.timestamp_micros
    if self._min_timestamp_micros is None or micros < self._min_timestamp_micros:
      self._min_timestamp_micros = micros

  def finish_bundle(self):
    # One timestamp for all batches of the bundle, the earliest element's:
    # never ahead of any element it carries, so no downstream hold is
    # skipped. Consumers read event time from the records themselves.
    for key, batch in self._batches.items():
      yield windowed_value.create(
          (key, batch), self._min_timestamp_micros, IN_GLOBAL_WINDOW)
    self._batches = {}


class BatchPerKey(beam.PTransform):
  """Groups each bundle's elements by key.

  Input: PCollection[T] in the global window.
  Output: PCollection[(K, List[T])], K = key_fn(T): per bundle, one element
  per key with that key's elements in arrival order, timestamped with the
  bundle's earliest element timestamp, in the global window.
  """
  def __init__(self, key_fn: Callable[[Any], Any], key_type: type = str):
    super().__init__()
    self._key_fn = key_fn
    self._key_type = key_type

  def expand(self, pcoll):
    # Typed output, so the stateful consumer gets a deterministic key coder
    # and the records keep their registered coders inside the list.
    element_type = pcoll.element_type or Any
    return pcoll | beam.ParDo(_BatchPerKeyFn(self._key_fn)).with_output_types(
        Tuple[self._key_type, List[element_type]])
