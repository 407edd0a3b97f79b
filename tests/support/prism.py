"""Prism, Beam's portable local runner, as the second runner of the end-to-end
result tests.

The job and every other test run LocalRunner, Beam's bundle-based direct
runner with runner internals of one Beam release replaced
(pipelines/local_runner.py), for its speed: the main job on Prism gives the
same rows for about 3 times the CPU time (docs/design.md). The result tests
that cover each input format and flow run the job on both
(`on_both_runners`), against the same references, so every result is also
checked on a Beam runner as users get it. The binary is built once by
scripts/stack/install_prism.sh (scripts/test.sh runs it); a missing binary
fails these tests, it does not skip them: a skip would leave the local
runner unchecked without anyone noticing.

One result differs for a reason of the Beam model, not of either runner's
correctness: Prism, like Flink, holds a step's output watermark for its
pending event-time timers; the bundle-based direct runner does not
(tests/conftest.py `drain`), and the references follow it. So an end the
Genesys pairing (transforms/acd_pairing.py) releases unpaired from its timer
reaches the windows on Prism before the watermark that expires its window,
and is counted there, where the local runner and the reference have it late
(3 of the 5 late calls of samples/genesys_cloud.jsonl). That test compares
the rest on Prism (tests/test_vendor_pipeline_e2e.py). No test compares
what differs anyway: wall-clock columns (received_at, updated_at,
revision); pane_index, the count of panes a window took, which follows the
runner's bundles; and late_events.raw, where Prism, encoding every element
between steps as Flink does, writes a whole-number wait of an OfferedCall
as 2.0 and the local runner, passing Python objects, as 2.
"""

import os
from pathlib import Path
from typing import List

import pytest
from apache_beam.version import __version__ as BEAM_VERSION

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = 'scripts/stack/install_prism.sh'
LOCAL = 'local'
PRISM = 'prism'

# Each result test so marked runs once per runner, the runner's name in its id.
on_both_runners = pytest.mark.parametrize('runner', [LOCAL, PRISM])

# Prism 2.77.0 drops the output tag of a TestStream's elements when it
# length-prefixes them (handleTestStream in its internal/handlerunner.go
# rebuilds each AddElements event without its tag; bytes are always
# length-prefixed). With one output the untagged elements still reach it;
# with two (the replay of two files, transforms/replay.py) they reach neither
# and the job fails ("nothing in progress and no refreshes"). A job on two
# files marked so is expected to fail on Prism, strictly: when a Beam upgrade
# fixes it, the test says so and the mark goes.
PRISM_LOSES_REPLAY_TAGS = pytest.mark.xfail(
  raises=RuntimeError,
  strict=True,
  reason='Prism 2.77.0 loses the output tags of TestStream elements: one replayed file per job',
)


def prism_location() -> str:
  """The Prism binary of the installed Beam release, where
  scripts/stack/install_prism.sh puts it ($RUN_DIR/prism/v<version>/prism);
  fails the calling test when it is not there."""
  run_dir = Path(os.environ.get('RUN_DIR') or REPO / '.run')
  binary = run_dir / 'prism' / f'v{BEAM_VERSION}' / 'prism'
  if not os.access(binary, os.X_OK):
    pytest.fail(f'Prism {BEAM_VERSION} is not installed at {binary}: run {INSTALL_SCRIPT}')
  return str(binary)


def runner_flags(runner: str) -> List[str]:
  """The main job's flags that run it on `runner`: none for LOCAL (the
  job's default runner), PrismRunner on the installed binary for PRISM."""
  if runner == LOCAL:
    return []
  return ['--runner=PrismRunner', f'--prism_location={prism_location()}']
