"""Old flag names, accepted for one release after a flag is renamed.

A renamed flag is declared with its new name first and its old name after
it, with `action=RenamedFlag`: both set the new option, and the old one logs
`--old is deprecated, use --new` once per process, not once per parse: Beam
parses the flags again for every view of the options
(`PipelineOptions.view_as`). A flag replaced by another class's flag (the
wallboard's `--store` by the job's `--sink`) keeps its own declaration, and
the code reading it calls `report`.

Rule of the names (docs/design.md, "Settings"): a flag whose value is a
duration as a bare number says its unit (`--window_seconds`).
"""

import argparse
import logging
from typing import Set

_LOGGER = logging.getLogger(__name__)
# Old names already reported by this process.
_REPORTED: Set[str] = set()


def report(old: str, new: str) -> None:
  """Logs `old is deprecated, use new`, the first time only."""
  if old not in _REPORTED:
    _REPORTED.add(old)
    _LOGGER.warning('%s is deprecated, use %s', old, new)


class RenamedFlag(argparse.Action):
  """Stores the value like argparse's default action; every option string
  after the first is an old name that logs a deprecation notice."""

  def __call__(self, parser, namespace, values, option_string=None):
    if option_string != self.option_strings[0]:
      report(option_string, self.option_strings[0])
    setattr(namespace, self.dest, values)
