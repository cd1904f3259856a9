#!/usr/bin/env bash
# Checks the Helm chart deploy/helm/tsql without a cluster:
#   1. helm lint --strict, with the default values and with each deploy/examples/*.yaml;
#   2. helm template of each example (and with the Prometheus operator's API,
#      so the ServiceMonitor renders), validated by kubeconform -strict against
#      the Kubernetes 1.30 and 1.37 strict schemas (the ServiceMonitor against
#      scripts/k8s-schemas/servicemonitor-monitoring-v1.json, written for it);
#   3. kube-score on every rendering (its ignored tests are listed below, with why);
#   4. bad values are refused, each with a message that says what to change;
#   5. the rendered tsql.toml of each example (and of the defaults) passes `tsql check-config`
#      (skipped, saying so, when the tsql binary has no such subcommand).
# Tools come from scripts/k8s-tools.sh (cached in ~/.cache/tsql-tools).
# Usage: bash scripts/k8s-check.sh      (exit status 0 when every check passed)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHART=$ROOT/deploy/helm/tsql
EXAMPLES=("$ROOT"/deploy/examples/client-*.yaml)
TOOLS=${TSQL_TOOLS:-$HOME/.cache/tsql-tools}
BIN=$(bash "$ROOT/scripts/k8s-tools.sh" | tail -n 1)
export PATH="$BIN:$PATH"
TSQL=${TSQL_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/tsql}
KUBE_VERSIONS=(1.30.0 1.37.0)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

checked=()
pass() { checked+=("$*"); echo "ok: $*"; }
die() { echo "FAILED: $*" >&2; exit 1; }

# kube-score tests that do not fit this chart, and why:
#   container-image-pull-policy        wants Always; the image tag is tsql's
#                                      immutable version, so IfNotPresent is right
#                                      (and a cluster without a registry can run it).
#   deployment-has-host-podantiaffinity  the chart spreads replicas with
#                                      topologySpreadConstraints (zone, then host),
#                                      which kube-score does not recognise.
KUBE_SCORE_IGNORED=(container-image-pull-policy deployment-has-host-podantiaffinity)

cd "$ROOT"

# 1. Lint.
helm lint --strict --quiet "$CHART" >"$WORK/lint.txt" 2>&1 || { cat "$WORK/lint.txt"; die "helm lint --strict with the default values"; }
pass "helm lint --strict (default values)"
for values in "${EXAMPLES[@]}"; do
    helm lint --strict --quiet "$CHART" -f "$values" >"$WORK/lint.txt" 2>&1 ||
        { cat "$WORK/lint.txt"; die "helm lint --strict -f ${values#"$ROOT"/}"; }
    pass "helm lint --strict -f ${values#"$ROOT"/}"
done

# 2. Render and validate.
render() { # NAME VALUES-FILE [helm args...]: renders into $WORK/NAME.yaml
    local name=$1 values=$2
    shift 2
    helm template tsql "$CHART" --namespace "$name" -f "$values" "$@" >"$WORK/$name.yaml" 2>"$WORK/$name.err" ||
        { cat "$WORK/$name.err"; die "helm template $name"; }
}
renderings=()
for values in "${EXAMPLES[@]}"; do
    client=$(basename "$values" .yaml)
    render "$client" "$values"
    render "$client-servicemonitor" "$values" --api-versions monitoring.coreos.com/v1
    renderings+=("$client" "$client-servicemonitor")
done
render defaults /dev/null
renderings+=(defaults)
grep -q 'kind: ServiceMonitor' "$WORK/client-globex-servicemonitor.yaml" || die "no ServiceMonitor rendered with monitoring.coreos.com/v1"
! grep -q 'kind: ServiceMonitor' "$WORK/client-globex.yaml" || die "a ServiceMonitor rendered without the monitoring.coreos.com/v1 API"
pass "the ServiceMonitor renders only where monitoring.coreos.com/v1 exists"

