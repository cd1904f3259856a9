#!/usr/bin/env bash
# Builds the tsql container image FROM scratch: the tsql binary, the shared
# libraries it links (and the dynamic loader), CA certificates, a non-root user
# tsql (uid/gid 65532) and an empty spill folder /var/lib/tsql/spill that user
# may write (Kubernetes mounts an emptyDir there). No shell, no package manager.
#
# Usage: deploy/container/build.sh [--binary PATH] [--tag TAG] [--oci-archive FILE]
#   --binary PATH        put this tsql binary in the image (e.g. the debug build
#                        the tests made) instead of running `cargo build --release`
#   --tag TAG            the image's name (default localhost/tsql:<Cargo.toml version>)
#   --oci-archive FILE   also save the image as an OCI archive (podman save)
#   -h, --help           this text
#
# The image runs as 65532:65532 with TSQL_LOG_FORMAT=json, entrypoint
# /usr/local/bin/tsql and command `serve --config /etc/tsql/tsql.toml`; mount
# the config file there. Podman/buildah come from deploy/container/install-tools.sh
# (run when podman is missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
binary=""
tag=""
archive=""
while (($#)); do
    case "$1" in
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --tag) tag="${2:?--tag needs a name}"; shift 2 ;;
        --oci-archive) archive="${2:?--oci-archive needs a file name}"; shift 2 ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)"
tag="${tag:-localhost/tsql:$version}"

if [[ -z "$binary" ]]; then
    echo "build.sh: cargo build --release"
    (cd "$root" && cargo build --release --bin tsql)
    binary="${CARGO_TARGET_DIR:-$root/target}/release/tsql"
fi
[[ -x "$binary" ]] || { echo "build.sh: $binary is not an executable tsql binary" >&2; exit 1; }
command -v podman >/dev/null || "$here/install-tools.sh"
certs=/etc/ssl/certs/ca-certificates.crt
[[ -f "$certs" ]] || { echo "build.sh: $certs is missing: apt-get install ca-certificates" >&2; exit 1; }

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/etc/tsql" "$rootfs/tmp" \
    "$context/home/spill"
cp "$binary" "$rootfs/usr/local/bin/tsql"
# The libraries the binary links, and the loader (the `ldd` lines with a path).
ldd "$binary" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
    cp -L --parents "$lib" "$rootfs/"
done
cp "$certs" "$rootfs/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\ntsql:x:65532:65532:tsql:/var/lib/tsql:/sbin/nologin\n' \
    > "$rootfs/etc/passwd"
printf 'root:x:0:\ntsql:x:65532:\n' > "$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"

revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
source_url="$(git -C "$root" config --get remote.origin.url 2>/dev/null || echo tsql)"
cat > "$context/Containerfile" <<CONTAINERFILE
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 home/ /var/lib/tsql/
USER 65532:65532
WORKDIR /var/lib/tsql
# JSON log lines; spill files go to the spill mount unless spill_dir says otherwise.
ENV TSQL_LOG_FORMAT=json TMPDIR=/var/lib/tsql/spill
# Flight SQL, the Trino protocol, metrics and health.
EXPOSE 32010 8080 9464
LABEL org.opencontainers.image.title="tsql" \\
      org.opencontainers.image.description="SQL federation server: Arrow Flight SQL and the Trino protocol over Cyoda entities, Cassandra and files" \\
      org.opencontainers.image.version="$version" \\
      org.opencontainers.image.revision="$revision" \\
      org.opencontainers.image.source="$source_url" \\
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/tsql"]
CMD ["serve", "--config", "/etc/tsql/tsql.toml"]
CONTAINERFILE

podman build --quiet --network host --tag "$tag" --file "$context/Containerfile" "$context" >/dev/null
size="$(podman image inspect --format '{{.Size}}' "$tag")"
echo "build.sh: built $tag ($((size / 1024 / 1024)) MiB, $size bytes) from $binary"
if [[ -n "$archive" ]]; then
    rm -f "$archive"
    podman save --quiet --format oci-archive --output "$archive" "$tag"
    echo "build.sh: saved $tag as the OCI archive $archive"
fi
