"""The Trino JDBC driver (from Maven Central, fetched by Maven itself) against
a real `tsql serve`: tests/trino_jdbc/TrinoJdbcCheck.java, run as a Java
single-file program."""

import os
import subprocess

import pytest

from conftest import ROOT
from test_trino import TrinoServer, maven_jar

VERSION = os.environ.get("TRINO_JDBC_VERSION", "476")


def driver_jar():
    """The driver jar (self-contained)."""
    return maven_jar(f"io.trino:trino-jdbc:{VERSION}", f"trino-jdbc-{VERSION}.jar", "tsql-trino-jdbc")


@pytest.fixture(scope="module")
def jar():
    return driver_jar()


def test_trino_jdbc_driver(jar):
    server = TrinoServer(["--demo"])
    try:
        run = subprocess.run(["java", "-cp", jar, os.path.join(ROOT, "tests", "trino_jdbc", "TrinoJdbcCheck.java"),
                              str(server.port)], capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr[-4000:]
        assert "every check passed" in run.stdout
        assert server.server.alive()
    finally:
        server.stop()
