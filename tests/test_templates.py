"""Templated launch: the template metadata, the launcher and the launch image.

In: templates/contact_center/metadata.json and what builds it
(`python -m pipelines.template_metadata`), `python -m pipelines.launch`
(run as a subprocess where exit codes and stderr matter, in-process where
the pipeline runs), the Dockerfile (checked statically with dockerfile-parse:
there is no Docker engine here), setup.py.
Out: assertions that the committed template is the one built from the
options' definitions, that it covers and matches the job's options, that
bad parameters are refused with specific messages before anything starts,
that a launch gives the reference results, and that the image is pinned,
complete and free of secrets.
"""

import argparse
import json
import os
import re
import runpy
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple
from unittest import mock

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from options.stream_options import DEFAULT_SINK
from pipelines import contact_center, launch, template_metadata
from pipelines.template_spec import TemplateSpec
from testing.reference.calls import ROW_COLUMNS, comparable_rows, reference_call_metrics
from testing.reference.interactions import reference_interactions
from tests.test_cxone_client import (
  ACTION_ID,
  CLIENT_ID,
  SECRET,
  fake,  # noqa: F401  (pytest fixture)
)

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / 'templates' / 'contact_center' / 'metadata.json'
CALL_EVENTS = REPO / 'samples' / 'call_events.jsonl'
DATA_ACTIONS = REPO / 'samples' / 'data_actions.jsonl'
SPEC = TemplateSpec.load(str(TEMPLATE))

RUNNER_OPTIONS = template_metadata.RUNNER_OPTIONS

# Options of JOB_OPTIONS and RUNNER_OPTIONS that are deliberately not
# template parameters, and why. A new option must become a parameter or be
# listed here.
EXCLUDED = {
  'streaming': 'run() always sets it: the job is a streaming job',
  'resource_hints': 'neither runner offered honours resource hints',
  'auto_unique_labels': 'a development aid; the job names its transforms',
  'no_wait_until_finish': 'run() waits for the job by design',
  'flink_version': 'flink_job_server_jar is required and fixes the version',
  'flink_submit_uber_jar': 'the job server always runs from the shipped jar',
  'job_endpoint': 'FlinkRunner starts its own job server from the jar',
  'artifact_endpoint': 'the job server started by FlinkRunner serves them',
  'job_server_timeout': "Beam's 300 s suits the local job server",
  'environment_options': 'environment_config covers the environments used',
  'sdk_worker_parallelism': 'one SDK worker per task slot, the default',
  'environment_cache_millis': 'a tuning knob of DOCKER environments',
  'output_executable_path': 'builds a jar instead of launching a job',
}
# Job options whose argparse default is None but whose code applies one:
# SinkConfigs.from_options() names DEFAULT_SINK when no --sink is given.
APPLIED_DEFAULTS = {'sink': DEFAULT_SINK}

# A valid launch; each refusal test adds the one wrong parameter it is about.
VALID = [f'call_events={CALL_EVENTS}']


def declared_options(classes: Iterable[type]) -> Dict[str, argparse.Action]:
  """Flag name -> argparse action, for every flag the classes declare."""
  parser = argparse.ArgumentParser()
  for cls in classes:
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
  return {a.dest: a for a in parser._actions if a.dest != 'help'}


def as_default(value: object) -> Optional[str]:
  """An argparse default the way the template writes it."""
  if value is None:
    return None
  if isinstance(value, bool):
    return 'true' if value else 'false'
  if isinstance(value, (set, frozenset)):
    return ','.join(sorted(value))
  return str(value)


# --- the metadata ------------------------------------------------------------


def test_committed_metadata_is_the_one_built_from_the_options(tmp_path):
  assert TEMPLATE.read_text(encoding='utf-8') == template_metadata.render(), (
    f'{TEMPLATE.relative_to(REPO)} is stale: run {template_metadata.COMMAND} '
    '(labels, value shapes and parents: options/template_parameters.py)'
  )
  stale = tmp_path / 'metadata.json'
  stale.write_text('{}')
  assert template_metadata.main([f'--output={stale}', '--check']) == 1
  assert template_metadata.main([f'--output={stale}']) == 0
  assert template_metadata.main([f'--output={stale}', '--check']) == 0
  assert TemplateSpec.load(str(stale)).parameters.keys() == SPEC.parameters.keys()