for version in "${KUBE_VERSIONS[@]}"; do
    schemas="$TOOLS/k8s-schemas/v$version-local-strict"
    [[ -d $schemas ]] || die "no schemas in $schemas: remove $TOOLS/k8s-schemas and run scripts/k8s-tools.sh again"
    for name in "${renderings[@]}"; do
        kubeconform -strict -summary -kubernetes-version "$version" \
            -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
            -schema-location "$ROOT/scripts/k8s-schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
            "$WORK/$name.yaml" >"$WORK/kubeconform.txt" 2>&1 || { cat "$WORK/kubeconform.txt"; die "kubeconform $name (Kubernetes $version)"; }
        pass "kubeconform -strict $name, Kubernetes $version: $(tail -n 1 "$WORK/kubeconform.txt")"
    done
done

# The validation bites: a misspelt field and a wrongly typed one in a
# rendering are refused, in a Kubernetes object and in the ServiceMonitor.
sed -e 's/runAsNonRoot: true/runAsNonRot: true/' -e 's/^  replicas: 3$/  replicas: "3"/' \
    -e 's/scrapeTimeout:/scrapeTimout:/' "$WORK/client-globex-servicemonitor.yaml" >"$WORK/broken.yaml"
kubeconform -strict -summary -schema-location "$TOOLS/k8s-schemas/v${KUBE_VERSIONS[-1]}-local-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$ROOT/scripts/k8s-schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    "$WORK/broken.yaml" >"$WORK/kubeconform.txt" 2>&1 && die "kubeconform accepted a broken rendering"
for expected in "additional properties 'runAsNonRot' not allowed" "/spec/replicas': got string" "additional properties 'scrapeTimout' not allowed"; do
    grep -qF "$expected" "$WORK/kubeconform.txt" || { cat "$WORK/kubeconform.txt"; die "kubeconform did not report: $expected"; }
done
pass "kubeconform refuses a misspelt field, a string replicas and a misspelt ServiceMonitor field"

# 3. kube-score (exit status 1 on any critical finding not ignored), with its
#    optional seccomp-profile and container-ports checks on.
for name in "${renderings[@]}"; do
    ignores=(--enable-optional-test container-seccomp-profile --enable-optional-test container-ports-check)
    for test in "${KUBE_SCORE_IGNORED[@]}"; do ignores+=(--ignore-test "$test"); done
    kube-score score --output-format ci "${ignores[@]}" "$WORK/$name.yaml" >"$WORK/score.txt" 2>&1 ||
        { grep -E '^\[(CRITICAL|WARNING)\]' "$WORK/score.txt" || cat "$WORK/score.txt"; die "kube-score $name"; }
    warnings=$(grep -c '^\[WARNING\]' "$WORK/score.txt" || true)
    pass "kube-score $name: no critical finding ($warnings warnings; ignored: ${KUBE_SCORE_IGNORED[*]})"
    grep '^\[WARNING\]' "$WORK/score.txt" | sed 's/^/    /' || true
done

# 4. Bad values are refused.
refused() { # DESCRIPTION EXPECTED-MESSAGE-REGEX helm-args...
    local what=$1 expected=$2
    shift 2
    if helm template tsql "$CHART" --namespace client-x "$@" >/dev/null 2>"$WORK/refused.txt"; then
        die "$what: helm template accepted it"
    fi
    grep -Eq "$expected" "$WORK/refused.txt" || { cat "$WORK/refused.txt"; die "$what: refused, but without a message matching /$expected/"; }
    pass "refused: $what ($(grep -Eo "$expected" "$WORK/refused.txt" | head -n 1))"
}
acme=$ROOT/deploy/examples/client-acme.yaml
refused "replicas as a string" "replicas.*(integer|string)" --set-string replicas=three
refused "an unknown top-level key" "additional propert.*replica" --set replica=2
refused "a misspelt nested key" "additional propert.*contactPoint" -f "$acme" --set 'cassandra.contactPoint=10.0.0.1:9042'
refused "memory.limit above the container's memory limit" "above the container's memory limit" -f "$acme" --set memory.limit=5Gi
refused "memory.limitFraction above 1" "limitFraction.*(maximum|1.5)" --set-json memory.limitFraction=1.5
refused "spill.limit not below the emptyDir sizeLimit" "must be below spill.sizeLimit" -f "$acme" --set spill.limit=10Gi
refused "a container without a memory limit" "memory" --set resources.limits.memory=null
refused "a size that is not a quantity" "sizeLimit" --set spill.sizeLimit=lots
refused "the ingress without host names" "ingress.flight.host" --set ingress.enabled=true
refused "Cassandra without contact points" "contactPoints" --set cassandra.enabled=true --set 'cassandra.keyspaces={a}'
refused "Cassandra by host name without egressCIDRs" "egressCIDRs" --set cassandra.enabled=true \
    --set 'cassandra.keyspaces={a}' --set 'cassandra.contactPoints={cassandra.example:9042}'
