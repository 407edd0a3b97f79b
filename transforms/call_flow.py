"""CallMetricsFlow: the whole call-event flow from raw records to tables."""

import apache_beam as beam

from options.config import CallMetricsConfig, seconds
from transforms.abandon_rate import AbandonRate
from transforms.formats import registry
from transforms.windowing import to_late_event


class CallMetricsFlow(beam.PTransform):
  """Raw call records of one input format to abandon metrics, late events
  and dead letters.

  Input: PCollection[SourceRecord] from any source (file replay, Kafka), in
  the format `config.call_event_format` names
  (transforms/formats/registry.py). `config`: the flow's settings
  (options/config.py), by keyword.
  Output: dict table name -> PCollection:
    `abandon_metrics`: AbandonMetrics panes per queue and window, rates by
      the named definitions (transforms/metric_definitions.py).
    `late_events`: LateEvent for calls that arrived after their window's
      expiry (never silently dropped).
    `dead_letters`: DeadLetter for every record that failed validation.
  """

  def __init__(self, *, source_name: str, config: CallMetricsConfig):
    super().__init__()
    config = CallMetricsConfig.checked(config)
    self._source_name = source_name
    self._offered_calls = registry.call_event_format(config.call_event_format).offered_calls(config)
    event_time = config.event_time
    self._abandon_rate = AbandonRate(
      window_size_seconds=seconds(config.window_size),
      allowed_lateness_seconds=seconds(config.allowed_lateness),
      short_abandon_threshold_seconds=config.short_abandon_threshold_seconds,
      service_level_seconds=config.service_level_seconds,
      key_idle_ttl_seconds=seconds(event_time.key_idle_ttl),
      max_out_of_orderness_seconds=seconds(event_time.max_out_of_orderness),
      abandon_rate_definition=config.abandon_rate_definition,
      service_level_definition=config.service_level_definition,
    )

  def expand(self, records):
    calls = records | 'OfferedCalls' >> self._offered_calls
    windowed = calls['offered'] | 'AbandonRate' >> self._abandon_rate
    source = self._source_name
    late = windowed['late'] | 'LateRows' >> beam.Map(
      lambda a: to_late_event(source, a, a.value.call_id)
    )
    return {
      'abandon_metrics': windowed['rows'],
      'late_events': late,
      'dead_letters': calls['dead_letters'],
    }
