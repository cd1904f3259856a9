"""Real Apache Cassandra for the tests: clusters of 1 or 3 nodes started with the
shared `cassandra-it.sh` (no Docker), a Python driver session on them, and
loaders that return what they inserted so tests compute expected answers.

Named cassandra_it, not cassandra: tests/python is first on sys.path under
pytest, and a module named `cassandra` here would hide the driver package.

The script is ../shared/upstreams/cassandra/cassandra-it.sh next to the
clone, or $CASSANDRA_IT. It needs java 17, and mvn on the first run (it then
caches Cassandra's jars in ~/.cache/cassandra-it/<version>).
One cluster runs at a time on this machine (every cluster's node 1 is
127.0.0.1:9042): starting one stops the one this process started before, and
every cluster is stopped when the process ends.

    python3 tests/python/cassandra_it.py selftest [1|3]   # start, load, check, stop
"""

import atexit
import datetime
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import namedtuple
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VERSION = os.environ.get("CASSANDRA_VERSION", "5.0.9")
UTC = datetime.timezone.utc


def script_path():
    explicit = os.environ.get("CASSANDRA_IT")
    if explicit:
        return explicit
    return os.path.normpath(os.path.join(ROOT, "..", "shared", "upstreams", "cassandra", "cassandra-it.sh"))


def lib_cache():
    return os.path.join(os.path.expanduser("~"), ".cache", "cassandra-it", VERSION)


# --- one cluster at a time, all stopped at exit -----------------------------
_running = []
_REGISTRY = os.path.join(os.path.expanduser("~"), ".cache", "cassandra-it", "run-dirs")


def stop_all():
    """Stops every cluster this process started."""
    for cluster in list(_running):
        cluster.stop()


atexit.register(stop_all)


def _registry(add=None, remove=None):
    """Run dirs of clusters started by this harness (any process) and not stopped."""
    try:
        dirs = [d for d in open(_REGISTRY).read().splitlines() if d]
    except OSError:
        dirs = []
    if add and add not in dirs:
        dirs.append(add)
    if remove in dirs:
        dirs.remove(remove)
    if add or remove:
        os.makedirs(os.path.dirname(_REGISTRY), exist_ok=True)
        with open(_REGISTRY, "w") as f:
            f.write("".join(d + "\n" for d in dirs))
    return dirs


def _kill_leftovers():
    """SIGKILLs Cassandra JVMs that an earlier run of this harness left behind
    (a crashed or interrupted pytest): only PIDs recorded in a run dir listed
    in the registry whose command line is that run dir's CassandraDaemon."""
    for d in _registry():
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            pidfile = os.path.join(d, name, "pid")
            if not (name.startswith("n") and os.path.isfile(pidfile)):
                continue
            try:
                pid = int(open(pidfile).read().strip())
                cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            except (OSError, ValueError):
                continue
            if "CassandraDaemon" in cmdline and f"-Dcassandra.storagedir={os.path.join(d, name)}" in cmdline:
                os.kill(pid, signal.SIGKILL)
                for _ in range(100):
                    if not os.path.exists(f"/proc/{pid}"):
                        break
                    time.sleep(0.1)
        _registry(remove=d)


