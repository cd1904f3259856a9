#!/usr/bin/env bash
# Installs what builds and runs the tsql container image: podman and buildah
# (with runc, skopeo, umoci) from the Debian packages, and writes the
# containers.conf settings this kind of machine needs (runc, cgroupfs, ulimits
# within the machine's hard limits) unless a containers.conf is there already.
#
#   deploy/container/install-tools.sh          # as root (apt-get)
#   deploy/container/install-tools.sh --help
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi

packages=(podman buildah skopeo umoci runc uidmap slirp4netns fuse-overlayfs catatonit)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-tools.sh: installing ${missing[*]} needs root (apt-get); run it with sudo" >&2
        exit 1
    fi
    echo "install-tools.sh: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Rootful podman reads /etc/containers/containers.conf; rootless, the user's own.
if [[ $(id -u) -eq 0 ]]; then
    conf=/etc/containers/containers.conf
else
    conf="${XDG_CONFIG_HOME:-$HOME/.config}/containers/containers.conf"
fi
if [[ ! -e "$conf" ]]; then
    mkdir -p "$(dirname "$conf")"
    # crun fails on hybrid cgroups here ("cgroups in hybrid mode not supported"),
    # and podman's default ulimits exceed the hard limits of some machines.
    cat > "$conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
    echo "install-tools.sh: wrote $conf (runc, cgroupfs, ulimits)"
fi
podman --version
