"""Pipeline options of the project, as PipelineOptions subclasses."""
import argparse
from typing import Iterable, Type

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions


def options_parser(option_classes: Iterable[Type[PipelineOptions]],
                   prog: str, description: str) -> argparse.ArgumentParser:
  """An argparse parser of exactly these option classes' flags."""
  parser = argparse.ArgumentParser(
      prog=prog, description=description, add_help=False)
  for cls in option_classes:
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
  return parser


def help_text(option_classes: Iterable[Type[PipelineOptions]], prog: str) -> str:
  """The --help text of a job: its own options plus the runner choice.

  Beam parses options leniently and has no --help of its own; this lists
  what a user of this job can set.
  """
  return options_parser(
      (StandardOptions, *option_classes), prog,
      'Unknown --flags are passed to the Beam runner.').format_help()
