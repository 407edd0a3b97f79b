#!/usr/bin/env bash
# Fetch what the portable FlinkRunner needs; idempotent, cached (~/.m2, pip cache, $RUN_DIR).
#   1. the Beam Flink job-server jar -> $RUN_DIR/jars/flink-job-server/job-server.jar (symlink)
#   2. the Flink distribution from PyPI (apache-flink + apache-flink-libraries, no deps)
#      -> $RUN_DIR/flink-dist/<version>/pyflink  (= FLINK_HOME: bin/ conf/ lib/ opt/ plugins/)
# and records the pair in $RUN_DIR/jars/flink-job-server/flink.env (read by flink.sh and tests).
#
# Job-server source, in order (FLINK_JOB_SERVER=auto|published|built, default auto):
#   published  org.apache.beam:beam-runners-flink-1.20-job-server:<BEAM_VERSION> from Maven Central
#              (Flink 1.20 cluster)
#   built      scripts/stack/flink_pom.xml: org.apache.beam:beam-runners-flink-1.19:2.62.0 + deps, shaded
#              (Flink 1.19 cluster). Used because Central here serves no Beam Flink job-server jar
#              and no complete newer Flink runner (see the pom's header).
# Env: BEAM_VERSION (2.77.0), FLINK_MINOR_PUBLISHED (1.20), FLINK_DIST_1_20 (1.20.5),
#      FLINK_DIST_1_19 (1.19.3), FORCE=1 to redo everything, MVN_ARGS extra maven args.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BEAM_VERSION=${BEAM_VERSION:-2.77.0}
FLINK_MINOR_PUBLISHED=${FLINK_MINOR_PUBLISHED:-1.20}
FLINK_DIST_1_20=${FLINK_DIST_1_20:-1.20.5}
FLINK_DIST_1_19=${FLINK_DIST_1_19:-1.19.3}
MODE=${FLINK_JOB_SERVER:-auto}
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

JS_DIR=$JARS_DIR/flink-job-server
DIST_ROOT=$RUN_DIR/flink-dist
ENV_FILE=$JS_DIR/flink.env
mkdir -p "$JS_DIR" "$DIST_ROOT"

command -v mvn >/dev/null 2>&1 || die "mvn (Maven 3.x) not found on PATH"
PY=$(python_bin)
[[ -n "$PY" ]] || die "no python found for pip"

size_of() { du -shL "$1" 2>/dev/null | cut -f1; }
mvn_q() {  # maven, quiet, ANSI-stripped, output to stderr
  # shellcheck disable=SC2086
  mvn -q -B -Dstyle.color=never ${MVN_ARGS:-} "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
  return "${PIPESTATUS[0]}"
}

# --- 1. job-server jar -------------------------------------------------------------------
published_jar() {  # sets JAR FLINK_DIST SOURCE on success
  local art="beam-runners-flink-${FLINK_MINOR_PUBLISHED}-job-server"
  local f="$JS_DIR/$art-$BEAM_VERSION.jar"
  local missing="$JS_DIR/.missing-$art-$BEAM_VERSION"
  if [[ -z "${FORCE:-}" && -s "$f" ]]; then :
  elif [[ -z "${FORCE:-}" && -n "$(find "$missing" -mmin -1440 2>/dev/null)" ]]; then
    log "job-server: $art:$BEAM_VERSION was not on Maven Central in the last 24 h (FORCE=1 retries)"
    return 1
  else
    log "job-server: trying org.apache.beam:$art:$BEAM_VERSION from Maven Central"
    if ! mvn_q "$DEP_PLUGIN:copy" -Dartifact="org.apache.beam:$art:$BEAM_VERSION" \
      -DoutputDirectory="$JS_DIR" -Dmdep.overWriteReleases=true; then
      date -Is >"$missing"
      return 1
    fi
    rm -f "$missing"
  fi
  JAR=$f FLINK_DIST=$FLINK_DIST_1_20 SOURCE="published org.apache.beam:$art:$BEAM_VERSION"
}

