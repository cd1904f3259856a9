"""The Trino client protocol against a real `tsql serve`, with the Python
`trino` package (DB-API) and plain HTTP for what the client hides: the same
answers as Flight SQL, Trino's types and values, pages that can be asked for
again, errors with Trino's names, cancellation, logins."""

import base64
import json
import os
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import pytest
import trino

from conftest import Server, self_signed_cert


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def maven_jar(artifact, file_name, cache):
    """`artifact` (group:id:version[:type:classifier]) copied by Maven itself
    into ~/.cache/<cache> once (outside the clone, re-used); its path."""
    out = os.path.expanduser(os.path.join("~", ".cache", cache))
    jar = os.path.join(out, file_name)
    if not os.path.exists(jar):
        run = subprocess.run(["mvn", "-B", "-q", "-Dstyle.color=never",
                              "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy",
                              f"-Dartifact={artifact}", f"-DoutputDirectory={out}"],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0 and os.path.exists(jar), run.stdout + run.stderr
    return jar


class TrinoServer:
    def __init__(self, args):
        self.port = free_port()
        self.server = Server([*args, "--trino-listen", f"127.0.0.1:{self.port}"])
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.stop()


@pytest.fixture(scope="module")
def demo():
    s = TrinoServer(["--demo"])
    yield s
    s.stop()


def trino_rows(server, sql, catalog="cyoda", schema="entities", user="admin"):
    conn = trino.dbapi.connect(host="127.0.0.1", port=server.port, user=user, catalog=catalog, schema=schema,
                               http_scheme="http")
    cur = conn.cursor()
    cur.execute(sql)
    return cur.fetchall(), cur.description


def flight_rows(server, sql):
    with flightsql.connect(server.server.uri, db_kwargs={"username": "admin", "password": "admin"},
                           autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return [list(r) for r in cur.fetchall()]


def http(server, method, path_or_url, body=None, headers=None):
    """One request as user admin; a header given as None is not sent (not even X-Trino-User)."""
    url = path_or_url if path_or_url.startswith("http") else server.base + path_or_url
    sent = {k: v for k, v in {"X-Trino-User": "admin", **(headers or {})}.items() if v is not None}
    req = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, dict(r.headers), (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def pages(server, sql, headers=None):
    status, _, page = http(server, "POST", "/v1/statement", sql, headers)
    assert status == 200, page
    out = [page]
    while "nextUri" in page:
        # Every page is asked for with the same credentials, as real clients do.
        status, _, page = http(server, "GET", page["nextUri"], headers=headers)
        assert status == 200, page
        out.append(page)
    return out


QUERIES = [
    "SELECT channel, count(*), min(placed), max(placed) FROM orders GROUP BY channel ORDER BY channel",
    "SELECT o.orderid, l.sku, l.qty FROM orders o JOIN orders_lines l ON o.entity_id = l.entity_id "
    "ORDER BY o.orderid, l.sku LIMIT 50",
    "SELECT state, customer_tier, count(*) FROM orders GROUP BY state, customer_tier ORDER BY 1, 2",
    "SELECT count_if(channel = 'web'), year(min(placed)) FROM orders",
]


@pytest.mark.parametrize("sql", QUERIES)
def test_the_same_answers_as_flight_sql(demo, sql):
    got, _ = trino_rows(demo, sql)
    want = flight_rows(demo, sql)
    assert len(got) == len(want) > 0
    for g, w in zip(got, want):
        assert g == w


def test_types_and_values_as_trino_sends_them(demo):
    sql = ("SELECT CAST(1 AS BIGINT) AS b, CAST(2 AS INTEGER) AS i, 1.5e0 AS d, CAST('NaN' AS DOUBLE) AS nan, "
           "CAST(1.25 AS DECIMAL(10,3)) AS dec, 'x' AS s, true AS t, DATE '2024-01-02' AS dt, "
           "from_iso8601_timestamp('2024-01-02T03:04:05.123456Z') AS ts, make_array(1, 2) AS arr, "
           "CAST(NULL AS VARCHAR) AS n")
    all_pages = pages(demo, sql)
    columns = next(p["columns"] for p in all_pages if "columns" in p)
    types = {c["name"]: c["type"] for c in columns}
    assert types == {"b": "bigint", "i": "integer", "d": "double", "nan": "double", "dec": "decimal(10, 3)",
                     "s": "varchar", "t": "boolean", "dt": "date", "ts": "timestamp(6) with time zone",
                     "arr": "array(bigint)", "n": "varchar"}
    sig = {c["name"]: c["typeSignature"] for c in columns}
    assert sig["dec"] == {"rawType": "decimal", "arguments": [{"kind": "LONG", "value": 10}, {"kind": "LONG", "value": 3}]}
    assert sig["arr"]["arguments"][0]["value"]["rawType"] == "bigint"
    data = [row for p in all_pages for row in p.get("data", [])]
    assert data == [[1, 2, 1.5, "NaN", "1.250", "x", True, "2024-01-02", "2024-01-02 03:04:05.123456 UTC", [1, 2], None]]
    assert all_pages[-1]["stats"]["state"] == "FINISHED"


def test_pages_are_about_a_megabyte_and_can_be_asked_for_again(demo):
    status, _, first = http(demo, "POST", "/v1/statement", "SELECT * FROM orders_lines ORDER BY entity_id, index_0")
    assert first["stats"]["state"] == "QUEUED" and first["id"].count("_") == 3
    page, rows, sizes = first, 0, []
    while "nextUri" in page:
        status, _, again = http(demo, "GET", page["nextUri"])
        status2, _, same = http(demo, "GET", page["nextUri"])  # the same token: the same page
        assert status == status2 == 200 and again == same
        page = again
        rows += len(page.get("data", []))
        sizes.append(len(json.dumps(page.get("data", []))))
    (want,), _ = trino_rows(demo, "SELECT count(*) FROM orders_lines")
    assert rows == want[0]
    assert max(sizes) < 1.2 * (1 << 20)
    assert len([s for s in sizes if s > 0]) >= 2, sizes  # more than one data page


def test_errors_carry_trino_names(demo):
    for sql, name in [("SELECT * FROM nosuch", "TABLE_NOT_FOUND"), ("SELEC 1", "SYNTAX_ERROR"),
                      ("SELECT nosuchfn(1)", "FUNCTION_NOT_FOUND"), ("SELECT nosuchcol FROM orders", "COLUMN_NOT_FOUND")]:
        with pytest.raises(trino.exceptions.TrinoUserError) as err:
            trino_rows(demo, sql)
        assert err.value.error_name == name, (sql, err.value)
    last = pages(demo, "SELEC 1")[-1]
    assert last["error"]["errorLocation"] == {"lineNumber": 1, "columnNumber": 1}
    assert last["error"]["errorType"] == "USER_ERROR" and "nextUri" not in last
    # A query that fails while it runs: its page links back to this server too.
    failed = pages(demo, "SELECT nosuchcol FROM orders")[-1]
    assert failed["infoUri"].startswith(demo.base + "/"), failed["infoUri"]
    assert demo.server.alive()


SLOW = "SELECT count(*) FROM orders_lines a CROSS JOIN orders_lines b CROSS JOIN orders_lines c"


def test_cancel_stops_a_running_query(demo):
    import threading
    import time

    status, _, first = http(demo, "POST", "/v1/statement", SLOW)
    got = {}
    waiting = threading.Thread(target=lambda: got.update(page=http(demo, "GET", first["nextUri"])))
    waiting.start()
    time.sleep(1.0)  # the page request is now running the query
    (running,), _ = trino_rows(demo, f"SELECT state FROM system.runtime.queries WHERE query_id = '{first['id']}'")
    assert running == ["running"], running
    started = time.time()
    status, _, _ = http(demo, "DELETE", first["nextUri"])
    assert status == 204
    waiting.join(10)
    assert not waiting.is_alive() and time.time() - started < 5
    status, _, page = got["page"]
    assert status == 200 and page["error"]["errorName"] == "USER_CANCELED", page
    (state,), _ = trino_rows(demo, f"SELECT state FROM system.runtime.queries WHERE query_id = '{first['id']}'")
    assert state == ["cancelled"]
    # Cancelled before it ran: the first page says so.
    status, _, queued = http(demo, "POST", "/v1/statement", SLOW)
    assert http(demo, "DELETE", queued["nextUri"])[0] == 204
    assert http(demo, "GET", queued["nextUri"])[2]["error"]["errorName"] == "USER_CANCELED"
    assert demo.server.wait_idle(15)


def test_info_and_unknown_queries(demo):
    status, _, info = http(demo, "GET", "/v1/info")
    assert status == 200 and info["nodeVersion"]["version"][0].isdigit() and info["starting"] is False
    status, _, body = http(demo, "GET", "/v1/statement/executing/nosuch/x/1")
    assert status == 404 and "not known" in body


def test_next_uris_follow_the_scheme_a_proxy_forwards(demo):
    """Behind nginx-ingress ending TLS, the client spoke https: its nextUri must too."""
    status, _, page = http(demo, "POST", "/v1/statement", "SELECT 1", {"X-Forwarded-Proto": "https"})
    assert status == 200 and page["nextUri"].startswith("https://"), page
    assert page["infoUri"].startswith("https://"), page
    status, _, page = http(demo, "POST", "/v1/statement", "SELECT 1", {"X-Forwarded-Proto": "gopher"})
    assert status == 200 and page["nextUri"].startswith("http://"), page  # not a scheme: ignored
    assert pages(demo, "SELECT 1")[-1]["stats"]["state"] == "FINISHED"


def test_logins(tmp_path):
    import bcrypt

    config = tmp_path / "tsql.toml"
    config.write_text(f'demo = true\ntrino_allow_insecure = false\n[[users]]\nname = "ana"\npassword_hash = "{bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()}"\n')
    s = TrinoServer(["--config", str(config)])
    try:
        status, headers, body = http(s, "POST", "/v1/statement", "SELECT 1", {"X-Trino-User": "ana"})
        assert status == 401 and "Basic" in headers.get("WWW-Authenticate", headers.get("www-authenticate", ""))
        good = {"Authorization": "Basic " + base64.b64encode(b"ana:pw").decode(), "X-Trino-User": "ana"}
        bad = {"Authorization": "Basic " + base64.b64encode(b"ana:nope").decode(), "X-Trino-User": "ana"}
        assert http(s, "POST", "/v1/statement", "SELECT 1", bad)[0] == 401
        data = [r for p in pages(s, "SELECT 41 + 1", good) for r in p.get("data", [])]
        assert data == [[42]]
    finally:
        s.stop()


def test_session_statements_change_the_clients_session(demo):
    conn = trino.dbapi.connect(host="127.0.0.1", port=demo.port, user="admin", catalog="system", schema="runtime",
                               http_scheme="http")
    cur = conn.cursor()
    cur.execute("USE cyoda.entities")
    cur.fetchall()
    assert cur.update_type == "USE"
    cur.execute("SELECT count(*) FROM orders")  # resolved in the catalog and schema USE set
    assert cur.fetchall()[0][0] > 0
    cur.execute("SET SESSION query_max_run_time = '1h'")
    cur.fetchall()
    assert conn._client_session.properties.get("query_max_run_time") == "1h"
    cur.execute("RESET SESSION query_max_run_time")
    cur.fetchall()
    assert "query_max_run_time" not in conn._client_session.properties
    for sql in ["START TRANSACTION", "COMMIT", "ROLLBACK"]:
        status, headers, page = http(demo, "POST", "/v1/statement", sql)
        assert status == 200 and page["stats"]["state"] == "FINISHED" and page["columns"] == [], page


def test_parameters_prepared_and_immediate(demo):
    want = flight_rows(demo, "SELECT count(*) FROM orders WHERE channel = 'web' AND placed > TIMESTAMP '2024-01-01 00:00:00+00:00'")
    for legacy in (False, True):
        conn = trino.dbapi.connect(host="127.0.0.1", port=demo.port, user="admin", catalog="cyoda", schema="entities",
                                   http_scheme="http", legacy_prepared_statements=legacy)
        cur = conn.cursor()
        import datetime

        cur.execute("SELECT count(*) FROM orders WHERE channel = ? AND placed > ?",
                    ("web", datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)))
        assert cur.fetchall() == want, legacy
        cur.execute("SELECT ?, ?, ?", (1, "it's", None))
        assert cur.fetchall() == [[1, "it's", None]]
    # EXECUTE of a statement the client never prepared.
    status, _, page = http(demo, "POST", "/v1/statement", "EXECUTE nope USING 1")
    assert page["error"]["errorName"] == "NOT_FOUND" and "nope" in page["error"]["message"]


def test_https_with_passwords(tmp_path, monkeypatch):
    """Over HTTPS (the server's tls_cert/tls_key, as for Flight SQL) the
    Trino client sends a password; a wrong one is refused with 401."""
    # `requests` lets these override the CA file given to the client.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)

    from trino.auth import BasicAuthentication

    cert, key = self_signed_cert(tmp_path)
    config = tmp_path / "tsql.toml"
    config.write_text("demo = true\ntrino_allow_insecure = false\n")
    s = TrinoServer(["--config", str(config), "--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        def run(password):
            conn = trino.dbapi.connect(host="127.0.0.1", port=s.port, user="admin", catalog="cyoda",
                                       schema="entities", http_scheme="https",
                                       auth=BasicAuthentication("admin", password), verify=str(cert))
            cur = conn.cursor()
            cur.execute("SELECT count(*) FROM customers")
            return cur.fetchall()

        assert run("admin") == [[400]]
        with pytest.raises(trino.exceptions.HttpError) as err:
            run("wrong")
        assert "401" in str(err.value)
    finally:
        s.stop()


def test_show_and_describe_in_trinos_shape(demo):
    def show(sql):
        rows, description = trino_rows(demo, sql)
        return [d.name for d in description], rows

    cols, rows = show("SHOW CATALOGS")
    assert cols == ["Catalog"] and ["cyoda"] in rows
    cols, rows = show("SHOW SCHEMAS")
    assert cols == ["Schema"] and ["entities"] in rows
    cols, rows = show("SHOW TABLES LIKE 'orders%'")
    want = [[t] for (t,) in sorted(flight_rows(demo, "SELECT table_name FROM information_schema.tables "
                                                     "WHERE table_schema = 'entities' AND table_name LIKE 'orders%'"))]
    assert cols == ["Table"] and rows == want and len(want) >= 3
    for sql in ["DESCRIBE orders", "SHOW COLUMNS FROM cyoda.entities.orders"]:
        cols, rows = show(sql)
        assert cols == ["Column", "Type", "Extra", "Comment"]
        types = {r[0]: r[1] for r in rows}
        assert rows[0][0] == "entity_id" and types["entity_id"] == "varchar"
        assert types["placed"] == "timestamp(6) with time zone" and types["tags_array"] == "array(varchar)"
    assert trino_rows(demo, "SELECT current_timezone()")[0] == [["UTC"]]


def test_kill_query_across_protocols(demo):
    """CALL system.runtime.kill_query stops a query whichever protocol runs it, sent over either."""
    import threading
    import time

    # A Trino-protocol query, killed over Flight SQL.
    status, _, first = http(demo, "POST", "/v1/statement", SLOW)
    got = {}
    waiting = threading.Thread(target=lambda: got.update(page=http(demo, "GET", first["nextUri"])))
    waiting.start()
    time.sleep(1.0)
    assert flight_rows(demo, f"CALL system.runtime.kill_query('{first['id']}')") == [[first["id"], "cancelled"]]
    waiting.join(10)
    assert not waiting.is_alive()
    assert got["page"][2]["error"]["errorName"] == "USER_CANCELED", got["page"]
    # A Flight SQL query, killed over the Trino protocol (named arguments, as Trino's docs write it).
    failure = {}

    def run_flight():
        try:
            flight_rows(demo, SLOW)
        except Exception as e:  # the kill ends it
            failure["error"] = str(e)

    flight = threading.Thread(target=run_flight)
    flight.start()
    deadline = time.time() + 10
    ids = []
    while time.time() < deadline and not ids:
        rows, _ = trino_rows(demo, "SELECT query_id FROM system.runtime.queries "
                                   f"WHERE state = 'running' AND sql = '{SLOW}'")
        ids = [r[0] for r in rows]
        time.sleep(0.2)
    assert ids, "the Flight SQL query never showed as running"
    last = pages(demo, f"CALL system.runtime.kill_query(query_id => '{ids[0]}', message => 'enough')")[-1]
    assert "error" not in last and last["updateType"] == "CALL", last
    flight.join(10)
    assert not flight.is_alive() and "error" in failure
    (state,), _ = trino_rows(demo, f"SELECT state FROM system.runtime.queries WHERE query_id = '{ids[0]}'")
    assert state == ["cancelled"]
    # An unknown query: Trino's NOT_FOUND.
    last = pages(demo, "CALL system.runtime.kill_query('nosuch')")[-1]
    assert last["error"]["errorName"] == "NOT_FOUND"
    assert demo.server.wait_idle(15)


def test_trino_metadata_statements(demo):
    """SHOW CREATE TABLE, SHOW FUNCTIONS, DESCRIBE OUTPUT/INPUT and Trino's information_schema,
    checked against what the same server says about the same table over Flight SQL."""
    flight_columns = flight_rows(demo, "SELECT column_name FROM information_schema.columns "
                                       "WHERE table_name = 'orders_lines' ORDER BY ordinal_position")
    (create,), _ = trino_rows(demo, "SHOW CREATE TABLE orders_lines")
    assert create[0].startswith("CREATE TABLE cyoda.entities.orders_lines (\n")
    assert [line.split()[0] for line in create[0].splitlines()[1:-1]] == [c[0] for c in flight_columns]
    assert "   qty bigint," in create[0] and "   price double" in create[0]
    rows, _ = trino_rows(demo, "SELECT column_name, ordinal_position, data_type FROM information_schema.columns "
                               "WHERE table_name = 'orders_lines' ORDER BY ordinal_position")
    assert [r[0] for r in rows] == [c[0] for c in flight_columns]
    assert [r[1] for r in rows] == list(range(1, len(rows) + 1))
    assert dict((r[0], r[2]) for r in rows)["point_time"] == "timestamp(6) with time zone"
    rows, _ = trino_rows(demo, "SHOW FUNCTIONS LIKE 'json\\_%' ESCAPE '\\'")
    assert {"json_parse", "json_extract", "json_extract_scalar", "json_format"} <= {r[0] for r in rows}
    # DESCRIBE OUTPUT / INPUT of a prepared statement (sent in the header, as clients do).
    prepared = {"X-Trino-Prepared-Statement": "q=" + urllib.parse.quote_plus(
        "SELECT entity_id, qty * 2 FROM orders_lines WHERE price > ?")}
    out = pages(demo, "DESCRIBE OUTPUT q", prepared)
    data = [row for p in out for row in p.get("data", [])]
    assert [(r[0], r[4]) for r in data] == [("entity_id", "varchar"), ("_col1", "bigint")]
    inp = pages(demo, "DESCRIBE INPUT q", prepared)
    assert [row for p in inp for row in p.get("data", [])] == [[0, "double"]]
    missing = pages(demo, "DESCRIBE OUTPUT nosuch")[-1]
    assert missing["error"]["errorName"] == "NOT_FOUND"


TRINO_SQL = [
    # The same answers over the Trino protocol and Flight SQL (functions and rewrites are the engine's).
    "SELECT o.entity_id, t.tag, t.n FROM orders o CROSS JOIN UNNEST(o.tags_array) WITH ORDINALITY AS t(tag, n) "
    "ORDER BY 1, 3 LIMIT 20",
    "SELECT format_datetime(placed, 'yyyy-MM-dd HH:mm'), date_format(placed, '%Y/%m/%d %H:%i') FROM orders "
    "ORDER BY entity_id LIMIT 5",
    "SELECT count(*) FROM orders WHERE contains(tags_array, 'gift') AND element_at(tags_array, 1) IS NOT NULL",
    "SELECT try(CAST(orderid AS INTEGER)), try(10 / (length(channel) - length(channel))) FROM orders "
    "ORDER BY entity_id LIMIT 3",
    "SELECT channel FROM orders WHERE channel LIKE 'w!_%' ESCAPE '!' OR placed < TIMESTAMP '2024-01-02 00:00:00 UTC' "
    "ORDER BY entity_id FETCH FIRST 3 ROWS ONLY",
    "SELECT date_trunc('month', DATE '2024-05-15'), date_diff('month', DATE '2024-01-31', DATE '2024-02-29'), "
    "regexp_replace('a1b2', '(\\d)', '<$1>'), concat('a', 'b', 'c'), strpos('hello', 'l')",
]


@pytest.mark.parametrize("sql", TRINO_SQL)
def test_trino_sql_answers_the_same_over_both_protocols(demo, sql):
    rows, _ = trino_rows(demo, sql)
    flight = flight_rows(demo, sql)
    assert rows, sql
    assert [[str(v) for v in r] for r in rows] == [[str(v) for v in r] for r in flight]


def test_deep_expressions_do_not_stop_the_server(demo):
    """A BI tool's long OR chains and sums plan on stacks that grow: the server answers and stays up."""
    ors = " OR ".join(f"orderid = 'O-{i:05}'" for i in range(400))
    rows, _ = trino_rows(demo, f"SELECT count(*) FROM orders WHERE {ors}")
    assert rows == flight_rows(demo, "SELECT count(*) FROM orders WHERE orderid < 'O-00400'")
    total = " + ".join(["1"] * 1000)
    assert trino_rows(demo, f"SELECT {total}")[0] == [[1000]]
    assert flight_rows(demo, f"SELECT {total}") == [[1000]]
    assert demo.server.alive()


def test_intervals_as_trino_sends_them(demo):
    """Day-to-second intervals as `D HH:MM:SS.mmm`, which the Python client reads into timedeltas."""
    import datetime

    rows, _ = trino_rows(demo, "SELECT INTERVAL '3' DAY, INTERVAL '90' MINUTE, max(placed) - min(placed) FROM orders")
    (three, ninety, span), = rows
    assert three == datetime.timedelta(days=3) and ninety == datetime.timedelta(minutes=90)
    (lo, hi), = flight_rows(demo, "SELECT min(placed), max(placed) FROM orders")
    assert span == hi - lo
