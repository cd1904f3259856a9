"""The Cassandra connector against a real one-node Cassandra 5 (16 vnodes),
started once for this module by tests/python/cassandra_it.py: the exposed
keyspaces and their tables, every CQL type's Arrow type and values, schema
changes without a restart, token-range scans, pushdown as shown in EXPLAIN,
entity tables over revision rows (current state, point in time, the Cyoda
differential .slt), tenants, and faults. Every expected answer is computed
here from what the loaders inserted."""

import datetime
import ipaddress
import math
import os
import re
import subprocess
import time
from collections import Counter, defaultdict

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pyarrow as pa
import pytest

from cassandra_it import (
    DELETED_AT, T0, UPDATED_AT, Cluster, create_keyspace, current_state, load_revisions, load_types, load_wide,
    order_revisions, write_config, write_entity_files,
)
from conftest import ROOT, Server, tsql_binary
from cyoda import free_port

N_EVENTS = 20000
N_ORDERS = 400
B_EVENTS = 600
TIMEOUT = 5  # request_timeout_seconds

ENTITY_TABLE = {
    "table": "client_a.revisions", "model": "model_name", "version": "model_version", "id": "entity_id",
    "updated": "last_update_time", "created": "creation_time", "state": "state", "document": "doc",
    "deleted": "deleted", "schema": "client_a_entities",
}


def connect(server, user="admin"):
    return flightsql.connect(server.uri, db_kwargs={"username": user, "password": user}, autocommit=True)


