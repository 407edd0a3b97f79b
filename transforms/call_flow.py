"""CallMetricsFlow: the whole call-event flow from raw records to tables."""

import apache_beam as beam

from transforms.abandon_rate import AbandonRate
from transforms.formats import registry
from transforms.parsing import DEFAULT_FIELD_RULES, FieldRules
from transforms.metric_definitions import (DEFAULT_ABANDON_RATE,
                                           DEFAULT_SERVICE_LEVEL)
from transforms.windowing import to_late_event


class CallMetricsFlow(beam.PTransform):
  """Raw call records of one input format to abandon metrics, late events
  and dead letters.

  Input: PCollection[SourceRecord] from any source (file replay, Kafka), in
  the format `call_event_format` names (transforms/formats/registry.py).
  Output: dict table name -> PCollection:
    `abandon_metrics`: AbandonMetrics panes per queue and window, rates by
      the named definitions (transforms/metric_definitions.py).
    `late_events`: LateEvent for calls that arrived after their window's
      expiry (never silently dropped).
    `dead_letters`: DeadLetter for every record that failed validation.
  """
  def __init__(
      self,
      source_name: str,
      window_size_seconds: int,
      allowed_lateness_seconds: int,
      short_abandon_threshold_seconds: float,
      service_level_seconds: float,
      dedupe_ttl_seconds: int,
      key_idle_ttl_seconds: int,
      watermark_delay_seconds: int,
      call_event_format: str = 'seed',
      abandon_rate_definition: str = DEFAULT_ABANDON_RATE,
      service_level_definition: str = DEFAULT_SERVICE_LEVEL,
      connect_queue_key: str = 'name',
      genesys_max_queue_wait_seconds: int = 3600,
      field_rules: FieldRules = DEFAULT_FIELD_RULES):
    super().__init__()
    self._source_name = source_name
    self._offered_calls = registry.call_event_format(
        call_event_format).offered_calls(
            registry.FormatSettings(
                dedupe_ttl_seconds, watermark_delay_seconds, connect_queue_key,
                genesys_max_queue_wait_seconds, field_rules))
    self._abandon_rate = AbandonRate(
        window_size_seconds,
        allowed_lateness_seconds,
        short_abandon_threshold_seconds,
        service_level_seconds,
        key_idle_ttl_seconds,
        watermark_delay_seconds,
        abandon_rate_definition,
        service_level_definition)

  def expand(self, records):
    calls = records | 'OfferedCalls' >> self._offered_calls
    windowed = calls['offered'] | 'AbandonRate' >> self._abandon_rate
    source = self._source_name
    late = windowed['late'] | 'LateRows' >> beam.Map(
        lambda a: to_late_event(source, a, a.value.call_id))
    return {
        'abandon_metrics': windowed['rows'],
        'late_events': late,
        'dead_letters': calls['dead_letters'],
    }

