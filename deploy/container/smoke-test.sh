#!/usr/bin/env bash
# Smoke test of the tsql container image: builds it from the debug binary the
# tests use, runs it the way Kubernetes does (read-only root, user 65532, no
# capabilities, no-new-privileges, a tmpfs spill folder, the config and a
# password-hash secret mounted read-only, a memory and CPU limit) on free
# 127.0.0.1 ports of the host network, and checks (smoke_test.py): /readyz,
# a query over Flight SQL and one over the Trino protocol, JSON log lines, and
# a graceful SIGTERM (/readyz 503 at once, the running query's full result,
# exit code 0). Prints each check; exits non-zero on the first failure.
#
# Usage: deploy/container/smoke-test.sh [--binary PATH] [--keep]
#   --binary PATH   the tsql binary to put in the image (default: $TSQL_BIN, else
#                   $CARGO_TARGET_DIR/debug/tsql, else target/debug/tsql)
#   --keep          keep the image (localhost/tsql:smoke) afterwards
#   -h, --help      this text
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
binary="${TSQL_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/tsql}"
keep=0
while (($#)); do
    case "$1" in
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "smoke-test.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[[ -x "$binary" ]] || { echo "smoke-test.sh: no tsql binary at $binary: run cargo build first, or give --binary" >&2; exit 1; }

image=localhost/tsql:smoke
name="tsql-smoke-$$"
work="$(mktemp -d)"
cleanup() {
    podman rm --force --ignore "$name" >/dev/null 2>&1 || true
    ((keep)) || podman rmi --force "$image" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$here/build.sh" --binary "$binary" --tag "$image"

read -r flight trino metrics < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
)
password="smoke-$RANDOM-$RANDOM"
printf '%s' "$password" | "$binary" hash-password > "$work/password_hash"
cat > "$work/tsql.toml" <<TOML
listen = "127.0.0.1:$flight"
trino_listen = "127.0.0.1:$trino"
metrics_listen = "127.0.0.1:$metrics"
demo = true
# Trino clients send passwords only over HTTPS; here X-Trino-User is trusted.
trino_allow_insecure = true
spill_dir = "/var/lib/tsql/spill"
shutdown_grace_seconds = 30

[[users]]
name = "ann"
password_hash_file = "/run/secrets/tsql/password_hash"
roles = ["admin"]
TOML
chmod 0644 "$work/tsql.toml" "$work/password_hash"

limits=(--memory 1g --cpus 1.5)
if ! podman run --rm "${limits[@]}" "$image" --version >/dev/null 2>&1; then
    echo "smoke-test.sh: this machine cannot limit a container's memory and CPU; running without limits"
    limits=()
fi
echo "smoke-test.sh: config check inside the image"
podman run --rm --network host --read-only --user 65532:65532 "${limits[@]}" \
    -v "$work/tsql.toml:/etc/tsql/tsql.toml:ro" \
    -v "$work/password_hash:/run/secrets/tsql/password_hash:ro" \
    "$image" check-config --config /etc/tsql/tsql.toml
podman run --detach --name "$name" --network host --read-only --user 65532:65532 \
    --cap-drop ALL --security-opt no-new-privileges "${limits[@]}" \
    --tmpfs /var/lib/tsql/spill:rw,size=256m,U \
    -v "$work/tsql.toml:/etc/tsql/tsql.toml:ro" \
    -v "$work/password_hash:/run/secrets/tsql/password_hash:ro" \
    "$image" >/dev/null
echo "smoke-test.sh: started $image as $name (Flight SQL :$flight, Trino :$trino, metrics :$metrics)"
python3 "$here/smoke_test.py" --container "$name" --flight "$flight" --trino "$trino" \
    --metrics "$metrics" --password "$password"
