"""Local benchmark of the main job (not a test).

Generates N call events (default 1,000,000), then in the same run measures:
  * the bare-Python reference (scripts/reference.py: json parsing + dict
    aggregation of the same windows, same lateness rules), in-process;
  * the main job on the local runner with the SQLite sink, as a child process;
and prints events/s of both, their ratio and the peak RSS of each.

    .venv/bin/python scripts/bench_local.py --events 1000000
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from scripts.generate_events import write_call_events  # pylint: disable=wrong-import-position
from scripts.reference import reference_call_metrics  # pylint: disable=wrong-import-position


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--events', type=int, default=1_000_000)
  parser.add_argument('--seed', type=int, default=42)
  parser.add_argument('--workdir', default=None, help='keep files here')
  parser.add_argument(
      'job_args', nargs='*', help='extra main-job options, after --')
  args = parser.parse_args()

  workdir = args.workdir or tempfile.mkdtemp(prefix='bench_local_')
  os.makedirs(workdir, exist_ok=True)
  events_path = os.path.join(workdir, 'calls.jsonl')
  db_path = os.path.join(workdir, 'bench.db')
  t0 = time.perf_counter()
  counts = write_call_events(events_path, args.events, seed=args.seed)
  print(f'generated {counts["lines"]} lines ({counts["valid"]} calls) in '
        f'{time.perf_counter() - t0:.1f} s: {events_path}')

  t0 = time.perf_counter()
  ref = reference_call_metrics(events_path)
  ref_s = time.perf_counter() - t0
  ref_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

  if os.path.exists(db_path):
    os.remove(db_path)
  t0 = time.perf_counter()
  subprocess.run([
      sys.executable, '-m', 'pipelines.contact_center',
      f'--call_events={events_path}', f'--sqlite_path={db_path}',
      *args.job_args
  ],
                 cwd=REPO,
                 check=True,
                 stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)
  job_s = time.perf_counter() - t0
  job_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

  lines = counts['lines']
  report = {
      'lines': lines,
      'reference_events_per_s': round(lines / ref_s),
      'pipeline_events_per_s': round(lines / job_s),
      'pipeline_to_reference_ratio': f'1/{ref_s and job_s / ref_s:.1f}',
      'reference_peak_rss_mib': round(ref_rss_mib),
      'pipeline_peak_rss_mib': round(job_rss_mib),
      'pipeline_wall_s': round(job_s, 1),
      'reference_rows': len(ref.rows),
  }
  print(json.dumps(report, indent=2))


if __name__ == '__main__':
  main()
