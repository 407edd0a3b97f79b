"""Test helpers shared by the generator/reference test modules.

``test_generator_reference.py`` (call events) and
``test_data_actions_reference.py`` (Data Actions) check their generator and
reference the same way: hand-written files, classification of rejected
lines, determinism across processes, bounded disorder and re-delivery gaps.
Like those tests, this module never imports the pipeline, so the references
stay independent oracles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from testing.reference import calls as ref

REPO = Path(__file__).resolve().parents[2]
B = 1793606400000  # 2026-11-02T08:00:00Z, a multiple of both window sizes
S = 1000  # ms per second


def write_lines(path: Path, lines: Iterable[bytes]) -> Path:
  """Write ``lines`` (bytes, no newline) to ``path``, each ending with a
  newline; return ``path``."""
  path.write_bytes(b''.join(line + b'\n' for line in lines))
  return path


def decode_dead_line(raw: bytes, truncated_kind: bool = False) -> Tuple[Optional[str], object]:
  """The first steps of classifying a rejected line (test-side,
  independent of how a generator builds it).

  Out: ``(kind, None)`` when the line fails before being a JSON value
  (``oversized``, ``invalid_utf8``, ``not_json``, or ``truncated_json`` for
  text starting with ``{`` when ``truncated_kind``), else ``(None, value)``
  with the decoded value for the caller to classify further.
  """
  if len(raw) > ref.MAX_LINE_BYTES:
    return 'oversized', None
  try:
    text = raw.decode('utf-8')
  except UnicodeDecodeError:
    return 'invalid_utf8', None
  try:
    return None, json.loads(text)
  except ValueError:
    return ('truncated_json' if truncated_kind and text.startswith('{') else 'not_json'), None


def edit_record(base: dict, change: dict) -> bytes:
  """``base`` updated with ``change`` as a JSON line; the pseudo-key
  ``_drop`` names a field to delete instead."""
  rec = dict(base)
  change = dict(change)
  drop = change.pop('_drop', None)
  rec.update(change)
  if drop:
    del rec[drop]
  return json.dumps(rec).encode()


def assert_same_seed_same_bytes(generate: Callable[[int], Iterable[bytes]]) -> None:
  """``generate(seed)`` is deterministic per seed and differs across
  seeds."""
  a = b'\n'.join(generate(5))
  b = b'\n'.join(generate(5))
  c = b'\n'.join(generate(6))
  assert a == b
  assert a != c


def run_generator_cli(module: str, args: Sequence[str], cwd: Path, hash_seed: str) -> None:
  """Run ``python -m <module>`` in another process, from another directory
  and with another ``PYTHONHASHSEED`` (output must not depend on either)."""
  env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(REPO))
  subprocess.run(
    [sys.executable, '-m', module, *args], check=True, env=env, cwd=cwd, capture_output=True
  )


def assert_bounded_disorder(lines: Iterable[bytes], max_delay_ms: int) -> None:
  """The lines' timestamps are out of order, but none is more than
  ``max_delay_ms`` behind the running maximum (the jitter)."""
  ts = [json.loads(line)['timestamp'] for line in lines]
  assert ts != sorted(ts)  # disordered ...
  running_max = ts[0]
  for t in ts:
    running_max = max(running_max, t)
    assert running_max - t <= max_delay_ms  # ... but only within the jitter


def redelivery_gaps(lines: Iterable[bytes]) -> List[int]:
  """For every line that repeats an earlier one byte for byte, how many
  lines after the first copy it comes."""
  first_pos: Dict[bytes, int] = {}
  gaps = []
  for i, line in enumerate(lines):
    if line in first_pos:
      gaps.append(i - first_pos[line])
    else:
      first_pos[line] = i
  return gaps
