"""Pipeline options of the project, as PipelineOptions subclasses."""

import argparse
import re
from typing import Iterable, Sequence, Set, Type

from apache_beam.options import pipeline_options
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions


def options_parser(
  option_classes: Iterable[Type[PipelineOptions]], prog: str, description: str
) -> argparse.ArgumentParser:
  """An argparse parser of exactly these option classes' flags."""
  parser = argparse.ArgumentParser(prog=prog, description=description, add_help=False)
  for cls in option_classes:
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
  return parser


def help_text(option_classes: Iterable[Type[PipelineOptions]], prog: str) -> str:
  """The --help text of a job: its own options plus the runner choice.

  Beam parses options leniently and has no --help of its own; this lists
  what a user of this job can set.
  """
  return options_parser(
    (StandardOptions, *option_classes), prog, 'Unknown --flags are passed to the Beam runner.'
  ).format_help()


# Flag names that suggest a secret value.
SECRET_FLAG = re.compile(r'password|passwd|secret|token|jaas|credential', re.I)


def declared_flags() -> Set[str]:
  """Every --flag a PipelineOptions class imported so far declares (Beam's
  and the job's), as Beam's own parser sees them."""
  # pylint: disable=protected-access
  parser = pipeline_options._BeamArgumentParser(allow_abbrev=False)
  for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
    cls._add_argparse_args(parser)
  return set(parser._option_string_actions)


def reject_secret_flags(argv: Sequence[str]) -> None:
  """Raises ValueError for an unknown flag named like a secret (password,
  secret, token, jaas, credential). Beam would log it with its value and,
  on a portable runner, ship it with the job's options; the message names
  the flag only."""
  known = declared_flags()
  for arg in argv:
    name = arg.split('=', 1)[0]
    if name.startswith('--') and name not in known and SECRET_FLAG.search(name):
      raise ValueError(
        f'unknown option {name} looks like a secret and is refused (its '
        'value is not shown): secrets are never options; put the value in '
        'an environment variable and pass its name, e.g. '
        '--cassandra_password_env=CASSANDRA_PASSWORD or '
        '--kafka_secret_config_env=sasl.jaas.config=KAFKA_SASL_JAAS_CONFIG'
      )
