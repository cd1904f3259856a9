"""The `trino` CLI (the executable jar from Maven Central, fetched by Maven
itself) against a real `tsql serve`: `--execute` and a script file, CSV
output equal to what Flight SQL answers."""

import csv
import io
import os
import subprocess

import pytest

from test_trino import TrinoServer, flight_rows, maven_jar

VERSION = os.environ.get("TRINO_CLI_VERSION", "476")


@pytest.fixture(scope="module")
def cli():
    return maven_jar(f"io.trino:trino-cli:{VERSION}:jar:executable", f"trino-cli-{VERSION}-executable.jar",
                     "tsql-trino-cli")


@pytest.fixture(scope="module")
def server():
    s = TrinoServer(["--demo"])
    yield s
    s.stop()


def run_cli(jar, server, *args):
    run = subprocess.run(["java", "-Dorg.jline.terminal.dumb=true", "-jar", jar, "--server", server.base,
                          "--user", "admin", "--catalog", "cyoda", "--schema", "entities",
                          "--output-format", "CSV", *args],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    return run.returncode, list(csv.reader(io.StringIO(run.stdout))), run.stderr


def as_text(rows):
    return [["" if v is None else str(v) for v in r] for r in rows]


def test_execute(cli, server):
    sql = "SELECT channel, count(*) FROM orders GROUP BY channel ORDER BY channel"
    code, rows, err = run_cli(cli, server, "--execute", sql)
    assert code == 0, err
    assert rows == as_text(flight_rows(server, sql))


def test_script_file_and_errors(cli, server, tmp_path):
    script = tmp_path / "q.sql"
    script.write_text("SELECT count(*) FROM customers;\nSELECT count(*) FROM orders_lines;\n")
    code, rows, err = run_cli(cli, server, "-f", str(script))
    assert code == 0, err
    want = as_text(flight_rows(server, "SELECT count(*) FROM customers")) + \
        as_text(flight_rows(server, "SELECT count(*) FROM orders_lines"))
    assert rows == want
    code, rows, err = run_cli(cli, server, "--execute", "SELECT * FROM nosuch")
    assert code != 0 and "nosuch" in err and "not found" in err, err
