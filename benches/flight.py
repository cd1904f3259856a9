#!/usr/bin/env python3
"""Flight SQL benchmark: result streaming throughput and point-lookup latency.

Streaming: a large result (default 10M rows: integers, a string, a double, a
timestamp) is fetched from `tsql serve` by two clients:
  - ADBC (adbc-driver-flightsql, the way applications read), and
  - pyarrow.flight (GetFlightInfo + DoGet, no driver in between).
The baseline, measured in the same run with the same two clients, is the very
same record batches (saved from the first ADBC fetch) served by a bare
arrow-flight server that holds them in memory (benches/raw_flight_server.rs):
what plain Flight can do on this machine. The figure is tsql/raw per client
(target: >= 80%). The result comes from generate_series with cheap
expressions, so the numbers measure the serving path (execution, conversion to
wire types, encoding, transport), not heavy computing or entity decoding
(`benches/run.py` measures that); `--sql` streams any other query.

Point lookups: the p50/p95 latency of `SELECT * FROM orders WHERE entity_id = ?`
through ADBC on a warm server, over the benchmark entities
(benches/data/orders-N, made by benches/gen_orders.py) when present, else the
demo data.

Usage: python3 benches/flight.py [--rows N] [--runs R] [--lookups L]
"""

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

import adbc_driver_flightsql.dbapi as flight_sql  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.flight as fl  # noqa: E402

from flightproto import flight_sql_command  # noqa: E402


def build():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    print("building the release binaries (tsql, raw_flight_server) ...", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "tsql", "--example", "raw_flight_server"],
                   cwd=ROOT, check=True)
    return os.path.join(target, "release", "tsql"), os.path.join(target, "release", "examples", "raw_flight_server")


def start(args, pattern):
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        line = proc.stderr.readline()
        m = re.search(pattern, line)
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"{args[0]} did not start: {line}")


def stream_sql(rows):
    return (f"SELECT value AS n, value * 3 AS m, "
            f"CASE value % 4 WHEN 0 THEN 'web' WHEN 1 THEN 'store' WHEN 2 THEN 'phone' ELSE 'partner' END AS channel, "
            f"CAST(value AS DOUBLE) / 7 AS price, "
            f"to_timestamp_micros(1704067200000000 + value * 1000000) AS at "
            f"FROM generate_series(1, {rows})")


def fetch_adbc(uri, sql, keep=False, login=True):
    kept = [] if keep else None
    credentials = {"username": "admin", "password": "admin"} if login else {}
    with flight_sql.connect(uri, db_kwargs=credentials) as conn:
        with conn.cursor() as cur:
            started = time.perf_counter()
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            rows = size = 0
            for batch in reader:
                rows += batch.num_rows
                size += batch.nbytes
                if keep:
                    kept.append(batch)
            elapsed = time.perf_counter() - started
    return elapsed, rows, size, kept


def fetch_flight(client, options, descriptor=None, ticket=None):
    started = time.perf_counter()
    if descriptor is not None:
        info = client.get_flight_info(descriptor, options)
        ticket = info.endpoints[0].ticket
    reader = client.do_get(ticket, options)
    rows = size = 0
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        rows += chunk.data.num_rows
        size += chunk.data.nbytes
    return time.perf_counter() - started, rows, size


