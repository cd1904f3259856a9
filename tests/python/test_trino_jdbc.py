"""The Trino JDBC driver (from Maven Central, fetched by Maven itself) against
a real `tsql serve`: tests/trino_jdbc/TrinoJdbcCheck.java, run as a Java
single-file program."""

import os
import subprocess

import pytest

from conftest import ROOT
from test_trino import TrinoServer

VERSION = os.environ.get("TRINO_JDBC_VERSION", "476")


def driver_jar():
    """The driver jar (self-contained), copied by Maven into a cache outside the clone."""
    out = os.path.expanduser(os.path.join("~", ".cache", "tsql-trino-jdbc"))
    jar = os.path.join(out, f"trino-jdbc-{VERSION}.jar")
    if not os.path.exists(jar):
        run = subprocess.run(["mvn", "-B", "-q", "-Dstyle.color=never",
                              "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy",
                              f"-Dartifact=io.trino:trino-jdbc:{VERSION}", f"-DoutputDirectory={out}"],
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0 and os.path.exists(jar), run.stdout + run.stderr
    return jar


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
