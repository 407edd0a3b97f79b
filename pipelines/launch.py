"""Templated launch of the main job: typed parameters in, a running job out.

    python -m pipelines.launch --template=templates/contact_center/metadata.json \
        --parameters call_events=samples/call_events.jsonl sink=sqlite \
        [--parameters_file=params.json] [--dry_run]

In: a Flex-Template-style metadata file (`--template`; default
$TEMPLATE_METADATA, else the repository's templates/contact_center/
metadata.json) and parameters as `name=value` words (repeat a name for a
repeatable parameter such as `sink`) and/or a JSON object file whose values
are strings, numbers, booleans or lists of them; command-line values replace
the file's for the same name.
Out: the parameters are checked against the template (pipelines.template_spec)
and turned into flags for `pipelines.contact_center.run` on the chosen
runner; `--dry_run` prints those flags instead. This is also the launch
image's entry point (Dockerfile).

Exit codes: 0 done; 2 the launch request is invalid (unknown, missing or
malformed parameters, a broken template, a missing environment variable, or
options the job itself refuses with a ValueError); 1 the CXone start-up check
failed. In both error cases nothing was submitted. Errors are one line each
on stderr, without a traceback.
"""

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from pipelines.template_spec import ParameterError, TemplateError, TemplateSpec

_LOGGER = logging.getLogger(__name__)

TEMPLATE_ENV = 'TEMPLATE_METADATA'
REPO_TEMPLATE = (
  Path(__file__).resolve().parent.parent / 'templates' / 'contact_center' / 'metadata.json'
)
USAGE_ERROR = 2
CHECK_FAILED = 1


def default_template() -> str:
  """$TEMPLATE_METADATA (set in the launch image), else the repo's file."""
  return os.environ.get(TEMPLATE_ENV) or str(REPO_TEMPLATE)


def parse_words(words: Sequence[str]) -> Dict[str, List[str]]:
  """`name=value` words -> name -> values in the order given.

  The value is everything after the first `=`, so values may contain `=`
  (Kafka settings) and commas (host lists). Raises ParameterError.
  """
  values: Dict[str, List[str]] = {}
  problems = []
  for word in words:
    name, sep, value = word.partition('=')
    if not sep or not name:
      problems.append(f'expected name=value, got {word!r}')
    else:
      values.setdefault(name, []).append(value)
  if problems:
    raise ParameterError(problems)
  return values


def read_parameters_file(path: str) -> Dict[str, List[str]]:
  """A JSON object file -> name -> values, as strings.

  Numbers and booleans are accepted for convenience and written the way the
  template's regexes expect (true/false, 300, 2.5); a list gives a
  repeatable parameter several values. Raises ParameterError.
  """
  try:
    with open(path, encoding='utf-8') as f:
      raw = json.load(f)
  except OSError as e:
    raise ParameterError([f'cannot read parameters file {path}: {e.strerror}']) from e
  except ValueError as e:
    raise ParameterError([f'parameters file {path} is not valid JSON: {e}']) from e
  if not isinstance(raw, dict):
    raise ParameterError([f'parameters file {path}: expected a JSON object'])
  values: Dict[str, List[str]] = {}
  problems = []
  for name, value in raw.items():
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, (str, int, float)) for v in items):
      problems.append(
        f'parameters file {path}: {name} must be a string, number, boolean or a list of them'
      )
      continue
    values[name] = [_as_text(v) for v in items]
  if problems:
    raise ParameterError(problems)
  return values


def _as_text(value: Union[str, int, float]) -> str:
  # bool before int: True is an int in Python, "true" in the template.
  if isinstance(value, bool):
    return 'true' if value else 'false'
  return str(value)


def arg_parser() -> argparse.ArgumentParser:
  """The launcher's own command line (the job's flags come from the
  template)."""
  parser = argparse.ArgumentParser(
    prog='python -m pipelines.launch',
    description='Validate typed template parameters and launch the '
    'contact-center job on the chosen runner.',
  )
  parser.add_argument(
    '--template',
    default=default_template(),
    help=f'template metadata JSON (default: ${TEMPLATE_ENV}, else '
    'templates/contact_center/metadata.json of this repository)',
  )
  parser.add_argument(
    '--parameters',
    nargs='+',
    action='extend',
    default=[],
    metavar='NAME=VALUE',
    help='template parameters; repeat a name for a repeatable parameter',
  )
  parser.add_argument(
    '--parameters_file',
    metavar='JSON',
    help='JSON object of parameters; --parameters replace its values',
  )
  parser.add_argument(
    '--describe', action='store_true', help="list the template's parameters and exit"
  )
  parser.add_argument(
    '--dry_run',
    action='store_true',
    help='print the pipeline flags, one per line, and start nothing',
  )
  return parser


def pipeline_argv(spec: TemplateSpec, args: argparse.Namespace) -> List[str]:
  """The validated pipeline flags for parsed launcher arguments.

  Raises ParameterError.
  """
  given = read_parameters_file(args.parameters_file) if args.parameters_file else {}
  given.update(parse_words(args.parameters))
  return spec.to_argv(spec.resolve(given))


def start(argv: List[str]) -> int:
  """Runs the main job with `argv`; returns the exit code."""
  # Imported only now: Beam takes seconds to import, and a rejected launch
  # should be answered at once.
  from clients.cxone import CxoneConfigError, CxoneError
  from pipelines import contact_center

  logging.getLogger().setLevel(logging.INFO)
  # Flag names only: values are not secrets by design, but a misused
  # kafka_config could still carry one, and logs travel far.
  _LOGGER.info('launching with %s', ' '.join(a.split('=')[0] for a in argv))
  try:
    contact_center.run(argv)
  except (CxoneConfigError, ValueError) as e:
    return fail(e, USAGE_ERROR)
  except CxoneError as e:
    return fail(f'CXone start-up check failed, job not started: {e}', CHECK_FAILED)
  return 0


def fail(message: object, code: int) -> int:
  """Prints `message` to stderr, one `error:` line per line; returns code."""
  for line in str(message).splitlines():
    print(f'error: {line}', file=sys.stderr)
  return code


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Command-line entry point; returns the exit code."""
  args = arg_parser().parse_args(argv)
  try:
    spec = TemplateSpec.load(args.template)
    if args.describe:
      print(spec.describe())
      return 0
    flags = pipeline_argv(spec, args)
  except (TemplateError, ParameterError) as e:
    return fail(e, USAGE_ERROR)
  if args.dry_run:
    print('\n'.join(flags))
    return 0
  return start(flags)


if __name__ == '__main__':
  sys.exit(main())
