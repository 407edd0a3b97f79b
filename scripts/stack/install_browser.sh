#!/usr/bin/env bash
# Installs the headless browser the wallboard's page tests drive: Debian's
# chromium and chromium-driver (Selenium talks to chromedriver). Idempotent:
# does nothing when both are on PATH. Installing needs root (CI runs as root);
# otherwise it says what to run.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install_browser: chromium and chromedriver are missing; run as root:" \
    "apt-get install -y --no-install-recommends chromium chromium-driver" >&2
  exit 1
fi
echo "install_browser: installing chromium and chromium-driver (apt)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium chromium-driver
command -v chromium >/dev/null && command -v chromedriver >/dev/null
