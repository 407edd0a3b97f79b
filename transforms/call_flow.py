"""CallMetricsFlow: the whole call-event flow from raw records to tables."""

import apache_beam as beam

from options.config import CallMetricsConfig, millis
from transforms.abandon_rate import AbandonRate, split_row_key
from transforms.channel_filter import KeepChannels
from transforms.daily_metrics import ComputeDailyMetrics
from transforms.formats import registry
from transforms.formats.amazon_connect import RECORD_UPDATES
from transforms.parsing import QUEUE_TRANSITIONS
from transforms.queue_status import LOST_CONTACTS, WAITING_CONTACTS, LiveQueueStatus
from transforms.records import CHANNELS, ROLLING_SPANS, LateEvent, OfferedCall, QueueTransition
from transforms.rolling_metrics import ComputeRollingMetrics, span_millis
from transforms.window_audit import counted_contact
from transforms.windowing import AFTER_WINDOW_EXPIRY, LateArrival, to_late_event

# The late reason of a contact record the source re-sent long after the
# contact (transforms/records.py OfferedCall.record_updated_at).
RECORD_UPDATE = 'record_update'
# The late reason of a contact dropped from its queue's live state after
# --max_queue_wait without an exit event (transforms/queue_status.py).
QUEUE_EXIT_LOST = 'queue_exit_lost'


def _late_row(source: str, arrival: LateArrival) -> LateEvent:
  """The late_events row of a late call: keyed by its queue as before
  channels (its channel is in `record`); `raw` is what the producer sent
  (windowing.to_late_event)."""
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


def _lost_row(source: str, max_queue_wait_ms: int, entry: QueueTransition) -> LateEvent:
  """The late_events row of a contact whose exit never came: the span it was
  held for (entry to entry + max queue wait), by its queue."""
  arrival = LateArrival(
    entry.queue_id,
    entry,
    entry.timestamp,
    entry.timestamp,
    entry.timestamp + max_queue_wait_ms,
    entry.timestamp + max_queue_wait_ms,
  )
  return to_late_event(source, arrival, entry.contact_id, QUEUE_EXIT_LOST)


