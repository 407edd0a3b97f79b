"""CallMetricsFlow: the whole call-event flow from raw records to tables."""

import apache_beam as beam

from options.config import CallMetricsConfig, seconds
from transforms.abandon_rate import AbandonRate, split_row_key
from transforms.channel_filter import KeepChannels
from transforms.formats import registry
from transforms.formats.amazon_connect import RECORD_UPDATES
from transforms.records import CHANNELS, LateEvent, OfferedCall
from transforms.windowing import AFTER_WINDOW_EXPIRY, LateArrival, to_late_event

# The late reason of a contact record the source re-sent long after the
# contact (transforms/records.py OfferedCall.record_updated_at).
RECORD_UPDATE = 'record_update'


def _late_row(source: str, arrival: LateArrival) -> LateEvent:
  """The late_events row of a late call: keyed by its queue as before
  channels (its channel is in `raw`)."""
  queue_id, _ = split_row_key(arrival.key)
  return to_late_event(
    source, arrival._replace(key=queue_id), arrival.value.call_id, AFTER_WINDOW_EXPIRY
  )


def _update_row(source: str, window_ms: int, call: OfferedCall) -> LateEvent:
  """The late_events row of a record update: the window it would have
  counted in, and when the source re-wrote it in place of a watermark."""
  start = call.timestamp - call.timestamp % window_ms
  arrival = LateArrival(
    call.queue_id, call, call.timestamp, start, start + window_ms, call.record_updated_at
  )
  return to_late_event(source, arrival, call.call_id, RECORD_UPDATE)


class CallMetricsFlow(beam.PTransform):
  """Raw call records of one input format to abandon metrics, late events
  and dead letters.

  Input: PCollection[SourceRecord] from any source (file replay, Kafka), in
  the format `config.call_event_format` names
  (transforms/formats/registry.py). `config`: the flow's settings
  (options/config.py), by keyword.
  Output: dict table name -> PCollection:
    `abandon_metrics`: AbandonMetrics panes per queue, channel and window,
      rates by the named definitions (transforms/metric_definitions.py),
      queues named by `config.queue_names`; only the channels of
      `config.channels` (the others counted in
      `call_metrics/other_channels`).
    `late_events`: LateEvent for calls that arrived after their window's
      expiry (never silently dropped), reason `after_window_expiry`; and
      (Amazon Connect) the contact records re-sent long after the contact,
      reason `record_update`.
    `dead_letters`: DeadLetter for every record that failed validation.
  """

  def __init__(self, *, source_name: str, config: CallMetricsConfig):
    super().__init__()
    config = CallMetricsConfig.checked(config)
    self._source_name = source_name
    self._window_ms = seconds(config.window_size) * 1000
    self._offered_calls = registry.call_event_format(config.call_event_format).offered_calls(config)
    # No step at all when every channel counts (the default).
    self._keep_channels = (
      None if config.channels >= set(CHANNELS) else KeepChannels(config.channels)
    )
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
      queue_names=config.queue_names,
    )

  def expand(self, records):
    calls = records | 'OfferedCalls' >> self._offered_calls
    offered = calls['offered']
    if self._keep_channels is not None:
      offered = offered | 'KeepChannels' >> self._keep_channels
    windowed = offered | 'AbandonRate' >> self._abandon_rate
    source = self._source_name
    late = windowed['late'] | 'LateRows' >> beam.Map(lambda a: _late_row(source, a))
    if RECORD_UPDATES in calls:
      window_ms = self._window_ms
      updates = calls[RECORD_UPDATES] | 'UpdateRows' >> beam.Map(
        lambda c: _update_row(source, window_ms, c)
      )
      late = (late, updates) | 'LateEvents' >> beam.Flatten()
    return {
      'abandon_metrics': windowed['rows'],
      'late_events': late,
      'dead_letters': calls['dead_letters'],
    }
