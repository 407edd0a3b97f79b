#!/usr/bin/env bash
# The whole local stack (Apache Kafka + Apache Cassandra + the Beam KafkaIO expansion service, from
# Maven Central jars) in one command.
#   scripts/stack.sh up [--secure]      # fetch jars if needed, start all three; --secure also
#                                       # the secured Kafka + Cassandra pair (below)
#   scripts/stack.sh down [--secure]    # stop everything; --secure: only the secured pair
#   scripts/stack.sh status [--secure]  # exit 0 only if all are up and answering (--secure:
#                                       # the secured pair too)
# The services start in parallel; per-service settings: see scripts/stack/kafka.sh, scripts/stack/cassandra.sh
# and scripts/stack/expansion_service.sh (127.0.0.1:8097, Java transforms in the EMBEDDED environment).
# The secured pair (docs/secured_clusters.md): Kafka SASL_SSL/SCRAM-SHA-512 on 127.0.0.1:9094
# (`kafka.sh --secure`) and Cassandra with password authentication, TLS and client certificates on
# 127.0.0.1:9142 (`cassandra.sh --secure`), from the CA, certificates and secrets that
# scripts/stack/secure_pki.sh keeps in $RUN_DIR/secure (created on the first `up --secure`). The jobs'
# secrets are in $RUN_DIR/secure/secrets.env; load them with
#   set -a; source "$RUN_DIR/secure/secrets.env"; set +a
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack/lib.sh"

PLAIN=("kafka" "cassandra" "expansion_service")
SECURED=("kafka --secure" "cassandra --secure")

# run_all <action> <service...>: runs scripts/<svc>.sh [--secure] <action> for every service in
# parallel; fails if any failed.
run_all() {
  local action=$1 svc pids=() rc=0 i; shift
  local services=("$@")
  for svc in "${services[@]}"; do
    # shellcheck disable=SC2086  # "kafka --secure" is the script and its flag
    "$STACK_DIR/${svc%% *}.sh" ${svc#"${svc%% *}"} "$action" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { rc=$?; log "stack: ${services[$i]} $action failed (exit $rc)"; }
  done
  return "$rc"
}

SECURE=0
[[ "${2:-}" == --secure ]] && SECURE=1
case "${1:-}" in
  up)
    t0=$(now_ms)
    "$STACK_DIR/fetch_jars.sh"
    services=("${PLAIN[@]}")
    if ((SECURE)); then
      "$STACK_DIR/secure_pki.sh" init
      services+=("${SECURED[@]}")
    fi
    run_all start "${services[@]}" ||
      { log "stack: start failed; logs in $LOG_DIR (scripts/stack.sh down to clean up)"; exit 1; }
    log "stack: up in $(elapsed_s "$t0")s"
    run_all status "${services[@]}" ;;
  down)
    if ((SECURE)); then run_all stop "${SECURED[@]}"; else run_all stop "${PLAIN[@]}" "${SECURED[@]}"; fi ;;
  status)
    if ((SECURE)); then run_all status "${PLAIN[@]}" "${SECURED[@]}"; else run_all status "${PLAIN[@]}"; fi ;;
  *) usage_die "up|down|status [--secure]" ;;
esac
