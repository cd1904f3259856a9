"""Real clients against a real `tsql serve`: ADBC (DB-API and get_objects) and pyarrow.flight."""

import base64
import datetime as dt
import decimal
import subprocess
import threading

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow as pa
import pyarrow.flight as fl
import pytest

from conftest import Server, tsql_binary, self_signed_cert
from flightproto import flight_sql_command


def connect(server, user="admin", password="admin", **kwargs):
    return flight_sql.connect(server.uri, db_kwargs={"username": user, "password": password, **kwargs})


def rows(conn, sql, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, parameters=params)
        return cur.fetchall()


# The demo data's rules (connectors/local-files/src/demo.rs): 3000 orders, those
# not divisible by 3 SHIPPED, n % 9 == 1 DELIVERED later, order 42 deleted.
def test_demo_query_results(demo_server):
    with connect(demo_server) as conn:
        assert rows(conn, "SELECT state, count(*) FROM orders GROUP BY state ORDER BY state") == [
            ("CREATED", 999),
            ("DELIVERED", 334),
            ("SHIPPED", 1666),
        ]
        assert rows(conn, "SELECT count(*) FROM orders WHERE orderid = 'O-00042'") == [(0,)]


def test_trino_functions_answer_over_flight_sql(demo_server):
    """The Trino spellings (src/trino_functions) are engine functions: they
    answer over Flight SQL too, on the demo orders, equal to DataFusion's own
    way of computing the same thing."""
    with connect(demo_server) as conn:
        got = rows(conn, "SELECT count_if(channel = 'web'), max_by(orderid, placed), "
                         "sum(year(placed)), json_extract_scalar('{\"a\":[1,2]}', '$.a[1]') FROM orders")
        want = rows(conn, "SELECT count(*) FILTER (WHERE channel = 'web'), "
                          "(SELECT orderid FROM orders WHERE placed IS NOT NULL ORDER BY placed DESC LIMIT 1), "
                          "sum(CAST(date_part('year', placed) AS BIGINT)), '2' FROM orders")
    assert got == want and got[0][0] > 0


def test_every_sql_type_reaches_the_client(typed_server):
    with connect(typed_server, "analyst", "s3cret") as conn, conn.cursor() as cur:
        cur.execute("SELECT b, i8, i16, i32, i64, f32, f64, dec, bigint, s, d, t, ts, tz, bin, tags_array, creation_date "
                    "FROM typed WHERE entity_id = 't-1'")
        table = cur.fetch_arrow_table()
        types = {f.name: f.type for f in table.schema}
        assert types == {
            "b": pa.bool_(), "i8": pa.int8(), "i16": pa.int16(), "i32": pa.int32(), "i64": pa.int64(),
            "f32": pa.float32(), "f64": pa.float64(), "dec": pa.decimal128(38, 18), "bigint": pa.decimal128(38, 0),
            "s": pa.string(), "d": pa.date32(), "t": pa.time64("us"), "ts": pa.timestamp("us"),
            "tz": pa.timestamp("us", tz="UTC"), "bin": pa.binary(), "tags_array": pa.list_(pa.string()),
            "creation_date": pa.timestamp("us", tz="UTC"),
        }
        r = table.to_pylist()[0]
        assert r["b"] is True and r["i8"] == -8 and r["i16"] == 1600 and r["i32"] == 320000 and r["i64"] == 6400000000
        assert r["f32"] == 1.5 and r["f64"] == 2.25
        assert r["dec"] == decimal.Decimal("12.345") and r["bigint"] == decimal.Decimal("123456789012345678901234567890")
        assert r["s"] == "héllo" and r["d"] == dt.date(2024, 2, 29) and r["t"] == dt.time(13, 45, 10, 500000)
        assert r["ts"] == dt.datetime(2024, 3, 1, 8, 0)
        assert r["tz"] == dt.datetime(2024, 3, 1, 8, 0, tzinfo=dt.timezone.utc)
        assert r["bin"] == b"\x01\x02\x03" and r["tags_array"] == ["x", "y"]
        assert r["creation_date"] == dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        cur.execute("SELECT s, i64 FROM typed WHERE entity_id = 't-2'")
        assert cur.fetchall() == [(None, None)]


