#!/usr/bin/env bash
# Installs the tools the Kubernetes checks need into ~/.cache/tsql-tools (or
# $TSQL_TOOLS), skipping whatever is already there, and prints the folder of
# the binaries on its last line of standard output.
#
#   bash scripts/k8s-tools.sh            helm, kubeconform, kube-score and the
#                                        Kubernetes 1.30 and 1.37 JSON schemas
#   bash scripts/k8s-tools.sh cluster    also kube-apiserver, kube-controller-manager,
#                                        kube-scheduler, kubectl v1.37.2 and kwok
#                                        (for scripts/cluster-check.sh; ~15 min on 2 cores)
#
# Go tools come through `go install` (the Go module proxy), the schemas from the
# PyPI package kubernetes-validate (through pip). Nothing else is downloaded.
set -euo pipefail

HELM_VERSION=v4.3.2
KUBECONFORM_VERSION=v0.8.0
KUBE_SCORE_VERSION=v1.20.0
KUBERNETES_VALIDATE_VERSION=1.37.0
SCHEMA_VERSIONS=(1.30.0 1.37.0)
KUBERNETES_VERSION=1.37.2
KWOK_VERSION=v0.8.0

TOOLS=${TSQL_TOOLS:-$HOME/.cache/tsql-tools}
BIN=$TOOLS/bin
export GOBIN=$BIN GOMODCACHE=$TOOLS/gomod GOCACHE=$TOOLS/gocache GOFLAGS=-mod=mod GOTOOLCHAIN=local
mkdir -p "$BIN" "$GOMODCACHE" "$GOCACHE"

say() { echo "k8s-tools: $*" >&2; }

need_go() {
    command -v go >/dev/null || {
        say "Go is needed to install $1: install Go 1.25 or newer (e.g. apt-get install golang) and run again"
        exit 1
    }
}

# go_tool NAME MODULE@VERSION: installs NAME unless this version is already there.
go_tool() {
    local name=$1 module=$2 stamp="$BIN/.$1-${2##*@}"
    if [[ -x $BIN/$name && -e $stamp ]]; then return; fi
    need_go "$name"
    say "installing $name from $module (once; cached in $BIN)"
    local started=$SECONDS
    (cd "$TOOLS" && go install "$module") >&2
    touch "$stamp"
    say "installed $name in $((SECONDS - started)) s"
}

schemas() {
    local dir=$TOOLS/k8s-schemas stamp=$TOOLS/k8s-schemas/.kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
    if [[ -e $stamp ]]; then return; fi
    say "fetching the Kubernetes JSON schemas (PyPI package kubernetes-validate $KUBERNETES_VALIDATE_VERSION)"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --dest "$tmp" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2 || {
        say "pip could not download kubernetes-validate==$KUBERNETES_VALIDATE_VERSION; check that pip reaches its package index"
        exit 1
    }
    rm -rf "$dir" && mkdir -p "$dir"
    # kubeconform resolves `$ref`s itself: the schemas' absolute `$id` and
    # `/api/_definitions.json` references must become relative file names.
    python3 - "$tmp"/kubernetes_validate-*.whl "$dir" "${SCHEMA_VERSIONS[@]}" <<'PY'
import json, os, sys, zipfile
wheel, out, versions = sys.argv[1], sys.argv[2], sys.argv[3:]
wanted = [f"kubernetes_validate/kubernetes-json-schema/v{v}-local-strict/" for v in versions]

def relative(node):
    if isinstance(node, dict):
        return {k: (v.replace("/api/_definitions.json", "_definitions.json") if k == "$ref" and isinstance(v, str)
                    else relative(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [relative(v) for v in node]
    return node

count = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        prefix = next((w for w in wanted if name.startswith(w)), None)
        if not prefix or not name.endswith(".json"):
            continue
        schema = json.loads(z.read(name))
        schema.pop("$id", None)
        target = os.path.join(out, prefix.split("/")[-2], name[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            json.dump(relative(schema), f)
        count += 1
print(f"k8s-tools: wrote {count} schema files", file=sys.stderr)
PY
    rm -rf "$tmp"
    touch "$stamp"
}

# The control plane from one Go module that builds k8s.io/kubernetes's commands;
# its staging modules (k8s.io/api, …) are replaced by their published versions.
control_plane() {
    if [[ -x $BIN/kube-apiserver && -x $BIN/kubectl ]] &&
        [[ $("$BIN/kube-apiserver" --version 2>/dev/null) == "Kubernetes v$KUBERNETES_VERSION" ]]; then return; fi
    need_go kube-apiserver
    local mod=$TOOLS/kubernetes-build
    mkdir -p "$mod"
    say "building kube-apiserver, kube-controller-manager, kube-scheduler, kubectl v$KUBERNETES_VERSION (once, ~10-15 min on 2 cores)"
    local started=$SECONDS
    (
        cd "$mod"
        cat >go.mod <<EOF
module tsql.local/kubernetes-build

go 1.25

require k8s.io/kubernetes v$KUBERNETES_VERSION
EOF
        go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" >/dev/null
        local upstream
        upstream=$(go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
        # Every `k8s.io/x => ./staging/src/k8s.io/x` of Kubernetes's own go.mod
        # becomes `k8s.io/x => k8s.io/x v0.<minor>.<patch>`.
        local staging=v0.${KUBERNETES_VERSION#1.}
        grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$upstream" |
            awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}' >>go.mod
        cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
        go mod tidy -e >/dev/null 2>&1 || true
        # The version Kubernetes's own build stamps in (helm checks the chart's
        # kubeVersion against it; without it the server says v0.0.0-master).
        local stamp="" pkg
        for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            stamp+=" -X $pkg.gitVersion=v$KUBERNETES_VERSION -X $pkg.gitMajor=${KUBERNETES_VERSION%%.*}"
            stamp+=" -X $pkg.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION") -X $pkg.gitTreeState=clean"
        done
        go build -tags tools -ldflags "$stamp" -o "$BIN/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
            k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
    ) >&2
    say "built the control plane in $((SECONDS - started)) s"
}

main() {
    go_tool helm "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
    go_tool kubeconform "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
    go_tool kube-score "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
    schemas
    if [[ ${1:-} == cluster ]]; then
        go_tool kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
        control_plane
    fi
    echo "$BIN"
}

# Sourced (by a script that wants one of the functions), do nothing more.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
