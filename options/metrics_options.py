"""Options of the job's Prometheus /metrics endpoint (pipelines/metrics_server.py)."""

from apache_beam.options.pipeline_options import PipelineOptions

from options.deprecation import RenamedFlag


class MetricsOptions(PipelineOptions):
  """Where the local runner serves the job's metrics to Prometheus."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('Prometheus metrics')
    group.add_argument(
      '--metrics_port',
      type=int,
      default=None,
      help='TCP port of a Prometheus /metrics endpoint serving the running '
      "job's metrics (dead letters and late events by reason, rows written "
      'per table, event-time lag per table, every Beam counter); local '
      "runner only (on Flink, Flink's Prometheus reporter: scripts/flink.sh). "
      'Default: no endpoint.',
    )
    group.add_argument(
      '--metrics_address',
      default='127.0.0.1',
      help='Address the /metrics endpoint listens on. The default serves '
      'this machine only; 0.0.0.0 serves the network.',
    )
    group.add_argument(
      '--metrics_final_scrape_wait_seconds',
      '--metrics_final_scrape_wait',
      action=RenamedFlag,
      type=int,
      default=60,
      help='Seconds a job that ends (a file replay) keeps /metrics up until '
      'one scrape has read its final values; 0 stops at once.',
    )
