#!/usr/bin/env bash
# Sets up the project and runs the whole test suite. `.ci/run` calls exactly
# this. pytest's "no tests collected" (exit 5) is a failure here.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup.sh
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@" tests
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit $status