def test_prepared_statements_bind_parameters(typed_server, demo_server):
    with connect(typed_server, "analyst", "s3cret") as conn:
        assert rows(conn, "SELECT entity_id FROM typed WHERE s = ?", ("héllo",)) == [("t-1",)]
        assert rows(conn, "SELECT entity_id FROM typed WHERE i64 > ?", (6_000_000_000,)) == [("t-1",)]
        assert rows(conn, "SELECT entity_id FROM typed WHERE f64 < ?", (2.5,)) == [("t-1",)]
        assert rows(conn, "SELECT entity_id FROM typed WHERE d = ?", (dt.date(2024, 2, 29),)) == [("t-1",)]
        assert rows(conn, "SELECT entity_id FROM typed WHERE tz = ?",
                    (dt.datetime(2024, 3, 1, 8, 0, tzinfo=dt.timezone.utc),)) == [("t-1",)]
    with connect(demo_server) as conn, conn.cursor() as cur:
        # One prepared statement, executed with different parameters.
        for state, n in [("SHIPPED", 1666), ("CREATED", 999), ("NOPE", 0)]:
            cur.execute("SELECT count(*) FROM orders WHERE state = ?", parameters=(state,))
            assert cur.fetchall() == [(n,)]


def test_metadata(demo_server):
    with connect(demo_server) as conn:
        objects = conn.adbc_get_objects(depth="columns").read_all().to_pylist()
        cyoda = [c for c in objects if c["catalog_name"] == "cyoda"][0]
        schemas = {s["db_schema_name"]: s for s in cyoda["catalog_db_schemas"]}
        tables = {t["table_name"]: t for t in schemas["entities"]["db_schema_tables"]}
        assert {"orders", "orders_lines", "orders_lines_discounts", "orders_parcels_array", "orders_json",
                "customers", "products_2"} <= set(tables)
        columns = [c["column_name"] for c in tables["orders_lines"]["table_columns"]]
        assert columns[:6] == ["entity_id", "point_time", "creation_date", "last_update_date", "state", "index_0"]
        assert conn.adbc_get_table_types() == ["TABLE", "VIEW"]
        schema = conn.adbc_get_table_schema("orders_lines", catalog_filter="cyoda", db_schema_filter="entities")
        assert schema.field("qty").metadata[b"ARROW:FLIGHT:SQL:TYPE_NAME"] == b"BIGINT"
        assert schema.field("price").type == pa.float64()
        info = conn.adbc_get_info()
        assert info["vendor_name"] == "tsql"


def test_errors_are_clear_and_the_server_survives(demo_server):
    with connect(demo_server) as conn:
        with pytest.raises(Exception, match="INVALID_ARGUMENT.*ParserError"):
            rows(conn, "SELEC 1")
        with pytest.raises(Exception, match="NOT_FOUND.*nope"):
            rows(conn, "SELECT * FROM nope")
        with pytest.raises(Exception, match="point_time supports only equality"):
            rows(conn, "SELECT * FROM orders WHERE point_time > now()")
        with pytest.raises(Exception, match="read-only"):
            rows(conn, "CREATE TABLE x AS SELECT 1")
        assert rows(conn, "SELECT 1") == [(1,)]
    assert demo_server.alive()


def test_bcrypt_users_log_in(typed_server):
    with connect(typed_server, "legacy", "old-secret") as conn:
        assert rows(conn, "SELECT count(*) FROM typed") == [(2,)]
    with pytest.raises(Exception, match="UNAUTHENTICATED"):
        connect(typed_server, "legacy", "old-secret!")


def test_bad_credentials_fail_fast(typed_server):
    with pytest.raises(Exception, match="UNAUTHENTICATED"):
        connect(typed_server, "analyst", "wrong")
    with pytest.raises(Exception, match="UNAUTHENTICATED"):
        connect(typed_server, "nobody", "s3cret")


def test_eight_concurrent_clients(demo_server):
    errors, results = [], []

    def client(i):
        try:
            with connect(demo_server) as conn:
                for _ in range(3):
                    results.append(rows(conn, "SELECT count(*) FROM orders_lines l JOIN orders o ON l.entity_id = o.entity_id "
                                              "WHERE o.state = ?", ("SHIPPED",))[0][0])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == 24 and len(set(results)) == 1 and results[0] > 1666


