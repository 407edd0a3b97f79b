"""Kafka through Beam's cross-language KafkaIO: a source of SourceRecords and
a ResultSink writing JSON rows keyed by the row key.

The sink's producer runs in Java, where Python cannot see a record's send
error, and a record the producer refuses fails its bundle on every retry. So
every row is checked in Python before it is handed over: strict JSON (no NaN
or infinity), valid UTF-8, and no larger than the producer takes
(`max.request.size`); a row that fails becomes a dead letter instead.

Event time: records are read with the `CreateTime` timestamp policy, so the
source watermark is the largest record timestamp seen per partition (KafkaIO
has no delay for it; `--max_out_of_orderness_seconds` is applied by the event-time
operators downstream). Our producers set the record timestamp to the event
time. A producer that does not (broker `LogAppendTime`, or a client that
leaves the timestamp to the send time) makes the watermark follow ingestion
time: every event delivered later than the out-of-orderness bound then
lands on the late output, counted, never lost; the payload `timestamp`
still decides the window. A caught-up (idle) partition lets KafkaIO advance
its watermark with processing time, so a quiet source cannot hold windows
open -- but only once the partition has delivered a record: the CreateTime
policy keeps a partition that never had one at -inf, and with it the whole
source (measured on Flink: no window ever fired with 1 of 3 partitions
empty). Create topics with no more partitions than producers fill.
"""

import json
import math
import time
from typing import Dict, Iterator, List, Mapping, NamedTuple, Optional, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.io.kafka import ReadFromKafka, WriteToKafka
from apache_beam.metrics import Metrics
from apache_beam.transforms.external import ExternalTransform, NamedTupleBasedPayloadBuilder
from apache_beam.transforms.window import GlobalWindows

from options.config import KafkaClientConfig
from transforms.records import DeadLetter, SourceRecord
from transforms.schema import Table
from transforms.sinks import REJECTED, ResultSink, primary_key_json, rejected_row

# Result table -> topic; the names the stack scripts create.
TOPICS: Dict[str, str] = {
  'abandon_metrics': 'cc-abandon-metrics',
  'late_events': 'cc-late-events',
  'dead_letters': 'cc-dead-letters',
  'pattern_alerts': 'cxone-pattern-alerts',
  'interaction_volumes': 'cxone-interaction-volumes',
  'queue_status': 'cc-queue-status',
  'waiting_contacts': 'cc-waiting-contacts',
  'agent_status': 'cc-agent-status',
  'agent_metrics': 'cc-agent-metrics',
  'agent_activity': 'cc-agent-activity',
  'rolling_metrics': 'cc-rolling-metrics',
  'daily_metrics': 'cc-daily-metrics',
  'alerts': 'cc-alerts',
  'alert_notifications': 'cc-alert-notifications',
  'alert_deliveries': 'cc-alert-deliveries',
  'window_contacts': 'cc-window-contacts',
  'metric_revisions': 'cc-metric-revisions',
}

# The producer's default max.request.size. It refuses a record whose size
# estimate exceeds it: key + value + a batch header (61 bytes, Kafka's
# DefaultRecordBatch.RECORD_BATCH_OVERHEAD) + a record header (at most 21,
# DefaultRecord.MAX_RECORD_OVERHEAD); no headers are sent.
DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024
RECORD_OVERHEAD_BYTES = 61 + 21


class _ThrottleFn(beam.DoFn):
  """A token bucket that blocks (sleeps) when empty and never drops.

  Blocking holds the bundle, so the runner's back-pressure reaches the
  Kafka consumer instead of records being discarded as in the seed's
  limiter. The cap applies per DoFn instance (per parallel reader).
  """

  def __init__(self, max_per_second: float):
    self._rate = max_per_second
    self._waited_ms = Metrics.counter('kafka_source', 'throttled_ms')

  def setup(self):
    self._tokens = self._rate
    self._last = time.monotonic()

  def process(self, element) -> Iterator:
    now = time.monotonic()
    self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
    self._last = now
    if self._tokens < 1:
      wait = (1 - self._tokens) / self._rate
      time.sleep(wait)
      self._waited_ms.inc(int(wait * 1000))
      self._tokens = 1
      self._last = time.monotonic()
    self._tokens -= 1
    yield element


class Throttle(beam.PTransform):
  """Caps the element rate; blocks, never drops. Input = output."""

  def __init__(self, max_per_second: float):
    super().__init__()
    if max_per_second <= 0:
      raise ValueError(f'rate cap must be > 0, got {max_per_second}')
    self._max_per_second = max_per_second

  def expand(self, pcoll):
    return pcoll | beam.ParDo(_ThrottleFn(self._max_per_second))


