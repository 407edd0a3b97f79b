"""The main job on a call stream with known poison and late records, run
with its Prometheus /metrics endpoint (--metrics_port): shared by the
endpoint's test and the test with a real Prometheus server."""

import collections
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple

from testing.datagen.calls import write_call_events
from testing.reference.calls import reference_call_metrics
from tests.support.poison import POISON_CALLS
from tests.test_poison_job import poisoned_copy

REPO = Path(__file__).resolve().parents[2]
SOURCE = 'cc-call-logs'
# One line per poll: the replay then runs a few seconds, long enough to be
# scraped while it runs.
POLL_SIZE = 1


class KnownStream(NamedTuple):
  """A call-events file and what the job must count on it: dead letters
  by reason, late events (all after_window_expiry) and the end (epoch
  seconds) of its newest window, from the plain-Python reference."""

  path: Path
  dead_letters: Dict[str, int]
  late_events: int
  newest_window_end_s: float


def known_stream(tmp_path: Path) -> KnownStream:
  """1,000 generated calls with 2 % too late and no malformed line of the
  generator's, plus every poison record of tests/support/poison.py."""
  generated = tmp_path / 'generated_calls.jsonl'
  write_call_events(
    str(generated), 1000, seed=29, events_per_second=1, malformed=0, too_late_share=0.02
  )
  path = tmp_path / 'calls.jsonl'
  expected = poisoned_copy(generated, path, POISON_CALLS, seed=29)
  reference = reference_call_metrics(str(path), poll_size=POLL_SIZE)
  assert reference.dead_letter_count == len(expected)
  assert reference.late, 'the stream must have late events to count'
  return KnownStream(
    path,
    dict(collections.Counter(expected.values())),
    len(reference.late),
    max(row['window_end_ms'] for row in reference.rows.values()) / 1000,
  )


def start_job(stream: KnownStream, tmp_path: Path, port: int, extra: List[str]) -> subprocess.Popen:
  """The main job on `stream` with /metrics on 127.0.0.1:`port`, its log in
  tmp_path/job.log."""
  log = open(tmp_path / 'job.log', 'wb')  # noqa: SIM115  (the child writes it)
  with log:
    return subprocess.Popen(
      [
        sys.executable,
        '-m',
        'pipelines.contact_center',
        f'--call_events={stream.path}',
        f'--sqlite_path={tmp_path / "out.db"}',
        f'--metrics_port={port}',
        f'--replay_poll_size={POLL_SIZE}',
        *extra,
      ],
      cwd=REPO,
      env=dict(os.environ, PYTHONPATH=str(REPO)),
      stdout=log,
      stderr=subprocess.STDOUT,
    )
