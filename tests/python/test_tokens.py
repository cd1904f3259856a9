"""Which Cyoda access tokens tsql accepts, against a real cyoda-go in JWT mode
(started here on free 127.0.0.1 ports), over Flight SQL and the Trino
protocol: forged, expired, without or with a non-integer `exp`, from another
issuer, or signed with another algorithm than the service publishes — each is
refused as UNAUTHENTICATED / 401; a refused login names no service URL; the
issuer is the configured one, else the one the service puts in its tokens."""

import base64
import json
import random
import time
import urllib.error
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pytest
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from conftest import Server
from cyoda import Cyoda, Recorder, new_rsa_key
from test_cyoda import write_config
from test_trino import free_port

DROP = object()  # a claim left out


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def header_of(token):
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def sign(world, alg="RS256", key_file=None, kid=None, **changes):
    """A token of tenant-a shaped like the service's own, with `changes` to its
    claims (DROP leaves one out; a callable gets the current time), signed with
    `alg`: RS* with the service's key (or `key_file`), HS256 with the service's
    public key as the secret, `none` not at all."""
    now = int(time.time())
    claims = {"iss": "cyoda", "sub": "svc", "caas_org_id": "tenant-a", "caas_user_id": "svc",
              "scopes": ["ROLE_ADMIN", "ROLE_M2M"], "iat": now, "exp": now + 600, "jti": str(random.random())}
    for name, value in changes.items():
        if value is DROP:
            claims.pop(name, None)
        else:
            claims[name] = value(now) if callable(value) else value
    header = {"alg": alg, "kid": kid or world["kid"], "typ": "JWT"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}".encode()
    own = serialization.load_pem_private_key(open(world["service"].key_file, "rb").read(), None)
    if alg.startswith("RS"):
        key = serialization.load_pem_private_key(open(key_file or world["service"].key_file, "rb").read(), None)
        digest = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}[alg]
        signature = key.sign(signing_input, padding.PKCS1v15(), digest)
    elif alg == "HS256":
        public = own.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        mac = hmac.HMAC(public, hashes.SHA256())
        mac.update(signing_input)
        signature = mac.finalize()
    else:
        signature = b""
    return f"{signing_input.decode()}.{b64(signature)}"


