#!/usr/bin/env bash
# Sets up the project, the headless browser of the page tests
# (scripts/stack/install_browser.sh) and Prometheus of the operators' tests
# (scripts/stack/install_prometheus.sh), brings up the real services the integration
# tests talk to (Kafka, Cassandra and the secured Kafka + Cassandra pair:
# scripts/stack.sh up --secure), runs the whole test suite and brings the
# services down again. `.ci/run` calls exactly this. The code style is checked
# first (ruff, pyproject.toml).
# The secured pair's settings and secrets ($RUN_DIR/secure/*.env, written by
# scripts/stack/secure_pki.sh) are exported to the tests as environment variables.
# pytest's "no tests collected" (exit 5) is a failure here.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
run_dir=${RUN_DIR:-$repo/.run}
scripts/setup.sh
# One style (pyproject.toml): lint and format are checked before any test runs.
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
# The wallboard's page tests drive Debian's chromium through chromedriver.
scripts/stack/install_browser.sh
# promtool checks the alert rules; a prometheus server scrapes the job's /metrics.
scripts/stack/install_prometheus.sh
# The end-to-end result tests also run the job on Prism, Beam's own local runner
# (tests/support/prism.py): built once into $RUN_DIR/prism.
scripts/stack/install_prism.sh >/dev/null
# Services this run started are stopped on the way out, whatever happens.
if ! scripts/stack.sh status >/dev/null 2>&1; then
  trap 'scripts/stack.sh down || true' EXIT
  scripts/stack.sh up --secure
elif ! scripts/stack.sh status --secure >/dev/null 2>&1; then
  trap 'scripts/stack.sh down --secure || true' EXIT
  scripts/stack.sh up --secure
fi
set -a
# shellcheck disable=SC1091
source "$run_dir/secure/stack.env"
# shellcheck disable=SC1091
source "$run_dir/secure/secrets.env"
# shellcheck disable=SC1091
source "$run_dir/secure/admin.env"
set +a
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@" tests
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "test: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit $status
