"""Nothing of one caller is reachable by another, probed as a hostile tenant
would, against a real `tsql serve` (and a real cyoda-go in JWT mode for two
Cyoda tenants): Flight tickets are sealed and bound to their owner, prepared
statements and Trino `nextUri`s answer only their owner, query ids are random
and unique, `kill_query` needs the owner, every call is authenticated before
anything it carries is read, and failed logins are throttled."""

import base64
import json
import re
import textwrap
import time
import urllib.request

import pyarrow.flight as fl
import pytest

from conftest import Server, users_toml
from cyoda import Cyoda, Recorder
from flightproto import (
    cancel_flight_info_request,
    create_prepared_statement_request,
    field,
    flight_sql_command,
    prepared_statement_command,
    read_fields,
    statement_ticket,
)
from test_trino import free_port

ENDLESS = "SELECT count(*) FROM orders_lines a CROSS JOIN orders_lines b CROSS JOIN orders_lines c"


@pytest.fixture(scope="module")
def two_users(tmp_path_factory):
    """The demo data with users ann, bob and ops (role admin), Trino on a free port, no X-Trino-User trust."""
    root = tmp_path_factory.mktemp("two_users")
    config = root / "tsql.toml"
    config.write_text(textwrap.dedent(f"""\
        trino_allow_insecure = false
        metrics_listen = "127.0.0.1:{free_port()}"
        """) + users_toml(ann="a", bob="b", ops="o") + 'roles = ["admin"]\n')
    port = free_port()
    s = Server(["--demo", "--config", str(config), "--trino-listen", f"127.0.0.1:{port}"])
    s.trino = f"http://127.0.0.1:{port}"
    yield s
    s.stop()


def flight(server, user, password):
    client = fl.FlightClient(server.uri)
    return client, fl.FlightCallOptions(headers=[client.authenticate_basic_token(user, password)])


def error_of(call):
    """The message of the Flight error `call` raises."""
    with pytest.raises((fl.FlightError, KeyError)) as e:  # NOT_FOUND comes as ArrowKeyError
        call()
    text = str(e.value)
    m = re.search(r"with message: (.*?)\. gRPC client debug context", text)
    return (m.group(1) if m else text.split(". Detail:")[0]).strip("'\"")


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def trino_http(method, url, body=None, authorization=None, user=None):
    headers = {}
    if authorization:
        headers["Authorization"] = authorization
    if user:
        headers["X-Trino-User"] = user
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_ticket_is_sealed_and_redeemable_only_by_its_owner(two_users):
    ann, ann_o = flight(two_users, "ann", "a")
    bob, bob_o = flight(two_users, "bob", "b")
    info = ann.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command("SELECT 'ann-secret' AS x")), ann_o)
    ticket = info.endpoints[0].ticket.ticket
    # Nobody can read what is inside: not the SQL, not the owner.
    assert b"ann-secret" not in ticket and b"ann" not in ticket
    made_up = error_of(lambda: bob.do_get(fl.Ticket(statement_ticket(b"tsql2" + b"\0" * 40)), bob_o).read_all())
    assert "unknown ticket" in made_up
    # Another user's ticket gets the same answer as one that never existed.
    assert error_of(lambda: bob.do_get(info.endpoints[0].ticket, bob_o).read_all()) == made_up
    # Every altered byte of the sealed handle is refused (no forging, no editing the owner).
    handle = read_fields(read_fields(ticket)[1][2])[0][2]
    for i in range(0, len(handle), 7):
        changed = bytearray(handle)
        changed[i] ^= 0x20
        assert error_of(lambda: ann.do_get(fl.Ticket(statement_ticket(bytes(changed))), ann_o).read_all()) == made_up
    # The old readable format, naming ann, is refused too.
    old = b"tsql1" + field(1, b"claimed-id") + field(2, b"ann") + field(5, b"SELECT 1")
    assert error_of(lambda: ann.do_get(fl.Ticket(statement_ticket(old)), ann_o).read_all()) == made_up
    # The owner still gets the rows, and the crafted id never reached the query view.
    assert ann.do_get(info.endpoints[0].ticket, ann_o).read_all().column("x").to_pylist() == ["ann-secret"]
    ops, ops_o = flight(two_users, "ops", "o")
    view = ops.do_get(ops.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command(
        "SELECT count(*) AS n FROM system.runtime.queries WHERE query_id = 'claimed-id'")), ops_o)
        .endpoints[0].ticket, ops_o).read_all()
    assert view.column("n").to_pylist() == [0]