def test_metadata_has_the_flex_template_fields():
  raw = json.loads(TEMPLATE.read_text())
  assert raw['name'] and raw['description']
  for param in raw['parameters']:
    for field in ('name', 'label', 'helpText', 'isOptional', 'regexes'):
      assert field in param, f'{param.get("name")}: no {field}'
    assert isinstance(param['isOptional'], bool)
    assert param['regexes'], param['name']
  assert len(SPEC.parameters) == len(raw['parameters'])


def test_every_option_a_user_sets_is_a_parameter():
  options = declared_options(contact_center.JOB_OPTIONS + RUNNER_OPTIONS)
  missing = sorted(set(options) - set(SPEC.parameters) - set(EXCLUDED))
  assert not missing, (
    f'options without a template parameter: {missing}; add them to '
    'options/template_parameters.py or, with a reason, to EXCLUDED'
  )
  stale = sorted(n for n in EXCLUDED if n not in options or n in SPEC.parameters)
  assert not stale, f'EXCLUDED entries: no option, or a parameter: {stale}'


def test_every_parameter_is_a_beam_option_or_a_flink_pass_through():
  # Every PipelineOptions subclass imported so far (Beam's and the job's).
  known = set(PipelineOptions([]).get_all_options())
  for name, param in SPEC.parameters.items():
    if param.pass_through:
      assert name not in known, f'{name} is a Python option, not a pass-through'
    else:
      assert name in known, f'{name} is no pipeline option (typo?)'


def test_job_parameters_match_their_options():
  for name, action in declared_options(contact_center.JOB_OPTIONS).items():
    param = SPEC.parameters.get(name)
    if param is None:
      continue
    default = APPLIED_DEFAULTS.get(name, as_default(action.default))
    assert param.default == default, f'{name}: default'
    if action.choices:
      assert param.enum_values == tuple(action.choices), f'{name}: choices'
    if action.type in (int, float):
      assert param.param_type == 'NUMBER', f'{name}: paramType'
    if isinstance(action, argparse._StoreTrueAction):
      assert param.param_type == 'BOOLEAN', f'{name}: paramType'
    assert param.repeated == isinstance(action, argparse._AppendAction), name


def test_regexes_accept_the_defaults_and_enum_values():
  for name, param in SPEC.parameters.items():
    for value in [param.default] + list(param.enum_values):
      if value is not None:
        assert param.matches(value), f'{name} rejects {value!r}'


@pytest.mark.parametrize(
  'name, value, valid',
  [
    ('window_seconds', '300', True),
    ('window_seconds', '0', False),
    ('window_seconds', '5m', False),
    ('allowed_lateness_seconds', '0', True),
    ('short_abandon_threshold_seconds', '2.5', True),
    ('max_events_per_second', '0.5', True),
    ('max_events_per_second', '0', False),
    ('kafka_bootstrap_servers', 'k-1:9092,10.0.0.2:9093,[::1]:9094', True),
    ('kafka_bootstrap_servers', 'k-1:65536', False),
    ('kafka_bootstrap_servers', 'k-1:9092,', False),
    ('kafka_config', 'security.protocol=SASL_SSL', True),
    ('kafka_config', 'sasl.jaas.config=x', False),
    ('kafka_config', 'ssl.truststore.password=x', False),
    ('kafka_secret_config_env', 'sasl.jaas.config=KAFKA_JAAS', True),
    ('kafka_call_events_topic', '', True),
    ('cassandra_hosts', 'cass-1,10.0.0.3', True),
    ('cassandra_port', '65535', True),
    ('cassandra_port', '70000', False),
    ('cxone_base_url', 'https://api-na1.example.com', True),
    ('cxone_base_url', 'api-na1.example.com', False),
    ('cxone_client_secret_env', 'CXONE_CLIENT_SECRET', True),
    ('cxone_client_secret_env', 's3cr3t value!', False),
    ('failure_statuses', 'FAILED,ERROR', True),
    ('failure_statuses', 'FAILED, ERROR', False),
    ('flink_master', '[local]', True),
    ('flink_master', 'http://flink:8081', True),
    ('flink_master', 'flink', False),
    ('state_backend_storage_path', 'file:///var/ck', True),
    ('state_backend_storage_path', '/var/ck', False),
  ],
)
def test_regexes_validate_types(name, value, valid):
  assert SPEC.parameters[name].matches(value) == valid


