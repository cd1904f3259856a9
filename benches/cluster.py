#!/usr/bin/env python3
"""Cluster scaling, measured honestly on a 2-core machine: every process is
pinned to one core with `taskset`, so a worker is one core.

Setups, each measured in the same run, median of --runs runs after a warm-up
(the warm-up builds each process's file index):
  local      one `tsql serve` on core 0, distributed = off: the local plan;
  1 core     a coordinator on core 1 and two workers both on core 0,
             distributed = on: the distributed plan (two scan tasks) on one
             core's worth of workers; against `local`, the overhead of
             distributing (one worker alone would get a plan of one task,
             which datafusion-distributed leaves undistributed);
  2 cores    the same coordinator and two workers, one on core 0 and one on
             core 1: the same plan on twice the cores.
The coordinator only plans and merges (a merge of one task runs on it); it
shares core 1 with a worker in `2 cores`, which is what 2 cores allow.
Each process's CPU seconds per query are read from /proc, so the per-task
cost that does not shrink with a task's share can be seen.

Queries: Q1 a group-by over 1M order entities, Q2 the aggregate over their
order lines (local entity files from benches/gen_orders.py, the same folder
for every process: the shared volume local files need), and with
--cassandra Q3 a filtered scan of a 1M-row Cassandra table (a real Cassandra
5, unpinned: it is the upstream every worker reads). Answers must agree
across setups. Then a projection to 10 and 50 workers from the measured
costs (see the README, "Cluster scaling").

    python3 benches/cluster.py [--entities 1000000] [--runs 3] [--cassandra]

Needs a release tsql (built here unless --tsql is given).
"""

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

SECRET = "benchmark-cluster-secret-0123456789abcdef"
QUERIES = {
    "Q1 root group-by": "SELECT channel, count(*), sum(total) FROM files.entities.orders GROUP BY channel ORDER BY channel",
    "Q2 child aggregate": "SELECT count(*), sum(qty * price) FROM files.entities.orders_lines",
}
CASSANDRA_QUERY = ("Q3 Cassandra scan", "SELECT count(*), sum(amount) FROM cassandra.bench.rows WHERE amount > 900")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tsql_binary(path):
    if path:
        return path
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    print("building tsql (release)…", file=sys.stderr)
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "tsql"], cwd=ROOT, check=True)
    return os.path.join(target, "release", "tsql")


