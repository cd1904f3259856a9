"""A cluster reading upstream sources as the caller: a coordinator and two
workers (real `tsql serve` processes on 127.0.0.1) in front of a real cyoda-go
in JWT mode with two tenants, and of a real Cassandra 5 with two tenants'
keyspaces. Distributed scans must give the answers computed here from what
was loaded, every worker must have called the upstream itself (each worker
reads cyoda-go through its own recording proxy, and counts its Cassandra
calls on /metrics), with the caller's own token and nothing else, and two
tenants querying at once on the same workers see only their own data."""

import threading
from collections import Counter

import pyarrow.flight as fl
import pytest

from cassandra_it import Cluster, load_wide
from cyoda import Cyoda, Recorder
from test_cluster import Node, basic, flight_query
from test_cyoda import tenant_of

N_A = 3000  # tenant A's entities: 30 pages of 100
UPSTREAM_CALLS = 'tsql_upstream_request_duration_seconds_count{{source="{}"}}'


def bearer(token):
    return [(b"authorization", f"Bearer {token}".encode())]


# --- Cyoda ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cyoda(tmp_path_factory):
    """cyoda-go (JWT, sqlite) with tenant A (the bootstrap client, N_A
    entities of `amodel`) and tenant B (a minted token, three `bmodel`s);
    tsql in passthrough mode, each node reading through its own proxy."""
    root = tmp_path_factory.mktemp("cluster-cyoda")
    service = Cyoda(root / "service", storage="sqlite", iam="jwt")
    a, b = service.token(), service.mint("tenant-b", subject="svc-b")
    service.create_model("amodel", {"secret_a": "x", "n": 1}, token=a)
    service.post_entities("amodel", [{"secret_a": f"a{i}", "n": i} for i in range(N_A)], token=a)
    service.create_model("bmodel", {"secret_b": "y", "m": 1.5}, token=b)
    service.post_entities("bmodel", [{"secret_b": f"b{i}", "m": i + 0.5} for i in range(3)], token=b)
    proxies = [Recorder(("127.0.0.1", service.ports[0])) for _ in range(3)]

    def source(proxy):
        return [{"kind": "cyoda", "catalog": "cyoda", "url": proxy.base, "auth": "passthrough",
                 "timeout_seconds": 10, "page_size": 100}]

    workers = [Node(root, f"w{i}", sources=source(proxies[1 + i]), users=()) for i in range(2)]
    coordinator = Node(root, "c", workers=[w.worker_port for w in workers], sources=source(proxies[0]),
                       users=())
    yield {"coordinator": coordinator, "workers": workers, "proxies": proxies, "a": a, "b": b}
    for n in [coordinator, *workers]:
        n.stop()
    for p in proxies:
        p.close()
    service.stop()


def page_reads(proxy, model):
    """The tokens of the model-page reads `proxy` passed on."""
    return [auth for (method, path, _), auth in zip(proxy.requests, proxy.authorization)
            if method == "GET" and path.startswith(f"/api/entity/{model}/")]


