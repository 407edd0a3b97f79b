"""JSON Schemas for kubeconform (scripts/stack/fetch_kubernetes_schemas.sh):

  python scripts/stack/kubernetes_schemas.py standalone IN_DIR OUT_DIR
  python scripts/stack/kubernetes_schemas.py crd CRD.yml OUT_DIR

`standalone`: in, the Kubernetes API's schemas of the PyPI package
kubernetes-validate (one file per kind, `$ref`s into a shared
`/api/_definitions.json`); out, the same files each with the definitions
it reaches copied into its own `$defs`, as kubeconform compiles one file on
its own.

`crd`: in, a CustomResourceDefinition (apiextensions.k8s.io/v1); out, one
file per served version, OUT_DIR/<group>/<kind>_<version>.json (the
`{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json` location,
e.g. flink.apache.org/flinkdeployment_v1beta1.json): the version's
openAPIV3Schema as the API server applies it (with the apiVersion, kind
and metadata every object has): an object with known
properties and no `x-kubernetes-preserve-unknown-fields` takes no others
(the server would prune them; a typo must fail), and
`x-kubernetes-int-or-string` accepts both.
"""

import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterator

import yaml

SHARED = '_definitions.json'
# A kind's file refers to the shared file; the shared definitions to each other.
_SHARED_REF = re.compile(r'^(?:/api/_definitions\.json)?#/\$defs/(.+)$')


def _refs(schema: Any) -> Iterator[str]:
  if isinstance(schema, dict):
    for key, value in schema.items():
      if key == '$ref' and isinstance(value, str):
        yield value
      else:
        yield from _refs(value)
  elif isinstance(schema, list):
    for item in schema:
      yield from _refs(item)


def _local_refs(schema: Any) -> Any:
  """The schema with `/api/_definitions.json#/$defs/X` refs made `#/$defs/X`."""
  if isinstance(schema, dict):
    return {
      # A property may itself be named $ref (JSONSchemaProps): only strings are refs.
      key: (
        _SHARED_REF.sub(r'#/$defs/\1', value)
        if key == '$ref' and isinstance(value, str)
        else _local_refs(value)
      )
      for key, value in schema.items()
    }
  if isinstance(schema, list):
    return [_local_refs(item) for item in schema]
  return schema


def standalone(in_dir: str, out_dir: str) -> None:
  shared: Dict[str, Any] = json.loads((Path(in_dir) / SHARED).read_text())['$defs']
  Path(out_dir).mkdir(parents=True, exist_ok=True)
  for path in sorted(Path(in_dir).glob('*.json')):
    if path.name == SHARED:
      continue
    schema = json.loads(path.read_text())
    needed: Dict[str, Any] = {}
    todo = list(_refs(schema))
    while todo:
      match = _SHARED_REF.match(todo.pop())
      if match and match.group(1) not in needed:
        needed[match.group(1)] = shared[match.group(1)]
        todo.extend(_refs(needed[match.group(1)]))
    schema = _local_refs(schema)
    if needed:
      schema['$defs'] = _local_refs(needed)
    (Path(out_dir) / path.name).write_text(json.dumps(schema, separators=(',', ':')))


def strict(schema: Any) -> Any:
  """The schema with additionalProperties false on closed objects and
  int-or-string spelled out, recursively."""
  if isinstance(schema, list):
    return [strict(item) for item in schema]
  if not isinstance(schema, dict):
    return schema
  out = {key: strict(value) for key, value in schema.items()}
  if out.pop('x-kubernetes-int-or-string', False):
    out.pop('type', None)
    out['anyOf'] = [{'type': 'integer'}, {'type': 'string'}]
  if (
    'properties' in out
    and 'additionalProperties' not in out
    and not out.get('x-kubernetes-preserve-unknown-fields')
  ):
    out['additionalProperties'] = False
  return out


def crd(crd_path: str, out_dir: str) -> None:
  definition = yaml.safe_load(Path(crd_path).read_text())
  assert definition['kind'] == 'CustomResourceDefinition', crd_path
  kind = definition['spec']['names']['kind'].lower()
  target_dir = Path(out_dir) / definition['spec']['group']
  target_dir.mkdir(parents=True, exist_ok=True)
  for version in definition['spec']['versions']:
    if version.get('served', True):
      schema = strict(version['schema']['openAPIV3Schema'])
      # Every object has these; the API server checks metadata as ObjectMeta
      # itself, a CRD's schema does not describe them.
      for field, field_type in (
        ('apiVersion', 'string'),
        ('kind', 'string'),
        ('metadata', 'object'),
      ):
        schema['properties'].setdefault(field, {'type': field_type})
      target = target_dir / f'{kind}_{version["name"]}.json'
      target.write_text(json.dumps(schema, indent=1) + '\n')
      print(target)


if __name__ == '__main__':
  {'standalone': standalone, 'crd': crd}[sys.argv[1]](*sys.argv[2:])
