"""Every entry point starts quietly: nothing on stderr a user cannot act on
(Beam's "apitools not found", type-hint warnings), see pipelines/__init__.py."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
  'module, args',
  [
    ('pipelines.contact_center', ['--help']),
    ('pipelines.launch', ['--describe']),
    ('pipelines.wallboard', ['--help']),
    ('pipelines.reprocess', ['--help']),
  ],
)
def test_entry_point_prints_nothing_a_user_cannot_act_on(module, args):
  done = subprocess.run(
    [sys.executable, '-m', module, *args],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip()
  assert 'apitools' not in done.stderr
  assert 'will be ignored' not in done.stderr
  assert done.stderr.strip() == ''


def test_old_wallboard_entry_point_says_it_is_deprecated_and_runs_the_wallboard():
  done = subprocess.run(
    [sys.executable, '-m', 'pipelines.dashboard', '--help'],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert done.returncode == 0, done.stderr
  assert 'python -m pipelines.wallboard' in done.stdout
  [notice] = done.stderr.strip().splitlines()
  assert notice.endswith(
    'python -m pipelines.dashboard is deprecated, use python -m pipelines.wallboard'
  )
