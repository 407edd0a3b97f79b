"""AlertFlow: the job's figures to alerts that reach people."""

import apache_beam as beam
from apache_beam.utils.timestamp import Duration

from options.alert_config import PREDICTED_SERVICE_LEVEL
from options.config import AlertFlowConfig
from transforms.alert_delivery import DeliverNotifications
from transforms.alert_evaluation import EvaluateAlertRules
from transforms.alert_figures import TABLES as FIGURE_TABLES
from transforms.alert_figures import AlertFigures
from transforms.service_level_forecast import ForecastServiceLevel

# The tables the forecast reads (transforms/service_level_forecast.py).
_FORECAST_INPUTS = ('abandon_metrics', 'agent_status', 'agent_metrics')
# The longest span a rule can test (`60m`): what a late pane can restate
# behind a key's clock, beside the allowed lateness.
_LONGEST_SPAN = Duration(seconds=3600)


class AlertFlow(beam.PTransform):
  """The rules of `config.rules` evaluated on the job's tables, and their
  notifications delivered.

  Input: dict table name -> PCollection, the job's merged tables (any of
  abandon_metrics, rolling_metrics, daily_metrics, queue_status,
  agent_status, agent_metrics, dead_letters); a rule on
  `predicted_service_level` needs the call and the agent tables.
  Output: dict table name -> PCollection:
    `alerts`: Alert rows of each rule, queue and channel, as evaluated
      (transforms/alert_evaluation.py) and as delivered
      (transforms/alert_delivery.py: delivery_status, revision + 1);
    `alert_notifications`: the history, AlertNotification per transition,
      reminder and restatement;
    `alert_deliveries`: AlertDelivery per notification and receiver;
    `dead_letters`: DeadLetter per delivery that failed for good, with the
      receiver's last answer.
  Raises ValueError while the graph is built when a rule needs a table the
  job does not make.
  """

  def __init__(self, *, config: AlertFlowConfig):
    super().__init__()
    self._config = config

  def expand(self, tables):
    config = self._config
    rules = config.rules
    wanted = rules.needed_figures()
    figure_tables = {name: rows for name, rows in tables.items() if name in FIGURE_TABLES}
    figures = [
      figure_tables
      | 'Figures' >> AlertFigures(wanted=wanted, dead_letter_window=config.window_size)
    ]
    if any(metric == PREDICTED_SERVICE_LEVEL for metric, _ in wanted):
      missing = [name for name in _FORECAST_INPUTS if name not in tables]
      if missing:
        raise ValueError(
          f'an alert rule on {PREDICTED_SERVICE_LEVEL} needs call and agent events '
          f'(--call_events/--agent_events or their topics); this job makes no {", ".join(missing)}'
        )
      figures.append(
        {name: tables[name] for name in _FORECAST_INPUTS}
        | 'ServiceLevelForecast'
        >> ForecastServiceLevel(
          interval=config.forecast_interval,
          timezone=rules.timezone,
          service_level_seconds=config.service_level_seconds,
          arrival_lookback=config.forecast_lookback,
          queue_names=config.queue_names,
        )
      )
    evaluated = (
      figures
      | 'AllFigures' >> beam.Flatten()
      | 'Evaluate'
      >> EvaluateAlertRules(rules, restatement_horizon=config.allowed_lateness + _LONGEST_SPAN)
    )
    delivered = evaluated['dispatch'] | 'Deliver' >> DeliverNotifications(
      rules.receivers,
      attempts=config.delivery_attempts,
      attempt_timeout=config.delivery_timeout,
      backoff_base=config.delivery_backoff,
    )
    return {
      'alerts': (evaluated['alerts'], delivered['alerts']) | 'Alerts' >> beam.Flatten(),
      'alert_notifications': evaluated['alert_notifications'],
      'alert_deliveries': delivered['alert_deliveries'],
      'dead_letters': delivered['dead_letters'],
    }