# Each bad token: how to make it, and what the refusal says.
BAD = {
    "forged key": (lambda w: sign(w, key_file=w["other_key"]), "signature is not valid"),
    "expired": (lambda w: sign(w, exp=lambda now: now - 60), "expired"),
    "no exp": (lambda w: sign(w, exp=DROP), "no expiry"),
    "string exp": (lambda w: sign(w, exp=lambda now: str(now + 600)), "(exp) is a string"),
    "fractional exp": (lambda w: sign(w, exp=lambda now: now + 600.5), "not a whole number"),
    "wrong issuer": (lambda w: sign(w, iss="https://elsewhere.example"), "issued by 'https://elsewhere.example'"),
    "no issuer": (lambda w: sign(w, iss=DROP), "no issuer"),
    "alg RS384": (lambda w: sign(w, alg="RS384"), "signed with RS384"),
    "alg HS256": (lambda w: sign(w, alg="HS256"), "signed with HS256"),
    "alg none": (lambda w: sign(w, alg="none"), "not signed"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """cyoda-go in JWT mode holding model `things` of tenant-a; tsql in
    passthrough mode reading it through a recording proxy (which can go down),
    with a Trino listener."""
    root = tmp_path_factory.mktemp("tokens")
    service = Cyoda(root / "service", iam="jwt")
    token = service.token()
    service.create_model("things", {"name": "x", "n": 1}, token=token)
    service.post_entities("things", [{"name": "a", "n": 1}, {"name": "b", "n": 2}], token=token)
    other_key = str(root / "other.pem")
    new_rsa_key(other_key)
    proxy = Recorder(("127.0.0.1", service.ports[0]))
    config = write_config(root / "tsql.toml", [
        {"kind": "cyoda", "catalog": "cyoda", "url": proxy.base, "auth": "passthrough", "timeout_seconds": 5},
    ], users=False)
    # These tests make many failed logins from one address on purpose; the
    # login rate limit (tested in test_tenant_isolation.py) must not answer first.
    config.write_text("login_failures_per_minute = 100000\n" + config.read_text())
    trino_port = free_port()
    server = Server(["--config", str(config), "--trino-listen", f"127.0.0.1:{trino_port}"])
    yield {"service": service, "server": server, "proxy": proxy, "trino_port": trino_port,
           "kid": header_of(token)["kid"], "other_key": other_key, "root": root}
    server.stop()
    proxy.close()
    service.stop()


def flight(server, sql, token=None, user=None, password=None):
    """Rows of `sql` over Flight SQL, with `token` as the bearer token or user/password."""
    if token is not None:
        kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {token}"}
    else:
        kwargs = {"username": user, "password": password}
    with flightsql.connect(server.uri, db_kwargs=kwargs, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def flight_error(server, **credentials):
    with pytest.raises(adbc_driver_manager.Error) as err:
        flight(server, "SELECT 1", **credentials)
    return str(err.value)


def trino(port, sql, authorization):
    """(status, rows or the refusal's text) of `sql` over the Trino protocol."""
    headers = {"Authorization": authorization, "X-Trino-Catalog": "cyoda", "X-Trino-Schema": "entities"}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/statement", data=sql.encode(), method="POST",
                                 headers=headers)
    try:
        page = json.load(urllib.request.urlopen(req, timeout=30))
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    rows = []
    while True:
        rows += page.get("data", [])
        if "error" in page:
            return 200, page["error"]
        if "nextUri" not in page:
            return 200, rows
        page = json.load(urllib.request.urlopen(
            urllib.request.Request(page["nextUri"], headers={"Authorization": authorization}), timeout=30))


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def unauthenticated(text):
    return "UNAUTHENTICATED" in text or "Unauthenticated" in text


def test_good_tokens_work_over_both_protocols(world):
    server, service, port = world["server"], world["service"], world["trino_port"]
    sql = "SELECT name, n FROM cyoda.entities.things ORDER BY n"
    for token in [service.token(), sign(world)]:
        assert flight(server, sql, token=token) == [("a", 1), ("b", 2)]
        assert flight(server, sql, user="", password=token) == [("a", 1), ("b", 2)]
        assert trino(port, sql, f"Bearer {token}") == (200, [["a", 1], ["b", 2]])
        assert trino(port, sql, basic("", token)) == (200, [["a", 1], ["b", 2]])
    assert flight(server, sql, user="boot", password="bootsecret") == [("a", 1), ("b", 2)]


@pytest.mark.parametrize("case", list(BAD))
def test_bad_tokens_are_refused_over_flight_sql(world, case):
    make, reason = BAD[case]
    token = make(world)
    for credentials in [{"token": token}, {"user": "", "password": token}]:
        text = flight_error(world["server"], **credentials)
        assert unauthenticated(text) and reason in text, (case, text)
    assert world["server"].alive()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_tokens_are_refused_over_trino(world, case):
    make, reason = BAD[case]
    token = make(world)
    for authorization in [f"Bearer {token}", basic("", token)]:
        status, text = trino(world["trino_port"], "SELECT 1", authorization)
        assert status == 401 and reason in text, (case, status, text)


def names_no_service(text, world):
    service, proxy = world["service"], world["proxy"]
    ports = [str(p) for p in service.ports] + [str(proxy.server_address[1])]
    return "127.0.0.1" not in text and "http" not in text and not any(p in text for p in ports)


def test_a_wrong_secret_is_refused_without_naming_the_service(world):
    server = world["server"]
    text = flight_error(server, user="boot", password="wrong")
    assert unauthenticated(text) and "refused client 'boot': wrong client id or secret" in text, text
    assert names_no_service(text, world), text
    status, text = trino(world["trino_port"], "SELECT 1", basic("boot", "wrong-too"))
    assert status == 401 and "wrong client id or secret" in text, text
    assert names_no_service(text, world), text
    # The detail is in the server's log.
    assert server.wait_log(r"login of Cyoda client 'boot' failed: .*127\.0\.0\.1.*/oauth/token"), server.log_text()


def test_an_unreachable_service_at_login_is_not_named(world):
    server, proxy = world["server"], world["proxy"]
    proxy.down = True
    try:
        text = flight_error(server, user="boot", password="not-tried-before")
        assert ("UNAVAILABLE" in text or "Unavailable" in text) and "cannot reach the Cyoda service" in text, text
        assert names_no_service(text, world), text
        status, text = trino(world["trino_port"], "SELECT 1", basic("boot", "not-tried-either"))
        assert status == 401 and names_no_service(text, world), text
        # A token naming a key tsql has not seen sends it to the JWKS, which is unreachable too.
        text = flight_error(server, token=sign(world, kid="a-key-never-seen"))
        assert "signing keys" in text or "does not publish" in text, text
        assert names_no_service(text, world), text
    finally:
        proxy.down = False
    assert flight(server, "SELECT count(*) FROM cyoda.entities.things", user="boot", password="bootsecret") == [(2,)]


@pytest.fixture(scope="module")
def own_issuer(tmp_path_factory):
    """cyoda-go issuing tokens as https://auth.test (not its default `cyoda`)."""
    root = tmp_path_factory.mktemp("issuer")
    service = Cyoda(root / "service", iam="jwt", env={"CYODA_JWT_ISSUER": "https://auth.test"})
    token = service.token()
    assert json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))["iss"] == "https://auth.test"
    service.create_model("things", {"name": "x", "n": 1}, token=token)
    service.post_entities("things", [{"name": "a", "n": 1}], token=token)
    yield {"service": service, "kid": header_of(token)["kid"], "root": root}
    service.stop()


