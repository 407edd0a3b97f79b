#!/usr/bin/env bash
# Installs the headless browser the wallboard's page tests drive: Debian's
# chromium and chromium-driver (Selenium talks to chromedriver), once
# (scripts/stack/install_debian.sh).
exec "$(dirname "${BASH_SOURCE[0]}")/install_debian.sh" install_browser \
  'chromium chromedriver' chromium chromium-driver
