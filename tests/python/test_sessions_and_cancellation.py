"""Sessions (SetSessionOptions/GetSessionOptions/CloseSession) and cancellation
(CancelFlightInfo, dropped streams) against a real `tsql serve`.

Cancellation is checked where it matters: the server stops computing. A query
that would run for many minutes (a three-way cross join of the demo's order
lines: 7530^3 rows) is started, cancelled, and the server's CPU use must fall
back to idle."""

import threading
import time

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow.flight as fl
import pytest

from conftest import Server
from flightproto import (
    cancel_flight_info_request,
    flight_sql_command,
    read_fields,
    set_session_options_request,
)

ENDLESS = "SELECT count(*) FROM orders_lines a CROSS JOIN orders_lines b CROSS JOIN orders_lines c"


@pytest.fixture(scope="module")
def server():
    s = Server(["--demo"])
    yield s
    s.stop()


def flight_client(server, user="admin", password="admin"):
    client = fl.FlightClient(server.uri)
    options = fl.FlightCallOptions(headers=[client.authenticate_basic_token(user, password)])
    return client, options


def start(client, options, sql):
    info = client.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command(sql)), options)
    return info, client.do_get(info.endpoints[0].ticket, options)


def one_value(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def adbc(server, **options):
    return flight_sql.connect(server.uri, db_kwargs={"username": "admin", "password": "admin", **options})


def test_cancel_flight_info_stops_the_query(server):
    client, options = flight_client(server)
    info, reader = start(client, options, ENDLESS)
    assert server.busy() > 0.5, "the query should be computing"
    results = list(client.do_action(fl.Action("CancelFlightInfo", cancel_flight_info_request(info)), options))
    # CancelFlightInfoResult{status: CANCELLED (1)}
    assert [read_fields(r.body.to_pybytes()) for r in results] == [[(1, 0, 1)]]
    with pytest.raises(fl.FlightCancelledError, match="query cancelled"):
        reader.read_chunk()
    assert server.wait_idle(), "the server went on computing after CancelFlightInfo"
    # The cancelled ticket is refused from now on; other work goes on.
    with pytest.raises(fl.FlightCancelledError):
        client.do_get(info.endpoints[0].ticket, options).read_chunk()
    with adbc(server) as conn:
        assert one_value(conn, "SELECT count(*) FROM customers") == 400
    # The server log tells an operator what happened to each execution.
    assert server.wait_log(r"query \w+ by admin: 0 rows in [\d.]+ s, cancelled: SELECT count\(\*\) FROM orders_lines a")
    assert server.wait_log(r"query \w+ by admin: 1 rows in [\d.]+ s, finished: SELECT count\(\*\) FROM customers")


def test_a_client_dropping_its_stream_stops_the_query(server):
    client, options = flight_client(server)
    _, reader = start(client, options, ENDLESS)
    assert server.busy() > 0.5, "the query should be computing"
    reader.cancel()
    del reader
    assert server.wait_idle(), "the server went on computing after the client left"
    assert server.wait_log(r"stopped: the client went away: SELECT count\(\*\) FROM orders_lines a")


def test_a_heavy_query_does_not_hold_up_other_clients(server):
    client, options = flight_client(server)
    info, reader = start(client, options, ENDLESS)
    answers = []

    def other():
        with adbc(server) as conn:
            answers.append(one_value(conn, "SELECT count(*) FROM orders o JOIN customers c ON o.customer_id = c.entity_id"))

    t = threading.Thread(target=other)
    t.start()
    t.join(timeout=60)
    client.do_action(fl.Action("CancelFlightInfo", cancel_flight_info_request(info)), options)
    reader.cancel()
    assert answers == [2999]
    assert server.wait_idle()


def test_cancelling_another_users_query_does_nothing(tmp_path):
    # A server with two users: bob cannot cancel (nor redeem) ann's ticket.
    from conftest import users_toml

    config = tmp_path / "tsql.toml"
    config.write_text(users_toml(ann="a", bob="b"))
    s = Server(["--demo", "--config", str(config)])
    try:
        ann, ann_options = flight_client(s, "ann", "a")
        bob, bob_options = flight_client(s, "bob", "b")
        info = ann.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command("SELECT 7 AS x")), ann_options)
        results = list(bob.do_action(fl.Action("CancelFlightInfo", cancel_flight_info_request(info)), bob_options))
        # NOT_CANCELLABLE (3): nothing of bob's was named.
        assert [read_fields(r.body.to_pybytes()) for r in results] == [[(1, 0, 3)]]
        with pytest.raises(KeyError, match="unknown ticket"):  # NOT_FOUND is ArrowKeyError
            bob.do_get(info.endpoints[0].ticket, bob_options).read_all()
        assert ann.do_get(info.endpoints[0].ticket, ann_options).read_all().column("x").to_pylist() == [7]
    finally:
        s.stop()


