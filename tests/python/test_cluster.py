"""A tsql cluster of real processes on 127.0.0.1: a coordinator and workers
(each `tsql serve` with the demo data, which every process writes to the same
folder: the shared volume local files need). Queries run with `distributed`
forced on and off through the Trino protocol and must agree; every worker
must have run fragments; a node with another cluster_secret is refused; a
worker killed mid-query fails the query with UNAVAILABLE naming it, the
coordinator keeps serving, and a worker that comes back is used again."""

import re
import socket
import subprocess
import threading
import time
import urllib.request

import pyarrow.flight as fl
import pytest
import trino

from cassandra_it import toml, write_config
from conftest import Server
from flightproto import flight_sql_command, read_fields, set_session_options_request

SECRET = "test-cluster-secret-0123456789-abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(port, name):
    """The value of `name` (with its labels, as /metrics writes them), or None."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def flight_query(node, headers, sql, distributed=None):
    """Rows of `sql` over Flight SQL, with `distributed` set as a session
    option first (SetSessionOptions) when given."""
    client = fl.FlightClient(node.server.uri)
    options = fl.FlightCallOptions(headers=headers)
    if distributed is not None:
        body = set_session_options_request({"distributed": distributed})
        [result] = list(client.do_action(fl.Action("SetSessionOptions", body), options))
        assert result.body.to_pybytes() == b"", read_fields(result.body.to_pybytes())
    info = client.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command(sql)), options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    return [tuple(r.values()) for r in table.to_pylist()]


def basic(node, user, password):
    """Flight call headers of `user` logged in with a password."""
    return [fl.FlightClient(node.server.uri).authenticate_basic_token(user, password)]


class Node:
    """One `tsql serve` of the cluster, with its worker and metrics ports: on
    the demo data, or on `sources` with `users` (passwords = names)."""

    def __init__(self, tmp, name, secret=SECRET, workers=(), worker_port=None, sources=None,
                 users=("admin",), settings=None):
        self.worker_port = worker_port or free_port()
        self.metrics_port = free_port()
        self.trino_port = free_port()
        config = tmp / f"{name}.toml"
        cluster = {"trino_listen": f"127.0.0.1:{self.trino_port}",
                   "metrics_listen": f"127.0.0.1:{self.metrics_port}", "cluster_secret": secret,
                   "worker_listen": f"127.0.0.1:{self.worker_port}"}
        if workers:
            cluster["workers"] = [f"127.0.0.1:{w}" for w in workers]
        cluster.update(settings or {})
        if sources is None:
            config.write_text("demo = true\n" + toml(cluster))
        else:
            write_config(config, sources, users, extra=cluster)
        self.server = Server(["--config", str(config)])

    def metric(self, name):
        return metric(self.metrics_port, name)

    def query(self, sql, distributed=None):
        props = {"distributed": distributed} if distributed else {}
        conn = trino.dbapi.connect(host="127.0.0.1", port=self.trino_port, user="admin",
                                   session_properties=props)
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchall()

    def stop(self):
        self.server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    workers = [Node(tmp, f"worker{i}") for i in range(3)]
    coordinator = Node(tmp, "coordinator", workers=[w.worker_port for w in workers])
    yield coordinator, workers
    for n in [coordinator, *workers]:
        n.stop()


QUERIES = [
    "SELECT channel, count(*), max(priority), min(customer_name) FROM orders GROUP BY channel ORDER BY channel",
    "SELECT o.channel, count(*), count(DISTINCT l.sku) FROM orders o JOIN orders_lines l "
    "ON o.entity_id = l.entity_id GROUP BY 1 ORDER BY 1",
    "SELECT entity_id, orderid FROM orders ORDER BY orderid DESC LIMIT 5",
    "SELECT count(*) FROM orders WHERE entity_id IN (SELECT entity_id FROM orders_lines WHERE qty > 3)",
    "SELECT customer_tier, row_number() OVER (ORDER BY customer_tier) FROM "
    "(SELECT DISTINCT customer_tier FROM orders WHERE customer_tier IS NOT NULL) ORDER BY 1",
    "SELECT count(*) FROM orders WHERE point_time = TIMESTAMP '2000-01-01 00:00:00'",
]


def test_distributed_answers_equal_one_node_and_spread_over_every_worker(cluster):
    coordinator, workers = cluster
    before = [w.metric("tsql_cluster_fragments_total") for w in workers]
    planned = coordinator.metric("tsql_cluster_distributed_queries_total")
    for sql in QUERIES:
        assert coordinator.query(sql, "on") == coordinator.query(sql, "off"), sql
    after = [w.metric("tsql_cluster_fragments_total") for w in workers]
    assert all(a > b for a, b in zip(after, before)), (before, after)
    # All but the last: at an instant before any revision the scan has no
    # splits, and a plan with nothing to spread stays on the coordinator.
    assert coordinator.metric("tsql_cluster_distributed_queries_total") == planned + len(QUERIES) - 1
    assert coordinator.metric("tsql_cluster_workers") == 3


def test_explain_shows_stages_tasks_and_workers(cluster):
    coordinator, workers = cluster
    text = "\n".join(r[1] for r in coordinator.query(
        "EXPLAIN SELECT channel, count(*) FROM orders GROUP BY channel", "on"))
    assert "Stage" in text and "tasks=" in text, text
    assert "ClusterScanExec" in text
    # Each stage's tasks and the worker each goes to: the scan's three tasks, one per worker.
    scan_stage = re.search(r"Stage (\d+) ── tasks=3.*?\n[^└]*ClusterScanExec", text, re.S)
    assert scan_stage, text
    routes = re.search(rf"^  Stage {scan_stage.group(1)}: (.*)$", text, re.M).group(1)
    for w in workers:
        assert f"127.0.0.1:{w.worker_port}" in routes, routes
    local = "\n".join(r[1] for r in coordinator.query(
        "EXPLAIN SELECT channel, count(*) FROM orders GROUP BY channel", "off"))
    assert "Stage" not in local


def test_flight_sql_sessions_set_distributed(cluster):
    coordinator, workers = cluster
    sql = "SELECT channel, count(*), count(DISTINCT customer_name) FROM orders GROUP BY channel ORDER BY channel"
    headers = basic(coordinator, "admin", "admin")
    before = [w.metric("tsql_cluster_fragments_total") for w in workers]
    planned = coordinator.metric("tsql_cluster_distributed_queries_total")
    on = flight_query(coordinator, headers, sql, "on")
    assert coordinator.metric("tsql_cluster_distributed_queries_total") == planned + 1
    assert all(w.metric("tsql_cluster_fragments_total") > b for w, b in zip(workers, before))
    # The session keeps its choice; GetSessionOptions reports it.
    client = fl.FlightClient(coordinator.server.uri)
    options = fl.FlightCallOptions(headers=headers)
    [got] = list(client.do_action(fl.Action("GetSessionOptions", b""), options))
    assert b"distributed" in got.body.to_pybytes() and b"on" in got.body.to_pybytes()
    # Off: the same answer, planned on the coordinator alone (where `auto`,
    # the config's default, would spread this scan of 6 splits).
    headers = basic(coordinator, "admin", "admin")
    off = flight_query(coordinator, headers, sql, "off")
    assert on == off and len(on) > 1
    assert coordinator.metric("tsql_cluster_distributed_queries_total") == planned + 1
    # A value that is not a mode is INVALID_VALUE (2) and changes nothing.
    options = fl.FlightCallOptions(headers=headers)
    body = set_session_options_request({"distributed": "sometimes"})
    [result] = list(client.do_action(fl.Action("SetSessionOptions", body), options))
    [(number, _, entry)] = read_fields(result.body.to_pybytes())
    assert number == 1
    assert read_fields(entry) == [(1, 2, b"distributed"), (2, 2, bytes([0x08, 0x02]))]
    assert flight_query(coordinator, headers, sql) == off
    assert coordinator.metric("tsql_cluster_distributed_queries_total") == planned + 1
    # The config's `auto` spreads it when the session says nothing.
    assert flight_query(coordinator, basic(coordinator, "admin", "admin"), sql) == on
    assert coordinator.metric("tsql_cluster_distributed_queries_total") == planned + 2


ENDLESS = "SELECT count(*) FROM orders_lines a CROSS JOIN orders_lines b CROSS JOIN orders_lines c"


def running_query(node, text):
    """The id and stages of `node`'s running query whose SQL contains `text`."""
    rows = node.query("SELECT query_id, sql, stages FROM system.runtime.queries WHERE state = 'running'")
    return [(qid, stages) for qid, sql, stages in rows if text in sql and "system.runtime" not in sql]


