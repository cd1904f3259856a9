#!/usr/bin/env bash
# Checks the Helm chart deploy/helm/tsql without a cluster:
#   1. helm lint --strict, with the default values and with each deploy/examples/*.yaml;
#   2. helm template of each example (and with the Prometheus operator's API,
#      so the ServiceMonitor renders), validated by kubeconform -strict against
#      the Kubernetes 1.30 and 1.37 strict schemas (the ServiceMonitor against
#      scripts/k8s-schemas/servicemonitor-monitoring-v1.json, written for it);
#   3. kube-score on every rendering (its ignored tests are listed below, with why);
#   4. bad values are refused, each with a message that says what to change;
#   5. the cluster (workers.replicas > 0; deploy/examples/client-*-cluster.yaml): the
#      worker objects and config render, coordinators and workers never select each
#      other's pods, a config change rolls the workers too; with workers.replicas=0
#      nothing of the cluster renders;
#   6. the rendered tsql.toml of each example (and of the defaults), and worker.toml of
#      the cluster examples, pass `tsql check-config`
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
# The bigger single-node example as a cluster too: TLS on the coordinators only,
# an existing cluster-secret Secret, a user from an existing Secret.
GLOBEX_WORKERS=(--set workers.replicas=2 --set workers.clusterSecret.existingSecret=globex-tsql-cluster-secret)
render client-globex-workers "$ROOT/deploy/examples/client-globex.yaml" "${GLOBEX_WORKERS[@]}" --api-versions monitoring.coreos.com/v1
renderings+=(client-globex-workers)
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
refused "workers.replicas negative" "workers.replicas.*(minimum|0)" --set workers.replicas=-1
refused "workers.replicas as a string" "workers.replicas.*(integer|string)" --set-string workers.replicas=three
refused "a misspelt workers key" "workers.*additional propert.*'replica'" --set workers.replica=3
refused "workers.port also a port of the front ends" "workers.port \(9464\) is also ports.metrics" \
    --set workers.replicas=2 --set workers.port=9464
refused "an unknown workers.distributed mode" "workers.distributed" --set workers.replicas=2 --set workers.distributed=always
refused "workers.distributeMinSplits 0" "distributeMinSplits" --set workers.replicas=2 --set workers.distributeMinSplits=0
refused "workers.clusterSecret.existingSecret with an empty key" "existingSecretKey" --set workers.replicas=2 \
    --set workers.clusterSecret.existingSecret=s --set workers.clusterSecret.existingSecretKey=
refused "worker resources without a memory limit" "workers.resources.*(limits|memory)" --set workers.replicas=2 \
    --set-json 'workers.resources={"limits": {"cpu": "2"}}'
refused "memory.limit above the workers' own memory limit" "above the container's memory limit workers.resources.limits.memory" \
    -f "$acme" --set workers.replicas=2 --set memory.limit=3Gi \
    --set-json 'workers.resources={"limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "12Gi"}}'
refused "worker ephemeral storage not above the spill emptyDir" "workers.resources.limits.ephemeral-storage" \
    -f "$acme" --set workers.replicas=2 \
    --set-json 'workers.resources={"limits": {"cpu": "2", "memory": "4Gi", "ephemeral-storage": "8Gi"}}'

# 5. The cluster.
CLUSTER_EXAMPLES=("$ROOT"/deploy/examples/client-*-cluster.yaml)
[[ -e ${CLUSTER_EXAMPLES[0]} ]] || die "no cluster example (deploy/examples/client-*-cluster.yaml)"
for values in "${CLUSTER_EXAMPLES[@]}"; do
    client=$(basename "$values" .yaml)
    rendering=$WORK/$client-servicemonitor.yaml
    for object in "Deployment tsql-workers" "Service tsql-workers" "NetworkPolicy tsql-workers" \
        "ServiceMonitor tsql-workers" "Secret tsql-cluster-secret"; do
        awk -v kind="${object% *}" -v name="${object#* }" '
            /^kind: / {k = $2} /^  name: / && k == kind && $2 == name {found = 1} END {exit !found}' "$rendering" ||
            die "$client: no $object rendered"
    done
    workers=$(awk '/^kind: / {k = $2} /^  name: / {n = $2} k == "Deployment" && n == "tsql-workers" && /^  replicas: / {print $2}' "$rendering")
    if ((workers > 1)); then
        grep -q 'name: tsql-workers$' <(awk '/^kind: PodDisruptionBudget/,/^---/' "$rendering") || die "$client: no PodDisruptionBudget for the $workers workers"
    fi
    grep -q 'clusterIP: None' <(awk '/^kind: Service$/,/^---/' "$rendering") || die "$client: the workers' Service is not headless"
    grep -q 'args: \["serve", "--config", "/etc/tsql/worker.toml"\]' "$rendering" || die "$client: the workers do not run worker.toml"
    grep -q 'helm.sh/resource-policy: keep' <(awk '/^kind: Secret/,/^---/' "$rendering") || die "$client: the cluster secret is not kept"
    pass "$client: worker Deployment, headless Service tsql-workers, PodDisruptionBudget, NetworkPolicy, ServiceMonitor and the kept cluster Secret render"