@pytest.mark.parametrize("cookies", ["true", "false"])
def test_session_catalog_and_schema(server, cookies):
    # With cookies the session follows the arrow_flight_session_id cookie; without,
    # the connection's credentials.
    with adbc(server, **{"adbc.flight.sql.rpc.with_cookie_middleware": cookies}) as conn, adbc(server) as other:
        assert (conn.adbc_current_catalog, conn.adbc_current_db_schema) == ("cyoda", "entities")
        conn.adbc_current_db_schema = "information_schema"
        assert conn.adbc_current_db_schema == "information_schema"
        # Unqualified names now resolve in information_schema, for this connection only.
        assert one_value(conn, "SELECT count(*) FROM tables WHERE table_name = 'orders'") == 1
        with pytest.raises(Exception, match="NOT_FOUND"):
            one_value(other, "SELECT count(*) FROM tables")
        # Prepared statements plan in the session's schema too.
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM columns WHERE table_name = ?", parameters=("customers",))
            assert cur.fetchone()[0] > 3
        with pytest.raises(Exception, match="schema.*invalid value"):
            conn.adbc_current_db_schema = "nope"
        with pytest.raises(Exception, match="catalog.*invalid value"):
            conn.adbc_current_catalog = "nope"
        assert conn.adbc_current_db_schema == "information_schema"
        conn.adbc_current_db_schema = "entities"
        assert one_value(conn, "SELECT count(*) FROM customers") == 400


def test_session_actions_on_the_wire(server):
    client, options = flight_client(server)
    names = {a.type for a in client.list_actions(options)}
    assert {"CancelFlightInfo", "SetSessionOptions", "GetSessionOptions", "CloseSession"} <= names
    # Unknown option names come back as INVALID_NAME (1), in SetSessionOptionsResult.errors.
    body = set_session_options_request({"colour": "blue", "schema": "entities"})
    [result] = list(client.do_action(fl.Action("SetSessionOptions", body), options))
    [(number, _, entry)] = read_fields(result.body.to_pybytes())
    assert number == 1
    assert read_fields(entry) == [(1, 2, b"colour"), (2, 2, bytes([0x08, 0x01]))]
    # A valid change opens a session (keyed by this client's token); closing it works once.
    body = set_session_options_request({"schema": "information_schema"})
    [result] = list(client.do_action(fl.Action("SetSessionOptions", body), options))
    assert result.body.to_pybytes() == b""
    [closed] = list(client.do_action(fl.Action("CloseSession", b""), options))
    assert read_fields(closed.body.to_pybytes()) == [(1, 0, 1)]
    with pytest.raises(KeyError, match="no open session"):  # NOT_FOUND
        list(client.do_action(fl.Action("CloseSession", b""), options))


def test_sigterm_during_a_heavy_query_stops_it(tmp_path):
    import signal

    config = tmp_path / "grace.toml"
    config.write_text("shutdown_grace_seconds = 3\n")
    s = Server(["--demo", "--config", str(config)])
    try:
        client, options = flight_client(s)
        _, reader = start(client, options, ENDLESS)
        assert s.busy() > 0.5, "the query should be computing"
        started = time.time()
        s.proc.send_signal(signal.SIGTERM)
        # Running streams get shutdown_grace_seconds, then they are cancelled
        # (test_shutdown.py checks the drain of queries that finish in time).
        assert s.proc.wait(timeout=40) == 0
        assert time.time() - started < 20
        assert "1 queries still running after the grace period (shutdown_grace_seconds) were cancelled" in s.finished_log()
        with pytest.raises(fl.FlightError):
            reader.read_chunk()
    finally:
        s.stop()
