#!/usr/bin/env bash
# Submit the main job (pipelines.contact_center) reading Kafka to Flink, with checkpointing on.
#   scripts/submit_flink.sh local   [--detach] [extra job args...]   # embedded Flink, LOOPBACK
#   scripts/submit_flink.sh cluster [--detach] [extra job args...]   # scripts/flink.sh cluster,
#                                                                    # EXTERNAL worker pool
# Defaults (each one is dropped when the extra args give the same option, so e.g.
# --checkpointing_interval=5000 or --sink=cassandra replaces it, and --object_reuse=false
# turns a flag off):
#   --source=kafka --kafka_data_actions_topic= --sink=cassandra --sink=kafka --streaming
#   --checkpointing_interval=60000 --checkpointing_mode=EXACTLY_ONCE
#   --min_pause_between_checkpoints=5000 --checkpoint_timeout_millis=300000
#   --state_backend=rocksdb --state_backend_storage_path=file://$RUN_DIR/flink/checkpoints
#   --finish_bundle_before_checkpointing (without it window output was lost under checkpointing)
#   --max_bundle_size=5000 (Flink's 1000 costs a state round trip per key 5 times as often)
#   --object_reuse (chained operators hand records on instead of copying each through its
#   coder: the copies were 29 % of the TaskManager's CPU; Beam transforms never mutate their
#   inputs; docs/benchmarks.md)
#   --max_parallelism=128 (Flink's key groups: fixed for the life of the job's state, so a
#   savepoint can be resumed at any parallelism up to it; docs/upgrades.md)
#   --job_name=cc-<mode>-<time>; cluster: --parallelism=$PARALLELISM (2) and
#   --sdk_worker_parallelism=2 (one Python worker per subtask: with one, the Python stage
#   waited on Flink <-> Python round trips with neither core saturated; README "Benchmarks")
# Restore from a savepoint: add --savepoint_path=file:///..., at any --parallelism up to
# --max_parallelism (rescaling; docs/upgrades.md has the procedure).
# The job reads forever; the submitting process waits for it (the job server runs inside it;
# on the cluster the job keeps running without it). --detach runs that process in the
# background (log $RUN_DIR/logs/submit-<job_name>.log, pid $RUN_DIR/pids/submit-<job_name>.pid)
# and returns once the job is RUNNING (cluster) or submitted (local).
# Stop a cluster job: curl -X PATCH 'http://127.0.0.1:8081/jobs/<jid>?mode=cancel', or with a
# savepoint: curl -X POST -H 'Content-Type: application/json' -d '{"targetDirectory":
# "file://'$RUN_DIR'/flink/savepoints","drain":false}' http://127.0.0.1:8081/jobs/<jid>/stop
# Needs: scripts/stack.sh up (Kafka, Cassandra, expansion service); cluster: scripts/flink.sh start.
# Env: PARALLELISM (cluster: 2), WORKER_POOL (127.0.0.1:50000), FLINK_REST_PORT (8081),
#      KAFKA_BOOTSTRAP (127.0.0.1:9092), KAFKA_EXPANSION_SERVICE (127.0.0.1:8097),
#      BEAM_PYTHON (the venv python), SUBMIT_TIMEOUT (detach: 300 s until RUNNING),
#      PIPELINE_MODULE (pipelines.contact_center; the benchmark's floor job replaces it).
# Secured clusters: the job's secrets must be in this script's environment (the launcher and
# the job server it starts read them) and in the TaskManagers' (scripts/flink.sh FLINK_ENV_FILE);
# see docs/secured_clusters.md for the flags.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack/lib.sh"

MODE=${1:-}
if [[ "$MODE" != local && "$MODE" != cluster ]]; then
  echo "usage: $(basename "$0") {local|cluster} [--detach] [extra job args...]" >&2; exit 2
fi
shift
DETACH=0
EXTRA=()
for a in "$@"; do
  if [[ "$a" == --detach ]]; then DETACH=1; else EXTRA+=("$a"); fi
done

HOST=127.0.0.1
REST_PORT=${FLINK_REST_PORT:-8081}
UI_URL="http://$HOST:$REST_PORT"
POOL=${WORKER_POOL:-$HOST:50000}
KAFKA=${KAFKA_BOOTSTRAP:-$HOST:9092}
EXPANSION=${KAFKA_EXPANSION_SERVICE:-$HOST:8097}
PY=${BEAM_PYTHON:-$REPO_ROOT/.venv/bin/python}
# The benchmark's floor job (scripts/bench/flink_floor.py) is submitted the same way.
PIPELINE_MODULE=${PIPELINE_MODULE:-pipelines.contact_center}
[[ -x "$PY" ]] || die "pipeline python not found at $PY (set BEAM_PYTHON)"
ENV_FILE=$JARS_DIR/flink-job-server/flink.env
CKPT_DIR=$RUN_DIR/flink/checkpoints
mkdir -p "$CKPT_DIR" "$RUN_DIR/flink/savepoints"

