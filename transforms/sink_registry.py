"""The result stores of `--sink`, by name.

In: the stores' frozen settings (`SinkConfigs`, options/config.py), built
once from the job's options. Out: a `ResultSink` (transforms/sinks.py) per
named store. Building one validates its settings and does no I/O; the store
is prepared (files, keyspace, tables) by the launch step,
`ResultSink.prepare`. `--sink`'s choices (options/stream_options.py) list
the same names, since options may not import this module;
tests/test_import_graph.py checks that they agree.
"""

from typing import Callable, Dict, List

from options.config import SinkConfigs
from transforms.cassandra import CassandraSink
from transforms.kafka_io import KafkaSink
from transforms.sinks import ResultSink
from transforms.sqlite_sink import SqliteSink

SinkFactory = Callable[[SinkConfigs], ResultSink]

# In the order --help and the template list them.
SINKS: Dict[str, SinkFactory] = {
  'sqlite': lambda configs: SqliteSink(configs.sqlite_path, configs.contact_detail_ttl),
  'cassandra': lambda configs: CassandraSink(configs.cassandra, configs.contact_detail_ttl),
  'kafka': lambda configs: KafkaSink(configs.kafka),
}


def result_sink(name: str, configs: SinkConfigs) -> ResultSink:
  """The sink called `name`, configured by `configs`; raises ValueError
  naming the known ones (and for settings the sink refuses)."""
  if name not in SINKS:
    raise ValueError(f'unknown sink {name!r}; known: {", ".join(SINKS)}')
  return SINKS[name](configs)


def result_sinks(configs: SinkConfigs) -> List[ResultSink]:
  """The sinks `configs` names, in that order."""
  return [result_sink(name, configs) for name in configs.names]