done

# The config of both roles, from the cluster example.
config_of() { # RENDERING KEY: the ConfigMap's KEY (tsql.toml, worker.toml) as plain text
    awk -v key="$2" '$0 ~ "^  " key ": \\|" {inside = 1; next}
        inside && /^ *$/ {blank++; next}
        inside && /^    / {for (; blank > 0; blank--) print ""; print substr($0, 5); next} inside {exit}' "$1"
}
cluster_example=${CLUSTER_EXAMPLES[0]}
cluster_client=$(basename "$cluster_example" .yaml)
config_of "$WORK/$cluster_client.yaml" tsql.toml >"$WORK/coordinator.toml"
config_of "$WORK/$cluster_client.yaml" worker.toml >"$WORK/worker.toml"
grep -qx "workers = \[\"tsql-workers.$cluster_client.svc:32020\"\]" "$WORK/coordinator.toml" ||
    { cat "$WORK/coordinator.toml"; die "the coordinators' config does not name the workers' headless Service"; }
for key in worker_listen cluster_secret_file distributed; do
    grep -q "^$key = " "$WORK/coordinator.toml" || die "the coordinators' config lacks $key"
done
for key in worker_listen cluster_secret_file; do
    grep -q "^$key = " "$WORK/worker.toml" || die "worker.toml lacks $key"
done
for key in workers distributed ticket_key_file tls_cert; do
    ! grep -q "^$key = " "$WORK/worker.toml" || die "worker.toml has $key"
done
diff <(sed -n '/^\[\[users\]\]\|^\[\[source\]\]/,$p' "$WORK/coordinator.toml") \
    <(sed -n '/^\[\[users\]\]\|^\[\[source\]\]/,$p' "$WORK/worker.toml") >/dev/null ||
    die "worker.toml's users and sources differ from the coordinators'"
pass "$cluster_client: tsql.toml names the workers (tsql-workers.$cluster_client.svc:32020); worker.toml has the same users and sources, worker_listen and cluster_secret_file, and no workers"
printf 'workers:\n  replicas: 1\n  distributed: on\n' >"$WORK/unquoted-on.yaml"
helm template tsql "$CHART" -f "$WORK/unquoted-on.yaml" --show-only templates/configmap.yaml | grep -q '^    distributed = "on"$' ||
    die "workers.distributed: on (YAML true) did not render distributed = \"on\""
pass "workers.distributed: on, unquoted (YAML true), renders distributed = \"on\""

# Selectors: each selects the pods of exactly one Deployment (coordinators and
# workers never select each other's pods), across every rendering.
if python3 -c 'import yaml' 2>/dev/null; then
    cat >"$WORK/selectors.py" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
def selects(selector, labels):
    ok = all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())
    for e in selector.get("matchExpressions") or []:
        has, values = labels.get(e["key"]), e.get("values") or []
        ok = ok and {"In": has in values, "NotIn": has not in values,
                     "Exists": has is not None, "DoesNotExist": has is None}[e["operator"]]
    return ok
pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] == "Deployment"}
services = {d["metadata"]["name"]: d["metadata"]["labels"] for d in docs if d["kind"] == "Service"}
for d in docs:
    kind, name, spec = d["kind"], d["metadata"]["name"], d.get("spec") or {}
    targets, selectors = pods, []
    if kind in ("Deployment", "PodDisruptionBudget"):
        selectors.append(spec["selector"])
    elif kind == "Service":
        selectors.append({"matchLabels": spec["selector"]})
    elif kind == "NetworkPolicy" and not name.endswith("-test"):
        selectors.append(spec["podSelector"])
    elif kind == "ServiceMonitor":
        targets = services
        selectors.append(spec["selector"])
    if kind == "Deployment":
        selectors += [c["labelSelector"] for c in spec["template"]["spec"].get("topologySpreadConstraints") or []]
    for s in selectors:
        hit = [n for n, labels in targets.items() if selects(s, labels)]
        if len(hit) != 1 or (kind == "Deployment" and hit != [name]):
            sys.exit(f"{kind} {name}: its selector {s} selects {hit or 'nothing'}")
PY
    for name in "${renderings[@]}"; do
        python3 - "$WORK/$name.yaml" <"$WORK/selectors.py" || die "selectors of $name"
    done
    # The check bites: workers labelled as coordinators are selected twice.
    sed 's/component: worker$/component: server/' "$WORK/client-globex-workers.yaml" >"$WORK/broken-selectors.yaml"
    ! python3 - "$WORK/broken-selectors.yaml" <"$WORK/selectors.py" >/dev/null 2>&1 ||
        die "the selector check accepted workers labelled as coordinators"
    pass "selectors of every rendering: each Deployment, Service, PodDisruptionBudget, NetworkPolicy and topology spread selects the pods of one Deployment, each ServiceMonitor one Service (and a rendering where they overlap is refused)"
else
    echo "skipped: the selector check (python3 has no yaml module: pip install pyyaml)"
    checked+=("SKIPPED the selector check: python3 has no yaml module")
