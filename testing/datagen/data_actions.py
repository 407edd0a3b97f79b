#!/usr/bin/env python3
"""Seeded generator of realistic CXone Data Actions events (JSON lines).

The topic ``cxone-data-actions`` mixes two record kinds, one per line:

* interactions::

    {"interactionId": "...", "customerId": "C-000123", "channel": "voice",
     "status": "COMPLETED", "timestamp": <epoch ms>}

  ``channel`` is voice/chat/email/sms (different shares); ``status`` is
  mostly COMPLETED, a few % FAILED, some CALLBACK_REQUESTED, ABANDONED and
  TRANSFERRED. A failed interaction is often retried by the same customer a
  few seconds later (an outage persists, so retries fail more often and
  more often end in a callback request): chains of failures and callbacks
  occur naturally, not only in the planted cases;
* customer-profile updates::

    {"recordType": "customer_update", "customerId": "C-000123",
     "tier": "GOLD", "region": "EMEA", "timestamp": <epoch ms>}

  for most customers: usually a while BEFORE their first interaction, some
  AFTER it (the profile arrives after the interaction the join must
  enrich), and occasionally a later update that changes the tier.

Customers are many (``customers``) with Zipf-like activity: a few busy
accounts, a long tail of customers seen once or never. With at least as many
background interactions as customers every customer is seen (common.Coverage):
a benchmark asking for 1,000,000 customers gets 1,000,000 keys.

FILE ORDER IS ARRIVAL ORDER: every record arrives ``U(0, jitter)`` after its
event time (default 5 s, inside the pipeline's 10 s watermark delay) and the
lines are sorted by arrival. On top of that:

* a share of interactions is re-delivered (exact same bytes) 1-30 lines
  later;
* a small share arrives far too late (``too_late_seconds`` after its event
  time, beyond window end + allowed lateness) and must be routed late;
* a fixed, cycled list of malformed lines (one of each ``MALFORMED_KINDS``
  by default) is inserted at random positions;
* unless ``plant_patterns=False``, the pattern cases of ``PLANTED_CASES``
  are planted, each for a customer of its own (``C-PLANT-..``) so the
  expected alerts are unambiguous. ``generate_data_actions(planted=[])``
  fills the list with each case and its expected alerts.

The committed sample was made with::

    python -m testing.datagen.data_actions --out samples/data_actions.jsonl \\
        --interactions 3000 --customers 300 --seed 18 --events-per-second 5

Same arguments, same bytes: everything is drawn from ``random.Random``
instances seeded from ``--seed``. Output is streamed (a heap bounded by the
arrival look-ahead), so 1,000,000 interactions need little memory. Stdlib
only, and nothing from the pipeline code.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
import uuid
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from testing.datagen.calls import (
  DEFAULT_START_MS,
  MAX_LINE_BYTES,
  SHAPE_MEAN,
  diurnal_shape,
  hour_of_day,
)
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
  pick_weighted,
  plan_malformed,
  reset_counts,
  run_generator_cli,
  write_to,
)

DEFAULT_INTERACTIONS = 100_000
DEFAULT_CUSTOMERS = 10_000

CHANNELS: Tuple[str, ...] = ('voice', 'chat', 'email', 'sms')
# Share of volume per channel, and per-channel multipliers: SMS gateways and
# chat sessions fail more often than email; e-mail is never abandoned.
_CHANNEL_WEIGHTS = (0.50, 0.25, 0.15, 0.10)
_FAILURE_MULT = {'voice': 1.0, 'chat': 1.2, 'email': 0.6, 'sms': 1.5}
_ABANDON_SHARE = {'voice': 0.06, 'chat': 0.04, 'email': 0.0, 'sms': 0.01}
_TRANSFER_SHARE = {'voice': 0.05, 'chat': 0.03, 'email': 0.02, 'sms': 0.0}

FAILED = 'FAILED'
CALLBACK = 'CALLBACK_REQUESTED'
STATUSES: Tuple[str, ...] = ('COMPLETED', FAILED, CALLBACK, 'ABANDONED', 'TRANSFERRED')
TIERS: Tuple[str, ...] = ('PLATINUM', 'GOLD', 'SILVER', 'BRONZE')
_TIER_WEIGHTS = (0.05, 0.15, 0.30, 0.50)
REGIONS: Tuple[str, ...] = ('NA', 'EMEA', 'APAC', 'LATAM')
_REGION_WEIGHTS = (0.45, 0.30, 0.15, 0.10)

# Zipf-Mandelbrot activity: weight of the customer of rank k is
# 1 / (k + _ZIPF_OFFSET) ** s. The offset flattens the head, so the busiest
# account is a few % of the traffic rather than a sixth of it.
_ZIPF_OFFSET = 5

# A profile sent before the first interaction is timestamped this much
# earlier; a retry follows its failure after RETRY_GAP_S.
_PROFILE_BEFORE_S = (6.0, 30.0)
_PROFILE_AFTER_S = (1.0, 90.0)  # added to the jitter
_TIER_CHANGE_S = (60.0, 1800.0)
RETRY_GAP_S = (2.0, 20.0)

# Streaming emission: a record generated later never ARRIVES more than this
# before the event time of the interaction being generated now (the earliest
# is a profile sent up to 30 s before a customer's first interaction), so
# everything arriving before `now - _LOOKAHEAD_MS` can be written out.
_LOOKAHEAD_MS = int(_PROFILE_BEFORE_S[1] * 1000) + 1000

# --------------------------------------------------------------------------
# Malformed lines
# --------------------------------------------------------------------------

MALFORMED_KINDS: Tuple[str, ...] = (
  'not_json',
  'json_array',
  'missing_customer_id',
  'missing_channel',
  'timestamp_as_string',
  'absurd_timestamp',
  'unknown_record_type',
  'update_missing_tier',
  'empty_status',
  'invalid_utf8',
)
OVERSIZED_KIND = 'oversized'


def malformed_line(kind: str, interaction: dict, update: dict) -> bytes:
  """Return one malformed line (bytes, no newline) of the given ``kind``.

  ``interaction`` and ``update`` are well-formed records (dicts) to break;
  each kind breaks exactly one thing, so a validator must reject the line
  for that reason alone. ``kind`` is one of ``MALFORMED_KINDS`` or
  ``OVERSIZED_KIND``.
  """
  ev = dict(interaction)
  up = dict(update)
  if kind == 'not_json':
    return (
      b'interactionId='
      + ev['interactionId'].encode()
      + b' status=FAILED channel='
      + ev['channel'].encode()
    )
  if kind == 'json_array':
    return json_line([ev['interactionId'], ev['customerId'], ev['timestamp']])
  if kind == 'missing_customer_id':
    del ev['customerId']
    return json_line(ev)
  if kind == 'missing_channel':
    del ev['channel']
    return json_line(ev)
  if kind == 'timestamp_as_string':
    ev['timestamp'] = str(ev['timestamp'])
    return json_line(ev)
  if kind == 'absurd_timestamp':
    ev['timestamp'] = 10_413_792_000_000  # 2300-01-01T00:00:00Z
    return json_line(ev)
  if kind == 'unknown_record_type':
    up['recordType'] = 'customer_delete'
    return json_line(up)
  if kind == 'update_missing_tier':
    del up['tier']
    return json_line(up)
  if kind == 'empty_status':
    ev['status'] = ''
    return json_line(ev)
  if kind == 'invalid_utf8':
    # A Latin-1 agent note inside otherwise valid JSON: not UTF-8.
    line = json_line(ev)
    return line.replace(b'"status"', b'"note":"r\xe9essai \xff","status"', 1)
  if kind == OVERSIZED_KIND:
    # A valid interaction, only too big for one record.
    ev['transcript'] = 'x' * (MAX_LINE_BYTES + 16)
    return json_line(ev)
  raise ValueError(f'unknown malformed kind {kind!r}')


# --------------------------------------------------------------------------
# Planted pattern cases
# --------------------------------------------------------------------------

# One step of a planted sequence: offset of its event time from the case's
# base time (ms), status, channel, and optionally its arrival offset from the
# base (ms; None = event time + U(0, jitter)).
_Step = Tuple[int, str, str, Optional[int]]
F, C, OK = FAILED, CALLBACK, 'COMPLETED'


@dataclass(frozen=True)
class PlantedCaseSpec:
  """A pattern case: ``steps`` (see ``_Step``), the indices of the steps
  that must raise an alert (callbacks), whether the profile arrives after
  the interactions, and which step (if any) is re-delivered."""

  name: str
  description: str
  steps: Tuple[_Step, ...]
  alert_steps: Tuple[int, ...]
  profile_after: bool = False
  redeliver_step: Optional[int] = None


PLANTED_CASES: Tuple[PlantedCaseSpec, ...] = (
  PlantedCaseSpec(
    '3f-callback',
    'three failures then a callback 15 s after the first: MATCH '
    "(the alert carries the callback's channel)",
    (
      (0, F, 'voice', None),
      (4000, F, 'voice', None),
      (9000, F, 'chat', None),
      (15000, C, 'chat', None),
    ),
    (3,),
  ),
  PlantedCaseSpec(
    '4f-callback',
    'four failures then a callback: ONE match (last three + callback)',
    (
      (0, F, 'voice', None),
      (3000, F, 'voice', None),
      (6000, F, 'voice', None),
      (9000, F, 'voice', None),
      (12000, C, 'voice', None),
    ),
    (4,),
  ),
  PlantedCaseSpec(
    '2f-callback',
    'two failures then a callback: no match',
    ((0, F, 'chat', None), (5000, F, 'chat', None), (10000, C, 'chat', None)),
    (),
  ),
  PlantedCaseSpec(
    '3f-completed-callback',
    'three failures, a COMPLETED, a callback: no match (strict contiguity)',
    (
      (0, F, 'voice', None),
      (3000, F, 'voice', None),
      (6000, F, 'voice', None),
      (8000, OK, 'voice', None),
      (10000, C, 'voice', None),
    ),
    (),
  ),
  PlantedCaseSpec(
    'callback-31s',
    'callback 31 s after the first failure: no match',
    (
      (0, F, 'voice', None),
      (10000, F, 'voice', None),
      (20000, F, 'voice', None),
      (31000, C, 'voice', None),
    ),
    (),
  ),
  PlantedCaseSpec(
    'callback-30s',
    'callback exactly 30.000 s after the first failure: no match '
    '(CEP prunes at ts - start >= 30 s)',
    (
      (0, F, 'sms', None),
      (10000, F, 'sms', None),
      (20000, F, 'sms', None),
      (30000, C, 'sms', None),
    ),
    (),
  ),
  PlantedCaseSpec(
    'callback-29999ms',
    'callback 29.999 s after the first failure: MATCH',
    (
      (0, F, 'sms', None),
      (10000, F, 'sms', None),
      (20000, F, 'sms', None),
      (29999, C, 'sms', None),
    ),
    (3,),
  ),
  PlantedCaseSpec(
    'out-of-order',
    'a matching sequence arriving shuffled (callback first), within the jitter: MATCH',
    (
      (0, F, 'voice', 3600),
      (1000, F, 'voice', 4200),
      (2000, F, 'voice', 3300),
      (3000, C, 'sms', 3100),
    ),
    (3,),
  ),
  PlantedCaseSpec(
    'profile-after',
    'a matching sequence whose customer profile arrives after the interactions: MATCH',
    (
      (0, F, 'chat', None),
      (2000, F, 'chat', None),
      (4000, F, 'chat', None),
      (6000, C, 'chat', None),
    ),
    (3,),
    profile_after=True,
  ),
  PlantedCaseSpec(
    'redelivered-failure',
    'two failures (the first re-delivered) then a callback: '
    'no match, dedupe comes before the pattern',
    ((0, F, 'voice', None), (3000, F, 'voice', None), (6000, C, 'voice', None)),
    (),
    redeliver_step=0,
  ),
  PlantedCaseSpec(
    'callback-first',
    'a callback, then three failures: no match (order matters)',
    (
      (0, C, 'voice', None),
      (2000, F, 'voice', None),
      (4000, F, 'voice', None),
      (6000, F, 'voice', None),
    ),
    (),
  ),
  PlantedCaseSpec(
    'two-matches',
    '3 failures, callback, 3 failures, callback: TWO matches',
    (
      (0, F, 'voice', None),
      (2000, F, 'voice', None),
      (4000, F, 'voice', None),
      (6000, C, 'voice', None),
      (8000, F, 'email', None),
      (10000, F, 'email', None),
      (12000, F, 'email', None),
      (14000, C, 'email', None),
    ),
    (3, 7),
  ),
)
PLANTED_INTERACTIONS = sum(len(c.steps) for c in PLANTED_CASES)


@dataclass(frozen=True)
class PlantedCase:
  """A planted case as generated: its customer and the exact alerts
  ``(customer_id, channel, callback_timestamp_ms)`` it must produce."""

  name: str
  customer_id: str
  description: str
  expected_alerts: Tuple[Tuple[str, str, int], ...]


def planted_customer_id(index: int, name: str) -> str:
  """Customer id of planted case ``index`` (0-based) named ``name``."""
  return f'C-PLANT-{index + 1:02d}-{name}'


# --------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------


def generate_data_actions(
  n_interactions: int,
  seed: int,
  *,
  customers: int = DEFAULT_CUSTOMERS,
  start_ms: int = DEFAULT_START_MS,
  events_per_second: float = 20.0,
  jitter_seconds: float = 5.0,
  failure_share: float = 0.04,
  callback_share: float = 0.03,
  retry_share: float = 0.5,
  zipf_exponent: float = 1.0,
  profile_share: float = 0.9,
  profile_after_share: float = 0.15,
  tier_change_share: float = 0.05,
  duplicate_share: float = 0.01,
  too_late_share: float = 0.002,
  too_late_seconds: float = 120.0,
  malformed: Optional[int] = None,
  oversized: bool = False,
  plant_patterns: bool = True,
  stats: Optional[Dict[str, int]] = None,
  planted: Optional[List[PlantedCase]] = None,
) -> Iterator[bytes]:
  """Yield ``n_interactions`` distinct interactions plus customer updates,
  duplicates and malformed lines, one JSON line (bytes, no newline) at a
  time, in arrival order.

  In: the number of distinct interactions (planted ones included), the
  seed, and knobs: ``customers`` (population size; each of them shows up
  when ``n_interactions`` less the planted ones is at least as many),
  ``events_per_second``
  (24 h average; a diurnal curve modulates it), ``jitter_seconds``
  (arrival delay U(0, jitter)), ``failure_share``/``callback_share`` (of
  fresh interactions), ``retry_share`` (chance a failure is retried by the
  same customer 2-20 s later), ``zipf_exponent`` (activity skew),
  ``profile_share`` (customers with a profile), ``profile_after_share``
  (of those, sent after the first interaction), ``tier_change_share``
  (of those, a later tier change), ``duplicate_share``, ``too_late_share``
  (arriving ``too_late_seconds`` after their event time), ``malformed``
  (number of malformed lines, default one per kind; ``oversized`` adds a
  > 1 MiB line), ``plant_patterns`` (the ``PLANTED_CASES``).
  Out (besides the lines): ``stats`` is filled with counts as in
  ``write_data_actions``; ``planted`` receives one ``PlantedCase`` per
  planted case with its expected alerts.
  """
  if n_interactions < 0:
    raise ValueError('n_interactions must be >= 0')
  if customers < 1:
    raise ValueError('need at least one customer')
  if events_per_second <= 0:
    raise ValueError('events_per_second must be > 0')
  if jitter_seconds < 0:
    raise ValueError('jitter_seconds must be >= 0')
  check_shares(
    ('failure_share', failure_share),
    ('callback_share', callback_share),
    ('retry_share', retry_share),
    ('profile_share', profile_share),
    ('profile_after_share', profile_after_share),
    ('tier_change_share', tier_change_share),
    ('duplicate_share', duplicate_share),
    ('too_late_share', too_late_share),
  )
  if failure_share + callback_share > 0.8:
    raise ValueError('failure_share + callback_share must be <= 0.8')
  cases = PLANTED_CASES if plant_patterns else ()
  n_planted = sum(len(c.steps) for c in cases)
  if n_interactions < n_planted:
    raise ValueError(
      f'planting the pattern cases needs n_interactions >= {n_planted} (or plant_patterns=False)'
    )
  n_background = n_interactions - n_planted

  # Independent streams per aspect: changing one knob (e.g. the duplicate
  # share) does not reshuffle the rest. String seeds are hashed with
  # SHA-512 by `random`, so this is stable across processes.
  rng_ev = random.Random(f'{seed}:interactions')
  rng_cust = random.Random(f'{seed}:customers')
  rng_prof = random.Random(f'{seed}:profiles')
  rng_arr = random.Random(f'{seed}:arrival')
  rng_dup = random.Random(f'{seed}:dup')
  rng_bad = random.Random(f'{seed}:malformed')
  rng_plant = random.Random(f'{seed}:planted')

  width = max(6, len(str(customers - 1)))
  # Rank -> customer number: the busiest account is not C-000000.
  ids = list(range(customers))
  rng_cust.shuffle(ids)
  cum_customers = cumulative_weights(
    [1.0 / (k + _ZIPF_OFFSET) ** zipf_exponent for k in range(1, customers + 1)]
  )
  customer_coverage = Coverage(n_background, customers)
  cum_channels = cumulative_weights(_CHANNEL_WEIGHTS)
  cum_tiers = cumulative_weights(_TIER_WEIGHTS)
  cum_regions = cumulative_weights(_REGION_WEIGHTS)
  jitter_ms = jitter_seconds * 1000.0

  # Positions are drawn over the interactions, a lower bound of the number
  # of records.
  bad_positions = plan_malformed(
    rng_bad, MALFORMED_KINDS, OVERSIZED_KIND, oversized, malformed, n_interactions
  )

  counts = reset_counts(
    stats,
    (
      'lines',
      'interactions',
      'customer_updates',
      'duplicates',
      'malformed',
      'too_late',
      'retries',
      'profiles_before',
      'profiles_after',
      'tier_changes',
      'customers_active',
      'planted_cases',
      'planted_interactions',
    ),
  )
  status_counts = {s: 0 for s in STATUSES}

  last_interaction: Dict[str, object] = {}
  last_update: Dict[str, object] = {}
  seen_customers = set()

  def push(arrival: float, record: dict, dupable: bool = False) -> None:
    stream.push(arrival, json_line(record), dupable, record)

  def fresh_id() -> str:
    return str(uuid.UUID(int=rng_ev.getrandbits(128), version=4))

  def update_record(customer: str, ts: int, tier: str, region: str) -> dict:
    counts['customer_updates'] += 1
    return {
      'recordType': 'customer_update',
      'customerId': customer,
      'tier': tier,
      'region': region,
      'timestamp': ts,
    }

  def interaction(customer: str, channel: str, status: str, ts: int) -> dict:
    counts['interactions'] += 1
    status_counts[status] += 1
    return {
      'interactionId': fresh_id(),
      'customerId': customer,
      'channel': channel,
      'status': status,
      'timestamp': ts,
    }

  def bad_base() -> Tuple[dict, dict]:
    # Malformed lines look like a neighbour but carry their own
    # interactionId, so they never alias a real interaction.
    inter = dict(last_interaction) or {
      'customerId': 'C-' + '0' * width,
      'channel': 'voice',
      'status': 'COMPLETED',
      'timestamp': int(start_ms),
    }
    inter['interactionId'] = str(uuid.UUID(int=rng_bad.getrandbits(128), version=4))
    upd = dict(last_update) or {
      'recordType': 'customer_update',
      'customerId': inter['customerId'],
      'tier': 'GOLD',
      'region': 'NA',
      'timestamp': inter['timestamp'],
    }
    return (
      {k: inter[k] for k in ('interactionId', 'customerId', 'channel', 'status', 'timestamp')},
      upd,
    )

  def remember(record: dict) -> None:
    # Remember neighbours to shape the malformed lines like.
    nonlocal last_interaction, last_update
    if 'recordType' in record:
      last_update = record
    else:
      last_interaction = record

  stream = ArrivalStream(
    bad_positions,
    rng_dup,
    counts,
    lambda kind, _record: malformed_line(kind, *bad_base()),
    remember,
  )

  def profile(customer: str, first_ts: int) -> None:
    """Schedule the profile update(s) of a customer first seen at
    ``first_ts``."""
    if rng_prof.random() >= profile_share:
      return  # no profile: the join must cope with unknown customers
    tier = pick_weighted(rng_prof, TIERS, cum_tiers)
    region = pick_weighted(rng_prof, REGIONS, cum_regions)
    if rng_prof.random() < profile_after_share:
      # The profile arrives after the interaction it should enrich.
      ts = first_ts + int((jitter_seconds + rng_prof.uniform(*_PROFILE_AFTER_S)) * 1000)
      counts['profiles_after'] += 1
    else:
      ts = first_ts - int(rng_prof.uniform(*_PROFILE_BEFORE_S) * 1000)
      counts['profiles_before'] += 1
    push(ts + rng_arr.uniform(0, jitter_ms), update_record(customer, ts, tier, region))
    if rng_prof.random() < tier_change_share:
      # An upgrade/downgrade later on: the join must use the newest.
      new_tier = rng_prof.choice([t for t in TIERS if t != tier])
      ts2 = ts + int(rng_prof.uniform(*_TIER_CHANGE_S) * 1000)
      push(ts2 + rng_arr.uniform(0, jitter_ms), update_record(customer, ts2, new_tier, region))
      counts['tier_changes'] += 1

  def draw_status(channel: str, retry: bool) -> str:
    r = rng_ev.random()
    if retry:
      # The cause of the failure often persists: retries fail more,
      # and customers give up and ask for a callback.
      if r < 0.4:
        return FAILED
      if r < 0.65:
        return CALLBACK
      r = rng_ev.random()
    f = failure_share * _FAILURE_MULT[channel]
    if r < f:
      return FAILED
    r -= f
    if r < callback_share:
      return CALLBACK
    r -= callback_share
    if r < _ABANDON_SHARE[channel]:
      return 'ABANDONED'
    r -= _ABANDON_SHARE[channel]
    if r < _TRANSFER_SHARE[channel]:
      return 'TRANSFERRED'
    return 'COMPLETED'

  def plant(index: int, spec: PlantedCaseSpec, base: int) -> None:
    customer = planted_customer_id(index, spec.name)
    tier = pick_weighted(rng_plant, TIERS, cum_tiers)
    region = pick_weighted(rng_plant, REGIONS, cum_regions)
    last_ts = base + spec.steps[-1][0]
    if spec.profile_after:
      ts = last_ts + 20_000
      push(ts + 500, update_record(customer, ts, tier, region))
      counts['profiles_after'] += 1
    else:
      ts = base - 10_000
      push(ts + 500, update_record(customer, ts, tier, region))
      counts['profiles_before'] += 1
    alerts = []
    for i, (offset, status, channel, arrival_offset) in enumerate(spec.steps):
      ts = base + offset
      rec = interaction(customer, channel, status, ts)
      arrival = (
        base + arrival_offset
        if arrival_offset is not None
        else ts + rng_plant.uniform(0, jitter_ms)
      )
      push(arrival, rec)
      if i == spec.redeliver_step:
        # Redelivered right behind the original: an exact copy.
        push(arrival + 1500, rec)
        counts['duplicates'] += 1
      if i in spec.alert_steps:
        alerts.append((customer, channel, ts))
    counts['planted_cases'] += 1
    counts['planted_interactions'] += len(spec.steps)
    if planted is not None:
      planted.append(PlantedCase(spec.name, customer, spec.description, tuple(alerts)))

  # Planted case k goes before background interaction anchors[k], spread
  # evenly over the run.
  anchors = [(k + 1) * n_background // (len(cases) + 1) for k in range(len(cases))]
  next_case = 0
  retries: List[Tuple[int, int, str, str]] = []  # (ts, seq, customer, channel)
  retry_seq = 0  # keeps generation order among retries at the same ts
  t_ms = float(start_ms)
  t_next = None  # next fresh arrival time of the Poisson stream
  last_ts = int(start_ms)  # event time of the latest interaction (non-decreasing)
  produced = 0
  while produced < n_background:
    while next_case < len(cases) and anchors[next_case] <= produced:
      # After the latest interaction, so that nothing planted arrives
      # before what stream.drain() has already written.
      plant(next_case, cases[next_case], last_ts + 1000)
      next_case += 1
    if t_next is None:
      # Non-homogeneous Poisson arrivals at the current diurnal rate.
      rate = events_per_second * diurnal_shape(hour_of_day(t_ms)) / SHAPE_MEAN
      t_next = t_ms + rng_ev.expovariate(rate) * 1000.0
    if retries and retries[0][0] <= t_next:
      ts, _, customer, channel = heapq.heappop(retries)
      status = draw_status(channel, retry=True)
      counts['retries'] += 1
      covering = False
    else:
      t_ms = t_next
      t_next = None
      ts = int(t_ms)
      # Reserved: the retries pending, and one a draw before this one may
      # just have scheduled.
      rank, covering = customer_coverage.take(
        produced, pick_index(rng_ev, cum_customers), reserved=len(retries) + 1
      )
      customer = f'C-{ids[rank]:0{width}d}'
      channel = pick_weighted(rng_ev, CHANNELS, cum_channels)
      status = draw_status(channel, retry=False)
    if customer not in seen_customers:
      seen_customers.add(customer)
      profile(customer, ts)
    last_ts = ts
    rec = interaction(customer, channel, status, ts)
    if rng_arr.random() < too_late_share:
      # E.g. a connector that buffered during an outage: arrives after
      # window end + allowed lateness.
      arrival = ts + too_late_seconds * 1000.0 + rng_arr.uniform(0, jitter_ms)
      counts['too_late'] += 1
    else:
      arrival = ts + rng_arr.uniform(0, jitter_ms)
    push(arrival, rec, rng_dup.random() < duplicate_share)
    produced += 1
    # A customer drawn to complete the population does not retry: the
    # retry would take a position Coverage counted on for an unseen one.
    if status == FAILED and rng_ev.random() < retry_share and not covering:
      # The customer tries again shortly, mostly on the same channel.
      r_channel = (
        channel if rng_ev.random() < 0.7 else pick_weighted(rng_ev, CHANNELS, cum_channels)
      )
      r_ts = ts + int(rng_ev.uniform(*RETRY_GAP_S) * 1000)
      heapq.heappush(retries, (r_ts, retry_seq, customer, r_channel))
      retry_seq += 1
    yield from stream.drain(ts - _LOOKAHEAD_MS)
  while next_case < len(cases):  # n_background == 0: planted cases only
    plant(next_case, cases[next_case], last_ts + 1000)
    next_case += 1

  yield from stream.drain(math.inf)
  # Re-deliveries scheduled past the last record, then trailing malformed
  # lines (bad_base() shapes them, the fallback is unused).
  yield from stream.flush(None)
  counts['customers_active'] = len(seen_customers) + counts['planted_cases']
  for status, c in status_counts.items():
    counts[f'status_{status}'] = c


def write_data_actions(path: str, n: int, seed: int, **options) -> Dict[str, int]:
  """Write ``generate_data_actions(n, seed, **options)`` to ``path``.

  In: a file path (``"-"`` for stdout), the number of distinct
  interactions, the seed and any keyword option of
  ``generate_data_actions`` (except ``stats``).
  Out: counts of what was written: ``lines`` (all lines), ``interactions``
  (distinct), ``customer_updates`` (valid update lines), ``duplicates``
  (re-delivered interaction lines), ``malformed``, ``too_late``,
  ``retries``, ``profiles_before``/``profiles_after``, ``tier_changes``,
  ``customers_active``, ``planted_cases``, ``planted_interactions`` and
  ``status_<STATUS>`` per status.
  """
  stats: Dict[str, int] = {}
  write_to(path, generate_data_actions(n, seed, stats=stats, **options))
  return stats


def build_arg_parser() -> argparse.ArgumentParser:
  """The CLI's argument parser (exposed for docs and tests)."""
  p = generator_arg_parser(
    (
      'Generate a seeded JSON-lines file of CXone Data Actions '
      '(interactions + customer updates); file order is arrival order.'
    ),
    '--interactions',
    DEFAULT_INTERACTIONS,
    'number of distinct interactions (planted ones included)',
  )
  p.add_argument(
    '--customers',
    type=int,
    default=DEFAULT_CUSTOMERS,
    help='customer population (Zipf-like activity; all of them seen given as many interactions)',
  )
  add_start_argument(p, DEFAULT_START_MS, 'interaction')
  p.add_argument(
    '--events-per-second',
    type=float,
    default=20.0,
    help='average rate of fresh interactions over 24 h (diurnal curve; retries come on top)',
  )
  p.add_argument(
    '--jitter-seconds',
    type=float,
    default=5.0,
    help='every record arrives U(0, this) after its event time',
  )
  p.add_argument(
    '--failure-share',
    type=parse_share,
    default=0.04,
    help='share of FAILED among fresh interactions (per-channel multipliers apply)',
  )
  p.add_argument(
    '--callback-share',
    type=parse_share,
    default=0.03,
    help='share of CALLBACK_REQUESTED among fresh interactions',
  )
  p.add_argument(
    '--retry-share',
    type=parse_share,
    default=0.5,
    help='chance that a failure is retried by the same customer 2-20 s later',
  )
  p.add_argument('--zipf-exponent', type=float, default=1.0, help='skew of customer activity')
  p.add_argument(
    '--profile-share',
    type=parse_share,
    default=0.9,
    help='share of customers with a customer_update',
  )
  p.add_argument(
    '--profile-after-share',
    type=parse_share,
    default=0.15,
    help='of those, share whose profile comes after the first interaction',
  )
  p.add_argument(
    '--tier-change-share',
    type=parse_share,
    default=0.05,
    help='of those, share with a later update changing the tier',
  )
  p.add_argument(
    '--duplicate-share',
    type=parse_share,
    default=0.01,
    help='share of interactions re-delivered 1-30 lines later',
  )
  p.add_argument(
    '--too-late-share',
    type=parse_share,
    default=0.002,
    help='share of interactions arriving --too-late-seconds late',
  )
  p.add_argument(
    '--too-late-seconds', type=float, default=120.0, help='delay of the too-late interactions'
  )
  add_malformed_arguments(p, len(MALFORMED_KINDS))
  p.add_argument(
    '--no-planted',
    dest='plant_patterns',
    action='store_false',
    help='do not plant the pattern cases',
  )
  return p


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry point: write the file, print the counts (JSON) to stderr."""
  # Every other option is a keyword of generate_data_actions.
  return run_generator_cli(build_arg_parser(), 'interactions', write_data_actions, argv)


if __name__ == '__main__':
  sys.exit(main())
