"""A real Cyoda entity service (cyoda-go) for the tests: start, stop, kill and
restart it on free 127.0.0.1 ports, load data through its API, mint tokens,
and a recording HTTP proxy to put between tsql and the service.

The binary comes from $CYODA_BIN, else from ../shared/upstreams/cyoda-go/cyoda
(next to the clone). Where neither exists, install it with Go:
    go install github.com/cyoda-platform/cyoda-go/cmd/cyoda@v0.8.3
and set CYODA_BIN to the installed binary.
"""

import base64
import hashlib
import http.client
import http.server
import json
import os
import random
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cyoda_binary():
    explicit = os.environ.get("CYODA_BIN")
    if explicit:
        return explicit
    shared = os.path.join(os.path.dirname(ROOT), "shared", "upstreams", "cyoda-go", "cyoda")
    if os.path.exists(shared):
        return shared
    raise RuntimeError(
        "no cyoda-go binary: set CYODA_BIN, or install it with "
        "`go install github.com/cyoda-platform/cyoda-go/cmd/cyoda@v0.8.3` "
        "(the shared build is expected at ../shared/upstreams/cyoda-go/cyoda)"
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_rsa_key(path):
    """Writes a new 2048-bit RSA private key (PKCS#8 PEM, as `openssl genrsa` makes)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


class CyodaError(Exception):
    def __init__(self, status, body):
        super().__init__(f"{status}: {body[:300]}")
        self.status = status
        self.body = body


class Cyoda:
    """A running cyoda-go. `storage` is memory or sqlite; `iam` is mock or jwt
    (then `boot`/`bootsecret` is the bootstrap client of tenant `tenant-a`);
    `env` adds or overrides settings (e.g. CYODA_JWT_ISSUER)."""

    def __init__(self, workdir, storage="memory", iam="mock", env=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.ports = (free_port(), free_port(), free_port())
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": self.workdir,
            "CYODA_STORAGE_BACKEND": storage,
            "CYODA_IAM_MODE": iam,
            "CYODA_HTTP_PORT": str(self.ports[0]),
            "CYODA_GRPC_PORT": str(self.ports[1]),
            "CYODA_ADMIN_PORT": str(self.ports[2]),
            "CYODA_CONTEXT_PATH": "/api",
            "CYODA_SUPPRESS_BANNER": "true",
        }
        if storage == "sqlite":
            self.env["CYODA_SQLITE_PATH"] = os.path.join(self.workdir, "cyoda.db")
        self.key_file = None
        if iam == "jwt":
            self.key_file = os.path.join(self.workdir, "signing.pem")
            if not os.path.exists(self.key_file):
                new_rsa_key(self.key_file)
            self.env.update({
                "CYODA_JWT_SIGNING_KEY_FILE": self.key_file,
                "CYODA_BOOTSTRAP_CLIENT_ID": "boot",
                "CYODA_BOOTSTRAP_CLIENT_SECRET": "bootsecret",
                "CYODA_BOOTSTRAP_TENANT_ID": "tenant-a",
            })
        self.env.update(env or {})
        self.base = f"http://127.0.0.1:{self.ports[0]}/api"
        self.proc = None
        self.start()

    def start(self):
        log = open(os.path.join(self.workdir, "cyoda.log"), "ab")
        self.proc = subprocess.Popen([cyoda_binary()], cwd=self.workdir, env=self.env, stdout=log, stderr=log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cyoda-go exited with {self.proc.returncode}; see {self.workdir}/cyoda.log")
            try:
                urllib.request.urlopen(self.base + "/health", timeout=1).read()
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("cyoda-go did not become healthy within 60 s")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    # --- API -------------------------------------------------------------
    def call(self, method, path, body=None, token=None, query=None, basic=None):
        url = self.base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
        if basic:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                text = r.read()
        except urllib.error.HTTPError as e:
            raise CyodaError(e.code, e.read().decode(errors="replace")) from None
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return [json.loads(line) for line in text.splitlines() if line.strip()]

    def token(self, client_id="boot", secret="bootsecret"):
        answer = self.call("POST", "/oauth/token", body=b"grant_type=client_credentials", basic=(client_id, secret))
        return answer["access_token"]

    def mint(self, tenant, subject="svc", expires_in=3600, key_file=None):
        """A token for `tenant` signed with the service's key (or another one)."""
        import jwt
        from cryptography.hazmat.primitives import serialization

        own = serialization.load_pem_private_key(open(self.key_file, "rb").read(), None)
        der = own.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        kid = hashlib.sha256(der).hexdigest()[:32]
        signer = open(key_file or self.key_file, "rb").read()
        now = int(time.time())
        claims = {"iss": "cyoda", "sub": subject, "caas_org_id": tenant, "scopes": ["ROLE_ADMIN", "ROLE_M2M"],
                  "iat": now, "exp": now + expires_in, "jti": str(random.random())}
        return jwt.encode(claims, signer, algorithm="RS256", headers={"kid": kid})

    def create_model(self, name, sample, version=1, token=None):
        self.call("POST", f"/model/import/JSON/SAMPLE_DATA/{name}/{version}", body=sample, token=token)
        self.call("PUT", f"/model/{name}/{version}/lock", token=token)

    def post_entities(self, name, docs, version=1, token=None, batch=500):
        """Creates entities; returns their ids in the order given."""
        ids = []
        for i in range(0, len(docs), batch):
            answer = self.call("POST", f"/entity/JSON/{name}/{version}", body=docs[i:i + batch], token=token,
                               query={"transactionWindow": 1000})
            for chunk in answer:
                if "error" in chunk:
                    raise CyodaError(400, json.dumps(chunk))
                ids.extend(chunk["entityIds"])
        assert len(ids) == len(docs)
        return ids

    def update(self, entity_id, doc, token=None):
        return self.call("PUT", f"/entity/JSON/{entity_id}", body=doc, token=token)

    def delete(self, entity_id, token=None):
        return self.call("DELETE", f"/entity/{entity_id}", token=token)

    def entity(self, entity_id, token=None):
        return self.call("GET", f"/entity/{entity_id}", token=token)

    def all_envelopes(self, name, version=1, token=None):
        out, page = [], 0
        while True:
            got = self.call("GET", f"/entity/{name}/{version}", token=token,
                            query={"pageSize": 10000, "pageNumber": page}) or []
            out.extend(got)
            if len(got) < 10000:
                return out
            page += 1


def fractional(x):
    """`x` with two decimals and a fraction, so every writer keeps it a DOUBLE."""
    x = round(x, 2)
    return x + 0.5 if x == int(x) else x


def orders(n, seed=7):
    """`n` deterministic orders with a customer object, lines and tags."""
    rnd = random.Random(seed)
    channels = ["web", "store", "phone"]
    statuses = ["new", "paid", "shipped", "cancelled"]
    skus = [f"SKU-{i:02d}" for i in range(20)]
    out = []
    for i in range(n):
        lines = [
            {"sku": rnd.choice(skus), "qty": rnd.randint(1, 9), "price": fractional(rnd.uniform(1, 100))}
            for _ in range(rnd.randint(0, 4))
        ]
        doc = {
            "orderId": f"O-{i:05d}",
            "channel": rnd.choice(channels),
            "status": rnd.choice(statuses),
            "priority": rnd.randint(1, 5),
            "total": fractional(sum(l["qty"] * l["price"] for l in lines)),
            "express": rnd.random() < 0.3,
            "placedAt": f"2024-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T{rnd.randint(0, 23):02d}:15:00Z",
            "customer": {"name": f"cust-{rnd.randint(0, 49):02d}", "tier": rnd.choice(["gold", "silver"])},
            "lines": lines,
            "tags": rnd.sample(["a", "b", "c", "d"], rnd.randint(0, 2)),
        }
        if i % 10 == 3:
            doc["note"] = None
        elif i % 10 == 4:
            doc["note"] = f"call {rnd.randint(100, 999)}"
        else:
            doc["note"] = None
        out.append(doc)
    return out


ORDER_SAMPLE = {
    "orderId": "O-0", "channel": "web", "status": "new", "priority": 1, "total": 12.345, "express": True,
    "placedAt": "2024-01-01T10:15:00Z", "customer": {"name": "c", "tier": "gold"},
    "lines": [{"sku": "SKU-00", "qty": 1, "price": 1.25}], "tags": ["a"], "note": "x",
}


class Recorder(http.server.ThreadingHTTPServer):
    """An HTTP proxy on 127.0.0.1 in front of `target` (host, port) that
    records every request (method, path with query, body) and can delay
    answers, refuse them, or rewrite response bodies. Not a fake service: every
    answer comes from the real one."""

    daemon_threads = True

    def __init__(self, target):
        self.target = target
        self.requests = []
        self.authorization = []  # the Authorization header of each request
        self.delay = 0.0
        self.down = False
        self.rewrite = None  # function(path, body bytes) -> bytes
        super().__init__(("127.0.0.1", 0), _Forward)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.server_address[1]}/api"

    def searches(self):
        return [r for r in self.requests if r[1].startswith("/api/search/")]

    def close(self):
        self.shutdown()
        self.server_close()


class _Forward(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        server = self.server
        server.requests.append((self.command, self.path, body))
        server.authorization.append(self.headers.get("Authorization"))
        if server.down:
            self.close_connection = True
            self.connection.close()
            return
        if server.delay:
            time.sleep(server.delay)
        conn = http.client.HTTPConnection(*server.target, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        try:
            conn.request(self.command, self.path, body=body or None, headers=headers)
            r = conn.getresponse()
            data = r.read()
        except OSError:
            self.close_connection = True
            self.connection.close()
            return
        if server.rewrite:
            data = server.rewrite(self.path, data)
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass  # the client went away (a cancelled or failed query)

    do_GET = do_POST = do_PUT = do_DELETE = _handle
