"""Options of the reprocessing job (pipelines/reprocess.py): which late
calls to fold back into their windows, and whether to write."""

from typing import List, Sequence

from apache_beam.options.pipeline_options import PipelineOptions

# Beam declares --dry_run itself (TestOptions: its runners that submit jobs
# then submit none) with a value; this job reads the same flag, and takes
# it bare too (`dry_run_argv`).
DRY_RUN_FLAG = '--dry_run'


def dry_run_argv(argv: Sequence[str]) -> List[str]:
  """`argv` with a bare --dry_run given its value (`--dry_run=true`), which
  Beam's own declaration of the flag requires."""
  out = []
  for i, arg in enumerate(argv):
    bare = arg == DRY_RUN_FLAG and (i + 1 == len(argv) or argv[i + 1].startswith('-'))
    out.append(f'{DRY_RUN_FLAG}=true' if bare else arg)
  return out


def is_true(value: object) -> bool:
  """A flag's value as given on the command line (a string) or by a test
  (a bool): true, yes, 1."""
  return value is True or str(value).strip().lower() in ('true', 'yes', '1')


class ReprocessOptions(PipelineOptions):
  """The event-time range of late calls to fold in and backfill files
  (the dry run is Beam's --dry_run, DRY_RUN_FLAG)."""

  @classmethod
  def _add_argparse_args(cls, parser):
    group = parser.add_argument_group('reprocessing')
    group.add_argument(
      '--from_time',
      default=None,
      help='Start (inclusive) of the event-time range of late calls to fold '
      'into their windows, ISO 8601 (e.g. 2026-11-02T08:00:00Z; UTC when '
      'no offset is given). Required.',
    )
    group.add_argument(
      '--to_time',
      default=None,
      help='End (exclusive) of that range, ISO 8601 as --from_time. Required.',
    )
    group.add_argument(
      '--archive',
      action='append',
      default=None,
      help='A file of raw call events in --call_event_format, parsed as the '
      'main job parses them, whose calls with an event time in the range '
      'are folded in too (backfill); repeat for several.',
    )


class DryRunHelp:
  """--help's line for --dry_run. Not a PipelineOptions: Beam parses every
  such class's flags together, and Beam's own --dry_run would clash."""

  @classmethod
  def _add_argparse_args(cls, parser):
    parser.add_argument_group('dry run').add_argument(
      DRY_RUN_FLAG,
      action='store_true',
      help='Print what would change, one line per window, and a summary; write nothing.',
    )
