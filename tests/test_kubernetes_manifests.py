"""deploy/kubernetes/: every manifest valid against the Kubernetes API's
schemas and the Flink Kubernetes Operator's FlinkDeployment CRD, offline,
with kubeconform in strict mode (a misspelled field fails), and the pod
templates inside the FlinkDeployment valid as Pods too. The tools and
schemas come from scripts/stack/fetch_kubernetes_schemas.sh (kubeconform
from the Go module proxy, the Kubernetes schemas from PyPI's
kubernetes-validate, the CRD from Maven Central; cached under .run/k8s).
Also: the job's arguments are options it knows, its images and jar paths
are what the repository's Dockerfile builds, and no secret is written in."""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List

import pytest
import yaml

from options import declared_flags
from pipelines import contact_center  # noqa: F401  (declares the job's options)
from pipelines.template_spec import TemplateSpec

REPO = Path(__file__).resolve().parent.parent
MANIFESTS = REPO / 'deploy' / 'kubernetes'
RUN_DIR = Path(os.environ.get('RUN_DIR', REPO / '.run'))
K8S = RUN_DIR / 'k8s'
KUBERNETES_VERSION = '1.31.0'
SCHEMAS = [
  str(K8S / 'schemas' / 'kubernetes')
  + '/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}'
  + '/{{ .ResourceKind }}{{ .KindSuffix }}.json',
  str(K8S / 'schemas' / 'crds')
  + '/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json',
]


