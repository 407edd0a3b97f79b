#!/usr/bin/env bash
# Sets up the project and runs the main job on the committed sample with the
# embedded SQLite sink (no services needed), then prints the results and the
# command that opens the wallboard on them.
# Extra arguments go to the job, e.g. scripts/run_local.sh --window_size=60
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup.sh
db=${SQLITE_PATH:-output/contact_center.db}
rm -f "$db"
.venv/bin/python -m pipelines.contact_center \
  --call_events=samples/call_events.jsonl \
  --data_actions=samples/data_actions.jsonl --sqlite_path="$db" "$@"
.venv/bin/python scripts/show_results.py "$db"
echo
echo "The wallboard on these results (then open http://127.0.0.1:8050/):"
echo "  .venv/bin/python -m pipelines.dashboard --sqlite_path=$db"