class _ReadPayload(NamedTuple):
  """ReadFromKafka's payload without the fields Beam 2.77's Python SDK added
  after Java 2.62 (dynamic_read_poll_interval_seconds,
  consumer_factory_fn_class, consumer_factory_fn_params). A Java expansion
  service looks up one setter per payload field, so the stock payload fails
  on the Beam 2.62 KafkaIO that matches our Flink job server with "missing a
  setter setDynamicReadPollIntervalSeconds"; newer services take this subset
  too (absent fields keep their defaults)."""

  consumer_config: Mapping[str, str]
  topics: List[str]
  key_deserializer: str
  value_deserializer: str
  start_read_time: Optional[int]
  max_num_records: Optional[int]
  max_read_time: Optional[int]
  commit_offset_in_finalize: bool
  timestamp_policy: str
  consumer_polling_timeout: Optional[int]
  redistribute: Optional[bool]
  redistribute_num_keys: Optional[np.int32]
  allow_duplicates: Optional[bool]


def _read_from_kafka_with_metadata(
  consumer_config, topics, max_num_records, expansion_service
) -> ExternalTransform:
  return ExternalTransform(
    ReadFromKafka.URN_WITH_METADATA,
    NamedTupleBasedPayloadBuilder(
      _ReadPayload(
        consumer_config=consumer_config,
        topics=topics,
        key_deserializer=ReadFromKafka.byte_array_deserializer,
        value_deserializer=ReadFromKafka.byte_array_deserializer,
        start_read_time=None,
        max_num_records=max_num_records,
        max_read_time=None,
        commit_offset_in_finalize=True,
        timestamp_policy=ReadFromKafka.create_time_policy,
        consumer_polling_timeout=2,
        redistribute=False,
        redistribute_num_keys=np.int32(0),
        allow_duplicates=False,
      )
    ),
    expansion_service,
  )


def _to_source_record(row) -> SourceRecord:
  return SourceRecord(
    source=row.topic,
    origin=f'{row.topic}/{row.partition}@{row.offset}',
    raw=bytes(row.value or b''),
  )


class ReadKafkaRecords(beam.PTransform):
  """Raw records of one topic, through cross-language KafkaIO.

  Input: PBegin. Output: PCollection[SourceRecord] with `origin` =
  "topic/partition@offset", timestamped with the record's CreateTime.
  Offsets are committed when the runner finalizes a checkpoint
  (`commit_offset_in_finalize`), i.e. only after everything downstream of
  that checkpoint is durable; the consumer group is `group_id`.
  `consumer_config` is passed to the Kafka consumer as is (SASL/TLS
  settings included) and never logged.
  """

  def __init__(
    self,
    topic: str,
    bootstrap_servers: str,
    group_id: str,
    expansion_service: str,
    consumer_config: Optional[Mapping[str, str]] = None,
    max_events_per_second: Optional[float] = None,
    max_num_records: Optional[int] = None,
  ):
    super().__init__()
    self._topic = topic
    self._config = {
      'bootstrap.servers': bootstrap_servers,
      'group.id': group_id,
      'auto.offset.reset': 'earliest',
      # Offsets move only with checkpoints (commit_offset_in_finalize).
      'enable.auto.commit': 'false',
      **(consumer_config or {}),
    }
    self._expansion_service = expansion_service
    self._max_events_per_second = max_events_per_second
    self._max_num_records = max_num_records

  def expand(self, pbegin):
    records = (
      pbegin
      | 'ReadFromKafka'
      >> _read_from_kafka_with_metadata(
        self._config, [self._topic], self._max_num_records, self._expansion_service
      )
      | 'ToSourceRecord' >> beam.Map(_to_source_record)
    )
    if self._max_events_per_second:
      records = records | 'Throttle' >> Throttle(self._max_events_per_second)
    return records


def to_kafka_kv(table: Table, row: tuple) -> Tuple[bytes, bytes]:
  """(key, value) bytes: the row's primary key as a compact JSON array
  (`["Q-1",1000]`, see `primary_key_json`), the row as a JSON object (field
  names as in the table), both UTF-8.

  Raises UnicodeEncodeError for text that is not valid Unicode (a lone
  surrogate) and ValueError for a float that JSON cannot hold (NaN,
  infinity): consumers' strict parsers would refuse them.
  """
  key = primary_key_json(table, row).encode('utf-8')
  value = json.dumps(row._asdict(), sort_keys=True, ensure_ascii=False, allow_nan=False)
  return key, value.encode('utf-8')


