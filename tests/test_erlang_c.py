"""Erlang C (transforms/erlang_c.py) against a published worked example, the
textbook closed form, and its properties.

The worked example is the one Call Centre Helper's "Erlang C formula made
simple" uses (100 calls in 30 minutes, AHT 180 s, 20 s target), with the
figures the R package ErlangC prints for it in its README
(https://rdocumentation.org/packages/ErlangC/versions/0.1.0): 10 erlangs;
with 14 agents a waiting probability of 0.1741319, a service level of
0.88835 and an ASA of 7.83593701177724 s; with 11 agents a waiting
probability of 0.6821182.
"""

import math

import pytest

from transforms.erlang_c import average_speed_of_answer, erlang_b, erlang_c, service_level

CALLS, PERIOD_S, AHT_S, TARGET_S = 100, 1800, 180, 20
TRAFFIC = CALLS / PERIOD_S * AHT_S


def test_the_published_worked_example():
  assert TRAFFIC == pytest.approx(10)
  assert erlang_c(14, TRAFFIC) == pytest.approx(0.1741319, abs=5e-8)
  assert service_level(14, TRAFFIC, TARGET_S, AHT_S) == pytest.approx(0.88835, abs=5e-6)
  assert average_speed_of_answer(14, TRAFFIC, AHT_S) == pytest.approx(7.83593701177724, rel=1e-12)
  assert erlang_c(11, TRAFFIC) == pytest.approx(0.6821182, abs=5e-8)


def closed_form(agents: int, traffic: float) -> float:
  """The textbook formula, A^N/N! · N/(N - A) over the sum of A^k/k! for
  k < N plus that term: exact in floats for small N."""
  top = traffic**agents / math.factorial(agents) * agents / (agents - traffic)
  return top / (sum(traffic**k / math.factorial(k) for k in range(agents)) + top)


@pytest.mark.parametrize('agents,traffic', [(1, 0.5), (2, 1.2), (5, 4.9), (14, 10), (30, 21.7)])
def test_the_recursion_agrees_with_the_closed_form(agents, traffic):
  assert erlang_c(agents, traffic) == pytest.approx(closed_form(agents, traffic), rel=1e-12)


def test_large_teams_neither_overflow_nor_lose_precision():
  # 1000! overflows a float; the recursion never forms it.
  assert 0 < erlang_c(1000, 950.5) < 1
  assert 0 < erlang_c(5000, 4990) < 1
  assert erlang_b(2000, 1000) < 1e-100


def test_unstable_queues_return_the_limits():
  for agents in (0, 5, 10):
    assert erlang_c(agents, 10) == 1.0
    assert service_level(agents, 10, TARGET_S, AHT_S) == 0.0
    assert average_speed_of_answer(agents, 10, AHT_S) == math.inf


def test_no_traffic_means_no_wait():
  assert erlang_c(0, 0) == 0.0
  assert service_level(3, 0, TARGET_S, AHT_S) == 1.0
  assert average_speed_of_answer(3, 0, AHT_S) == 0.0


def test_more_agents_and_longer_targets_never_lower_the_service_level():
  levels = [service_level(n, TRAFFIC, TARGET_S, AHT_S) for n in range(8, 30)]
  assert levels == sorted(levels)
  assert levels[0] == 0.0 and levels[-1] > 0.9999
  waits = [erlang_c(n, TRAFFIC) for n in range(8, 30)]
  assert waits == sorted(waits, reverse=True)
  by_target = [service_level(12, TRAFFIC, t, AHT_S) for t in range(0, 300, 10)]
  assert by_target == sorted(by_target)
  # A zero target: answered at once, i.e. not waiting at all.
  assert by_target[0] == pytest.approx(1 - erlang_c(12, TRAFFIC))


def test_more_traffic_never_raises_the_service_level():
  levels = [service_level(14, a / 2, TARGET_S, AHT_S) for a in range(1, 29)]
  assert levels == sorted(levels, reverse=True)


@pytest.mark.parametrize(
  'call',
  [
    lambda: erlang_c(-1, 1),
    lambda: erlang_c(3, -0.5),
    lambda: erlang_c(3, math.nan),
    lambda: erlang_c(3, math.inf),
    lambda: service_level(3, 1, 20, 0),
    lambda: service_level(3, 1, -1, 180),
    lambda: average_speed_of_answer(3, 1, 0),
  ],
)
def test_impossible_inputs_are_refused(call):
  with pytest.raises(ValueError):
    call()
