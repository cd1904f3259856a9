"""The Trino JDBC driver (from Maven Central, fetched by Maven itself) against
a real `tsql serve`: tests/trino_jdbc/TrinoJdbcCheck.java, run as a Java
single-file program, one section per test (basic, metadata, values, params,
tls), with the newest driver Maven finds (an open version range resolved by
Maven) and with 476.

A section prints "PASS name" / "FAIL name: why" for each of its checks and,
under a failed one, "SENT state: sql" for each query the driver sent (read
from system.runtime.queries), so a failing test lists what to fix on the
server. TRINO_JDBC_VERSIONS="476 484" chooses the versions instead."""

import datetime
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from conftest import ROOT, tsql_binary, self_signed_cert
from test_trino import TrinoServer, flight_rows

CHECK = os.path.join(ROOT, "tests", "trino_jdbc", "TrinoJdbcCheck.java")
POM = os.path.join(ROOT, "tests", "trino_jdbc", "pom.xml")
CACHE = os.path.expanduser(os.path.join("~", ".cache", "tsql-trino-jdbc"))
OLDEST = "476"


def newest_version():
    """The newest trino-jdbc release: Maven resolves the open range in
    tests/trino_jdbc/pom.xml (the versions plugin rewrites the property in a
    scratch copy). None when Maven cannot tell."""
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy(POM, os.path.join(scratch, "pom.xml"))
        run = subprocess.run(["mvn", "-B", "-q", "-Dstyle.color=never",
                              "org.codehaus.mojo:versions-maven-plugin:2.18.0:resolve-ranges",
                              "-DgenerateBackupPoms=false", "-DprocessProperties=true"],
                             cwd=scratch, capture_output=True, text=True, timeout=600)
        text = open(os.path.join(scratch, "pom.xml")).read()
    m = re.search(r"<trino\.jdbc\.version>([0-9][^<]*)</trino\.jdbc\.version>", text)
    if run.returncode != 0 or not m:
        print("trino-jdbc: cannot look up the newest version:", run.stdout[-2000:], run.stderr[-2000:])
        return None
    return m.group(1)


def versions():
    explicit = os.environ.get("TRINO_JDBC_VERSIONS") or os.environ.get("TRINO_JDBC_VERSION")
    if explicit:
        return explicit.split()
    newest = newest_version()
    return sorted({OLDEST, newest} - {None}, key=int)


def driver_jar(version):
    """The driver jar (self-contained), copied by Maven into ~/.cache once.
    maven-dependency-plugin 2.8's get with transitive=false fetches the jar
    alone; the 3.x plugins read the driver's pom first, and 484's parent pom
    imports a BOM Maven cannot find, so they fail."""
    jar = os.path.join(CACHE, f"trino-jdbc-{version}.jar")
    if not os.path.exists(jar):
        os.makedirs(CACHE, exist_ok=True)
        run = subprocess.run(["mvn", "-B", "-q", "-Dstyle.color=never",
                              "org.apache.maven.plugins:maven-dependency-plugin:2.8:get",
                              f"-Dartifact=io.trino:trino-jdbc:{version}", "-Dtransitive=false",
                              f"-Ddest={CACHE}{os.sep}"],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0 and os.path.exists(jar), run.stdout + run.stderr
    return jar


def pytest_generate_tests(metafunc):
    # The versions are looked up when these tests are collected, not on import.
    if "jdbc_version" in metafunc.fixturenames:
        metafunc.parametrize("jdbc_version", versions(), scope="module")


@pytest.fixture(scope="module")
def jar(jdbc_version):
    return driver_jar(jdbc_version)


@pytest.fixture(scope="module")
def demo():
    s = TrinoServer(["--demo"])
    yield s
    s.stop()


def demo_schema():
    """`tsql schema --demo` as (table, column, TYPE) rows."""
    out = subprocess.run([tsql_binary(), "schema", "--demo"], capture_output=True, text=True, check=True).stdout
    rows, table = [], None
    for line in out.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            table = line.split()[0]
            continue
        m = re.match(r"\s+(\S+)\s+(.+?)\s*$", line)
        rows.append((table, m.group(1), m.group(2)))
    return rows


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory, demo):
    """The demo tables for TrinoJdbcCheck: table, column, type (tsql schema)
    and whether it can be null (information_schema over Flight SQL)."""
    nullable = {(t, c): n for t, c, n in flight_rows(
        demo, "SELECT table_name, column_name, is_nullable FROM information_schema.columns WHERE table_schema = 'entities'")}
    path = tmp_path_factory.mktemp("schema") / "demo.tsv"
    path.write_text("".join(f"{t}\t{c}\t{ty}\t{nullable[(t, c)]}\n" for t, c, ty in demo_schema()))
    return str(path)


