"""The job against the SECURED pair of `scripts/stack.sh up --secure`: Kafka over SASL_SSL
(SCRAM-SHA-512, 127.0.0.1:9094) and Cassandra with password authentication, TLS and client
certificates (127.0.0.1:9142, a certificate issued to a DNS name only), on the Flink cluster.

Needs (nothing here skips; a missing piece is a failure): the secured pair and its files under
$RUN_DIR/secure (their settings and secrets are read from the environment that scripts/test.sh
exports, else from those files), the KafkaIO expansion service (scripts/stack.sh up), and the
Flink cluster (scripts/flink.sh, started if needed), whose TaskManager and worker pool must carry
the job's secret variables (scripts/flink.sh passes $RUN_DIR/secure/secrets.env). Run it under
`flock /tmp/flink.lock` like every test that uses the shared cluster.

- end to end: Kafka -> Flink cluster -> Cassandra (and the Kafka and SQLite sinks), rows equal to
  the reference;
- leaks: with that job running, its known secret values must appear in no log under $RUN_DIR,
  no Flink REST answer for the job (/jobs/<id>, /config, /plan), no process's command line, no
  output (SQLite, Cassandra, Kafka) and not in the job's submitted files (blobs, checkpoints);
- everything the stack and the cluster started listens on loopback only;
- misconfigurations fail fast at launch with one line saying what to fix, and a worker with a
  wrong or missing Cassandra password fails at once instead of retrying.

  flock /tmp/flink.lock .venv/bin/python -m pytest tests/integration/test_secured_stack.py -v -s
"""

import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Dict, List

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from scripts.produce_events import produce_lines, read_lines, rebase_lines
from scripts.stack.secure_setup import Secure, cassandra_session, read_env_file
from testing.datagen.calls import DEFAULT_START_MS, write_call_events
from tests.integration.conftest import REPO, RUN_DIR, assert_reachable, service_pid
from tests.integration.test_flink_recovery import (
  CALLS,
  Submitted,
  cassandra_rows,
  recovery_job_args,
  reference_rows,
  rows_diff,
  wait_cluster_free,
  wait_until,
)
from tests.support.flink_rest import rest
from transforms.cassandra import CassandraConnectError, CassandraSettings, CassandraWriter
from transforms.kafka_io import TOPICS
from transforms.records import AbandonMetrics
from transforms.schema import ABANDON_METRICS

SECURE = RUN_DIR / 'secure'
# What the stack files hold: non-secret settings, the job's secrets, the operator's secrets.
STACK_KEYS = (
  'SECURE_KAFKA_BOOTSTRAP',
  'SECURE_CA_FILE',
  'SECURE_CASSANDRA_HOST',
  'SECURE_CASSANDRA_PORT',
  'SECURE_CASSANDRA_TLS_NAME',
  'SECURE_CASSANDRA_USER',
  'SECURE_CASSANDRA_ADMIN_USER',
  'SECURE_CLIENT_CERT',
  'SECURE_CLIENT_KEY',
  'SECURE_KAFKA_USER',
)
JOB_SECRETS = ('KAFKA_SASL_JAAS_CONFIG', 'CASSANDRA_PASSWORD')
ADMIN_SECRETS = ('CASSANDRA_ADMIN_PASSWORD',)
LAUNCH_TIMEOUT_S = 120  # a failed launch must end well before a retry budget would
FAIL_FAST_S = 45  # Beam's import and the JVM of the Kafka check included


