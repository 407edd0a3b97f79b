"""Migrates a Cassandra keyspace written by an older release of the job to
the schema this release writes (docs/cassandra_schema.md).

    python -m scripts.migrate_cassandra --cassandra_keyspace=cxone_analytics \
        [--cassandra_hosts=... and the job's other --cassandra_* options]

Stop the jobs writing to the keyspace first. Idempotent: running it again
does nothing on a migrated keyspace and finishes an interrupted migration.
"""

import argparse
import sys
from typing import List, Optional

from apache_beam.options.pipeline_options import PipelineOptions

from options.cassandra_options import CassandraOptions
from transforms.cassandra import SCHEMA_VERSION, CassandraSettings, migrate


def main(argv: Optional[List[str]] = None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  parser = argparse.ArgumentParser(
    prog='python -m scripts.migrate_cassandra',
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
    allow_abbrev=False,
  )
  # pylint: disable=protected-access
  CassandraOptions._add_argparse_args(parser)
  # Strict, unlike a job's options: a mistyped flag must not migrate the
  # default keyspace.
  parser.parse_args(argv)
  if not any(a.startswith('--cassandra_keyspace') for a in argv):
    parser.error('--cassandra_keyspace is required: the keyspace to migrate')
  try:
    settings = CassandraSettings.from_options(PipelineOptions(argv))
    done = migrate(settings)
  except ValueError as e:
    sys.exit(f'error: {e}')
  for line in done:
    print(line)
  print(
    f'keyspace {settings.keyspace} is at schema v{SCHEMA_VERSION}'
    + ('' if done else ' already: nothing to do')
  )


if __name__ == '__main__':
  main()
