"""Bounded disk: a query that spills past `query_spill_limit`, or queries that
together spill past `spill_limit`, end at once with RESOURCE_EXHAUSTED naming
the setting, over Flight SQL and over the Trino protocol; the spill folder
never holds more than the limit and is empty afterwards; the server keeps
answering. Also: a user's own `query_timeout_seconds`."""

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import bcrypt
import pytest

from conftest import Server
from cyoda import free_port

MB = 1 << 20
# Each of the 3,000 orders with each with each: the cross join's build side
# (~700 MB) fits in memory, the DISTINCT's groups do not, so it must spill.
BOMB = ("SELECT count(DISTINCT a.entity_id || b.entity_id || c.entity_id) "
        "FROM orders a, orders b, orders c")
# Endless, cancellable at any point, and spills nothing.
SLOW = "SELECT count(*) FROM orders_lines a CROSS JOIN orders_lines b CROSS JOIN orders_lines c"
# A debug build ends the bomb in about 20 s (it spills after ~15 s); without limits it ran for minutes.
ENDS_WITHIN = 90


def hashed(password):
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


class SpillServer:
    """`tsql serve --demo` with a spill folder, spill limits, metrics and a Trino port."""

    def __init__(self, directory, memory_limit, spill_limit, query_spill_limit, extra=""):
        self.spill = directory / "spill"
        self.metrics_port, self.trino_port = free_port(), free_port()
        self.spill_limit, self.query_spill_limit = spill_limit, query_spill_limit
        config = directory / "tsql.toml"
        config.write_text(
            f'memory_limit = "{memory_limit}MB"\nquery_memory_limit = "1000MB"\nspill_dir = "{self.spill}"\n'
            f'spill_limit = "{spill_limit}MB"\nquery_spill_limit = "{query_spill_limit}MB"\n'
            f'metrics_listen = "127.0.0.1:{self.metrics_port}"\ntrino_allow_insecure = true\n'
            f'[[users]]\nname = "admin"\npassword_hash = "{hashed("admin")}"\nroles = ["admin"]\n' + extra)
        self.server = Server(["--demo", "--config", str(config), "--trino-listen", f"127.0.0.1:{self.trino_port}"])
        self.base = f"http://127.0.0.1:{self.trino_port}"

    def stop(self):
        self.server.stop()

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def held(self):
        """Bytes and files in the spill folder now (apparent sizes, as written)."""
        total = files = 0
        for root, _, names in os.walk(self.spill):
            for n in names:
                try:
                    total += os.stat(os.path.join(root, n)).st_size
                    files += 1
                except FileNotFoundError:
                    pass  # deleted while we looked
        return total, files

    def wait_empty(self, timeout=10.0):
        """Waits until the spill folder holds no file and no query folder; returns what is left."""
        deadline = time.time() + timeout
        while True:
            left = sorted(str(p.relative_to(self.spill)) for p in self.spill.rglob("*")) if self.spill.exists() else []
            if not left or time.time() > deadline:
                return left
            time.sleep(0.1)


def flight_error(server, sql, user="admin", password="admin"):
    """The error text of `sql` over Flight SQL (ADBC), or None when it succeeds."""
    try:
        with flightsql.connect(server.server.uri, db_kwargs={"username": user, "password": password},
                               autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql)
            cur.fetchall()
            return None
    except adbc_driver_manager.Error as e:
        return str(e)


def grpc_code(text):
    m = re.search(r"\((\w+); ", text or "")
    return m.group(1) if m else None


def trino_error(server, sql):
    """The `error` object of `sql` run over the Trino protocol (plain HTTP), or None."""
    def call(method, url, body=None):
        req = urllib.request.Request(url, data=body.encode() if body else None, method=method,
                                     headers={"X-Trino-User": "admin"})
        with urllib.request.urlopen(req, timeout=ENDS_WITHIN + 60) as r:
            return json.loads(r.read())

    page = call("POST", server.base + "/v1/statement", sql)
    while "nextUri" in page:
        page = call("GET", page["nextUri"])
    return page.get("error")


def watched(server, run):
    """Runs `run()` while sampling the spill folder every 20 ms: (its result, seconds, peak bytes)."""
    out, peak = {}, [0]

    def go():
        started = time.time()
        out["result"] = run()
        out["took"] = time.time() - started

    worker = threading.Thread(target=go)
    worker.start()
    while worker.is_alive():
        peak[0] = max(peak[0], server.held()[0])
        time.sleep(0.02)
    worker.join()
    return out["result"], out["took"], peak[0]