def _listening(host, port=9042):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class Cluster:
    """A real Cassandra cluster of `nodes` nodes (1..3) on 127.0.0.1..nodes:9042,
    run dir under `workdir`. Starts in the constructor."""

    def __init__(self, nodes, workdir, num_tokens=16, heap=None):
        self.nodes = nodes
        self.workdir = os.path.abspath(str(workdir))
        self.dir = os.path.join(self.workdir, f"cassandra{nodes}")
        self.num_tokens = num_tokens
        self.heap = heap or ("512m" if nodes == 1 else "384m")
        self.timings = {}
        self._drivers = {}
        self.started = False
        os.makedirs(self.workdir, exist_ok=True)
        self.start()

    @property
    def hosts(self):
        return [f"127.0.0.{i}" for i in range(1, self.nodes + 1)]

    @property
    def contact_points(self):
        """For a tsql config: ["127.0.0.1:9042", …]."""
        return [f"{h}:9042" for h in self.hosts]

    def _env(self, **extra):
        return {**os.environ, "C": lib_cache(), "D": self.dir, "CV": VERSION, "NUM_TOKENS": str(self.num_tokens),
                "SIZE_RECORDER_INTERVAL": "5", "HEAP": self.heap, **extra}

    def _run(self, *args, timeout=300, check=True, **extra):
        script = script_path()
        if not os.path.isfile(script):
            raise RuntimeError(f"no Cassandra test script at {script}: set CASSANDRA_IT to cassandra-it.sh "
                               "(kept in shared/upstreams/cassandra/ beside the clone)")
        run = subprocess.run(["bash", script, *map(str, args)], env=self._env(**extra), capture_output=True,
                             text=True, timeout=timeout)
        with open(os.path.join(self.workdir, "cassandra-it.log"), "a") as log:
            log.write(f"$ cassandra-it.sh {' '.join(map(str, args))} -> {run.returncode}\n{run.stdout}{run.stderr}")
        if check and run.returncode != 0:
            raise RuntimeError(f"cassandra-it.sh {' '.join(map(str, args))} failed ({run.returncode}):\n"
                               f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}")
        return run.stdout

    def start(self):
        for other in list(_running):
            if other is not self:
                other.stop()
        _kill_leftovers()
        busy = [h for h in self.hosts if _listening(h)]
        if busy:
            raise RuntimeError(f"{', '.join(busy)} port 9042 is already in use (a Cassandra not started by this "
                               "harness?); stop it first")
        began = time.time()
        self._run("fetch", timeout=900)
        self.timings["fetch"] = time.time() - began
        _registry(add=self.dir)
        _running.append(self)
        self.started = True
        began = time.time()
        try:
            self._run("start", self.nodes, timeout=400)
        except Exception:
            self.stop()
            raise
        self.timings["start"] = time.time() - began

    def stop(self):
        """Stops every node at once (SIGKILL: the data is thrown away with the run dir)."""
        for driver in self._drivers.values():
            try:
                driver.shutdown()
            except Exception:
                pass
        self._drivers = {}
        if self.started:
            began = time.time()
            self._run("stop", check=False, timeout=120, STOP_SIGNAL="KILL")
            self.timings["stop"] = time.time() - began
            self.started = False
        if self in _running:
            _running.remove(self)
        _registry(remove=self.dir)

    def kill(self, i):
        """SIGKILL node i (its peers notice only after ~20 s: see wait_down)."""
        self._run("kill", i)

    def _pid(self, i):
        with open(os.path.join(self.dir, f"n{i}", "pid")) as f:
            return int(f.read().strip())

    def freeze(self, i):
        """SIGSTOP node i: it keeps its connections open and answers nothing
        (a hung JVM); its peers call it down only after ~20 s."""
        os.kill(self._pid(i), signal.SIGSTOP)

    def thaw(self, i):
        """SIGCONT node i after freeze(i)."""
        os.kill(self._pid(i), signal.SIGCONT)

    def restart(self, i):
        """Starts node i again on its data; returns once a peer sees it UN."""
        self._run("restart", i, timeout=300)

    def nodetool(self, i, *args, check=True):
        return self._run("nodetool", i, *args, check=check, timeout=180)

    def status(self, observer=1):
        """{host: 'UN' | 'DN' | …} as node `observer` sees the ring ({} if it cannot tell)."""
        out = self.nodetool(observer, "status", check=False)
        return dict((m.group(2), m.group(1)) for m in re.finditer(r"^([UD][NLJM])\s+([\d.]+)\s", out, re.M))

    def wait_down(self, i, timeout=60):
        """Waits until every other running node sees node i as down (after a kill)."""
        deadline = time.time() + timeout
        host = f"127.0.0.{i}"
        observers = [j for j in range(1, self.nodes + 1) if j != i and _listening(f"127.0.0.{j}")]
        while time.time() < deadline:
            if all(self.status(j).get(host, "DN").startswith("D") for j in observers):
                return
            time.sleep(1)
        raise RuntimeError(f"node {i} still seen up after {timeout} s")

    def flush_and_estimate(self):
        """Writes memtables to disk and refreshes system.size_estimates on every live node."""
        for i in range(1, self.nodes + 1):
            if _listening(f"127.0.0.{i}"):
                self.nodetool(i, "flush")
                self.nodetool(i, "refreshsizeestimates")

    def session(self, keyspace=None, consistency="QUORUM", timeout=60):
        """A cassandra-driver session on this cluster whose statements default to
        `consistency` (closed by stop())."""
        from cassandra import ConsistencyLevel
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
        from cassandra.cluster import Cluster as Driver
        from cassandra.policies import ConstantReconnectionPolicy, DCAwareRoundRobinPolicy, TokenAwarePolicy

        key = (consistency, timeout)
        if key not in self._drivers:
            profile = ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc="datacenter1")),
                consistency_level=ConsistencyLevel.name_to_value[consistency], request_timeout=timeout)
            self._drivers[key] = Driver(self.hosts, port=9042, protocol_version=5,
                                        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                                        reconnection_policy=ConstantReconnectionPolicy(1.0, None),
                                        connect_timeout=10)
        return self._drivers[key].connect(keyspace)


