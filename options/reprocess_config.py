"""The reprocessing job's own settings as a frozen value, built once from
ReprocessOptions (options/reprocess_options.py).

The call metrics' and the stores' settings are the main job's
(CallMetricsConfig, SinkConfigs in options/config.py).
"""

import datetime
import os
from dataclasses import dataclass
from typing import Optional, Tuple

from apache_beam.options.pipeline_options import PipelineOptions, TestOptions

from options.reprocess_options import ReprocessOptions, is_true


def parse_time_ms(text: Optional[str], flag: str) -> int:
  """Epoch milliseconds of an ISO 8601 time (UTC when it has no offset);
  raises ValueError naming `flag` when it is missing or not such a time."""
  if not text:
    raise ValueError(f'{flag} is required: an ISO 8601 time such as 2026-11-02T08:00:00Z')
  try:
    when = datetime.datetime.fromisoformat(text.strip())
  except ValueError:
    raise ValueError(
      f'{flag}={text!r} is not an ISO 8601 time such as 2026-11-02T08:00:00Z'
    ) from None
  if when.tzinfo is None:
    when = when.replace(tzinfo=datetime.timezone.utc)
  return int(when.timestamp() * 1000)


@dataclass(frozen=True, kw_only=True)
class ReprocessConfig:
  """`from_ms`, `to_ms`: the event-time range [from, to) of the late calls
  (and archive calls) to fold in, epoch ms; `archives`: raw call-event
  files to backfill from; `dry_run`: print the changes, write nothing."""

  from_ms: int
  to_ms: int
  archives: Tuple[str, ...] = ()
  dry_run: bool = False

  @classmethod
  def from_options(cls, options: PipelineOptions) -> 'ReprocessConfig':
    """Raises ValueError, in one line, for a missing or bad time, an empty
    range or an archive file that is not there."""
    o = options.view_as(ReprocessOptions)
    return cls(
      from_ms=parse_time_ms(o.from_time, '--from_time'),
      to_ms=parse_time_ms(o.to_time, '--to_time'),
      archives=tuple(o.archive or ()),
      dry_run=is_true(options.view_as(TestOptions).dry_run),
    )

  def __post_init__(self):
    if self.to_ms <= self.from_ms:
      raise ValueError('--to_time must be after --from_time')
    for path in self.archives:
      if not os.path.isfile(path):
        raise ValueError(f'--archive={path}: no such file')
