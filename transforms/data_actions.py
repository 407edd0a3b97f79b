"""ParseDataActions: raw `cxone-data-actions` records to interactions and
customer-profile updates."""

from typing import Iterator, Optional, Union

import apache_beam as beam
from apache_beam.metrics import Metrics

from options.config import DEFAULT_FIELD_RULES, FieldRules
from transforms import parsing
from transforms.event_time import at_event_time
from transforms.records import CustomerProfile, DeadLetter, Interaction, SourceRecord

CUSTOMER_UPDATES = 'customer_updates'
DEAD_LETTERS = parsing.DEAD_LETTERS
CUSTOMER_UPDATE_RECORD_TYPE = 'customer_update'


def parse_data_action(
  raw: bytes, rules: FieldRules = DEFAULT_FIELD_RULES
) -> Union[Interaction, CustomerProfile]:
  """Validates one raw record as an interaction or a customer update.

  A record without `recordType` (or with null) is an interaction; one with
  `recordType: "customer_update"` is a profile update; any other record type
  is rejected rather than guessed at. Raises parsing.InvalidRecord, and
  nothing else whatever the bytes.
  """
  obj = parsing.decode_json_object(raw)
  record_type: Optional[str] = parsing.optional_str(obj, 'recordType', rules)
  if record_type == CUSTOMER_UPDATE_RECORD_TYPE:
    return CustomerProfile(
      customer_id=parsing.required_str(obj, 'customerId', rules),
      tier=parsing.required_str(obj, 'tier', rules),
      region=parsing.required_str(obj, 'region', rules),
      timestamp=parsing.required_event_time_ms(obj, 'timestamp', rules),
    )
  if record_type is not None:
    raise parsing.InvalidRecord('unknown_record_type', f'recordType {record_type[:100]!r}')
  return Interaction(
    interaction_id=parsing.required_str(obj, 'interactionId', rules),
    customer_id=parsing.required_str(obj, 'customerId', rules),
    channel=parsing.required_str(obj, 'channel', rules),
    status=parsing.required_str(obj, 'status', rules),
    timestamp=parsing.required_event_time_ms(obj, 'timestamp', rules),
  )


def data_action_time_ms(
  raw: bytes, above_ms: Optional[int] = None, rules: FieldRules = DEFAULT_FIELD_RULES
) -> Optional[int]:
  """Event time of a valid record of either kind (above `above_ms` if
  given), else None (for the replay watermark)."""
  return parsing.event_time_or_none(lambda r: parse_data_action(r, rules), raw, above_ms)


class _ParseDataActionsFn(beam.DoFn):
  def __init__(self, rules: FieldRules):
    self._rules = rules
    self._interactions = Metrics.counter('data_actions', 'interactions')
    self._updates = Metrics.counter('data_actions', 'customer_updates')

  def process(self, record: SourceRecord) -> Iterator:
    try:
      parsed = parse_data_action(record.raw, self._rules)
    except Exception as error:  # pylint: disable=broad-except
      yield parsing.dead_letter_output(record, error, 'data_actions')
      return
    stamped = at_event_time(parsed, parsed.timestamp)
    if isinstance(parsed, CustomerProfile):
      self._updates.inc()
      yield beam.pvalue.TaggedOutput(CUSTOMER_UPDATES, stamped)
    else:
      self._interactions.inc()
      yield stamped


class ParseDataActions(beam.PTransform):
  """Validates CXone Data Action records and routes them by kind.

  Input: PCollection[SourceRecord].
  Outputs (a DoOutputsTuple), all timestamped with payload event time:
    main (`interactions`): PCollection[Interaction].
    `customer_updates`: PCollection[CustomerProfile], the side output.
    `dead_letters`: PCollection[DeadLetter] with a specific reason.
  `rules`: the limits on ids and event time (options/config.py).
  """

  def __init__(self, rules: FieldRules = DEFAULT_FIELD_RULES):
    super().__init__()
    self._rules = rules

  def expand(self, records):
    # Typed outputs: the stateful steps downstream then get the records'
    # RowCoder (transforms/records.py) instead of pickling each one.
    return records | beam.ParDo(_ParseDataActionsFn(self._rules)).with_output_types(
      Interaction, **{CUSTOMER_UPDATES: CustomerProfile, DEAD_LETTERS: DeadLetter}
    ).with_outputs(CUSTOMER_UPDATES, DEAD_LETTERS, main='interactions')
