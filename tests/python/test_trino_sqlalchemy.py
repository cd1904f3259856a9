"""SQLAlchemy through the `trino` package's dialect (trino.sqlalchemy, URL
trino://user@host:port/catalog/schema) against a real `tsql serve`: the
Inspector (schemas, tables, views, every demo table's columns with the
SQLAlchemy types the dialect makes of Trino's type names, keys, indexes,
comments), a Core select() with a bound parameter, and cancelling a running
query through the DB-API.

A failing inspector call names the SQL the dialect sent and the server's
error (read from system.runtime.queries)."""

import threading
import time

import pytest
import sqlalchemy
from sqlalchemy import Column, MetaData, Table, bindparam, create_engine, func, inspect, select, text
from sqlalchemy import types as sqltypes

from test_trino import SLOW, TrinoServer, flight_rows, trino_rows
from test_trino_jdbc import demo_schema
from trino.sqlalchemy import datatype


@pytest.fixture(scope="module")
def demo():
    s = TrinoServer(["--demo"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def engine(demo):
    e = create_engine(f"trino://admin@127.0.0.1:{demo.port}/cyoda/entities")
    yield e
    e.dispose()


@pytest.fixture(scope="module")
def schema():
    tables = {}
    for t, c, ty in demo_schema():
        tables.setdefault(t, []).append((c, ty))
    return tables


def query_ids(demo):
    return {r[0] for r in flight_rows(demo, "SELECT query_id FROM system.runtime.queries")}


def sent_since(demo, before):
    """The queries the server ran that are not in `before` (query ids), with their errors."""
    rows = flight_rows(demo, "SELECT query_id, state, sql, error FROM system.runtime.queries ORDER BY started")
    return "\n".join(f"  SENT {state}: {' '.join(sql.split())}" + (f"\n    error: {' '.join(error.split())}" if error else "")
                     for qid, state, sql, error in rows if qid not in before and "system.runtime.queries" not in sql)


def call(demo, what, fn):
    """fn(); on an exception, fails naming the SQL the dialect sent and the server's error."""
    before = query_ids(demo)
    try:
        return fn()
    except Exception as e:
        pytest.fail(f"{what}: {type(e).__name__}: {e}\n{sent_since(demo, before)}", pytrace=False)


def expected_type(tsql_type):
    """The SQLAlchemy type trino.sqlalchemy makes of the Trino type of a
    `tsql schema` type (class and the attributes that matter)."""
    t = tsql_type.upper()
    if t.startswith("ARRAY(") and t.endswith(")"):
        return ("ARRAY", expected_type(t[6:-1]))
    return {
        "VARCHAR": ("VARCHAR",),
        "BIGINT": ("BIGINT",),
        "INTEGER": ("INTEGER",),
        "DOUBLE": ("DOUBLE",),
        "BOOLEAN": ("BOOLEAN",),
        "DATE": ("DATE",),
        "TIME": ("TIME", False),
        "TIMESTAMP WITH TIME ZONE": ("TIMESTAMP", True),
        "TIMESTAMP": ("TIMESTAMP", False),
    }[t]


def described(sqla_type):
    """(class name, …) of a SQLAlchemy type, in expected_type's shape."""
    name = type(sqla_type).__name__
    if isinstance(sqla_type, sqltypes.ARRAY):
        return ("ARRAY", described(sqla_type.item_type))
    if isinstance(sqla_type, (datatype.TIMESTAMP, datatype.TIME)):
        return (name, bool(sqla_type.timezone))
    return (name,)


def test_sqlalchemy_supported_version():
    # tests/python/requirements.txt pins the newest SQLAlchemy trino 0.340.0 supports (2.0.x).
    assert sqlalchemy.__version__.startswith("2.0.")


def test_schema_names(demo, engine):
    insp = inspect(engine)
    schemas = call(demo, "get_schema_names()", insp.get_schema_names)
    # Trino: the schemas of the session catalog (cyoda), as SHOW SCHEMAS lists them.
    want = sorted(r[0] for r in trino_rows(demo, "SHOW SCHEMAS")[0])
    assert sorted(schemas) == want and "entities" in schemas and "information_schema" in schemas


def test_table_and_view_names(demo, engine, schema):
    insp = inspect(engine)
    tables = call(demo, "get_table_names()", insp.get_table_names)
    assert sorted(tables) == sorted(schema)
    assert call(demo, "get_table_names(schema='entities')", lambda: insp.get_table_names(schema="entities")) == tables
    assert call(demo, "get_view_names()", insp.get_view_names) == []
    assert call(demo, "has_table('orders')", lambda: insp.has_table("orders"))
    assert call(demo, "has_table('orders', schema='entities')", lambda: insp.has_table("orders", schema="entities"))
    assert not call(demo, "has_table('nosuch')", lambda: insp.has_table("nosuch"))
    with engine.connect() as conn:
        assert call(demo, "has_schema('entities')", lambda: engine.dialect.has_schema(conn, "entities"))


@pytest.mark.parametrize("table", sorted({t for t, _, _ in demo_schema()}))
def test_columns_of_every_table(demo, engine, schema, table):
    insp = inspect(engine)
    columns = call(demo, f"get_columns({table!r})", lambda: insp.get_columns(table))
    assert [c["name"] for c in columns] == [c for c, _ in schema[table]]
    got = {c["name"]: described(c["type"]) for c in columns}
    want = {c: expected_type(ty) for c, ty in schema[table]}
    assert got == want
    # Nullability as tsql knows it (the same information_schema over Flight SQL); no default, no comment.
    nullable = dict(flight_rows(demo, "SELECT column_name, is_nullable = 'YES' FROM information_schema.columns "
                                      f"WHERE table_schema = 'entities' AND table_name = '{table}'"))
    assert {c["name"]: c["nullable"] for c in columns} == nullable
    assert all(c["default"] is None and c["comment"] is None for c in columns), columns


def test_keys_and_indexes(demo, engine):
    insp = inspect(engine)
    assert call(demo, "get_pk_constraint", lambda: insp.get_pk_constraint("orders")) == {"name": None, "constrained_columns": []}
    assert call(demo, "get_foreign_keys", lambda: insp.get_foreign_keys("orders_lines")) == []
    assert call(demo, "get_unique_constraints", lambda: insp.get_unique_constraints("orders")) == []
    # get_indexes reads "orders$partitions" (a Hive table's partitions); no such table here, so no index.
    assert call(demo, "get_indexes", lambda: insp.get_indexes("orders")) == []
    with pytest.raises(sqlalchemy.exc.NoSuchTableError):
        insp.get_columns("nosuch")


def test_table_comment(demo, engine):
    # system.metadata.table_comments: no comment on the demo tables.
    assert call(demo, "get_table_comment", lambda: inspect(engine).get_table_comment("orders")) == {"text": None}


def test_core_select_with_a_bound_parameter(demo, engine):
    meta = MetaData()
    orders = call(demo, "Table(autoload_with=engine)", lambda: Table("orders", meta, autoload_with=engine))
    assert "channel" in orders.c and "placed" in orders.c
    q = (select(orders.c.channel, func.count().label("n"))
         .where(orders.c.channel == bindparam("ch"))
         .group_by(orders.c.channel))
    with engine.connect() as conn:
        got = call(demo, str(q), lambda: conn.execute(q, {"ch": "web"}).all())
    want = flight_rows(demo, "SELECT channel, count(*) FROM orders WHERE channel = 'web' GROUP BY channel")
    assert [list(r) for r in got] == want and want[0][1] > 0


def test_core_select_without_reflection(demo, engine):
    """A table declared by hand (no reflection), and a text() query, with a bound parameter."""
    lines = Table("orders_lines", MetaData(), Column("sku", sqltypes.VARCHAR), Column("qty", sqltypes.BIGINT))
    q = select(func.sum(lines.c.qty)).where(lines.c.sku.like(bindparam("p")))
    with engine.connect() as conn:
        got = conn.execute(q, {"p": "S%"}).scalar()
        again = conn.execute(text("SELECT sum(qty) FROM orders_lines WHERE sku LIKE :p"), {"p": "S%"}).scalar()
    want = flight_rows(demo, "SELECT sum(qty) FROM orders_lines WHERE sku LIKE 'S%'")[0][0]
    assert got == again == want


def test_cancel_through_the_dbapi(demo, engine):
    """cursor.cancel() from another thread stops a running query; the server
    lives on and answers the next query."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        errors = []

        def run():
            try:
                cur.execute(SLOW)
                cur.fetchall()
            except Exception as e:  # the cancelled query fails
                errors.append(e)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.time() + 10
        while time.time() < deadline:
            running = flight_rows(demo, "SELECT count(*) FROM system.runtime.queries WHERE state = 'running' "
                                        "AND sql LIKE '%CROSS JOIN orders_lines c'")
            if running[0][0] > 0:
                break
            time.sleep(0.1)
        started = time.time()
        cur.cancel()
        worker.join(10)
        assert not worker.is_alive() and time.time() - started < 5
        assert errors, "the cancelled query fails"
        state = flight_rows(demo, "SELECT state FROM system.runtime.queries WHERE sql LIKE '%CROSS JOIN orders_lines c' "
                                  "ORDER BY started DESC LIMIT 1")
        assert state == [["cancelled"]]
    finally:
        raw.close()
    assert demo.server.alive() and demo.server.wait_idle(15)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM customers")).scalar() == \
            flight_rows(demo, "SELECT count(*) FROM customers")[0][0]