@pytest.fixture(scope='module')
def secure() -> Dict[str, str]:
  """Settings and secrets of the secured pair: the environment (scripts/test.sh exports the
  files' variables), else $RUN_DIR/secure/{stack,secrets,admin}.env."""
  values = {}
  for name in ('stack.env', 'secrets.env', 'admin.env'):
    path = SECURE / name
    if path.is_file():
      values.update(read_env_file(path))
  values.update(
    {k: os.environ[k] for k in STACK_KEYS + JOB_SECRETS + ADMIN_SECRETS if k in os.environ}
  )
  missing = [k for k in STACK_KEYS + JOB_SECRETS + ADMIN_SECRETS if not values.get(k)]
  assert not missing, (
    f'{missing} neither in the environment nor in {SECURE}: start the secured '
    'pair with scripts/stack.sh up --secure'
  )
  assert_reachable(
    values['SECURE_KAFKA_BOOTSTRAP'], 'secured Kafka', 'scripts/stack.sh up --secure'
  )
  assert_reachable(
    f'{values["SECURE_CASSANDRA_HOST"]}:{values["SECURE_CASSANDRA_PORT"]}',
    'secured Cassandra',
    'scripts/stack.sh up --secure',
  )
  return values


def _kafka_password(secure) -> str:
  return re.search(r'password="([^"]+)"', secure['KAFKA_SASL_JAAS_CONFIG']).group(1)


def _kafka_python(secure, password=None) -> dict:
  """kafka-python settings of the job's SCRAM user (tests produce and read with it)."""
  return dict(
    bootstrap_servers=secure['SECURE_KAFKA_BOOTSTRAP'],
    security_protocol='SASL_SSL',
    sasl_mechanism='SCRAM-SHA-512',
    sasl_plain_username=secure['SECURE_KAFKA_USER'],
    sasl_plain_password=password or _kafka_password(secure),
    ssl_cafile=secure['SECURE_CA_FILE'],
  )


def _secret_values(secure) -> Dict[str, str]:
  return {
    'Kafka password': _kafka_password(secure),
    'KAFKA_SASL_JAAS_CONFIG': secure['KAFKA_SASL_JAAS_CONFIG'],
    'CASSANDRA_PASSWORD': secure['CASSANDRA_PASSWORD'],
    'CASSANDRA_ADMIN_PASSWORD': secure['CASSANDRA_ADMIN_PASSWORD'],
  }


def job_flags(secure) -> List[str]:
  """The flags of a job on the secured pair; no secret among them, only variable names."""
  return [
    f'--kafka_bootstrap_servers={secure["SECURE_KAFKA_BOOTSTRAP"]}',
    '--kafka_config=security.protocol=SASL_SSL',
    '--kafka_config=sasl.mechanism=SCRAM-SHA-512',
    '--kafka_config=ssl.truststore.type=PEM',
    f'--kafka_config=ssl.truststore.location={secure["SECURE_CA_FILE"]}',
    '--kafka_secret_config_env=sasl.jaas.config=KAFKA_SASL_JAAS_CONFIG',
    f'--cassandra_hosts={secure["SECURE_CASSANDRA_HOST"]}',
    f'--cassandra_port={secure["SECURE_CASSANDRA_PORT"]}',
    f'--cassandra_username={secure["SECURE_CASSANDRA_USER"]}',
    '--cassandra_password_env=CASSANDRA_PASSWORD',
    f'--cassandra_ssl_ca_file={secure["SECURE_CA_FILE"]}',
    f'--cassandra_ssl_cert_file={secure["SECURE_CLIENT_CERT"]}',
    f'--cassandra_ssl_key_file={secure["SECURE_CLIENT_KEY"]}',
    f'--cassandra_ssl_server_hostname={secure["SECURE_CASSANDRA_TLS_NAME"]}',
  ]


@pytest.fixture(scope='module')
def admin_session(secure):
  """A Cassandra session as the secured node's superuser (reads rows, drops keyspaces)."""
  cluster, session = cassandra_session(
    Secure(str(SECURE)),
    int(secure['SECURE_CASSANDRA_PORT']),
    (secure['SECURE_CASSANDRA_ADMIN_USER'], secure['CASSANDRA_ADMIN_PASSWORD']),
  )
  yield session
  cluster.shutdown()