class CallMetricsFlow(beam.PTransform):
  """Raw call records of one input format to abandon metrics, late events
  and dead letters.

  Input: PCollection[SourceRecord] from any source (file replay, Kafka), in
  the format `config.call_event_format` names
  (transforms/formats/registry.py). `config`: the flow's settings
  (options/config.py), by keyword.
  Output: dict table name -> PCollection:
    `abandon_metrics`: AbandonMetrics panes per queue, channel and window
      (EARLY ones of the open window every `--early_firing_seconds`),
      rates by the named definitions (transforms/metric_definitions.py),
      queues named by `config.queue_names`; only the channels of
      `config.channels` (the others counted in
      `call_metrics/other_channels`).
    `late_events`: LateEvent for calls that arrived after their window's
      expiry (never silently dropped), reason `after_window_expiry`; and
      (Amazon Connect) the contact records re-sent long after the contact,
      reason `record_update`; and the waiting contacts dropped after
      `--max_queue_wait` without an exit, reason `queue_exit_lost`.
    `queue_status`, `waiting_contacts`: the live floor (QueueStatus,
      WaitingContacts per queue and channel; transforms/queue_status.py),
      from the formats whose records tell queue entries and exits (not
      `amazon_connect` contact records, which come after the contact).
    `rolling_metrics`: RollingMetrics over the last 15, 30 and 60 minutes
      ending at each window's end, restated by LATE panes
      (transforms/rolling_metrics.py); only the spans the window size
      divides.
    `daily_metrics`: DailyMetrics per local date of `config.timezone`, the
      day so far after each pane (transforms/daily_metrics.py).
    `metric_revisions`: MetricRevision for every LATE pane: the window's
      figures before and after and the calls that changed them.
    `window_contacts` (with `config.contact_detail`): WindowContact for
      every counted call, with the first pane that counts it.
    `dead_letters`: DeadLetter for every record that failed validation, and
      for panes the rolling or daily step refused.
  """

  def __init__(self, *, source_name: str, config: CallMetricsConfig):
    super().__init__()
    config = CallMetricsConfig.checked(config)
    self._source_name = source_name
    self._window_ms = millis(config.window_size)
    self._offered_calls = registry.call_event_format(config.call_event_format).offered_calls(config)
    self._channels = None if config.channels >= set(CHANNELS) else config.channels
    self._queue_names = dict(config.queue_names)
    live_floor = config.live_floor
    self._max_queue_wait_ms = millis(live_floor.max_queue_wait)
    self._live_queue_status = LiveQueueStatus(
      max_queue_wait=live_floor.max_queue_wait,
      tombstone_ttl=config.dedupe_ttl,
      status_interval=live_floor.status_interval,
      max_waiting_listed=live_floor.max_waiting_listed,
      queue_names=config.queue_names,
    )
    event_time = config.event_time
    self._abandon_rate = AbandonRate(
      window_size=config.window_size,
      allowed_lateness=config.allowed_lateness,
      short_abandon_threshold_seconds=config.short_abandon_threshold_seconds,
      service_level_seconds=config.service_level_seconds,
      key_idle_ttl=event_time.key_idle_ttl,
      max_out_of_orderness=event_time.max_out_of_orderness,
      abandon_rate_definition=config.abandon_rate_definition,
      service_level_definition=config.service_level_definition,
      queue_names=config.queue_names,
      early_firing=live_floor.early_firing,
      shards=event_time.state_shards,
      contact_detail=config.contact_detail,
    )
    # A span the window size does not divide would count part of a window.
    spans = tuple(s for s in ROLLING_SPANS if span_millis(s) % self._window_ms == 0)
    self._rolling_metrics = (
      ComputeRollingMetrics(
        spans=spans,
        allowed_lateness=config.allowed_lateness,
        max_out_of_orderness=event_time.max_out_of_orderness,
        shards=event_time.state_shards,
      )
      if spans
      else None
    )
    self._daily_metrics = ComputeDailyMetrics(
      timezone=config.timezone,
      allowed_lateness=config.allowed_lateness,
      max_out_of_orderness=event_time.max_out_of_orderness,
      shards=event_time.state_shards,
    )

  def expand(self, records):
    calls = records | 'OfferedCalls' >> self._offered_calls
    calls = {name: self._kept(name, rows) for name, rows in calls.items()}
    windowed = calls['offered'] | 'AbandonRate' >> self._abandon_rate
    source = self._source_name
    late = [windowed['late'] | 'LateRows' >> beam.Map(lambda a: _late_row(source, a))]
    tables = {'abandon_metrics': windowed['rows'], 'metric_revisions': windowed['revisions']}
    if 'counted' in windowed:
      queue_names = self._queue_names
      tables['window_contacts'] = windowed['counted'] | 'WindowContacts' >> beam.Map(
        lambda counted: counted_contact(counted, queue_names)
      )
    dead_letters = [calls['dead_letters']]
    spans = [windowed['rows'] | 'DailyMetrics' >> self._daily_metrics]
    if self._rolling_metrics is not None:
      spans.append(windowed['rows'] | 'RollingMetrics' >> self._rolling_metrics)
    for span in spans:
      tables.update((name, rows) for name, rows in span.items() if name != 'dead_letters')
      dead_letters.append(span['dead_letters'])
    if RECORD_UPDATES in calls:
      window_ms = self._window_ms
      late.append(
        calls[RECORD_UPDATES]
        | 'UpdateRows' >> beam.Map(lambda c: _update_row(source, window_ms, c))
      )
    if QUEUE_TRANSITIONS in calls:
      live = calls[QUEUE_TRANSITIONS] | 'LiveQueueStatus' >> self._live_queue_status
      max_wait_ms = self._max_queue_wait_ms
      late.append(
        live[LOST_CONTACTS] | 'LostRows' >> beam.Map(lambda e: _lost_row(source, max_wait_ms, e))
      )
      tables['queue_status'] = live['queue_status']
      tables[WAITING_CONTACTS] = live[WAITING_CONTACTS]
    return {
      **tables,
      'late_events': late[0] if len(late) == 1 else late | 'LateEvents' >> beam.Flatten(),
      'dead_letters': dead_letters | 'DeadLetters' >> beam.Flatten(),
    }

  def _kept(self, name: str, records: beam.PCollection) -> beam.PCollection:
    """`records` of the counted channels (`--channels`); dead letters are
    kept whatever their channel. No step at all when every channel counts
    (the default)."""
    if self._channels is None or name == 'dead_letters':
      return records
    counter = 'other_channels' if name == 'offered' else f'other_channels_{name}'
    return records | f'KeepChannels[{name}]' >> KeepChannels(self._channels, counter)
