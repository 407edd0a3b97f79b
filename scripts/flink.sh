#!/usr/bin/env bash
# Local standalone Flink cluster (loopback only) + Beam Python worker pool, for the portable
# FlinkRunner with --flink_master=127.0.0.1:8081 --environment_type=EXTERNAL
# --environment_config=127.0.0.1:50000.
#   scripts/flink.sh start [--taskmanagers N]  # fetch if needed, write $RUN_DIR/flink/conf,
#                              # start JM, TaskManagers 1..N (default 1) and the worker pool,
#                              # whichever of them is not running (so it also brings a killed
#                              # TaskManager back); the pool serves every TaskManager
#   scripts/flink.sh stop-taskmanager K  # stop TaskManager K only (scale the cluster down)
#   scripts/flink.sh stop      # stop pool, TMs, JM (only the processes these scripts started)
#   scripts/flink.sh status    # processes + RSS, web UI URL, whether REST answers /overview
#   scripts/flink.sh logs [-f] # tails of the JM/TM/pool logs
#   scripts/flink.sh env       # prints FLINK_JOB_SERVER_JAR=... etc. (from fetch_flink.sh)
# Layout: Flink logs in $RUN_DIR/flink/log, the launch logs in $RUN_DIR/logs/<svc>.log, pids in
# $RUN_DIR/pids, checkpoints/savepoints in $RUN_DIR/flink/{checkpoints,savepoints}.
# Submit with: --runner=FlinkRunner --flink_master=127.0.0.1:8081 --flink_job_server_jar=<jar from
#   `flink.sh env`> --environment_type=EXTERNAL --environment_config=127.0.0.1:50000 --streaming
# Flink options pass through the job server by their snake_case names (the Java
# FlinkPipelineOptions), e.g. --checkpointing_interval=60000 --min_pause_between_checkpoints=5000
#   --checkpoint_timeout_millis=300000 --checkpointing_mode=EXACTLY_ONCE --state_backend=rocksdb
#   --state_backend_storage_path=file://... --parallelism=2 --savepoint_path=...
#   --number_of_execution_retries=N --execution_retry_delay=MS --finish_bundle_before_checkpointing
# Everything listens on 127.0.0.1 only: REST, RPC, the TaskManager's ports, and the Python worker
# pool (scripts/stack/worker_pool.py: Beam's own worker_pool_main binds every interface, no flag).
# Secrets of the jobs' clients reach the TaskManager and the worker pool (and through it every
# SDK worker) as environment variables, read from FLINK_ENV_FILE: KEY='value' lines, default
# $RUN_DIR/secure/secrets.env when it exists (scripts/stack/secure_pki.sh), e.g.
# KAFKA_SASL_JAAS_CONFIG for Kafka's ${env:...} placeholders and CASSANDRA_PASSWORD for the
# Cassandra sink. Never on a command line; `status` shows the variable names only. A file
# changed later takes effect on `restart`. FLINK_ENV_FILE= (empty) passes none.
# Prometheus: FLINK_PROMETHEUS_PORTS=9249-9259 enables Flink's Prometheus reporter (the
# distribution's plugins/metrics-prometheus jar, the cluster's Flink version): each JobManager and
# TaskManager serves /metrics on the first free port of the range, with Flink's own metrics
# (checkpoints, watermarks, back pressure) and the job's Beam counters. Off by default: Flink's
# reporter has no bind address and listens on every interface, unlike the rest of the cluster;
# scrape it on 127.0.0.1 and keep the ports closed to the network (docs/operations.md).
# Env: FLINK_REST_PORT (8081), FLINK_RPC_PORT (6123), WORKER_POOL_PORT (50000), FLINK_SLOTS (2),
#      FLINK_JM_MEMORY (1536m), FLINK_TM_MEMORY (3072m, per TaskManager: two fit beside Kafka,
#      Cassandra and the tests on a 24 GiB machine), FLINK_TASKMANAGERS (1),
#      BEAM_PYTHON (the pipeline's venv python), FLINK_ENV_FILE (see above),
#      WORKER_STATE_CACHE_MB (0, each SDK worker's state cache).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack/lib.sh"