# --- end to end on the Flink cluster, then the leak search --------------------------------------
@pytest.fixture(scope='module')
def secured_job(secure, admin_session, flink_standalone, expansion_service, tmp_path_factory):
  """Produces a generated call-event file to a fresh topic on the secured Kafka, submits the job
  (scripts/submit_flink.sh cluster) writing to the secured Cassandra, Kafka and SQLite, waits for
  exact rows, collects what the leak test searches while the job runs, then cancels it."""
  tm = service_pid('flink-taskmanager')
  environ = Path(f'/proc/{tm}/environ').read_bytes().split(b'\0')
  tm_env = {item.split(b'=', 1)[0].decode() for item in environ}  # names only
  assert set(JOB_SECRETS) <= tm_env, (
    f'the TaskManager (pid {tm}) was started without {sorted(set(JOB_SECRETS) - tm_env)}: '
    'restart the cluster with scripts/flink.sh restart (it passes $RUN_DIR/secure/secrets.env)'
  )
  work = tmp_path_factory.mktemp('secured')
  topic, keyspace = f'it-secure-{uuid.uuid4().hex[:10]}', f'it_secure_{uuid.uuid4().hex[:10]}'
  admin = KafkaAdminClient(**_kafka_python(secure), request_timeout_ms=30000)
  admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], timeout_ms=30000)
  sink_topics = [TOPICS['abandon_metrics'], TOPICS['dead_letters']]
  before = {t: topic_end_offsets(secure, t) for t in sink_topics}
  generated = work / 'calls.jsonl'
  counts = write_call_events(
    str(generated),
    CALLS,
    seed=47,
    start_ms=DEFAULT_START_MS + 12 * 3600 * 1000,
    events_per_second=100,
    jitter_seconds=5.0,
    too_late_share=0.0,
    late_within_lateness_share=0.0,
  )
  lines, _ = rebase_lines(read_lines(str(generated)), int(time.time() * 1000), align_ms=0)
  produced = work / 'produced.jsonl'
  produced.write_bytes(b''.join(line + b'\n' for line in lines))
  sent = produce_lines(
    lines,
    topic,
    secure['SECURE_KAFKA_BOOTSTRAP'],
    producer_config={k: v for k, v in _kafka_python(secure).items() if k != 'bootstrap_servers'},
  )
  assert sent['count'] == len(lines) and all(sent['per_partition'].values())
  expected = reference_rows(produced)
  db = work / 'out.db'
  args = [
    *recovery_job_args(topic, keyspace, f'it-{topic}'),
    '--sink=kafka',
    '--sink=sqlite',
    f'--sqlite_path={db}',
    *job_flags(secure),
  ]
  mp = pytest.MonkeyPatch()  # the launcher and its job server need the job's secrets
  for name in JOB_SECRETS:
    mp.setenv(name, secure[name])
  wait_cluster_free()
  job = None
  try:
    t0 = time.monotonic()
    job = Submitted(f'it-secure-{topic}', args)
    last = {}

    def converged():
      last['rows'] = cassandra_rows(admin_session, keyspace)
      assert rest(f'/jobs/{job.jid}')['state'] in ('RUNNING', 'CREATED', 'INITIALIZING')
      return last['rows'] == expected

    try:
      wait_until('rows equal the reference', converged, 300, 1)
    except AssertionError as exc:
      raise AssertionError(f'{exc}: {rows_diff(last.get("rows"), expected)}') from None
    rows_s = time.monotonic() - t0
    seen = {
      'rest': {
        p: rest(p.format(jid=job.jid))
        for p in ('/jobs/{jid}', '/jobs/{jid}/config', '/jobs/{jid}/plan')
      },
      'ps': subprocess.run(
        ['ps', '-eo', 'pid,args', '--no-headers', '-ww'], capture_output=True, text=True, check=True
      ).stdout,
      'listeners': subprocess.run(
        ['ss', '-Hltnp'], capture_output=True, text=True, check=True
      ).stdout,
      'pids': _stack_pids(),
    }
  finally:
    if job is not None:
      job.cancel()
    mp.undo()
  seen['kafka_out'] = {t: _read_from(secure, before[t]) for t in sink_topics}
  seen['cassandra_out'] = [
    repr(list(admin_session.execute(f'SELECT * FROM {keyspace}.{table}', timeout=30)))
    for table in ('abandon_metrics', 'dead_letters', 'late_events')
  ]
  seen['sqlite_out'] = db
  print(f'\n  secured job {job.jid}: {len(expected)} rows exact after {rows_s:.1f} s')
  yield {
    'expected': expected,
    'counts': counts,
    'keyspace': keyspace,
    'db': db,
    'job': job,
    'seen': seen,
    'topic': topic,
  }
  try:
    admin_session.execute(f'DROP KEYSPACE IF EXISTS {keyspace}', timeout=60)
    admin.delete_topics([topic], timeout_ms=30000)
  finally:
    admin.close()


