"""Erlang C: waiting probability, service level and average speed of answer
of a queue served by N agents (pure math, no Beam).

The model (M/M/N, docs/forecast.md): calls arrive as a Poisson process of
rate λ, handle times are exponential with mean AHT, N identical agents take
calls first come first served from one queue, and nobody abandons. The
offered traffic is A = λ·AHT erlangs. In steady state:

  C(N, A)        the probability that a call waits at all (Erlang C);
  SL(N, A, T)    = 1 - C(N, A)·exp(-(N - A)·T/AHT), the probability that a
                 call waits at most T seconds;
  ASA(N, A)      = C(N, A)·AHT/(N - A), the mean wait.

With N <= A the queue grows without bound: every call waits (C = 1), the
share answered within any finite T tends to 0 and the mean wait to
infinity. These functions return those limits rather than fail, since a
queue whose staff fell below its traffic is exactly what a forecast must
report.

C is computed from Erlang B by its recursion B(0) = 1,
B(n) = A·B(n-1) / (n + A·B(n-1)), then C = N·B / (N - A·(1 - B)): every
term stays in [0, 1], so no factorial or power overflows, whatever N.
"""

import math


def _check(agents: int, traffic: float) -> None:
  if agents < 0:
    raise ValueError(f'agents must be >= 0, got {agents}')
  if not traffic >= 0 or math.isinf(traffic):  # also rejects NaN
    raise ValueError(f'traffic must be a finite number of erlangs >= 0, got {traffic}')


def erlang_b(agents: int, traffic: float) -> float:
  """The Erlang B blocking probability of `agents` servers offered
  `traffic` erlangs (the step towards Erlang C)."""
  _check(agents, traffic)
  blocking = 1.0
  for n in range(1, agents + 1):
    blocking = traffic * blocking / (n + traffic * blocking)
  return blocking


def erlang_c(agents: int, traffic: float) -> float:
  """The probability that a call waits (Erlang C) with `agents` agents and
  `traffic` = λ·AHT erlangs; 1.0 when agents <= traffic (unstable)."""
  _check(agents, traffic)
  if traffic == 0:
    return 0.0
  if agents <= traffic:
    return 1.0
  blocking = erlang_b(agents, traffic)
  return agents * blocking / (agents - traffic * (1 - blocking))


def service_level(agents: int, traffic: float, target_seconds: float, aht_seconds: float) -> float:
  """The probability that a call is answered within `target_seconds`:
  1 - C(N, A)·exp(-(N - A)·T/AHT); 0.0 when agents <= traffic (the
  steady-state limit of an unstable queue) unless nobody calls."""
  if aht_seconds <= 0:
    raise ValueError(f'aht_seconds must be > 0, got {aht_seconds}')
  if target_seconds < 0:
    raise ValueError(f'target_seconds must be >= 0, got {target_seconds}')
  waits = erlang_c(agents, traffic)
  if traffic == 0:
    return 1.0
  if agents <= traffic:
    return 0.0
  return 1.0 - waits * math.exp(-(agents - traffic) * target_seconds / aht_seconds)


def average_speed_of_answer(agents: int, traffic: float, aht_seconds: float) -> float:
  """The mean wait in seconds, C(N, A)·AHT/(N - A); infinity when agents
  <= traffic (unstable) unless nobody calls."""
  if aht_seconds <= 0:
    raise ValueError(f'aht_seconds must be > 0, got {aht_seconds}')
  waits = erlang_c(agents, traffic)
  if traffic == 0:
    return 0.0
  if agents <= traffic:
    return math.inf
  return waits * aht_seconds / (agents - traffic)