def passthrough_server(world, name, **extra):
    config = write_config(world["root"] / f"{name}.toml", [
        {"kind": "cyoda", "catalog": "cyoda", "url": world["service"].base, "auth": "passthrough", **extra},
    ], users=False)
    return Server(["--config", str(config)])


def test_the_issuer_is_learned_from_the_services_own_tokens(own_issuer):
    """Without `issuer` in the config, tsql expects cyoda-go's default until the
    service issues it a token at a login; from then on that token's issuer."""
    sql = "SELECT count(*) FROM cyoda.entities.things"
    own = sign(own_issuer, iss="https://auth.test")
    server = passthrough_server(own_issuer, "learn")
    try:
        text = flight_error(server, token=own)
        assert unauthenticated(text) and "issued by 'https://auth.test'" in text and "`issuer`" in text, text
        assert flight(server, sql, user="boot", password="bootsecret") == [(1,)]
        assert flight(server, sql, token=own) == [(1,)]
        text = flight_error(server, token=sign(own_issuer))  # iss "cyoda" now is another issuer
        assert unauthenticated(text) and "issued by 'cyoda'" in text, text
    finally:
        server.stop()


def test_a_configured_issuer_is_the_only_one_accepted(own_issuer):
    sql = "SELECT count(*) FROM cyoda.entities.things"
    server = passthrough_server(own_issuer, "configured", issuer="https://auth.test")
    try:
        assert flight(server, sql, token=sign(own_issuer, iss="https://auth.test")) == [(1,)]
        text = flight_error(server, token=sign(own_issuer))
        assert unauthenticated(text) and "issued by 'cyoda'" in text, text
    finally:
        server.stop()
    # An issuer the service does not sign with: even its own logins are refused, saying what to fix.
    server = passthrough_server(own_issuer, "misconfigured", issuer="https://wrong.test")
    try:
        text = flight_error(server, user="boot", password="bootsecret")
        assert unauthenticated(text) and "correct `issuer`" in text, text
    finally:
        server.stop()