built_jar() {
  local pom="$STACK_DIR/flink_pom.xml" build="$RUN_DIR/build/flink-job-server" name sum
  name=$(sed -n 's:^  <artifactId>\(.*\)</artifactId>:\1:p' "$pom" | head -1)-$(sed -n 's:^  <version>\(.*\)</version>:\1:p' "$pom" | head -1)
  sum=$(sha256sum "$pom" | cut -d' ' -f1)
  local f="$JS_DIR/$name.jar"
  if [[ -z "${FORCE:-}" && -s "$f" && "$(cat "$f.pom-sha256" 2>/dev/null)" == "$sum" ]]; then :
  else
    log "job-server: building $name.jar from $pom (Maven Central artifacts, shaded)"
    mvn_q -f "$pom" package -Dbuild.dir="$build" || die "job-server: maven build failed"
    cp -f "$build/$name.jar" "$f.tmp" && mv -f "$f.tmp" "$f"
    echo "$sum" >"$f.pom-sha256"
    rm -rf "$build"
  fi
  JAR=$f FLINK_DIST=$FLINK_DIST_1_19 SOURCE="built from scripts/stack/flink_pom.xml ($name)"
}

t0=$(now_ms)
case "$MODE" in
  published) published_jar || die "job-server: org.apache.beam:beam-runners-flink-${FLINK_MINOR_PUBLISHED}-job-server:$BEAM_VERSION not on Maven Central" ;;
  built) built_jar ;;
  auto) published_jar || { log "job-server: published jar not available, building it instead"; built_jar; } ;;
  *) die "FLINK_JOB_SERVER must be auto, published or built (got '$MODE')" ;;
esac
ln -sfn "$(basename "$JAR")" "$JS_DIR/job-server.jar"
t_jar=$(elapsed_s "$t0")
log "job-server: $JAR ($(size_of "$JAR")) [$SOURCE] in ${t_jar}s"

# --- 2. Flink distribution from PyPI -------------------------------------------------------
t1=$(now_ms)
DIST=$DIST_ROOT/$FLINK_DIST
FLINK_HOME=$DIST/pyflink
if [[ -z "${FORCE:-}" && -f "$DIST/.complete" && -x "$FLINK_HOME/bin/jobmanager.sh" ]]; then :
else
  log "flink-dist: pip install --no-deps --target $DIST apache-flink==$FLINK_DIST apache-flink-libraries==$FLINK_DIST"
  rm -rf "$DIST.tmp"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-compile --target "$DIST.tmp" \
    "apache-flink==$FLINK_DIST" "apache-flink-libraries==$FLINK_DIST" >&2 \
    || { rm -rf "$DIST.tmp"; die "flink-dist: pip install failed"; }
  [[ -f "$DIST.tmp/pyflink/bin/jobmanager.sh" ]] || die "flink-dist: no pyflink/bin/jobmanager.sh in the install"
  ls "$DIST.tmp"/pyflink/lib/flink-dist*.jar >/dev/null 2>&1 || die "flink-dist: no pyflink/lib/flink-dist*.jar in the install"
  chmod +x "$DIST.tmp"/pyflink/bin/*
  rm -rf "$DIST"; mv "$DIST.tmp" "$DIST"
  date -Is >"$DIST/.complete"
fi
t_dist=$(elapsed_s "$t1")
log "flink-dist: $FLINK_HOME ($(size_of "$DIST")) in ${t_dist}s"

cat >"$ENV_FILE.tmp" <<EOF
# written by scripts/stack/fetch_flink.sh on $(date -Is)
FLINK_JOB_SERVER_JAR=$JS_DIR/job-server.jar
FLINK_JOB_SERVER_SOURCE="$SOURCE"
FLINK_VERSION=$FLINK_DIST
FLINK_HOME=$FLINK_HOME
EOF
mv -f "$ENV_FILE.tmp" "$ENV_FILE"
log "fetch_flink: done in $(elapsed_s "$t0")s (jar $(size_of "$JAR"), flink-dist $(size_of "$DIST")); env in $ENV_FILE"
