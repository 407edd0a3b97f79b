#!/usr/bin/env bash
# Creates .venv with the project and its test dependencies, every package at
# the exact version constraints.txt names (idempotent: a second run only
# re-installs when setup.py or constraints.txt changed). Prints nothing else.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$repo/.venv}
python=${PYTHON:-python3}

"$python" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)' ||
  { echo "setup: need Python 3.10-3.12 (apache-beam 2.77), got $("$python" --version)" >&2; exit 1; }
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
stamp="$venv/.installed-$(cat "$repo/setup.py" "$repo/constraints.txt" | sha256sum | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
  echo "setup: installing the project into $venv (first time takes a few minutes)" >&2
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -c "$repo/constraints.txt" -e "$repo[test]"
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