def wait_for(check, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout} s for {what}")


def test_query_view_stages_and_cluster_wide_admission(cluster, tmp_path):
    coordinator, workers = cluster
    # A finished distributed query: every task of every stage done.
    sql = "SELECT channel, count(*) FROM orders GROUP BY channel"
    coordinator.query(sql, "on")

    def finished_stages():
        rows = coordinator.query("SELECT stages FROM system.runtime.queries "
                                 f"WHERE state = 'finished' AND sql = '{sql}'")
        line = rows[-1][0] if rows else ""
        counts = re.findall(r"(\d+)/(\d+) tasks done", line or "")
        return line if counts and all(done == tasks for done, tasks in counts) else None

    # Workers' progress reaches the coordinator with its next status call (every 2 s).
    line = wait_for(finished_stages, 10, "every task of the finished query to be done")
    assert re.search(r"stage \d+ \(scan \S*orders\) on \[[^]]+\]: 3/3 tasks done, 0 running, \d+ rows", line), line
    # The tasks ran where EXPLAIN says they go.
    explained = "\n".join(r[1] for r in coordinator.query(f"EXPLAIN {sql}", "on"))
    for num, tasks in re.findall(r"^  Stage (\d+): (.*)$", explained, re.M):
        urls = ", ".join(re.findall(r"task \d+ → (\S+?)(?:,|$)", tasks))
        assert f"stage {num} (" in line and f"on [{urls}]" in line, (explained, line)
    # A second coordinator of the same workers, allowed one query in the whole cluster.
    other = Node(tmp_path, "other", workers=[w.worker_port for w in workers],
                 settings={"cluster_max_running_queries": 1, "query_timeout_seconds": 3})
    errors = {}

    def endless():
        try:
            coordinator.query(ENDLESS, "on")
        except Exception as e:  # noqa: BLE001 - it is killed below
            errors["endless"] = e

    t = threading.Thread(target=endless)
    t.start()
    try:
        # While it runs, the view shows its stages with tasks running.
        found = wait_for(lambda: [r for r in running_query(coordinator, "CROSS JOIN") if r[1]], 20,
                         "the running query's stages")
        query_id, stages = found[0]
        assert "running" in stages and "stage " in stages, stages
        # The other coordinator counts it, and its own query waits for room, then gives up.
        wait_for(lambda: other.metric("tsql_cluster_running_elsewhere") == 1, 10, "the other coordinator to count it")
        with pytest.raises(trino.exceptions.TrinoQueryError, match="room in the cluster"):
            other.query("SELECT count(*) FROM orders", "off")
    finally:
        coordinator.query(f"CALL system.runtime.kill_query('{query_id}')")
        t.join(30)
    assert "endless" in errors
    wait_for(lambda: other.metric("tsql_cluster_running_elsewhere") == 0, 10, "the count to fall back")
    assert other.query("SELECT count(*) FROM orders", "off")[0][0] > 0
    other.stop()


