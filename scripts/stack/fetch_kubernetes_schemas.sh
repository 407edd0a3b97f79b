#!/usr/bin/env bash
# Everything that validates deploy/kubernetes/ offline (tests/test_kubernetes_manifests.py),
# under $RUN_DIR/k8s, idempotent and cached:
#   bin/kubeconform          kubeconform, `go install` from the Go module proxy
#   schemas/kubernetes/v<K8S>-standalone-strict/*.json
#                            the Kubernetes API's JSON Schemas bundled in the PyPI package
#                            kubernetes-validate (downloaded, not installed), each file with the
#                            definitions it uses (scripts/stack/kubernetes_schemas.py standalone)
#   schemas/crds/flink.apache.org/flinkdeployment_v1beta1.json
#                            the FlinkDeployment CRD of the Flink Kubernetes Operator, from
#                            org.apache.flink:flink-kubernetes-operator-api on Maven Central
#                            (META-INF/fabric8/), as JSON Schema (kubernetes_schemas.py crd)
# Env: KUBECONFORM_VERSION (v0.6.7), KUBERNETES_VALIDATE_VERSION (1.37.0), K8S_VERSION (1.31.0),
#      FLINK_OPERATOR_VERSION (1.10.0), FORCE=1 to redo everything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBECONFORM_VERSION=${KUBECONFORM_VERSION:-v0.6.7}
KUBERNETES_VALIDATE_VERSION=${KUBERNETES_VALIDATE_VERSION:-1.37.0}
K8S_VERSION=${K8S_VERSION:-1.31.0}
FLINK_OPERATOR_VERSION=${FLINK_OPERATOR_VERSION:-1.10.0}
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
K8S_DIR=$RUN_DIR/k8s
STAMP=$K8S_DIR/.complete
WANT="kubeconform=$KUBECONFORM_VERSION kubernetes-validate=$KUBERNETES_VALIDATE_VERSION k8s=$K8S_VERSION operator=$FLINK_OPERATOR_VERSION"

if [[ -z "${FORCE:-}" && "$(cat "$STAMP" 2>/dev/null)" == "$WANT" ]]; then
  log "kubernetes schemas: up to date ($WANT)"
  exit 0
fi
command -v go >/dev/null 2>&1 || die "go not found on PATH (kubeconform is built with go install)"
command -v mvn >/dev/null 2>&1 || die "mvn (Maven 3.x) not found on PATH"
PY=$(python_bin)
t0=$(now_ms)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$K8S_DIR"
mkdir -p "$K8S_DIR/bin" "$K8S_DIR/schemas/kubernetes" "$K8S_DIR/schemas/crds"

log "kubeconform: go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
GOBIN=$K8S_DIR/bin GOFLAGS=-mod=mod go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
  || die "go install kubeconform failed"

log "kubernetes schemas: kubernetes-validate==$KUBERNETES_VALIDATE_VERSION (PyPI), v$K8S_VERSION"
"$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" \
  "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" || die "pip download kubernetes-validate failed"
schemas=kubernetes_validate/kubernetes-json-schema/v$K8S_VERSION-local-strict
(cd "$tmp" && unzip -q kubernetes_validate-*.whl "$schemas/*") || die "no $schemas in the wheel"
# kubeconform compiles one file on its own: each kind's file gets the shared definitions it uses.
"$PY" "$STACK_DIR/kubernetes_schemas.py" standalone "$tmp/$schemas" \
  "$K8S_DIR/schemas/kubernetes/v$K8S_VERSION-standalone-strict"

log "FlinkDeployment CRD: org.apache.flink:flink-kubernetes-operator-api:$FLINK_OPERATOR_VERSION (Maven Central)"
# shellcheck disable=SC2086
mvn -q -B -Dstyle.color=never ${MVN_ARGS:-} "$DEP_PLUGIN:copy" \
  -Dartifact="org.apache.flink:flink-kubernetes-operator-api:$FLINK_OPERATOR_VERSION" \
  -DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2 \
  || die "maven could not fetch flink-kubernetes-operator-api:$FLINK_OPERATOR_VERSION"
crd=META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml
(cd "$tmp" && unzip -q "flink-kubernetes-operator-api-$FLINK_OPERATOR_VERSION.jar" "$crd") \
  || die "no $crd in flink-kubernetes-operator-api-$FLINK_OPERATOR_VERSION.jar"
cp "$tmp/$crd" "$K8S_DIR/schemas/crds/flinkdeployments.flink.apache.org-v1.yml"
"$PY" "$STACK_DIR/kubernetes_schemas.py" crd "$tmp/$crd" "$K8S_DIR/schemas/crds" >&2

echo "$WANT" >"$STAMP"
log "kubernetes schemas: done in $(elapsed_s "$t0")s under $K8S_DIR"