# --- loaders ------------------------------------------------------------------
def create_keyspace(session, ks, rf=1):
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
                    f"{{'class': 'NetworkTopologyStrategy', 'datacenter1': {rf}}}")


def _insert_all(session, statement, rows, concurrency=32):
    from cassandra.concurrent import execute_concurrent_with_args

    prepared = session.prepare(statement)
    for ok, result in execute_concurrent_with_args(session, prepared, rows, concurrency=concurrency,
                                                    raise_on_first_error=True):
        assert ok, result


# Column name -> CQL type, in table order (id int is the key).
TYPE_COLUMNS = [
    ("c_ascii", "ascii"), ("c_text", "text"), ("c_varchar", "varchar"), ("c_tinyint", "tinyint"),
    ("c_smallint", "smallint"), ("c_int", "int"), ("c_bigint", "bigint"), ("c_varint", "varint"),
    ("c_decimal", "decimal"), ("c_float", "float"), ("c_double", "double"), ("c_boolean", "boolean"),
    ("c_uuid", "uuid"), ("c_timeuuid", "timeuuid"), ("c_timestamp", "timestamp"), ("c_date", "date"),
    ("c_time", "time"), ("c_duration", "duration"), ("c_inet", "inet"), ("c_blob", "blob"),
    ("c_list", "list<int>"), ("c_set", "set<text>"), ("c_map", "map<text, int>"), ("c_tuple", "tuple<int, text>"),
    ("c_udt", "address"), ("c_frozen_udt", "frozen<address>"), ("c_nested", "frozen<list<frozen<map<text, int>>>>"),
    ("c_vector", "vector<float, 3>"),
]

Duration = namedtuple("Duration", "months days nanoseconds")


