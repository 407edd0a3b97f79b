#!/usr/bin/env bash
# The live board in one command: Kafka, the main job on Flink reading it, a paced generator of a
# compressed working day (testing/datagen/live.py) and the wallboard on the job's SQLite store.
#   scripts/demo.sh [--cluster] [--rate N] [--queues N] [--day-minutes M] [--port P]
#                   [--duration S] [-- job options...]
#     --cluster      the job on the local Flink cluster (scripts/flink.sh, started if it is not
#                    running; web UI http://127.0.0.1:8081); default embedded Flink
#                    (--flink_master=[local], LOOPBACK workers inside the launcher)
#     --rate N       new contacts per second at the day's peak (20); CXone interactions at half
#     --queues N     queues (8); --day-minutes M: a whole day passes in M minutes (20)
#     --port P       the wallboard's port (8050); --duration S: stop by itself after S seconds
#     after --:      options for the job (scripts/submit_flink.sh's, e.g. --early_firing_seconds=5)
# Prints the wallboard's address once the job runs; Ctrl-C (SIGTERM, the terminal closing) stops
# everything the demo started: generator, job, wallboard, and the services it started (Kafka, the
# KafkaIO expansion service, the Flink cluster); services that were already running keep running.
# The job is submitted by scripts/submit_flink.sh (its production defaults) with --sink=sqlite
# into a fresh store that output/demo.db (SQLITE_PATH) then points at, as scripts/run_local.sh's;
# it reads cc-call-logs and cxone-data-actions from their end under a consumer group of its own
# (auto.offset.reset=latest), so what earlier runs left on the topics is not replayed.
# Logs: $RUN_DIR/logs/demo-{live,wallboard}.log and submit_flink.sh's submit-<job>.log.
set -euo pipefail
# shellcheck source=scripts/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/stack/lib.sh"

MODE=local RATE=20 QUEUES=8 DAY_MINUTES=20 PORT=8050 DURATION=0
JOB_ARGS=()
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case "$1" in
    --cluster) MODE=cluster ;;
    --rate) RATE=${2:?}; shift ;;
    --queues) QUEUES=${2:?}; shift ;;
    --day-minutes) DAY_MINUTES=${2:?}; shift ;;
    --port) PORT=${2:?}; shift ;;
    --duration) DURATION=${2:?}; shift ;;
    --) shift; JOB_ARGS=("$@"); break ;;
    -h|--help) usage ;;
    *) echo "demo: unknown option $1" >&2; usage ;;
  esac
  shift
done
[[ "$DURATION" =~ ^[0-9]+$ ]] || die "--duration takes whole seconds"

cd "$REPO_ROOT"
"$SCRIPTS_DIR/setup.sh"
PY=$REPO_ROOT/.venv/bin/python
KAFKA=${KAFKA_BOOTSTRAP:-127.0.0.1:9092}
UI_URL="http://127.0.0.1:${FLINK_REST_PORT:-8081}"
# Absolute: the cluster's workers write it from the worker pool's directory.
DB=$(realpath -m -s "${SQLITE_PATH:-output/demo.db}")  # -s: the link itself
JOB_NAME=cc-demo-$(date +%Y%m%d-%H%M%S)
BOARD_LOG=$LOG_DIR/demo-wallboard.log
LIVE_LOG=$LOG_DIR/demo-live.log
port_open 127.0.0.1 "$PORT" && die "port $PORT is in use (--port)"