def topic_end_offsets(secure, topic) -> Dict[TopicPartition, int]:
  consumer = KafkaConsumer(**_kafka_python(secure))
  try:
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    return consumer.end_offsets(partitions)
  finally:
    consumer.close()


def _read_from(secure, start: Dict[TopicPartition, int]) -> List[bytes]:
  """Keys and values of every record from `start` to the current end."""
  end = topic_end_offsets(secure, next(iter(start)).topic)
  consumer = KafkaConsumer(**_kafka_python(secure), enable_auto_commit=False)
  out = []
  try:
    consumer.assign(list(start))
    for tp, offset in start.items():
      consumer.seek(tp, offset)
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < end[tp] for tp in start):
      assert time.monotonic() < deadline, 'could not read the sink topic to its end in 60 s'
      for records in consumer.poll(timeout_ms=1000).values():
        out.extend(b'%s %s' % (r.key or b'', r.value or b'') for r in records)
  finally:
    consumer.close()
  return out


def _stack_pids() -> Dict[int, str]:
  """pid -> service of every process the stack and cluster scripts recorded, and of the
  processes in their process groups (each was started with setsid): the SDK workers of the
  pool, the job server of a submitted job."""
  pids = {}
  for f in (RUN_DIR / 'pids').glob('*.pid'):
    try:
      pids[int(f.read_text().strip())] = f.stem
    except ValueError:
      continue
  for leader, svc in list(pids.items()):
    group = subprocess.run(
      ['ps', '-o', 'pid=', '-g', str(leader)], capture_output=True, text=True
    ).stdout.split()
    pids.update({int(p): f'{svc}/child' for p in group if int(p) not in pids})
  return pids


def test_secured_end_to_end_rows_equal_the_reference(secured_job, admin_session):
  keyspace = secured_job['keyspace']
  assert sum(v[0] for v in secured_job['expected'].values()) == secured_job['counts']['valid']
  dead = admin_session.execute(f'SELECT COUNT(*) FROM {keyspace}.dead_letters').one()[0]
  assert dead == secured_job['counts']['malformed']
  conn = sqlite3.connect(secured_job['db'])
  try:
    assert conn.execute('SELECT COUNT(*) FROM abandon_metrics').fetchone()[0] == len(
      secured_job['expected']
    )
  finally:
    conn.close()
  rows = {r.split(b' ', 1)[0] for r in secured_job['seen']['kafka_out'][TOPICS['abandon_metrics']]}
  assert len(rows) == len(secured_job['expected']), 'not every row reached cc-abandon-metrics'


