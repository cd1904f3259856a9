#!/usr/bin/env python3
"""A real Trino 476 coordinator as a reference server (benchmarks, golden
protocol transcripts). Standard library only.

    from trino_server import Trino, fetch, cli_path, java17
    fetch()                                   # once; cached in ~/.cache/trino-476
    with Trino("/tmp/run1", catalogs={"tpch": {"connector.name": "tpch"}}) as t:
        cols, rows, stats = t.query("SELECT count(*) FROM tpch.tiny.nation")
        # cols: Trino's column dicts ({"name", "type", "typeSignature"}),
        # rows: list of lists, stats: the last page's "stats" object
        # (elapsedTimeMillis, processedRows, ...)

    python3 benches/trino_server.py           # self-test

fetch() gets io.trino:trino-server:476:tar.gz and the executable trino-cli jar
with Maven (dependency:copy), extracts the server into $TRINO_CACHE (default
~/.cache/trino-476), and deletes the plugins not in KEEP_PLUGINS. Each Trino()
gets its own etc/ and data dir under `workdir` (`launcher run --etc-dir
--data-dir`), so runs never write into the shared cache. The server needs Java
22+ (the Temurin 25 JDK under /usr/lib/jvm); the CLI runs on the default Java 17.
"""

import atexit
import contextlib
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

VERSION = "476"
CACHE = os.environ.get("TRINO_CACHE", os.path.join(os.path.expanduser("~"), ".cache", f"trino-{VERSION}"))
SERVER_DIR = os.path.join(CACHE, f"trino-server-{VERSION}")
CLI_JAR = os.path.join(CACHE, f"trino-cli-{VERSION}-executable.jar")
DEP_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy"
# Plugins kept after extraction; everything else under plugin/ is deleted.
KEEP_PLUGINS = ("cassandra", "tpch", "tpcds", "memory", "blackhole", "hive", "spooling-filesystem")


# --------------------------------------------------------------------------- java

def _java_version(java_home):
    try:
        with open(os.path.join(java_home, "release")) as f:
            m = re.search(r'^JAVA_VERSION="(\d+)', f.read(), re.M)
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def _java_home(pred):
    homes = [h for h in glob.glob("/usr/lib/jvm/*")
             if not os.path.islink(h) and os.path.exists(os.path.join(h, "bin", "java"))]
    homes = [h for h in homes if pred(_java_version(h))]
    if not homes:
        return None
    return max(homes, key=_java_version)


def java_server_home():
    """JAVA_HOME of a JDK able to run the Trino 476 server (22+; Temurin 25 here)."""
    env = os.environ.get("TRINO_JAVA_HOME")
    if env:
        return env
    home = _java_home(lambda v: v >= 22)
    if not home:
        raise RuntimeError("Trino 476 needs Java 22+; none found under /usr/lib/jvm (set TRINO_JAVA_HOME)")
    return home


def java17():
    """Path of a Java 17 `java` (the default one here); the CLI and JDBC driver run on it."""
    home = _java_home(lambda v: v == 17)
    if home:
        return os.path.join(home, "bin", "java")
    java = shutil.which("java")
    if not java:
        raise RuntimeError("no java 17 found")
    return java


def cli_path():
    """Path of the executable trino-cli 476 jar (after fetch())."""
    return CLI_JAR


# --------------------------------------------------------------------------- fetch