def _type_rows():
    """The rows of all_types as inserted (Python values; sets as sets, maps as dicts,
    tuples and UDTs as tuples, time as nanoseconds, duration as Duration)."""
    ts = lambda *a: datetime.datetime(*a, tzinfo=UTC)
    none = {c: None for c, _ in TYPE_COLUMNS}
    return [
        dict(none, id=1, c_ascii="hello", c_text="héllo wörld ✓", c_varchar="v", c_tinyint=7, c_smallint=300,
             c_int=70000, c_bigint=5_000_000_000, c_varint=2**64 + 1, c_decimal=Decimal("3.14"), c_float=1.5,
             c_double=2.25, c_boolean=True, c_uuid=uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e"),
             c_timeuuid=uuid.UUID("5a2e3f10-8d4b-11ee-b9d1-0242ac120002"),
             c_timestamp=ts(2024, 3, 1, 8, 0, 0, 123000), c_date=datetime.date(2024, 2, 29),
             c_time=((13 * 60 + 45) * 60 + 10) * 10**9 + 123456789, c_duration=Duration(1, 2, 3_000_000_004),
             c_inet="10.0.0.1", c_blob=b"\x00\x01\xfe\xff", c_list=[3, 1, 2], c_set={"b", "a", "c"},
             c_map={"z": 1, "a": 2}, c_tuple=(5, "five"), c_udt=("Main St", 12345), c_frozen_udt=("Elm", 0),
             c_nested=[{"b": 2, "a": 1}, {"c": -3}], c_vector=[0.5, -1.25, 3.0]),
        dict(none, id=2, c_ascii="", c_text="", c_varchar="", c_tinyint=-128, c_smallint=-32768, c_int=-2**31,
             c_bigint=-2**63, c_varint=-(10**37 + 12345), c_decimal=Decimal("-1234567.000000000000000001"),
             c_float=float("-inf"), c_double=float("nan"), c_boolean=False,
             c_uuid=uuid.UUID("00000000-0000-0000-0000-000000000000"),
             c_timeuuid=uuid.UUID("e7d6f0a0-0001-11b2-8000-0123456789ab"),
             c_timestamp=ts(1969, 7, 20, 20, 17, 40, 1000), c_date=datetime.date(1969, 12, 31), c_time=0,
             c_duration=Duration(-1, -2, -3), c_inet="::1", c_blob=b"", c_list=[-1], c_set={""},
             c_map={"": -1}, c_tuple=(None, "only text"), c_udt=(None, -1), c_frozen_udt=None,
             c_nested=[{"x": -1}], c_vector=[-1.0, 0.0, 0.125]),
        dict(none, id=3, c_ascii="~", c_text="max", c_varchar="🙂", c_tinyint=127, c_smallint=32767,
             c_int=2**31 - 1, c_bigint=2**63 - 1, c_varint=10**38 - 1, c_decimal=Decimal("1E+3"),
             c_float=3.4028234663852886e38, c_double=1.7976931348623157e308, c_boolean=True,
             c_uuid=uuid.UUID("ffffffff-ffff-4fff-bfff-ffffffffffff"),
             c_timeuuid=uuid.UUID("00000001-0001-1000-8000-000000000001"),
             c_timestamp=ts(9999, 12, 31, 23, 59, 59, 999000), c_date=datetime.date(9999, 12, 31),
             c_time=86400 * 10**9 - 1, c_duration=Duration(0, 0, 1), c_inet="2001:db8::ff00:42:8329",
             c_blob=bytes(range(256)), c_list=[2**31 - 1, -2**31, 0], c_set={"x"}, c_map={"k": 2**31 - 1},
             c_tuple=(-2**31, ""), c_udt=("", 2**31 - 1), c_frozen_udt=(None, None),
             c_nested=[{"a": 1}, {"a": 2, "b": 3}], c_vector=[1.0, 2.0, 4.0]),
        dict(none, id=4),  # every column null
        dict(none, id=5, c_ascii="a", c_text="t", c_varchar="v", c_tinyint=0, c_smallint=0, c_int=0, c_bigint=0,
             c_varint=0, c_decimal=Decimal("-0.000000000000000001"), c_float=float("nan"),
             c_double=float("-inf"), c_boolean=False, c_uuid=uuid.UUID("123e4567-e89b-42d3-a456-426614174000"),
             c_timeuuid=uuid.UUID("5a2e3f10-8d4b-11ee-b9d1-0242ac120003"), c_timestamp=ts(1970, 1, 1),
             c_date=datetime.date(1970, 1, 1), c_time=1, c_duration=Duration(14, 0, 0), c_inet="0.0.0.0",
             c_blob=b"\x00", c_list=[0, 0], c_set={"b", "a"}, c_map={"b": 2, "a": 1, "c": 3}, c_tuple=(0, None),
             c_udt=("x", None), c_frozen_udt=("y", 1), c_nested=[{"m": 0}], c_vector=[float("inf"), -0.5, 0.25]),
    ]


