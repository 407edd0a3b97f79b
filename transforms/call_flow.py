"""CallMetricsFlow: the whole call-event flow from raw records to tables."""

import apache_beam as beam

from transforms.abandon_rate import AbandonRate
from transforms.call_events import ParseCallEvents
from transforms.dedupe import DedupeByKey
from transforms.parsing import DEFAULT_FIELD_RULES, FieldRules
from transforms.windowing import to_late_event


class CallMetricsFlow(beam.PTransform):
  """Raw call-event records to abandon metrics, late events and dead letters.

  Input: PCollection[SourceRecord] from any source (file replay, Kafka).
  Output: dict table name -> PCollection:
    `abandon_metrics`: AbandonMetrics panes per queue and window.
    `late_events`: LateEvent for events that arrived after their window's
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
      field_rules: FieldRules = DEFAULT_FIELD_RULES):
    super().__init__()
    self._source_name = source_name
    self._field_rules = field_rules
    self._dedupe_ttl = dedupe_ttl_seconds
    self._abandon_rate = AbandonRate(
        window_size_seconds,
        allowed_lateness_seconds,
        short_abandon_threshold_seconds,
        service_level_seconds,
        key_idle_ttl_seconds,
        watermark_delay_seconds)

  def expand(self, records):
    parsed = records | 'Parse' >> ParseCallEvents(self._field_rules)
    windowed = (
        parsed.events
        | 'Dedupe' >> DedupeByKey(
            lambda e: e.call_uuid, lambda e: e.timestamp, self._dedupe_ttl,
            'call_events')
        | 'AbandonRate' >> self._abandon_rate)
    source = self._source_name
    late = windowed['late'] | 'LateRows' >> beam.Map(
        lambda a: to_late_event(source, a, a.value.call_uuid))
    return {
        'abandon_metrics': windowed['metrics'],
        'late_events': late,
        'dead_letters': parsed.dead_letters,
    }