def _mvn_copy(artifact, outdir):
    subprocess.run(["mvn", "-B", "-q", "-Dstyle.color=never", DEP_PLUGIN, f"-Dartifact={artifact}", f"-DoutputDirectory={outdir}"],
                   check=True, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def _m2_cleanup():
    """dependency:copy also leaves a copy in ~/.m2 (821 MB for the server): remove
    what it added under io/trino (artifact and parent pom), keep what was there."""
    group = os.path.join(os.path.expanduser("~"), ".m2", "repository", "io", "trino")
    before = set(os.listdir(group)) if os.path.isdir(group) else None
    try:
        yield
    finally:
        if before is None:
            shutil.rmtree(group, ignore_errors=True)
        elif os.path.isdir(group):
            for name in set(os.listdir(group)) - before:
                shutil.rmtree(os.path.join(group, name), ignore_errors=True)


def fetch(verbose=True):
    """Download and extract Trino 476 into CACHE unless already there.
    Returns a dict of timings in seconds (empty when everything was cached)."""
    timings = {}
    log = (lambda *a: print("[trino fetch]", *a, file=sys.stderr, flush=True)) if verbose else (lambda *a: None)
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one fetch at a time; a second one then finds it all cached
        return _fetch_locked(timings, log)


def _fetch_locked(timings, log):
    dl = os.path.join(CACHE, "dl")
    marker = os.path.join(SERVER_DIR, ".extracted")

    if not os.path.exists(CLI_JAR):
        t0 = time.monotonic()
        with _m2_cleanup():
            _mvn_copy(f"io.trino:trino-cli:{VERSION}:jar:executable", dl)
        os.replace(os.path.join(dl, f"trino-cli-{VERSION}-executable.jar"), CLI_JAR)
        timings["download_cli"] = time.monotonic() - t0
        log(f"cli jar downloaded in {timings['download_cli']:.1f} s")

    if not os.path.exists(marker):
        tarball = os.path.join(dl, f"trino-server-{VERSION}.tar.gz")
        if not os.path.exists(tarball):
            t0 = time.monotonic()
            with _m2_cleanup():
                _mvn_copy(f"io.trino:trino-server:{VERSION}:tar.gz", dl)
            timings["download_server"] = time.monotonic() - t0
            log(f"server tarball downloaded in {timings['download_server']:.1f} s")
        t0 = time.monotonic()
        tmp = tempfile.mkdtemp(prefix="extract-", dir=CACHE)
        try:
            # the whole tarball (its plugins share files through hard links)
            subprocess.run(["tar", "-xzf", tarball, "-C", tmp], check=True)
            src = os.path.join(tmp, f"trino-server-{VERSION}")
            plugin_dir = os.path.join(src, "plugin")
            for name in sorted(os.listdir(plugin_dir)):
                if name not in KEEP_PLUGINS:
                    shutil.rmtree(os.path.join(plugin_dir, name))
            # the tarball ships no etc/: runs bring their own via --etc-dir
            if os.path.exists(SERVER_DIR):
                shutil.rmtree(SERVER_DIR)
            os.rename(src, SERVER_DIR)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        with open(marker, "w") as f:
            f.write("plugins: " + " ".join(sorted(os.listdir(os.path.join(SERVER_DIR, "plugin")))) + "\n")
        os.remove(tarball)
        timings["extract"] = time.monotonic() - t0
        log(f"extracted in {timings['extract']:.1f} s; kept plugins: {', '.join(sorted(os.listdir(os.path.join(SERVER_DIR, 'plugin'))))}")
    shutil.rmtree(dl, ignore_errors=True)
    return timings


# --------------------------------------------------------------------------- server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _heap_mb(heap):
    m = re.fullmatch(r"(\d+)([gGmM])", heap)
    if not m:
        raise ValueError(f"heap like '1G' or '768M', not {heap!r}")
    return int(m.group(1)) * (1024 if m.group(2) in "gG" else 1)


class QueryError(RuntimeError):
    def __init__(self, error, query_id=None):
        self.error = error
        self.query_id = query_id
        super().__init__(f"{error.get('errorName')}: {error.get('message')} (query {query_id})")


class Trino:
    """One Trino coordinator (also a worker) on 127.0.0.1, started by the constructor.

    workdir   its own directory: etc/, data/, trino.log
    port      HTTP port (a free one by default)
    catalogs  {name: {property: value}}; {"tpch": {"connector.name": "tpch"}} by default
    heap      -Xmx; query.max-memory-per-node is 60 % of it
    """

    def __init__(self, workdir, port=None, catalogs=None, heap="1G", start_timeout=240, extra_config=None):
        if not os.path.exists(os.path.join(SERVER_DIR, ".extracted")):
            raise RuntimeError(f"Trino not in {SERVER_DIR}: call fetch() first")
        self.workdir = os.path.abspath(workdir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.catalogs = catalogs if catalogs is not None else {"tpch": {"connector.name": "tpch"}}
        self.heap = heap
        self.etc_dir = os.path.join(self.workdir, "etc")
        self.data_dir = os.path.join(self.workdir, "data")
        self.log_path = os.path.join(self.workdir, "trino.log")
        self.proc = None
        self._ready_at = None
        self._write_etc(extra_config or {})
        self._start(start_timeout)

    # -- config
    def _write_etc(self, extra_config):
        catalog_dir = os.path.join(self.etc_dir, "catalog")
        if os.path.isdir(catalog_dir):
            shutil.rmtree(catalog_dir)  # no stale catalogs from an earlier run in the same workdir
        os.makedirs(catalog_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        heap_mb = _heap_mb(self.heap)
        per_node = int(heap_mb * 0.6)

        def write(path, props):
            with open(path, "w") as f:
                f.write("".join(f"{k}={v}\n" for k, v in props.items()))

        write(os.path.join(self.etc_dir, "node.properties"), {
            "node.environment": "bench",
            "node.id": f"trino-{uuid.uuid4()}",
            "node.data-dir": self.data_dir,
            "node.bind-ip": "127.0.0.1",
            "node.internal-address": "127.0.0.1",
        })
        write(os.path.join(self.etc_dir, "config.properties"), {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": self.port,
            "discovery.uri": self.url,
            "query.max-memory": f"{per_node}MB",
            "query.max-memory-per-node": f"{per_node}MB",
            "catalog.config-dir": catalog_dir,
            **extra_config,
        })
        with open(os.path.join(self.etc_dir, "jvm.config"), "w") as f:
            f.write("\n".join([
                "-server",
                f"-Xmx{self.heap}",
                "-XX:+UseG1GC",
                "-XX:G1HeapRegionSize=32M",
                "-XX:+ExplicitGCInvokesConcurrent",
                "-XX:+ExitOnOutOfMemoryError",
                "-XX:-OmitStackTraceInFastThrow",
                "-XX:ReservedCodeCacheSize=256M",
                "-XX:PerMethodRecompilationCutoff=10000",
                "-XX:PerBytecodeRecompilationCutoff=10000",
                "-Djdk.attach.allowAttachSelf=true",
                "-Djdk.nio.maxCachedBufferSize=2000000",
                "-Dfile.encoding=UTF-8",
                "-XX:+EnableDynamicAgentLoading",
            ]) + "\n")
        for name, props in self.catalogs.items():
            write(os.path.join(catalog_dir, f"{name}.properties"), props)

    # -- process
    def _start(self, timeout):
        java_home = java_server_home()
        env = dict(os.environ, JAVA_HOME=java_home, PATH=os.path.join(java_home, "bin") + os.pathsep + os.environ["PATH"])
        t0 = time.monotonic()
        self._log = open(self.log_path, "ab")
        # `launcher run` execs java, so this pid is the JVM's
        self.proc = subprocess.Popen(
            [os.path.join(SERVER_DIR, "bin", "launcher"), "run",
             "--etc-dir", self.etc_dir, "--data-dir", self.data_dir, "--jvm-dir", java_home],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True)
        atexit.register(self.stop)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self._ready_at = time.monotonic()
        self.start_seconds = self._ready_at - t0

    def _check_starting(self, deadline, timeout):
        if self.proc.poll() is not None:
            raise RuntimeError(f"Trino exited with code {self.proc.returncode} while starting:\n{self.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Trino not ready after {timeout} s:\n{self.log_tail()}")

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            self._check_starting(deadline, timeout)
            try:
                with urllib.request.urlopen(self.url + "/v1/info", timeout=5) as r:
                    starting = json.load(r).get("starting", True)
                if not starting:
                    # /v1/info says ready ~1 s before queries stop failing NO_NODES_AVAILABLE
                    self.query("SELECT 1", user="ready")
                    break
            except (OSError, QueryError, ValueError):
                pass
            time.sleep(0.5)
        # SELECT 1 works 2-4 s before a scan of a connector's table does (the coordinator
        # maps catalogs to nodes a little later): probe a tpch/tpcds catalog, else wait 5 s.
        tables = {"tpch": "tiny.region", "tpcds": "tiny.call_center"}
        probe = next((f"SELECT count(*) FROM {name}.{tables[props.get('connector.name')]}"
                      for name, props in self.catalogs.items() if props.get("connector.name") in tables), None)
        if probe is None:
            time.sleep(5)
        while probe:
            self._check_starting(deadline, timeout)
            try:
                self.query(probe, user="ready")
                break
            except (OSError, QueryError, ValueError):
                pass
            time.sleep(0.5)

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, grace=15):
        """SIGTERM, then SIGKILL after `grace` seconds."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def rss_mb(self):
        """Resident memory of the JVM, in MB (None when not running)."""
        if self.proc is None:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
            return int(m.group(1)) / 1024 if m else None
        except OSError:
            return None

    # -- client protocol
    def _request(self, url, data=None, headers=None, method=None):
        for attempt in range(20):
            req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
            try:
                with urllib.request.urlopen(req, timeout=600) as r:
                    return json.load(r)
            except urllib.error.HTTPError as e:
                # 502/503/504 are retryable in the client protocol
                if e.code in (502, 503, 504) and attempt < 19:
                    time.sleep(0.1 * (attempt + 1))
                    continue
                raise

    def pages(self, sql, user="bench", catalog=None, schema=None, headers=None):
        """Yield each JSON response of a statement, first POST then every nextUri GET."""
        h = {"X-Trino-User": user, **(headers or {})}
        if catalog:
            h["X-Trino-Catalog"] = catalog
        if schema:
            h["X-Trino-Schema"] = schema
        page = self._request(self.url + "/v1/statement", sql.encode(), h, "POST")
        yield page
        while "nextUri" in page:
            page = self._request(page["nextUri"], headers=h)
            yield page

    def query(self, sql, user="bench", catalog=None, schema=None, headers=None):
        """Run `sql` to completion: (columns, rows, stats). Raises QueryError on a Trino error."""
        columns, rows, page = None, [], {}
        for page in self.pages(sql, user, catalog, schema, headers):
            if "error" in page:
                err = QueryError(page["error"], page.get("id"))
                # a leftover of the start-up race; the query did not run, so run it again
                if (err.error.get("errorName") == "NO_NODES_AVAILABLE" and self._ready_at
                        and time.monotonic() - self._ready_at < 20):
                    time.sleep(0.5)
                    return self.query(sql, user, catalog, schema, headers)
                raise err
            if columns is None and "columns" in page:
                columns = page["columns"]
            rows.extend(page.get("data") or [])
        return columns or [], rows, page.get("stats", {})

    def cli(self, *args, user="bench", check=True, **kw):
        """Run the trino CLI (on Java 17) against this server; returns the CompletedProcess."""
        cmd = [java17(), "-Dorg.jline.terminal.dumb=true", "-jar", cli_path(), "--server", self.url, "--user", user, *args]
        return subprocess.run(cmd, check=check, stdin=subprocess.DEVNULL, **kw)


# --------------------------------------------------------------------------- self-test

def _du_mb(path):
    out = subprocess.run(["du", "-sm", path], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else 0


def main():
    t0 = time.monotonic()
    timings = fetch()
    print(f"fetch: {time.monotonic() - t0:.1f} s {({k: round(v, 1) for k, v in timings.items()}) or '(cached)'}")
    print(f"cache: {CACHE} {_du_mb(CACHE)} MB; plugins: {' '.join(sorted(os.listdir(os.path.join(SERVER_DIR, 'plugin'))))}")
    print(f"server java: {java_server_home()}; cli java: {java17()}")

    with tempfile.TemporaryDirectory(prefix="trino-selftest-") as work:
        with Trino(os.path.join(work, "tpch"), catalogs={"tpch": {"connector.name": "tpch"}}) as t:
            print(f"started (tpch) on {t.url} in {t.start_seconds:.1f} s, RSS {t.rss_mb():.0f} MB")
            cols, rows, stats = t.query("SELECT count(*) FROM tpch.tiny.nation")
            assert rows == [[25]], rows
            print(f"count(*) nation = {rows[0][0]} ({cols[0]['type']}); "
                  f"elapsedTimeMillis={stats.get('elapsedTimeMillis')} processedRows={stats.get('processedRows')}")
            c0 = time.monotonic()
            t.cli("--execute", "SELECT * FROM tpch.tiny.lineitem", "--output-format", "NULL")
            print(f"cli --execute (lineitem, NULL output): {time.monotonic() - c0:.1f} s; RSS {t.rss_mb():.0f} MB")
            s0 = time.monotonic()
        print(f"stopped in {time.monotonic() - s0:.1f} s")

        # A cassandra catalog loads without a Cassandra server. Point it at a port where
        # nothing listens (not 9042, which may be a benchmark's Cassandra) and never query it.
        cass = {"connector.name": "cassandra", "cassandra.contact-points": "127.0.0.1",
                "cassandra.native-protocol-port": str(free_port()),
                "cassandra.load-policy.dc-aware.local-dc": "datacenter1"}
        with Trino(os.path.join(work, "cass"), catalogs={"cassandra": cass, "tpch": {"connector.name": "tpch"}}) as t:
            _, rows, _ = t.query("SHOW CATALOGS")
            names = sorted(r[0] for r in rows)
            assert "cassandra" in names, names
            print(f"started (cassandra+tpch, no Cassandra server) in {t.start_seconds:.1f} s; catalogs: {names}")
    print("self-test ok")


if __name__ == "__main__":
    main()
