#!/usr/bin/env python3
"""tsql vs DuckDB on the same entity files, in one run.

Generates N order entities (benches/gen_orders.py) unless they exist, then times
`tsql sql` (release build, a new process per query: it indexes the files every
time) and DuckDB (`read_ndjson` with the same newest-revision-not-deleted
semantics, in-process) on:
  Q1  a group-by over the root table,
  Q2  an aggregate over a child table (the order lines).
Both answers are compared; the report gives the median of --runs runs and the
ratio tsql / DuckDB (below 1.0: tsql is faster).

    python3 benches/run.py                     # 1M entities (~600 MB)
    python3 benches/run.py --entities 100000   # quicker
"""

import argparse
import csv
import io
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

QUERIES = {
    "Q1 root group-by": (
        "SELECT channel, count(*) AS n, sum(total) AS total FROM orders GROUP BY channel ORDER BY channel",
        """WITH cur AS ({current})
           SELECT data.channel, count(*), sum(data.total) FROM cur WHERE NOT deleted GROUP BY 1 ORDER BY 1""",
    ),
    "Q2 child aggregate": (
        "SELECT count(*) AS n, sum(qty * price) AS value FROM orders_lines",
        """WITH cur AS ({current})
           SELECT count(*), sum(l.qty * l.price) FROM cur, unnest(cur.data.lines) AS t(l) WHERE NOT deleted""",
    ),
}

CURRENT = """SELECT data, coalesce(meta.deleted, false) AS deleted FROM read_ndjson('{glob}')
             QUALIFY row_number() OVER (PARTITION BY meta.id ORDER BY meta.lastUpdateTime DESC) = 1"""


def tsql_binary(path):
    if path:
        return path
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    print("building tsql (release)…", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    return os.path.join(target, "release", "tsql")


def run_tsql(binary, data, sql):
    t = time.perf_counter()
    out = subprocess.run([binary, "sql", "--data", data, "--format", "csv", sql], check=True, capture_output=True, text=True).stdout
    elapsed = time.perf_counter() - t
    rows = list(csv.reader(io.StringIO(out)))[1:]
    return elapsed, rows


def run_duckdb(duckdb, data, sql):
    glob = os.path.join(data, "orders", "1", "*.ndjson")
    con = duckdb.connect()
    t = time.perf_counter()
    rows = con.execute(sql.format(current=CURRENT.format(glob=glob))).fetchall()
    elapsed = time.perf_counter() - t
    con.close()
    return elapsed, [[str(v) for v in r] for r in rows]


def same(a, b):
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        for x, y in zip(ra, rb):
            try:
                fx, fy = float(x), float(y)
                if abs(fx - fy) > 1e-6 * max(1.0, abs(fx)):
                    return False
            except ValueError:
                if x != y:
                    return False
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entities", type=int, default=1_000_000)
    p.add_argument("--data", help="folder with orders/1/*.ndjson (default benches/data/orders-N)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tsql", help="tsql binary (default: build the release binary)")
    a = p.parse_args()
    try:
        import duckdb
    except ImportError:
        sys.exit("DuckDB is missing: pip install duckdb")
    data = a.data or os.path.join(HERE, "data", f"orders-{a.entities}")
    if not os.path.isdir(os.path.join(data, "orders", "1")):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_orders.py"), data, "--entities", str(a.entities)], check=True)
    binary = tsql_binary(a.tsql)
    size = sum(os.path.getsize(os.path.join(data, "orders", "1", f)) for f in os.listdir(os.path.join(data, "orders", "1")))
    print(f"data: {data} ({size / 1e6:.0f} MB), duckdb {duckdb.__version__}, {os.cpu_count()} cores, median of {a.runs} runs")
    print(f"{'query':<22} {'tsql s':>8} {'duckdb s':>9} {'tsql/duckdb':>12}  answers")
    ok = True
    for name, (tsql_sql, duck_sql) in QUERIES.items():
        t_times, d_times = [], []
        for _ in range(a.runs):
            tt, trows = run_tsql(binary, data, tsql_sql)
            dt, drows = run_duckdb(duckdb, data, duck_sql)
            t_times.append(tt)
            d_times.append(dt)
        agree = same(trows, drows)
        ok &= agree
        t, d = statistics.median(t_times), statistics.median(d_times)
        print(f"{name:<22} {t:>8.2f} {d:>9.2f} {t / d:>12.2f}  {'agree' if agree else 'DIFFER'}")
        if not agree:
            print(f"  tsql:   {trows}\n  duckdb: {drows}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