STARTED=()  # services this run started, stopped again in reverse order
GEN_PID="" BOARD_PID="" SUBMIT_PID="" JID=""
cleaned=0
cleanup() {
  ((cleaned)) && return 0
  cleaned=1
  trap '' INT TERM HUP  # a second Ctrl-C, or the terminal closing, must not cut it short
  log "demo: stopping what it started"
  # The generator first: its last records flushed while the job still reads.
  stop_pid "$GEN_PID" generator 15
  if [[ -n "$JID" ]]; then
    curl -fsS -X PATCH --max-time 10 "$UI_URL/jobs/$JID?mode=cancel" >/dev/null 2>&1 || true
  fi
  # The launcher (embedded Flink: also the job server and the workers) leads its process group.
  stop_group "$SUBMIT_PID" job 30
  stop_pid "$BOARD_PID" wallboard 15
  local i svc
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    svc=${STARTED[$i]}
    case "$svc" in
      flink) "$SCRIPTS_DIR/flink.sh" stop || true ;;
      *) "$STACK_DIR/$svc.sh" stop || true ;;
    esac
  done
  log "demo: stopped"
}
stop_pid() {  # <pid> <what> <timeout_s>: SIGTERM, then SIGKILL
  local pid=$1 i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < $3 * 5; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "demo: $2 still running after $3 s, killing it"; kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
stop_group() {  # <leader pid> <what> <timeout_s>: the whole process group
  local pid=$1 i
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || true
  for ((i = 0; i < $3 * 5; i++)); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 -- "-$pid" 2>/dev/null; then
    log "demo: $2 still running after $3 s, killing it"; kill -KILL -- "-$pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP  # the terminal closed: stop everything too

# --- services: only those not running yet, and remembered to be stopped ---------------------
ensure() {  # <name> <status command...> -- <start command...>
  local name=$1; shift
  local status=() start=()
  while [[ "$1" != -- ]]; do status+=("$1"); shift; done
  shift; start=("$@")
  if "${status[@]}" >/dev/null 2>&1; then
    log "demo: $name already running, left as it is"
  else
    STARTED+=("$name")
    "${start[@]}" || die "demo: $name did not start"
  fi
}
ensure kafka "$STACK_DIR/kafka.sh" status -- "$STACK_DIR/kafka.sh" start
ensure expansion_service "$STACK_DIR/expansion_service.sh" status -- \
  "$STACK_DIR/expansion_service.sh" start
if [[ $MODE == cluster ]]; then
  ensure flink "$SCRIPTS_DIR/flink.sh" status -- "$SCRIPTS_DIR/flink.sh" start
fi

# --- the job ---------------------------------------------------------------------------------
# Flink ends a bundle after 1 s by default, and each Python stage holds its output until then:
# 200 ms bundles bring an event to its queue_status row in under 2 s (docs/benchmarks.md, "Live
# floor latency"). An option of the same name after -- replaces it.
BUNDLE_TIME=(--max_bundle_time_mills=200)
for a in ${JOB_ARGS[@]+"${JOB_ARGS[@]}"}; do
  [[ "$a" == --max_bundle_time_mills=* ]] && BUNDLE_TIME=()
done
RUN_DB=$("$PY" -m transforms.sqlite_sink new "$DB")
log "demo: submitting $JOB_NAME ($MODE) into $RUN_DB"
"$SCRIPTS_DIR/submit_flink.sh" "$MODE" --detach "--job_name=$JOB_NAME" \
  --sink=sqlite "--sqlite_path=$RUN_DB" --kafka_data_actions_topic=cxone-data-actions \
  "--kafka_consumer_group=$JOB_NAME" --kafka_config=auto.offset.reset=latest \
  ${BUNDLE_TIME[@]+"${BUNDLE_TIME[@]}"} ${JOB_ARGS[@]+"${JOB_ARGS[@]}"} >&2
SUBMIT_PID=$(<"$PID_DIR/submit-$JOB_NAME.pid")
if [[ $MODE == cluster ]]; then
  JID=$(curl -fsS --max-time 5 "$UI_URL/jobs/overview" | "$PY" -c '
import json, sys
jobs = [j for j in json.load(sys.stdin)["jobs"] if j["name"] == sys.argv[1]]
print(max(jobs, key=lambda j: j["start-time"])["jid"] if jobs else "")' "$JOB_NAME")
fi
# The store exists once the job is built (the sink creates its tables at launch).
"$PY" -m transforms.sqlite_sink publish "$DB" "$RUN_DB" >/dev/null
# The readers start at the topics' end: give them a moment to find it before traffic starts.
sleep "${DEMO_READER_WAIT:-5}"

# --- traffic and the wallboard -----------------------------------------------------------------
"$PY" -m testing.datagen.live --bootstrap "$KAFKA" --rate "$RATE" --queues "$QUEUES" \
  --day-minutes "$DAY_MINUTES" >"$LIVE_LOG" 2>&1 &
GEN_PID=$!
"$PY" -m pipelines.wallboard "--sqlite_path=$DB" "--port=$PORT" >"$BOARD_LOG" 2>&1 &
BOARD_PID=$!
for _ in {1..60}; do
  port_open 127.0.0.1 "$PORT" && break
  kill -0 "$BOARD_PID" 2>/dev/null || { tail -n 20 "$BOARD_LOG" >&2; die "demo: the wallboard exited"; }
  sleep 0.5
done
port_open 127.0.0.1 "$PORT" || die "demo: the wallboard does not listen on $PORT ($BOARD_LOG)"

cat <<EOF

  Wallboard:  http://127.0.0.1:$PORT/
  Job:        $JOB_NAME on $([[ $MODE == cluster ]] && echo "the Flink cluster ($UI_URL)" || echo "embedded Flink")
  Traffic:    peak $RATE contacts/s over $QUEUES queues, a day in $DAY_MINUTES min (tail -f $LIVE_LOG)
  Store:      sqlite3 $DB 'select queue_id, waiting, longest_wait_seconds from queue_status'
  Ctrl-C stops everything the demo started.

EOF

# --- until Ctrl-C, --duration, or a piece stopping -------------------------------------------
deadline=$((DURATION > 0 ? SECONDS + DURATION : 0))
last_status=$SECONDS
while :; do
  kill -0 "$GEN_PID" 2>/dev/null || { tail -n 20 "$LIVE_LOG" >&2; die "demo: the generator exited"; }
  kill -0 "$BOARD_PID" 2>/dev/null || { tail -n 20 "$BOARD_LOG" >&2; die "demo: the wallboard exited"; }
  kill -0 "$SUBMIT_PID" 2>/dev/null ||
    die "demo: the job's launcher exited (log $LOG_DIR/submit-$JOB_NAME.log)"
  if ((SECONDS - last_status >= 30)); then  # the generator's latest status line
    tail -n 1 "$LIVE_LOG" >&2
    last_status=$SECONDS
  fi
  ((deadline == 0 || SECONDS < deadline)) || { log "demo: --duration reached"; exit 0; }
  sleep 2
done