def _files_to_search() -> List[Path]:
  """Every log under $RUN_DIR (any directory), the Flink cluster's files (logs, the submitted
  jobs' blobs and uploads, checkpoints), the secured pair's config and data; not the secret
  files themselves, nor the fetched jars and distributions."""
  skip_dirs = {RUN_DIR / 'jars', RUN_DIR / 'flink-dist', RUN_DIR / 'build', SECURE / 'passwords'}
  skip_files = {SECURE / n for n in ('secrets.env', 'admin.env')}
  # other people's data on the plain stack: only its logs are ours to search
  plain_data = {RUN_DIR / 'kafka' / 'data', RUN_DIR / 'cassandra'}
  files = []
  for root, dirs, names in os.walk(RUN_DIR, followlinks=True):
    here = Path(root)
    dirs[:] = [d for d in dirs if here / d not in skip_dirs]
    for name in names:
      path = here / name
      if (
        path in skip_files
        or path.suffix in ('.key', '.pem')
        or not path.is_file()
        or (any(d in path.parents for d in plain_data) and path.suffix != '.log')
      ):
        continue
      files.append(path)
  return files


def test_no_secret_in_logs_rest_processes_outputs_or_submitted_job(secure, secured_job):
  secrets = _secret_values(secure)
  seen = secured_job['seen']
  places = {f'REST {path}': repr(answer) for path, answer in seen['rest'].items()}
  places['ps -eo pid,args (every process)'] = seen['ps']
  for topic, records in seen['kafka_out'].items():
    places[f'Kafka topic {topic}'] = repr(records)
  places['Cassandra tables'] = '\n'.join(seen['cassandra_out'])
  conn = sqlite3.connect(seen['sqlite_out'])
  try:
    places['SQLite output'] = repr(
      [
        conn.execute(f'SELECT * FROM {t}').fetchall()
        for t in ('abandon_metrics', 'dead_letters', 'late_events')
      ]
    )
  finally:
    conn.close()
  found = [
    f'{what} in {where}'
    for where, text in places.items()
    for what, value in secrets.items()
    if value in text
  ]
  files = _files_to_search()
  assert any('submit-' in f.name for f in files), 'the job-server/launcher log was not searched'
  assert any(f.name.startswith('expansion_service') for f in files)
  searched_bytes = 0
  for path in files:
    try:
      data = path.read_bytes()
    except FileNotFoundError:
      continue  # removed since listed (Kafka deletes the segments of deleted topics)
    searched_bytes += len(data)
    found += [f'{what} in {path}' for what, value in secrets.items() if value.encode() in data]
  print(
    f'\n  searched {len(places)} answers/outputs and {len(files)} files '
    f'({searched_bytes / 1e6:.0f} MB) for {len(secrets)} secrets'
  )
  assert not found, found


def test_everything_the_stack_started_listens_on_loopback(secured_job):
  pids = secured_job['seen']['pids']
  listening = {}
  for line in secured_job['seen']['listeners'].splitlines():
    fields = line.split()
    address = fields[3]
    for pid in map(int, re.findall(r'pid=(\d+)', line)):
      if pid in pids:
        listening.setdefault(pids[pid], []).append(address)
  job_server = f'submit-{secured_job["job"].name}/child'
  for svc in (
    'kafka',
    'kafka-secure',
    'cassandra',
    'cassandra-secure',
    'expansion_service',
    'flink-jobmanager',
    'flink-taskmanager',
    'flink-worker-pool',
    job_server,
  ):
    assert listening.get(svc), f'{svc}: no listening socket found ({sorted(listening)})'
  open_wide = {
    svc: [a for a in addresses if not re.match(r'(127\.|\[::ffff:127\.|\[::1\])', a)]
    for svc, addresses in listening.items()
  }
  assert not any(open_wide.values()), {s: a for s, a in open_wide.items() if a}


# --- misconfigurations at launch ----------------------------------------------------------------
def _launch(args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, '-m', 'pipelines.contact_center', *args],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=LAUNCH_TIMEOUT_S,
  )


def _replace_flag(flags: List[str], name: str, value: str) -> List[str]:
  return [f'--{name}={value}' if f.startswith(f'--{name}=') else f for f in flags]


