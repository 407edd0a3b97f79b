#!/usr/bin/env bash
# Installs Debian packages a test setup needs, once:
#   scripts/stack/install_debian.sh WHAT "CMD ..." PACKAGE... [--no-services]
# Does nothing when every command of "CMD ..." is on PATH. Installing needs
# root (CI runs as root); otherwise it says what to run. --no-services keeps
# the packages' postinst from starting a system service (policy-rc.d exit
# 101): the tests start their own servers on free loopback ports.
set -euo pipefail
what=$1 commands=$2
shift 2
no_services=false packages=()
for arg in "$@"; do
  if [[ $arg == --no-services ]]; then no_services=true; else packages+=("$arg"); fi
done
have_all() {
  local cmd
  for cmd in $commands; do command -v "$cmd" >/dev/null || return 1; done
}
have_all && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "$what: $commands missing; run as root:" \
    "apt-get install -y --no-install-recommends ${packages[*]}" >&2
  exit 1
fi
echo "$what: installing ${packages[*]} (apt)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
policy=/usr/sbin/policy-rc.d
if $no_services && [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -q --no-install-recommends "${packages[@]}"
have_all
