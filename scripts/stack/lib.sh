# shellcheck shell=bash
# Shared helpers for the local-stack scripts (kafka.sh, cassandra.sh, fetch_jars.sh, stack.sh).
# Source it; do not run it. Everything lives under RUN_DIR (default <repo>/.run):
#   $RUN_DIR/jars/<name>/   jars fetched from Maven Central
#   $RUN_DIR/logs/<svc>.log service logs
#   $RUN_DIR/pids/<svc>.pid pid files
#   $RUN_DIR/<svc>/         service config + data
#   $RUN_DIR/secure/        the secured Kafka/Cassandra pair: CA, certificates, generated
#                           secrets (mode 600) and their config + data (scripts/stack/secure_pki.sh)

# This file lives in scripts/stack/ (service internals); user entry points are in scripts/.
STACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPTS_DIR=$(cd "$STACK_DIR/.." && pwd)
REPO_ROOT=$(cd "$SCRIPTS_DIR/.." && pwd)
RUN_DIR=${RUN_DIR:-$REPO_ROOT/.run}
JARS_DIR=$RUN_DIR/jars
LOG_DIR=$RUN_DIR/logs
PID_DIR=$RUN_DIR/pids
SECURE_DIR=$RUN_DIR/secure
# The secured pair (scripts/stack.sh up --secure) beside the plain stack, loopback only.
SECURE_KAFKA_PORT=${SECURE_KAFKA_PORT:-9094}                        # SASL_SSL, SCRAM-SHA-512
SECURE_KAFKA_CONTROLLER_PORT=${SECURE_KAFKA_CONTROLLER_PORT:-9095}  # SSL, client certificate
SECURE_KAFKA_BROKER_PORT=${SECURE_KAFKA_BROKER_PORT:-9096}          # SSL, client certificate
SECURE_CASSANDRA_PORT=${SECURE_CASSANDRA_PORT:-9142}                # TLS + password (+ client cert)
SECURE_CASSANDRA_STORAGE_PORT=${SECURE_CASSANDRA_STORAGE_PORT:-7100}
SECURE_CASSANDRA_JMX_PORT=${SECURE_CASSANDRA_JMX_PORT-7299}
# The node's certificate names only this DNS name (clients override the host name to check).
SECURE_CASSANDRA_TLS_NAME=${SECURE_CASSANDRA_TLS_NAME:-cassandra.cc.test}
mkdir -p "$JARS_DIR" "$LOG_DIR" "$PID_DIR"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now_ms() { date +%s%3N; }
elapsed_s() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }

java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then command -v java
  else die "java not found: set JAVA_HOME or put java (17+) on PATH"; fi
}

# Python used for client-side checks: $PYTHON, else the repo venv, else python3.
python_bin() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"
  elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then echo "$REPO_ROOT/.venv/bin/python"
  else command -v python3 || true; fi
}

# Jar set <name> is described by scripts/stack/<name>-pom.xml; its folder is up to date
# when the .complete marker holds that pom's checksum.
pom_of() { echo "$STACK_DIR/$1-pom.xml"; }
jars_fresh() {
  [[ -f "$JARS_DIR/$1/.complete" ]] &&
    [[ "$(<"$JARS_DIR/$1/.complete")" == "$(sha256sum "$(pom_of "$1")" | cut -d' ' -f1)" ]]
}

# Classpath of a fetched jar folder; fetches it first if missing or stale.
jar_classpath() {
  jars_fresh "$1" || "$STACK_DIR/fetch_jars.sh" "$1" >&2
  echo "$JARS_DIR/$1/*"
}

# --- processes -------------------------------------------------------------
# Every JVM we start carries -Dccstack.svc=<svc>, so a pid is only trusted when
# its command line still has that marker (guards against pid reuse).
svc_marker() { echo "-Dccstack.svc=$1"; }
pid_file() { echo "$PID_DIR/$1.pid"; }