def test_cancel_flight_info_needs_the_owner_not_a_field_the_client_wrote(two_users):
    ann, ann_o = flight(two_users, "ann", "a")
    bob, bob_o = flight(two_users, "bob", "b")
    info = ann.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command(ENDLESS)), ann_o)
    reader = ann.do_get(info.endpoints[0].ticket, ann_o)
    try:
        results = list(bob.do_action(fl.Action("CancelFlightInfo", cancel_flight_info_request(info)), bob_o))
        assert [read_fields(r.body.to_pybytes()) for r in results] == [[(1, 0, 3)]]  # NOT_CANCELLABLE
        assert two_users.busy() > 0.5, "bob's cancel stopped ann's query"
        results = list(ann.do_action(fl.Action("CancelFlightInfo", cancel_flight_info_request(info)), ann_o))
        assert [read_fields(r.body.to_pybytes()) for r in results] == [[(1, 0, 1)]]  # CANCELLED
    finally:
        reader.cancel()
    assert two_users.wait_idle()


def test_a_prepared_statement_answers_only_its_owner(two_users):
    ann, ann_o = flight(two_users, "ann", "a")
    bob, bob_o = flight(two_users, "bob", "b")
    [result] = list(ann.do_action(fl.Action("CreatePreparedStatement",
                                            create_prepared_statement_request("SELECT 41 + 1 AS x")), ann_o))
    created = read_fields(read_fields(result.body.to_pybytes())[1][2])
    handle = [v for n, _, v in created if n == 1][0]
    command = fl.FlightDescriptor.for_command(prepared_statement_command(handle))
    info = ann.get_flight_info(command, ann_o)
    assert ann.do_get(info.endpoints[0].ticket, ann_o).read_all().column("x").to_pylist() == [42]
    theirs = error_of(lambda: bob.get_flight_info(command, bob_o))
    never = error_of(lambda: bob.get_flight_info(fl.FlightDescriptor.for_command(
        prepared_statement_command(b"0" * len(handle))), bob_o))
    assert "unknown prepared statement" in theirs and theirs == never
    assert "unknown ticket" in error_of(lambda: bob.do_get(info.endpoints[0].ticket, bob_o).read_all())


def test_every_call_is_authenticated_before_it_is_read(two_users):
    anonymous = fl.FlightClient(two_users.uri)
    for call in [
        lambda: anonymous.do_get(fl.Ticket(b"\xff\xff not a ticket")).read_all(),
        lambda: list(anonymous.list_actions()),
        lambda: list(anonymous.do_action(fl.Action("CancelFlightInfo", b"\xff garbage"))),
        lambda: anonymous.get_flight_info(fl.FlightDescriptor.for_command(b"\xff garbage")),
        lambda: anonymous.get_schema(fl.FlightDescriptor.for_command(flight_sql_command("SELECT 1"))),
    ]:
        with pytest.raises(Exception) as e:
            call()
        assert "unauthenticated" in str(e.value) and "no credentials" in str(e.value), str(e.value)
        assert "DecodeError" not in str(e.value) and "Varint" not in str(e.value)


def test_a_trino_query_answers_only_its_owner(two_users):
    status, first = trino_http("POST", f"{two_users.trino}/v1/statement", "SELECT orderid FROM orders",
                               basic("ann", "a"))
    assert status == 200, first
    next_uri = first["nextUri"]
    gone = f"{two_users.trino}/v1/statement/executing/{first['id']}/{'0' * 32}/1"
    never = trino_http("GET", gone, authorization=basic("bob", "b"))
    assert never[0] == 404
    # bob, somebody claiming to be ann without her password, and nobody at all:
    assert trino_http("GET", next_uri, authorization=basic("bob", "b")) == never
    assert trino_http("DELETE", next_uri, authorization=basic("bob", "b")) == never
    assert trino_http("GET", next_uri, user="ann")[0] == 401
    assert trino_http("DELETE", next_uri)[0] == 401
    assert trino_http("GET", next_uri, authorization=basic("ann", "wrong"))[0] == 401
    # ann's query was neither read nor stopped by any of that: she gets every row.
    rows, uri = [], next_uri
    while uri:
        status, page = trino_http("GET", uri, authorization=basic("ann", "a"))
        assert status == 200, page
        assert "error" not in page, page
        rows += page.get("data", [])
        uri = page.get("nextUri")
    client, options = flight(two_users, "ann", "a")
    count = client.do_get(client.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command(
        "SELECT count(*) AS n FROM orders")), options).endpoints[0].ticket, options).read_all()
    assert len(rows) == count.column("n").to_pylist()[0] > 1000


