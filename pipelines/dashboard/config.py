"""The wallboard's settings, validated once from its options."""

from typing import NamedTuple, Optional

from apache_beam.options.pipeline_options import PipelineOptions

from options.cassandra_options import CassandraOptions
from options.dashboard_options import DashboardOptions
from options.stream_options import EventTimeOptions, SinkOptions
from pipelines.dashboard.queries import Thresholds
from pipelines.dashboard.stores import CassandraStore, SqliteStore, Store
from transforms.cassandra_sink import CassandraSettings

OPTIONS = (DashboardOptions, SinkOptions, EventTimeOptions, CassandraOptions)
# Consistency levels a write may use but a read may not.
_WRITE_ONLY_CONSISTENCY = ('ANY', 'EACH_QUORUM')
MIN_REFRESH_SECONDS = 0.2


class DashboardConfig(NamedTuple):
  """Everything `serve` needs; `cassandra` is set with store 'cassandra'."""

  store: str
  sqlite_path: str
  cassandra: Optional[CassandraSettings]
  host: str
  port: int
  thresholds: Thresholds
  max_out_of_orderness_ms: int
  refresh_seconds: float

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'DashboardConfig':
    """Raises ValueError with the option to fix."""
    o = options.view_as(DashboardOptions)
    for name in ('abandon_rate_warn', 'abandon_rate_alert', 'service_level_target'):
      if not 0 <= getattr(o, name) <= 100:
        raise ValueError(f'--{name}={getattr(o, name)}: a percentage from 0 to 100')
    if o.abandon_rate_warn > o.abandon_rate_alert:
      raise ValueError(
        f'--abandon_rate_warn={o.abandon_rate_warn} is above '
        f'--abandon_rate_alert={o.abandon_rate_alert}'
      )
    if not 0 <= o.port <= 65535:
      raise ValueError(f'--port={o.port}: a TCP port from 0 (any free port) to 65535')
    if o.refresh_seconds < MIN_REFRESH_SECONDS:
      raise ValueError(f'--refresh_seconds={o.refresh_seconds}: at least {MIN_REFRESH_SECONDS}')
    cassandra = None
    if o.store == 'cassandra':
      cassandra = CassandraSettings.from_options(options)
      if cassandra.consistency in _WRITE_ONLY_CONSISTENCY:
        raise ValueError(
          f'--cassandra_consistency={cassandra.consistency} is for writes '
          'only; the wallboard reads (use e.g. LOCAL_ONE or LOCAL_QUORUM)'
        )
    return cls(
      store=o.store,
      sqlite_path=options.view_as(SinkOptions).sqlite_path,
      cassandra=cassandra,
      host=o.host,
      port=o.port,
      thresholds=Thresholds(
        o.abandon_rate_warn / 100, o.abandon_rate_alert / 100, o.service_level_target / 100
      ),
      max_out_of_orderness_ms=(options.view_as(EventTimeOptions).max_out_of_orderness * 1000),
      refresh_seconds=o.refresh_seconds,
    )

  def open_store(self) -> Store:
    """The configured store, opened read-only; raises StoreError or the
    driver's NoHostAvailable."""
    if self.store == 'cassandra':
      return CassandraStore(self.cassandra)
    return SqliteStore(self.sqlite_path)
