#!/usr/bin/env bash
# Builds Prism, Beam's portable local runner, once, and prints its path: the
# end-to-end result tests run the main job on it besides the local runner
# (tests/support/prism.py), so every result is also checked on a Beam runner
# as users get it, not only on the patched one (pipelines/local_runner.py).
#   scripts/stack/install_prism.sh   -> $RUN_DIR/prism/v<beam>/prism
# The release is the installed apache-beam's (the SDK and its runner go
# together); `go install` from the Go module proxy into that folder (GOBIN),
# about 5 minutes the first time, seconds with Go's module and build caches.
# Beam would download the release binary itself on the first PrismRunner run,
# where the internet is reachable; the tests do not count on that.
# Env: FORCE=1 rebuilds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=$(python_bin)
[[ -n "$PY" ]] || die "no python found to read the installed apache-beam version"
# The distribution's metadata: importing apache_beam takes seconds.
version=$("$PY" -c 'from importlib.metadata import version; print(version("apache-beam"))')
dir=$RUN_DIR/prism/v$version
bin=$dir/prism
if [[ -z "${FORCE:-}" && -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi
command -v go >/dev/null 2>&1 || die "go not found: install Go (https://go.dev/doc/install)"
log "install_prism: building github.com/apache/beam/sdks/v2/go/cmd/prism@v$version into $dir"
started=$(now_ms)
# Built beside the cached binary and moved into place, so an interrupted
# build never leaves a binary that looks installed.
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
GOBIN=$dir.tmp go install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$version" >&2
mkdir -p "$dir"
mv -f "$dir.tmp/prism" "$bin"
rmdir "$dir.tmp"
log "install_prism: built in $(elapsed_s "$started") s"
echo "$bin"