def test_a_bad_session_value_is_a_clear_error(cluster):
    coordinator, _ = cluster
    with pytest.raises(trino.exceptions.TrinoUserError, match="'on', 'off' or 'auto'"):
        coordinator.query("SELECT 1", "sometimes")


def test_fragments_without_the_cluster_secret_are_refused(cluster, tmp_path):
    coordinator, workers = cluster
    refused = [w.metric("tsql_cluster_refused_total") for w in workers]
    stranger = Node(tmp_path, "stranger", secret="another-secret-0123456789-0123456789",
                    workers=[w.worker_port for w in workers])
    try:
        with pytest.raises(trino.exceptions.TrinoQueryError) as e:
            stranger.query("SELECT channel, count(*) FROM orders GROUP BY channel", "on")
        assert "task pass" in str(e.value) or "cluster" in str(e.value), e.value
        assert sum(w.metric("tsql_cluster_refused_total") for w in workers) > sum(refused)
        assert sum(w.metric("tsql_cluster_fragments_total") for w in workers) > 0
    finally:
        stranger.stop()


def test_a_worker_killed_mid_query_fails_it_and_the_cluster_goes_on(tmp_path):
    workers = [Node(tmp_path, f"w{i}") for i in range(2)]
    coordinator = Node(tmp_path, "c", workers=[w.worker_port for w in workers])
    try:
        slow = ("SELECT count(*) FROM orders_lines a JOIN orders_lines b ON a.sku <> b.sku "
                "JOIN orders c ON c.entity_id = a.entity_id")
        outcome = {}

        def run():
            started = time.time()
            try:
                outcome["rows"] = coordinator.query(slow, "on")
            except Exception as e:  # noqa: BLE001 - the error is what is checked
                outcome["error"] = e
            outcome["seconds"] = time.time() - started

        t = threading.Thread(target=run)
        t.start()
        deadline = time.time() + 30
        while workers[1].metric("tsql_cluster_fragments_total") == 0 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        workers[1].server.proc.kill()
        t.join(60)
        assert not t.is_alive(), "the query hung after its worker died"
        assert "error" in outcome, outcome
        message = str(outcome["error"])
        assert f"127.0.0.1:{workers[1].worker_port}" in message, message
        assert "stopped answering" in message, message
        # The coordinator keeps serving; the dead worker is left out.
        deadline = time.time() + 15
        while coordinator.metric("tsql_cluster_workers") != 1 and time.time() < deadline:
            time.sleep(0.2)
        assert coordinator.metric("tsql_cluster_workers") == 1
        q = "SELECT channel, count(*) FROM orders GROUP BY channel ORDER BY 1"
        assert coordinator.query(q, "on") == coordinator.query(q, "off")
        # A worker that answers again (same address) is used without a restart.
        back = Node(tmp_path, "w1-again", worker_port=workers[1].worker_port)
        workers[1] = back
        deadline = time.time() + 15
        while coordinator.metric("tsql_cluster_workers") != 2 and time.time() < deadline:
            time.sleep(0.2)
        assert coordinator.metric("tsql_cluster_workers") == 2
        for _ in range(4):
            coordinator.query(q, "on")
        assert back.metric("tsql_cluster_fragments_total") > 0
    finally:
        for n in [coordinator, *workers]:
            n.stop()
