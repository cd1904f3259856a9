"""One server, many users: memory limits and the status each kind of failure gets."""

import os
import re
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pytest

from conftest import Server

LIMIT_MB = 400


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    config = tmp_path_factory.mktemp("limits") / "tsql.toml"
    spill = config.parent / "spill"
    config.write_text(f'memory_limit = "{LIMIT_MB}MB"\nquery_memory_limit = "200MB"\nspill_dir = "{spill}"\n')
    s = Server(["--demo", "--config", str(config)])
    yield s
    s.stop()


def connect(server):
    return flightsql.connect(server.uri, db_kwargs={"username": "admin", "password": "admin"}, autocommit=True)


def query(server, sql):
    with connect(server) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def status_of(server, sql):
    with pytest.raises(adbc_driver_manager.Error) as err:
        query(server, sql)
    return str(err.value)


def grpc_code(text):
    """The gRPC status code ADBC reports in parentheses: `(ResourceExhausted; DoGet…)`."""
    import re

    m = re.search(r"\((\w+); ", text)
    return m.group(1) if m else None


def rss_mb(server):
    for line in open(f"/proc/{server.proc.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_memory_bomb_ends_with_resource_exhausted_while_others_answer(limited):
    bomb = ("SELECT count(DISTINCT a.entity_id || b.entity_id || c.entity_id) "
            "FROM orders a, orders b, orders c")
    outcome, peak = {}, [0.0]

    def run_bomb():
        outcome["status"] = status_of(limited, bomb)

    worker = threading.Thread(target=run_bomb)
    worker.start()
    answers = 0
    while worker.is_alive():
        peak[0] = max(peak[0], rss_mb(limited))
        assert query(limited, "SELECT count(*) FROM orders")[0][0] > 0
        answers += 1
        time.sleep(0.05)
    worker.join()
    assert grpc_code(outcome["status"]) == "ResourceExhausted", outcome["status"]
    assert "memory_limit" in outcome["status"]  # says how to raise it
    assert peak[0] < LIMIT_MB + 300, f"peak RSS {peak[0]:.0f} MB over the {LIMIT_MB} MB limit plus margin"
    assert answers > 0 and limited.alive()
    assert query(limited, "SELECT 1") == [(1,)]


@pytest.mark.parametrize("sql,status", [
    ("SELECT 1/0", "InvalidArgument"),
    ("SELECT CAST('x' AS INT)", "InvalidArgument"),
    ("SELECT 'a' + 1", "InvalidArgument"),
    ("SELEC 1", "InvalidArgument"),
    ("SELECT nosuch FROM orders", "InvalidArgument"),
    ("SELECT * FROM nosuch", "NotFound"),
    ("SELECT length(orderid) / CAST(channel = 'nowhere' AS INT) FROM orders", "InvalidArgument"),
])
def test_each_error_class_gets_its_status(limited, sql, status):
    text = status_of(limited, sql)
    assert grpc_code(text) == status, text


def test_json_logs_carry_the_query_id_and_user():
    import json

    s = Server(["--demo", "--log-format", "json"])
    try:
        assert query(s, "SELECT count(*) FROM orders")[0][0] > 0
        assert grpc_code(status_of(s, "SELECT 1/0")) == "InvalidArgument"
        assert s.wait_log(r'"rows":1')
        lines = [json.loads(line) for line in s.log_text().splitlines() if line.startswith("{")]
        ended = [l["fields"] for l in lines if "query_id" in l.get("fields", {})]
        assert any(f["user"] == "admin" and f["rows"] == 1 and f["outcome"] == "finished" for f in ended), ended
        assert all(len(f["query_id"]) == 32 for f in ended)
        assert all(l["level"] in ("INFO", "WARN", "ERROR") and "timestamp" in l for l in lines)
    finally:
        s.stop()


def test_a_sort_bigger_than_its_share_spills_to_spill_dir_and_finishes(tmp_path):
    import subprocess
    import threading as th

    from conftest import tsql_binary

    spill = tmp_path / "spill"
    config = tmp_path / "tsql.toml"
    config.write_text(f'memory_limit = "200MB"\nquery_memory_limit = "50MB"\nspill_dir = "{spill}"\n')
    seen, done = [], th.Event()

    def watch():
        while not done.is_set():
            if spill.exists() and any(p.is_file() for p in spill.rglob("*")):
                seen.append(True)
                return
            time.sleep(0.02)

    watcher = th.Thread(target=watch)
    watcher.start()
    # ~100 MB of sort input, with 50 MB allowed: the sort must spill to finish.
    sql = ("SELECT count(*), max(rn) FROM (SELECT row_number() OVER (ORDER BY v * 7 % 1000003) AS rn "
           "FROM generate_series(1, 12000000) t(v)) s")
    run = subprocess.run([tsql_binary(), "sql", "--demo", "--config", str(config), "--format", "csv", sql],
                         capture_output=True, text=True, timeout=300)
    done.set()
    watcher.join()
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[1] == "12000000,12000000"
    assert seen, "no spill file appeared in spill_dir"


def test_a_bad_parameter_is_invalid_argument(limited):
    with connect(limited) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error) as err:
            cur.execute("SELECT count(*) FROM orders WHERE length(orderid) > ?", parameters=("many",))
            cur.fetchall()
    assert grpc_code(str(err.value)) == "InvalidArgument", err.value


def test_a_panic_inside_the_engine_is_internal_with_the_query_id():
    s = Server(["--demo"], env={"TSQL_TEST_PANIC_FUNCTION": "1"})
    try:
        text = status_of(s, "SELECT tsql_test_panic(length(orderid)) FROM orders")
        assert grpc_code(text) == "Internal", text
        assert "tsql_test_panic was called" in text and "query id" in text, text
        query_id = re.search(r"query id (\w+)", text).group(1)
        assert s.wait_log(rf"query {query_id} failed")
        # Each panic (one per partition that ran the function) logged once, with its backtrace.
        panics = s.log_text().count("ERROR panic: ")
        assert 1 <= panics <= os.cpu_count(), s.log_text()[-2000:]
        assert s.log_text().count("backtrace=") == panics
        assert query(s, "SELECT count(*) FROM orders")[0][0] > 0  # still serving
    finally:
        s.stop()