def rows(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def arrow(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def cassandra_source(cluster, **over):
    source = {"kind": "cassandra", "catalog": "cassandra", "contact_points": cluster.contact_points,
              "keyspaces": ["client_a", "client_b"], "consistency": "QUORUM",
              "request_timeout_seconds": TIMEOUT, "allow_filtering": False, "entity_table": [ENTITY_TABLE]}
    source.update(over)
    return source


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(1, tmp_path_factory.mktemp("cassandra"), num_tokens=16)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def data(cluster, tmp_path_factory):
    """client_a: every type, 20k events, order revisions; client_b: other events
    and a table only it has; client_hidden: not exposed. The orders' current
    state is also written as local entity files."""
    root = tmp_path_factory.mktemp("cassandra-data")
    s = cluster.session()
    types = load_types(s, "client_a")
    events = load_wide(s, "client_a", N_EVENTS)
    revisions = load_revisions(s, "client_a", "revisions", order_revisions(N_ORDERS))
    b_events = load_wide(s, "client_b", B_EVENTS, seed=99, tenants=3, days=4)
    s.execute("CREATE TABLE client_b.b_only_ledger (secret_b_key text PRIMARY KEY, secret_b_amount int)")
    s.execute("INSERT INTO client_b.b_only_ledger (secret_b_key, secret_b_amount) VALUES ('k', 1)")
    create_keyspace(s, "client_hidden")
    s.execute("CREATE TABLE client_hidden.hidden_table (k int PRIMARY KEY, v text)")
    files = write_entity_files(root / "files", revisions)
    cluster.flush_and_estimate()
    return {"session": s, "types": types, "events": events, "revisions": revisions, "b_events": b_events,
            "files": files, "root": root}


def keyspace_tables(data):
    """{keyspace: {table}} as Cassandra has them now (tests add tables)."""
    tables = defaultdict(set)
    for r in data["session"].execute("SELECT keyspace_name, table_name FROM system_schema.tables "
                                     "WHERE keyspace_name IN ('client_a', 'client_b', 'client_hidden')"):
        tables[r.keyspace_name].add(r.table_name)
    return tables


@pytest.fixture(scope="module")
def server(cluster, data):
    """Every user sees every exposed keyspace; plus the orders as local files."""
    config = write_config(data["root"] / "tsql.toml", [
        cassandra_source(cluster),
        {"kind": "files", "catalog": "files", "data": str(data["files"])},
    ], users=("admin", "alice", "bob"))
    s = Server(["--config", str(config)])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tenant_server(cluster, data):
    config = write_config(data["root"] / "tenants.toml", [
        cassandra_source(cluster, tenants={"alice": ["client_a"], "bob": ["client_b"]}),
    ], users=("alice", "bob"))
    s = Server(["--config", str(config)])
    yield s
    s.stop()


# --- catalog ---------------------------------------------------------------------
def cassandra_tables(conn):
    return {(s, t) for s, t in rows(conn, "SELECT table_schema, table_name FROM information_schema.tables "
                                          "WHERE table_catalog = 'cassandra'")}


def test_every_table_of_every_exposed_keyspace_is_listed(server, data):
    with connect(server) as conn:
        seen = cassandra_tables(conn)
    tables = keyspace_tables(data)
    assert {"all_types", "counts", "wide_varint", "events", "revisions"} <= tables["client_a"]
    want = {(ks, t) for ks in ("client_a", "client_b") for t in tables[ks]}
    assert {(s, t) for s, t in seen if s in ("client_a", "client_b")} == want
    assert {s for s, _ in seen} - {"information_schema"} <= {"client_a", "client_b", "client_a_entities"}, seen
    assert not any(t == "hidden_table" or s == "client_hidden" for s, t in seen)


# --- types -------------------------------------------------------------------------
ARROW_TYPES = {
    "c_ascii": pa.string(), "c_text": pa.string(), "c_varchar": pa.string(), "c_tinyint": pa.int8(),
    "c_smallint": pa.int16(), "c_int": pa.int32(), "c_bigint": pa.int64(), "c_varint": pa.decimal128(38, 0),
    "c_decimal": pa.decimal128(38, 18), "c_float": pa.float32(), "c_double": pa.float64(), "c_boolean": pa.bool_(),
    "c_uuid": pa.string(), "c_timeuuid": pa.string(), "c_timestamp": pa.timestamp("us", tz="UTC"),
    "c_date": pa.date32(), "c_time": pa.time64("us"), "c_duration": pa.month_day_nano_interval(),
    "c_inet": pa.string(), "c_blob": pa.binary(), "c_list": pa.list_(pa.int32()), "c_set": pa.list_(pa.string()),
    "c_map": pa.map_(pa.string(), pa.int32()),
    "c_tuple": pa.struct([("field_0", pa.int32()), ("field_1", pa.string())]),
    "c_udt": pa.struct([("street", pa.string()), ("zip", pa.int32())]),
    "c_frozen_udt": pa.struct([("street", pa.string()), ("zip", pa.int32())]),
    "c_nested": pa.list_(pa.map_(pa.string(), pa.int32())), "c_vector": pa.list_(pa.float32()),
}


def shape(t):
    """A type, ignoring the names of list items and map entries and nullability."""
    if pa.types.is_list(t):
        return ("list", shape(t.value_type))
    if pa.types.is_map(t):
        return ("map", shape(t.key_type), shape(t.item_type))
    if pa.types.is_struct(t):
        return ("struct", tuple((t.field(i).name, shape(t.field(i).type)) for i in range(t.num_fields)))
    return str(t)


def expected(col, v):
    """The inserted value as pyarrow's to_pylist() gives it back."""
    if v is None:
        return None
    if col in ("c_uuid", "c_timeuuid"):
        return str(v)
    if col == "c_inet":
        return str(ipaddress.ip_address(v))
    if col == "c_set":
        return sorted(v)
    if col == "c_map":
        return sorted(v.items())
    if col == "c_tuple":
        return {"field_0": v[0], "field_1": v[1]}
    if col in ("c_udt", "c_frozen_udt"):
        return {"street": v[0], "zip": v[1]}
    if col == "c_nested":
        return [sorted(m.items()) for m in v]
    if col == "c_duration":
        return tuple(v)
    return v


def same(a, b):
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def type_problems(table, inserted):
    """What differs between an all_types result and the inserted rows (empty when right)."""
    problems = []
    for col, want in ARROW_TYPES.items():
        if col not in table.schema.names:
            problems.append(f"no column {col}")
        elif shape(table.schema.field(col).type) != shape(want):
            problems.append(f"{col}: type {table.schema.field(col).type}, want {want}")
    if problems:
        return problems
    ids = table.column("id").to_pylist()
    if ids != sorted(inserted):
        return [f"ids {ids}, want {sorted(inserted)}"]
    for col in ARROW_TYPES:
        column = table.column(col)
        got = column.cast(pa.int64()).to_pylist() if col == "c_time" else column.to_pylist()
        for rid, value in zip(ids, got):
            if col == "c_duration" and value is not None:
                value = (value.months, value.days, value.nanoseconds)
            want = expected(col, inserted[rid][col])
            if col == "c_time" and want is not None:
                want //= 1000  # Flight SQL clients get TIME in µs (src/flight/types.rs)
            if not same(value, want):
                problems.append(f"row {rid} {col}: got {value!r}, inserted {want!r}")
    return problems


def test_every_cql_type_maps_to_its_arrow_type_with_the_inserted_values(server, data):
    with connect(server) as conn:
        table = arrow(conn, "SELECT * FROM cassandra.client_a.all_types ORDER BY id")
    assert pa.types.is_integer(table.schema.field("id").type)
    problems = type_problems(table, data["types"]["rows"])
    assert not problems, "\n".join(problems)
    uuids = [u for u in table.column("c_uuid").to_pylist() if u]
    assert all(len(u) == 36 and u == u.lower() for u in uuids)


def test_counter_is_int64(server, data):
    with connect(server) as conn:
        table = arrow(conn, "SELECT name, hits FROM cassandra.client_a.counts")
    assert table.schema.field("hits").type == pa.int64()
    assert dict(zip(table.column("name").to_pylist(), table.column("hits").to_pylist())) == data["types"]["counts"]


def test_a_varint_wider_than_38_digits_fails_naming_the_column(server, data):
    with connect(server) as conn:
        with pytest.raises(adbc_driver_manager.Error) as err:
            rows(conn, "SELECT id, huge_number FROM cassandra.client_a.wide_varint")
        assert "huge_number" in str(err.value), err.value
        assert rows(conn, "SELECT 1") == [(1,)]
    assert server.alive()


def test_a_type_tsql_cannot_map_is_named_and_the_rest_of_the_table_works(server, data):
    """A column of a custom (Java class) type: listed, named with its type when
    selected, and every other column still answers."""
    s = data["session"]
    s.execute("CREATE TABLE IF NOT EXISTS client_a.odd_types (k int PRIMARY KEY, v text, "
              "odd 'org.apache.cassandra.db.marshal.LexicalUUIDType')")
    s.execute("INSERT INTO client_a.odd_types (k, v) VALUES (1, 'one')")
    s.execute("INSERT INTO client_a.odd_types (k, v) VALUES (2, 'two')")
    with connect(server) as conn:
        got = poll(lambda: rows(conn, "SELECT k, v FROM cassandra.client_a.odd_types ORDER BY k"), 10)
        assert got == [(1, "one"), (2, "two")]
        columns = rows(conn, "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'cassandra' "
                             "AND table_schema = 'client_a' AND table_name = 'odd_types' ORDER BY column_name")
        assert [c for (c,) in columns] == ["k", "odd", "v"]
        types = dict(rows(conn, "SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_catalog = 'cassandra' AND table_schema = 'client_a' "
                                "AND table_name = 'odd_types'"))
        assert types == {"k": "INTEGER", "v": "VARCHAR",
                         "odd": "UNSUPPORTED(org.apache.cassandra.db.marshal.LexicalUUIDType)"}, types
        for sql in ["SELECT * FROM cassandra.client_a.odd_types", "SELECT odd FROM cassandra.client_a.odd_types"]:
            with pytest.raises(adbc_driver_manager.Error) as err:
                rows(conn, sql)
            text = str(err.value)
            assert "odd" in text and "LexicalUUIDType" in text and "leave it out" in text, text
        assert rows(conn, "SELECT count(*) FROM cassandra.client_a.odd_types") == [(2,)]
    assert server.alive()


# --- schema changes --------------------------------------------------------------
def poll(fn, timeout):
    """fn() until it returns without raising; its result, or the last error."""
    deadline = time.time() + timeout
    while True:
        try:
            return fn()
        except (adbc_driver_manager.Error, AssertionError):
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def test_new_tables_and_columns_show_up_without_restart(server, data):
    s = data["session"]
    with connect(server) as conn:
        assert ("client_a", "evolving") not in cassandra_tables(conn)
        s.execute("CREATE TABLE client_a.evolving (id int PRIMARY KEY, a text)")
        s.execute("INSERT INTO client_a.evolving (id, a) VALUES (1, 'one')")
        started = time.time()

        def created():
            assert rows(conn, "SELECT id, a FROM cassandra.client_a.evolving") == [(1, "one")]
        poll(created, 6)
        assert time.time() - started < 6
        assert ("client_a", "evolving") in cassandra_tables(conn)
        s.execute("ALTER TABLE client_a.evolving ADD newcol int")
        s.execute("INSERT INTO client_a.evolving (id, a, newcol) VALUES (2, 'two', 22)")
        started = time.time()

        def altered():
            assert rows(conn, "SELECT id, a, newcol FROM cassandra.client_a.evolving ORDER BY id") == [
                (1, "one", None), (2, "two", 22)]
        poll(altered, 6)
        assert time.time() - started < 6


# --- scans -------------------------------------------------------------------------
def test_full_scans_aggregate_like_python(server, data):
    ev = data["events"]
    with connect(server) as conn:
        (count, total, lo, hi, tenants), = rows(
            conn, "SELECT count(*), sum(amount), min(seq), max(seq), count(DISTINCT tenant) FROM cassandra.client_a.events")
        by_kind = rows(conn, "SELECT tenant, kind, count(*), sum(amount) FROM cassandra.client_a.events "
                             "GROUP BY tenant, kind ORDER BY tenant, kind")
        big = rows(conn, "SELECT count(*) FROM cassandra.client_a.events WHERE amount > 250")
        days = rows(conn, "SELECT day, count(*) FROM cassandra.client_a.events GROUP BY day ORDER BY day")
        b = rows(conn, "SELECT count(*), sum(amount) FROM cassandra.client_b.events")
    assert count == len(ev) == N_EVENTS
    assert total == pytest.approx(sum(r.amount for r in ev), rel=1e-9)
    assert (lo, hi) == (min(r.seq for r in ev), max(r.seq for r in ev))
    assert tenants == len({r.tenant for r in ev})
    groups = defaultdict(lambda: [0, 0.0])
    for r in ev:
        groups[(r.tenant, r.kind)][0] += 1
        groups[(r.tenant, r.kind)][1] += r.amount
    assert [(t, k, n) for t, k, n, _ in by_kind] == [(t, k, g[0]) for (t, k), g in sorted(groups.items())]
    for (t, k, n, s), (_, g) in zip(by_kind, sorted(groups.items())):
        assert s == pytest.approx(g[1], rel=1e-9)
    assert big == [(sum(1 for r in ev if r.amount > 250),)]
    assert days == sorted(Counter(r.day for r in ev).items())
    assert b[0][0] == B_EVENTS and b[0][1] == pytest.approx(sum(r.amount for r in data["b_events"]), rel=1e-9)


def scan_line(conn, sql):
    plan = "\n".join(str(r[1]) for r in rows(conn, "EXPLAIN " + sql))
    lines = [l for l in plan.splitlines() if "CassandraScanExec" in l]
    assert len(lines) == 1, plan
    assert "cql=" in lines[0] and re.search(r"(ranges|partition_reads)=\d+", lines[0]), lines[0]
    return lines[0]


def cql_of(conn, sql):
    """The CQL text of the plan's CassandraScanExec (without the ranges= / partition_reads= part)."""
    return re.split(r",?\s*(?:ranges|partition_reads)=\d+", scan_line(conn, sql).split("cql=", 1)[1])[0]


def where_of(cql):
    m = re.search(r"\bWHERE\b(.*?)(?:\bLIMIT\b|\bALLOW\b|$)", cql, re.I | re.S)
    return m.group(1) if m else ""


def test_explain_shows_the_cql_and_the_token_ranges(server):
    with connect(server) as conn:
        line = scan_line(conn, "SELECT count(*) FROM cassandra.client_a.events")
        cql = cql_of(conn, "SELECT tenant, amount FROM cassandra.client_a.events")
    assert int(re.search(r"ranges=(\d+)", line).group(1)) >= 1, line
    assert re.search(r"\bSELECT\b", cql, re.I) and "events" in cql and "client_a" in cql, cql
    assert "token(" in cql.lower(), cql  # a full scan reads by token range
    assert "allow filtering" not in cql.lower(), cql


D = datetime.date
PUSHDOWN = [
    # (WHERE, the same as a Python predicate, columns that must be in the CQL's WHERE, … that must not,
    #  whether it must read partitions directly rather than token ranges)
    ("tenant = 't1' AND day = DATE '2024-01-02'",
     lambda r: r.tenant == "t1" and r.day == D(2024, 1, 2), ["tenant", "day"], [], True),
    ("tenant IN ('t1', 't2') AND day = DATE '2024-01-03'",
     lambda r: r.tenant in ("t1", "t2") and r.day == D(2024, 1, 3), ["tenant", "day"], [], True),
    ("tenant = 't3' AND day = DATE '2024-01-05' AND seq >= 10 AND seq < 20",
     lambda r: r.tenant == "t3" and r.day == D(2024, 1, 5) and 10 <= r.seq < 20, ["tenant", "day", "seq"], [], True),
    ("tenant = 't0' AND day = DATE '2024-01-10' AND kind = 'x'",
     lambda r: r.tenant == "t0" and r.day == D(2024, 1, 10) and r.kind == "x", ["tenant", "day"], ["kind"], True),
    ("kind = 'x'", lambda r: r.kind == "x", [], ["kind"], False),
    ("tenant = 't1' AND kind = 'click'", lambda r: r.tenant == "t1" and r.kind == "click", [], ["tenant", "kind"], False),
    ("seq >= 390 AND amount < 0", lambda r: r.seq >= 390 and r.amount < 0, [], ["seq", "amount"], False),
]


@pytest.mark.parametrize("where,pred,pushed,kept,direct", PUSHDOWN, ids=[p[0] for p in PUSHDOWN])
def test_pushdown_into_cql_and_right_answers(server, data, where, pred, pushed, kept, direct):
    sql = f"SELECT tenant, day, seq, kind, amount FROM cassandra.client_a.events WHERE {where} ORDER BY tenant, day, seq"
    with connect(server) as conn:
        cql = cql_of(conn, sql)
        got = rows(conn, sql)
    clause = re.sub(r"token\s*\([^)]*\)", "token()", where_of(cql).lower())  # the range, not a restriction
    for col in pushed:
        assert col in clause, (col, cql)
    for col in kept:
        assert col not in clause, (col, cql)
    assert "allow filtering" not in cql.lower(), cql
    if direct:
        assert "token(" not in cql.lower(), cql
    want = sorted(tuple(r) for r in data["events"] if pred(r))
    assert got == want and len(want) > 0


def test_limit_is_pushed_unless_a_filter_stays_behind(server, data):
    everything = {tuple(r) for r in data["events"]}
    with connect(server) as conn:
        sql = "SELECT tenant, day, seq, kind, amount FROM cassandra.client_a.events LIMIT 5"
        assert "limit" in cql_of(conn, sql).lower()
        got = rows(conn, sql)
        assert len(got) == 5 and all(r in everything for r in got)
        sql = ("SELECT tenant, day, seq, kind, amount FROM cassandra.client_a.events "
               "WHERE tenant = 't2' AND day = DATE '2024-01-04' LIMIT 7")
        assert "limit" in cql_of(conn, sql).lower()
        got = rows(conn, sql)
        assert len(got) == 7 and all(r in everything and r[0] == "t2" and r[1] == D(2024, 1, 4) for r in got)
        # A filter tsql applies itself: the limit must not cut the rows before it.
        got = rows(conn, "SELECT tenant, day, seq, kind, amount FROM cassandra.client_a.events "
                         "WHERE kind = 'refund' LIMIT 6")
        assert len(got) == 6 and all(r in everything and r[3] == "refund" for r in got)


# --- entity tables ---------------------------------------------------------------
def order_rows(revisions):
    return sorted((str(r.entity_id), r.doc["orderId"], r.doc["status"], r.doc["total"], r.state)
                  for r in revisions.values())


def test_entity_tables_are_listed(server):
    with connect(server) as conn:
        names = {t for s, t in cassandra_tables(conn) if s == "client_a_entities"}
    assert {"orders", "orders_lines", "orders_json"} <= names, names


def test_entity_tables_show_the_current_state(server, data):
    current = current_state(data["revisions"])
    assert len(current) == N_ORDERS - N_ORDERS // 20
    sql = "SELECT entity_id, orderid, status, total, state FROM {}.orders"
    with connect(server) as conn:
        got = sorted(rows(conn, sql.format("cassandra.client_a_entities")))
        files = sorted(rows(conn, sql.format("files.entities")))
        lines = rows(conn, "SELECT count(*), sum(qty) FROM cassandra.client_a_entities.orders_lines")
        json_rows = rows(conn, "SELECT count(*) FROM cassandra.client_a_entities.orders_json")
    assert got == order_rows(current)
    assert files == got
    every_line = [l for r in current.values() for l in r.doc["lines"]]
    assert lines == [(len(every_line), sum(l["qty"] for l in every_line))]
    assert json_rows == [(len(current),)]
    # The updated orders show the update; the deleted ones are gone.
    paid = {e for e, o, s, t, _ in got if int(o[2:]) % 10 == 0}
    assert len(paid) == N_ORDERS // 10 and all(s == "paid" for e, o, s, t, _ in got if e in paid)
    assert not any(int(o[2:]) % 20 == 5 for _, o, _, _, _ in got)


def stamp(t):
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond:06d}"


@pytest.mark.parametrize("at", [
    T0 - datetime.timedelta(seconds=1),           # before any order
    T0 + datetime.timedelta(microseconds=199500),  # orders 0..199 created
    T0 + datetime.timedelta(minutes=30),          # all created, none updated
    UPDATED_AT + datetime.timedelta(minutes=30),  # updated, none deleted
    DELETED_AT + datetime.timedelta(minutes=30),  # now
], ids=["before", "half-created", "created", "updated", "deleted"])
def test_point_time_reads_older_revisions(server, data, at):
    want = order_rows(current_state(data["revisions"], at))
    with connect(server) as conn:
        got = sorted(rows(conn, "SELECT entity_id, orderid, status, total, state FROM "
                                f"cassandra.client_a_entities.orders WHERE point_time = TIMESTAMP '{stamp(at)}'"))
    assert got == want


def test_differential_slt(cluster, data, tmp_path):
    """sql-tests/cyoda/*.slt answer the same through the Cassandra entity tables
    and through local entity files of the same current state."""
    config = write_config(tmp_path / "both.toml", [
        cassandra_source(cluster),
        {"kind": "files", "catalog": "files", "data": str(data["files"])},
    ], users=())
    for catalog, schema in [("files", "entities"), ("cassandra", "client_a_entities")]:
        env = {**os.environ, "TSQL_SLT_CONFIG": str(config), "TSQL_SLT_CATALOG": catalog,
               "TSQL_SLT_SCHEMA": schema, "TSQL_SLT_DIR": os.path.join(ROOT, "sql-tests", "cyoda")}
        run = subprocess.run(["cargo", "test", "-q", "--test", "sqllogictests"], cwd=ROOT, env=env,
                             capture_output=True, text=True)
        assert run.returncode == 0, f"catalog {catalog}:\n{run.stdout}\n{run.stderr[-3000:]}"
        assert "0 failed" in run.stdout and " passed" in run.stdout, run.stdout


# --- tenants -----------------------------------------------------------------------
def visible(conn):
    """(schema, table) of catalog cassandra through every metadata path."""
    seen = set()
    for catalog in conn.adbc_get_objects(depth="tables").read_all().to_pylist():
        if catalog["catalog_name"] != "cassandra":
            continue
        for schema in catalog["catalog_db_schemas"] or []:
            seen.update((schema["db_schema_name"], t["table_name"]) for t in schema["db_schema_tables"] or [])
    seen |= cassandra_tables(conn)
    seen.update((r[1], r[2]) for r in rows(conn, "SHOW TABLES") if r[0] == "cassandra")
    return {(s, t) for s, t in seen if s != "information_schema"}


def test_each_tenant_sees_only_its_keyspaces(tenant_server, data):
    secrets = ["b_only_ledger", "secret_b", "client_hidden", "hidden_table"]
    with connect(tenant_server, "alice") as alice, connect(tenant_server, "bob") as bob:
        for _ in range(2):  # and again, from the caches
            tables = keyspace_tables(data)
            seen_a, seen_b = visible(alice), visible(bob)
            assert {(s, t) for s, t in seen_a if s == "client_a"} == {("client_a", t) for t in tables["client_a"]}
            assert {s for s, _ in seen_a} <= {"client_a", "client_a_entities"}, seen_a
            assert ("client_a_entities", "orders") in seen_a
            assert {s for s, _ in seen_b} == {"client_b"}, seen_b
            assert {t for _, t in seen_b} == tables["client_b"] and "b_only_ledger" in tables["client_b"]
            assert rows(alice, "SELECT count(*) FROM cassandra.client_a.events") == [(N_EVENTS,)]
            assert rows(alice, "SELECT count(*) FROM cassandra.client_a_entities.orders") == [(N_ORDERS - N_ORDERS // 20,)]
            assert rows(bob, "SELECT count(*) FROM cassandra.client_b.events") == [(B_EVENTS,)]
        for conn, sql, hidden in [
            (alice, "SELECT * FROM cassandra.client_b.events", secrets),
            (alice, "SELECT count(*) FROM cassandra.client_b.events WHERE tenant = 't1'", secrets),
            (bob, "SELECT * FROM cassandra.client_a.events", ["all_types", "revisions", "client_a_entities", "orders"]),
            (bob, "SELECT * FROM cassandra.client_a_entities.orders", ["all_types", "revisions", "events"]),
        ]:
            with pytest.raises(adbc_driver_manager.Error) as err:
                rows(conn, sql)
            text = str(err.value)
            assert "not found" in text.lower(), text
            assert not any(h in text for h in hidden), text
            with conn.cursor() as cur:  # a prepared statement plans as its caller too
                with pytest.raises(adbc_driver_manager.Error):
                    cur.adbc_prepare(sql)
    # Unqualified names resolve in the caller's own keyspace: no other
    # tenant's keyspace is anyone's default, nor in their errors.
    with connect(tenant_server, "bob") as bob:
        assert rows(bob, "SELECT count(*) FROM events") == [(B_EVENTS,)]
        with pytest.raises(adbc_driver_manager.Error) as err:
            rows(bob, "SELECT * FROM nosuchtable")
        assert "client_a" not in str(err.value) and "client_b" in str(err.value), err.value
        # A session's schema is checked as its user sees the catalog: bob's own keyspace
        # can be chosen, another tenant's is as unknown as one that does not exist.
        assert bob.adbc_current_db_schema == "client_b"
        with pytest.raises(adbc_driver_manager.Error):
            bob.adbc_current_db_schema = "client_a"
        assert bob.adbc_current_db_schema == "client_b"
        assert rows(bob, "SELECT count(*) FROM events") == [(B_EVENTS,)]
    assert tenant_server.alive()


def test_the_cli_plans_as_the_user_with_its_keyspace(tenant_server, data):
    """`tsql sql/schema --user bob` resolves names in bob's keyspace and shows
    only bob's tables, as the server does; a wrong password is refused."""
    config = str(data["root"] / "tenants.toml")

    def cli(*args, password="bob"):
        return subprocess.run([tsql_binary(), *args, "--config", config, "--user", "bob"],
                              env={**os.environ, "TSQL_PASSWORD": password},
                              capture_output=True, text=True, timeout=120)

    ok = cli("sql", "--format", "csv", "SELECT count(*) FROM events")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[1:] == [str(B_EVENTS)], ok.stdout
    missing = cli("sql", "SELECT * FROM nosuchtable")
    assert missing.returncode != 0
    assert "client_b" in missing.stderr and "client_a" not in missing.stderr, missing.stderr
    schemas = cli("sql", "--format", "csv",
                  "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_catalog = 'cassandra'")
    assert schemas.returncode == 0, schemas.stderr
    assert set(schemas.stdout.split()[1:]) == {"client_b", "information_schema"}, schemas.stdout
    wrong = cli("sql", "SELECT 1", password="alice")
    assert wrong.returncode != 0 and "password" in wrong.stderr.lower(), wrong.stderr


def test_float_keys_compare_as_sql_does(server, data):
    """Cassandra tells -0.0 from 0.0 (it compares bytes), SQL does not: a
    float equality stays with the engine."""
    s = data["session"]
    s.execute("CREATE TABLE IF NOT EXISTS client_a.floats (k int, c double, v text, PRIMARY KEY (k, c))")
    s.execute("INSERT INTO client_a.floats (k, c, v) VALUES (1, -0.0, 'neg')")
    s.execute("INSERT INTO client_a.floats (k, c, v) VALUES (1, 0.0, 'pos')")
    s.execute("INSERT INTO client_a.floats (k, c, v) VALUES (1, 2.5, 'other')")
    with connect(server) as conn:
        sql = "SELECT v FROM cassandra.client_a.floats WHERE k = 1 AND c = 0.0 ORDER BY v"
        got = poll(lambda: rows(conn, sql), 10)
        assert got == [("neg",), ("pos",)]
        assert '"c"' not in where_of(cql_of(conn, sql))


# --- faults (last: they stop Cassandra) ------------------------------------------
def mentions_cassandra(text):
    return "cassandra" in text.lower() or "unavailable" in text.lower()


def test_an_unreachable_contact_point_fails_queries_not_the_server(data, tmp_path):
    config = write_config(tmp_path / "dead.toml", [
        {"kind": "cassandra", "catalog": "cassandra", "contact_points": [f"127.0.0.1:{free_port()}"],
         "keyspaces": ["client_a"], "request_timeout_seconds": 2},
        {"kind": "files", "catalog": "files", "data": str(data["files"])},
    ])
    server = Server(["--config", str(config)])
    try:
        with connect(server) as conn:
            started = time.time()
            with pytest.raises(adbc_driver_manager.Error) as err:
                rows(conn, "SELECT count(*) FROM cassandra.client_a.events")
            assert mentions_cassandra(str(err.value)), err.value
            assert time.time() - started < 2 + 10
            assert rows(conn, "SELECT count(*) FROM files.entities.orders") == [(N_ORDERS - N_ORDERS // 20,)]
        assert server.alive()
    finally:
        server.stop()


def test_a_frozen_cluster_gives_each_attempt_its_own_deadline(cluster, data, tmp_path):
    """A hung node (SIGSTOP: connections open, no answers) is what the retry
    deadlines are for: each attempt waits request_timeout_seconds and an
    unanswered one is made again (`retries`), so with the only node frozen a
    query fails with DEADLINE_EXCEEDED after (retries + 1) × the timeout, not
    after one timeout; once the node runs again the same queries answer."""
    timeout, retries = 2, 1
    config = write_config(tmp_path / "frozen.toml", [cassandra_source(
        cluster, request_timeout_seconds=timeout, retries=retries, metadata_ttl_seconds=600, entity_table=[])])
    server = Server(["--config", str(config)])
    queries = {
        "token ranges": "SELECT count(*) FROM cassandra.client_a.events",
        "one partition": "SELECT count(*) FROM cassandra.client_a.events WHERE tenant = 't1' AND day = DATE '2024-01-02'",
    }
    try:
        with connect(server) as conn:
            answers = {name: rows(conn, sql) for name, sql in queries.items()}  # statements prepared
            assert answers["token ranges"] == [(N_EVENTS,)]
            cluster.freeze(1)
            try:
                for name, sql in queries.items():
                    started = time.time()
                    with pytest.raises(adbc_driver_manager.Error) as err:
                        rows(conn, sql)
                    took = time.time() - started
                    text = str(err.value)
                    assert "DeadlineExceeded" in text and f"{retries + 1} attempts of {timeout}s each" in text, text
                    assert (retries + 1) * timeout - 0.3 <= took <= (retries + 1) * timeout + 4, f"{name}: {took:.1f} s"
                assert server.alive()
            finally:
                cluster.thaw(1)
            for name, sql in queries.items():
                assert poll(lambda: rows(conn, sql), 30) == answers[name], name
    finally:
        server.stop()


def test_cassandra_down_fails_queries_then_they_recover(cluster, server, data):
    with connect(server) as conn:
        assert rows(conn, "SELECT count(*) FROM cassandra.client_a.events") == [(N_EVENTS,)]
        cluster.kill(1)
        try:
            started = time.time()
            with pytest.raises(adbc_driver_manager.Error) as err:
                rows(conn, "SELECT count(*) FROM cassandra.client_a.events")
            assert mentions_cassandra(str(err.value)), err.value
            if "UNAVAILABLE" in str(err.value):  # unreachable: the error names where it looked
                assert "127.0.0.1:9042" in str(err.value), err.value
            assert time.time() - started < TIMEOUT + 10
            # Other catalogs keep answering.
            assert rows(conn, "SELECT count(*) FROM files.entities.orders") == [(N_ORDERS - N_ORDERS // 20,)]
            assert server.alive()
        finally:
            cluster.restart(1)
        # The driver reconnects by itself; give it a moment, then the answers are whole again.
        got = poll(lambda: rows(conn, "SELECT count(*), sum(amount) FROM cassandra.client_a.events"), 60)
    assert got[0][0] == N_EVENTS
    assert got[0][1] == pytest.approx(sum(r.amount for r in data["events"]), rel=1e-9)
    with connect(server) as conn:
        assert rows(conn, "SELECT count(*) FROM cassandra.client_a_entities.orders") == [(N_ORDERS - N_ORDERS // 20,)]
    assert server.alive()
