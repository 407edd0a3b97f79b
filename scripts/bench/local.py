"""Local benchmark of the main job (not a test).

For each flow, generates its input, then in the same run measures:
  * the bare-Python reference (testing/reference/calls.py or
    testing/reference/interactions.py: json parsing + dict aggregation of
    the same windows, same lateness and pattern rules), in-process;
  * the main job on the local runner with the SQLite sink, as a child
    process (`--runner prism`: on Beam's Prism instead, the binary
    scripts/stack/install_prism.sh builds once; its peak RSS is the
    job's Python process, the SDK harness, without Prism's own);
and prints events/s of both, their ratio and the peak RSS of each, and
whether the job's final rows equal the reference's (exit 1 if not).

    .venv/bin/python -m scripts.bench.local --flow calls --events 1000000
    .venv/bin/python -m scripts.bench.local --flow calls --events 200000 --runner prism
    .venv/bin/python -m scripts.bench.local --flow interactions \
        --events 1000000 --customers 100000
    .venv/bin/python -m scripts.bench.local --flow calls --job floor
"""

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time

from testing.datagen.calls import write_call_events
from testing.datagen.data_actions import write_data_actions
from testing.reference.calls import ROW_COLUMNS, comparable_rows, reference_call_metrics
from testing.reference.interactions import reference_interactions

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLOWS = {
  # flow: (generate(path, n, seed, parsed args), reference(path), job flag)
  'calls': (
    lambda path, n, seed, keys: write_call_events(path, n, seed=seed, queues=keys.queues),
    reference_call_metrics,
    '--call_events',
  ),
  'interactions': (
    lambda path, n, seed, keys: write_data_actions(path, n, seed=seed, customers=keys.customers),
    reference_interactions,
    '--data_actions',
  ),
}


def _call_rows_differ(ref, conn) -> list:
  """Which tables of the calls flow differ from the reference."""
  rows = {
    (q, ws): list(rest)
    for q, ws, *rest in conn.execute(
      f'SELECT queue_id, window_start, {", ".join(ROW_COLUMNS)} FROM abandon_metrics'
    )
  }
  expected = comparable_rows(ref)
  # The windows' late calls; the live floor's lost exits (queue_exit_lost)
  # have their own reference (testing/reference/queue_status.py).
  late = sorted(
    r[0]
    for r in conn.execute("SELECT event_id FROM late_events WHERE reason = 'after_window_expiry'")
  )
  dead = conn.execute('SELECT COUNT(*) FROM dead_letters').fetchone()[0]
  return [
    name
    for name, same in (
      ('abandon_metrics', rows == expected),
      ('late_events', late == sorted(ref.late)),
      ('dead_letters', dead == ref.dead_letter_count),
    )
    if not same
  ]


def _interaction_rows_differ(ref, conn) -> list:
  """Which tables of the interactions flow differ from the reference."""
  volumes = {
    (c, ws): v
    for c, ws, v in conn.execute('SELECT channel, window_start, volume FROM interaction_volumes')
  }
  alerts = set(conn.execute('SELECT customer_id, channel, timestamp FROM pattern_alerts'))
  late = {}
  for event_id, reason in conn.execute('SELECT event_id, reason FROM late_events'):
    late.setdefault(reason, set()).add(event_id)
  dead = conn.execute('SELECT COUNT(*) FROM dead_letters').fetchone()[0]
  return [
    name
    for name, same in (
      ('interaction_volumes', volumes == ref.volumes),
      ('pattern_alerts', alerts == ref.alerts),
      (
        'late_events',
        late.get('after_window_expiry', set()) == (ref.late_volume_ids)
        and late.get('behind_processed_interactions', set()) == ref.pattern_late_ids,
      ),
      ('dead_letters', dead == ref.dead_letter_count),
    )
    if not same
  ]


ROWS_DIFFER = {'calls': _call_rows_differ, 'interactions': _interaction_rows_differ}


def _peak_rss_kib(pid: int) -> int:
  """VmHWM of a live process in KiB (0 once it has exited)."""
  try:
    with open(f'/proc/{pid}/status') as status:
      for line in status:
        if line.startswith('VmHWM:'):
          return int(line.split()[1])
  except OSError:
    pass
  return 0


