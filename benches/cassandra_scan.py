#!/usr/bin/env python3
"""Cassandra connector benchmark: rows/s of a full scan and of a filtered scan
of a 1M-row table on a real one-node Cassandra 5.0 (16 vnodes), through tsql
(Flight SQL server, ADBC client fetching every Arrow batch) against a plain
scylla-driver client (benches/cassandra_plain_client.rs) reading the same
table with the same number of token-range splits and the same number of
concurrent readers, in the same run.

    python3 benches/cassandra_scan.py [--rows 1000000] [--runs 3] [--trino]

Needs release builds (`cargo build --release --bin tsql --example
cassandra_plain_client`, done here) and the Cassandra jars (fetched by
../shared/upstreams/cassandra/cassandra-it.sh into ~/.cache, done here).
The filtered scan is `amount > 900` (about 10% of the rows): not a key, so
both sides read every row and filter it themselves.

With --trino, the same scans also run through Trino 476's Cassandra connector
(benches/trino_server.py fetches and starts it): the full scan with the trino
CLI discarding rows (`--output-format NULL`), the filtered one with its small
answer over the HTTP protocol; rows/s from the wall-clock time.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

from cassandra_it import Cluster, create_keyspace, write_config  # noqa: E402

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
PER_PARTITION = 100


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "tsql", "--example", "cassandra_plain_client"],
                   cwd=ROOT, check=True)


def load(session, rows):
    """bench.rows: `rows` rows, PER_PARTITION per partition, in unlogged batches of one partition."""
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import BatchStatement, BatchType

    create_keyspace(session, "bench")
    session.execute("CREATE TABLE IF NOT EXISTS bench.rows (bucket int, seq int, id bigint, name text, "
                    "amount double, ts timestamp, PRIMARY KEY ((bucket), seq))")
    insert = session.prepare("INSERT INTO bench.rows (bucket, seq, id, name, amount, ts) VALUES (?, ?, ?, ?, ?, ?)")
    statements = []
    for bucket in range(rows // PER_PARTITION):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for seq in range(PER_PARTITION):
            i = bucket * PER_PARTITION + seq
            batch.add(insert, (bucket, seq, i, f"name-{i % 997}", (i * 7919 % 100000) / 100.0,
                               1_700_000_000_000 + i))
        statements.append((batch, ()))
        if len(statements) == 200:
            for ok, r in execute_concurrent(session, statements, concurrency=32):
                assert ok, r
            statements = []
    for ok, r in execute_concurrent(session, statements, concurrency=32):
        assert ok, r


def tsql_run(uri, sql):
    import adbc_driver_flightsql.dbapi as flightsql

    with flightsql.connect(uri, db_kwargs={"username": "admin", "password": "admin"}, autocommit=True) as conn:
        with conn.cursor() as cur:
            start = time.time()
            cur.execute(sql)
            table = cur.fetch_arrow_table()
            return table, time.time() - start


def plain_run(splits, workers, threshold=None):
    args = [os.path.join(TARGET, "release", "examples", "cassandra_plain_client"), "127.0.0.1:9042",
            "bench", "rows", str(splits), str(workers)] + ([str(threshold)] if threshold is not None else [])
    run = subprocess.run(args, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"the plain client failed: {run.stderr}")
    out = run.stdout
    fields = dict(kv.split("=") for kv in out.split())
    return int(fields["rows"]), int(fields["matched"]), float(fields["seconds"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--trino", action="store_true", help="also through Trino 476's Cassandra connector")
    a = ap.parse_args()
    build()
    os.environ["TSQL_BIN"] = os.path.join(TARGET, "release", "tsql")
    from conftest import Server

    work = tempfile.mkdtemp(prefix="tsql-bench-cassandra-")
    t = time.time()
    cluster = Cluster(1, work, num_tokens=16, heap="1g")
    print(f"Cassandra up in {time.time() - t:.1f} s")
    try:
        session = cluster.session(timeout=120)
        t = time.time()
        load(session, a.rows)
        cluster.flush_and_estimate()
        print(f"loaded {a.rows} rows in {time.time() - t:.1f} s")
        config = write_config(os.path.join(work, "tsql.toml"), [{
            "kind": "cassandra", "catalog": "cassandra", "contact_points": ["127.0.0.1:9042"],
            "keyspaces": ["bench"], "consistency": "QUORUM", "request_timeout_seconds": 60}])
        server = Server(["--config", str(config)])
        try:
            full = "SELECT * FROM cassandra.bench.rows"
            filtered = "SELECT count(*), sum(amount) FROM cassandra.bench.rows WHERE amount > 900"
            plan, _ = tsql_run(server.uri, "EXPLAIN " + full)
            line = next(str(r) for r in plan.column(1).to_pylist() if "CassandraScanExec" in str(r))
            splits = int(re.search(r"splits=(\d+)", line).group(1))
            workers = int(re.search(r"partitions=(\d+)\s*$", line).group(1))
            print(f"tsql plan: {splits} splits over {workers} partitions")
            results = {"full": ([], []), "filtered": ([], [])}
            want = None
            for _ in range(a.runs):
                table, secs = tsql_run(server.uri, full)
                assert table.num_rows == a.rows, table.num_rows
                results["full"][0].append(a.rows / secs)
                n, _, secs = plain_run(splits, workers)
                assert n == a.rows, n
                results["full"][1].append(a.rows / secs)
                table, secs = tsql_run(server.uri, filtered)
                count = table.column(0)[0].as_py()
                results["filtered"][0].append(a.rows / secs)
                n, matched, secs = plain_run(splits, workers, 900)
                assert n == a.rows and matched == count, (n, matched, count)
                want = count
                results["filtered"][1].append(a.rows / secs)
            print(f"filtered scan matches {want} rows in both")
            trino = trino_runs(work, a, full, filtered, want) if a.trino else None
            head = f"{'scan':10} {'tsql rows/s':>12} {'plain rows/s':>13} {'ratio':>6}"
            print(head + (f" {'trino rows/s':>13} {'tsql/trino':>10}" if trino else ""))
            for name, (ts, ps) in results.items():
                t_med, p_med = statistics.median(ts), statistics.median(ps)
                line = f"{name:10} {t_med:12.0f} {p_med:13.0f} {t_med / p_med:6.2f}"
                if trino:
                    line += f" {trino[name]:13.0f} {t_med / trino[name]:10.2f}"
                print(line)
        finally:
            server.stop()
    finally:
        cluster.stop()


def trino_runs(work, a, full, filtered, count):
    """Median rows/s of the two scans through Trino's Cassandra connector."""
    from trino_server import Trino, fetch

    fetch()
    catalog = {"connector.name": "cassandra", "cassandra.contact-points": "127.0.0.1",
               "cassandra.native-protocol-port": "9042", "cassandra.load-policy.dc-aware.local-dc": "datacenter1",
               "cassandra.consistency-level": "QUORUM"}
    out = {"full": [], "filtered": []}
    with Trino(os.path.join(work, "trino"), catalogs={"cassandra": catalog}, heap="1G") as t:
        t.cli("--execute", full + " LIMIT 1", "--output-format", "NULL")  # warm up the catalog
        for _ in range(a.runs):
            start = time.time()
            t.cli("--execute", full, "--output-format", "NULL")
            out["full"].append(a.rows / (time.time() - start))
            start = time.time()
            _, got, _ = t.query(filtered)
            out["filtered"].append(a.rows / (time.time() - start))
            assert got[0][0] == count, (got, count)
    return {k: statistics.median(v) for k, v in out.items()}


if __name__ == "__main__":
    main()
