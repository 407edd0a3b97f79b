"""Options of alerting: the figures rules test (rolling spans, the local
day, the forecast interval) and the rule file with its deliveries."""

from apache_beam.options.pipeline_options import PipelineOptions


class AlertOptions(PipelineOptions):
  """Rolling and daily figures, alert rules and their delivery
  (docs/alerts.md)."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('alerts')
    group.add_argument(
      '--timezone',
      default='UTC',
      help="The contact center's time zone, an IANA name (e.g. "
      'Europe/Berlin): daily_metrics count from its local midnight, and '
      "alert rules' business hours are in it.",
    )
    group.add_argument(
      '--alert_rules',
      default=None,
      help='A YAML or JSON file of alert rules and receivers '
      '(docs/alerts.md), read and validated when the job starts; none: '
      'no alerts are evaluated (rolling and daily figures are still '
      'written).',
    )
    group.add_argument(
      '--alert_delivery_attempts',
      type=int,
      default=5,
      help='Attempts to deliver one notification to one receiver, with '
      'exponential backoff and jitter between them, before it is written '
      "to dead_letters with the receiver's last answer.",
    )
    group.add_argument(
      '--alert_delivery_timeout_seconds',
      type=int,
      default=10,
      help='Seconds one delivery attempt may take (connect and answer) before it counts as failed.',
    )
    group.add_argument(
      '--forecast_interval_seconds',
      type=int,
      default=1800,
      help='The interval whose service level at its end is forecast '
      '(Erlang C, docs/alerts.md), aligned on the local clock: 1800 '
      'forecasts each half hour.',
    )