refused "a Cassandra user without a password" "passwordSecret" --set cassandra.enabled=true \
    --set 'cassandra.keyspaces={a}' --set 'cassandra.contactPoints={10.0.0.1:9042}' --set cassandra.username=u
refused "in-pod TLS without its Secret" "tls.secretName" --set tls.enabled=true
refused "an unknown Cyoda auth mode" "auth" --set cyoda.auth=basic
refused "no way to log in (no users, no Cyoda passthrough)" "nobody could log in" --set cyoda.enabled=false
refused "spill in memory that does not fit beside memory_limit" "spill files count against the container's memory" \
    --set spill.medium=Memory --set spill.sizeLimit=2Gi

# 5. The rendered config, checked by tsql itself.
if [[ -x $TSQL ]] && "$TSQL" help check-config >/dev/null 2>&1; then
    # The config names files mounted in the pod; make stand-ins under a fake root.
    fake=$WORK/root
    mkdir -p "$fake/etc/tsql/secrets/users/0" "$fake/etc/tsql/tls" "$fake/var/spill"
    head -c 36 /dev/urandom | base64 >"$fake/etc/tsql/secrets/ticket-key"
    echo -n 'a stand-in password' | "$TSQL" hash-password >"$fake/etc/tsql/secrets/users/0/password-hash"
    echo -n 'a stand-in password' >"$fake/etc/tsql/secrets/cassandra-password"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=tsql -keyout "$fake/etc/tsql/tls/tls.key" \
        -out "$fake/etc/tsql/tls/tls.crt" >/dev/null 2>&1
    cp "$fake/etc/tsql/tls/tls.crt" "$fake/etc/tsql/secrets/cassandra-ca.pem"
    for values in "${EXAMPLES[@]}" defaults; do
        client=$(basename "$values" .yaml)
        [[ $values == defaults ]] && values=/dev/null
        helm template tsql "$CHART" --namespace "$client" -f "$values" --show-only templates/configmap.yaml |
            awk '/^  tsql.toml: \|/ {inside = 1; next} inside && /^    / {print substr($0, 5); next} inside && /^$/ {print; next} inside {exit}' |
            sed -e "s#\"/etc/tsql/#\"$fake/etc/tsql/#g" -e "s#\"/var/spill\"#\"$fake/var/spill\"#" >"$WORK/$client.toml"
        "$TSQL" check-config --config "$WORK/$client.toml" >"$WORK/check.txt" 2>&1 ||
            { cat "$WORK/$client.toml" "$WORK/check.txt"; die "tsql check-config of $client's rendered config"; }
        pass "tsql check-config: the rendered config of $client: $(tail -n 1 "$WORK/check.txt" | cut -c 1-160)"
    done
else
    echo "skipped: tsql check-config (no tsql binary with that subcommand at $TSQL; build tsql, or set TSQL_BIN)"
    checked+=("SKIPPED tsql check-config: $TSQL has no check-config subcommand")
fi

echo
echo "k8s-check: ${#checked[@]} checks passed:"
printf '  %s\n' "${checked[@]}"
