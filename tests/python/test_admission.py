"""Admission under load: running and queued caps, the per-user cap and the query timeout."""

import concurrent.futures
import re
import time

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import bcrypt
import pytest

from conftest import Server

# Endless, and cancellable at any point (it yields between batches).
SLOW = "SELECT count(*) FROM orders_lines a CROSS JOIN orders_lines b CROSS JOIN orders_lines c"
TIMEOUT = 4


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    config = tmp_path_factory.mktemp("admission") / "tsql.toml"
    users = "".join(
        f'[[users]]\nname = "{u}"\npassword_hash = "{bcrypt.hashpw(u.encode(), bcrypt.gensalt(rounds=4)).decode()}"\n'
        + ('roles = ["admin"]\n' if u == "ops" else "")
        for u in ["ann", "bob", "ops"]
    )
    from cyoda import free_port

    metrics_port = free_port()
    config.write_text(
        f'metrics_listen = "127.0.0.1:{metrics_port}"\nmemory_limit = "1GB"\n'
        f"demo = true\nmax_running_queries = 3\nmax_queued_queries = 4\nmax_queries_per_user = 2\n"
        f"query_timeout_seconds = {TIMEOUT}\n" + users
    )
    s = Server(["--config", str(config)])
    s.metrics = f"http://127.0.0.1:{metrics_port}"
    yield s
    s.stop()


def run(server, sql, user="ann"):
    started = time.time()
    try:
        with flightsql.connect(server.uri, db_kwargs={"username": user, "password": user}, autocommit=True) as c:
            with c.cursor() as cur:
                cur.execute(sql)
                return "ok", cur.fetchall(), time.time() - started
    except adbc_driver_manager.Error as e:
        m = re.search(r"\((\w+); ", str(e))
        return (m.group(1) if m else str(e)), str(e), time.time() - started


def test_a_query_past_its_timeout_is_stopped(busy):
    code, text, took = run(busy, SLOW)
    assert code == "DeadlineExceeded", text
    assert "query_timeout_seconds" in text
    assert TIMEOUT - 0.5 < took < TIMEOUT + 10
    assert busy.wait_idle(), "the stopped query kept computing"


def test_running_and_queued_caps_hold_under_many_clients(busy):
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda i: run(busy, SLOW, "ann" if i % 2 else "bob"), range(32)))
    codes = [r[0] for r in results]
    refused = [r for r in results if r[0] == "ResourceExhausted"]
    # 3 run and 4 wait; the other 25 are refused at once, saying why.
    assert len(refused) == 25, codes
    assert all(r[2] < 3 for r in refused), [r[2] for r in refused]
    assert all("max_queued_queries" in r[1] for r in refused)
    # Whoever got in ran (or waited) until the timeout.
    assert sorted(codes).count("DeadlineExceeded") == 7, codes
    assert any("in the queue" in r[1] for r in results if r[0] == "DeadlineExceeded")
    assert busy.wait_idle()
    assert run(busy, "SELECT 1")[0] == "ok"


def test_the_per_user_cap_lets_other_users_in(busy):
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        slow = [pool.submit(run, busy, SLOW, "ann") for _ in range(2)]
        time.sleep(1.0)
        # ann runs her two (max_queries_per_user); her third waits although a
        # running slot is free, and bob gets that slot at once.
        third = pool.submit(run, busy, SLOW, "ann")
        waiting, deadline = [], time.time() + 2
        while not waiting and time.time() < deadline:
            # (asked by ops, role admin: ann's own queries wait behind her cap)
            code, waiting, _ = run(busy, f"SELECT state, queued_ms FROM system.runtime.queries "
                                         f"WHERE sql = '{SLOW}' AND state = 'queued'", "ops")
            assert code == "ok", waiting
        assert len(waiting) == 1, waiting
        code, rows, took = run(busy, "SELECT count(*) FROM orders", "bob")
        assert code == "ok" and took < 2, (code, rows, took)
        code, text, _ = third.result()
        # It waited for one of ann's slots (until her first two timed out).
        waited = float(re.search(r"waited ([\d.]+) s in the queue", text).group(1))
        assert code == "DeadlineExceeded" and waited > 2, text
        for f in slow:
            assert f.result()[0] == "DeadlineExceeded"
    assert busy.wait_idle()


