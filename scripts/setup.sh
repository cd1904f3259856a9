#!/usr/bin/env bash
# Installs what building and testing tsql needs beyond Rust itself:
# the mold linker (optional, faster links) and the Python client packages.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v mold >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "setup: installing the mold linker (faster links)"
  (apt-get update -qq && apt-get install -y -qq mold) >/dev/null 2>&1 || echo "setup: mold not installed; linking with the default linker"
fi
echo "setup: installing the Python client packages for tests/python"
python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
