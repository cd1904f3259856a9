#!/usr/bin/env bash
# Installs what building and testing tsql needs beyond Rust itself.
# Safe to run again; every step is optional for a plain `cargo test`.
set -uo pipefail
if ! command -v mold >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "setup: installing the mold linker (faster links)"
  (apt-get update -qq && apt-get install -y -qq mold) >/dev/null 2>&1 || echo "setup: mold not installed; linking with the default linker"
fi