WRONG_PASSWORD = 'Wr0ng-pa55word-for-the-test'
NEGATIVES = {
  # case: (what it changes, a fragment of the expected message)
  'wrong Kafka password': ('kafka_password', 'rejected the SASL login'),
  'plaintext client against the Kafka TLS listener': ('kafka_plaintext', 'expects TLS'),
  'untrusted CA for Kafka': ('kafka_ca', 'not signed by a CA'),
  'Kafka secret variable not set': ('kafka_env', 'environment variable NOT_SET_JAAS'),
  'wrong Cassandra password': ('cassandra_password', 'rejected the user name or password'),
  'plaintext client against the Cassandra TLS port': ('cassandra_plaintext', 'requires TLS'),
  'untrusted CA for Cassandra': ('cassandra_ca', 'not signed by'),
  'Cassandra certificate host name': ('cassandra_hostname', '--cassandra_ssl_server_hostname'),
  'Cassandra client certificate missing': ('cassandra_no_cert', 'requires a client certificate'),
  'secret-looking unknown flag': ('flag', 'looks like a secret'),
}


def _negative_launch(case: str, secure, jar: str):
  env = {**os.environ, **{k: secure[k] for k in JOB_SECRETS}}
  flags = job_flags(secure)
  kafka = case.startswith('kafka')
  if kafka:  # the Kafka check runs before the graph is built: no job server, no cluster
    base = [
      '--runner=FlinkRunner',
      '--flink_master=[local]',
      f'--flink_job_server_jar={jar}',
      '--environment_type=LOOPBACK',
      '--source=kafka',
      '--kafka_data_actions_topic=',
      '--sink=kafka',
    ]
    flags = [f for f in flags if f.startswith('--kafka')]
  else:  # the Cassandra sink connects at launch, before the job is submitted
    base = [
      f'--call_events={REPO / "samples" / "call_events.jsonl"}',
      '--sink=cassandra',
      f'--cassandra_keyspace=it_never_{uuid.uuid4().hex[:8]}',
    ]
    flags = [f for f in flags if f.startswith('--cassandra')]
  wrong = None
  if case == 'kafka_password':
    wrong = WRONG_PASSWORD
    env['KAFKA_SASL_JAAS_CONFIG'] = secure['KAFKA_SASL_JAAS_CONFIG'].replace(
      _kafka_password(secure), WRONG_PASSWORD
    )
  elif case == 'kafka_plaintext':
    flags = [f for f in flags if f.startswith('--kafka_bootstrap')]
  elif case == 'kafka_ca':
    flags = _replace_flag(
      flags, 'kafka_config=ssl.truststore.location', '/etc/ssl/certs/ca-certificates.crt'
    )
  elif case == 'kafka_env':
    flags = _replace_flag(flags, 'kafka_secret_config_env', 'sasl.jaas.config=NOT_SET_JAAS')
  elif case == 'cassandra_password':
    wrong = WRONG_PASSWORD
    env['CASSANDRA_PASSWORD'] = WRONG_PASSWORD
  elif case == 'cassandra_plaintext':
    flags = [f for f in flags if not f.startswith('--cassandra_ssl')]
  elif case == 'cassandra_ca':
    flags = _replace_flag(flags, 'cassandra_ssl_ca_file', '/etc/ssl/certs/ca-certificates.crt')
  elif case == 'cassandra_hostname':
    flags = [f for f in flags if not f.startswith('--cassandra_ssl_server_hostname')]
  elif case == 'cassandra_no_cert':
    flags = [f for f in flags if not f.startswith(('--cassandra_ssl_cert', '--cassandra_ssl_key'))]
  elif case == 'flag':
    wrong = WRONG_PASSWORD
    flags = [*flags, f'--cassandra_password={WRONG_PASSWORD}']
  return base + flags, env, wrong


