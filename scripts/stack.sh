#!/usr/bin/env bash
# The whole local stack (Apache Kafka + Apache Cassandra + the Beam KafkaIO expansion service, from
# Maven Central jars) in one command.
#   scripts/stack.sh up      # fetch jars if needed, start all three
#   scripts/stack.sh down    # stop all three
#   scripts/stack.sh status  # exit 0 only if all are up and answering
# The services start in parallel; per-service settings: see scripts/kafka.sh, scripts/cassandra.sh
# and scripts/expansion_service.sh (127.0.0.1:8097, Java transforms in the EMBEDDED environment).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SERVICES=(kafka cassandra expansion_service)

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
