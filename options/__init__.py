"""Pipeline options of the project, as PipelineOptions subclasses."""
import argparse
from typing import Iterable, Type

from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions


def help_text(option_classes: Iterable[Type[PipelineOptions]], prog: str) -> str:
  """The --help text of a job: its own options plus the runner choice.

  Beam parses options leniently and has no --help of its own; this lists
  what a user of this job can set.
  """
  parser = argparse.ArgumentParser(
      prog=prog,
      description='Unknown --flags are passed to the Beam runner.',
      add_help=False)
  for cls in (StandardOptions, *option_classes):
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
  return parser.format_help()