def test_pyarrow_flight_handshake_schema_and_cancel(demo_server):
    client = fl.FlightClient(f"grpc://127.0.0.1:{demo_server.port}")
    token = client.authenticate_basic_token("admin", "admin")
    assert token[0] == b"authorization" and token[1].startswith(b"Bearer ")
    options = fl.FlightCallOptions(headers=[token])
    sql = "SELECT o.entity_id, o.placed, o.tags_array, l.qty, l.price FROM orders o JOIN orders_lines l ON o.entity_id = l.entity_id"
    info = client.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command(sql)), options)
    assert len(info.endpoints) == 1 and not info.endpoints[0].locations
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    # The FlightInfo schema equals the DoGet schema, field by field, nullability included.
    assert info.schema.equals(table.schema)
    assert table.num_rows > 2999
    # A client that stops reading and drops the stream: the server goes on.
    big = "SELECT a.entity_id FROM orders_lines a CROSS JOIN orders_lines b"
    info = client.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command(big)), options)
    reader = client.do_get(info.endpoints[0].ticket, options)
    reader.read_chunk()
    reader.cancel()
    del reader
    assert demo_server.alive()
    with connect(demo_server) as conn:
        assert rows(conn, "SELECT count(*) FROM products_2") == [(60,)]
    # Without credentials every call is refused.
    with pytest.raises(fl.FlightUnauthenticatedError):
        client.get_flight_info(fl.FlightDescriptor.for_command(flight_sql_command("SELECT 1")))


def test_token_as_password(demo_server):
    client = fl.FlightClient(f"grpc://127.0.0.1:{demo_server.port}")
    _, bearer = client.authenticate_basic_token("admin", "admin")
    token = bearer.decode().removeprefix("Bearer ")
    with connect(demo_server, "admin", token) as conn:
        assert rows(conn, "SELECT 2") == [(2,)]


def test_tls(tmp_path):
    cert, key = self_signed_cert(tmp_path)
    server = Server(["--demo", "--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        assert server.uri.startswith("grpc+tls://")
        conn = flight_sql.connect(server.uri, db_kwargs={
            "username": "admin", "password": "admin",
            "adbc.flight.sql.client_option.tls_root_certs": cert.read_text(),
        })
        with conn:
            assert rows(conn, "SELECT count(*) FROM customers") == [(400,)]
    finally:
        server.stop()


def test_serve_refuses_to_run_without_users(tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    out = subprocess.run([tsql_binary(), "serve", "--data", str(tmp_path), "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "no users configured" in out.stderr


def test_sigterm_stops_gracefully():
    import signal

    server = Server(["--demo"])
    with connect(server) as conn:
        assert rows(conn, "SELECT 1") == [(1,)]
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0
    assert "shutting down" in server.finished_log()


def test_result_schema_without_running_the_query(demo_server):
    sql = "SELECT o.entity_id, o.placed, l.qty FROM orders o JOIN orders_lines l ON o.entity_id = l.entity_id"
    with connect(demo_server) as conn, conn.cursor() as cur:
        # ADBC's execute_schema is Flight's GetSchema: planned, not run.
        schema = cur.adbc_execute_schema(sql)
        cur.execute(sql + " LIMIT 3")
        assert cur.fetch_arrow_table().schema.equals(schema)
        assert [f.name for f in schema] == ["entity_id", "placed", "qty"]
        assert str(schema.field("placed").type) == "timestamp[us, tz=UTC]"
        with pytest.raises(Exception, match="NOT_FOUND"):
            cur.adbc_execute_schema("SELECT * FROM nope")
    client = fl.FlightClient(demo_server.uri)
    options = fl.FlightCallOptions(headers=[client.authenticate_basic_token("admin", "admin")])
    result = client.get_schema(fl.FlightDescriptor.for_command(flight_sql_command(sql)), options)
    assert result.schema.equals(schema)


def test_incremental_execution_polls_to_completion(demo_server):
    # ADBC's incremental mode uses PollFlightInfo; tsql plans at once, so the
    # first poll is complete and names the partition to read.
    with connect(demo_server) as conn, conn.cursor() as cur, conn.cursor() as reader:
        cur.adbc_statement.set_options(**{"adbc.statement.exec.incremental": "true"})
        partitions, schema = cur.adbc_execute_partitions("SELECT count(*) AS n FROM customers")
        assert len(partitions) == 1 and schema.names == ["n"]
        assert cur.adbc_statement.get_option_float("adbc.statement.exec.progress") == 1.0
        reader.adbc_read_partition(partitions[0])
        assert reader.fetchall() == [(400,)]
