#!/usr/bin/env bash
# Runs the whole tsql test suite: unit tests of every crate, the sqllogictest
# files in sql-tests/ and the command-line tests in tests/.
# Uses the mold linker when it is installed (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v mold >/dev/null 2>&1; then
  export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-fuse-ld=mold"
fi
cargo test --workspace "$@"
