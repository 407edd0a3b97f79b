#!/usr/bin/env python3
"""Paced live traffic for the demo and the live benchmarks: contact-center
calls and CXone Data Actions produced to Kafka as they happen (event time =
now), at a rate that follows a working day compressed into minutes.

    python -m testing.datagen.live --bootstrap 127.0.0.1:9092 --rate 20 \\
        --queues 8 --day-minutes 20

Calls (``cc-call-logs``, the ``seed`` schema of ``testing/datagen/calls.py``)
come from a small simulation of a contact-center floor, so queues build up
and drain as a real floor's do instead of each wait being drawn on its own:

* contacts arrive as a Poisson stream whose rate is ``--rate`` (the peak)
  times the day's curve (``calls.diurnal_shape``: quiet night, morning peak,
  lunch dip, afternoon peak), spread over the queues by the queue profiles of
  ``calls.queue_profiles``; a whole day passes in ``--day-minutes`` minutes
  (0: a flat rate, all day at the peak);
* each contact sends ``CALL_STARTED``, then ``CALL_QUEUED`` after its IVR
  time, and waits in its queue (first in, first out) for an agent;
* each queue is staffed for the load of a while ago (``STAFFING_LAG_DAY_SHARE``
  of the day, as a rota follows demand late), times ``--staffing`` and less
  for the queues the profiles mark as slower: a rising load outruns the
  agents and the queue builds, a falling one drains it;
* an answered contact sends ``CALL_ANSWERED`` when an agent picks it up and
  ``CALL_ENDED`` (``abandoned: false``) after its handle time; a contact whose
  patience runs out first sends ``CALL_ENDED`` with ``abandoned: true``. So
  every queued contact leaves its queue exactly once, by ``CALL_ANSWERED`` or
  by an abandoning ``CALL_ENDED``.

CXone Data Actions (``cxone-data-actions``) are what
``testing/datagen/data_actions.py`` generates, with its planted callback
patterns (three failed interactions then a callback request within 30 s,
and the near misses) in every chunk of ``--chunk-seconds`` of event time; the
chunks are generated ahead of the clock with ``start_ms`` at the chunk's time
and the chunk's rate, then sent when due. No disorder beyond the generator's
planted cases and its re-deliveries: no malformed or too-late lines.

Records are keyed and timestamped as ``scripts/produce_events.py`` does
(``key_and_timestamp``: the call's ``call_uuid`` or the customer's
``customerId``, record timestamp = payload event time). SIGINT or SIGTERM
stops it: what was sent is flushed, and it exits 0.

The simulation and the schedule are pure (``CallFloor``, ``InteractionFeed``:
same seed and times, same records), so tests run them without Kafka.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import dataclasses
import heapq
import itertools
import json
import math
import random
import signal
import sys
import threading
import time
import uuid
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple

from scripts.produce_events import key_and_timestamp, security_config
from testing.datagen.calls import (
  IVR_MAX_S,
  SHAPE_MAX,
  SHAPE_MEAN,
  TALK_CAP_S,
  WAIT_CAP_S,
  diurnal_shape,
  queue_profiles,
)
from testing.datagen.common import json_line
from testing.datagen.data_actions import PLANTED_INTERACTIONS, generate_data_actions

CALLS_TOPIC = 'cc-call-logs'
DATA_ACTIONS_TOPIC = 'cxone-data-actions'
DAY_MS = 86_400_000

# Rotas follow demand late: staffing is set for the load this share of a day
# (30 simulated minutes) before what the agents on calls now took on.
STAFFING_LAG_DAY_SHARE = 1 / 48
STAFF_TICK_MS = 1000
# A warm floor (CallFloor(warm=True)) opens as this many handle times of
# traffic before its start left it: nearly every call then started since.
WARM_HANDLE_TIMES = 4  # agents log in and out at most this often
SHORT_ABANDON_SHARE = 0.1  # hang up within SHORT_ABANDON_S: misdials
SHORT_ABANDON_S = 5.0
# A queue's mean patience is this over its abandon propensity: 0.07 (the
# biggest queue) is about 3 minutes, 0.18 (the worst) about one.
PATIENCE_FACTOR_S = 12.0


# --------------------------------------------------------------------------
# The day
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DayClock:
  """Maps wall time to the simulated hour of day: at ``start_ms`` it is
  ``start_hour``, and a whole day passes in ``day_minutes`` (0: the clock
  stands still at the peak, a flat load)."""

  start_ms: int
  day_minutes: float
  start_hour: float = 7.0

  def hour_of_day(self, t_ms: float) -> float:
    """The simulated hour of day at wall time ``t_ms``, in [0, 24)."""
    if self.day_minutes <= 0:
      return self.start_hour % 24.0
    elapsed_hours = (t_ms - self.start_ms) / (self.day_minutes * 60_000.0) * 24.0
    return (self.start_hour + elapsed_hours) % 24.0

  def load(self, t_ms: float) -> float:
    """The share of the peak load at wall time ``t_ms``, in (0, 1]."""
    if self.day_minutes <= 0:
      return 1.0
    # Relative to the curve's peak, so that --rate is the busiest moment's
    # rate: what the machine has to keep up with.
    return diurnal_shape(self.hour_of_day(t_ms)) / SHAPE_MAX

  def wall_ms_per_day_share(self, share: float) -> float:
    """Wall milliseconds in which ``share`` of a simulated day passes."""
    return share * self.day_minutes * 60_000.0


def contact_rate(clock: DayClock, peak_rate: float, t_ms: float) -> float:
  """New contacts per second at wall time ``t_ms``."""
  return peak_rate * clock.load(t_ms)


# --------------------------------------------------------------------------
# Calls: a simulated floor
# --------------------------------------------------------------------------

# Simulation event kinds, in the order ties at one millisecond run: an agent
# freed at t takes the contact queued at t; patience ends after both.
_HANG_UP, _STAFF, _ARRIVE, _ENQUEUE, _PATIENCE = range(5)


@dataclasses.dataclass
class _Call:
  call_uuid: str
  queue: int
  patience_ms: int
  queued_ms: int = -1
  answered_ms: int = -1
  state: str = 'ivr'  # ivr, waiting, talking, gone
  agent_id: Optional[str] = None


@dataclasses.dataclass
class _Queue:
  queue_id: str
  share: float  # of all contacts
  patience_mean_s: float
  staffing: float  # agents per erlang of the lagged load
  agents: int = 0
  busy: int = 0
  waiting: int = 0
  line: Deque[_Call] = dataclasses.field(default_factory=collections.deque)


class CallFloor:
  """A contact-center floor simulated in event time: ``advance(until_ms)``
  returns the call events (dicts of the ``seed`` schema) that happened up
  to ``until_ms``, in time order. Deterministic for a seed; nothing here
  reads the clock.

  ``peak_rate``: contacts per second at the day's peak; ``queues``: how many
  (``calls.queue_profiles``, ids ``<queue_prefix><101...>``);
  ``handle_seconds``: mean time an agent spends on a call; ``staffing``:
  agents per erlang of the (lagged) load, before the slow queues' cut;
  ``warm``: the floor opens mid-shift, as WARM_HANDLE_TIMES handle times
  of simulated traffic left it, so queues form from the first minute
  instead of after a handle time: the calls agents are on then send only
  their CALL_ENDED, those in the IVR start with their CALL_QUEUED, and the
  contacts waiting send their CALL_QUEUED first, stamped when they
  entered (the only records stamped before the start).
  """

  def __init__(
    self,
    clock: DayClock,
    peak_rate: float,
    queues: int,
    seed: int,
    *,
    handle_seconds: float = 120.0,
    staffing: float = 1.03,
    queue_prefix: str = 'Q-',
    warm: bool = True,
  ) -> None:
    if peak_rate <= 0:
      raise ValueError('peak_rate must be > 0')
    if handle_seconds <= 0:
      raise ValueError('handle_seconds must be > 0')
    if staffing <= 0:
      raise ValueError('staffing must be > 0')
    self.clock = clock
    self.peak_rate = peak_rate
    self.handle_seconds = handle_seconds
    self._rng = random.Random(f'{seed}:live-calls')
    profiles = queue_profiles(queues)
    total = sum(p.weight for p in profiles)
    self.queues = [
      _Queue(
        queue_id=queue_prefix + p.queue_id[2:],
        share=p.weight / total,
        patience_mean_s=PATIENCE_FACTOR_S / p.abandon_propensity,
        # Queues the profiles wait longer in are the understaffed ones.
        staffing=staffing / p.wait_scale**0.2,
      )
      for p in profiles
    ]
    self._cum_shares = list(itertools.accumulate(q.share for q in self.queues))
    self._heap: List[Tuple[int, int, int, object]] = []
    self._seq = 0
    self.open = True
    self.now_ms = clock.start_ms
    self._pending: List[dict] = []
    begin = clock.start_ms - (round(WARM_HANDLE_TIMES * handle_seconds * 1000.0) if warm else 0)
    self._push(begin, _STAFF, None)
    self._push(begin + self._gap_ms(), _ARRIVE, None)
    if warm:
      self.advance(clock.start_ms)  # unseen: before the generator connected
      # The contacts waiting now entered before: their CALL_QUEUED first,
      # at the time they did, so each that leaves was seen entering.
      waiting = [c for q in self.queues for c in q.line if c.state == 'waiting']
      waiting.sort(key=lambda c: c.queued_ms)
      self._pending = [self._event(c, 'CALL_QUEUED', c.queued_ms) for c in waiting]

  # -- scheduling ----------------------------------------------------------

  def _push(self, t_ms: int, kind: int, payload: object) -> None:
    heapq.heappush(self._heap, (t_ms, kind, self._seq, payload))
    self._seq += 1

  def _gap_ms(self) -> int:
    # Candidates at the peak rate, thinned to the curve in _arrive: an
    # exact non-homogeneous Poisson stream.
    return max(1, round(self._rng.expovariate(self.peak_rate) * 1000.0))

  def next_ms(self) -> Optional[int]:
    """Event time of the next simulated event, None when none is left."""
    return self._heap[0][0] if self._heap else None

  def stop_arrivals(self) -> None:
    """No new contacts from now on: the floor empties (tests, the end of
    a benchmark)."""
    self.open = False

  def waiting(self) -> Dict[str, int]:
    """Contacts waiting now, per queue id."""
    return {q.queue_id: q.waiting for q in self.queues}

  def advance(self, until_ms: int) -> List[dict]:
    """Run the floor up to ``until_ms`` (inclusive); the events that
    happened, in time order."""
    out, self._pending = self._pending, []
    heap = self._heap
    while heap and heap[0][0] <= until_ms:
      t_ms, kind, _, payload = heapq.heappop(heap)
      self.now_ms = t_ms
      if kind == _ARRIVE:
        self._arrive(t_ms, out)
      elif kind == _ENQUEUE:
        self._enqueue(t_ms, payload, out)
      elif kind == _PATIENCE:
        self._patience(t_ms, payload, out)
      elif kind == _HANG_UP:
        self._hang_up(t_ms, payload, out)
      else:
        self._staff(t_ms, out)
    self.now_ms = max(self.now_ms, until_ms)
    return out

  # -- events --------------------------------------------------------------

  def _arrive(self, t_ms: int, out: List[dict]) -> None:
    if not self.open:
      return
    self._push(t_ms + self._gap_ms(), _ARRIVE, None)
    rng = self._rng
    if rng.random() >= self.clock.load(t_ms):
      return  # thinned: the curve is below the peak now
    # min(): rounding may leave the last cumulative share just under 1.
    qi = min(bisect.bisect_right(self._cum_shares, rng.random()), len(self.queues) - 1)
    queue = self.queues[qi]
    if rng.random() < SHORT_ABANDON_SHARE:
      patience_s = rng.uniform(0.0, SHORT_ABANDON_S)
    else:
      patience_s = rng.expovariate(1.0 / queue.patience_mean_s)
    call = _Call(
      call_uuid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
      queue=qi,
      patience_ms=round(min(patience_s, WAIT_CAP_S) * 1000.0),
    )
    out.append(self._event(call, 'CALL_STARTED', t_ms))
    self._push(t_ms + round(rng.uniform(5.0, IVR_MAX_S) * 1000.0), _ENQUEUE, call)

  def _enqueue(self, t_ms: int, call: _Call, out: List[dict]) -> None:
    queue = self.queues[call.queue]
    call.queued_ms = t_ms
    call.state = 'waiting'
    queue.line.append(call)
    queue.waiting += 1
    out.append(self._event(call, 'CALL_QUEUED', t_ms))
    self._push(t_ms + call.patience_ms, _PATIENCE, call)
    self._dispatch(queue, t_ms, out)

  def _patience(self, t_ms: int, call: _Call, out: List[dict]) -> None:
    if call.state != 'waiting':
      return  # answered before its patience ran out
    call.state = 'gone'
    self.queues[call.queue].waiting -= 1  # left in the line, skipped there
    out.append(self._event(call, 'CALL_ENDED', t_ms, abandoned=True))

  def _hang_up(self, t_ms: int, call: _Call, out: List[dict]) -> None:
    call.state = 'gone'
    queue = self.queues[call.queue]
    queue.busy -= 1
    out.append(self._event(call, 'CALL_ENDED', t_ms))
    self._dispatch(queue, t_ms, out)

  def _staff(self, t_ms: int, out: List[dict]) -> None:
    # Agents busy now took their calls over the last handle time, so a
    # rota that kept up would follow the load of half a handle time ago;
    # it follows the load of a while before that.
    lag_ms = self.handle_seconds * 500.0 + self.clock.wall_ms_per_day_share(STAFFING_LAG_DAY_SHARE)
    offered = contact_rate(self.clock, self.peak_rate, t_ms - lag_ms) * self.handle_seconds
    for queue in self.queues:
      # Agents above the busy count log off at once; busy ones finish
      # their call first (busy > agents until they hang up).
      queue.agents = max(1, math.ceil(offered * queue.share * queue.staffing))
      self._dispatch(queue, t_ms, out)
    if self.open or any(q.busy or q.waiting for q in self.queues):
      self._push(t_ms + STAFF_TICK_MS, _STAFF, None)

  def _dispatch(self, queue: _Queue, t_ms: int, out: List[dict]) -> None:
    rng = self._rng
    while queue.line and queue.busy < queue.agents:
      call = queue.line.popleft()
      if call.state != 'waiting':
        continue  # abandoned while in the line
      call.state = 'talking'
      queue.waiting -= 1
      queue.busy += 1
      call.agent_id = f'A-{queue.queue_id}-{rng.randint(1, queue.agents):04d}'
      out.append(self._event(call, 'CALL_ANSWERED', t_ms))
      # Log-normal handle time with mean handle_seconds (sigma 0.6).
      talk_s = rng.lognormvariate(math.log(self.handle_seconds) - 0.18, 0.6)
      self._push(t_ms + round(min(talk_s, TALK_CAP_S) * 1000.0), _HANG_UP, call)

  def _event(self, call: _Call, event_type: str, t_ms: int, abandoned: bool = False) -> dict:
    # The wait until the contact left the queue, in whole seconds as the
    # file generator writes it: answered (at answered_ms) or abandoned (now).
    wait_s = 0
    if event_type == 'CALL_ANSWERED':
      call.answered_ms = t_ms
    if event_type in ('CALL_ANSWERED', 'CALL_ENDED'):
      left_ms = t_ms if abandoned else call.answered_ms
      wait_s = (left_ms - call.queued_ms) // 1000
    return {
      'call_uuid': call.call_uuid,
      'event_type': event_type,
      'timestamp': t_ms,
      'queue_id': self.queues[call.queue].queue_id,
      'abandoned': abandoned,
      'wait_time_seconds': wait_s,
      'agent_id': call.agent_id,
    }


# --------------------------------------------------------------------------
# CXone Data Actions: the file generator, chunk by chunk, on the clock
# --------------------------------------------------------------------------


class InteractionFeed:
  """CXone Data Actions due by a time: ``advance(until_ms)`` returns the
  lines (bytes) whose send time has come, oldest first.

  Chunks of ``chunk_seconds`` of event time come from
  ``generate_data_actions`` (planted patterns included) with ``start_ms`` at
  the chunk's start and, as its rate, ``peak_rate`` interactions per second
  times the clock's load there; a chunk is generated ``lookahead_ms`` before
  it starts, so a profile timestamped before its customer's first
  interaction goes out before it. A line is sent at the largest event time
  of its chunk so far (the generator's lines are in arrival order, and a
  planted out-of-order sequence keeps its order), merged across chunks.
  """

  def __init__(
    self,
    clock: DayClock,
    peak_rate: float,
    seed: int,
    *,
    customers: int = 2000,
    chunk_seconds: float = 60.0,
    lookahead_ms: int = 35_000,
  ) -> None:
    if peak_rate <= 0:
      raise ValueError('peak_rate must be > 0')
    if chunk_seconds <= 0:
      raise ValueError('chunk_seconds must be > 0')
    self.clock = clock
    self.peak_rate = peak_rate
    self.seed = seed
    self.customers = customers
    self.chunk_seconds = chunk_seconds
    self.lookahead_ms = lookahead_ms
    self.horizon_ms = clock.start_ms  # where the next chunk starts
    self.chunks = 0
    self._heap: List[Tuple[int, int, bytes]] = []
    self._seq = 0

  def _chunk(self) -> None:
    start = self.horizon_ms
    rate = max(self.peak_rate * self.clock.load(start), 1e-3)
    n = max(1, round(rate * self.chunk_seconds)) + PLANTED_INTERACTIONS
    # generate_data_actions modulates its rate by the real UTC hour of its
    # start_ms: undo that so the chunk runs at the simulated day's rate (it
    # takes a 24-hour average rate, hence SHAPE_MEAN).
    real_shape = diurnal_shape((start / 3_600_000.0) % 24.0)
    lines = generate_data_actions(
      n,
      seed=self.seed * 100_003 + self.chunks,
      customers=self.customers,
      start_ms=start,
      events_per_second=rate * SHAPE_MEAN / real_shape,
      jitter_seconds=0.0,
      too_late_share=0.0,
      malformed=0,
    )
    send_at = start
    newest_interaction = start
    for line in lines:
      ts = json.loads(line)['timestamp']
      send_at = max(send_at, ts)
      heapq.heappush(self._heap, (send_at, self._seq, line))
      self._seq += 1
      if b'"interactionId"' in line and b'"C-PLANT-' not in line:
        newest_interaction = max(newest_interaction, ts)
    self.chunks += 1
    # The next chunk starts after this one's last background interaction;
    # the planted sequences (up to 31 s long) and the profiles sent after
    # their interactions trail into it, merged by send time.
    self.horizon_ms = max(newest_interaction + 1, start + 1000)

  def next_ms(self) -> int:
    """Send time of the next line, as far as generated (a wake-up hint:
    ``advance`` generates what is due)."""
    return self._heap[0][0] if self._heap else self.horizon_ms - self.lookahead_ms

  def advance(self, until_ms: int) -> List[bytes]:
    """The lines due by ``until_ms``, in send order."""
    while self.horizon_ms - self.lookahead_ms <= until_ms:
      self._chunk()
    out = []
    heap = self._heap
    while heap and heap[0][0] <= until_ms:
      out.append(heapq.heappop(heap)[2])
    return out


# --------------------------------------------------------------------------
# The paced loop
# --------------------------------------------------------------------------

# send(topic, value, key, timestamp_ms): a producer's send, or a test's list.
Send = Callable[[str, bytes, Optional[bytes], Optional[int]], None]
# on_call(event, sent_ms): told of each call event sent (the benchmarks).
OnCall = Callable[[dict, int], None]


@dataclasses.dataclass
class LiveStats:
  calls: int = 0  # contacts started
  call_events: int = 0
  data_actions: int = 0
  max_lag_ms: int = 0  # how late after its event time a call event went out


def run_paced(
  floor: CallFloor,
  feed: Optional[InteractionFeed],
  send: Send,
  stop: threading.Event,
  *,
  calls_topic: str = CALLS_TOPIC,
  data_actions_topic: str = DATA_ACTIONS_TOPIC,
  now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
  on_call: Optional[OnCall] = None,
  report: Optional[Callable[[LiveStats], None]] = None,
  report_every_ms: int = 10_000,
  max_sleep_ms: int = 50,
) -> LiveStats:
  """Sends each record when its event time comes, until ``stop`` is set.
  ``stop.wait`` is the only sleep, so a signal that sets it ends the loop
  within ``max_sleep_ms``."""
  stats = LiveStats()
  next_report = now_ms() + report_every_ms
  while not stop.is_set():
    now = now_ms()
    for event in floor.advance(now):
      line = json_line(event)
      key, ts = key_and_timestamp(line, None)
      send(calls_topic, line, key, ts)
      stats.call_events += 1
      stats.calls += event['event_type'] == 'CALL_STARTED'
      if event['timestamp'] >= floor.clock.start_ms:  # not the entries from before it
        stats.max_lag_ms = max(stats.max_lag_ms, now - event['timestamp'])
      if on_call is not None:
        on_call(event, now)
    if feed is not None:
      for line in feed.advance(now):
        key, ts = key_and_timestamp(line, None)
        send(data_actions_topic, line, key, ts)
        stats.data_actions += 1
    if report is not None and now >= next_report:
      report(stats)
      next_report = now + report_every_ms
    due = [t for t in (floor.next_ms(), feed.next_ms() if feed else None) if t is not None]
    if not due and not floor.open:
      break  # arrivals stopped and the floor is empty
    wait_ms = min([max_sleep_ms] + [t - now_ms() for t in due])
    if wait_ms > 0:
      stop.wait(wait_ms / 1000.0)
  return stats


# --------------------------------------------------------------------------
# Kafka and the CLI
# --------------------------------------------------------------------------


def kafka_send(bootstrap: str, security: Dict[str, object]) -> Tuple[Send, Callable[[], None]]:
  """A send to Kafka and its close (flushes what was sent). Acknowledged by
  all replicas and one request in flight, as scripts/produce_events.py, so
  one call's events stay in order on its partition; a 5 ms linger keeps
  the live latency low."""
  from kafka import KafkaProducer  # kafka-python

  producer = KafkaProducer(
    bootstrap_servers=bootstrap,
    acks='all',
    linger_ms=5,
    retries=5,
    max_in_flight_requests_per_connection=1,
    request_timeout_ms=30_000,
    max_block_ms=30_000,
    **security,
  )
  failures: List[BaseException] = []

  def send(topic: str, value: bytes, key: Optional[bytes], ts: Optional[int]) -> None:
    if failures:
      raise RuntimeError(f'a send to Kafka failed: {failures[0]!r}')
    producer.send(topic, value=value, key=key, timestamp_ms=ts).add_errback(failures.append)

  def close() -> None:
    producer.flush(timeout=30)
    producer.close(timeout=30)

  return send, close


def build_arg_parser() -> argparse.ArgumentParser:
  """The CLI's argument parser (exposed for docs and tests)."""
  p = argparse.ArgumentParser(
    description='Produce live calls and CXone Data Actions to Kafka, paced by a '
    'compressed working day (event time = now).',
    formatter_class=argparse.ArgumentDefaultsHelpFormatter,
  )
  p.add_argument('--bootstrap', default='127.0.0.1:9092', help='Kafka bootstrap servers')
  p.add_argument('--rate', type=float, default=20.0, help='new contacts per second at the peak')
  p.add_argument('--queues', type=int, default=8, help='number of queues')
  p.add_argument(
    '--day-minutes',
    type=float,
    default=20.0,
    help='wall minutes in which a whole day passes (0: a flat rate, the peak all day)',
  )
  p.add_argument('--start-hour', type=float, default=7.0, help='simulated hour of day at start')
  p.add_argument('--handle-seconds', type=float, default=120.0, help="mean time of an agent's call")
  p.add_argument(
    '--staffing', type=float, default=1.03, help='agents per erlang of the load (lagged)'
  )
  p.add_argument(
    '--interaction-rate',
    type=float,
    default=None,
    help='CXone interactions per second at the peak (default: half of --rate; 0: none)',
  )
  p.add_argument('--customers', type=int, default=2000, help='CXone customer population')
  p.add_argument(
    '--chunk-seconds',
    type=float,
    default=60.0,
    help='event time of one Data Actions chunk; each carries the planted patterns',
  )
  p.add_argument('--queue-prefix', default='Q-', help='queue ids are this plus 101, 102...')
  p.add_argument('--calls-topic', default=CALLS_TOPIC)
  p.add_argument('--data-actions-topic', default=DATA_ACTIONS_TOPIC)
  p.add_argument('--seed', type=int, default=None, help='random seed (default: from the clock)')
  p.add_argument(
    '--duration', type=float, default=0.0, help='stop after this many seconds (0: until stopped)'
  )
  p.add_argument('--report-seconds', type=float, default=10.0, help='status line interval')
  p.add_argument(
    '--sasl-user',
    default=None,
    help='log in over SASL_SSL with SCRAM-SHA-512 as this user (as scripts/produce_events.py)',
  )
  p.add_argument('--sasl-password-env', default='KAFKA_PASSWORD')
  p.add_argument('--ssl-cafile', default=None)
  return p