HOST=127.0.0.1
REST_PORT=${FLINK_REST_PORT:-8081}
RPC_PORT=${FLINK_RPC_PORT:-6123}
POOL_PORT=${WORKER_POOL_PORT:-50000}
# Each SDK worker's cache of user state across bundles (scripts/stack/worker_pool.py). Off: it
# cost more than it saved (docs/benchmarks.md, "Figures").
WORKER_STATE_CACHE_MB=${WORKER_STATE_CACHE_MB:-0}
SLOTS=${FLINK_SLOTS:-2}
PROMETHEUS_PORTS=${FLINK_PROMETHEUS_PORTS:-}
JM_MEM=${FLINK_JM_MEMORY:-1536m}
TM_MEM=${FLINK_TM_MEMORY:-3072m}
FLINK_RUN=$RUN_DIR/flink
CONF_DIR=$FLINK_RUN/conf
ENV_FILE=$JARS_DIR/flink-job-server/flink.env
SVC_JM=flink-jobmanager SVC_TM=flink-taskmanager SVC_POOL=flink-worker-pool
UI_URL="http://$HOST:$REST_PORT"
if [[ -z "${FLINK_ENV_FILE+set}" && -f "$SECURE_DIR/secrets.env" ]]; then
  FLINK_ENV_FILE=$SECURE_DIR/secrets.env
fi
WORKER_ENV_NAMES=$FLINK_RUN/worker-env.names  # which variables the running workers got

load_env() {  # FLINK_HOME, FLINK_VERSION, FLINK_JOB_SERVER_JAR from fetch_flink.sh
  # shellcheck disable=SC1090
  if [[ ! -f "$ENV_FILE" ]] || ! (source "$ENV_FILE" && [[ -x "$FLINK_HOME/bin/jobmanager.sh" && -s "$FLINK_JOB_SERVER_JAR" ]]); then
    "$STACK_DIR/fetch_flink.sh" >&2
  fi
  # shellcheck disable=SC1090
  source "$ENV_FILE"
}

beam_python() {
  local py=${BEAM_PYTHON:-$REPO_ROOT/.venv/bin/python}
  [[ -x "$py" ]] || die "pipeline python not found at $py (set BEAM_PYTHON)"
  "$py" -c 'import apache_beam' 2>/dev/null || die "$py has no apache_beam"
  echo "$py"
}

# Like lib.sh's wait_until, but checks the launched pid itself: until the launch scripts have
# exec'd the JVM, its command line does not carry the service marker yet.
wait_up() {  # <svc> <timeout_s> <command...>
  local svc=$1 timeout=$2 pid; shift 2
  pid=$(cat "$(pid_file "$svc")" 2>/dev/null || true)
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$LOG_DIR/$svc.log" >&2 || true
      die "$svc: process exited during start-up (logs: $LOG_DIR/$svc.log, $FLINK_RUN/log)"
    fi
    ((SECONDS < deadline)) || die "$svc: not ready after ${timeout}s (logs: $LOG_DIR/$svc.log, $FLINK_RUN/log)"
    sleep 0.5
  done
}