def run_check(jar, port, *args):
    run = subprocess.run(["java", "-cp", jar, CHECK, str(port), *args], capture_output=True, text=True, timeout=600)
    report = "\n".join(line for line in run.stdout.splitlines() if not line.startswith(("ROW\t", "SQL\t")))
    return run, report


def failures(report):
    """The FAIL lines with the SENT lines under them."""
    out = []
    for line in report.splitlines():
        if line.startswith("FAIL ") or (line.startswith("  ") and out):
            out.append(line)
        elif line.startswith("PASS "):
            pass
    return "\n".join(out)


def assert_all_passed(run, report, section):
    assert "PASS " in report or "FAIL " in report, run.stdout[-4000:] + run.stderr[-4000:]
    assert run.returncode == 0 and f"trino-jdbc {section}: every check passed" in report, \
        f"failed checks (the queries the driver sent under each):\n{failures(report)}\n{run.stderr[-2000:]}"


@pytest.mark.parametrize("section", ["basic", "metadata", "params"])
def test_section(jar, demo, schema_file, section):
    run, report = run_check(jar, demo.port, section, schema_file)
    print(report)
    assert_all_passed(run, report, section)
    assert demo.server.alive()


def esc(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def canon(v):
    """A Flight SQL value as TrinoJdbcCheck.canon writes the driver's value."""
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "B:" + ("true" if v else "false")
    if isinstance(v, int):
        return f"I:{v}"
    if isinstance(v, float):
        return ("D:", v)
    if isinstance(v, str):
        return "S:" + esc(v)
    if isinstance(v, datetime.datetime):
        epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return f"TS:{(v - epoch) // datetime.timedelta(microseconds=1)}"
    if isinstance(v, datetime.date):
        return "DATE:" + v.isoformat()
    if isinstance(v, datetime.time):
        return "TIME:" + v.strftime("%H:%M:%S.%f")
    if isinstance(v, list):
        return "A:[" + "\x1f".join(canon(x) for x in v) + "]"
    raise AssertionError(f"no canonical form for {type(v)} {v!r}")


def same(got, want):
    if isinstance(want, tuple):  # a double: compared as a number
        return got.startswith("D:") and float(got[2:]) == want[1]
    return got == want


def test_values_equal_flight_sql(jar, demo, schema_file):
    """Every demo table read through the driver (getObject and the typed
    getters agree, ResultSetMetaData has Trino's types) equals the same query
    over Flight SQL. point_time is the time of the query, so it is compared
    with the time the queries ran instead."""
    before = datetime.datetime.now(datetime.timezone.utc)
    run, report = run_check(jar, demo.port, "values", schema_file)
    print(report)
    assert_all_passed(run, report, "values")
    after = datetime.datetime.now(datetime.timezone.utc)
    columns = {}
    for t, c, _ in demo_schema():
        columns.setdefault(t, []).append(c)
    sqls = dict(line.split("\t")[1:3] for line in run.stdout.splitlines() if line.startswith("SQL\t"))
    got = {}
    for line in run.stdout.splitlines():
        if line.startswith("ROW\t"):
            fields = line.split("\t")
            got.setdefault(fields[1], []).append(fields[2:])
    assert set(sqls) == set(columns), sorted(sqls)
    for table, sql in sqls.items():
        want = flight_rows(demo, sql)
        assert len(got.get(table, [])) == len(want) > 0, table
        point = columns[table].index("point_time")
        for g, w in zip(got[table], want):
            assert len(g) == len(w), table
            for i, (gv, wv) in enumerate(zip(g, w)):
                if i == point:
                    micros = int(gv[3:])
                    lo = (before - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // datetime.timedelta(microseconds=1)
                    hi = (after - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // datetime.timedelta(microseconds=1)
                    assert gv.startswith("TS:") and lo - 5_000_000 <= micros <= hi + 5_000_000, (table, gv)
                    continue
                assert same(gv, canon(wv)), (table, columns[table][i], gv, canon(wv), g[0])
    assert demo.server.alive()


def test_https_wrong_password(jar, demo, tmp_path):
    """Over HTTPS (tls_cert/tls_key) the driver logs in with a password; a
    wrong or missing one is an SQLException at once, not a hang."""
    cert, key = self_signed_cert(tmp_path)
    config = tmp_path / "tsql.toml"
    config.write_text("demo = true\ntrino_allow_insecure = false\n")
    s = TrinoServer(["--config", str(config), "--tls-cert", str(cert), "--tls-key", str(key)])
    try:
        (customers,), = flight_rows(demo, "SELECT count(*) FROM customers")
        run, report = run_check(jar, s.port, "tls", str(cert), str(customers))
        print(report)
        assert_all_passed(run, report, "tls")
        assert s.server.alive()
    finally:
        s.stop()