def test_query_ids_are_random_unique_and_killable_only_by_their_owner(two_users):
    ids = []
    for _ in range(3):
        status, page = trino_http("POST", f"{two_users.trino}/v1/statement", "SELECT 1", basic("ann", "a"))
        ids.append(page["id"])
        while page.get("nextUri"):
            _, page = trino_http("GET", page["nextUri"], authorization=basic("ann", "a"))
    assert len(set(ids)) == 3
    for qid in ids:
        assert re.fullmatch(r"\d{8}_\d{6}_\d{5}_[a-z]{12}", qid), qid
    # No server-wide counter: the numbers do not follow each other.
    numbers = [int(q.split("_")[2]) for q in ids]
    assert not (numbers[1] == numbers[0] + 1 and numbers[2] == numbers[1] + 1), ids
    # ann's running query: bob cannot kill it (the same answer as an unknown id); ann can.
    import threading

    status, page = trino_http("POST", f"{two_users.trino}/v1/statement", ENDLESS, basic("ann", "a"))
    running = page["id"]
    answer = []
    reader = threading.Thread(target=lambda: answer.append(
        trino_http("GET", page["nextUri"], authorization=basic("ann", "a"))))
    reader.start()

    def kill(user, password, qid):
        _, p = trino_http("POST", f"{two_users.trino}/v1/statement",
                          f"CALL system.runtime.kill_query('{qid}')", basic(user, password))
        return p.get("error", {}).get("message", "")

    try:
        assert two_users.busy() > 0.5, "ann's query should be computing"
        theirs = kill("bob", "b", running)
        assert "not found" in theirs
        unknown = "20990101_000000_00000_aaaaaaaaaaaa"
        assert theirs.replace(running, "X") == kill("bob", "b", unknown).replace(unknown, "X")
        assert two_users.busy() > 0.5, "bob's kill stopped ann's query"
        assert kill("ann", "a", running) == ""
        reader.join(timeout=30)
        assert answer and answer[0][1]["error"]["errorName"] == "USER_CANCELED", answer
        assert two_users.wait_idle()
    finally:
        trino_http("DELETE", page["nextUri"], authorization=basic("ann", "a"))
        reader.join(timeout=30)


def test_failed_logins_are_throttled_per_user_and_per_address(tmp_path):
    config = tmp_path / "tsql.toml"
    metrics = free_port()
    config.write_text(textwrap.dedent(f"""\
        login_failures_per_minute = 3
        metrics_listen = "127.0.0.1:{metrics}"
        """) + users_toml(ann="a", bob="b"))
    port = free_port()
    s = Server(["--demo", "--config", str(config), "--trino-listen", f"127.0.0.1:{port}"])
    try:
        client = fl.FlightClient(s.uri)
        for _ in range(3):
            with pytest.raises(fl.FlightUnauthenticatedError):
                client.authenticate_basic_token("ann", "wrong")
        # Now even the right password is refused without being checked, for ann and from this address.
        with pytest.raises(Exception, match="too many failed logins"):
            client.authenticate_basic_token("ann", "a")
        with pytest.raises(Exception, match="too many failed logins"):
            client.authenticate_basic_token("bob", "b")
        status, body = trino_http("POST", f"http://127.0.0.1:{port}/v1/statement", "SELECT 1", basic("bob", "b"))
        assert status == 429 and "too many failed logins" in body
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10).read().decode()
        throttled = float(re.search(r"^tsql_logins_throttled_total (\S+)$", text, re.M).group(1))
        assert throttled >= 3
    finally:
        s.stop()


