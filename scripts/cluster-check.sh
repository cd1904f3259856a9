#!/usr/bin/env bash
# Installs the chart into a real Kubernetes API server (not for CI: the first
# run builds the control plane, ~15 min on 2 cores; later runs take ~2 min).
#
# Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler v1.37.2
# and kwok (fake nodes: pods are scheduled and marked running, nothing runs in
# them) on 127.0.0.1, then for four client namespaces (one runs tsql as a
# cluster: coordinators and workers), each enforcing the Pod Security
# Standards "restricted" profile:
#   - validates every object of the rendering on the server (kubectl apply
#     --dry-run=server --validate=strict: schema, unknown fields, admission);
#   - helm install --wait (the pods must be admitted, scheduled and ready);
#   - in the cluster namespace: the worker Deployment is ready, its headless
#     Service lists every worker, the coordinators' config names that Service;
# then, in one namespace, helm upgrade (a config change rolls the pods) and
# helm rollback; shows that the server refuses a pod running as root there; and
# tears everything down (only the processes it started).
#
# Needs: etcd (Debian: apt-get install etcd-server), openssl, Go (for the tools).
# Usage: bash scripts/cluster-check.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CHART=$ROOT/deploy/helm/tsql
TOOLS=${TSQL_TOOLS:-$HOME/.cache/tsql-tools}
BIN=$(bash "$ROOT/scripts/k8s-tools.sh" cluster | tail -n 1)
export PATH="$BIN:$PATH"
command -v etcd >/dev/null || { echo "cluster-check: etcd is missing: apt-get install etcd-server" >&2; exit 1; }

