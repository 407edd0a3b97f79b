"""The result stores of `--sink`, by name.

Each entry builds a `ResultSink` (transforms/sinks.py) from the job's
options. Building one validates its settings and does no I/O; the store is
prepared (files, keyspace, tables) by the launch step,
`ResultSink.prepare`.
"""

from typing import Callable, Dict, List

from apache_beam.options.pipeline_options import PipelineOptions

from options.stream_options import SinkOptions
from transforms.cassandra_sink import CassandraSink
from transforms.kafka_io import KafkaSink
from transforms.sinks import ResultSink
from transforms.sqlite_sink import SqliteSink

SinkFactory = Callable[[PipelineOptions], ResultSink]

# In the order --help and the template list them.
SINKS: Dict[str, SinkFactory] = {
  'sqlite': SqliteSink.from_options,
  'cassandra': CassandraSink.from_options,
  'kafka': KafkaSink.from_options,
}
# The store written when no --sink is given: embedded, needs no service.
DEFAULT_SINK = 'sqlite'


def result_sink(name: str, options: PipelineOptions) -> ResultSink:
  """The sink called `name`, configured by `options`; raises ValueError
  naming the known ones (and for settings the sink refuses)."""
  if name not in SINKS:
    raise ValueError(f'unknown sink {name!r}; known: {", ".join(SINKS)}')
  return SINKS[name](options)


def sinks_from_options(options: PipelineOptions) -> List[ResultSink]:
  """The sinks `--sink` names (DEFAULT_SINK when none), in that order."""
  return [
    result_sink(name, options) for name in options.view_as(SinkOptions).sink or [DEFAULT_SINK]
  ]
