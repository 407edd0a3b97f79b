#!/usr/bin/env python3
"""Seeded generator of realistic contact-center call events (JSON lines).

Each output line is one event of the ``cc-call-logs`` schema::

    {"call_uuid": "...", "event_type": "CALL_ENDED", "timestamp": <epoch ms>,
     "queue_id": "Q-101", "abandoned": false, "wait_time_seconds": 14,
     "agent_id": "A-10103"}

FILE ORDER IS ARRIVAL ORDER: a replaying source delivers the lines top to
bottom, so the disorder a streaming job has to cope with is baked into the
order of the lines:

* every event arrives ``U(0, jitter)`` after its event time (inside the
  watermark's bounded out-of-orderness);
* a share arrives after the watermark passed its window end but before the
  allowed lateness expired (late panes must update the row);
* a share arrives far too late (after window end + allowed lateness) and
  must be routed to the late output;
* a share is re-delivered (exact same bytes) a few lines later;
* well-formed events of other lifecycle types (``CALL_STARTED``,
  ``CALL_QUEUED``, ``CALL_ANSWERED``) of the same calls are interleaved;
* a fixed, cycled list of malformed lines (one of each kind by default) is
  inserted at random positions.

The committed sample was made with (5 calls/s, so that 5000 calls span
about four 5-minute windows and the too-late events land inside the file)::

    python -m testing.datagen.calls --out samples/call_events.jsonl \
        --events 5000 --seed 7 --events-per-second 5

Everything is drawn from ``random.Random`` instances seeded from ``--seed``:
the same arguments always give the same bytes. Stdlib only, and nothing from
the project's pipeline code, so the file can be produced anywhere.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import uuid
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from testing.datagen.common import (
  ArrivalStream,
  Coverage,
  add_malformed_arguments,
  add_start_argument,
  check_shares,
  cumulative_weights,
  generator_arg_parser,
  json_line,
  parse_share,
  pick_index,
  plan_malformed,
  reset_counts,
  run_generator_cli,
  write_to,
)

DEFAULT_START_MS = 1793606400000  # 2026-11-02T08:00:00Z
DEFAULT_EVENTS = 100_000
MAX_LINE_BYTES = 1 << 20  # the pipeline's size limit for one record

OTHER_EVENT_TYPES = ('CALL_STARTED', 'CALL_QUEUED', 'CALL_ANSWERED')

# Caps keep the lifecycle of one call bounded; the streaming emitter below
# relies on that bound (see _LOOKAHEAD_MS).
WAIT_CAP_S = 1200
TALK_CAP_S = 1200
IVR_MAX_S = 40
_LOOKAHEAD_MS = (WAIT_CAP_S + TALK_CAP_S + IVR_MAX_S + 1) * 1000


@dataclass(frozen=True)
class QueueProfile:
  """Static behaviour of one queue: share of volume, abandon propensity,
  and a multiplier on its wait times (busier/understaffed queues wait
  longer and lose more callers)."""

  queue_id: str
  weight: float
  abandon_propensity: float
  wait_scale: float


# Eight queues with a skewed volume (a big general line, small specialist
# lines). Volume-weighted abandon propensity is ~10 %, which the diurnal load
# factor moves to roughly 8.5-12.5 %.
_BASE_PROFILES: Tuple[Tuple[float, float, float], ...] = (
  (0.24, 0.07, 0.8),
  (0.18, 0.09, 1.0),
  (0.15, 0.12, 1.2),
  (0.12, 0.08, 0.9),
  (0.10, 0.14, 1.4),
  (0.09, 0.10, 1.1),
  (0.07, 0.18, 1.6),
  (0.05, 0.11, 1.0),
)


def queue_profiles(n_queues: int = 8) -> List[QueueProfile]:
  """Return ``n_queues`` queue profiles ``Q-101``, ``Q-102``, ...

  The first eight come from a fixed table; more queues cycle the table with
  geometrically smaller volume, so the overall abandon rate stays similar.
  """
  if n_queues < 1:
    raise ValueError('need at least one queue')
  profiles = []
  for i in range(n_queues):
    weight, abandon, scale = _BASE_PROFILES[i % len(_BASE_PROFILES)]
    cycle = i // len(_BASE_PROFILES)
    profiles.append(
      QueueProfile(
        queue_id=f'Q-{101 + i}',
        weight=weight * (0.8**cycle),
        abandon_propensity=abandon,
        wait_scale=scale,
      )
    )
  return profiles


def _gauss_bump(hour: float, centre: float, width: float) -> float:
  return math.exp(-(((hour - centre) / width) ** 2))


def diurnal_shape(hour_of_day: float) -> float:
  """Relative call volume at a UTC hour of day (unnormalised).

  A "camel" day: a morning peak around 10:30, an afternoon peak around
  15:00, and a night floor at ~15 % of the peak.
  """
  return 0.1 + 0.9 * (
    0.55 * _gauss_bump(hour_of_day, 10.5, 2.2) + 0.45 * _gauss_bump(hour_of_day, 15.0, 2.5)
  )


# Normalisers: SHAPE_MEAN so that --events-per-second is the 24-hour average
# rate, SHAPE_MAX to express the load as a share of the busiest moment's.
SHAPE_MEAN = sum(diurnal_shape(m / 60.0) for m in range(1440)) / 1440.0
SHAPE_MAX = max(diurnal_shape(m / 60.0) for m in range(1440))


def hour_of_day(t_ms: float) -> float:
  return (t_ms / 3_600_000.0) % 24.0


# --------------------------------------------------------------------------
# Malformed lines
# --------------------------------------------------------------------------

MALFORMED_KINDS: Tuple[str, ...] = (
  'not_json',
  'truncated_json',
  'json_array',
  'json_string',
  'missing_call_uuid',
  'missing_timestamp',
  'timestamp_as_string',
  'timestamp_1970',
  'timestamp_2300',
  'negative_wait',
  'abandoned_as_string',
  'empty_queue_id',
  'empty_line',
  'invalid_utf8',
)
OVERSIZED_KIND = 'oversized'


def malformed_line(kind: str, base_event: dict) -> bytes:
  """Return one malformed line (bytes, no newline) of the given ``kind``.

  ``base_event`` is a well-formed CALL_ENDED event dict; each kind breaks
  exactly one thing about it, so a validator must reject it for that reason
  alone. ``kind`` is one of ``MALFORMED_KINDS`` or ``OVERSIZED_KIND``.
  """
  ev = dict(base_event)
  if kind == 'not_json':
    return b'CALL_ENDED call_uuid=' + ev['call_uuid'].encode() + b' queue=Q-?'
  if kind == 'truncated_json':
    full = json_line(ev)
    return full[: len(full) // 2]
  if kind == 'json_array':
    return json_line([ev['call_uuid'], ev['queue_id'], ev['timestamp']])
  if kind == 'json_string':
    return json_line(ev['call_uuid'])
  if kind == 'missing_call_uuid':
    del ev['call_uuid']
    return json_line(ev)
  if kind == 'missing_timestamp':
    del ev['timestamp']
    return json_line(ev)
  if kind == 'timestamp_as_string':
    ev['timestamp'] = str(ev['timestamp'])
    return json_line(ev)
  if kind == 'timestamp_1970':
    ev['timestamp'] = ev['timestamp'] // 1000  # seconds sent as ms: 1970
    return json_line(ev)
  if kind == 'timestamp_2300':
    ev['timestamp'] = 10_413_792_000_000  # 2300-01-01T00:00:00Z
    return json_line(ev)
  if kind == 'negative_wait':
    ev['wait_time_seconds'] = -abs(int(ev['wait_time_seconds'])) - 1
    return json_line(ev)
  if kind == 'abandoned_as_string':
    ev['abandoned'] = 'yes'
    return json_line(ev)
  if kind == 'empty_queue_id':
    ev['queue_id'] = ''
    return json_line(ev)
  if kind == 'empty_line':
    return b''
  if kind == 'invalid_utf8':
    # A Latin-1 agent name inside otherwise valid JSON: bytes that are
    # not UTF-8 (0xE9 starts a 3-byte sequence that never completes).
    line = json_line(ev)
    return line.replace(b'"queue_id"', b'"agent_name":"Ren\xe9e \xff","queue_id"', 1)
  if kind == OVERSIZED_KIND:
    # Valid JSON and a valid event, only too big for one record.
    ev['notes'] = 'x' * (MAX_LINE_BYTES + 16)
    return json_line(ev)
  raise ValueError(f'unknown malformed kind {kind!r}')


# --------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------


def window_end_ms(ts_ms: int, window_ms: int) -> int:
  return ts_ms - ts_ms % window_ms + window_ms


def generate_call_events(
  n: int,
  seed: int,
  *,
  start_ms: int = DEFAULT_START_MS,
  events_per_second: float = 20.0,
  queues: int = 8,
  jitter_seconds: float = 8.0,
  too_late_share: float = 0.005,
  too_late_seconds: float = 600.0,
  late_within_lateness_share: float = 0.01,
  duplicate_share: float = 0.01,
  other_event_share: float = 0.05,
  malformed: Optional[int] = None,
  oversized: bool = False,
  window_size_s: int = 300,
  allowed_lateness_s: int = 60,
  max_out_of_orderness_s: int = 10,
  stats: Optional[Dict[str, int]] = None,
) -> Iterator[bytes]:
  """Yield the lines of a call-event file, in arrival order.

  In: ``n`` distinct calls (each ends with one CALL_ENDED event), a
  ``seed``, ``queues`` (``queue_profiles``; with ``n >= queues`` every queue
  has calls, see common.Coverage), and the disorder knobs (shares are
  fractions of ``n``, counts are rounded). ``malformed`` is the number of
  malformed lines (cycling through ``MALFORMED_KINDS``, plus
  ``OVERSIZED_KIND`` when ``oversized``); ``None`` means one of each kind.
  Out: ``bytes`` lines WITHOUT the trailing newline (bytes, not str,
  because one malformed kind is deliberately invalid UTF-8). Lines are
  produced lazily with bounded memory. If ``stats`` is given it is filled
  with the counts of what was emitted (keys as in ``write_call_events``).
  """
  if n < 0:
    raise ValueError('n must be >= 0')
  if events_per_second <= 0:
    raise ValueError('events_per_second must be > 0')
  check_shares(
    ('too_late_share', too_late_share),
    ('late_within_lateness_share', late_within_lateness_share),
    ('duplicate_share', duplicate_share),
    ('other_event_share', other_event_share),
  )
  if too_late_share + late_within_lateness_share > 1.0:
    raise ValueError('too_late_share + late_within_lateness_share must be <= 1')

  # Independent streams per aspect: changing one knob (e.g. the duplicate
  # share) does not reshuffle the calls themselves. String seeds are hashed
  # with SHA-512 by `random`, so this is stable across processes.
  rng_calls = random.Random(f'{seed}:calls')
  rng_disorder = random.Random(f'{seed}:disorder')
  rng_other = random.Random(f'{seed}:other')
  rng_dup = random.Random(f'{seed}:dup')
  rng_bad = random.Random(f'{seed}:malformed')

  profiles = queue_profiles(queues)
  cum_weights = cumulative_weights(prof.weight for prof in profiles)
  queue_coverage = Coverage(n, queues)

  window_ms = window_size_s * 1000
  n_too_late = round(n * too_late_share)
  n_within = round(n * late_within_lateness_share)
  n_dup = round(n * duplicate_share)
  n_other = round(n * other_event_share)
  # Disjoint sets of delayed calls; duplicates and lifecycle events may hit
  # any call (a duplicated too-late event is realistic: a retrying producer).
  delayed = rng_disorder.sample(range(n), n_too_late + n_within) if n else []
  too_late_idx = set(delayed[:n_too_late])
  within_idx = set(delayed[n_too_late:])
  dup_idx = set(rng_dup.sample(range(n), min(n_dup, n))) if n else set()
  other_idx: Dict[int, int] = {}
  if n:
    for i in (
      rng_other.choices(range(n), k=n_other) if n_other > n else rng_other.sample(range(n), n_other)
    ):
      other_idx[i] = other_idx.get(i, 0) + 1
  n_base = n + n_other  # lines before duplicates and malformed lines

  bad_positions = plan_malformed(
    rng_bad, MALFORMED_KINDS, OVERSIZED_KIND, oversized, malformed, n_base
  )

  counts = reset_counts(
    stats,
    (
      'lines',
      'valid',
      'duplicates',
      'malformed',
      'other_event_types',
      'too_late',
      'late_within_lateness',
    ),
  )
  counts['too_late'] = n_too_late
  counts['late_within_lateness'] = n_within

  t_ms = float(start_ms)
  last_event: dict = {}

  def _fresh(ev: dict) -> dict:
    # Malformed lines look like a neighbour (realistic timestamp, queue)
    # but carry their own call_uuid, so they never alias a real call.
    bad = dict(ev)
    bad['call_uuid'] = str(uuid.UUID(int=rng_bad.getrandbits(128), version=4))
    return bad

  def _malformed(kind: str, ev: dict) -> bytes:
    # Shaped like the previous line's event (the current one's before
    # the first line).
    return malformed_line(kind, _fresh(last_event or ev))

  def _remember(ev: dict) -> None:
    nonlocal last_event
    last_event = ev

  stream = ArrivalStream(bad_positions, rng_dup, counts, _malformed, _remember)

  for i in range(n):
    # Non-homogeneous Poisson arrivals: exponential gaps at the current
    # diurnal rate (the rate changes slowly relative to the gaps).
    hour = hour_of_day(t_ms)
    shape = diurnal_shape(hour)
    rate = events_per_second * shape / SHAPE_MEAN
    t_ms += rng_calls.expovariate(rate) * 1000.0
    ts = int(t_ms)
    load = shape / SHAPE_MAX  # 0.15 (night) .. 1 (peak)

    prof = profiles[queue_coverage.take(i, pick_index(rng_calls, cum_weights))[0]]
    call_uuid = str(uuid.UUID(int=rng_calls.getrandbits(128), version=4))
    # Busy periods lose more callers and keep them waiting longer.
    congestion = 0.6 + 0.8 * load
    abandoned = rng_calls.random() < prof.abandon_propensity * (0.75 + 0.5 * load)
    if abandoned:
      if rng_calls.random() < 0.25:
        # "Short abandons": hang up within a few seconds, often
        # misdials; vendors disagree on whether they count.
        wait = rng_calls.randint(0, 4)
      else:
        wait = int(rng_calls.lognormvariate(math.log(45.0 * prof.wait_scale * congestion), 0.8))
      agent_id = None
    else:
      wait = int(rng_calls.lognormvariate(math.log(12.0 * prof.wait_scale * congestion), 0.9))
      agent_id = f'A-{prof.queue_id[2:]}{rng_calls.randint(1, 12):02d}'
    wait = min(wait, WAIT_CAP_S)
    talk = 0 if abandoned else min(int(rng_calls.lognormvariate(math.log(240.0), 0.6)), TALK_CAP_S)
    ivr = rng_calls.randint(5, IVR_MAX_S)

    event = {
      'call_uuid': call_uuid,
      'event_type': 'CALL_ENDED',
      'timestamp': ts,
      'queue_id': prof.queue_id,
      'abandoned': abandoned,
      'wait_time_seconds': wait,
      'agent_id': agent_id,
    }
    if i in too_late_idx:
      # E.g. a source that buffered during an outage: arrives after
      # window end + allowed lateness.
      arrival = ts + int(too_late_seconds * 1000 + rng_disorder.uniform(0, jitter_seconds) * 1000)
    elif i in within_idx:
      # Arrives after the watermark (max ts - delay) passed the window
      # end, but before window end + allowed lateness.
      hi = max(5.0, min(40.0, allowed_lateness_s - max_out_of_orderness_s - 5.0))
      arrival = (
        window_end_ms(ts, window_ms)
        + max_out_of_orderness_s * 1000
        + int(rng_disorder.uniform(5.0, hi) * 1000)
      )
    else:
      arrival = ts + int(rng_disorder.uniform(0, jitter_seconds) * 1000)
    stream.push(arrival, json_line(event), i in dup_idx, event)
    counts['valid'] += 1

    for _ in range(other_idx.get(i, 0)):
      # A lifecycle event of the same call, timestamped when it really
      # happened (before the end): queued, answered or started.
      choices = ('CALL_STARTED', 'CALL_QUEUED') if abandoned else OTHER_EVENT_TYPES
      etype = rng_other.choice(choices)
      queued_at = ts - (talk + wait) * 1000
      if etype == 'CALL_ANSWERED':
        ots = ts - talk * 1000
      elif etype == 'CALL_QUEUED':
        ots = queued_at
      else:
        ots = queued_at - ivr * 1000
      other = {
        'call_uuid': call_uuid,
        'event_type': etype,
        'timestamp': ots,
        'queue_id': prof.queue_id,
        'abandoned': False,
        'wait_time_seconds': wait if etype == 'CALL_ANSWERED' else 0,
        'agent_id': agent_id if etype == 'CALL_ANSWERED' else None,
      }
      o_arrival = ots + int(rng_other.uniform(0, jitter_seconds) * 1000)
      stream.push(o_arrival, json_line(other), False, other)
      counts['other_event_types'] += 1

    # Safe to emit anything arriving by then: no event generated later
    # can arrive earlier (see _LOOKAHEAD_MS).
    yield from stream.drain(t_ms - _LOOKAHEAD_MS)

  yield from stream.drain(math.inf)
  # Re-deliveries scheduled past the last line, then trailing malformed
  # lines (shaped like a made-up call when there was no call at all).
  yield from stream.flush(
    last_event
    or {
      'call_uuid': str(uuid.UUID(int=rng_bad.getrandbits(128), version=4)),
      'event_type': 'CALL_ENDED',
      'timestamp': int(start_ms),
      'queue_id': 'Q-101',
      'abandoned': False,
      'wait_time_seconds': 0,
      'agent_id': None,
    }
  )


def write_call_events(path: str, n: int, seed: int, **options) -> Dict[str, int]:
  """Write ``generate_call_events(n, seed, **options)`` to ``path``.

  In: a file path (``"-"`` for stdout), the number of calls, the seed and
  any keyword option of ``generate_call_events``.
  Out: counts of what was written: ``valid`` (distinct CALL_ENDED events),
  ``duplicates`` (re-delivered lines), ``malformed``, ``other_event_types``,
  ``too_late`` (events delayed beyond window end + allowed lateness),
  ``late_within_lateness`` and ``lines`` (all lines in the file).
  The file is written in binary mode, one event per line, ending with a
  newline.
  """
  stats: Dict[str, int] = {}
  write_to(path, generate_call_events(n, seed, stats=stats, **options))
  return stats


def build_arg_parser() -> argparse.ArgumentParser:
  """The CLI's argument parser (exposed for docs and tests)."""
  p = generator_arg_parser(
    (
      'Generate a seeded JSON-lines file of contact-center call '
      'events; file order is arrival order.'
    ),
    '--events',
    DEFAULT_EVENTS,
    'number of calls (distinct CALL_ENDED events)',
  )
  add_start_argument(p, DEFAULT_START_MS, 'call')
  p.add_argument(
    '--events-per-second',
    type=float,
    default=20.0,
    help='average call rate over 24 h; the diurnal curve makes mid-day busier and nights quieter',
  )
  p.add_argument(
    '--queues',
    type=int,
    default=8,
    help='number of queues (each has calls if --events is at least as many)',
  )
  p.add_argument(
    '--jitter-seconds',
    type=float,
    default=8.0,
    help='every event arrives U(0, this) after its event time',
  )
  p.add_argument(
    '--too-late-share',
    type=parse_share,
    default=0.005,
    help='share of calls delayed by --too-late-seconds',
  )
  p.add_argument(
    '--too-late-seconds', type=float, default=600.0, help='delay of the too-late events'
  )
  p.add_argument(
    '--late-within-lateness-share',
    type=parse_share,
    default=0.01,
    help='share of calls arriving after the watermark passed '
    'their window end but within the allowed lateness',
  )
  p.add_argument(
    '--duplicate-share',
    type=parse_share,
    default=0.01,
    help='share of calls re-delivered 1-30 lines later',
  )
  p.add_argument(
    '--other-event-share',
    type=parse_share,
    default=0.05,
    help='CALL_STARTED/QUEUED/ANSWERED events, as a share of calls',
  )
  add_malformed_arguments(p, len(MALFORMED_KINDS))
  p.add_argument(
    '--window-size-s', type=int, default=300, help='fixed window size the disorder is aimed at'
  )
  p.add_argument(
    '--allowed-lateness-s', type=int, default=60, help='allowed lateness the disorder is aimed at'
  )
  p.add_argument(
    '--max-out-of-orderness-s',
    type=int,
    default=10,
    help='bounded out-of-orderness of the watermark',
  )
  return p


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry point: write the file, print the counts to stderr."""
  # Every other option is a keyword of generate_call_events.
  return run_generator_cli(build_arg_parser(), 'events', write_call_events, argv)


if __name__ == '__main__':
  sys.exit(main())
