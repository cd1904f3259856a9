"""Checks a running tsql container (started by smoke-test.sh): health, a query
over Flight SQL (pyarrow.flight, logging in with the user whose password hash
came from a mounted secret file) and over the Trino protocol, JSON log lines,
and a graceful SIGTERM: /readyz turns 503 at once, the query running at the
signal returns its full result, the container exits 0.

    python3 smoke_test.py --container NAME --flight PORT --trino PORT --metrics PORT --password PW
"""

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pyarrow.flight as fl
import trino

ROWS = 3_000_000
CHECKS = []


def check(what):
    CHECKS.append(what)
    print(f"ok: {what}", flush=True)


def http(url, method="GET", body=None):
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method,
                                 headers={"X-Trino-User": "ann"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def podman(*args):
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=False)


def statement_command(sql):
    """A Flight SQL CommandStatementQuery packed in a protobuf Any (field 1: query)."""
    def field(number, payload):
        return bytes([number << 3 | 2]) + varint(len(payload)) + payload

    def varint(n):
        out = b""
        while True:
            byte, n = n & 0x7F, n >> 7
            out += bytes([byte | (0x80 if n else 0)])
            if not n:
                return out

    type_url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    return field(1, type_url) + field(2, field(1, sql.encode()))


def flight(args):
    client = fl.FlightClient(f"grpc://127.0.0.1:{args.flight}")
    options = fl.FlightCallOptions(headers=[client.authenticate_basic_token("ann", args.password)])
    return client, options


def flight_stream(args, sql):
    client, options = flight(args)
    info = client.get_flight_info(fl.FlightDescriptor.for_command(statement_command(sql)), options)
    return client.do_get(info.endpoints[0].ticket, options)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("container", "flight", "trino", "metrics", "password"):
        p.add_argument(f"--{name}", required=True)
    args = p.parse_args()
    metrics = f"http://127.0.0.1:{args.metrics}"

    deadline = time.time() + 60
    while http(metrics + "/readyz")[0] != 200:
        if time.time() > deadline or podman("inspect", "--format", "{{.State.Running}}", args.container).stdout.strip() != "true":
            sys.exit(f"FAILED: /readyz never answered 200\n{podman('logs', args.container).stderr}")
        time.sleep(0.2)
    check("/readyz answers 200")
    assert http(metrics + "/healthz") == (200, "ok\n")
    check("/healthz answers 200")

    table = flight_stream(args, "SELECT channel, count(*) AS n FROM orders GROUP BY channel ORDER BY channel").read_all()
    flight_rows = [tuple(r.values()) for r in table.to_pylist()]
    assert sum(n for _, n in flight_rows) == 2999, flight_rows  # the demo data: 2999 orders
    check(f"Flight SQL as user ann (password hash from a secret file): {flight_rows}")

    conn = trino.dbapi.connect(host="127.0.0.1", port=int(args.trino), user="ann", catalog="cyoda",
                               schema="entities", http_scheme="http")
    cur = conn.cursor()
    cur.execute("SELECT channel, count(*) AS n FROM orders GROUP BY channel ORDER BY channel")
    trino_rows = [tuple(r) for r in cur.fetchall()]
    assert trino_rows == flight_rows, (trino_rows, flight_rows)
    check(f"the Trino protocol: the same {len(trino_rows)} rows")

    # A query running when SIGTERM comes: its client reads slowly.
    reader = flight_stream(args, f"SELECT value FROM range({ROWS})")
    first = reader.read_chunk().data
    rows, total = first.num_rows, sum(first.column(0).to_pylist())
    killed = podman("kill", "--signal", "TERM", args.container)
    assert killed.returncode == 0, killed.stderr
    sent = time.time()
    while True:
        status, body = http(metrics + "/readyz")
        if status == 503:
            break
        assert time.time() - sent < 1.0, f"/readyz still {status} {body} after SIGTERM"
        time.sleep(0.02)
    check(f"after SIGTERM /readyz answers 503 within {time.time() - sent:.2f} s: {body.strip()}")
    assert http(metrics + "/healthz")[0] == 200
    status, body = http(f"http://127.0.0.1:{args.trino}/v1/statement", "POST", "SELECT 1")
    assert status == 503, (status, body)
    check(f"a new Trino query is refused: {status} {body.strip()}")
    time.sleep(2)
    running = podman("inspect", "--format", "{{.State.Running}}", args.container).stdout.strip()
    assert running == "true", "the container should wait for the running query"
    check("2 s later the container still runs (the query is not finished)")
    while True:
        try:
            batch = reader.read_chunk().data
        except StopIteration:
            break
        rows += batch.num_rows
        total += sum(batch.column(0).to_pylist())
    assert (rows, total) == (ROWS, ROWS * (ROWS - 1) // 2), (rows, total)
    check(f"the running query returned its full result: {rows} rows, sum {total}")

    waited = podman("wait", args.container)
    code = waited.stdout.strip()
    assert code == "0", f"exit code {code} {waited.stderr}"
    check(f"the container exited with code 0, {time.time() - sent:.1f} s after SIGTERM")

    logs = podman("logs", args.container)
    lines = [l for l in (logs.stdout + logs.stderr).splitlines() if l.strip()]
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            sys.exit(f"FAILED: a log line is not JSON: {line}")
    messages = [json.loads(l).get("fields", {}).get("message", "") for l in lines]
    assert any("every query finished" in m for m in messages), messages
    check(f"all {len(lines)} log lines are JSON objects")
    limits = [m for m in messages if m.startswith("limits from the cgroup")]
    if limits:
        check(f"cgroup limits logged: {limits[0]}")
    print(f"smoke test passed: {len(CHECKS)} checks")


if __name__ == "__main__":
    main()
