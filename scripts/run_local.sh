#!/usr/bin/env bash
# Sets up the project and runs the main job on the committed samples with the
# embedded SQLite sink (no services needed) into a fresh store, switches
# $SQLITE_PATH (default output/contact_center.db) to it, then prints the
# results and the command that opens the wallboard on them. Rerunning with
# the wallboard open is safe: it switches to the new results by itself.
# Extra arguments go to the job, e.g. scripts/run_local.sh --window_seconds=60;
# a --call_events or --data_actions of their own replaces that sample, e.g.
#   scripts/run_local.sh --call_events=samples/genesys_cloud.jsonl \
#     --call_event_format=genesys_cloud
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
scripts/setup.sh
db=${SQLITE_PATH:-output/contact_center.db}
call_events=(--call_events=samples/call_events.jsonl)
data_actions=(--data_actions=samples/data_actions.jsonl)
for arg in "$@"; do
  case "$arg" in
    --call_events|--call_events=*) call_events=() ;;
    --data_actions|--data_actions=*) data_actions=() ;;
    --sqlite_path|--sqlite_path=*)
      echo "run_local: the store is \$SQLITE_PATH (default output/contact_center.db), not --sqlite_path" >&2
      exit 2 ;;
  esac
done
# Each run writes a store of its own and, once the job succeeded, $db is
# switched to it in one rename: a wallboard open on $db keeps the previous
# results until then and never sees a half-written or empty store
# (transforms/sqlite_sink.py). A failed run leaves $db as it was.
run_db=$(.venv/bin/python -m transforms.sqlite_sink new "$db")
trap 'rm -f "$run_db" "$run_db-wal" "$run_db-shm"' ERR INT TERM
.venv/bin/python -m pipelines.contact_center \
  ${call_events[@]+"${call_events[@]}"} ${data_actions[@]+"${data_actions[@]}"} \
  --sqlite_path="$run_db" "$@"
trap - ERR INT TERM
.venv/bin/python -m transforms.sqlite_sink publish "$db" "$run_db"
.venv/bin/python scripts/show_results.py "$db"
echo
echo "The wallboard on these results (then open http://127.0.0.1:8050/):"
echo "  .venv/bin/python -m pipelines.wallboard --sqlite_path=$db"