def runner_flags(runner: str) -> list:
  """The main job's flags for `runner`: none for the local runner (the
  job's default), PrismRunner on the binary scripts/stack/install_prism.sh
  builds (once) and prints."""
  if runner == 'local':
    return []
  install = os.path.join(REPO, 'scripts', 'stack', 'install_prism.sh')
  binary = subprocess.run(
    [install], env={**os.environ, 'PYTHON': sys.executable}, capture_output=True, text=True
  )
  if binary.returncode:
    sys.exit(f'{install} failed:\n{binary.stderr}')
  return ['--runner=PrismRunner', f'--prism_location={binary.stdout.strip()}']


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--flow', choices=sorted(FLOWS), default='calls')
  parser.add_argument('--events', type=int, default=1_000_000)
  parser.add_argument(
    '--customers', type=int, default=100_000, help='distinct customers (interactions flow)'
  )
  parser.add_argument(
    '--queues', type=int, default=8, help='distinct queues (calls flow; docs/benchmarks.md, "Keys")'
  )
  parser.add_argument('--seed', type=int, default=42)
  parser.add_argument(
    '--job',
    choices=('main', 'floor'),
    default='main',
    help='main: the main job; floor: scripts/bench/replay_floor.py, the same '
    'replay and parsing with a plain WindowInto | CombinePerKey (calls '
    'flow only), i.e. what the runner costs before our transforms',
  )
  parser.add_argument('--workdir', default=None, help='keep files here')
  parser.add_argument(
    '--runner', choices=('local', 'prism'), default='local', help="the main job's runner"
  )
  parser.add_argument('job_args', nargs='*', help='extra main-job options, after --')
  args = parser.parse_args()
  if args.job == 'floor' and args.flow != 'calls':
    parser.error('--job floor runs the calls flow only')

  workdir = args.workdir or tempfile.mkdtemp(prefix='bench_local_')
  os.makedirs(workdir, exist_ok=True)
  generate, reference, job_flag = FLOWS[args.flow]
  events_path = os.path.join(workdir, f'{args.flow}.jsonl')
  db_path = os.path.join(workdir, 'bench.db')
  t0 = time.perf_counter()
  counts = generate(events_path, args.events, args.seed, args)
  print(f'generated {counts["lines"]} lines in {time.perf_counter() - t0:.1f} s: {events_path}')

  t0 = time.perf_counter()
  expected = reference(events_path)
  ref_s = time.perf_counter() - t0
  ref_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

  if os.path.exists(db_path):
    os.remove(db_path)
  t0 = time.perf_counter()
  module = 'scripts.bench.replay_floor' if args.job == 'floor' else 'pipelines.contact_center'
  job = subprocess.Popen(
    [
      sys.executable,
      '-m',
      module,
      f'{job_flag}={events_path}',
      *([f'--sqlite_path={db_path}'] if args.job == 'main' else []),
      *runner_flags(args.runner),
      *args.job_args,
    ],
    cwd=REPO,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  # The job's own peak RSS (VmHWM), read while it runs: getrusage of the
  # children would also count this process's size at fork time.
  job_peak_kib = 0
  while job.poll() is None:
    job_peak_kib = max(job_peak_kib, _peak_rss_kib(job.pid))
    time.sleep(0.2)
  if job.returncode:
    sys.exit(f'{module} failed with exit code {job.returncode}')
  job_s = time.perf_counter() - t0
  job_rss_mib = job_peak_kib / 1024

  lines = counts['lines']
  report = {
    'flow': args.flow,
    'job': args.job,
    'runner': args.runner,
    'lines': lines,
    'reference_events_per_s': round(lines / ref_s),
    'pipeline_events_per_s': round(lines / job_s),
    'pipeline_to_reference_ratio': f'1/{ref_s and job_s / ref_s:.1f}',
    'reference_peak_rss_mib': round(ref_rss_mib),
    'pipeline_peak_rss_mib': round(job_rss_mib),
    'pipeline_wall_s': round(job_s, 1),
  }
  if args.job == 'main':
    conn = sqlite3.connect(db_path)
    differ = ROWS_DIFFER[args.flow](expected, conn)
    conn.close()
    report['rows_equal_reference'] = not differ
    if differ:
      report['tables_differing'] = differ
  print(json.dumps(report, indent=2))
  if args.job == 'main' and differ:
    sys.exit(1)


if __name__ == '__main__':
  main()
