"""Portable FlinkRunner smoke tests: embedded Flink ([local]) and a real standalone cluster.

These tests never skip: a missing job-server jar, Flink distribution, java or a cluster that
does not come up is a failure. The module fixture runs scripts/stack/fetch_flink.sh (idempotent,
cached) and scripts/flink.sh start; it stops the cluster afterwards only if it started it.

  .venv/bin/python -m pytest tests/flink -v
"""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.flink_rest import rest

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get('RUN_DIR', REPO / '.run'))
SCRIPTS = REPO / 'scripts'
PIPELINE = Path(__file__).with_name('smoke_pipeline.py')
ENV_FILE = RUN_DIR / 'jars' / 'flink-job-server' / 'flink.env'
POOL = '127.0.0.1:50000'

sys.path.insert(0, str(Path(__file__).parent))
from smoke_pipeline import EXPECTED_LINES  # noqa: E402

EXPECTED = ''.join(line + '\n' for line in EXPECTED_LINES)


def _env():
  env = dict(os.environ, RUN_DIR=str(RUN_DIR))
  # the pipeline's interpreter (and its venv) first on PATH
  env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env.get("PATH", "")}'
  return env


def _read_env_file():
  out = {}
  for line in ENV_FILE.read_text().splitlines():
    if '=' in line and not line.startswith('#'):
      k, v = line.split('=', 1)
      out[k] = v.strip('"')
  return out


def _run_pipeline(output, *args, timeout=600):
  cmd = [sys.executable, str(PIPELINE), f'--output={output}', *args]
  t0 = time.monotonic()
  proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
  wall = time.monotonic() - t0
  print(f'\n{" ".join(cmd)}\n-> rc={proc.returncode} in {wall:.1f}s')
  assert proc.returncode == 0, (
    f'pipeline failed (rc={proc.returncode})\n--- stderr tail ---\n{proc.stderr[-6000:]}'
  )
  return wall


@pytest.fixture(scope='module')
def flink():
  fetch = subprocess.run(
    [str(SCRIPTS / 'stack' / 'fetch_flink.sh')],
    cwd=REPO,
    env=_env(),
    capture_output=True,
    text=True,
    timeout=1200,
  )
  assert fetch.returncode == 0, f'fetch_flink.sh failed:\n{fetch.stderr[-4000:]}'
  env = _read_env_file()
  jar = Path(env['FLINK_JOB_SERVER_JAR'])
  assert jar.is_file() and jar.stat().st_size > 50 << 20, f'job-server jar missing: {jar}'
  assert (Path(env['FLINK_HOME']) / 'bin' / 'jobmanager.sh').is_file(), env['FLINK_HOME']

  was_running = (
    subprocess.run(
      [str(SCRIPTS / 'flink.sh'), 'status'], cwd=REPO, env=_env(), capture_output=True, text=True
    ).returncode
    == 0
  )
  start = subprocess.run(
    [str(SCRIPTS / 'flink.sh'), 'start'],
    cwd=REPO,
    env=_env(),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert start.returncode == 0, f'flink.sh start failed:\n{start.stdout}\n{start.stderr[-4000:]}'
  overview = rest('/overview')
  assert overview['taskmanagers'] >= 1 and overview['slots-total'] >= 2, overview
  yield {'jar': str(jar), 'flink_version': env['FLINK_VERSION']}
  if not was_running:
    subprocess.run(
      [str(SCRIPTS / 'flink.sh'), 'stop'],
      cwd=REPO,
      env=_env(),
      capture_output=True,
      text=True,
      timeout=300,
    )


def test_embedded_flink_loopback(flink, tmp_path):
  out = tmp_path / 'local.txt'
  _run_pipeline(
    out,
    '--runner=FlinkRunner',
    '--flink_master=[local]',
    f'--flink_job_server_jar={flink["jar"]}',
    '--environment_type=LOOPBACK',
    '--streaming',
  )
  assert out.read_text() == EXPECTED


def _cluster_args(flink, job_name):
  return [
    '--runner=FlinkRunner',
    '--flink_master=127.0.0.1:8081',
    f'--flink_job_server_jar={flink["jar"]}',
    '--environment_type=EXTERNAL',
    f'--environment_config={POOL}',
    '--streaming',
    f'--job_name={job_name}',
  ]


def _flink_job(job_name):
  jobs = [j for j in rest('/jobs/overview')['jobs'] if j['name'] == job_name]
  assert len(jobs) == 1, f'expected one Flink job named {job_name}, got {jobs}'
  return jobs[0]


def test_cluster_external_worker_pool(flink, tmp_path):
  out = tmp_path / 'cluster.txt'
  name = f'smoke-cluster-{uuid.uuid4().hex[:8]}'
  _run_pipeline(out, *_cluster_args(flink, name), '--parallelism=2')
  assert out.read_text() == EXPECTED
  job = _flink_job(name)  # it really ran on the cluster, on both slots
  assert job['state'] == 'FINISHED', job
  detail = rest(f'/jobs/{job["jid"]}')
  assert max(v['parallelism'] for v in detail['vertices']) == 2


def test_cluster_checkpointing_options_pass_through(flink, tmp_path):
  """Flink options given to the Python pipeline reach the job: checkpoints complete in RocksDB.

  With checkpointing on, Beam keeps sources alive (so checkpoints can happen) until
  shutdown_sources_after_idle_ms; the job then finishes. finish_bundle_before_checkpointing is
  required for correct output here: without it, Beam's Flink runner (2.62) emitted no window
  panes at all for this bounded input at 1-2 s checkpoint intervals (5 of 5 runs, [local] and
  cluster), with it 3 of 3 runs were exact.
  """
  out = tmp_path / 'ckpt.txt'
  storage = f'file://{RUN_DIR}/flink/checkpoints'
  name = f'smoke-ckpt-{uuid.uuid4().hex[:8]}'
  _run_pipeline(
    out,
    *_cluster_args(flink, name),
    '--checkpointing_interval=2000',
    '--checkpointing_mode=EXACTLY_ONCE',
    '--min_pause_between_checkpoints=500',
    '--checkpoint_timeout_millis=60000',
    '--state_backend=rocksdb',
    f'--state_backend_storage_path={storage}',
    '--shutdown_sources_after_idle_ms=8000',
    '--finish_bundle_before_checkpointing',
    '--number_of_execution_retries=2',
    '--execution_retry_delay=3000',
  )
  assert out.read_text() == EXPECTED
  job = _flink_job(name)
  cfg = rest(f'/jobs/{job["jid"]}/checkpoints/config')
  assert (cfg['mode'], cfg['interval'], cfg['min_pause'], cfg['timeout']) == (
    'exactly_once',
    2000,
    500,
    60000,
  ), cfg
  assert 'RocksDB' in cfg['state_backend'], cfg
  stats = rest(f'/jobs/{job["jid"]}/checkpoints')
  assert stats['counts']['completed'] >= 1, stats['counts']
  latest = stats['latest']['completed']
  assert latest['external_path'].startswith(f'file:{RUN_DIR}/flink/checkpoints/'), latest
  restart = rest(f'/jobs/{job["jid"]}/config')['execution-config']['restart-strategy']
  assert 'fixed delay' in restart.lower() and '#2' in restart, restart
