"""The Cyoda connector against a real cyoda-go (started here on free 127.0.0.1
ports): differential answers against local entity files, point-in-time reads,
pushdown (checked on what the service received), tenants in JWT mode, and
faults (service down, slow, restarted mid-scan, malformed answers)."""

import json
import os
import subprocess
import threading
import time

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pytest

from conftest import ROOT, Server
from test_trino import free_port
from cyoda import ORDER_SAMPLE, Cyoda, Recorder, new_rsa_key, orders

N_ORDERS = 400


def connect(server, user="admin", password="admin"):
    return flightsql.connect(server.uri, db_kwargs={"username": user, "password": password},
                             autocommit=True)


def rows(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def write_config(path, sources, users=True):
    text = ""
    if users:
        import bcrypt

        text += f'[[users]]\nname = "admin"\npassword_hash = "{bcrypt.hashpw(b"admin", bcrypt.gensalt(rounds=4)).decode()}"\n'

    for s in sources:
        text += "[[source]]\n" + "".join(
            f"{k} = {json.dumps(v) if isinstance(v, str) else ('true' if v is True else v)}\n" for k, v in s.items()
        )
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """cyoda-go (memory storage, no auth) holding N_ORDERS orders, some of them
    updated (new revisions) and some deleted; the same current state written
    as local entity files."""
    root = tmp_path_factory.mktemp("cyoda")
    service = Cyoda(root / "service")
    service.create_model("orders", ORDER_SAMPLE)
    docs = orders(N_ORDERS)
    ids = service.post_entities("orders", docs)
    for i in range(0, N_ORDERS, 10):  # every 10th order is paid again, with a new total
        doc = dict(docs[i], status="paid", total=docs[i]["total"] + 1)
        service.update(ids[i], doc)
    for i in range(5, N_ORDERS, 20):  # every 20th (from the 6th) is deleted
        service.delete(ids[i])
    files = root / "files" / "orders" / "1"
    files.mkdir(parents=True)
    with open(files / "current.ndjson", "w") as f:
        for env in service.all_envelopes("orders"):
            f.write(json.dumps(env) + "\n")
    yield {"service": service, "root": root, "ids": ids, "docs": docs, "files": root / "files"}
    service.stop()


def test_differential_slt(loaded, tmp_path):
    """sql-tests/cyoda/*.slt answer the same through the Cyoda catalog and the files catalog."""
    config = write_config(tmp_path / "both.toml", [
        {"kind": "cyoda", "catalog": "cyoda", "url": loaded["service"].base},
        {"kind": "files", "catalog": "files", "data": str(loaded["files"])},
    ], users=False)
    for catalog in ["files", "cyoda"]:
        env = {**os.environ, "TSQL_SLT_CONFIG": str(config), "TSQL_SLT_CATALOG": catalog,
               "TSQL_SLT_DIR": os.path.join(ROOT, "sql-tests", "cyoda")}
        run = subprocess.run(["cargo", "test", "-q", "--test", "sqllogictests"], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        assert run.returncode == 0, f"catalog {catalog}:\n{run.stdout}\n{run.stderr[-3000:]}"
        assert "0 failed" in run.stdout and " passed" in run.stdout, run.stdout


@pytest.fixture(scope="module")
def proxied(loaded, tmp_path_factory):
    """tsql serve over the loaded service through a recording proxy, plus the files catalog."""
    service = loaded["service"]
    proxy = Recorder(("127.0.0.1", service.ports[0]))
    config = write_config(tmp_path_factory.mktemp("proxied") / "tsql.toml", [
        {"kind": "cyoda", "catalog": "cyoda", "url": proxy.base, "timeout_seconds": 3,
         "metadata_ttl_seconds": 0.5},
        {"kind": "files", "catalog": "files", "data": str(loaded["files"])},
    ])
    server = Server(["--config", str(config)])
    yield server, proxy
    server.stop()
    proxy.close()


PUSHED = [
    # (filter on orders, the condition it must become)
    ("status = 'paid'", {"type": "simple", "jsonPath": "$.status", "operatorType": "EQUALS", "value": "paid"}),
    ("status <> 'paid'", {"type": "simple", "jsonPath": "$.status", "operatorType": "NOT_EQUAL", "value": "paid"}),
    ("priority > 3", {"type": "simple", "jsonPath": "$.priority", "operatorType": "GREATER_THAN", "value": 3}),
    ("priority >= 3", {"type": "simple", "jsonPath": "$.priority", "operatorType": "GREATER_OR_EQUAL", "value": 3}),
    ("priority < 2", {"type": "simple", "jsonPath": "$.priority", "operatorType": "LESS_THAN", "value": 2}),
    ("priority <= 2", {"type": "simple", "jsonPath": "$.priority", "operatorType": "LESS_OR_EQUAL", "value": 2}),
    ("total > 250.5", {"type": "simple", "jsonPath": "$.total", "operatorType": "GREATER_THAN", "value": 250.5}),
    ("note IS NULL", {"type": "simple", "jsonPath": "$.note", "operatorType": "IS_NULL", "value": None}),
    ("note IS NOT NULL", {"type": "simple", "jsonPath": "$.note", "operatorType": "NOT_NULL", "value": None}),
    ("customer_name LIKE 'cust-1_'", {"type": "simple", "jsonPath": "$.customer.name", "operatorType": "LIKE", "value": "cust-1_"}),
    ("orderid LIKE 'O-0001%'", {"type": "simple", "jsonPath": "$.orderId", "operatorType": "STARTS_WITH", "value": "O-0001"}),
    ("express = true", {"type": "simple", "jsonPath": "$.express", "operatorType": "EQUALS", "value": True}),
    ("state = 'CREATED'", {"type": "lifecycle", "field": "state", "operatorType": "EQUALS", "value": "CREATED"}),
    ("channel IN ('web', 'phone')", {"type": "group", "operator": "OR", "conditions": [
        {"type": "simple", "jsonPath": "$.channel", "operatorType": "EQUALS", "value": "web"},
        {"type": "simple", "jsonPath": "$.channel", "operatorType": "EQUALS", "value": "phone"}]}),
    ("(channel = 'web' OR priority = 1)", {"type": "group", "operator": "OR", "conditions": [
        {"type": "simple", "jsonPath": "$.channel", "operatorType": "EQUALS", "value": "web"},
        {"type": "simple", "jsonPath": "$.priority", "operatorType": "EQUALS", "value": 1}]}),
    ("placedat > TIMESTAMP '2024-06-01 00:00:00+00:00'",
     {"type": "simple", "jsonPath": "$.placedAt", "operatorType": "GREATER_OR_EQUAL", "value": "2024-06-01T00:00:00.000001Z"}),
    ("placedat <= TIMESTAMP '2024-03-01 10:15:00+00:00'",
     {"type": "simple", "jsonPath": "$.placedAt", "operatorType": "LESS_THAN", "value": "2024-03-01T10:15:00.000001Z"}),
    ("last_update_date > TIMESTAMP '2020-01-01 00:00:00+00:00'",
     {"type": "lifecycle", "field": "lastUpdateTime", "operatorType": "GREATER_OR_EQUAL", "value": "2020-01-01T00:00:00.000001Z"}),
    ("creation_date < TIMESTAMP '2200-01-01 00:00:00+00:00'",
     {"type": "lifecycle", "field": "creationDate", "operatorType": "LESS_THAN", "value": "2200-01-01T00:00:00Z"}),
]


def explain_condition(conn, sql):
    plan = "\n".join(str(r[1]) for r in rows(conn, "EXPLAIN " + sql))
    assert "condition=" in plan, plan
    text = plan.split("condition=", 1)[1]
    return json.JSONDecoder().raw_decode(text)[0]


@pytest.mark.parametrize("where,expected", PUSHED, ids=[p[0] for p in PUSHED])
def test_pushdown_reaches_the_service(proxied, where, expected):
    server, proxy = proxied
    sql = f"SELECT orderid FROM cyoda.entities.orders WHERE {where} ORDER BY orderid"
    with connect(server) as conn:
        assert explain_condition(conn, sql) == expected
        before = len(proxy.searches())
        got = rows(conn, sql)
        sent = [json.loads(b) for (_, _, b) in proxy.searches()[before:]]
        assert expected in sent, sent
        # The same filter over the same entities as local files (not pushed).
        want = rows(conn, sql.replace("cyoda.entities", "files.entities"))
    assert got == want and len(got) > 0


def test_child_table_filters_become_array_paths_and_two_filters_an_and_group(proxied):
    server, proxy = proxied
    sql = ("SELECT entity_id, index_0, qty FROM cyoda.entities.orders_lines "
           "WHERE sku = 'SKU-07' AND qty >= 5 ORDER BY entity_id, index_0")
    with connect(server) as conn:
        cond = explain_condition(conn, sql)
        assert cond["operator"] == "AND"
        assert {"type": "simple", "jsonPath": "$.lines[*].sku", "operatorType": "EQUALS", "value": "SKU-07"} in cond["conditions"]
        got = rows(conn, sql)
        want = rows(conn, sql.replace("cyoda.entities", "files.entities"))
    assert got == want and len(got) > 0
    assert json.loads(proxy.searches()[-1][2]) == cond


def test_what_means_something_else_upstream_is_not_pushed(proxied):
    server, proxy = proxied
    with connect(server) as conn:
        for where in ["lower(status) = 'paid'", "orderid ILIKE 'o-0001%'", "NOT (status LIKE 'p%')", "tags_array IS NULL",
                      "priority = 3.0 + 0.5"]:
            plan = "\n".join(str(r[1]) for r in rows(conn, f"EXPLAIN SELECT orderid FROM cyoda.entities.orders WHERE {where}"))
            assert "condition=" not in plan, (where, plan)


def test_entity_id_is_one_read(loaded, proxied):
    server, proxy = proxied
    some = loaded["ids"][1]
    with connect(server) as conn:
        before = len(proxy.requests)
        got = rows(conn, f"SELECT orderid FROM cyoda.entities.orders WHERE entity_id = '{some}'")
        paths = [p for (_, p, _) in proxy.requests[before:]]
    assert got == [("O-00001",)]
    assert any(p.startswith(f"/api/entity/{some}?") for p in paths), paths
    assert not any(p.startswith("/api/entity/orders/") for p in paths), paths


def test_join_across_cyoda_and_local_files(proxied):
    server, _ = proxied
    with connect(server) as conn:
        got = rows(conn, "SELECT count(*) FROM cyoda.entities.orders c JOIN files.entities.orders f "
                         "ON c.entity_id = f.entity_id AND c.total = f.total")
        total = rows(conn, "SELECT count(*) FROM files.entities.orders")
    assert got == total and total[0][0] == N_ORDERS - N_ORDERS // 20


def test_point_time_reads_revisions_made_at_known_instants(loaded, proxied):
    server, _ = proxied
    service = loaded["service"]
    service.create_model("pt", {"n": 1, "label": "a"})
    marks = []

    def mark():
        time.sleep(0.05)
        marks.append(time.time())
        time.sleep(0.05)

    mark()                                           # 0: nothing yet
    (first,) = service.post_entities("pt", [{"n": 1, "label": "a"}])
    mark()                                           # 1: first at n=1
    service.update(first, {"n": 2, "label": "b"})
    mark()                                           # 2: first at n=2
    (second,) = service.post_entities("pt", [{"n": 10, "label": "z"}])
    mark()                                           # 3: both
    service.delete(second)
    mark()                                           # 4: second deleted

    def at(i):
        t = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(marks[i])) + f".{int(marks[i] % 1 * 1e6):06d}"
        return rows(conn, f"SELECT n, label FROM cyoda.entities.pt WHERE point_time = TIMESTAMP '{t}' ORDER BY n")

    with connect(server) as conn:
        assert at(0) == []
        assert at(1) == [(1, "a")]
        assert at(2) == [(2, "b")]
        assert at(3) == [(2, "b"), (10, "z")]
        assert at(4) == [(2, "b")]
        assert rows(conn, "SELECT n FROM cyoda.entities.pt") == [(2,)]
        # point_time itself reads back as the instant asked for.
        t = rows(conn, "SELECT point_time FROM cyoda.entities.pt WHERE point_time = TIMESTAMP '2030-01-01 00:00:00'")
        assert str(t[0][0]).startswith("2030-01-01 00:00:00")


def test_new_models_and_fields_show_up_without_restart(loaded, proxied):
    server, _ = proxied
    service = loaded["service"]
    with connect(server) as conn:
        assert not any(t == "late" for (t,) in rows(conn, "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'cyoda'"))
        service.create_model("late", {"k": "v"})
        service.post_entities("late", [{"k": "one"}])
        time.sleep(1)  # the model list is cached for 0.5 s here
        assert rows(conn, "SELECT k FROM cyoda.entities.late") == [("one",)]
        service.call("POST", "/model/late/1/changeLevel/STRUCTURAL")
        service.post_entities("late", [{"k": "two", "extra": 5}])
        time.sleep(3)  # exports are re-read after 5 model-list lifetimes
        assert rows(conn, "SELECT k, extra FROM cyoda.entities.late ORDER BY k") == [("one", None), ("two", 5)]


def test_faults_dead_slow_and_malformed(loaded, proxied):
    server, proxy = proxied
    with connect(server) as conn:
        proxy.down = True
        started = time.time()
        with pytest.raises(adbc_driver_manager.Error) as err:
            rows(conn, "SELECT count(*) FROM cyoda.entities.orders")
        assert "UNAVAILABLE" in str(err.value) or "Unavailable" in str(err.value), err.value
        assert time.time() - started < 10
        # Other catalogs keep answering while the service is down.
        assert rows(conn, "SELECT count(*) FROM files.entities.orders")[0][0] > 0
        proxy.down = False
        # ... and while it is slow: a query of local files does not wait for it.
        proxy.delay = 4.0
        time.sleep(0.6)  # past the model list's lifetime
        started = time.time()
        assert rows(conn, "SELECT count(*) FROM files.entities.orders")[0][0] > 0
        assert time.time() - started < 2, "a local-files query waited for the slow service"
        proxy.delay = 0.0
        proxy.delay = 4.0  # longer than timeout_seconds = 3
        started = time.time()
        with pytest.raises(adbc_driver_manager.Error) as err:
            rows(conn, "SELECT count(*) FROM cyoda.entities.orders_json")
        proxy.delay = 0.0
        assert "DEADLINE_EXCEEDED" in str(err.value) or "Deadline" in str(err.value) or "did not answer" in str(err.value), err.value
        assert time.time() - started < 15
        # Malformed answers name the model (and the entity, where one is known).
        proxy.rewrite = lambda path, body: body[: len(body) // 2] if "/entity/orders/" in path else body
        with pytest.raises(adbc_driver_manager.Error) as err:
            rows(conn, "SELECT count(*) FROM cyoda.entities.orders")
        assert "orders v1" in str(err.value) and "malformed" in str(err.value), err.value

        def wrong_type(path, body):
            if "/entity/orders/" not in path:
                return body
            return body.replace(b'"priority":', b'"priority":"high","was":', 1)
        proxy.rewrite = wrong_type
        with pytest.raises(adbc_driver_manager.Error) as err:
            rows(conn, "SELECT sum(priority) FROM cyoda.entities.orders")
        proxy.rewrite = None
        message = str(err.value)
        assert "orders v1" in message and "entity " in message and "$.priority" in message, message
        # Back to normal: the next query works.
        assert rows(conn, "SELECT count(*) FROM cyoda.entities.orders")[0][0] == N_ORDERS - N_ORDERS // 20
    assert server.alive()


@pytest.fixture(scope="module")
def tenants(tmp_path_factory):
    """cyoda-go in JWT mode on sqlite storage, with tenant-a (the bootstrap
    client) and tenant-b (a token minted with the service's signing key, and an
    M2M client created with it); tsql serves it in passthrough mode."""
    root = tmp_path_factory.mktemp("tenants")
    service = Cyoda(root / "service", storage="sqlite", iam="jwt")
    a = service.token()
    b = service.mint("tenant-b", subject="svc-b")
    service.create_model("amodel", {"secret_a": "x", "n": 1}, token=a)
    service.post_entities("amodel", [{"secret_a": f"a{i}", "n": i} for i in range(2000)], token=a)
    service.create_model("bmodel", {"secret_b": "y", "m": 1.5}, token=b)
    service.post_entities("bmodel", [{"secret_b": "b1", "m": 2.5}, {"secret_b": "b2", "m": 3.5}], token=b)
    client_b = service.call("POST", "/clients", token=b)
    proxy = Recorder(("127.0.0.1", service.ports[0]))
    config = write_config(root / "tsql.toml", [
        {"kind": "cyoda", "catalog": "cyoda", "url": proxy.base, "auth": "passthrough",
         "timeout_seconds": 5, "page_size": 100, "pages_in_flight": 1},
    ], users=False)
    trino_port = free_port()
    server = Server(["--config", str(config), "--trino-listen", f"127.0.0.1:{trino_port}"])
    yield {"service": service, "server": server, "proxy": proxy, "b": b, "trino_port": trino_port,
           "client_b": (client_b["client_id"], client_b["client_secret"])}
    server.stop()
    proxy.close()
    service.stop()


def connect_token(server, token):
    return flightsql.connect(server.uri, db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {token}"},
                             autocommit=True)


def visible(conn):
    """Every table name the connection can find, through every metadata path."""
    names = set()
    for catalog in conn.adbc_get_objects(depth="tables").read_all().to_pylist():
        for schema in catalog["catalog_db_schemas"] or []:
            names.update(t["table_name"] for t in schema["db_schema_tables"] or [])
    names.update(r[0] for r in rows(conn, "SELECT table_name FROM information_schema.tables"))
    names.update(r[2] for r in rows(conn, "SHOW TABLES"))
    return names


def tenant_of(authorization):
    import base64

    claims = authorization.split(" ", 1)[1].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["caas_org_id"]


def test_each_tenant_sees_only_its_own(tenants):
    server = tenants["server"]
    with connect(server, "boot", "bootsecret") as a:
        with connect_token(server, tenants["b"]) as b:
            with connect(server, *tenants["client_b"]) as b2:
                for _ in range(2):  # and again, from the caches
                    seen_a, seen_b, seen_b2 = visible(a), visible(b), visible(b2)
                    assert {"amodel", "amodel_json"} <= seen_a and not any("bmodel" in t for t in seen_a)
                    assert {"bmodel", "bmodel_json"} <= seen_b and not any("amodel" in t for t in seen_b)
                    assert seen_b2 == seen_b
                    assert rows(a, "SELECT count(*), sum(n) FROM cyoda.entities.amodel") == [(2000, 1999000)]
                    assert sorted(rows(b, "SELECT secret_b, m FROM bmodel")) == [("b1", 2.5), ("b2", 3.5)]
                    assert sorted(rows(b2, "SELECT secret_b FROM bmodel")) == [("b1",), ("b2",)]
                for conn, other in [(a, "bmodel"), (b, "amodel"), (b2, "amodel")]:
                    with pytest.raises(adbc_driver_manager.Error) as err:
                        rows(conn, f"SELECT * FROM {other}")
                    assert "not found" in str(err.value)
                    with pytest.raises(adbc_driver_manager.Error) as err:
                        rows(conn, "SELECT * FROM nosuch")
                    text = str(err.value)
                    assert "amodel" not in text and "bmodel" not in text and "secret" not in text, text
                    # A prepared statement plans as its caller too.
                    with conn.cursor() as cur:
                        with pytest.raises(adbc_driver_manager.Error):
                            cur.adbc_prepare(f"SELECT count(*) FROM {other}")
    # Every upstream call carried a token, and each model's reads its own tenant's.
    proxy = tenants["proxy"]
    calls = list(zip(proxy.requests, proxy.authorization))
    data_calls = [(r, a) for r, a in calls if not r[1].startswith("/api/.well-known") and "oauth" not in r[1]]
    assert data_calls and all(a and a.startswith("Bearer ") for _, a in data_calls)
    for (method, path, _), auth in data_calls:
        if "amodel" in path:
            assert tenant_of(auth) == "tenant-a", path
        if "bmodel" in path:
            assert tenant_of(auth) == "tenant-b", path


def test_trino_clients_log_in_with_cyoda_tokens(tenants):
    """Over the Trino protocol a Cyoda JWT is a bearer token (as JDBC's accessToken sends it):
    each tenant sees its own models; an unknown token is a 401 naming both schemes."""
    import urllib.error
    import urllib.request

    base = f"http://127.0.0.1:{tenants['trino_port']}"

    def query(sql, token):
        req = urllib.request.Request(base + "/v1/statement", data=sql.encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "X-Trino-Catalog": "cyoda",
                                              "X-Trino-Schema": "entities"})
        page = json.load(urllib.request.urlopen(req, timeout=30))
        rows = []
        while True:
            rows += page.get("data", [])
            if "error" in page:
                return page["error"]
            if "nextUri" not in page:
                return rows
            req = urllib.request.Request(page["nextUri"], headers={"Authorization": f"Bearer {token}"})
            page = json.load(urllib.request.urlopen(req, timeout=30))

    a, b = tenants["service"].token(), tenants["b"]
    assert sorted(query("SELECT secret_b, m FROM bmodel", b)) == [["b1", 2.5], ["b2", 3.5]]
    assert query("SELECT count(*) FROM amodel", a) == [[2000]]
    assert query("SELECT * FROM bmodel", a)["errorName"] == "TABLE_NOT_FOUND"
    with pytest.raises(urllib.error.HTTPError) as refused:
        query("SELECT 1", "not.a.token")
    assert refused.value.code == 401
    assert any(v.startswith("Bearer") for v in refused.value.headers.get_all("WWW-Authenticate"))


def test_a_token_as_password_with_an_empty_user(tenants):
    server = tenants["server"]
    with connect(server, "", tenants["b"]) as conn:
        assert sorted(rows(conn, "SELECT secret_b FROM cyoda.entities.bmodel")) == [("b1",), ("b2",)]


def test_bad_tokens_are_refused(tenants):
    server, service = tenants["server"], tenants["service"]
    other_key = os.path.join(service.workdir, "other.pem")
    new_rsa_key(other_key)
    cases = {
        "expired": service.mint("tenant-b", expires_in=-60),
        "forged": service.mint("tenant-b", key_file=other_key),
        "garbage": "not.a.token",
    }
    for name, token in cases.items():
        with pytest.raises(adbc_driver_manager.Error) as err:
            with connect_token(server, token) as conn:
                rows(conn, "SELECT 1")
        assert "UNAUTHENTICATED" in str(err.value) or "Unauthenticated" in str(err.value), (name, err.value)
    with pytest.raises(adbc_driver_manager.Error) as err:
        with connect(server, "boot", "wrong") as conn:
            rows(conn, "SELECT 1")
    assert "Unauthenticated" in str(err.value) or "UNAUTHENTICATED" in str(err.value), err.value
    assert server.alive()


def test_restart_mid_scan_fails_then_recovers(tenants):
    server, service, proxy = tenants["server"], tenants["service"], tenants["proxy"]
    outcome = {}

    def scan():
        try:
            with connect(server, "boot", "bootsecret") as conn:
                outcome["rows"] = rows(conn, "SELECT count(*) FROM amodel")
        except adbc_driver_manager.Error as e:
            outcome["error"] = str(e)

    proxy.delay = 0.15  # 20 pages of 100: about 3 s
    worker = threading.Thread(target=scan)
    worker.start()
    time.sleep(1.0)
    service.kill()
    worker.join(timeout=60)
    proxy.delay = 0.0
    assert "error" in outcome, f"a scan cut short must fail, got {outcome}"
    assert "Unavailable" in outcome["error"] or "UNAVAILABLE" in outcome["error"], outcome["error"]
    service.start()  # sqlite storage: the data survived
    with connect(server, "boot", "bootsecret") as conn:
        assert rows(conn, "SELECT count(*) FROM amodel") == [(2000,)]
    assert server.alive()


def test_one_technical_identity_serves_local_users(tenants, tmp_path):
    """client_id/client_secret in the config: every SQL user reads as that one
    Cyoda client (single-tenant), with tsql's own users."""
    config = write_config(tmp_path / "tech.toml", [
        {"kind": "cyoda", "catalog": "cyoda", "url": tenants["service"].base,
         "client_id": "boot", "client_secret": "bootsecret"},
    ])
    server = Server(["--config", str(config)])
    try:
        with connect(server) as conn:
            assert rows(conn, "SELECT count(*) FROM amodel") == [(2000,)]
            assert not any("bmodel" in t for t in visible(conn))
        with pytest.raises(adbc_driver_manager.Error):
            with connect(server, "boot", "bootsecret") as conn:  # not a tsql user here
                rows(conn, "SELECT 1")
    finally:
        server.stop()


def test_a_rotated_signing_key_is_fetched_when_a_token_names_it(tenants):
    """The service issues a new signing key pair: tokens now name a key id tsql
    has not seen, and tsql reads the JWKS again instead of refusing them."""
    server, service, proxy = tenants["server"], tenants["service"], tenants["proxy"]
    with connect(server, "boot", "bootsecret") as conn:  # caches the current key
        assert rows(conn, "SELECT count(*) FROM amodel") == [(2000,)]
    admin = service.token()
    service.call("POST", "/oauth/keys/keypair", body={"algorithm": "RS256", "audience": "client"}, token=admin)
    fresh = service.token()
    kid = lambda t: json.loads(__import__("base64").urlsafe_b64decode(t.split(".")[0] + "=="))["kid"]
    assert kid(fresh) != kid(admin), "the service did not switch to the new key"
    before = sum(1 for (_, p, _) in proxy.requests if p.startswith("/api/.well-known/jwks.json"))
    with connect_token(server, fresh) as conn:
        assert rows(conn, "SELECT count(*) FROM amodel") == [(2000,)]
    after = sum(1 for (_, p, _) in proxy.requests if p.startswith("/api/.well-known/jwks.json"))
    assert after == before + 1


def test_readyz_says_when_a_source_is_unreachable(tmp_path):
    import urllib.error
    import urllib.request

    from cyoda import free_port

    dead, metrics = free_port(), free_port()
    config = write_config(tmp_path / "dead.toml", [
        {"kind": "cyoda", "catalog": "cyoda", "url": f"http://127.0.0.1:{dead}/api", "timeout_seconds": 2},
    ])
    config.write_text(f'metrics_listen = "127.0.0.1:{metrics}"\n' + config.read_text())
    server = Server(["--config", str(config)])
    try:
        assert urllib.request.urlopen(f"http://127.0.0.1:{metrics}/healthz").status == 200
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{metrics}/readyz")
        assert err.value.code == 503
        assert "catalog cyoda" in err.value.read().decode()
        # Upstream calls are counted by source and failure kind.
        with pytest.raises(adbc_driver_manager.Error):
            with connect(server) as conn:
                rows(conn, "SELECT * FROM cyoda.entities.anything")
        from prometheus_client.parser import text_string_to_metric_families

        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics").read().decode()
        errors = [s for f in text_string_to_metric_families(text) for s in f.samples
                  if s.name == "tsql_upstream_errors_total" and s.labels["source"] == f"http://127.0.0.1:{dead}/api"]
        assert errors and errors[0].labels["kind"] == "unavailable" and errors[0].value >= 1, errors
    finally:
        server.stop()


def test_a_limit_on_a_root_table_reads_only_the_entities_it_needs(proxied):
    server, proxy = proxied
    with connect(server) as conn:
        before = len(proxy.requests)
        got = rows(conn, "SELECT orderid FROM cyoda.entities.orders LIMIT 3")
        pages = [p for (_, p, _) in proxy.requests[before:] if p.startswith("/api/entity/orders/1")]
    assert len(got) == 3
    assert pages and all("pageSize=3&" in p for p in pages), pages
