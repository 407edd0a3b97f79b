#!/usr/bin/env python3
"""Produce a JSON-lines event file to a Kafka topic, in file order, with the
payload's event time as the Kafka record TIMESTAMP (CreateTime).

    python scripts/produce_events.py samples/call_events.jsonl --topic cc-call-logs
    python scripts/produce_events.py samples/data_actions.jsonl \\
        --topic cxone-data-actions --rebase-to-now --rebased-out /tmp/produced.jsonl

One line = one record, the line's bytes as the value (newline stripped; an
empty line is an empty record, malformed lines are sent as they are, so the
job's dead-letter path sees them).

* Key: the payload's ``call_uuid`` (call events) or ``customerId`` (CXone
  Data Actions: interactions and profile updates of one customer land on one
  partition, in order), else ``interactionId``; no key (the client's
  partitioner picks) for lines without one. ``--key-field`` forces a field.
* Record timestamp: the payload ``timestamp`` (epoch ms; an int, or an
  integral float, in [2000-01-01, 2100-01-01), at most MAX_FUTURE_SKEW_MS
  ahead of the clock: a far-future record timestamp would move the
  partition watermark to it, and the broker refuses it anyway,
  scripts/stack/kafka.sh). A line without a usable
  timestamp (malformed ones) gets the timestamp of the last line before it
  that had one (of the first such line if none did yet), NOT the send time:
  a "now" timestamp in the middle of historic events would advance the
  partition watermark under the CreateTime policy and make everything after
  it late.
* Order: records are sent in file order and a partition keeps it (one
  request in flight per connection, so retries cannot reorder).

Why ``--rebase-to-now``: the job reads with KafkaIO's ``CreateTime``
timestamp policy, whose watermark per partition is the largest record
timestamp seen, with no delay, and which, once a partition has no backlog
(idle, or simply caught up), advances that partition's watermark with
PROCESSING time (the time of the backlog check). A file of historic events
(the generators start on 2026-11-02 by default) read by an unbounded job
therefore has all but the first poll's events behind a watermark at "now":
they are late (beyond window end + allowed lateness) and end up on the late
output instead of in the metrics. ``--rebase-to-now``
shifts every valid payload ``timestamp`` (and the record timestamps with it)
by the same amount so that the file ends just before the current time: the
shift is a multiple of ``--rebase-align-s`` (default 300 s, the default
window size; the generators' disorder planted around window ends keeps its
meaning) chosen so that the aligned period holding the newest event ends at
or before now. Every window of the file can then close on the
processing-time watermark of the caught-up partitions, and none is late.
Lines whose timestamp is rewritten are re-serialised as compact JSON (same
key order; exact duplicates stay exact duplicates); other lines are sent
byte-for-byte. The rebased payloads are what the topic holds: compute a
reference from ``--rebased-out``, not from the input file. Rebasing also
keeps old CreateTime records away from the broker's time retention
(``log.retention.hours``, 7 days by default).

Empty partitions: the CreateTime policy advances an idle partition only
once it has read a record (with a positive timestamp); a partition that
never received one keeps the source's watermark at -inf and no window ever
fires (measured: 1 of 3 partitions empty, no rows after minutes; all 3
filled, exact rows in under 70 s). Keys spread records over all partitions
of a topic with few partitions; check that every partition got some.

A job bounded with ``--kafka_max_num_records`` reads through KafkaIO's
bounded adapter (watermark -inf until the read is done), so its results do
not depend on the timestamps; rebasing is then harmless.

Prints the produced count and rate (and the shift) on stdout. Needs
kafka-python; nothing from the pipeline code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z (inclusive)
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z (exclusive)
# The broker's message.timestamp.after.max.ms (scripts/stack/kafka.sh).
MAX_FUTURE_SKEW_MS = 300_000
KEY_FIELDS = ('call_uuid', 'customerId', 'interactionId')


def event_time_ms(value: object) -> Optional[int]:
  """A payload ``timestamp`` as epoch ms if it is a valid event time."""
  if type(value) is float and value.is_integer():
    value = int(value)
  if (
    type(value) is int
    and MIN_TS_MS <= value < MAX_TS_MS
    and value <= time.time() * 1000 + MAX_FUTURE_SKEW_MS
  ):
    return value
  return None


def _decode(line: bytes) -> Optional[dict]:
  try:
    obj = json.loads(line)
  except (ValueError, UnicodeDecodeError, RecursionError):
    return None
  return obj if isinstance(obj, dict) else None


def read_lines(path: str) -> List[bytes]:
  """The file's lines as bytes, without their newline (file order)."""
  with open(path, 'rb') as f:
    data = f.read()
  lines = data.split(b'\n')
  if lines and lines[-1] == b'':
    lines.pop()  # the newline ending the last line
  return lines