WORK=$(mktemp -d)
export KUBECONFIG=$WORK/kubeconfig
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ ${KEEP_LOGS:-} ]]; then echo "cluster-check: logs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
say() { echo "cluster-check: $*"; }
die() { echo "cluster-check FAILED: $*" >&2; for f in "$WORK"/*.log; do echo "--- $f (last lines)"; tail -n 15 "$f"; done >&2; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
started=$SECONDS

# Certificates: one CA for the API server's certificate; a key pair for service account tokens.
pki=$WORK/pki
mkdir -p "$pki"
(
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=cluster-check-ca -keyout ca.key -out ca.crt
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout apiserver.key -out apiserver.csr
    printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >san.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile san.ext -out apiserver.crt
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
) >/dev/null 2>&1
token=$(head -c 24 /dev/urandom | base64 | tr -dc 'a-zA-Z0-9')
echo "$token,cluster-check,cluster-check,system:masters" >"$pki/tokens.csv"

etcd_port=$(free_port) etcd_peer=$(free_port) api_port=$(free_port)
etcd --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" --initial-cluster "default=http://127.0.0.1:$etcd_peer" \
    >"$WORK/etcd.log" 2>&1 &
pids+=($!)

kube-apiserver --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "$api_port" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
    --endpoint-reconciler-type none >"$WORK/kube-apiserver.log" 2>&1 &
pids+=($!)

cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: check
    cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: "$pki/ca.crt"}
users:
  - name: check
    user: {token: "$token"}
contexts:
  - name: check
    context: {cluster: check, user: check}
current-context: check
EOF
chmod 600 "$KUBECONFIG"
for _ in $(seq 60); do kubectl get --raw /readyz >/dev/null 2>&1 && break; sleep 1; done
kubectl get --raw /readyz >/dev/null 2>&1 || die "kube-apiserver did not become ready"
say "kube-apiserver $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') ready on 127.0.0.1:$api_port after $((SECONDS - started)) s"

kube-controller-manager --kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" \
    --authorization-kubeconfig "$KUBECONFIG" --bind-address 127.0.0.1 --secure-port "$(free_port)" --leader-elect=false \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --controllers '*,-nodeipam' >"$WORK/kube-controller-manager.log" 2>&1 &
pids+=($!)
kube-scheduler --kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" \
    --authorization-kubeconfig "$KUBECONFIG" --bind-address 127.0.0.1 --secure-port "$(free_port)" \
    --leader-elect=false >"$WORK/kube-scheduler.log" 2>&1 &
pids+=($!)

# kwok plays the kubelet of three fake nodes, one per zone, with the stages of its module.
stages=$TOOLS/gomod/sigs.k8s.io/kwok@v0.8.0/kustomize/stage
for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml pod/fast/pod-ready.yaml \
    pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ -f $stages/$f ]] || die "kwok's stage $f is missing from $stages (run scripts/k8s-tools.sh cluster)"
    cat "$stages/$f"
    echo "---"
done >"$WORK/kwok-stages.yaml"
kwok --config "$WORK/kwok-stages.yaml" --kubeconfig "$KUBECONFIG" --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake --cidr 10.244.0.1/16 --node-ip 10.0.0.1 \
    --server-address "127.0.0.1:$(free_port)" >"$WORK/kwok.log" 2>&1 &
pids+=($!)

for zone in a b c; do
    kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: fake-node-$zone
  annotations: {kwok.x-k8s.io/node: fake}
  labels:
    kubernetes.io/hostname: fake-node-$zone
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    topology.kubernetes.io/zone: zone-$zone
    type: kwok
EOF
    # Status is a subresource (ignored on create); kwok keeps what is set here,
    # and its defaults have no ephemeral-storage, which the chart's pods request.
    kubectl patch node "fake-node-$zone" --subresource status --type merge >/dev/null -p \
        '{"status": {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"},
                     "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110", "ephemeral-storage": "500Gi"}}}'
done
kubectl wait --for=condition=Ready node --all --timeout=90s >/dev/null || die "the fake nodes did not become ready"
# The node lifecycle controller put its not-ready taint on them before kwok reported them ready.
kubectl taint nodes --all node.kubernetes.io/not-ready- >/dev/null 2>&1 || true
say "3 fake nodes ready (zones a, b, c)"

# Four client namespaces: the three examples and one with the chart's defaults.
secret() { kubectl -n "$1" create secret generic "$2" "${@:3}" >/dev/null; }
tls_secret() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=$3" -keyout "$WORK/$2.key" -out "$WORK/$2.crt" >/dev/null 2>&1
    kubectl -n "$1" create secret tls "$2" --cert "$WORK/$2.crt" --key "$WORK/$2.key" >/dev/null
}
hash='$argon2id$v=19$m=19456,t=2,p=1$c3RhbmQtaW4tc2FsdA$YnJ1dGUtZm9yY2UtbWUtaWYteW91LWNhbg'
declare -A values=([client-acme]=$ROOT/deploy/examples/client-acme.yaml [client-globex]=$ROOT/deploy/examples/client-globex.yaml
    [client-hooli]=$ROOT/deploy/examples/client-hooli-cluster.yaml [client-initech]=$WORK/client-initech.yaml)
namespaces=(client-acme client-globex client-hooli client-initech)
cat >"$WORK/client-initech.yaml" <<'EOF'
# The chart's defaults, with the ingress on and a user of its own.
ingress: {enabled: true, flight: {host: flight.initech.example}, trino: {host: trino.initech.example}}
users: [{name: ops, roles: [admin], passwordHash: "$argon2id$v=19$m=19456,t=2,p=1$c3RhbmQtaW4tc2FsdA$YnJ1dGUtZm9yY2UtbWUtaWYteW91LWNhbg"}]
EOF
for ns in "${namespaces[@]}"; do
    kubectl create namespace "$ns" >/dev/null
    kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null
done
secret client-acme acme-cassandra --from-literal password=stand-in
tls_secret client-acme acme-cyoda-example-tls '*.acme.cyoda.example'
tls_secret client-globex tsql-pod-tls tsql.client-globex.svc
tls_secret client-globex globex-cyoda-example-tls '*.globex.cyoda.example'
secret client-globex globex-tsql-ticket-key --from-literal ticket-key="$(head -c 36 /dev/urandom | base64)"
secret client-globex globex-cassandra --from-literal password=stand-in
secret client-globex globex-cassandra-ca --from-file ca.crt="$WORK/tsql-pod-tls.crt"
secret client-globex globex-reporting-user --from-literal password-hash="$hash"
secret client-hooli hooli-cassandra --from-literal password=stand-in
tls_secret client-hooli hooli-cyoda-example-tls '*.hooli.cyoda.example'

results=()
for ns in "${namespaces[@]}"; do
    helm template tsql "$CHART" -n "$ns" -f "${values[$ns]}" >"$WORK/$ns-rendered.yaml"
    kubectl apply -n "$ns" --dry-run=server --validate=strict --server-side --field-manager cluster-check \
        -f "$WORK/$ns-rendered.yaml" >"$WORK/$ns-dry-run.log" 2>&1 || { cat "$WORK/$ns-dry-run.log"; die "server-side dry run of $ns"; }
    objects=$(grep -c 'serverside-applied (server dry run)' "$WORK/$ns-dry-run.log" || true)
    results+=("$ns: $objects objects valid on the server (dry run, strict field validation)")
    helm install tsql "$CHART" -n "$ns" -f "${values[$ns]}" --wait --timeout 3m >"$WORK/$ns-install.log" 2>&1 ||
        { cat "$WORK/$ns-install.log"; kubectl -n "$ns" get events; die "helm install --wait into $ns"; }
    ready=$(kubectl -n "$ns" get deployment tsql -o jsonpath='{.status.readyReplicas}/{.spec.replicas}')
    zones=$(kubectl -n "$ns" get pods -l app.kubernetes.io/component=server -o jsonpath='{range .items[*]}{.spec.nodeName} {end}')
    results+=("$ns: helm install --wait: deployed, $ready pods ready under PSS restricted, on nodes: $zones")
done

# The cluster: workers ready behind their headless Service, which the coordinators' config names.
workers=$(kubectl -n client-hooli get deployment tsql-workers -o jsonpath='{.status.readyReplicas}/{.spec.replicas}')
[[ $workers == 3/3 ]] || die "client-hooli: the worker Deployment has $workers pods ready, not 3/3"
nodes=$(kubectl -n client-hooli get pods -l app.kubernetes.io/component=worker -o jsonpath='{range .items[*]}{.spec.nodeName} {end}')
[[ $(kubectl -n client-hooli get service tsql-workers -o jsonpath='{.spec.clusterIP}') == None ]] ||
    die "client-hooli: the Service tsql-workers is not headless"
addresses=$(kubectl -n client-hooli get endpointslices -l kubernetes.io/service-name=tsql-workers \
    -o jsonpath='{range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]} {end}')
[[ $(wc -w <<<"$addresses") -eq 3 ]] || die "client-hooli: the headless Service lists [$addresses], not the 3 workers"
kubectl -n client-hooli get configmap tsql -o jsonpath='{.data.tsql\.toml}' |
    grep -qx 'workers = \["tsql-workers.client-hooli.svc:32020"\]' || die "client-hooli: the coordinators' config does not name tsql-workers"
kubectl -n client-hooli get configmap tsql -o jsonpath='{.data.worker\.toml}' | grep -q '^cluster_secret_file = ' ||
    die "client-hooli: no worker.toml with cluster_secret_file"
kubectl -n client-hooli get secret tsql-cluster-secret >/dev/null 2>&1 || die "client-hooli: no chart-made cluster secret"
coordinators=$(kubectl -n client-hooli get pods -l app.kubernetes.io/component=server -o name | wc -l)
results+=("client-hooli: $workers workers ready (on ${nodes% }) beside $coordinators coordinators; the headless Service tsql-workers lists ${addresses% }; tsql.toml names tsql-workers.client-hooli.svc:32020")

# Upgrade with a config change: the checksum annotation rolls the pods; then roll back.
before=$(kubectl -n client-acme get deployment tsql -o jsonpath='{.spec.template.metadata.annotations.checksum/config}')
helm upgrade tsql "$CHART" -n client-acme -f "${values[client-acme]}" --set server.maxRunningQueries=6 --wait --timeout 3m \
    >"$WORK/upgrade.log" 2>&1 || { cat "$WORK/upgrade.log"; die "helm upgrade"; }
after=$(kubectl -n client-acme get deployment tsql -o jsonpath='{.spec.template.metadata.annotations.checksum/config}')
[[ $before != "$after" ]] || die "a config change left the pod template's checksum unchanged"
kubectl -n client-acme get configmap tsql -o jsonpath='{.data.tsql\.toml}' | grep -q '^max_running_queries = 6$' || die "the upgraded config lacks max_running_queries = 6"
helm rollback tsql 1 -n client-acme --wait --timeout 3m >"$WORK/rollback.log" 2>&1 || { cat "$WORK/rollback.log"; die "helm rollback"; }
back=$(kubectl -n client-acme get deployment tsql -o jsonpath='{.spec.template.metadata.annotations.checksum/config}')
[[ $back == "$before" ]] || die "helm rollback did not restore the config"
results+=("client-acme: helm upgrade (config change rolled the pods: new checksum) and helm rollback to revision 1")

# The ticket key the chart made is kept across upgrades.
kubectl -n client-acme get secret tsql-ticket-key -o jsonpath='{.data.ticket-key}' >"$WORK/key1"
helm upgrade tsql "$CHART" -n client-acme -f "${values[client-acme]}" --wait --timeout 3m >/dev/null 2>&1 || die "second helm upgrade"
kubectl -n client-acme get secret tsql-ticket-key -o jsonpath='{.data.ticket-key}' >"$WORK/key2"
cmp -s "$WORK/key1" "$WORK/key2" || die "helm upgrade replaced the chart-made ticket key"
results+=("client-acme: the chart-made ticket key survived helm upgrade (lookup)")

# The server enforces "restricted": a pod running as root is refused there.
if kubectl -n client-acme run root-pod --image localhost/tsql:check --restart Never \
    --overrides '{"spec":{"securityContext":{"runAsUser":0}}}' --dry-run=server >"$WORK/root-pod.log" 2>&1; then
    die "the namespace accepted a root pod: PSS restricted is not enforced, so the check above proves nothing"
fi
grep -q 'violates PodSecurity "restricted' "$WORK/root-pod.log" || { cat "$WORK/root-pod.log"; die "a root pod was refused for another reason"; }
results+=("client-acme: a root pod is refused (violates PodSecurity restricted), the chart's pods are not")

# The chart-made cluster secret is kept across upgrades too.
kubectl -n client-hooli get secret tsql-cluster-secret -o jsonpath='{.data.cluster-secret}' >"$WORK/cluster1"
helm upgrade tsql "$CHART" -n client-hooli -f "${values[client-hooli]}" --wait --timeout 3m >/dev/null 2>&1 || die "helm upgrade of client-hooli"
kubectl -n client-hooli get secret tsql-cluster-secret -o jsonpath='{.data.cluster-secret}' >"$WORK/cluster2"
cmp -s "$WORK/cluster1" "$WORK/cluster2" || die "helm upgrade replaced the chart-made cluster secret"
results+=("client-hooli: the chart-made cluster secret survived helm upgrade (lookup)")

for ns in "${namespaces[@]}"; do
    helm uninstall tsql -n "$ns" --wait --timeout 2m >/dev/null 2>&1 || die "helm uninstall in $ns"
done
results+=("helm uninstall in all four namespaces")

echo
say "passed in $((SECONDS - started)) s (Kubernetes $(kubectl version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'), kwok v0.8.0):"
printf '  %s\n' "${results[@]}"