fi

# A change of the config rolls the workers too (their pod template carries the ConfigMap's checksum).
checksums() { grep -E '^\s+checksum/config:' | awk '{print $2}' | sort -u | tr '\n' ' '; }
before=$(checksums <"$WORK/$cluster_client.yaml")
[[ $(wc -w <<<"$before") -eq 1 ]] || die "coordinators and workers carry different config checksums: $before"
grep -c 'checksum/config:' "$WORK/$cluster_client.yaml" | grep -qx 2 || die "not both Deployments carry checksum/config"
after=$(helm template tsql "$CHART" --namespace "$cluster_client" -f "$cluster_example" --set server.maxRunningQueries=7 | checksums)
[[ $before != "$after" ]] || die "a config change left the workers' checksum/config unchanged"
pass "a config change rolls coordinators and workers (one checksum/config on both pod templates, changed by the config)"

# Without workers nothing of the cluster renders.
single=(defaults)
for values in "${EXAMPLES[@]}"; do
    [[ $values == *-cluster.yaml ]] || single+=("$(basename "$values" .yaml)")
done
for name in "${single[@]}"; do
    if grep -Eq 'tsql-workers|tsql-cluster-secret|component: worker|worker\.toml|^    (workers|worker_listen|cluster_secret_file|distributed|distribute_min_splits) = |containerPort: 32020' "$WORK/$name.yaml"; then
        grep -En 'tsql-workers|tsql-cluster-secret|component: worker|worker\.toml|^    (workers|worker_listen|cluster_secret_file|distributed|distribute_min_splits) = |containerPort: 32020' "$WORK/$name.yaml"
        die "$name (workers.replicas=0) renders cluster objects or keys"
    fi
done
pass "workers.replicas=0 (${single[*]}): no worker object, no cluster Secret, no worker port, no cluster key in tsql.toml"

# 6. The rendered config, checked by tsql itself.
if [[ -x $TSQL ]] && "$TSQL" help check-config >/dev/null 2>&1; then
    # The config names files mounted in the pod; make stand-ins under a fake root.
    fake=$WORK/root
    mkdir -p "$fake/etc/tsql/secrets/users/0" "$fake/etc/tsql/tls" "$fake/var/spill"
    head -c 36 /dev/urandom | base64 >"$fake/etc/tsql/secrets/ticket-key"
    head -c 36 /dev/urandom | base64 >"$fake/etc/tsql/secrets/cluster-secret"
    echo -n 'a stand-in password' | "$TSQL" hash-password >"$fake/etc/tsql/secrets/users/0/password-hash"
    echo -n 'a stand-in password' >"$fake/etc/tsql/secrets/cassandra-password"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=tsql -keyout "$fake/etc/tsql/tls/tls.key" \
        -out "$fake/etc/tsql/tls/tls.crt" >/dev/null 2>&1
    cp "$fake/etc/tsql/tls/tls.crt" "$fake/etc/tsql/secrets/cassandra-ca.pem"
    for values in "${EXAMPLES[@]}" defaults client-globex-workers; do
        client=$(basename "$values" .yaml)
        more=()
        [[ $values == defaults ]] && values=/dev/null
        [[ $values == client-globex-workers ]] && values=$ROOT/deploy/examples/client-globex.yaml && more=("${GLOBEX_WORKERS[@]}")
        helm template tsql "$CHART" --namespace "$client" -f "$values" "${more[@]}" --show-only templates/configmap.yaml >"$WORK/$client-configmap.yaml"
        files=(tsql.toml)
        [[ $client == *-cluster || $client == client-globex-workers ]] && files+=(worker.toml)
        for file in "${files[@]}"; do
            grep -q "^  $file: |" "$WORK/$client-configmap.yaml" || die "$client: the ConfigMap has no $file"
            config_of "$WORK/$client-configmap.yaml" "$file" |
                sed -e "s#\"/etc/tsql/#\"$fake/etc/tsql/#g" -e "s#\"/var/spill\"#\"$fake/var/spill\"#" >"$WORK/$client-$file"
            "$TSQL" check-config --config "$WORK/$client-$file" >"$WORK/check.txt" 2>&1 ||
                { cat "$WORK/$client-$file" "$WORK/check.txt"; die "tsql check-config of $client's rendered $file"; }
            summary=$(tail -n 1 "$WORK/check.txt" | sed "s#^config OK: $WORK/[^:]*: #config OK: #")
            cluster=$(grep -o 'cluster: [^;]*' <<<"$summary" || true)
            pass "tsql check-config: $client's $file: $(cut -c 1-150 <<<"$summary")${cluster:+ ... $cluster}"
        done
    done
else
    echo "skipped: tsql check-config (no tsql binary with that subcommand at $TSQL; build tsql, or set TSQL_BIN)"
    checked+=("SKIPPED tsql check-config: $TSQL has no check-config subcommand")
fi

echo
echo "k8s-check: ${#checked[@]} checks passed:"
printf '  %s\n' "${checked[@]}"
