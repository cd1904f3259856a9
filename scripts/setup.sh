#!/usr/bin/env bash
# Installs what building and testing tsql needs beyond Rust itself:
# podman/buildah (the container smoke test),
# the mold linker (optional, faster links) and the Python client packages.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v mold >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "setup: installing the mold linker (faster links)"
  (apt-get update -qq && apt-get install -y -qq mold) >/dev/null 2>&1 || echo "setup: mold not installed; linking with the default linker"
fi
echo "setup: installing the Python client packages for tests/python"
python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
# podman and buildah for the container image's smoke test (Debian packages, as root).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  bash deploy/container/install-tools.sh || echo "setup: podman not installed; the container smoke test will fail"
fi