# --- the launcher: refusals --------------------------------------------------


def launch_process(
  *parameters: str, env: Optional[Dict[str, str]] = None
) -> subprocess.CompletedProcess:
  """`python -m pipelines.launch --parameters ...` in the repository."""
  return subprocess.run(
    [
      sys.executable,
      '-m',
      'pipelines.launch',
      f'--template={TEMPLATE}',
      '--parameters',
      *parameters,
    ],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


@pytest.mark.parametrize(
  'parameters, message',
  [
    (['windw_seconds=60'], "unknown parameter 'windw_seconds'; did you mean window_seconds?"),
    (
      [
        'validate_cxone=true',
        'cxone_token_url=https://x.example.com/token',
        'cxone_client_id=c',
        'cxone_action_id=a',
      ],
      'missing required parameter cxone_base_url (needed when validate_cxone is true)',
    ),
    (
      ['window_seconds=5m'],
      "parameter window_seconds: '5m' is not valid; expected a whole number of seconds > 0",
    ),
    (
      ['sink=bigquery'],
      "parameter sink: 'bigquery' is not valid; expected one of sqlite, cassandra, kafka",
    ),
    (
      ['kafka_bootstrap_servers=broker-1'],
      "parameter kafka_bootstrap_servers: 'broker-1' is not valid; expected "
      'comma-separated host:port pairs',
    ),
    (['sink=sqlite', 'sink=sqlite'], "parameter sink: 'sqlite' given twice"),
    (
      ['window_seconds=60', 'window_seconds=120'],
      'parameter window_seconds given 2 times; it takes one value',
    ),
    (
      ['flink_master=[local]'],
      'parameter flink_master applies only when runner is FlinkRunner (it is '
      'BundleBasedDirectRunner)',
    ),
    (
      ['runner=FlinkRunner'],
      'missing required parameter flink_job_server_jar (needed when runner is FlinkRunner)',
    ),
    (
      ['data_actions=no/such/file.jsonl'],
      "parameter data_actions: file 'no/such/file.jsonl' does not exist",
    ),
    (['window_seconds'], "expected name=value, got 'window_seconds'"),
  ],
)
def test_launcher_refuses_bad_parameters(parameters, message):
  proc = launch_process(*VALID, *parameters)
  assert proc.returncode == 2, proc.stderr
  assert f'error: {message}' in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert proc.stdout == ''


def test_launcher_reports_every_problem_and_hides_credentials():
  proc = launch_process('window_seconds=0', 'source=kafak', 'kafka_config=sasl.jaas.config=hunter2')
  assert proc.returncode == 2
  lines = proc.stderr.splitlines()
  assert len(lines) == 3, proc.stderr
  assert [line.split(':')[1] for line in lines] == [
    ' parameter source',
    ' parameter kafka_config',
    ' parameter window_seconds',
  ]
  assert "'sasl.jaas.config=...' is not valid" in proc.stderr
  assert 'hunter2' not in proc.stderr


# --- the launcher: flags built -----------------------------------------------


def dry_run(capsys, *args: str) -> List[str]:
  """The pipeline flags `--dry_run` prints for launcher arguments `args`."""
  assert launch.main(['--dry_run', *args]) == 0
  return capsys.readouterr().out.splitlines()


def test_flink_launch_builds_runner_and_pass_through_flags(tmp_path, capsys):
  jar = tmp_path / 'job-server.jar'
  jar.touch()
  argv = dry_run(
    capsys,
    '--parameters',
    *VALID,
    'runner=FlinkRunner',
    f'flink_job_server_jar={jar}',
    'environment_type=EXTERNAL',
    'environment_config=127.0.0.1:50000',
    'checkpointing_interval=60000',
    'state_backend=rocksdb',
    'state_backend_storage_path=file:///tmp/ck',
    'finish_bundle_before_checkpointing=true',
    'object_reuse=true',
    'validate_cxone=false',
  )

  assert {
    '--runner=FlinkRunner',
    '--flink_master=[auto]',
    f'--flink_job_server_jar={jar}',
    '--environment_type=EXTERNAL',
    '--environment_config=127.0.0.1:50000',
    '--checkpointing_interval=60000',
    '--state_backend=rocksdb',
    '--state_backend_storage_path=file:///tmp/ck',
    '--finish_bundle_before_checkpointing',
    '--object_reuse',
    '--window_seconds=300',
    '--sink=sqlite',
  } <= set(argv)
  assert not [a for a in argv if a.startswith(('--validate_cxone', '--cxone'))]
  # Beam keeps the Flink-only flags for the job server, as the Flink tests
  # (tests/flink) rely on.
  options = PipelineOptions(argv).get_all_options(retain_unknown_options=True)
  assert str(options['checkpointing_interval']) == '60000'
  assert options['flink_job_server_jar'] == str(jar)


def test_parameters_file_with_command_line_overrides(tmp_path, capsys):
  params = tmp_path / 'params.json'
  params.write_text(
    json.dumps(
      {
        'call_events': str(CALL_EVENTS),
        'window_seconds': 60,
        'validate_cxone': False,
        'sink': ['sqlite', 'kafka'],
        'short_abandon_threshold_seconds': 2.5,
      }
    )
  )
  argv = dry_run(capsys, f'--parameters_file={params}', '--parameters', 'window_seconds=120')
  assert {
    '--window_seconds=120',
    '--sink=sqlite',
    '--sink=kafka',
    '--short_abandon_threshold_seconds=2.5',
  } <= set(argv)

  params.write_text(json.dumps({'window_seconds': {'seconds': 60}}))
  assert launch.main([f'--parameters_file={params}']) == 2
  err = capsys.readouterr().err
  assert 'window_seconds must be a string, number, boolean' in err


# --- the launcher: launches --------------------------------------------------


def test_launch_on_the_direct_runner_matches_the_references(tmp_path, fake, monkeypatch):  # noqa: F811  (fixture)
  db = tmp_path / 'out.db'
  monkeypatch.setenv('CXONE_CLIENT_SECRET', SECRET)
  # Non-default window and poll sizes, so the parameters demonstrably reach
  # the job; the CXone check passes against the fake tenant first.
  code = launch.main(
    [
      '--parameters',
      f'call_events={CALL_EVENTS}',
      f'data_actions={DATA_ACTIONS}',
      f'sqlite_path={db}',
      'window_seconds=60',
      'replay_poll_size=1000',
      'validate_cxone=true',
      f'cxone_base_url={fake.url}',
      f'cxone_token_url={fake.url}/oauth/token',
      f'cxone_client_id={CLIENT_ID}',
      f'cxone_action_id={ACTION_ID}',
    ]
  )
  assert code == 0
  assert fake.action_calls == 1

  calls = reference_call_metrics(str(CALL_EVENTS), window_size_s=60, poll_size=1000)
  interactions = reference_interactions(str(DATA_ACTIONS), poll_size=1000)
  with sqlite3.connect(db) as conn:
    rows = {
      (q, ws): list(rest)
      for q, ws, *rest in conn.execute(
        f'SELECT queue_id, window_start, {", ".join(ROW_COLUMNS)} FROM abandon_metrics'
      )
    }
    late = [
      r[0] for r in conn.execute("SELECT event_id FROM late_events WHERE source = 'cc-call-logs'")
    ]
    volumes = {
      (c, ws): v
      for c, ws, v in conn.execute('SELECT channel, window_start, volume FROM interaction_volumes')
    }
    alerts = set(conn.execute('SELECT customer_id, channel, timestamp FROM pattern_alerts'))
  assert rows == comparable_rows(calls) and rows
  assert sorted(late) == sorted(calls.late) and late
  assert volumes == interactions.volumes and volumes
  assert alerts == interactions.alerts and alerts


def test_failed_cxone_check_stops_the_launch_before_the_pipeline(tmp_path, fake):  # noqa: F811  (fixture)
  db = tmp_path / 'out.db'
  wrong = 'wrong-secret-4711'
  proc = launch_process(
    *VALID,
    f'sqlite_path={db}',
    'validate_cxone=true',
    f'cxone_base_url={fake.url}',
    f'cxone_token_url={fake.url}/oauth/token',
    f'cxone_client_id={CLIENT_ID}',
    f'cxone_action_id={ACTION_ID}',
    'cxone_max_retries=0',
    env={**os.environ, 'CXONE_CLIENT_SECRET': wrong},
  )

  assert proc.returncode == 1, proc.stderr
  assert 'error: CXone start-up check failed, job not started' in proc.stderr
  assert 'rejected the client credentials' in proc.stderr
  assert 'HTTP 401' in proc.stderr
  assert wrong not in proc.stderr + proc.stdout
  assert 'Traceback' not in proc.stderr
  assert (fake.token_calls, fake.action_calls) == (1, 0)
  assert not db.exists(), 'the pipeline must not have run'


def test_missing_secret_is_a_usage_error(fake):  # noqa: F811  (fixture)
  env = {k: v for k, v in os.environ.items() if k != 'CXONE_CLIENT_SECRET'}
  proc = launch_process(
    *VALID,
    'validate_cxone=true',
    f'cxone_base_url={fake.url}',
    f'cxone_token_url={fake.url}/oauth/token',
    f'cxone_client_id={CLIENT_ID}',
    f'cxone_action_id={ACTION_ID}',
    env=env,
  )
  assert proc.returncode == 2, proc.stderr
  assert 'environment variable CXONE_CLIENT_SECRET' in proc.stderr
  assert fake.token_calls == 0


# --- the launch image --------------------------------------------------------


class Instruction(NamedTuple):
  name: str
  value: str


class Stage(NamedTuple):
  name: Optional[str]
  image: str
  instructions: List[Instruction]

  def all(self, name: str) -> List[str]:
    """The values of this stage's `name` instructions, in order."""
    return [i.value for i in self.instructions if i.name == name]


class Image(NamedTuple):
  stages: List[Stage]
  env: Dict[str, str]  # ENV of the final stage

  @property
  def final(self) -> Stage:
    return self.stages[-1]


@pytest.fixture(scope='module')
def image() -> Image:
  """The Dockerfile, parsed into build stages."""
  from dockerfile_parse import DockerfileParser  # setup.py's test extra

  parsed = DockerfileParser(path=str(REPO / 'Dockerfile'))
  stages: List[Stage] = []
  for item in parsed.structure:
    if item['instruction'] == 'FROM':
      base, *alias = item['value'].split()
      stages.append(Stage(alias[-1] if alias else None, base, []))
    elif item['instruction'] != 'COMMENT':
      stages[-1].instructions.append(Instruction(item['instruction'], item['value']))
  return Image(stages, parsed.envs)


def copy_parts(value: str) -> Tuple[Optional[str], List[str], str]:
  """COPY's (--from stage or None, sources, destination)."""
  words = json.loads(value) if value.startswith('[') else shlex.split(value)
  flags = dict(w[2:].split('=', 1) for w in words if w.startswith('--'))
  paths = [w for w in words if not w.startswith('--')]
  return flags.get('from'), paths[:-1], paths[-1]


def setup_kwargs() -> dict:
  """What setup.py passes to setuptools.setup()."""
  with mock.patch('setuptools.setup') as setup:
    runpy.run_path(str(REPO / 'setup.py'))
  return setup.call_args.kwargs


def test_image_is_the_pinned_beam_sdk_for_our_python(image):
  kwargs = setup_kwargs()
  beam = next(
    Requirement(r) for r in kwargs['install_requires'] if Requirement(r).name == 'apache-beam'
  )
  pinned = str(beam.specifier).removeprefix('==')
  names = {s.name for s in image.stages}
  for stage in image.stages:
    if stage.image in names:
      continue  # built on an earlier stage
    match = re.fullmatch(r'apache/beam_python(\d+\.\d+)_sdk:(.+)', stage.image)
    assert match, f'{stage.image}: not the Beam Python SDK image'
    python, tag = match.groups()
    assert tag == pinned, f'{stage.image}: setup.py pins apache-beam {beam}'
    assert python in SpecifierSet(kwargs['python_requires'])
    assert python == f'{sys.version_info.major}.{sys.version_info.minor}', (
      f'{stage.image}: the tests run on Python {sys.version.split()[0]}'
    )


def test_image_launches_the_template_with_the_jars_inside(image):
  final = image.final
  assert json.loads(final.all('ENTRYPOINT')[-1]) == ['python', '-m', 'pipelines.launch']
  assert any('pip install --no-cache-dir .' in run for run in final.all('RUN'))
  copies = [copy_parts(v) for v in final.all('COPY')]
  metadata = image.env[launch.TEMPLATE_ENV]
  assert (None, ['templates/contact_center/metadata.json'], metadata) in copies
  # The jars come from a build stage that runs the project's fetch scripts.
  origins = {origin for origin, _, _ in copies if origin}
  fetches = ' '.join(run for s in image.stages if s.name in origins for run in s.all('RUN'))
  assert 'scripts/stack/fetch_jars.sh' in fetches
  assert 'scripts/stack/fetch_flink.sh' in fetches


def test_the_package_installed_in_the_image_is_complete(tmp_path):
  """`pip install .` must carry every file the packages' code may read (the
  CQL schema...), not only what an editable install happens to see."""
  roots = sorted({p.split('.')[0] for p in setup_kwargs()['packages']})
  tracked = subprocess.run(
    ['git', 'ls-files', '--', 'setup.py', *roots],
    cwd=REPO,
    capture_output=True,
    text=True,
    check=True,
  ).stdout.split()
  source = tmp_path / 'src'
  for path in tracked:
    (source / path).parent.mkdir(parents=True, exist_ok=True)
    (source / path).write_bytes((REPO / path).read_bytes())
  build = tmp_path / 'build'
  subprocess.run(
    [sys.executable, 'setup.py', '-q', 'build', f'--build-lib={build}'],
    cwd=source,
    capture_output=True,
    check=True,
  )
  built = {str(p.relative_to(build)) for p in build.rglob('*') if p.is_file()}
  missing = sorted(set(tracked) - {'setup.py'} - built)
  assert not missing, f'setup.py does not install {missing} (package_data?)'


def test_image_copies_only_files_of_the_repository(image):
  for stage in image.stages:
    for value in stage.all('COPY'):
      origin, sources, _ = copy_parts(value)
      if origin is not None:
        continue
      for source in sources:
        assert (REPO / source).exists(), f'COPY {source}: no such file'
        # Ignored files (.run/, .venv/) are not in a clean checkout.
        listed = subprocess.run(
          ['git', 'ls-files', '--cached', '--others', '--exclude-standard', '--', source],
          cwd=REPO,
          capture_output=True,
          text=True,
          check=True,
        ).stdout
        assert listed, f'COPY {source}: ignored by git, not in a checkout'


def test_image_has_no_secrets_and_runs_unprivileged(image):
  secret = re.compile(r'password|secret|token|credential|api_?key', re.I)
  for stage in image.stages:
    for value in stage.all('ENV') + stage.all('ARG'):
      assert not secret.search(value), f'secret-like ENV/ARG: {value}'
  user = image.final.all('USER')
  assert user and user[-1].split(':')[0] not in ('root', '0')
