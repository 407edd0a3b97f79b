"""What a job on the local runner emitted, in order, and the runner's own
TestStream processing clock: for comparisons after every TestStream poll
(tests/test_queue_status_reference.py, tests/test_agents_reference.py).

The local runner runs every step in this process, on one worker thread, so
`collect` sees the rows in the order the job wrote them; `runner_now` is
the TestStream clock (not the wall clock), so rows carry the processing
time of the poll that wrote them and a processing-time refresh reads the
time its timers fire on.
"""

from typing import Any, Iterator, List, Tuple

import pytest
from apache_beam.runners.direct import clock as direct_clock
from apache_beam.utils.timestamp import Timestamp

# (output name, element) in emission order.
COLLECTED: List[Tuple[str, Any]] = []
# The runner's TestStream clocks, the latest last.
_CLOCKS: List[Any] = []


def collect(element: Any, output: str) -> Tuple:
  """A FlatMap function recording `element` under `output`; emits nothing."""
  COLLECTED.append((output, element))
  return ()


def runner_now() -> Timestamp:
  """The processing time of the latest run's TestStream clock."""
  # pylint: disable=protected-access
  return _CLOCKS[-1]._current_time


@pytest.fixture
def runner_clock(monkeypatch) -> Iterator[None]:
  """Records the direct runner's TestStream clock when a run makes it, and
  empties COLLECTED before and after the test."""
  original_init = direct_clock.TestClock.__init__

  def recording_init(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    _CLOCKS.append(self)

  monkeypatch.setattr(direct_clock.TestClock, '__init__', recording_init)
  _CLOCKS.clear()
  COLLECTED.clear()
  yield
  _CLOCKS.clear()
  COLLECTED.clear()