@pytest.fixture(scope='module')
def kubeconform() -> Iterator[Path]:
  """The kubeconform binary, with the schemas fetched (idempotent)."""
  env = dict(os.environ, RUN_DIR=str(RUN_DIR))
  env['PATH'] = f'{Path(sys.executable).parent}{os.pathsep}{env.get("PATH", "")}'
  fetch = subprocess.run(
    [str(REPO / 'scripts' / 'stack' / 'fetch_kubernetes_schemas.sh')],
    cwd=REPO,
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert fetch.returncode == 0, fetch.stderr[-3000:]
  yield K8S / 'bin' / 'kubeconform'


def validate(kubeconform: Path, paths: List[Path]) -> subprocess.CompletedProcess:
  locations = [arg for location in SCHEMAS for arg in ('-schema-location', location)]
  return subprocess.run(
    [
      str(kubeconform),
      '-strict',
      '-summary',
      '-kubernetes-version',
      KUBERNETES_VERSION,
      *locations,
      *map(str, paths),
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )


def documents() -> List[dict]:
  return [
    doc
    for path in sorted(MANIFESTS.glob('*.yaml'))
    for doc in yaml.safe_load_all(path.read_text())
    if doc
  ]


def flink_deployment() -> dict:
  (deployment,) = [d for d in documents() if d['kind'] == 'FlinkDeployment']
  return deployment


def test_every_manifest_is_valid(kubeconform):
  run = validate(kubeconform, sorted(MANIFESTS.glob('*.yaml')))
  count = len(documents())
  assert run.returncode == 0, run.stdout + run.stderr
  assert f'Valid: {count}, Invalid: 0, Errors: 0, Skipped: 0' in run.stdout, run.stdout
  assert {'FlinkDeployment', 'PersistentVolumeClaim', 'ServiceAccount'} <= {
    d['kind'] for d in documents()
  }


def test_pod_templates_are_valid_pods(kubeconform, tmp_path):
  spec = flink_deployment()['spec']
  templates = [spec['podTemplate'], spec['jobManager']['podTemplate']]
  templates.append(spec['taskManager']['podTemplate'])
  paths = []
  for index, template in enumerate(templates):
    paths.append(tmp_path / f'pod{index}.yaml')
    paths[-1].write_text(yaml.safe_dump(template))
  run = validate(kubeconform, paths)
  assert run.returncode == 0, run.stdout + run.stderr
  assert 'Valid: 3, Invalid: 0' in run.stdout, run.stdout


@pytest.mark.parametrize(
  'old, new',
  [
    ('  jobManager:\n', '  jobManger:\n'),
    ('upgradeMode: savepoint', 'upgradeMode: sometimes'),
    ('- containerPort: 50000', '- containerPrt: 50000'),
    ('claimName: contact-center-flink-state', 'claimName: 7'),
  ],
)
def test_a_wrong_field_is_refused(kubeconform, tmp_path, old, new):
  text = (MANIFESTS / 'flink-deployment.yaml').read_text()
  assert old in text
  wrong = tmp_path / 'wrong.yaml'
  wrong.write_text(text.replace(old, new, 1))
  run = validate(kubeconform, [wrong])
  assert run.returncode != 0 and 'Invalid: 1' in run.stdout, run.stdout + run.stderr


def containers(deployment: dict) -> List[dict]:
  spec = deployment['spec']
  pods = [spec['podTemplate'], spec['jobManager']['podTemplate']]
  pods.append(spec['taskManager']['podTemplate'])
  return [
    c for pod in pods for c in pod['spec'].get('initContainers', []) + pod['spec']['containers']
  ]


def test_the_job_arguments_are_options_of_the_job():
  (job_jar,) = [c for c in containers(flink_deployment()) if c['name'] == 'job-jar']
  assert job_jar['command'] == ['python', '-m', 'pipelines.contact_center']
  # Flink's own options pass through the job server: the template's
  # passThrough parameters and scripts/submit_flink.sh's defaults.
  spec = TemplateSpec.load(str(REPO / 'templates' / 'contact_center' / 'metadata.json'))
  pass_through = {f'--{name}' for name, p in spec.parameters.items() if p.pass_through}
  submit = (REPO / 'scripts' / 'submit_flink.sh').read_text()
  pass_through |= set(re.findall(r'(--[a-z_]+)=?', submit))
  known = declared_flags() | pass_through
  flags = [arg.split('=', 1)[0] for arg in job_jar['args']]
  assert set(flags) <= known, set(flags) - known


def test_images_and_paths_are_what_the_repository_builds():
  dockerfile = (REPO / 'Dockerfile').read_text()
  assert 'docker build -t contact-center-launcher .' in dockerfile
  deployment = flink_deployment()
  ours = [c for c in containers(deployment) if 'image' in c and 'flink' not in c['image']]
  assert {c['image'] for c in ours} == {'contact-center-launcher:latest'}
  # The image's /opt/contact-center/jars: the job server and the expansion service's classpath.
  assert 'COPY --from=jars /jars /opt/contact-center/jars' in dockerfile
  assert '/jars/flink-job-server.jar' in dockerfile and '/jars/beam-expansion' in dockerfile
  args = ' '.join(arg for c in containers(deployment) for arg in c.get('args', []))
  assert '/opt/contact-center/jars/flink-job-server.jar' in args
  assert '/opt/contact-center/jars/beam-expansion/*' in args
  # The cluster's Flink is the one of the job server's Beam runner (scripts/stack/fetch_flink.sh).
  fetch = (REPO / 'scripts' / 'stack' / 'fetch_flink.sh').read_text()
  flink = re.search(r'FLINK_DIST_1_19=\$\{FLINK_DIST_1_19:-([0-9.]+)\}', fetch).group(1)
  assert deployment['spec']['image'].startswith(f'flink:{flink}-')
  assert deployment['spec']['flinkVersion'] == 'v' + '_'.join(flink.split('.')[:2])


def test_secrets_come_from_kubernetes_secrets_only():
  assert 'Secret' not in {d['kind'] for d in documents()}
  for container in containers(flink_deployment()):
    for env in container.get('env', []):
      assert not re.search(r'password|secret|token|jaas', env['name'], re.I) or 'valueFrom' in env
    for source in container.get('envFrom', []):
      assert source['secretRef']['name'] == 'contact-center-secrets'
  text = ''.join(p.read_text() for p in MANIFESTS.glob('*.yaml'))
  assert not re.search(r'password=|jaas.config=[^A-Z]', text, re.I)