def test_cyoda_pages_are_read_by_every_worker_with_the_callers_token(cyoda):
    coordinator, workers, proxies = cyoda["coordinator"], cyoda["workers"], cyoda["proxies"]
    for p in proxies:
        p.requests.clear()
        p.authorization.clear()
    tenant_a = tenant_of(f"Bearer {cyoda['a']}")
    sql = "SELECT count(*), sum(n), count(DISTINCT secret_a), max(secret_a) FROM cyoda.entities.amodel"
    expected = [(N_A, N_A * (N_A - 1) // 2, N_A, max(f"a{i}" for i in range(N_A)))]
    # Cyoda calls are counted by service URL: each worker's is its own proxy.
    calls = [w.metric(UPSTREAM_CALLS.format(p.base)) or 0 for w, p in zip(workers, proxies[1:])]
    headers = basic(coordinator, "boot", "bootsecret")
    assert flight_query(coordinator, headers, sql, "on") == expected
    for worker, proxy, before in zip(workers, proxies[1:], calls):
        reads = page_reads(proxy, "amodel")
        assert reads, "a worker read no page of its own"
        assert {tenant_of(r) for r in reads} == {tenant_a}
        assert worker.metric(UPSTREAM_CALLS.format(proxy.base)) > before
    # The same answer from the coordinator alone.
    assert flight_query(coordinator, basic(coordinator, "boot", "bootsecret"), sql, "off") == expected


def test_two_cyoda_tenants_on_the_same_workers_see_only_their_own(cyoda):
    coordinator, proxies = cyoda["coordinator"], cyoda["proxies"]
    for p in proxies:
        p.requests.clear()
        p.authorization.clear()
    tenant_b = tenant_of(f"Bearer {cyoda['b']}")
    results, errors = {}, {}

    def run(name, headers, sql):
        try:
            results[name] = flight_query(coordinator, headers, sql, "on")
        except Exception as e:  # noqa: BLE001 - the error is what is checked
            errors[name] = e

    a_headers = basic(coordinator, "boot", "bootsecret")
    b_headers = bearer(cyoda["b"])
    jobs = [("a", a_headers, "SELECT count(*) FROM cyoda.entities.amodel"),
            ("b", b_headers, "SELECT secret_b, m FROM cyoda.entities.bmodel ORDER BY secret_b"),
            ("b-reads-a", b_headers, "SELECT count(*) FROM cyoda.entities.amodel")]
    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results["a"] == [(N_A,)]
    assert results["b"] == [(f"b{i}", i + 0.5) for i in range(3)]
    assert "not found" in str(errors["b-reads-a"]).lower() or "amodel" in str(errors["b-reads-a"])
    assert "b-reads-a" not in results
    # Tenant B's token never read tenant A's model on any node.
    for proxy in proxies:
        assert tenant_b not in {tenant_of(r) for r in page_reads(proxy, "amodel")}
    assert any(page_reads(p, "bmodel") for p in proxies)


# --- Cassandra --------------------------------------------------------------------
@pytest.fixture(scope="module")
def cassandra(tmp_path_factory):
    """Cassandra (one node, 16 vnodes) with client_a's and client_b's events;
    alice may read client_a only, bob client_b only."""
    root = tmp_path_factory.mktemp("cluster-cassandra")
    ring = Cluster(1, root / "cassandra", num_tokens=16)
    session = ring.session()
    a_events = load_wide(session, "client_a", 6000)
    b_events = load_wide(session, "client_b", 900, seed=99, tenants=3, days=4)
    ring.flush_and_estimate()
    source = [{"kind": "cassandra", "catalog": "cassandra", "contact_points": ring.contact_points,
               "keyspaces": ["client_a", "client_b"], "request_timeout_seconds": 10,
               "tenants": {"alice": ["client_a"], "bob": ["client_b"]}}]
    users = ("alice", "bob")
    workers = [Node(root, f"w{i}", sources=source, users=users) for i in range(2)]
    coordinator = Node(root, "c", workers=[w.worker_port for w in workers], sources=source, users=users)
    yield {"coordinator": coordinator, "workers": workers, "a": a_events, "b": b_events}
    for n in [coordinator, *workers]:
        n.stop()
    ring.stop()


def by_kind(events):
    counts = Counter(e.kind for e in events)
    sums = Counter()
    for e in events:
        sums[e.kind] += e.amount
    return {k: (counts[k], sums[k]) for k in counts}


def answered_by_kind(rows):
    return {k: (n, s) for k, n, s in rows}


def test_cassandra_ranges_spread_over_workers_per_tenant(cassandra):
    coordinator, workers = cassandra["coordinator"], cassandra["workers"]
    sql = "SELECT kind, count(*), sum(amount) FROM cassandra.{}.events GROUP BY kind"
    calls = [w.metric(UPSTREAM_CALLS.format("cassandra")) or 0 for w in workers]
    results, errors = {}, {}

    def run(name, user, keyspace):
        try:
            results[name] = flight_query(coordinator, basic(coordinator, user, user), sql.format(keyspace), "on")
        except Exception as e:  # noqa: BLE001 - the error is what is checked
            errors[name] = e

    jobs = [("alice", "alice", "client_a"), ("bob", "bob", "client_b"), ("bob-reads-a", "bob", "client_a")]
    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for name, events in [("alice", cassandra["a"]), ("bob", cassandra["b"])]:
        got, want = answered_by_kind(results[name]), by_kind(events)
        assert got.keys() == want.keys(), name
        for k in want:
            assert got[k][0] == want[k][0] and got[k][1] == pytest.approx(want[k][1]), (name, k)
    assert isinstance(errors["bob-reads-a"], (fl.FlightError, KeyError)), errors
    assert "client_a" in str(errors["bob-reads-a"]), errors["bob-reads-a"]
    assert "bob-reads-a" not in results
    # Every worker read token ranges itself.
    for worker, before in zip(workers, calls):
        assert worker.metric(UPSTREAM_CALLS.format("cassandra")) > before
    # The coordinator alone answers the same.
    off = flight_query(coordinator, basic(coordinator, "alice", "alice"), sql.format("client_a"), "off")
    assert answered_by_kind(off).keys() == by_kind(cassandra["a"]).keys()
