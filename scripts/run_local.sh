#!/usr/bin/env bash
# Sets up the project and runs the main job on the committed samples with the
# embedded SQLite sink (no services needed), then prints the results and the
# command that opens the wallboard on them.
# Extra arguments go to the job, e.g. scripts/run_local.sh --window_size=60;
# a --call_events or --data_actions of their own replaces that sample, e.g.
#   scripts/run_local.sh --call_events=samples/genesys_cloud.jsonl \
#     --call_event_format=genesys_cloud
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup.sh
db=${SQLITE_PATH:-output/contact_center.db}
rm -f "$db"
call_events=(--call_events=samples/call_events.jsonl)
data_actions=(--data_actions=samples/data_actions.jsonl)
for arg in "$@"; do
  case "$arg" in
    --call_events|--call_events=*) call_events=() ;;
    --data_actions|--data_actions=*) data_actions=() ;;
  esac
done
.venv/bin/python -m pipelines.contact_center \
  ${call_events[@]+"${call_events[@]}"} ${data_actions[@]+"${data_actions[@]}"} \
  --sqlite_path="$db" "$@"
.venv/bin/python scripts/show_results.py "$db"
echo
echo "The wallboard on these results (then open http://127.0.0.1:8050/):"
echo "  .venv/bin/python -m pipelines.dashboard --sqlite_path=$db"