svc_pid() {  # prints the pid and succeeds only if the service process is alive
  local f pid
  f=$(pid_file "$1")
  [[ -f "$f" ]] || return 1
  pid=$(<"$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  # The whole marker: flink-taskmanager must not match flink-taskmanager-2.
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE -- "$(svc_marker "$1")( |$)" || return 1
  echo "$pid"
}

# start_daemon <svc> <command...>: detached, output appended to the service log.
start_daemon() {
  local svc=$1; shift
  local logf="$LOG_DIR/$svc.log"
  printf '\n===== %s starting %s =====\n' "$(date -Is)" "$svc" >>"$logf"
  (
    # A daemon keeps no descriptor of its caller: an inherited lock (flock) or
    # pipe (a test's captured output) would live on as long as the service.
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      ((fd > 2)) && eval "exec $fd>&-" 2>/dev/null
    done
    exec setsid nohup "$@" </dev/null >>"$logf" 2>&1
  ) &
  echo $! >"$(pid_file "$svc")"
}

# stop_daemon <svc> [timeout_s]: SIGTERM, wait, then SIGKILL.
stop_daemon() {
  local svc=$1 timeout=${2:-60} pid i
  if ! pid=$(svc_pid "$svc"); then
    log "$svc: not running"; rm -f "$(pid_file "$svc")"; return 0
  fi
  log "$svc: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$svc: still alive after ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$(pid_file "$svc")"
  log "$svc: stopped"
}

rss_mib() { ps -o rss= -p "$1" 2>/dev/null | awk '{ printf "%d", $1 / 1024 }'; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_until <svc> <timeout_s> <command...>: retries the command every second; fails early
# if the service process died (and shows the log tail), stops it if it never got ready.
wait_until() {
  local svc=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  local pid
  pid=$(<"$(pid_file "$svc")")
  until "$@" >/dev/null 2>&1; do
    # The pid start_daemon just wrote, not svc_pid: until its subshell has closed its
    # descriptors and exec'd, the process does not carry the service marker yet, and a slow
    # exec read as "exited during start-up".
    if [[ ! "$(ps -o stat= -p "$pid" 2>/dev/null)" =~ ^[^Z] ]]; then  # gone, or a zombie
      tail -n 40 "$LOG_DIR/$svc.log" >&2 || true
      die "$svc: process exited during start-up (log: $LOG_DIR/$svc.log)"
    fi
    if ((SECONDS >= deadline)); then
      stop_daemon "$svc" 30
      die "$svc: not ready after ${timeout}s, stopped it (log: $LOG_DIR/$svc.log)"
    fi
    sleep 1
  done
}

ensure_ports_free() {  # <svc> <host> <port>...
  local svc=$1 host=$2 p; shift 2
  for p in "$@"; do
    port_open "$host" "$p" && die "$svc: $host:$p is already in use by another process"
  done
  return 0
}

print_status() {  # <svc> <endpoint> : exit 0 running, 3 stopped (LSB style)
  local pid
  if pid=$(svc_pid "$1"); then
    echo "$1: running (pid $pid, rss $(rss_mib "$pid") MiB) on $2"
  else
    echo "$1: stopped"; return 3
  fi
}

show_logs() {  # <svc> [-f]
  local f="$LOG_DIR/$1.log"
  [[ -f "$f" ]] || die "$1: no log yet at $f"
  if [[ "${2:-}" == "-f" ]]; then tail -n 100 -F "$f"; else tail -n "${LOG_LINES:-200}" "$f"; fi
}

# --- secrets in command lines -------------------------------------------------
# Flag or setting names that carry a secret. Values of flags named *_env are
# variable names, not secrets, and are shown as they are.
SECRET_NAME_RE='password|passwd|secret|token|jaas|credential'

# redact_argv <args...>: the args on one line, each secret-looking value masked:
#   --cassandra_password=x -> --cassandra_password=***, --db_token x -> --db_token ***,
#   --kafka_config=sasl.jaas.config=... -> --kafka_config=sasl.jaas.config=***
redact_argv() {
  local out=() a name lower prefix mask_next=0
  for a in "$@"; do
    if ((mask_next)); then out+=('***'); mask_next=0; continue; fi
    lower=${a,,}
    name=${lower%%=*}
    if [[ "$a" == --* && "$name" != *_env && "$name" =~ $SECRET_NAME_RE ]]; then
      if [[ "$a" == *=* ]]; then out+=("${a%%=*}=***"); else out+=("$a"); mask_next=1; fi
    elif [[ "$name" != *_env && "$lower" =~ ($SECRET_NAME_RE)[^=]*= ]]; then
      prefix=${lower%%"${BASH_REMATCH[0]}"*}
      out+=("${a:0:$((${#prefix} + ${#BASH_REMATCH[0]}))}***")
    else
      out+=("$a")
    fi
  done
  echo "${out[*]}"
}

usage_die() { echo "usage: $(basename "$0") {$1}" >&2; exit 2; }