def max_request_size(producer_config: Mapping[str, str]) -> int:
  """The producer's `max.request.size`; ValueError when it is no size."""
  value = producer_config.get('max.request.size', DEFAULT_MAX_REQUEST_SIZE)
  try:
    size = int(value)
  except ValueError:
    size = 0
  if size <= RECORD_OVERHEAD_BYTES:
    raise ValueError(
      f'Kafka producer setting max.request.size={value!r}: expected a size '
      f'in bytes above {RECORD_OVERHEAD_BYTES}'
    )
  return size


class _ToKafkaRecordFn(beam.DoFn):
  """Rows to (key, value); rows the producer would refuse to the
  `rejected` output as dead letters."""

  def __init__(self, table: Table, max_request_bytes: int):
    self._table = table
    self._max_bytes = max_request_bytes

  def process(self, row) -> Iterator:
    try:
      key, value = to_kafka_kv(self._table, row)
    except UnicodeEncodeError as e:
      reason, detail = 'not_encodable', str(e)
    except ValueError as e:
      fields = [
        name for name, v in row._asdict().items() if isinstance(v, float) and not math.isfinite(v)
      ]
      reason, detail = 'not_strict_json', f'{e}: {", ".join(fields)}'
    else:
      size = len(key) + len(value) + RECORD_OVERHEAD_BYTES
      if size <= self._max_bytes:
        yield key, value
        return
      reason = 'row_too_large'
      detail = (
        f'{size} bytes with the record overhead; the producer takes '
        f'at most {self._max_bytes} (max.request.size)'
      )
    letter = rejected_row('kafka', self._table, row, reason, detail)
    if letter is not None:
      yield beam.pvalue.TaggedOutput(REJECTED, letter)


class ToKafkaRecords(beam.PTransform):
  """Rows of one table as the (key, value) bytes of Kafka records
  (`to_kafka_kv`), checked as the producer would check them.

  Input: PCollection[table.record_type]. Output: the ParDo's outputs;
  `.records` PCollection[KV[bytes, bytes]], and tagged `rejected`
  PCollection[DeadLetter] for rows the producer would refuse (source
  `sink:kafka`; reasons `not_strict_json`: NaN or infinity,
  `not_encodable`: text that is not valid Unicode, `row_too_large`: over
  `max_request_bytes` with the record overhead), counted per table and
  reason.
  """

  def __init__(self, table: Table, max_request_bytes: int):
    super().__init__()
    self._fn = _ToKafkaRecordFn(table, max_request_bytes)

  def expand(self, rows):
    return rows | beam.ParDo(self._fn).with_output_types(
      beam.typehints.KV[bytes, bytes], **{REJECTED: DeadLetter}
    ).with_outputs(REJECTED, main='records')


class WriteTableToKafka(beam.PTransform):
  """Rows of one table to a topic. Input: PCollection[table.record_type].
  Output: PCollection[DeadLetter] in the global window, the rows not sent
  because the producer would refuse them (`ToKafkaRecords`' `rejected`)."""

  def __init__(
    self, table: Table, topic: str, producer_config: Mapping[str, str], expansion_service: str
  ):
    super().__init__()
    self._table = table
    self._topic = topic
    self._config = dict(producer_config)
    self._max_request_size = max_request_size(self._config)
    self._expansion_service = expansion_service

  def expand(self, rows):
    records = rows | 'ToKV' >> ToKafkaRecords(self._table, self._max_request_size)
    _ = records.records | 'WriteToKafka' >> WriteToKafka(
      producer_config=self._config, topic=self._topic, expansion_service=self._expansion_service
    )
    # In the global window, like WriteRows' output, so the dead letters of
    # every table can be flattened into one write.
    return records[REJECTED] | 'Rejected' >> beam.WindowInto(GlobalWindows())


class KafkaSink(ResultSink):
  """Writes each table to its topic (TOPICS) as JSON keyed by the row key
  (`primary_key_json`), so a compacted topic keeps the latest pane of every
  row. `max.request.size` in the client's settings sets the size check."""

  def __init__(self, client: KafkaClientConfig):
    self._config = client.client_settings()
    self._expansion_service = client.expansion_service

  def write(self, table: Table) -> WriteTableToKafka:
    return WriteTableToKafka(table, TOPICS[table.name], self._config, self._expansion_service)
