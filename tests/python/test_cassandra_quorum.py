"""The Cassandra connector against a real three-node Cassandra 5 (keyspace at
RF=3, reads at QUORUM): right answers with every node up and with one down,
a clear error (not a hang, not a crash) with two down, and answers again
once they are back; with one node frozen (SIGSTOP) reads go to the others. Peers take ~20 s to mark a SIGKILLed node down, so each
kill waits until the surviving nodes see it down before querying."""

import datetime
import time
from collections import Counter

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pytest

from cassandra_it import Cluster, create_keyspace, load_wide, write_config
from conftest import Server

N = 2000
TIMEOUT = 5  # request_timeout_seconds


def connect(server):
    return flightsql.connect(server.uri, db_kwargs={"username": "admin", "password": "admin"}, autocommit=True)


def rows(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


@pytest.fixture(scope="module")
def quorum(tmp_path_factory):
    root = tmp_path_factory.mktemp("cassandra-quorum")
    cluster = Cluster(3, root, num_tokens=16)
    try:
        s = cluster.session(consistency="ALL")  # every replica holds every row before a node goes away
        create_keyspace(s, "client_a", rf=3)
        events = load_wide(s, "client_a", N)
        config = write_config(root / "tsql.toml", [{
            "kind": "cassandra", "catalog": "cassandra", "contact_points": cluster.contact_points,
            "keyspaces": ["client_a"], "consistency": "QUORUM", "request_timeout_seconds": TIMEOUT,
        }])
        server = Server(["--config", str(config)])
    except Exception:
        cluster.stop()
        raise
    state = {"cluster": cluster, "server": server, "events": events, "down": set()}
    yield state
    server.stop()
    cluster.stop()


def set_down(q, nodes):
    """Kills the nodes in `nodes` (waiting until the others see them down) and restarts the others."""
    cluster = q["cluster"]
    for i in sorted(q["down"] - set(nodes)):
        cluster.restart(i)
        q["down"].discard(i)
    for i in sorted(set(nodes) - q["down"]):
        cluster.kill(i)
        q["down"].add(i)
    for i in sorted(nodes):
        cluster.wait_down(i)


QUERIES = [
    "SELECT count(*), sum(amount) FROM cassandra.client_a.events",
    "SELECT tenant, count(*) FROM cassandra.client_a.events GROUP BY tenant ORDER BY tenant",
    "SELECT seq, kind, amount FROM cassandra.client_a.events WHERE tenant = 't1' AND day = DATE '2024-01-02' ORDER BY seq",
]


def expected(events):
    part = sorted((r.seq, r.kind, r.amount) for r in events if r.tenant == "t1" and r.day == datetime.date(2024, 1, 2))
    return [sum(r.amount for r in events), sorted(Counter(r.tenant for r in events).items()), part]


def check_answers(conn, events):
    total, by_tenant, part = expected(events)
    (count, amount), = rows(conn, QUERIES[0])
    assert count == len(events) == N
    assert amount == pytest.approx(total, rel=1e-9)
    assert rows(conn, QUERIES[1]) == by_tenant
    assert rows(conn, QUERIES[2]) == part and part


def test_all_nodes_up(quorum):
    set_down(quorum, set())
    with connect(quorum["server"]) as conn:
        check_answers(conn, quorum["events"])


@pytest.mark.xfail(strict=False, reason=(
    "with RF=3 at QUORUM the other nodes may wait on the frozen replica themselves (longer than 12 s "
    "for a range read, measured) until the cluster calls it down; passes only when they read from the "
    "live replicas"))
def test_a_frozen_node_is_passed_over_for_another(quorum):
    """A hung node (SIGSTOP; its peers still see it up for ~20 s) answers
    nothing: a read sent to it gets request_timeout_seconds, then goes to
    another node, and the node is tried last for a while, so every query still
    answers, correctly, losing about one timeout in all."""
    set_down(quorum, set())
    cluster = quorum["cluster"]
    with connect(quorum["server"]) as conn:
        check_answers(conn, quorum["events"])  # statements prepared while every node answers
        cluster.freeze(3)
        try:
            started = time.time()
            check_answers(conn, quorum["events"])
            took = time.time() - started
        finally:
            cluster.thaw(3)
    assert took < 3 * TIMEOUT + 10, f"{took:.1f} s"


def test_one_node_down_still_answers_at_quorum(quorum):
    set_down(quorum, {3})
    with connect(quorum["server"]) as conn:
        check_answers(conn, quorum["events"])  # no retries: each query must succeed the first time


def test_two_nodes_down_fail_clearly_then_recover(quorum):
    server = quorum["server"]
    set_down(quorum, {2, 3})
    with connect(server) as conn:
        for sql in QUERIES:
            started = time.time()
            with pytest.raises(adbc_driver_manager.Error) as err:
                rows(conn, sql)
            text = str(err.value)
            assert "unavailable" in text.lower() or "QUORUM" in text, text
            assert time.time() - started < TIMEOUT + 10, f"{sql}: failed only after {time.time() - started:.1f} s"
        assert server.alive()
        assert rows(conn, "SELECT 1") == [(1,)]
    set_down(quorum, set())
    with connect(server) as conn:
        # The driver reconnects to the restarted nodes by itself; allow it a moment.
        deadline = time.time() + 60
        while True:
            try:
                rows(conn, QUERIES[0])
                break
            except adbc_driver_manager.Error:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        check_answers(conn, quorum["events"])
    assert server.alive()
