"""Amazon Connect contact trace records (`amazon_connect` format).

Each record is one contact record (CTR) as the contact-record export
streams it through Kinesis to Kafka, one JSON object per record. Field names
are Amazon's (Amazon Connect Administrator Guide, "Contact records data
model"); times are ISO-8601 strings (transforms/formats/fields.py).

| OfferedCall    | CTR field                         | rule                   |
|----------------|-----------------------------------|------------------------|
| (filter)       | `Queue`                           | an object: one offered |
|                |                                   | call; null or missing: |
|                |                                   | never queued, passed   |
|                |                                   | over, counted          |
| `call_id`      | `ContactId`                       | de-duplicated (records |
|                |                                   | come at least once)    |
| `queue_id`     | `Queue.Name` (`Queue.ARN` with    |                        |
|                | `--connect_queue_key=arn`)        |                        |
| `timestamp`    | `Queue.DequeueTimestamp`          | decides the window     |
| `outcome`      | `Agent.ConnectedToAgentTimestamp` | set: ANSWERED; `Agent` |
|                |                                   | null or without it:    |
|                |                                   | ABANDONED              |
| `wait_seconds` | `Queue.Duration` (seconds)        | always known           |

Also checked: `Channel` (string), `InitiationTimestamp` (ISO-8601),
`DisconnectTimestamp` and `LastUpdateTimestamp` (ISO-8601 or null),
`Queue.EnqueueTimestamp` (ISO-8601, not after `DequeueTimestamp`:
`dequeue_before_enqueue`), the other queue key (string or null), `Agent`
(object or null). The first arrival of a `ContactId` wins; a later update of
the same contact (a newer `LastUpdateTimestamp`) is a duplicate. Queued
contacts advance the replay watermark with their `DequeueTimestamp`.
"""

from typing import Iterator, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from options.config import DEFAULT_FIELD_RULES, FieldRules
from transforms import parsing
from transforms.dedupe import DedupeByKey
from transforms.event_time import at_event_time
from transforms.formats import fields
from transforms.records import ABANDONED, ANSWERED, DeadLetter, OfferedCall, SourceRecord

METRICS_NAMESPACE = 'amazon_connect'
QUEUE_KEYS = {'name': 'Name', 'arn': 'ARN'}


def parse_contact_record(
  raw: bytes, queue_key: str = 'name', rules: FieldRules = DEFAULT_FIELD_RULES
) -> Optional[OfferedCall]:
  """One raw CTR as an OfferedCall; None for a valid contact that never
  queued. `queue_key` is a key of QUEUE_KEYS. Raises parsing.InvalidRecord
  with a specific reason."""
  obj = parsing.decode_json_object(raw)
  contact_id = parsing.required_str(obj, 'ContactId', rules)
  parsing.required_str(obj, 'Channel', rules)
  fields.required_iso_time_ms(obj, 'InitiationTimestamp', rules)
  for name in ('DisconnectTimestamp', 'LastUpdateTimestamp'):
    fields.optional_iso_time_ms(obj, name, rules)
  queue = fields.optional_object(obj, 'Queue')
  agent = fields.optional_object(obj, 'Agent')
  connected_ms = (
    None
    if agent is None
    else fields.optional_iso_time_ms(agent, 'ConnectedToAgentTimestamp', rules)
  )
  if queue is None:
    return None
  key_field = QUEUE_KEYS[queue_key]
  queue_id = parsing.required_str(queue, key_field, rules)
  for other in QUEUE_KEYS.values():
    if other != key_field:
      parsing.optional_str(queue, other, rules)
  enqueued_ms = fields.required_iso_time_ms(queue, 'EnqueueTimestamp', rules)
  dequeued_ms = fields.required_iso_time_ms(queue, 'DequeueTimestamp', rules)
  if dequeued_ms < enqueued_ms:
    raise parsing.InvalidRecord(
      'dequeue_before_enqueue',
      f'"Queue.DequeueTimestamp" is {enqueued_ms - dequeued_ms} ms before "Queue.EnqueueTimestamp"',
    )
  wait = parsing.required_non_negative_number(queue, 'Duration', rules.max_wait_seconds)
  return OfferedCall(
    call_id=contact_id,
    queue_id=queue_id,
    timestamp=dequeued_ms,
    outcome=ABANDONED if connected_ms is None else ANSWERED,
    wait_seconds=wait,
  )


def contact_record_time_ms(
  raw: bytes,
  above_ms: Optional[int] = None,
  queue_key: str = 'name',
  rules: FieldRules = DEFAULT_FIELD_RULES,
) -> Optional[int]:
  """The `Queue.DequeueTimestamp` of a valid queued CTR (above `above_ms`
  if given), else None (for the replay watermark)."""

  def queued(record: bytes) -> OfferedCall:
    offered = parse_contact_record(record, queue_key, rules)
    if offered is None:
      # A contact that never queued has no event time the metrics use.
      raise parsing.InvalidRecord('never_queued', 'no Queue')
    return offered

  return fields.event_time_above(queued, raw, above_ms)


class _ParseConnectFn(beam.DoFn):
  def __init__(self, queue_key: str, rules: FieldRules):
    self._queue_key = queue_key
    self._rules = rules
    self._queued = Metrics.counter(METRICS_NAMESPACE, 'queued_contacts')
    self._never_queued = Metrics.counter(METRICS_NAMESPACE, 'never_queued')

  def process(self, record: SourceRecord) -> Iterator:
    try:
      offered = parse_contact_record(record.raw, self._queue_key, self._rules)
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, METRICS_NAMESPACE)
      return
    if offered is None:
      self._never_queued.inc()
      return
    self._queued.inc()
    yield at_event_time(offered, offered.timestamp)


class ConnectOfferedCalls(beam.PTransform):
  """Amazon Connect contact records to de-duplicated offered calls.

  Input: PCollection[SourceRecord].
  Output: dict `offered`: PCollection[OfferedCall], the first arrival of
  each queued `ContactId` (later ones counted in `amazon_connect/duplicates`),
  event-timed at `Queue.DequeueTimestamp`; `dead_letters`:
  PCollection[DeadLetter].
  """

  def __init__(
    self, dedupe_ttl_seconds: int, queue_key: str, rules: FieldRules = DEFAULT_FIELD_RULES
  ):
    super().__init__()
    self._rules = rules
    if queue_key not in QUEUE_KEYS:
      raise ValueError(f'queue key must be one of {", ".join(QUEUE_KEYS)}, got {queue_key!r}')
    self._dedupe_ttl = dedupe_ttl_seconds
    self._queue_key = queue_key

  def expand(self, records):
    # Typed outputs: the stateful steps downstream then get the records'
    # RowCoder (transforms/records.py) instead of pickling each one.
    parsed = records | 'Parse' >> beam.ParDo(
      _ParseConnectFn(self._queue_key, self._rules)
    ).with_output_types(OfferedCall, **{parsing.DEAD_LETTERS: DeadLetter}).with_outputs(
      parsing.DEAD_LETTERS, main='offered'
    )
    offered = parsed.offered | 'Dedupe' >> DedupeByKey(
      lambda c: c.call_id, lambda c: c.timestamp, self._dedupe_ttl, METRICS_NAMESPACE
    )
    return {'offered': offered, 'dead_letters': parsed.dead_letters}
