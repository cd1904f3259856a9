#!/usr/bin/env python3
"""Cyoda connector benchmark: entities/s pulled through tsql from a real
cyoda-go, against a plain client reading the same entities by the same read
path in the same run, plus which read path the service serves fastest.

    python3 benches/cyoda.py [--entities 100000] [--runs 3] [--storage memory|sqlite]

Needs release builds (`cargo build --release --bin tsql --example cyoda_plain_client`,
done here) and, for the gRPC read path, grpcio + grpcio-tools (installed here).
What it prints:
- read paths (one Python client, so the paths compare like for like): GET
  /entity pages of 1000 and 10000, an async search job's pages, the gRPC
  entitySearchCollection stream of EntityGetAllRequest pages;
- tsql (Flight SQL server, ADBC client) against the plain Rust client
  (same pages, same readers, serde_json parse) and the same client fetching
  only (service + network: the floor), and where tsql's time goes.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

from cyoda import ORDER_SAMPLE, Cyoda, orders  # noqa: E402

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "tsql", "--example", "cyoda_plain_client"],
                   cwd=ROOT, check=True)


def median_run(f, runs):
    return statistics.median(f() for _ in range(runs))


def http_pages(base, size):
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
    n, page, start = 0, 0, time.time()
    while True:
        with urllib.request.urlopen(f"{base}/entity/orders/1?pageSize={size}&pageNumber={page}&pointInTime={at}") as r:
            got = json.loads(r.read())
        n += len(got)
        page += 1
        if len(got) < size:
            return n, time.time() - start


def async_pages(base, size=10000):
    start = time.time()
    req = urllib.request.Request(f"{base}/search/async/orders/1", method="POST",
                                 data=b'{"type":"group","operator":"AND","conditions":[]}',
                                 headers={"Content-Type": "application/json"})
    job = json.loads(urllib.request.urlopen(req).read())
    while json.loads(urllib.request.urlopen(f"{base}/search/async/{job}/status").read())["searchJobStatus"] == "RUNNING":
        time.sleep(0.01)
    n, page = 0, 0
    while True:
        got = json.loads(urllib.request.urlopen(f"{base}/search/async/{job}?pageSize={size}&pageNumber={page}").read())
        n += len(got["content"])
        page += 1
        if page >= got["page"]["totalPages"]:
            return n, time.time() - start


def grpc_stub(service, workdir):
    """Compiles the service's own proto (from `cyoda help grpc proto`) and returns a stub."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "grpcio==1.85.3", "grpcio-tools==1.85.1"], check=True)
    text = subprocess.run([service.binary, "help", "grpc", "proto"], capture_output=True, text=True, check=True).stdout
    proto_dir = os.path.join(workdir, "proto")
    name, lines = None, []
    files = {}
    for line in text.splitlines():
        if line.startswith("// proto/"):
            # Its `cyoda/` folder would shadow tests/python/cyoda.py once generated.
            name = line[len("// proto/"):].strip().replace("cyoda/", "cyodaapi/")
            files[name] = []
        elif name and not line.startswith("// ====="):
            files[name].append(line)
    for name, body in files.items():
        path = os.path.join(proto_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").write("\n".join(body))
    out = os.path.join(workdir, "gen")
    os.makedirs(out, exist_ok=True)
    import grpc_tools
    from grpc_tools import protoc
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    assert protoc.main(["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out}",
                        f"--grpc_python_out={out}", *files.keys()]) == 0
    sys.path.insert(0, out)
    import grpc
    from cyodaapi import cyoda_cloud_api_pb2_grpc as api
    from cloudevents import cloudevents_pb2 as ce
    channel = grpc.insecure_channel(f"127.0.0.1:{service.ports[1]}",
                                    options=[("grpc.max_receive_message_length", 64 << 20)])
    return api.CloudEventsServiceStub(channel), ce


def grpc_pages(stub, ce, size=10000):
    start, n, page = time.time(), 0, 0
    while True:
        request_id = str(uuid.uuid4())
        event = ce.CloudEvent(id=request_id, source="bench", spec_version="1.0", type="EntityGetAllRequest",
                              text_data=json.dumps({"id": request_id, "model": {"name": "orders", "version": 1},
                                                    "pageSize": size, "pageNumber": page}))
        got = 0
        for answer in stub.entitySearchCollection(event):
            body = json.loads(answer.text_data)
            if not body.get("success", True):
                raise RuntimeError(body)
            got += 1
        n += got
        page += 1
        if got < size:
            return n, time.time() - start


def plain(base, readers, fetch_only=False):
    args = [os.path.join(TARGET, "release", "examples", "cyoda_plain_client"), base, "orders", "1", "10000",
            str(readers), "2"] + (["--fetch-only"] if fetch_only else [])
    n, seconds = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
    return int(n), float(seconds)


def tsql_scan(uri, sql):
    import adbc_driver_flightsql.dbapi as flightsql
    with flightsql.connect(uri, db_kwargs={"username": "admin", "password": "admin"}, autocommit=True) as conn:
        with conn.cursor() as cur:
            start = time.time()
            cur.execute(sql)
            table = cur.fetch_arrow_table()
            return table, time.time() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--storage", default="memory", choices=["memory", "sqlite"])
    ap.add_argument("--skip-grpc", action="store_true")
    args = ap.parse_args()
    build()
    work = tempfile.mkdtemp(prefix="tsql-cyoda-bench-")
    service = Cyoda(os.path.join(work, "service"), storage=args.storage)
    from cyoda import cyoda_binary
    service.binary = cyoda_binary()
    try:
        t = time.time()
        service.create_model("orders", ORDER_SAMPLE)
        docs = orders(args.entities, seed=11)
        service.post_entities("orders", docs, batch=1000)
        lines = sum(len(d["lines"]) for d in docs)
        print(f"loaded {args.entities} orders ({lines} lines) into cyoda-go ({args.storage}) in {time.time() - t:.1f} s")
        base = service.base
        n = args.entities

        print("\nread paths (one Python client each, whole model, median of runs):")
        for label, f in [("GET /entity, pages of 1000", lambda: http_pages(base, 1000)),
                         ("GET /entity, pages of 10000", lambda: http_pages(base, 10000)),
                         ("async search, pages of 10000", lambda: async_pages(base))]:
            secs = median_run(lambda: f()[1], args.runs)
            print(f"  {label:<40} {n / secs:>9.0f} entities/s")
        if not args.skip_grpc:
            stub, ce = grpc_stub(service, work)
            secs = median_run(lambda: grpc_pages(stub, ce)[1], args.runs)
            print(f"  {'gRPC entitySearchCollection, 10000':<40} {n / secs:>9.0f} entities/s")

        config = os.path.join(work, "tsql.toml")
        import bcrypt
        with open(config, "w") as f:
            f.write(f'[[users]]\nname = "admin"\npassword_hash = "{bcrypt.hashpw(b"admin", bcrypt.gensalt(4)).decode()}"\n'
                    f'[[source]]\nkind = "cyoda"\ncatalog = "cyoda"\nurl = "{base}"\n')
        os.environ["TSQL_BIN"] = os.path.join(TARGET, "release", "tsql")
        from conftest import Server
        server = Server(["--config", config])
        try:
            readers = 2  # tsql reads with as many partitions as cores
            fetch = median_run(lambda: plain(base, readers, fetch_only=True)[1], args.runs)
            parsed = median_run(lambda: plain(base, readers)[1], args.runs)
            print(f"\nplain Rust client, {readers} readers x 2 pages in flight, pages of 10000:")
            print(f"  fetch only (service + network)           {n / fetch:>9.0f} entities/s  ({fetch:.2f} s)")
            print(f"  fetch + serde_json parse                 {n / parsed:>9.0f} entities/s  ({parsed:.2f} s)")
            print("\ntsql (Flight SQL server, ADBC client):")
            for label, sql in [("SELECT * FROM orders (to the client)", "SELECT * FROM orders"),
                               ("count/sum over orders_lines", "SELECT count(*), sum(qty * price) FROM orders_lines")]:
                table, _ = tsql_scan(server.uri, sql)
                secs = median_run(lambda: tsql_scan(server.uri, sql)[1], args.runs)
                print(f"  {label:<40} {n / secs:>9.0f} entities/s  ({secs:.2f} s)  "
                      f"ratio to plain client {parsed / secs:.2f}, to fetch-only floor {fetch / secs:.2f}")
                if sql.startswith("SELECT *"):
                    assert table.num_rows == n, table.num_rows
                else:
                    assert table.column(0)[0].as_py() == lines
            print(f"\nwhere tsql's time goes (SELECT * case): service + network ~{fetch:.2f} s of it; "
                  f"JSON parse by serde_json alone adds {max(parsed - fetch, 0):.2f} s to the plain client; "
                  f"tsql decodes straight into Arrow while the next pages are fetched")
        finally:
            server.stop()
    finally:
        service.stop()


if __name__ == "__main__":
    main()
