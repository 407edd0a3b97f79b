"""The wallboard's settings, validated once from its options."""

import json
import pathlib
from typing import Dict, NamedTuple, Optional, Tuple

from apache_beam.options.pipeline_options import PipelineOptions

from options.cassandra_options import CassandraOptions
from options.deprecation import report
from options.stream_options import DEFAULT_SINK, EventTimeOptions, SinkOptions
from options.wallboard_options import READABLE_SINKS, WallboardOptions
from pipelines.wallboard.queries import MAX_TEXT, Thresholds
from pipelines.wallboard.stores import CassandraStore, SqliteStore, Store
from transforms.cassandra import CassandraSettings

OPTIONS = (WallboardOptions, SinkOptions, EventTimeOptions, CassandraOptions)
MAX_GROUPS_FILE_BYTES = 64 * 1024 * 1024
# Consistency levels a write may use but a read may not.
_WRITE_ONLY_CONSISTENCY = ('ANY', 'EACH_QUORUM')
MIN_REFRESH_SECONDS = 0.2
# Longest-wait thresholds beyond a day are a typo (milliseconds?).
MAX_WAIT_THRESHOLD_SECONDS = 86_400


class WallboardConfig(NamedTuple):
  """Everything `serve` needs; `cassandra` is set with sink 'cassandra'."""

  sink: str
  sqlite_path: str
  cassandra: Optional[CassandraSettings]
  host: str
  port: int
  thresholds: Thresholds
  max_out_of_orderness_ms: int
  refresh_seconds: float
  queue_groups: Dict[str, Tuple[str, ...]] = {}

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'WallboardConfig':
    """Raises ValueError with the option to fix."""
    o = options.view_as(WallboardOptions)
    for name in ('abandon_rate_warn', 'abandon_rate_alert', 'service_level_target'):
      if not 0 <= getattr(o, name) <= 100:
        raise ValueError(f'--{name}={getattr(o, name)}: a percentage from 0 to 100')
    if o.abandon_rate_warn > o.abandon_rate_alert:
      raise ValueError(
        f'--abandon_rate_warn={o.abandon_rate_warn} is above '
        f'--abandon_rate_alert={o.abandon_rate_alert}'
      )
    for name in ('longest_wait_warn_seconds', 'longest_wait_alert_seconds'):
      # NaN fails both comparisons, so it is refused too.
      if not 0 <= getattr(o, name) <= MAX_WAIT_THRESHOLD_SECONDS:
        raise ValueError(
          f'--{name}={getattr(o, name)}: seconds from 0 to {MAX_WAIT_THRESHOLD_SECONDS}'
        )
    if o.longest_wait_warn_seconds > o.longest_wait_alert_seconds:
      raise ValueError(
        f'--longest_wait_warn_seconds={o.longest_wait_warn_seconds} is above '
        f'--longest_wait_alert_seconds={o.longest_wait_alert_seconds}'
      )
    if not 0 <= o.port <= 65535:
      raise ValueError(f'--port={o.port}: a TCP port from 0 (any free port) to 65535')
    if o.refresh_seconds < MIN_REFRESH_SECONDS:
      raise ValueError(f'--refresh_seconds={o.refresh_seconds}: at least {MIN_REFRESH_SECONDS}')
    sink = readable_sink(options)
    cassandra = None
    if sink == 'cassandra':
      cassandra = CassandraSettings.from_options(options)
      if cassandra.consistency in _WRITE_ONLY_CONSISTENCY:
        raise ValueError(
          f'--cassandra_consistency={cassandra.consistency} is for writes '
          'only; the wallboard reads (use e.g. LOCAL_ONE or LOCAL_QUORUM)'
        )
    return cls(
      sink=sink,
      sqlite_path=options.view_as(SinkOptions).sqlite_path,
      cassandra=cassandra,
      host=o.host,
      port=o.port,
      thresholds=Thresholds(
        o.abandon_rate_warn / 100,
        o.abandon_rate_alert / 100,
        o.service_level_target / 100,
        o.longest_wait_warn_seconds,
        o.longest_wait_alert_seconds,
      ),
      max_out_of_orderness_ms=(
        options.view_as(EventTimeOptions).max_out_of_orderness_seconds * 1000
      ),
      refresh_seconds=o.refresh_seconds,
      queue_groups=load_queue_groups(options.view_as(WallboardOptions).queue_groups),
    )

  def open_store(self) -> Store:
    """The tables of the configured sink, opened read-only; raises
    StoreError or the driver's NoHostAvailable."""
    if self.sink == 'cassandra':
      return CassandraStore(self.cassandra)
    return SqliteStore(self.sqlite_path)


def readable_sink(options: PipelineOptions) -> str:
  """The sink the wallboard reads: the first `--sink` of the job it can
  read, sqlite (the job's default) when none is given; the deprecated
  `--store` replaces them. Raises ValueError for sinks it cannot read."""
  store = options.view_as(WallboardOptions).store
  if store is not None:
    report('--store', '--sink')
    return store
  sinks = options.view_as(SinkOptions).sink or [DEFAULT_SINK]
  readable = [s for s in sinks if s in READABLE_SINKS]
  if not readable:
    raise ValueError(
      f'--sink={",".join(sinks)}: the wallboard reads a {" or ".join(READABLE_SINKS)} sink'
    )
  return readable[0]


def load_queue_groups(path: Optional[str]) -> Dict[str, Tuple[str, ...]]:
  """The groups of a `--queue_groups` file: a JSON object of group name
  to a list of queue ids ({} without a file). Raises ValueError saying
  what is wrong with it."""
  if not path:
    return {}
  flag = f'--queue_groups={path}'
  file = pathlib.Path(path)
  try:
    if file.stat().st_size > MAX_GROUPS_FILE_BYTES:
      raise ValueError(f'{flag}: larger than {MAX_GROUPS_FILE_BYTES // 2**20} MiB')
    groups = json.loads(file.read_text(encoding='utf-8'))
  except OSError as e:
    raise ValueError(f'{flag}: {e.strerror}') from None
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ValueError(f'{flag}: not JSON ({e})') from None
  if not isinstance(groups, dict):
    raise ValueError(f'{flag}: a JSON object of group name -> list of queue ids')
  for name, queues in groups.items():
    if not 0 < len(name) <= MAX_TEXT:
      raise ValueError(f'{flag}: a group name of 1 to {MAX_TEXT} characters, got {name[:40]!r}')
    if not (
      isinstance(queues, list)
      and queues
      and all(isinstance(q, str) and 0 < len(q) <= MAX_TEXT for q in queues)
    ):
      raise ValueError(
        f'{flag}: group {name[:40]!r} must be a non-empty list of queue ids '
        f'(strings of 1 to {MAX_TEXT} characters)'
      )
  return {name: tuple(dict.fromkeys(queues)) for name, queues in groups.items()}