@pytest.fixture(scope="module")
def spilly(tmp_path_factory):
    s = SpillServer(tmp_path_factory.mktemp("spill"), memory_limit=1500, spill_limit=150, query_spill_limit=100,
                    extra=f'[[users]]\nname = "quick"\npassword_hash = "{hashed("quick")}"\nquery_timeout_seconds = 3\n')
    yield s
    s.stop()


def after_the_bomb(server):
    """What must hold once a bomb ended: no spill file left, nothing held, the server answers."""
    assert server.wait_empty() == [], "spill files left behind"
    assert server.metric("tsql_spill_bytes") == 0 and server.metric("tsql_spill_files") == 0
    assert server.server.alive()
    assert flight_error(server, "SELECT 1") is None
    assert server.server.wait_idle(15), "the stopped query kept computing"


def test_a_bomb_over_flight_sql_ends_at_query_spill_limit(spilly):
    exhausted = spilly.metric("tsql_spill_exhausted_total")
    text, took, peak = watched(spilly, lambda: flight_error(spilly, BOMB))
    assert grpc_code(text) == "ResourceExhausted", text
    assert "query_spill_limit (100 MiB)" in text, text
    assert "Arrow error" not in text, text  # the limit's own message, not the I/O error it travelled in
    assert "raise `memory_limit`" not in text, text  # no memory hint on a disk limit
    assert took < ENDS_WITHIN, f"took {took:.0f} s"
    assert 0 < peak <= spilly.query_spill_limit * MB, f"peak {peak / MB:.0f} MB in the spill folder"
    assert spilly.metric("tsql_spill_exhausted_total") == exhausted + 1
    assert spilly.metric("tsql_spill_limit_bytes") == spilly.spill_limit * MB
    after_the_bomb(spilly)


def test_a_bomb_over_the_trino_protocol_ends_at_query_spill_limit(spilly):
    error, took, peak = watched(spilly, lambda: trino_error(spilly, BOMB))
    assert error is not None, "the bomb finished"
    assert error["errorType"] == "INSUFFICIENT_RESOURCES", error
    assert error["errorName"] == "EXCEEDED_SPILL_LIMIT", error
    assert "query_spill_limit (100 MiB)" in error["message"], error["message"]
    assert took < ENDS_WITHIN, f"took {took:.0f} s"
    assert 0 < peak <= spilly.query_spill_limit * MB, f"peak {peak / MB:.0f} MB in the spill folder"
    after_the_bomb(spilly)


def test_a_user_with_a_timeout_of_their_own(spilly):
    started = time.time()
    text = flight_error(spilly, SLOW, user="quick", password="quick")
    assert grpc_code(text) == "DeadlineExceeded", text
    assert "query_timeout_seconds (3 s)" in text, text
    assert time.time() - started < 15
    assert spilly.server.wait_idle(15)


def test_queries_together_end_at_spill_limit(tmp_path):
    # Two bombs at once, each within its own share (100 MB) but together over the server's 120 MB.
    s = SpillServer(tmp_path, memory_limit=2500, spill_limit=120, query_spill_limit=100)
    try:
        results = {}

        def both():
            flight = threading.Thread(target=lambda: results.update(flight=flight_error(s, BOMB)))
            flight.start()
            results["trino"] = trino_error(s, BOMB)
            flight.join()

        _, took, peak = watched(s, both)
        messages = [results["flight"] or "", (results["trino"] or {}).get("message", "")]
        assert grpc_code(results["flight"]) == "ResourceExhausted", results["flight"]
        assert results["trino"]["errorType"] == "INSUFFICIENT_RESOURCES", results["trino"]
        # At least one was stopped by the server-wide limit (the other may have been too, or by its share).
        assert any("spill_limit (120 MiB)" in m and "together" in m for m in messages), messages
        assert took < 2 * ENDS_WITHIN, f"took {took:.0f} s"
        assert 0 < peak <= s.spill_limit * MB, f"peak {peak / MB:.0f} MB in the spill folder"
        assert s.metric("tsql_spill_exhausted_total") == 2
        after_the_bomb(s)
    finally:
        s.stop()
