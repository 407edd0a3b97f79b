"""Builds the launch template's metadata from the options' definitions.

    python -m pipelines.template_metadata            # rewrites the file
    python -m pipelines.template_metadata --check    # exit 1 if it is stale

In: the argparse declarations of the job's options
(`pipelines.contact_center.JOB_OPTIONS`), of Beam's runner options and of
the Flink pass-through flags, and what argparse cannot say (label, value
shape, parent) from options/template_parameters.py.
Out: templates/contact_center/metadata.json, the Flex-Template-style file
`pipelines.launch` checks parameters against (pipelines/template_spec.py).
From a declaration come `helpText` (its help), `defaultValue`, `enumOptions`
(its choices), `paramType` (NUMBER for int and float, BOOLEAN for a flag,
ENUM for choices), `repeated` (an appended option), `groupName` (its
argument group) and `passThrough`. tests/test_templates.py checks that the
committed file is what this builds.
"""

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, NamedTuple, Optional, Sequence

from apache_beam.options.pipeline_options import (
  FlinkRunnerOptions,
  GoogleCloudOptions,
  PortableOptions,
  StandardOptions,
)

from options.template_parameters import (
  FROM_OPTION,
  PARAMETERS,
  TEMPLATE_DESCRIPTION,
  TEMPLATE_NAME,
  FlinkPassThroughOptions,
  Param,
)
from pipelines.contact_center import JOB_OPTIONS
from pipelines.launch import REPO_TEMPLATE

# Beam's options a user picks the runner with.
RUNNER_OPTIONS = (StandardOptions, FlinkRunnerOptions, PortableOptions)
# GoogleCloudOptions declares --job_name, which FlinkRunner names the job by;
# its other options are Dataflow's, and no parameters.
DECLARING = (*JOB_OPTIONS, *RUNNER_OPTIONS, GoogleCloudOptions, FlinkPassThroughOptions)
COMMAND = 'python -m pipelines.template_metadata'


class Declared(NamedTuple):
  """An option's argparse action, the title of its argument group (None
  outside a group) and whether it is a Flink pass-through flag."""

  action: argparse.Action
  group: Optional[str]
  pass_through: bool


def declarations() -> Dict[str, Declared]:
  """Option name -> its declaration, for every class of DECLARING."""
  declared = {}
  for cls in DECLARING:
    parser = argparse.ArgumentParser(add_help=False)
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
    # pylint: disable=protected-access
    for group in parser._action_groups:
      title = None if group is parser._optionals else group.title
      for action in group._group_actions:
        declared[action.dest] = Declared(action, title, cls is FlinkPassThroughOptions)
  return declared


def _as_text(value: object) -> Optional[str]:
  """An option's default the way the template writes it."""
  if value is None:
    return None
  if isinstance(value, bool):
    return 'true' if value else 'false'
  return str(value)


def _parameter(name: str, param: Param, declared: Declared) -> dict:
  action = declared.action
  choices = param.choices or action.choices
  default = _as_text(action.default) if param.default is FROM_OPTION else param.default
  if choices:
    param_type, regex = 'ENUM', '^(' + '|'.join(re.escape(c) for c in choices) + ')$'
  elif isinstance(action, argparse._StoreTrueAction):  # pylint: disable=protected-access
    param_type, regex = 'BOOLEAN', '^(true|false)$'
  else:
    if param.value is None:
      raise ValueError(f'{name}: options/template_parameters.py gives no value shape')
    param_type = 'NUMBER' if action.type in (int, float) else 'TEXT'
    regex = param.value.regex
  group = param.group or declared.group
  if not group:
    raise ValueError(f'{name}: declared outside an argument group, and no group given')
  raw = {
    'name': name,
    'label': param.label,
    'helpText': param.help or action.help,
    'isOptional': not param.required,
    'regexes': [regex],
    'paramType': param_type,
  }
  if choices:
    raw['enumOptions'] = [{'value': c} for c in choices]
  if default is not None:
    raw['defaultValue'] = default
  raw['groupName'] = group[0].upper() + group[1:]
  if param.when:
    raw['parentName'], *raw['parentTriggerValues'] = param.when
  custom = {}
  if param.value is not None and not choices:
    custom['expected'] = param.value.expected
  if isinstance(action, argparse._AppendAction):  # pylint: disable=protected-access
    custom['repeated'] = 'true'
  if param.input_file:
    custom['inputFile'] = 'true'
  if declared.pass_through:
    custom['passThrough'] = 'flink'
  if param.sensitive:
    custom['sensitive'] = 'true'
  if custom:
    raw['customMetadata'] = custom
  return raw


def build() -> dict:
  """The template metadata, parameters in the order of PARAMETERS."""
  declared = declarations()
  unknown = sorted(set(PARAMETERS) - set(declared))
  if unknown:
    raise ValueError(f'options/template_parameters.py: no such option: {", ".join(unknown)}')
  return {
    'name': TEMPLATE_NAME,
    'description': TEMPLATE_DESCRIPTION,
    'streaming': True,
    'parameters': [_parameter(name, param, declared[name]) for name, param in PARAMETERS.items()],
  }


def render() -> str:
  """build() as the committed file's text."""
  return json.dumps(build(), indent=2, ensure_ascii=False) + '\n'


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split('\n')[0])
  parser.add_argument('--output', default=str(REPO_TEMPLATE), help='file to write or check')
  parser.add_argument(
    '--check', action='store_true', help='write nothing; exit 1 if the file differs'
  )
  args = parser.parse_args(argv)
  output = Path(args.output)
  text = render()
  if args.check:
    if not output.exists() or output.read_text(encoding='utf-8') != text:
      print(f'{output} is not what the options declare; run {COMMAND}', file=sys.stderr)
      return 1
    return 0
  output.write_text(text, encoding='utf-8')
  return 0


if __name__ == '__main__':
  sys.exit(main())