def rebase_lines(
  lines: Sequence[bytes], now_ms: int, align_ms: int = 300_000
) -> Tuple[List[bytes], int]:
  """Shift every valid payload timestamp by one multiple of ``align_ms``,
  the largest that keeps the end of the ``align_ms`` period holding the
  newest event at or before ``now_ms`` (so the newest event lands less than
  2 * ``align_ms`` before now). Out: (new lines, shift in ms). Lines without
  a valid timestamp are unchanged; rewritten lines are compact JSON in the
  same key order."""
  newest = None
  for line in lines:
    obj = _decode(line)
    ts = event_time_ms(obj.get('timestamp')) if obj is not None else None
    if ts is not None and (newest is None or ts > newest):
      newest = ts
  if newest is None:
    return list(lines), 0
  if align_ms > 0:
    shift = now_ms - (newest // align_ms + 1) * align_ms
    shift -= shift % align_ms
  else:
    shift = now_ms - newest
  out = []
  for line in lines:
    obj = _decode(line)
    ts = event_time_ms(obj.get('timestamp')) if obj is not None else None
    if ts is None:
      out.append(line)
      continue
    value = obj['timestamp']
    obj['timestamp'] = ts + shift if type(value) is int else float(ts + shift)
    out.append(json.dumps(obj, separators=(',', ':')).encode('utf-8'))
  return out, shift


def key_and_timestamp(
  line: bytes, key_field: Optional[str]
) -> Tuple[Optional[bytes], Optional[int]]:
  obj = _decode(line)
  if obj is None:
    return None, None
  key = None
  for field in (key_field,) if key_field else KEY_FIELDS:
    value = obj.get(field)
    if isinstance(value, str) and value:
      # A lone surrogate (a hostile record) still gets a key.
      key = value.encode('utf-8', 'surrogatepass')
      break
  return key, event_time_ms(obj.get('timestamp'))


def produce_lines(
  lines: Iterable[bytes],
  topic: str,
  bootstrap: str,
  key_field: Optional[str] = None,
  keep_metadata: bool = False,
  producer_config: Optional[Dict[str, object]] = None,
) -> Dict[str, object]:
  """Send each line as one record, in order; waits until all are acked.

  Out: ``count``, ``seconds``, ``rate``, ``per_partition`` (records sent
  to each partition of the topic, 0 included) and, with ``keep_metadata``,
  ``records``: one ``(partition, offset, timestamp_ms)`` per line, in
  file order. Raises on the first failed send.
  """
  from kafka import KafkaProducer  # kafka-python

  config = dict(
    bootstrap_servers=bootstrap,
    acks='all',
    linger_ms=20,
    batch_size=256 * 1024,
    retries=5,
    max_in_flight_requests_per_connection=1,
    request_timeout_ms=30_000,
    max_block_ms=30_000,
  )
  config.update(producer_config or {})
  producer = KafkaProducer(**config)
  futures = []
  count = 0
  last_ts: Optional[int] = None
  t0 = time.monotonic()
  try:
    buffered: List[Tuple[bytes, Optional[bytes]]] = []
    for line in lines:
      key, ts = key_and_timestamp(line, key_field)
      if ts is not None:
        last_ts = ts
      if last_ts is None:  # hold leading lines until a timestamp is known
        buffered.append((line, key))
        continue
      for held, held_key in buffered:
        futures.append(producer.send(topic, value=held, key=held_key, timestamp_ms=last_ts))
        count += 1
      buffered.clear()
      futures.append(producer.send(topic, value=line, key=key, timestamp_ms=last_ts))
      count += 1
    for held, held_key in buffered:  # no line had a timestamp at all
      futures.append(producer.send(topic, value=held, key=held_key))
      count += 1
    producer.flush()
    records = []
    per_partition: Dict[int, int] = {p: 0 for p in producer.partitions_for(topic) or ()}
    for future in futures:
      meta = future.get(timeout=60)  # raises the send's error, if any
      per_partition[meta.partition] = per_partition.get(meta.partition, 0) + 1
      if keep_metadata:
        records.append((meta.partition, meta.offset, meta.timestamp))
  finally:
    producer.close(timeout=30)
  seconds = time.monotonic() - t0
  result: Dict[str, object] = {
    'count': count,
    'seconds': seconds,
    'rate': count / seconds if seconds > 0 else float('inf'),
    'per_partition': dict(sorted(per_partition.items())),
  }
  if keep_metadata:
    result['records'] = records
  return result


def security_config(
  sasl_user: Optional[str], password_env: str, ssl_cafile: Optional[str]
) -> Dict[str, object]:
  """kafka-python settings of --sasl-user, --sasl-password-env and
  --ssl-cafile (SCRAM-SHA-512 over SASL_SSL, the
  secured broker of scripts/stack.sh up --secure); {} without a user.
  Raises ValueError when the password variable is not set."""
  if not sasl_user:
    return {}
  if password_env not in os.environ:
    raise ValueError(f'--sasl-user needs the password in ${password_env}')
  return dict(
    security_protocol='SASL_SSL',
    sasl_mechanism='SCRAM-SHA-512',
    sasl_plain_username=sasl_user,
    sasl_plain_password=os.environ[password_env],
    ssl_cafile=ssl_cafile,
  )


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
    description='Produce a JSON-lines file to a Kafka topic in file order, record '
    'timestamp = payload event time.',
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  parser.add_argument('path', help='JSON-lines file (file order = arrival order)')
  parser.add_argument('--topic', required=True)
  parser.add_argument('--bootstrap-servers', default='127.0.0.1:9092')
  parser.add_argument(
    '--key-field',
    default=None,
    help='payload field used as the record key (default: the first of '
    + ', '.join(KEY_FIELDS)
    + ' present)',
  )
  parser.add_argument(
    '--rebase-to-now',
    action='store_true',
    help='shift event times so the file ends now (see the module doc)',
  )
  parser.add_argument(
    '--rebase-align-s',
    type=float,
    default=300.0,
    help='the rebase shift is a multiple of this (0: exact)',
  )
  parser.add_argument(
    '--rebased-out', default=None, help='write the produced payloads (after rebasing) to this file'
  )
  parser.add_argument(
    '--max-request-size',
    type=int,
    default=1_048_576,
    help="producer max_request_size; the broker's message.max.bytes must allow it too",
  )
  parser.add_argument(
    '--sasl-user',
    default=None,
    help='log in over SASL_SSL with SCRAM-SHA-512 as this user (the '
    'secured broker of scripts/stack.sh up --secure: cc-pipeline)',
  )
  parser.add_argument(
    '--sasl-password-env',
    default='KAFKA_PASSWORD',
    help='environment variable holding the --sasl-user password',
  )
  parser.add_argument(
    '--ssl-cafile', default=None, help="PEM CA of the broker's certificate (with --sasl-user)"
  )
  args = parser.parse_args(argv)
  try:
    security = security_config(args.sasl_user, args.sasl_password_env, args.ssl_cafile)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2

  lines = read_lines(args.path)
  shift = 0
  if args.rebase_to_now:
    lines, shift = rebase_lines(lines, int(time.time() * 1000), int(args.rebase_align_s * 1000))
  if args.rebased_out:
    with open(args.rebased_out, 'wb') as f:
      f.write(b''.join(line + b'\n' for line in lines))
  too_big = [i for i, line in enumerate(lines, 1) if len(line) > args.max_request_size - 512]
  if too_big:
    print(
      f"error: line(s) {too_big[:5]} exceed the producer's max request size "
      f'({args.max_request_size} bytes); raise --max-request-size and the '
      "broker's message.max.bytes, or drop them",
      file=sys.stderr,
    )
    return 2
  result = produce_lines(
    lines,
    args.topic,
    args.bootstrap_servers,
    args.key_field,
    producer_config={'max_request_size': args.max_request_size, **security},
  )
  rebased = f', event times shifted by {shift / 1000:+.0f} s' if args.rebase_to_now else ''
  print(
    f'produced {result["count"]} records to {args.topic} in {result["seconds"]:.2f} s '
    f'({result["rate"]:.0f} records/s){rebased}; per partition {result["per_partition"]}'
  )
  empty = [p for p, n in result['per_partition'].items() if n == 0]
  if empty:
    print(
      f'warning: partition(s) {empty} of {args.topic} got no record from this file; '
      "a partition that never had one holds the job's watermark (see the doc of "
      'scripts/produce_events.py)',
      file=sys.stderr,
    )
  return 0


if __name__ == '__main__':
  sys.exit(main())