def main(argv: Optional[Sequence[str]] = None) -> int:
  """CLI entry point: produces until SIGINT/SIGTERM (or --duration)."""
  args = build_arg_parser().parse_args(argv)
  if args.rate <= 0 or args.queues < 1:
    print('error: --rate must be > 0 and --queues >= 1', file=sys.stderr)
    return 2
  try:
    security = security_config(args.sasl_user, args.sasl_password_env, args.ssl_cafile)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  seed = args.seed if args.seed is not None else int(time.time())
  start = int(time.time() * 1000)
  clock = DayClock(start, args.day_minutes, args.start_hour)
  floor = CallFloor(
    clock,
    args.rate,
    args.queues,
    seed,
    handle_seconds=args.handle_seconds,
    staffing=args.staffing,
    queue_prefix=args.queue_prefix,
  )
  interaction_rate = args.rate / 2 if args.interaction_rate is None else args.interaction_rate
  feed = (
    InteractionFeed(
      clock, interaction_rate, seed, customers=args.customers, chunk_seconds=args.chunk_seconds
    )
    if interaction_rate > 0
    else None
  )
  stop = threading.Event()
  for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: stop.set())
  if args.duration > 0:
    threading.Timer(args.duration, stop.set).start()

  def report(stats: LiveStats) -> None:
    now = int(time.time() * 1000)
    waiting = floor.waiting()
    worst = sorted(waiting.items(), key=lambda kv: -kv[1])[:3]
    hour = clock.hour_of_day(now)
    print(
      f'[live] {time.strftime("%H:%M:%S")} day {int(hour):02d}:{int(hour % 1 * 60):02d} '
      f'rate {contact_rate(clock, args.rate, now):.1f}/s; sent {stats.calls} contacts '
      f'({stats.call_events} call events), {stats.data_actions} data actions; '
      f'waiting {sum(waiting.values())} (' + ', '.join(f'{q} {n}' for q, n in worst) + ')',
      file=sys.stderr,
      flush=True,
    )

  print(
    f'[live] producing to {args.bootstrap}: {args.calls_topic}'
    + (f', {args.data_actions_topic}' if feed else '')
    + f'; peak {args.rate}/s over {args.queues} queues, a day in {args.day_minutes} min, '
    f'seed {seed} (Ctrl-C stops)',
    file=sys.stderr,
    flush=True,
  )
  send, close = kafka_send(args.bootstrap, security)
  try:
    stats = run_paced(
      floor,
      feed,
      send,
      stop,
      calls_topic=args.calls_topic,
      data_actions_topic=args.data_actions_topic,
      report=report,
      report_every_ms=int(args.report_seconds * 1000),
    )
  finally:
    close()
  report(stats)
  print(
    f'[live] stopped, what was sent flushed; a call event went out at most '
    f'{stats.max_lag_ms} ms after its event time',
    file=sys.stderr,
  )
  return 0


if __name__ == '__main__':
  sys.exit(main())