COUNTER_UPDATES = [("hits", 5), ("hits", 2**40), ("hits", -7), ("misses", -3), ("big", 2**62), ("big", 2**62 - 1)]


def load_types(session, ks):
    """Creates ks.all_types (a column of every CQL type), ks.counts (a counter)
    and ks.wide_varint (huge_number: a varint of 41 digits, too wide for decimal128(38, 0)).
    Returns {"columns": TYPE_COLUMNS, "rows": [row dict by id], "counts": {name: value},
    "wide_varint": {id: value}}."""
    from cassandra import util

    create_keyspace(session, ks)
    session.execute(f"CREATE TYPE IF NOT EXISTS {ks}.address (street text, zip int)")
    cols = ", ".join(f"{c} {t}" for c, t in TYPE_COLUMNS)
    session.execute(f"CREATE TABLE IF NOT EXISTS {ks}.all_types (id int PRIMARY KEY, {cols})")
    rows = _type_rows()

    def driver_value(col, v):
        if v is None:
            return None
        if col == "c_time":
            return util.Time(v)
        if col == "c_duration":
            return util.Duration(*v)
        return v

    names = ["id"] + [c for c, _ in TYPE_COLUMNS]
    _insert_all(session, f"INSERT INTO {ks}.all_types ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [[driver_value(c, r[c]) for c in names] for r in rows], concurrency=1)
    session.execute(f"CREATE TABLE IF NOT EXISTS {ks}.counts (name text PRIMARY KEY, hits counter)")
    counts = {}
    update = session.prepare(f"UPDATE {ks}.counts SET hits = hits + ? WHERE name = ?")
    for name, delta in COUNTER_UPDATES:
        session.execute(update, (delta, name))
        counts[name] = counts.get(name, 0) + delta
    session.execute(f"CREATE TABLE IF NOT EXISTS {ks}.wide_varint (id int PRIMARY KEY, huge_number varint)")
    wide = {1: 10**40 + 7, 2: 5}
    _insert_all(session, f"INSERT INTO {ks}.wide_varint (id, huge_number) VALUES (?, ?)", list(wide.items()))
    return {"columns": TYPE_COLUMNS, "rows": {r["id"]: r for r in rows}, "counts": counts, "wide_varint": wide}


Event = namedtuple("Event", "tenant day seq kind amount")
KINDS = ["x", "click", "view", "buy", "refund"]
FIRST_DAY = datetime.date(2024, 1, 1)


def wide_rows(n, seed=11, tenants=5, days=10):
    """`n` deterministic events over tenants t0.. × days from 2024-01-01: row i is in
    partition i % (tenants·days), clustering seq i // (tenants·days)."""
    rnd = random.Random(seed)
    parts = tenants * days
    out = []
    for i in range(n):
        p = i % parts
        out.append(Event(f"t{p % tenants}", FIRST_DAY + datetime.timedelta(days=p // tenants), i // parts,
                         rnd.choice(KINDS), round(rnd.uniform(-50, 500), 2)))
    return out


def load_wide(session, ks, n, seed=11, tenants=5, days=10, table="events"):
    """Creates ks.events ((tenant, day), seq) and inserts wide_rows(n); returns them."""
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import BatchStatement, BatchType

    create_keyspace(session, ks)
    session.execute(f"CREATE TABLE IF NOT EXISTS {ks}.{table} (tenant text, day date, seq int, kind text, "
                    f"amount double, PRIMARY KEY ((tenant, day), seq))")
    rows = wide_rows(n, seed, tenants, days)
    insert = session.prepare(f"INSERT INTO {ks}.{table} (tenant, day, seq, kind, amount) VALUES (?, ?, ?, ?, ?)")
    by_partition = {}
    for r in rows:
        by_partition.setdefault((r.tenant, r.day), []).append(r)
    batches = []
    for part in by_partition.values():
        for k in range(0, len(part), 50):  # one partition per batch: one mutation, under the size warning
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for r in part[k:k + 50]:
                batch.add(insert, r)
            batches.append((batch, None))
    for ok, result in execute_concurrent(session, batches, concurrency=16, raise_on_first_error=True):
        assert ok, result
    return rows


# --- entity revisions (the Cyoda differential orders) -----------------------
Revision = namedtuple("Revision", "model_name model_version entity_id last_update_time creation_time state doc deleted")
T0 = datetime.datetime(2024, 5, 1, tzinfo=UTC)
UPDATED_AT = T0 + datetime.timedelta(hours=1)  # + i ms for order i
DELETED_AT = T0 + datetime.timedelta(hours=2)  # + i ms for order i


def order_revisions(n=400, t0=T0, update_state="CREATED"):
    """The revisions of test_cyoda's `loaded` fixture, with known instants:
    order i created at t0 + i ms; every 10th updated at t0 + 1 h + i ms (status
    paid, total + 1); every 20th from the 6th deleted at t0 + 2 h + i ms.

    An update keeps the state CREATED by default, as cyoda-go does for an update
    without a transition: sql-tests/cyoda/orders.slt expects `CREATED 380`."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cyoda import orders

    rnd = random.Random(20240501)
    docs = orders(n)
    ms = lambda i: datetime.timedelta(milliseconds=i)
    out = []
    for i, doc in enumerate(docs):
        eid = uuid.UUID(int=rnd.getrandbits(128), version=4)
        created = t0 + ms(i)
        out.append(Revision("orders", 1, eid, created, created, "CREATED", doc, False))
        if i % 10 == 0:
            out.append(Revision("orders", 1, eid, t0 + (UPDATED_AT - T0) + ms(i), created, update_state,
                                dict(doc, status="paid", total=doc["total"] + 1), False))
        if i % 20 == 5:
            out.append(Revision("orders", 1, eid, t0 + (DELETED_AT - T0) + ms(i), created, "CREATED", doc, True))
    return out


def doc_json(doc):
    """The document as stored: compact JSON (as Cyoda writes it), key order kept."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def load_revisions(session, ks, table, revisions):
    """Creates ks.<table> holding entity revisions and inserts `revisions`
    (Revision tuples, e.g. order_revisions()); returns them."""
    create_keyspace(session, ks)
    session.execute(f"CREATE TABLE IF NOT EXISTS {ks}.{table} (model_name text, model_version int, entity_id uuid, "
                    f"last_update_time timestamp, creation_time timestamp, state text, doc text, deleted boolean, "
                    f"PRIMARY KEY ((model_name, model_version, entity_id), last_update_time))")
    _insert_all(session, f"INSERT INTO {ks}.{table} (model_name, model_version, entity_id, last_update_time, "
                         f"creation_time, state, doc, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [r._replace(doc=doc_json(r.doc)) for r in revisions])
    return revisions


def current_state(revisions, at=None):
    """{entity_id: latest Revision at or before `at` (default: now)} without deleted entities."""
    latest = {}
    for r in revisions:
        if at is not None and r.last_update_time > at:
            continue
        key = (r.model_name, r.model_version, r.entity_id)
        if key not in latest or r.last_update_time > latest[key].last_update_time:
            latest[key] = r
    return {k[2]: r for k, r in latest.items() if not r.deleted}


def iso_ms(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def envelope(r):
    """A Cyoda entity envelope of revision r; "type" comes first (without it
    local-files reads the line as a bare record)."""
    return {"type": "ENTITY",
            "meta": {"id": str(r.entity_id), "state": r.state, "creationDate": iso_ms(r.creation_time),
                     "lastUpdateTime": iso_ms(r.last_update_time),
                     "modelKey": {"name": r.model_name, "version": r.model_version}},
            "data": r.doc}


def write_entity_files(folder, revisions, at=None):
    """Writes the current state as local entity files, one NDJSON of envelopes per
    model: <folder>/<model>/<version>/current.ndjson. Returns the folder."""
    by_model = {}
    for r in current_state(revisions, at).values():
        by_model.setdefault((r.model_name, r.model_version), []).append(r)
    for (model, version), revs in by_model.items():
        d = os.path.join(str(folder), model, str(version))
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "current.ndjson"), "w") as f:
            for r in sorted(revs, key=lambda r: r.creation_time):
                f.write(json.dumps(envelope(r), separators=(",", ":"), ensure_ascii=False) + "\n")
    return folder


# --- config files ---------------------------------------------------------------
def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def toml(doc, path=()):
    """TOML text of a dict: scalars and scalar lists inline, dicts as [tables],
    lists of dicts as [[arrays of tables]], nested to any depth."""
    key = lambda k: k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)
    is_tables = lambda v: isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
    out = [f"{key(k)} = {toml_value(v)}\n" for k, v in doc.items() if not isinstance(v, dict) and not is_tables(v)]
    for k, v in doc.items():
        sub = ".".join(key(p) for p in (*path, k))
        if isinstance(v, dict):
            out.append(f"\n[{sub}]\n" + toml(v, (*path, k)))
        elif is_tables(v):
            for item in v:
                out.append(f"\n[[{sub}]]\n" + toml(item, (*path, k)))
    return "".join(out)


def write_config(path, sources, users=("admin",), extra=None):
    """A tsql config: `users` (each user's password is its name, bcrypt-hashed)
    and `sources` (dicts; a dict value becomes [source.x], a list of dicts
    [[source.x]])."""
    import bcrypt

    doc = dict(extra or {})
    if users:
        doc["users"] = [{"name": u, "password_hash": bcrypt.hashpw(u.encode(), bcrypt.gensalt(rounds=4)).decode()}
                        for u in users]
    doc["source"] = list(sources)
    text = toml(doc)
    with open(path, "w") as f:
        f.write(text)
    return path


# --- self-test ------------------------------------------------------------------
def _norm(v):
    """Driver values in the loaders' Python form (for the self-test)."""
    from cassandra import util

    if isinstance(v, util.Time):
        return v.nanosecond_time
    if isinstance(v, util.Duration):
        return Duration(v.months, v.days, v.nanoseconds)
    if isinstance(v, util.SortedSet):
        return set(v)
    if isinstance(v, util.OrderedMapSerializedKey) or isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    if isinstance(v, tuple):
        return tuple(_norm(x) for x in v)
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, datetime.datetime):  # the driver reads through a float: round to Cassandra's ms
        v = v.replace(tzinfo=UTC)
        return v.replace(microsecond=0) + datetime.timedelta(milliseconds=round(v.microsecond / 1000))
    if isinstance(v, util.Date):
        return v.date()
    return v


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def selftest(nodes=1, workdir=None):
    import tempfile

    workdir = workdir or tempfile.mkdtemp(prefix="cassandra-it-")
    t = time.time()
    cluster = Cluster(nodes, workdir)
    print(f"{nodes} node(s) up in {cluster.timings['start']:.1f} s (fetch {cluster.timings['fetch']:.1f} s)")
    try:
        s = cluster.session(consistency="ALL" if nodes > 1 else "QUORUM")
        create_keyspace(s, "selftest", rf=nodes)
        began = time.time()
        types = load_types(s, "selftest")
        got = {r.id: r for r in s.execute("SELECT * FROM selftest.all_types")}
        for rid, want in types["rows"].items():
            for col, _ in TYPE_COLUMNS:
                have = _norm(getattr(got[rid], col))
                if not _same(have, want[col]) and not (want[col] in (None, [], set(), {}) and have is None):
                    raise AssertionError(f"row {rid} {col}: {have!r} != {want[col]!r}")
        assert {r.name: r.hits for r in s.execute("SELECT * FROM selftest.counts")} == types["counts"]
        assert {r.id: r.huge_number for r in s.execute("SELECT * FROM selftest.wide_varint")} == types["wide_varint"]
        print(f"types loaded and read back in {time.time() - began:.1f} s")
        n = 20000 if nodes == 1 else 2000
        began = time.time()
        rows = load_wide(s, "selftest", n)
        loaded = time.time() - began
        count = sum(s.execute("SELECT count(*) FROM selftest.events WHERE tenant = %s AND day = %s",
                              (f"t{k % 5}", FIRST_DAY + datetime.timedelta(days=k // 5))).one()[0] for k in range(50))
        assert count == n, count
        amount = sum(r.amount for r in s.execute("SELECT amount FROM selftest.events WHERE tenant = 't1' "
                                                 "AND day = '2024-01-02'"))
        want = sum(r.amount for r in rows if r.tenant == "t1" and r.day == datetime.date(2024, 1, 2))
        assert abs(amount - want) < 1e-6, (amount, want)
        print(f"{n} events loaded in {loaded:.1f} s, counted per partition")
        began = time.time()
        revs = load_revisions(s, "selftest", "revisions", order_revisions())
        current = current_state(revs)
        stored = list(s.execute("SELECT entity_id, last_update_time, deleted, doc FROM selftest.revisions"))
        assert len(stored) == len(revs) == 460 and len(current) == 380, (len(stored), len(revs), len(current))
        assert all(json.loads(r.doc) == next(x.doc for x in revs if x.entity_id == r.entity_id and
                                             x.last_update_time == r.last_update_time.replace(tzinfo=UTC))
                   for r in stored[:50])
        files = write_entity_files(os.path.join(workdir, "files"), revs)
        lines = open(os.path.join(files, "orders", "1", "current.ndjson")).read().splitlines()
        assert len(lines) == 380 and json.loads(lines[0])["type"] == "ENTITY"
        print(f"460 revisions loaded in {time.time() - began:.1f} s; files at {files}")
        if nodes == 1:
            began = time.time()
            cluster.flush_and_estimate()
            print(f"flush + refreshsizeestimates in {time.time() - began:.1f} s")
            est = list(s.execute("SELECT range_start, partitions_count FROM system.size_estimates "
                                 "WHERE keyspace_name = 'selftest' AND table_name = 'events'"))
            print(f"size_estimates: {len(est)} ranges, {sum(e.partitions_count for e in est)} partitions")
        else:
            began = time.time()
            cluster.kill(3)
            cluster.wait_down(3)
            print(f"node 3 killed and seen down in {time.time() - began:.1f} s")
            from cassandra import ConsistencyLevel
            from cassandra.query import SimpleStatement
            q = SimpleStatement("SELECT count(*) FROM selftest.events WHERE tenant = 't1' AND day = '2024-01-02'",
                                consistency_level=ConsistencyLevel.QUORUM)
            print("QUORUM with one node down:", s.execute(q).one()[0])
            began = time.time()
            cluster.restart(3)
            print(f"node 3 restarted in {time.time() - began:.1f} s")
    finally:
        began = time.time()
        cluster.stop()
        print(f"stopped in {time.time() - began:.1f} s; whole self-test {time.time() - t:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "selftest":
        selftest(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    else:
        print(__doc__)
