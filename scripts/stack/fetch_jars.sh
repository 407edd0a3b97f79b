#!/usr/bin/env bash
# Fetch the jars the local stack needs from Maven Central (cache: ~/.m2) into $RUN_DIR/jars/<name>/.
#   scripts/stack/fetch_jars.sh                 # all: kafka cassandra beam-expansion
#   scripts/stack/fetch_jars.sh kafka           # just one
#   scripts/stack/fetch_jars.sh flink-sql       # the SQL gateway + Kafka SQL connector of the
#                                               # native Flink SQL peer (scripts/bench/flink_sql.py)
#   FORCE=1 scripts/stack/fetch_jars.sh         # re-copy even if up to date
#   MVN_ARGS="-Dmaven.repo.local=/tmp/m2" # extra maven arguments
# Each <name> maps to scripts/stack/<name>-pom.xml (see jars_fresh in lib.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
ALL=(kafka cassandra beam-expansion)

command -v mvn >/dev/null 2>&1 || die "mvn (Maven 3.x) not found on PATH"

# The expansion service's Beam version must be the Flink job server's (scripts/stack/flink_pom.xml):
# the KafkaIO transforms it expands run, Java-serialized, inside the job-server JVM.
check_beam_versions() {
  local es js
  es=$(sed -n 's:.*<beam.version>\(.*\)</beam.version>.*:\1:p' "$(pom_of beam-expansion)" | head -1)
  js=$(sed -n 's:.*<beam.version>\(.*\)</beam.version>.*:\1:p' "$STACK_DIR/flink_pom.xml" | head -1)
  [[ -z "$js" || "$es" == "$js" ]] ||
    die "beam-expansion: Beam $es in $(pom_of beam-expansion) but the Flink job server is Beam $js (scripts/stack/flink_pom.xml): make them equal"
}

fetch_one() {
  local name=$1 pom dest="$JARS_DIR/$1" t0 tmp
  pom=$(pom_of "$name")
  [[ -f "$pom" ]] || die "unknown jar set '$name' (no $pom)"
  [[ "$name" != beam-expansion ]] || check_beam_versions
  if [[ -z "${FORCE:-}" ]] && jars_fresh "$name"; then
    log "$name: up to date ($(du -sh "$dest" | cut -f1), $(find "$dest" -name '*.jar' | wc -l) jars)"
    return 0
  fi
  t0=$(now_ms)
  tmp="$dest.tmp.$$"
  rm -rf "$tmp"
  log "$name: resolving $pom"
  # shellcheck disable=SC2086
  # (Debian's maven 3.8.7 prints stray ANSI resets even with style.color=never: strip them)
  mvn -q -B -Dstyle.color=never -f "$pom" ${MVN_ARGS:-} "$DEP_PLUGIN:copy-dependencies" \
    -DoutputDirectory="$tmp" -DincludeScope=runtime -Dmdep.copyPom=false 2>&1 \
    | sed 's/\x1b\[[0-9;]*m//g' >&2 \
    || { rm -rf "$tmp"; die "$name: maven could not fetch the jars"; }
  sha256sum "$pom" | cut -d' ' -f1 >"$tmp/.complete"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  log "$name: $(du -sh "$dest" | cut -f1) in $(find "$dest" -name '*.jar' | wc -l) jars, $(elapsed_s "$t0")s"
}

start=$(now_ms)
(($# > 0)) || set -- "${ALL[@]}"
for n in "$@"; do fetch_one "$n"; done
log "fetch_jars: done in $(elapsed_s "$start")s ($(du -sh "$JARS_DIR" | cut -f1) under $JARS_DIR)"
