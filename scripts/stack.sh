#!/usr/bin/env bash
# The whole local stack (Apache Kafka + Apache Cassandra, from Maven Central jars) in one command.
#   scripts/stack.sh up      # fetch jars if needed (incl. the Beam KafkaIO expansion service), start both
#   scripts/stack.sh down    # stop both
#   scripts/stack.sh status  # exit 0 only if both are up and answering
# Both services start in parallel; per-service settings: see scripts/kafka.sh and scripts/cassandra.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVICES=(kafka cassandra)

# run_all <action>: runs scripts/<svc>.sh <action> for every service in parallel; fails if any failed.
run_all() {
  local svc pids=() rc=0 i
  for svc in "${SERVICES[@]}"; do
    "$SCRIPTS_DIR/$svc.sh" "$1" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { rc=$?; log "stack: ${SERVICES[$i]} $1 failed (exit $rc)"; }
  done
  return "$rc"
}

case "${1:-}" in
  up)
    t0=$(now_ms)
    "$SCRIPTS_DIR/fetch_jars.sh"
    run_all start || { log "stack: start failed; logs in $LOG_DIR (scripts/stack.sh down to clean up)"; exit 1; }
    log "stack: up in $(elapsed_s "$t0")s"
    run_all status ;;
  down) run_all stop ;;
  status) run_all status ;;
  *) usage_die "up|down|status" ;;
esac