@pytest.fixture(scope="module")
def cyoda_tenants(tmp_path_factory):
    """cyoda-go in JWT mode; two Cyoda owners whose subject@tenant texts are equal
    (sub `eve` of tenant `x@org`, sub `eve@x` of tenant `org`), tokens signed with
    the service's own key; tsql in passthrough mode with a short login cache."""
    root = tmp_path_factory.mktemp("cyoda_tenants")
    service = Cyoda(root / "service", storage="memory", iam="jwt")
    proxy = Recorder(("127.0.0.1", service.ports[0]))
    config = root / "tsql.toml"
    config.write_text(textwrap.dedent(f"""\
        login_cache_seconds = 1
        login_failures_per_minute = 4
        [[source]]
        kind = "cyoda"
        catalog = "cyoda"
        url = "{proxy.base}"
        auth = "passthrough"
        """))
    port = free_port()
    server = Server(["--config", str(config), "--trino-listen", f"127.0.0.1:{port}"])
    server.trino = f"http://127.0.0.1:{port}"
    yield {"service": service, "server": server, "proxy": proxy,
           "one": service.mint("x@org", subject="eve"), "two": service.mint("org", subject="eve@x")}
    server.stop()
    proxy.close()
    service.stop()


def bearer_flight(server, token):
    return fl.FlightClient(server.uri), fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


def test_cyoda_owners_are_tenant_subject_pairs(cyoda_tenants):
    server, one, two = cyoda_tenants["server"], cyoda_tenants["one"], cyoda_tenants["two"]
    c1, o1 = bearer_flight(server, one)
    c2, o2 = bearer_flight(server, two)
    info = c1.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command("SELECT 'one' AS x")), o1)
    assert "unknown ticket" in error_of(lambda: c2.do_get(info.endpoints[0].ticket, o2).read_all())
    assert c1.do_get(info.endpoints[0].ticket, o1).read_all().column("x").to_pylist() == ["one"]
    # Each sees only its own queries in the view, with its tenant.
    def view(client, options):
        return client.do_get(client.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command(
            "SELECT user, tenant FROM system.runtime.queries")), options).endpoints[0].ticket, options).read_all()
    assert set(zip(*view(c1, o1).to_pydict().values())) == {("eve", "x@org")}
    assert set(zip(*view(c2, o2).to_pydict().values())) == {("eve@x", "org")}
    # A Trino query of one is not the other's to read or stop.
    status, page = trino_http("POST", f"{server.trino}/v1/statement", "SELECT 1", f"Bearer {one}")
    assert status == 200, page
    assert trino_http("GET", page["nextUri"], authorization=f"Bearer {two}")[0] == 404
    assert trino_http("DELETE", page["nextUri"], authorization=f"Bearer {two}")[0] == 404
    _, kill = trino_http("POST", f"{server.trino}/v1/statement",
                         f"CALL system.runtime.kill_query('{page['id']}')", f"Bearer {two}")
    assert "not found" in kill["error"]["message"]
    status, done = trino_http("GET", page["nextUri"], authorization=f"Bearer {one}")
    while done.get("nextUri"):
        status, done = trino_http("GET", done["nextUri"], authorization=f"Bearer {one}")
    assert "error" not in done and done["stats"]["state"] == "FINISHED", done


def test_a_reset_client_secret_stops_working_after_the_login_cache(cyoda_tenants):
    service, server, proxy = cyoda_tenants["service"], cyoda_tenants["server"], cyoda_tenants["proxy"]
    admin = service.token()
    client = service.call("POST", "/clients", token=admin)
    cid, secret = client["client_id"], client["client_secret"]
    c = fl.FlightClient(server.uri)
    c.authenticate_basic_token(cid, secret)
    service.call("PUT", f"/clients/{cid}/secret", token=admin)
    time.sleep(1.5)  # login_cache_seconds = 1
    with pytest.raises(fl.FlightUnauthenticatedError) as e:
        c.authenticate_basic_token(cid, secret)
    # The refusal names no internal address.
    assert "127.0.0.1" not in str(e.value) and proxy.base not in str(e.value)


def test_failed_cyoda_logins_stop_reaching_the_service(cyoda_tenants):
    server, proxy = cyoda_tenants["server"], cyoda_tenants["proxy"]
    c = fl.FlightClient(server.uri)
    before = len([r for r in proxy.requests if r[1].startswith("/api/oauth/token")])
    refused = []
    for _ in range(8):
        with pytest.raises(Exception) as e:
            c.authenticate_basic_token("no-such-client", "wrong")
        refused.append(str(e.value))
    asked = len([r for r in proxy.requests if r[1].startswith("/api/oauth/token")]) - before
    assert asked <= 4, f"the token endpoint was asked {asked} times for 8 failed logins"
    assert any("too many failed logins" in r for r in refused)
    assert not any("127.0.0.1" in r for r in refused), refused
