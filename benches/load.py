#!/usr/bin/env python3
"""Load benchmark: many clients at once against one `tsql serve`.

32 ADBC clients run a mix for --seconds (default 300) over the 100k-entity
order dataset (benches/gen_orders.py): group-bys, joins, prepared point
lookups, metadata calls, bad SQL and streams dropped after the first batch.
Every answer is checked against the answer one client got before the run
(a wrong answer is counted), every error must be the expected clear one
(an unclear error is counted). Reports p50/p99 per kind, the server's peak
resident memory, and throughput against the same mix run by one client.

    python3 benches/load.py [--clients 32] [--seconds 300] [--entities 100000]
"""

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

import adbc_driver_flightsql.dbapi as flightsql  # noqa: E402
import adbc_driver_manager  # noqa: E402

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))

GROUP_BY = "SELECT channel, count(*), round(sum(total), 2) FROM orders GROUP BY channel ORDER BY channel"
JOIN = ("SELECT o.channel, count(*) FROM orders o JOIN orders_lines l ON o.entity_id = l.entity_id "
        "WHERE l.qty > 5 GROUP BY o.channel ORDER BY o.channel")
LOOKUP = "SELECT orderid, channel FROM orders WHERE entity_id = ?"
BAD = "SELEC count(*) FROM orders"
DROPPED = "SELECT * FROM orders_lines"


def connect(uri):
    return flightsql.connect(uri, db_kwargs={"username": "admin", "password": "admin"}, autocommit=True)


def code_of(e):
    m = re.search(r"\((\w+); ", str(e))
    return m.group(1) if m else "?"


class Mix:
    """The reference answers and one client's loop over the mix."""

    def __init__(self, uri):
        self.uri = uri
        with connect(uri) as c, c.cursor() as cur:
            cur.execute(GROUP_BY)
            self.group_by = cur.fetchall()
            cur.execute(JOIN)
            self.join = cur.fetchall()
            cur.execute("SELECT entity_id, orderid, channel FROM orders ORDER BY entity_id LIMIT 2000")
            self.lookups = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
            self.tables = self.table_names(c)
        self.ids = list(self.lookups)

    @staticmethod
    def table_names(conn):
        names = set()
        for cat in conn.adbc_get_objects(depth="tables").read_all().to_pylist():
            for schema in cat["catalog_db_schemas"] or []:
                names.update(t["table_name"] for t in schema["db_schema_tables"] or [])
        return names

    def run(self, until, stats, rnd):
        kinds = ["group_by", "join", "lookup", "lookup", "lookup", "metadata", "bad_sql", "dropped"]
        with connect(self.uri) as conn:
            while time.time() < until:
                kind = rnd.choice(kinds)
                started = time.time()
                ok = True
                try:
                    with conn.cursor() as cur:
                        if kind == "group_by":
                            cur.execute(GROUP_BY)
                            ok = cur.fetchall() == self.group_by
                        elif kind == "join":
                            cur.execute(JOIN)
                            ok = cur.fetchall() == self.join
                        elif kind == "lookup":
                            eid = rnd.choice(self.ids)
                            cur.execute(LOOKUP, parameters=(eid,))
                            ok = cur.fetchall() == [self.lookups[eid]]
                        elif kind == "metadata":
                            ok = self.table_names(conn) == self.tables
                        elif kind == "bad_sql":
                            try:
                                cur.execute(BAD)
                                ok = False
                            except adbc_driver_manager.Error as e:
                                if code_of(e) != "InvalidArgument":
                                    stats.record(kind, time.time() - started, unclear=str(e))
                                    continue
                        elif kind == "dropped":
                            cur.execute(DROPPED)
                            reader = cur.fetch_record_batch()
                            ok = reader.read_next_batch().num_rows > 0
                            reader.close()
                except adbc_driver_manager.Error as e:
                    stats.record(kind, time.time() - started, unclear=str(e))
                    continue
                stats.record(kind, time.time() - started, wrong=not ok)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {}
        self.wrong = 0
        self.unclear = []

    def record(self, kind, seconds, wrong=False, unclear=None):
        with self.lock:
            self.latency.setdefault(kind, []).append(seconds)
            self.wrong += int(wrong)
            if unclear:
                self.unclear.append(f"{kind}: {unclear[:200]}")

    def total(self):
        return sum(len(v) for v in self.latency.values())


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def drive(mix, clients, seconds):
    stats = Stats()
    until = time.time() + seconds
    threads = [threading.Thread(target=mix.run, args=(until, stats, random.Random(i))) for i in range(clients)]
    started = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats, time.time() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--single-seconds", type=int, default=60)
    ap.add_argument("--entities", type=int, default=100_000)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "tsql"], cwd=ROOT, check=True)
    data = os.path.join(HERE, "data", f"orders-{args.entities}")
    if not os.path.isdir(data):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_orders.py"), data, "--entities", str(args.entities)],
                       check=True)
    os.environ["TSQL_BIN"] = os.path.join(TARGET, "release", "tsql")
    from conftest import Server

    work = tempfile.mkdtemp(prefix="tsql-load-")
    config = os.path.join(work, "tsql.toml")
    import bcrypt
    with open(config, "w") as f:
        f.write(f'data = "{data}"\nmetrics_listen = ""\n'
                f'[[users]]\nname = "admin"\npassword_hash = "{bcrypt.hashpw(b"admin", bcrypt.gensalt(4)).decode()}"\n'
                'roles = ["admin"]\n')
    server = Server(["--config", config])
    peak = [0.0]
    sampling = [True]

    def sample():
        while sampling[0]:
            try:
                for line in open(f"/proc/{server.proc.pid}/status"):
                    if line.startswith("VmRSS:"):
                        peak[0] = max(peak[0], int(line.split()[1]) / 1024)
            except OSError:
                pass
            time.sleep(0.25)

    threading.Thread(target=sample, daemon=True).start()
    try:
        mix = Mix(server.uri)
        single, single_secs = drive(mix, 1, args.single_seconds)
        many, many_secs = drive(mix, args.clients, args.seconds)
    finally:
        sampling[0] = False
        server.stop()
    print(f"{args.entities} entities, {args.clients} clients for {args.seconds} s, one client for {args.single_seconds} s")
    print(f"{'kind':<10} {'count':>7} {'p50 ms':>8} {'p99 ms':>8}   (one client: p50 ms)")
    for kind in sorted(many.latency):
        v = many.latency[kind]
        one = single.latency.get(kind, [0])
        print(f"{kind:<10} {len(v):>7} {pct(v, 50) * 1000:>8.1f} {pct(v, 99) * 1000:>8.1f}   ({pct(one, 50) * 1000:.1f})")
    rate_many, rate_one = many.total() / many_secs, single.total() / single_secs
    print(f"throughput: {rate_many:.1f} queries/s with {args.clients} clients vs {rate_one:.1f} with one "
          f"({rate_many / rate_one:.2f}x)")
    print(f"wrong answers: {many.wrong + single.wrong}, unclear errors: {len(many.unclear) + len(single.unclear)}")
    for u in (many.unclear + single.unclear)[:5]:
        print("  ", u)
    print(f"server peak RSS: {peak[0]:.0f} MB")


if __name__ == "__main__":
    main()