@pytest.mark.parametrize('name', list(NEGATIVES))
def test_misconfiguration_fails_fast_with_one_line(name, secure, flink_job_server_jar):
  case, fragment = NEGATIVES[name]
  args, env, wrong = _negative_launch(case, secure, flink_job_server_jar)
  t0 = time.monotonic()
  done = _launch(args, env)
  wall = time.monotonic() - t0
  err = done.stderr.strip().splitlines()
  print(f'\n  {name}: exit {done.returncode} after {wall:.1f} s: {err[-1] if err else ""}')
  assert done.returncode != 0
  assert err and err[-1].startswith('error: ') and fragment in err[-1], done.stderr[-2000:]
  assert 'Traceback' not in done.stderr
  for value in [*_secret_values(secure).values(), *([wrong] if wrong else [])]:
    assert value not in done.stderr + done.stdout
  assert wall < FAIL_FAST_S, f'{name}: {wall:.1f} s is no fast failure'


# --- misconfigured workers -----------------------------------------------------------------------
def _worker_settings(secure, **changes) -> CassandraSettings:
  base = dict(
    hosts=(secure['SECURE_CASSANDRA_HOST'],),
    port=int(secure['SECURE_CASSANDRA_PORT']),
    keyspace='it_never_created',
    replication="{'class': 'SimpleStrategy', 'replication_factor': 1}",
    consistency='LOCAL_QUORUM',
    username=secure['SECURE_CASSANDRA_USER'],
    password_env='IT_WORKER_CASSANDRA_PASSWORD',
    ssl_ca_file=secure['SECURE_CA_FILE'],
    ssl_cert_file=secure['SECURE_CLIENT_CERT'],
    ssl_key_file=secure['SECURE_CLIENT_KEY'],
    ssl_server_hostname=secure['SECURE_CASSANDRA_TLS_NAME'],
    protocol_version=None,
    local_dc=None,
    write_concurrency=4,
    max_retries=10,
  )
  base.update(changes)
  return CassandraSettings(**base)


ROW = AbandonMetrics('Q-1', 0, 10000, 1, 0, 0, 1, 5.0, 0.0, 1.0, 0, 'ON_TIME')


@pytest.mark.parametrize(
  'password, fragment',
  [
    (WRONG_PASSWORD, 'rejected the user name or password'),
    (None, 'IT_WORKER_CASSANDRA_PASSWORD (--cassandra_password_env) is not set'),
  ],
)
def test_worker_with_a_bad_cassandra_password_fails_at_once(
  secure, monkeypatch, password, fragment
):
  """With max_retries=10 a retried failure would take minutes (1 s doubling to 20 s)."""
  if password is None:
    monkeypatch.delenv('IT_WORKER_CASSANDRA_PASSWORD', raising=False)
  else:
    monkeypatch.setenv('IT_WORKER_CASSANDRA_PASSWORD', password)
  writer = CassandraWriter(_worker_settings(secure))
  t0 = time.monotonic()
  try:
    with pytest.raises(CassandraConnectError) as error:
      writer.upsert(ABANDON_METRICS, [ROW])
  finally:
    writer.close()
  assert fragment in str(error.value) and WRONG_PASSWORD not in str(error.value)
  assert time.monotonic() - t0 < 10


def test_worker_with_the_right_password_connects(secure, monkeypatch):
  """The control case of the test above: the same settings with the right password connect
  (the keyspace does not exist, so the write itself is refused by the node)."""
  monkeypatch.setenv('IT_WORKER_CASSANDRA_PASSWORD', secure['CASSANDRA_PASSWORD'])
  writer = CassandraWriter(_worker_settings(secure))
  try:
    with pytest.raises(Exception) as error:
      writer.upsert(ABANDON_METRICS, [ROW])
    assert not isinstance(error.value, CassandraConnectError), error.value
    assert 'it_never_created' in str(error.value)
  finally:
    writer.close()
