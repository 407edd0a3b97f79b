#!/usr/bin/env bash
# Sets up the project and the headless browser of the page tests
# (scripts/install_browser.sh), brings up the real services the integration
# tests talk to (Kafka, Cassandra: scripts/stack.sh), runs the whole test
# suite and brings the services down again. `.ci/run` calls exactly this.
# pytest's "no tests collected" (exit 5) is a failure here.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup.sh
# The wallboard's page tests drive Debian's chromium through chromedriver.
scripts/install_browser.sh
# Services this run started are stopped on the way out, whatever happens.
if ! scripts/stack.sh status >/dev/null 2>&1; then
  trap 'scripts/stack.sh down || true' EXIT
  scripts/stack.sh up
fi
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@" tests
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit $status
