#!/usr/bin/env bash
# Installs Debian's prometheus package for the operators' tests, once
# (scripts/stack/install_debian.sh): promtool checks and unit-tests
# deploy/prometheus/alerts.yml, and the prometheus server scrapes the job's
# /metrics on loopback. The package's own service is not started (the tests
# start their own server on a free port).
exec "$(dirname "${BASH_SOURCE[0]}")/install_debian.sh" install_prometheus \
  'prometheus promtool' prometheus --no-services