def test_the_query_view_and_kill(busy):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = pool.submit(run, busy, SLOW, "ann")
        time.sleep(1.0)
        code, mine, _ = run(busy, "SELECT query_id, user, state, sql, rows FROM system.runtime.queries "
                                  f"WHERE state = 'running' AND sql = '{SLOW}'", "ann")
        assert code == "ok" and len(mine) == 1, mine
        query_id, user, state, sql, _ = mine[0]
        assert (user, state, sql) == ("ann", "running", SLOW)
        # bob neither sees nor stops ann's query; ops (role admin) sees everyone's.
        code, theirs, _ = run(busy, "SELECT query_id FROM system.runtime.queries", "bob")
        assert code == "ok" and query_id not in [r[0] for r in theirs]
        code, text, _ = run(busy, f"CALL system.runtime.kill_query('{query_id}')", "bob")
        assert code == "NotFound", text
        with flightsql.connect(busy.uri, db_kwargs={"username": "bob", "password": "bob"}, autocommit=True) as c:
            listed = {(t["catalog_name"], s["db_schema_name"], x["table_name"])
                      for t in c.adbc_get_objects(depth="tables").read_all().to_pylist()
                      for s in t["catalog_db_schemas"] or [] for x in s["db_schema_tables"] or []}
        assert ("system", "runtime", "queries") in listed  # BI tools find the view by browsing
        code, everyone, _ = run(busy, "SELECT DISTINCT user FROM system.runtime.queries", "ops")
        assert {"ann", "bob"} <= {r[0] for r in everyone}, everyone
        code, killed, _ = run(busy, f"CALL system.runtime.kill_query('{query_id}')", "ann")
        assert code == "ok" and killed == [(query_id, "cancelled")], killed
        code, text, took = slow.result()
        assert code == "Canceled", text  # ADBC spells the gRPC code so
        assert took < TIMEOUT - 0.5
    code, after, _ = run(busy, f"SELECT state, error FROM system.runtime.queries WHERE query_id = '{query_id}'", "ann")
    assert after == [("cancelled", "killed by ann")], after
    assert busy.wait_idle()


def scrape(server):
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(server.metrics + "/metrics", timeout=5).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + "".join(f"{{{k}={v}}}" for k, v in sorted(sample.labels.items()))
            samples[key] = sample.value
    return samples


def test_metrics_and_health(busy):
    import urllib.error
    import urllib.request

    before = scrape(busy)
    assert run(busy, "SELECT count(*) FROM orders")[0] == "ok"
    assert run(busy, "SELECT 1/0")[0] == "InvalidArgument"
    assert run(busy, "SELECT 1", user="ann")[0] == "ok"
    code, _, _ = run(busy, "SELECT 1", user="nobody")
    after = scrape(busy)
    grew = lambda k: after.get(k, 0) - before.get(k, 0)
    assert grew("tsql_queries_total{outcome=finished}") >= 2
    assert grew("tsql_queries_total{outcome=failed}") >= 1
    assert grew("tsql_query_duration_seconds_count") >= 3
    assert grew("tsql_rows_sent_total") >= 2
    assert grew("tsql_auth_failures_total") >= 1
    assert after["tsql_memory_pool_limit_bytes"] == 1 << 30
    assert after["tsql_queries_running"] == 0 and after["tsql_queries_queued"] == 0
    assert after["tsql_spill_bytes"] == 0 and after["tsql_spill_files"] == 0
    assert urllib.request.urlopen(busy.metrics + "/healthz").status == 200
    assert urllib.request.urlopen(busy.metrics + "/readyz").status == 200
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(busy.metrics + "/nothing")
    assert err.value.code == 404
