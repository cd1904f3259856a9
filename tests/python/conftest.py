"""Starts real `tsql serve` processes on free 127.0.0.1 ports for the client tests."""

import os
import re
import subprocess
import textwrap
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tsql_binary():
    explicit = os.environ.get("TSQL_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "debug", "tsql")


def self_signed_cert(directory):
    """A certificate and key for localhost/127.0.0.1 made by openssl in `directory`: (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


def hashed(password):
    """A password_hash for the config, made by `tsql hash-password`."""
    return subprocess.run([tsql_binary(), "hash-password"], input=password, capture_output=True, text=True,
                          check=True).stdout.strip()


def users_toml(**passwords):
    """`[[users]]` entries of the config: each keyword a user name, its value
    the password (hashed by `tsql hash-password`)."""
    return "".join(f'[[users]]\nname = "{name}"\npassword_hash = "{hashed(pw)}"\n' for name, pw in passwords.items())


class Server:
    """A running `tsql serve`; `uri` is where clients connect."""

    def __init__(self, args, env=None):
        self.proc = subprocess.Popen(
            [tsql_binary(), "serve", "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            m = re.search(r"on (grpc(?:\+tls)?)://([\d.]+):(\d+)", line)
            if m:
                self.scheme, self.host, self.port = m.group(1), m.group(2), int(m.group(3))
                self.uri = f"{self.scheme}://{self.host}:{self.port}"
                # Keep reading the log, so a chatty server never blocks on a full pipe.
                self.log = []
                self._reader = threading.Thread(target=self._drain, daemon=True)
                self._reader.start()
                return
            if self.proc.poll() is not None:
                break
        self.stop()
        rest = self.proc.stderr.read() if self.proc.stderr else ""
        raise RuntimeError(f"{tsql_binary()} serve did not start (exit code {self.proc.returncode}): {line}{rest}")

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def finished_log(self):
        """The whole log of a server that has exited."""
        self._reader.join(timeout=10)
        return self.log_text()

    def log_text(self):
        """What the server wrote to standard error since it started listening."""
        return "".join(self.log)

    def wait_log(self, pattern, timeout=10.0):
        """Waits until the log has a line matching `pattern`; returns the match or None."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.log_text())
            if m:
                return m
            time.sleep(0.1)
        return None

    def cpu_seconds(self):
        """CPU time the server process has used so far (user + system)."""
        fields = open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def busy(self, window=1.0):
        """Cores the server kept busy over the next `window` seconds."""
        before = self.cpu_seconds()
        time.sleep(window)
        return (self.cpu_seconds() - before) / window

    def wait_idle(self, timeout=15.0):
        """Waits until the server computes nothing; returns whether it did in time."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.busy(0.5) < 0.15:
                return True
        return False

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def demo_server():
    s = Server(["--demo"])
    yield s
    s.stop()


TYPES = {
    "$.b": "BOOLEAN", "$.i8": "BYTE", "$.i16": "SHORT", "$.i32": "INTEGER", "$.i64": "LONG",
    "$.f32": "FLOAT", "$.f64": "DOUBLE", "$.dec": "BIG_DECIMAL", "$.bigint": "BIG_INTEGER",
    "$.s": "STRING", "$.d": "LOCAL_DATE", "$.t": "LOCAL_TIME", "$.ts": "LOCAL_DATE_TIME",
    "$.tz": "ZONED_DATE_TIME", "$.bin": "BYTE_ARRAY",
}

ROWS = [
    '{"type":"ENTITY","data":{"b":true,"i8":-8,"i16":1600,"i32":320000,"i64":6400000000,"f32":1.5,"f64":2.25,'
    '"dec":12.345,"bigint":123456789012345678901234567890,"s":"héllo","d":"2024-02-29","t":"13:45:10.5",'
    '"ts":"2024-03-01T08:00:00","tz":"2024-03-01T09:00:00+01:00","bin":"AQID","tags":["x","y"],'
    '"lines":[{"n":1},{"n":2}]},"meta":{"id":"t-1","state":"A","creationDate":"2024-01-01T00:00:00Z",'
    '"lastUpdateTime":"2024-01-02T00:00:00Z"}}',
    '{"type":"ENTITY","data":{"b":false,"s":null},"meta":{"id":"t-2","state":"B","creationDate":"2024-01-01T00:00:00Z",'
    '"lastUpdateTime":"2024-01-01T00:00:00Z"}}',
]


@pytest.fixture(scope="session")
def typed_server(tmp_path_factory):
    """A server over a folder with every declared type, a config file and two users."""
    root = tmp_path_factory.mktemp("typed")
    d = root / "data" / "typed" / "1"
    d.mkdir(parents=True)
    import json

    (d / "_types.json").write_text(json.dumps(TYPES))
    (d / "a.ndjson").write_text("\n".join(ROWS) + "\n")
    hashes = {}
    for user, password in [("analyst", "s3cret"), ("bi", "dash")]:
        hashes[user] = subprocess.run(
            [tsql_binary(), "hash-password"], input=password, capture_output=True, text=True, check=True
        ).stdout.strip()
    # A user carried over from a system that stored bcrypt hashes.
    import bcrypt

    legacy = bcrypt.hashpw(b"old-secret", bcrypt.gensalt(rounds=4)).decode()
    config = root / "tsql.toml"
    config.write_text(textwrap.dedent(f"""\
        data = "{root / 'data'}"
        [[users]]
        name = "analyst"
        password_hash = "{hashes['analyst']}"
        roles = ["reader"]
        [[users]]
        name = "bi"
        password_hash = "{hashes['bi']}"
        [[users]]
        name = "legacy"
        password_hash = "{legacy}"
        """))
    s = Server(["--config", str(config)])
    yield s
    s.stop()


@pytest.fixture(scope="session", autouse=True)
def _stop_cassandra_clusters():
    """Stops any Cassandra cluster a test module left running (tests/python/cassandra_it.py)."""
    yield
    import sys

    helper = sys.modules.get("cassandra_it")
    if helper is not None:
        helper.stop_all()