rest_ok() { curl -fsS --max-time 2 "$UI_URL/overview" >/dev/null 2>&1; }
# TaskManager 1 keeps the historic service name; K >= 2 are flink-taskmanager-K.
tm_svc() { if (($1 == 1)); then echo $SVC_TM; else echo "$SVC_TM-$1"; fi; }
started_tms() {  # the indexes of the TaskManagers these scripts started (pid files)
  local f k
  for f in "$PID_DIR/$SVC_TM".pid "$PID_DIR/$SVC_TM"-*.pid; do
    [[ -f "$f" ]] || continue
    k=${f##*/$SVC_TM}; k=${k%.pid}; k=${k#-}; echo "${k:-1}"
  done
}
registered_tms() {
  curl -fsS --max-time 2 "$UI_URL/overview" 2>/dev/null |
    sed -n 's/.*"taskmanagers":\([0-9]*\).*/\1/p'
}
tm_registered() { (($(registered_tms || echo 0) >= ${1:-1})); }

write_conf() {
  mkdir -p "$CONF_DIR" "$FLINK_RUN"/{log,pid,checkpoints,savepoints,tmp,blob,web}
  local java_opts
  # keep the distribution's Java 17 --add-opens/--add-exports list
  java_opts=$(sed -n 's/^      all: //p' "$FLINK_HOME/conf/config.yaml" | head -1)
  cp -f "$FLINK_HOME"/conf/log4j*.properties "$FLINK_HOME"/conf/logback*.xml "$CONF_DIR/"
  echo "$HOST" >"$CONF_DIR/workers"
  echo "$HOST:$REST_PORT" >"$CONF_DIR/masters"
  cat >"$CONF_DIR/config.yaml" <<EOF
# Generated by scripts/flink.sh on $(date -Is) for Flink $FLINK_VERSION: do not edit, re-run start.
env.java.opts.all: "$java_opts"
env.java.opts.jobmanager: "$(svc_marker $SVC_JM)"
env.log.dir: $FLINK_RUN/log
env.pid.dir: $FLINK_RUN/pid
env.stdout-err.redirect-to-file: true

jobmanager.rpc.address: $HOST
jobmanager.rpc.port: $RPC_PORT
jobmanager.bind-host: $HOST
jobmanager.memory.process.size: $JM_MEM
jobmanager.memory.jvm-metaspace.size: 512m
jobmanager.execution.failover-strategy: region
taskmanager.host: $HOST
taskmanager.bind-host: $HOST
taskmanager.numberOfTaskSlots: $SLOTS
taskmanager.memory.process.size: $TM_MEM
# Every Beam job loads the job server's classes anew into its own class loader;
# after about ten jobs on one TaskManager 384m of metaspace ran out
# (OutOfMemoryError: Metaspace, the TaskManager shut down).
taskmanager.memory.jvm-metaspace.size: 1024m
parallelism.default: 1

rest.address: $HOST
rest.bind-address: $HOST
rest.port: $REST_PORT
web.tmpdir: $FLINK_RUN/web
web.upload.dir: $FLINK_RUN/web
io.tmp.dirs: $FLINK_RUN/tmp
blob.storage.directory: $FLINK_RUN/blob

state.backend.type: rocksdb
state.backend.incremental: true
state.checkpoints.dir: file://$FLINK_RUN/checkpoints
state.savepoints.dir: file://$FLINK_RUN/savepoints
state.checkpoints.num-retained: 3

# Transient failures (a TaskManager lost, Cassandra or Kafka away for a while)
# are ridden out with restarts 1 s, 2 s, 4 s ... apart, at most 1 min, jittered,
# never giving up; the delay is reset after 10 min without failure. A poison
# record cannot cause a restart loop: parsers and sinks turn it into a dead
# letter (docs/bad_input.md). A job's --number_of_execution_retries overrides
# this with Flink's fixed-delay strategy.
restart-strategy.type: exponential-delay
restart-strategy.exponential-delay.initial-backoff: 1 s
restart-strategy.exponential-delay.max-backoff: 1 min
restart-strategy.exponential-delay.backoff-multiplier: 2.0
restart-strategy.exponential-delay.jitter-factor: 0.1
restart-strategy.exponential-delay.reset-backoff-threshold: 10 min
EOF
  if [[ -n "$PROMETHEUS_PORTS" ]]; then
    [[ "$PROMETHEUS_PORTS" =~ ^[0-9]+(-[0-9]+)?$ ]] ||
      die "FLINK_PROMETHEUS_PORTS must be a port or a range like 9249-9259 (got '$PROMETHEUS_PORTS')"
    # Flink loads reporters from plugins/ of its distribution, the jar of its own version.
    [[ -f "$FLINK_HOME/plugins/metrics-prometheus/flink-metrics-prometheus-$FLINK_VERSION.jar" ]] ||
      die "no plugins/metrics-prometheus/flink-metrics-prometheus-$FLINK_VERSION.jar in $FLINK_HOME"
    cat >>"$CONF_DIR/config.yaml" <<EOF

# Prometheus reporter (FLINK_PROMETHEUS_PORTS): /metrics of each process on the first free port.
metrics.reporter.prom.factory.class: org.apache.flink.metrics.prometheus.PrometheusReporterFactory
metrics.reporter.prom.port: $PROMETHEUS_PORTS
EOF
  fi
}

# Exports FLINK_ENV_FILE's variables to what this script starts next; records their names.
load_worker_env() {
  [[ -n "${FLINK_ENV_FILE:-}" ]] || { : >"$WORKER_ENV_NAMES"; return 0; }
  [[ -r "$FLINK_ENV_FILE" ]] || die "FLINK_ENV_FILE=$FLINK_ENV_FILE is not readable"
  set -a
  # shellcheck disable=SC1090
  source "$FLINK_ENV_FILE"
  set +a
  grep -o '^[A-Za-z_][A-Za-z0-9_]*=' "$FLINK_ENV_FILE" | tr -d = | tr '\n' ' ' >"$WORKER_ENV_NAMES"
  echo "(from $FLINK_ENV_FILE)" >>"$WORKER_ENV_NAMES"
}

start() {
  local tms=${FLINK_TASKMANAGERS:-1}
  if [[ "${1:-}" == --taskmanagers ]]; then tms=${2:-}; fi
  [[ "$tms" =~ ^[1-9][0-9]?$ ]] || usage_die "start [--taskmanagers N (1-99)]"
  load_env
  local py t0 k all_tms=1
  py=$(beam_python)
  for ((k = 1; k <= tms; k++)); do svc_pid "$(tm_svc $k)" >/dev/null || all_tms=0; done
  if svc_pid $SVC_JM >/dev/null && ((all_tms)) && svc_pid $SVC_POOL >/dev/null && rest_ok; then
    log "flink: already running ($UI_URL, $tms TaskManager(s))"; return 0
  fi
  svc_pid $SVC_JM >/dev/null || ensure_ports_free $SVC_JM $HOST "$REST_PORT" "$RPC_PORT"
  svc_pid $SVC_POOL >/dev/null || ensure_ports_free $SVC_POOL $HOST "$POOL_PORT"
  t0=$(now_ms)
  write_conf
  export FLINK_CONF_DIR=$CONF_DIR
  # the JobManager needs none of the jobs' secrets: it starts before they are loaded

  if ! svc_pid $SVC_JM >/dev/null; then
    log "flink: starting JobManager (Flink $FLINK_VERSION, $FLINK_HOME)"
    start_daemon $SVC_JM "$FLINK_HOME/bin/jobmanager.sh" start-foreground
  fi
  local missing_worker=0
  for ((k = 1; k <= tms; k++)); do svc_pid "$(tm_svc $k)" >/dev/null || missing_worker=1; done
  svc_pid $SVC_POOL >/dev/null || missing_worker=1
  if ((missing_worker)); then load_worker_env; fi
  for ((k = 1; k <= tms; k++)); do
    svc_pid "$(tm_svc $k)" >/dev/null && continue
    log "flink: starting TaskManager $k ($SLOTS slots, $TM_MEM, env: $(cat "$WORKER_ENV_NAMES"))"
    # Its own marker (scripts/stack/lib.sh svc_pid) and log file name per TaskManager.
    JVM_ARGS="$(svc_marker "$(tm_svc $k)")" FLINK_IDENT_STRING="${USER:-$(id -un)}-tm$k" \
      start_daemon "$(tm_svc $k)" "$FLINK_HOME/bin/taskmanager.sh" start-foreground
  done
  if ! svc_pid $SVC_POOL >/dev/null; then
    # The pool starts workers as plain `python`: the pipeline's venv must be first on PATH.
    log "flink: starting Beam worker pool on $HOST:$POOL_PORT ($py)"
    PATH="$(dirname "$py"):$PATH" VIRTUAL_ENV="$(dirname "$(dirname "$py")")" PYTHONUNBUFFERED=1 \
      start_daemon $SVC_POOL python "$STACK_DIR/worker_pool.py" --host="$HOST" \
      --service_port="$POOL_PORT" --state_cache_mb="$WORKER_STATE_CACHE_MB" "$(svc_marker $SVC_POOL)"
  fi
  wait_up $SVC_JM 90 rest_ok
  for ((k = 1; k <= tms; k++)); do wait_up "$(tm_svc $k)" 90 tm_registered "$tms"; done
  wait_up $SVC_POOL 60 port_open $HOST "$POOL_PORT"
  log "flink: cluster up in $(elapsed_s "$t0")s: web UI $UI_URL, worker pool $HOST:$POOL_PORT"
  status || true
}

stop_pool() {  # the pool and the SDK workers it forked share its process group (setsid)
  local pid
  if pid=$(svc_pid $SVC_POOL); then
    log "$SVC_POOL: stopping pid $pid and the SDK workers it started (process group)"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in {1..50}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || true; fi
    rm -f "$(pid_file $SVC_POOL)"
    log "$SVC_POOL: stopped"
  else
    stop_daemon $SVC_POOL 20
  fi
}

stop() {
  local k
  stop_pool
  for k in $(started_tms); do stop_daemon "$(tm_svc "$k")" 60; done
  stop_daemon $SVC_JM 60
  rm -f "$FLINK_RUN"/pid/*.pid 2>/dev/null || true
}

status() {
  local rc=0 ov
  print_status $SVC_JM "$HOST:$RPC_PORT (rest $REST_PORT)" || rc=3
  local k
  print_status $SVC_TM "$HOST ($SLOTS slots)" || rc=3
  for k in $(started_tms); do
    ((k == 1)) || print_status "$(tm_svc "$k")" "$HOST ($SLOTS slots)" || true
  done
  print_status $SVC_POOL "$HOST:$POOL_PORT" || rc=3
  echo "worker env: $(cat "$WORKER_ENV_NAMES" 2>/dev/null || echo unknown)"
  echo "web UI: $UI_URL"
  echo "prometheus reporter: $(sed -n 's/^metrics.reporter.prom.port: /ports /p' "$CONF_DIR/config.yaml" 2>/dev/null | grep . || echo off)"
  if ov=$(curl -fsS --max-time 2 "$UI_URL/overview" 2>/dev/null); then
    echo "REST /overview: answers: $ov"
  else
    echo "REST /overview: no answer"; rc=3
  fi
  return $rc
}

logs() {
  local f
  for f in "$FLINK_RUN"/log/*standalonesession*.log "$FLINK_RUN"/log/*taskexecutor*.log "$LOG_DIR/$SVC_POOL.log"; do
    [[ -f "$f" ]] || continue
    echo "===== $f"
    tail -n "${LOG_LINES:-60}" "$f"
  done
  if [[ "${1:-}" == "-f" ]]; then
    tail -n 0 -F "$FLINK_RUN"/log/*.log "$LOG_DIR/$SVC_POOL.log"
  fi
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop-taskmanager)
    [[ "${2:-}" =~ ^[1-9][0-9]?$ ]] || usage_die "stop-taskmanager K"
    stop_daemon "$(tm_svc "$2")" 60 ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  logs) shift; logs "$@" ;;
  env) load_env; cat "$ENV_FILE" ;;
  *) usage_die "start|stop|restart|status|logs [-f]|env" ;;
esac
