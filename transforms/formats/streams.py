"""Which stream a record belongs to, when it is not the one a format reads.

A topic wired to the wrong `--call_event_format` (or a producer that mixes
streams) otherwise shows up as thousands of `missing_field` dead letters
that send an operator looking for a broken producer. Each format asks
`refuse_other_stream` only after its own validation failed, so the check
costs nothing on good records; a record that is recognisably another
stream becomes a `wrong_stream` dead letter whose detail names it and the
format that reads it.

The marks are fields each stream's documentation always sets
(docs/vendor_formats.md):
- Amazon Connect contact events: the EventBridge `detail-type`
  "Amazon Connect Contact Event" (Amazon Connect Administrator Guide,
  "Contact events data model");
- Amazon Connect contact records: `ContactId` with
  `AWSContactTraceRecordFormatVersion` ("Contact records data model");
- Genesys Cloud notifications: a `topicName` beginning `v2.` at the top
  level or in an EventBridge `detail`;
- the product's own call events: `call_uuid` with `event_type`.
"""

from typing import Any, Dict, Optional

from transforms.parsing import InvalidRecord

SEED = 'seed'
GENESYS_CLOUD = 'genesys_cloud'
AMAZON_CONNECT = 'amazon_connect'
CONNECT_CONTACT_EVENT = 'Amazon Connect Contact Event'

_DESCRIPTIONS = {
  SEED: "a call event of the product's own format (read by --call_event_format=seed)",
  GENESYS_CLOUD: 'a Genesys Cloud notification (read by --call_event_format=genesys_cloud)',
  AMAZON_CONNECT: 'an Amazon Connect contact record (read by --call_event_format=amazon_connect)',
  CONNECT_CONTACT_EVENT: (
    'an Amazon Connect contact event (EventBridge "Amazon Connect Contact Event"), '
    'not a contact record: contact events are a stream of their own'
  ),
}


def _genesys_topic(obj: Dict[str, Any]) -> bool:
  detail = obj.get('detail')
  note = detail if isinstance(detail, dict) else obj
  topic = note.get('topicName')
  return isinstance(topic, str) and topic.startswith('v2.')


def recognise(obj: Dict[str, Any]) -> Optional[str]:
  """The stream `obj` recognisably belongs to (a key of the descriptions
  above), or None."""
  if obj.get('detail-type') == CONNECT_CONTACT_EVENT:
    return CONNECT_CONTACT_EVENT
  if 'ContactId' in obj and 'AWSContactTraceRecordFormatVersion' in obj:
    return AMAZON_CONNECT
  if _genesys_topic(obj):
    return GENESYS_CLOUD
  if 'call_uuid' in obj and 'event_type' in obj:
    return SEED
  return None


def refuse_other_stream(obj: Dict[str, Any], own: str, error: InvalidRecord) -> InvalidRecord:
  """The error to report for `obj`, which failed the format `own` with
  `error`: a `wrong_stream` error if `obj` is recognisably another stream,
  else `error` itself."""
  other = recognise(obj)
  if other is None or other == own:
    return error
  return InvalidRecord('wrong_stream', f'{_DESCRIPTIONS[other]}; this job reads {own}')
