#!/usr/bin/env bash
# Runs the whole tsql test suite: unit tests of every crate, the sqllogictest
# files in sql-tests/, the command-line tests, and the real-client tests in
# tests/python/ (ADBC and pyarrow against a real `tsql serve`, and the Cyoda
# connector against a real cyoda-go from ../shared/upstreams/cyoda-go or $CYODA_BIN).
# Uses the mold linker when it is installed (scripts/setup.sh installs it and
# the Python client packages).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v mold >/dev/null 2>&1 && [[ "${RUSTFLAGS:-}" != *fuse-ld* ]]; then
  export RUSTFLAGS="${RUSTFLAGS:-} -C link-arg=-fuse-ld=mold"
fi
cargo test --workspace "$@"
# The same sql-tests/ on a coordinator with three worker processes, every
# query forced over the workers: the answers must be one node's.
TSQL_SLT_WORKERS=3 cargo test --test sqllogictests "$@"
if ! python3 -c "import adbc_driver_flightsql, pyarrow.flight, pytest, bcrypt, jwt, cryptography, prometheus_client, cassandra, trino, sqlalchemy" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
python3 -m pytest -q -p no:cacheprovider -W ignore::Warning tests/python
# The Arrow Flight SQL JDBC driver from Maven Central: 18.3.0 and the newest
# release (Maven itself resolves the open version range), or JDBC_VERSIONS.
if [ -z "${JDBC_VERSIONS:-}" ]; then
  listing=$(mktemp)
  (cd tests/jdbc && mvn -B -q dependency:list -Djdbc.version='[18.3.0,)' \
      -DincludeArtifactIds=flight-sql-jdbc-driver -DoutputFile="$listing" >/dev/null 2>&1) || true
  newest=$(sed -n 's/.*flight-sql-jdbc-driver:jar:\([^:]*\):.*/\1/p' "$listing" | head -1)
  rm -f "$listing"
  [ -n "$newest" ] || echo "JDBC: cannot look up the newest driver version; testing 18.3.0 only"
  JDBC_VERSIONS=$(printf '%s\n' 18.3.0 $newest | sort -u | tr '\n' ' ')
fi
for v in $JDBC_VERSIONS; do
  echo "JDBC driver $v:"
  (cd tests/jdbc && mvn -B -q -Djdbc.version="$v" -Dtsql.bin="$CARGO_TARGET_DIR/debug/tsql" test)
  echo "JDBC driver $v: every test passed"
done
# The Helm chart: lint, render, validate against Kubernetes schemas, kube-score,
# refused bad values, the rendered config through `tsql check-config`.
bash scripts/k8s-check.sh
# The container image, built from the debug binary above, run locked down with
# podman and queried over Flight SQL and Trino, then drained with SIGTERM.
bash deploy/container/smoke-test.sh
