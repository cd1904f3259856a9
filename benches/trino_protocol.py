#!/usr/bin/env python3
"""Trino protocol benchmark: rows/s of one large result (default 10M rows of
bigint, double, varchar) over Trino's HTTP protocol — the Python `trino`
client and the Trino JDBC driver — against the same result over Arrow Flight
SQL (ADBC), in the same run against the same release `tsql serve --demo`;
and the latency of a point lookup over both.

    python3 benches/trino_protocol.py [--rows 10000000] [--python-rows 1000000] [--lookups 50]

The Python client parses every row in Python, so it reads --python-rows
(default 1M) of the same query; rows/s are comparable.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def query(n):
    return (f"SELECT value AS id, value * 2.5 AS amount, 'row-' || CAST(value % 1000 AS VARCHAR) AS name "
            f"FROM range({n})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--python-rows", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=50)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "tsql"], cwd=ROOT, check=True)
    os.environ["TSQL_BIN"] = os.path.join(TARGET, "release", "tsql")
    import adbc_driver_flightsql.dbapi as flightsql
    import trino

    from test_trino import TrinoServer
    from test_trino_jdbc import driver_jar, newest_version

    jdbc_version = os.environ.get("TRINO_JDBC_VERSION") or newest_version() or "476"
    jar = driver_jar(jdbc_version)
    server = TrinoServer(["--demo"])
    results = {}
    try:
        flight = flightsql.connect(server.server.uri, db_kwargs={"username": "admin", "password": "admin"},
                                   autocommit=True)
        with flight.cursor() as cur:
            start = time.time()
            cur.execute(query(a.rows))
            table = cur.fetch_arrow_table()
            results["Flight SQL (ADBC)"] = (table.num_rows, time.time() - start)
            assert table.num_rows == a.rows
            del table
        out = subprocess.run(["java", "-cp", jar, os.path.join(HERE, "TrinoJdbcScan.java"), str(server.port),
                              query(a.rows)], capture_output=True, text=True, check=True).stdout
        m = re.search(r"rows=(\d+) seconds=([\d.]+)", out)
        results["Trino protocol (JDBC)"] = (int(m.group(1)), float(m.group(2)))
        assert int(m.group(1)) == a.rows
        conn = trino.dbapi.connect(host="127.0.0.1", port=server.port, user="admin", catalog="cyoda",
                                   schema="entities", http_scheme="http")
        cur = conn.cursor()
        start = time.time()
        cur.execute(query(a.python_rows))
        n = 0
        while True:
            batch = cur.fetchmany(10000)
            if not batch:
                break
            n += len(batch)
        results["Trino protocol (Python)"] = (n, time.time() - start)
        assert n == a.python_rows
        print(f"{'client':26} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'vs Flight':>9}")
        base = results["Flight SQL (ADBC)"][0] / results["Flight SQL (ADBC)"][1]
        for name, (rows, secs) in results.items():
            print(f"{name:26} {rows:10d} {secs:8.2f} {rows / secs:10.0f} {rows / secs / base:9.3f}")
        # Point lookups: one customer by id, median of --lookups.
        with flight.cursor() as c2:
            c2.execute("SELECT entity_id FROM customers ORDER BY entity_id LIMIT 1")
            ident = c2.fetchone()[0]
        sql = f"SELECT * FROM customers WHERE entity_id = '{ident}'"
        lat = {"Flight SQL (ADBC)": [], "Trino protocol (Python)": []}
        with flight.cursor() as c2:
            for _ in range(a.lookups):
                t = time.time()
                c2.execute(sql)
                assert len(c2.fetchall()) == 1
                lat["Flight SQL (ADBC)"].append(time.time() - t)
        for _ in range(a.lookups):
            t = time.time()
            cur.execute(sql)
            assert len(cur.fetchall()) == 1
            lat["Trino protocol (Python)"].append(time.time() - t)
        for name, xs in lat.items():
            print(f"point lookup {name:26} median {statistics.median(xs) * 1000:6.1f} ms")
        flight.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