def streaming(tsql_port, raw_bin, sql, rows, runs):
    uri = f"grpc://127.0.0.1:{tsql_port}"
    # Warm-up run; its batches become the raw server's data.
    _, got, _, batches = fetch_adbc(uri, sql, keep=True)
    assert got == rows, f"expected {rows} rows, got {got}"
    with tempfile.NamedTemporaryFile(suffix=".arrow", delete=False) as f:
        path = f.name
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for b in batches:
            writer.write_batch(b)
    del batches
    raw, raw_port = start([raw_bin, path], r"grpc://127\.0\.0\.1:(\d+)")
    try:
        tsql_client = fl.FlightClient(uri)
        tsql_options = fl.FlightCallOptions(headers=[tsql_client.authenticate_basic_token("admin", "admin")])
        raw_client = fl.FlightClient(f"grpc://127.0.0.1:{raw_port}")
        raw_options = fl.FlightCallOptions()
        descriptor = fl.FlightDescriptor.for_command(flight_sql_command(sql))
        fetch_flight(raw_client, raw_options, ticket=fl.Ticket(b"all"))
        raw_uri = f"grpc://127.0.0.1:{raw_port}"
        paths = {
            ("ADBC", "tsql"): lambda: fetch_adbc(uri, sql)[:3],
            ("ADBC", "raw"): lambda: fetch_adbc(raw_uri, sql, login=False)[:3],
            ("pyarrow.flight", "tsql"): lambda: fetch_flight(tsql_client, tsql_options, descriptor=descriptor),
            ("pyarrow.flight", "raw"): lambda: fetch_flight(raw_client, raw_options, descriptor=descriptor),
        }
        times = {k: [] for k in paths}
        sizes = {}
        for _ in range(runs):
            # Interleaved, so drift on the machine hits every path alike.
            for key, fetch in paths.items():
                t, n, s = fetch()
                times[key].append(t)
                sizes[key] = (n, s)
        for name, (n, _) in sizes.items():
            assert n == rows, f"{name}: {n} rows, expected {rows}"
    finally:
        raw.kill()
        os.unlink(path)
    return {k: statistics.median(v) for k, v in times.items()}, sizes


def lookups(tsql_port, table, count):
    uri = f"grpc://127.0.0.1:{tsql_port}"
    with flight_sql.connect(uri, db_kwargs={"username": "admin", "password": "admin"}) as conn:
        with conn.cursor() as cur:
            cur.execute(f"SELECT entity_id FROM {table}")
            ids = [r[0] for r in cur.fetchall()]
            rng = random.Random(7)
            picked = [rng.choice(ids) for _ in range(count + 20)]
            latencies = []
            for i, entity in enumerate(picked):
                started = time.perf_counter()
                cur.execute(f"SELECT * FROM {table} WHERE entity_id = ?", parameters=(entity,))
                found = cur.fetchall()
                elapsed = time.perf_counter() - started
                assert len(found) == 1, f"{entity}: {len(found)} rows"
                if i >= 20:  # the first ones warm the server up
                    latencies.append(elapsed)
    latencies.sort()
    return len(ids), latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--lookups", type=int, default=200)
    p.add_argument("--sql", help="the streamed query (default: --rows generated rows of five columns); "
                                 "with --rows giving its row count")
    p.add_argument("--data", help="entity folder for the lookups (default benches/data/orders-1000000, else the demo)")
    p.add_argument("--tsql", help="tsql binary (default: build the release binary)")
    p.add_argument("--raw", help="raw_flight_server binary (default: build it)")
    args = p.parse_args()
    tsql_bin, raw_bin = (args.tsql, args.raw) if args.tsql and args.raw else build()
    data = args.data or os.path.join(ROOT, "benches", "data", "orders-1000000")
    source = ["--data", data, "--config", admin_config(tsql_bin)] if os.path.isdir(data) else ["--demo"]
    server, port = start([tsql_bin, "serve", "--listen", "127.0.0.1:0", *source], r"grpc://127\.0\.0\.1:(\d+)")
    try:
        medians, sizes = streaming(port, raw_bin, args.sql or stream_sql(args.rows), args.rows, args.runs)
        entities, p50, p95 = lookups(port, "orders", args.lookups)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"\nstreaming {args.rows:,} rows (median of {args.runs}, 2 cores, loopback):")
    print("| client | server | seconds | rows/s | MB/s | tsql / raw |")
    print("|---|---|---|---|---|---|")
    for (client, server), t in medians.items():
        rows, size = sizes[(client, server)]
        ratio = f"{medians[(client, 'raw')] / t:.0%}" if server == "tsql" else ""
        print(f"| {client} | {server} | {t:.2f} | {rows / t / 1e6:.1f} M | {size / t / 1e6:.0f} | {ratio} |")
    print(f"\npoint lookup by entity_id over ADBC ({entities:,} entities in `orders`, {args.lookups} lookups, warm): "
          f"p50 {p50 * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms")


def admin_config(tsql_bin):
    """A config file with user admin/admin, for serving a data folder."""
    hashed = subprocess.run([tsql_bin, "hash-password"], input="admin", capture_output=True, text=True,
                            check=True).stdout.strip()
    f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    f.write(f'[[users]]\nname = "admin"\npassword_hash = "{hashed}"\n')
    f.close()
    return f.name


if __name__ == "__main__":
    main()