class Node:
    """A `tsql serve` pinned to `core`, reading `sources`."""

    def __init__(self, binary, tmp, name, core, sources, workers=(), distributed="off"):
        from cassandra_it import write_config

        self.flight = free_port()
        self.metrics = free_port()
        self.worker = free_port()
        settings = {"listen": f"127.0.0.1:{self.flight}", "metrics_listen": f"127.0.0.1:{self.metrics}",
                    "trino_listen": f"127.0.0.1:{free_port()}", "cluster_secret": SECRET,
                    "worker_listen": f"127.0.0.1:{self.worker}", "distributed": distributed,
                    "query_timeout_seconds": 3600}
        if workers:
            settings["workers"] = [f"127.0.0.1:{w.worker}" for w in workers]
        config = write_config(os.path.join(tmp, f"{name}.toml"), sources, users=("bench",), extra=settings)
        self.log = open(os.path.join(tmp, f"{name}.log"), "w")
        self.proc = subprocess.Popen(["taskset", "-c", str(core), binary, "serve", "--config", str(config)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/readyz", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{name} did not start; see {self.log.name}")

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics}/metrics", timeout=5).read().decode()
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    def cpu(self):
        """CPU seconds the process used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def run(node, sql):
    import adbc_driver_flightsql.dbapi as flightsql

    with flightsql.connect(f"grpc://127.0.0.1:{node.flight}", db_kwargs={"username": "bench", "password": "bench"},
                           autocommit=True) as conn:
        with conn.cursor() as cur:
            started = time.perf_counter()
            cur.execute(sql)
            rows = cur.fetchall()
            return time.perf_counter() - started, rows


def stages_of(node, sql):
    """The stages line of the last finished run of `sql` (rows each stage produced)."""
    _, rows = run(node, "SELECT sql, stages FROM system.runtime.queries WHERE state = 'finished'")
    lines = [s for q, s in rows if q == sql and s]
    return lines[-1] if lines else ""


def rounded(rows):
    return [tuple(round(v, 2) if isinstance(v, float) else v for v in r) for r in rows]


def measure(setups, queries, runs):
    """{query: {setup: (median seconds, rows, median CPU seconds per process)}}"""
    out = {}
    for name, sql in queries:
        out[name] = {}
        for label, coordinator, processes in setups:
            run(coordinator, sql)  # warm-up: file indexes, connections
            times, cpus, rows = [], [], None
            for _ in range(runs):
                before = [p.cpu() for p in processes]
                t, rows = run(coordinator, sql)
                cpus.append([p.cpu() - b for p, b in zip(processes, before)])
                times.append(t)
            cpu = [statistics.median(c) for c in zip(*cpus)]
            out[name][label] = (statistics.median(times), rounded(rows), cpu)
            print(f"  {name:<20} {label:<8} {statistics.median(times):7.3f} s  (runs: "
                  + ", ".join(f"{t:.3f}" for t in times) + "; CPU s per process: "
                  + ", ".join(f"{c:.2f}" for c in cpu) + ")", flush=True)
    return out


def project(two_cores_cpu, workers=(10, 50)):
    """T(n) = the coordinator's CPU per query + the tasks' CPU / n: the work
    divided as it divided from one core to two, nothing else saturating (the
    README says what does first)."""
    coordinator, tasks = two_cores_cpu[0], sum(two_cores_cpu[1:])
    return coordinator, tasks, {n: coordinator + tasks / n for n in workers}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entities", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tsql", help="tsql binary (default: build the release binary)")
    p.add_argument("--cassandra", action="store_true", help="also scan a 1M-row table of a real Cassandra")
    p.add_argument("--cassandra-rows", type=int, default=1_000_000)
    a = p.parse_args()
    if os.cpu_count() < 2:
        sys.exit("needs two cores to pin two workers")
    binary = tsql_binary(a.tsql)
    data = os.path.join(HERE, "data", f"orders-{a.entities}")
    if not os.path.isdir(os.path.join(data, "orders", "1")):
        subprocess.run([sys.executable, os.path.join(HERE, "gen_orders.py"), data, "--entities", str(a.entities)],
                       check=True)
    sources = [{"kind": "files", "catalog": "files", "data": data}]
    queries = list(QUERIES.items())
    ring = None
    tmp = tempfile.mkdtemp(prefix="tsql-cluster-bench-")
    if a.cassandra:
        from cassandra_it import Cluster
        from cassandra_scan import load

        ring = Cluster(1, os.path.join(tmp, "cassandra"), num_tokens=16)
        print(f"loading {a.cassandra_rows} rows into Cassandra…", flush=True)
        load(ring.session(), a.cassandra_rows)
        ring.flush_and_estimate()
        sources.append({"kind": "cassandra", "catalog": "cassandra", "contact_points": ring.contact_points,
                        "keyspaces": ["bench"], "request_timeout_seconds": 60})
        queries.append(CASSANDRA_QUERY)
    nodes = []
    try:
        local = Node(binary, tmp, "local", 0, sources)
        a0 = Node(binary, tmp, "a0", 0, sources)
        b0 = Node(binary, tmp, "b0", 0, sources)
        w0 = Node(binary, tmp, "w0", 0, sources)
        w1 = Node(binary, tmp, "w1", 1, sources)
        one = Node(binary, tmp, "one-core", 1, sources, workers=[a0, b0], distributed="on")
        two = Node(binary, tmp, "two-cores", 1, sources, workers=[w0, w1], distributed="on")
        nodes = [local, a0, b0, w0, w1, one, two]
        time.sleep(3)  # the coordinators' first status round
        print(f"data: {data}; {a.runs} runs each; CPU seconds per process: local; coordinator, worker, worker",
              flush=True)
        results = measure([("local", local, [local]), ("1 core", one, [one, a0, b0]),
                           ("2 cores", two, [two, w0, w1])], queries, a.runs)
        print()
        print("| query | local | 2 tasks, 1 core | 2 tasks, 2 cores | 1 core / local | speed-up 2 cores / 1 core "
              "| CPU s per task (2 cores) | answers |")
        print("|---|---|---|---|---|---|---|---|")
        ok = True
        for name, by in results.items():
            (tl, rl, _), (t1, r1, _), (t2, r2, c2) = by["local"], by["1 core"], by["2 cores"]
            agree = rl == r1 == r2
            ok &= agree
            print(f"| {name} | {tl:.2f} s | {t1:.2f} s | {t2:.2f} s | {t1 / tl:.2f} | {t1 / t2:.2f} | "
                  f"{c2[1]:.2f}, {c2[2]:.2f} | {'agree' if agree else 'DIFFER'} |")
        time.sleep(2.5)  # workers' task counts reach the coordinator with its next status call
        print()
        print("projection, T(n) = coordinator CPU + tasks' CPU / n (from the 2-core run):")
        for name, by in results.items():
            coordinator, tasks, at = project(by["2 cores"][2])
            sql = dict(queries)[name]
            print(f"  {name}: coordinator {coordinator:.2f} s, tasks {tasks:.2f} s; "
                  f"10 workers {at[10]:.2f} s, 50 workers {at[50]:.2f} s")
            print(f"    stages of the 2-core run: {stages_of(two, sql)}")
        sys.exit(0 if ok else 1)
    finally:
        for n in nodes:
            n.stop()
        if ring:
            ring.stop()


if __name__ == "__main__":
    main()
