"""The entry points: the main job, the templated launch, the wallboard.

Importing Beam logs once that apitools is missing (for Beam's BigQuery
client, which none of them uses): nothing a user can act on. Every entry
point is a module of this package, so this runs before their first import
of Beam and drops exactly that one record from the root logger, where Beam
logs it.
"""

import logging

logging.getLogger().addFilter(
  lambda record: not record.getMessage().startswith('apitools not found')
)
