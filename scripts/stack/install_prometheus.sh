#!/usr/bin/env bash
# Installs Debian's prometheus package for the operators' tests: promtool
# checks and unit-tests deploy/prometheus/alerts.yml, and the prometheus
# server scrapes the job's /metrics on loopback. Idempotent: does nothing when
# both are on PATH. The package's own service is not started (the tests start
# their own server on a free port). Installing needs root (CI runs as root);
# otherwise it says what to run.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install_prometheus: prometheus and promtool are missing; run as root:" \
    "apt-get install -y --no-install-recommends prometheus" >&2
  exit 1
fi
echo "install_prometheus: installing prometheus (apt)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# policy-rc.d exit 101 keeps the package's postinst from starting a system
# service on the default port; the tests run their own server.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -q --no-install-recommends prometheus
command -v prometheus >/dev/null && command -v promtool >/dev/null