# The job-server jar (KafkaIO shaded in), fetched/built once by fetch_flink.sh.
# shellcheck disable=SC1090
if [[ ! -f "$ENV_FILE" ]] || ! (source "$ENV_FILE" && [[ -s "$FLINK_JOB_SERVER_JAR" ]]); then
  "$STACK_DIR/fetch_flink.sh" >&2
fi
# shellcheck disable=SC1090
source "$ENV_FILE"

# value of --key=... in the extra args (last one wins), empty if absent
extra_value() {
  local a v=""
  for a in "${EXTRA[@]}"; do [[ "$a" == "--$1="* ]] && v=${a#--"$1"=}; done
  echo "$v"
}
given() {  # does the extra args set --<key> (as --key, --key=... or --key value)?
  local a
  for a in "${EXTRA[@]}"; do [[ "$a" == "--$1" || "$a" == "--$1="* ]] && return 0; done
  return 1
}

JOB_NAME=$(extra_value job_name)
JOB_NAME=${JOB_NAME:-cc-$MODE-$(date +%Y%m%d-%H%M%S)}
DEFAULTS=(
  --runner=FlinkRunner "--flink_job_server_jar=$FLINK_JOB_SERVER_JAR" --streaming
  "--job_name=$JOB_NAME"
  --source=kafka "--kafka_bootstrap_servers=$KAFKA" "--kafka_expansion_service=$EXPANSION"
  --kafka_data_actions_topic=
  --checkpointing_interval=60000 --checkpointing_mode=EXACTLY_ONCE
  --min_pause_between_checkpoints=5000 --checkpoint_timeout_millis=300000
  --state_backend=rocksdb "--state_backend_storage_path=file://$CKPT_DIR"
  --finish_bundle_before_checkpointing --max_bundle_size=5000 --object_reuse
  --max_parallelism=128
)
if [[ $MODE == local ]]; then
  DEFAULTS+=(--flink_master=[local] --environment_type=LOOPBACK)
else
  DEFAULTS+=("--flink_master=$HOST:$REST_PORT" --environment_type=EXTERNAL
             "--environment_config=$POOL" "--parallelism=${PARALLELISM:-2}"
             --sdk_worker_parallelism=2)
fi
ARGS=()
for d in "${DEFAULTS[@]}"; do
  key=${d#--}; key=${key%%=*}
  given "$key" || ARGS+=("$d")
done
given sink || ARGS+=(--sink=cassandra --sink=kafka)
# Beam's launcher takes the runner's boolean options as bare flags only: --<flag>=false turns a
# default flag above off by leaving it out.
for a in "${EXTRA[@]}"; do [[ "$a" == --*=false && " ${DEFAULTS[*]} " == *" ${a%=false} "* ]] || ARGS+=("$a"); done

# --- preflight: fail with a hint instead of hanging on an unreachable address ------------------
hostport_open() { port_open "${1%:*}" "${1##*:}"; }
sinks=" $(printf '%s ' "${ARGS[@]}") "
v=$(extra_value kafka_bootstrap_servers); KAFKA=${v:-$KAFKA}
hostport_open "${KAFKA%%,*}" || die "Kafka not reachable at $KAFKA: scripts/stack.sh up"
v=$(extra_value kafka_expansion_service); EXPANSION=${v:-$EXPANSION}
hostport_open "$EXPANSION" || die "KafkaIO expansion service not reachable at $EXPANSION: scripts/stack.sh up"
CASS_HOST=$(extra_value cassandra_hosts | cut -d, -f1); CASS_HOST=${CASS_HOST:-$HOST}
CASS_PORT=$(extra_value cassandra_port); CASS_PORT=${CASS_PORT:-9042}
KEYSPACE=$(extra_value cassandra_keyspace); KEYSPACE=${KEYSPACE:-cxone_analytics}
if [[ "$sinks" == *" --sink=cassandra "* ]]; then
  port_open "$CASS_HOST" "$CASS_PORT" || die "Cassandra not reachable at $CASS_HOST:$CASS_PORT: scripts/stack.sh up"
fi
if [[ $MODE == cluster ]]; then
  curl -fsS --max-time 3 "$UI_URL/overview" >/dev/null 2>&1 ||
    die "Flink REST not answering at $UI_URL: scripts/flink.sh start"
  hostport_open "$POOL" || die "Python worker pool not listening at $POOL: scripts/flink.sh start"
fi

watch_info() {  # <jid or empty>
  echo "job:        $JOB_NAME ($MODE)"
  if [[ $MODE == cluster ]]; then
    echo "Flink UI:   $UI_URL/#/job/running/${1:-}"
    [[ -n "${1:-}" ]] && echo "REST:       curl -s $UI_URL/jobs/$1/checkpoints | head -c 600"
    [[ -n "${1:-}" ]] && echo "cancel:     curl -X PATCH '$UI_URL/jobs/$1?mode=cancel'"
    [[ -n "${1:-}" ]] && echo "savepoint:  curl -X POST -H 'Content-Type: application/json' -d '{\"targetDirectory\":\"file://$RUN_DIR/flink/savepoints\",\"drain\":false}' $UI_URL/jobs/$1/stop"
  else
    echo "Flink UI:   none for [local] (embedded Flink); progress in the submit log"
  fi
  echo "checkpoints: $CKPT_DIR"
  if [[ "$sinks" == *" --sink=cassandra "* && -n "$(extra_value cassandra_username)" ]]; then
    echo "rows:       $KEYSPACE.abandon_metrics on $CASS_HOST:$CASS_PORT (log in as the job does: docs/secured_clusters.md)"
  elif [[ "$sinks" == *" --sink=cassandra "* ]]; then
    echo "rows:       $PY -c \"from cassandra.cluster import Cluster; [print(r) for r in Cluster(['$CASS_HOST'], port=$CASS_PORT).connect().execute('SELECT queue_id, window_start, total_calls, abandoned_calls, abandon_rate, pane_index, writetime(total_calls) FROM $KEYSPACE.abandon_metrics LIMIT 20')]\""
    echo "            (cqlsh: SELECT queue_id, window_start, total_calls, abandon_rate, pane_index FROM $KEYSPACE.abandon_metrics LIMIT 20;)"
  fi
  if [[ "$sinks" == *" --sink=kafka "* ]]; then
    echo "topic:      cc-abandon-metrics (JSON rows keyed [\"queue_id\",window_start])"
  fi
}

job_id() {  # jid of the newest job named $JOB_NAME and its state, from Flink REST
  curl -fsS --max-time 3 "$UI_URL/jobs/overview" 2>/dev/null | "$PY" -c '
import json, sys
jobs = [j for j in json.load(sys.stdin)["jobs"] if j["name"] == sys.argv[1]]
jobs.sort(key=lambda j: j["start-time"])
print(jobs[-1]["jid"], jobs[-1]["state"]) if jobs else None' "$JOB_NAME"
}

# The workers of the pool run plain `python`: the pipeline's interpreter first on PATH.
export PATH="$(dirname "$PY"):$PATH"
cd "$REPO_ROOT"
# secret-looking values masked (lib.sh redact_argv); the job itself refuses such flags
log "submit: $PY -m $PIPELINE_MODULE $(redact_argv "${ARGS[@]}")"
if ((DETACH == 0)); then
  watch_info ""
  exec "$PY" -m "$PIPELINE_MODULE" "${ARGS[@]}"
fi

SUBMIT_LOG=$LOG_DIR/submit-$JOB_NAME.log
SUBMIT_PID=$PID_DIR/submit-$JOB_NAME.pid
setsid nohup "$PY" -m "$PIPELINE_MODULE" "${ARGS[@]}" </dev/null >>"$SUBMIT_LOG" 2>&1 &
pid=$!
echo "$pid" >"$SUBMIT_PID"
log "submit: pid $pid, log $SUBMIT_LOG"
deadline=$((SECONDS + ${SUBMIT_TIMEOUT:-300}))
jid=""
while :; do
  kill -0 "$pid" 2>/dev/null || { tail -n 40 "$SUBMIT_LOG" >&2; die "submit: the job process exited (log $SUBMIT_LOG)"; }
  if [[ $MODE == cluster ]]; then
    read -r jid state < <(job_id || true) || true
    [[ "${state:-}" == RUNNING ]] && break
  elif grep -q "RUNNING" "$SUBMIT_LOG" 2>/dev/null; then
    break
  fi
  ((SECONDS < deadline)) || die "submit: job not RUNNING after ${SUBMIT_TIMEOUT:-300}s (log $SUBMIT_LOG; process $pid left running)"
  sleep 2
done
log "submit: job RUNNING${jid:+ (jid $jid)}; stop the client process with: kill $pid"
watch_info "$jid"
echo "client:     pid $pid, log $SUBMIT_LOG"
