# Copyright (c) selfjwt.kyma contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The local Kyma gateway stand-in (tools/kyma_standin) against Istio's documented behaviour.

The stand-in runs as a real process (the same command line the demo uses) and every case is a
real HTTP request. Expected statuses and bodies come from Istio/Envoy (see
../shared/research/kyma_apirule.md sections 0, 1.3 and 3): no token -> 403 ``RBAC: access
denied``; a present token that fails ``jwt_authn`` -> 401 with Envoy's status text; a valid
token that the AuthorizationPolicy does not allow -> 403.

A second judge: node ``jose`` (tests/interop/node_modules) must agree with the stand-in on
which tokens are valid (signature, kid, iss, exp/nbf with 60 s tolerance), so the stand-in is
not the only judge of its own verdicts.
"""

import base64
import email.message
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTEROP = os.path.join(REPO, "tests", "interop")
ISS = "http://edge-jwks.kyma-system.svc.cluster.local"
JWKS_URI = ISS + "/.well-known/jwks.json"
ISS2 = "https://second-issuer.example.com"
JWKS_URI2 = "http://second-jwks.default.svc.cluster.local/jwks.json"
AUD = "poster-api"
RBAC = "RBAC: access denied"

sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from standin_process import Process  # noqa: E402  pylint: disable=wrong-import-position,import-error
from tools.kyma_standin import envoy_jwt  # noqa: E402  pylint: disable=wrong-import-position
from tools.kyma_standin.apirule import ApiRule, ApiRuleError, path_template_regex  # noqa: E402  pylint: disable=wrong-import-position

try:
    from ansible_collections.selfjwt.kyma.plugins.module_utils import _jwk, _jws, _keys
except ImportError:  # pragma: no cover - depends on how pytest is started
    _jwk = _jws = _keys = None

APIRULE = """\
apiVersion: gateway.kyma-project.io/v2
kind: APIRule
metadata:
  name: poster-api
  namespace: default
spec:
  gateway: kyma-system/kyma-gateway
  hosts: [poster-api]
  service: {name: poster-app, namespace: default, port: 8080}
  rules:
    - path: /open/{**}
      methods: [GET]
      noAuth: true
    - path: /open/secret
      methods: [GET]
      jwt:
        authentications: [{issuer: "%(iss)s", jwksUri: "%(uri)s"}]
    - path: /api/{**}
      methods: [GET, POST]
      jwt:
        authentications: [{issuer: "%(iss)s", jwksUri: "%(uri)s"}]
        authorizations:
          - audiences: [%(aud)s]
    - path: /api/admin
      methods: [GET]
      noAuth: true
    - path: /scoped/{*}
      methods: [GET]
      jwt:
        authentications: [{issuer: "%(iss)s", jwksUri: "%(uri)s"}]
        authorizations:
          - requiredScopes: [read, write]
          - audiences: [other-aud, third-aud]
    - path: /exact
      methods: [GET]
      jwt:
        authentications: [{issuer: "%(iss)s", jwksUri: "%(uri)s"}]
    - path: /multi/{*}/items
      methods: [PUT]
      jwt:
        authentications: [{issuer: "%(iss)s", jwksUri: "%(uri)s"}]
    - path: /public
      methods: [GET]
      noAuth: true
    - path: /iss2/{**}
      methods: [GET]
      jwt:
        authentications: [{issuer: "%(iss2)s", jwksUri: "%(uri2)s"}]
""" % {"iss": ISS, "uri": JWKS_URI, "iss2": ISS2, "uri2": JWKS_URI2, "aud": AUD}


# --------------------------------------------------------------------------------------
# keys and tokens
# --------------------------------------------------------------------------------------

def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_of(key, kid, alg=None):
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        text = pyjwt.algorithms.RSAAlgorithm.to_jwk(public)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        text = pyjwt.algorithms.ECAlgorithm.to_jwk(public)
    else:
        text = pyjwt.algorithms.OKPAlgorithm.to_jwk(public)
    jwk = json.loads(text)
    jwk.update({"kid": kid, "use": "sig"})
    if alg:
        jwk["alg"] = alg
    return jwk


class Keys:
    def __init__(self):
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.other_ec = ec.generate_private_key(ec.SECP256R1())
        self.late_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.collection = None
        self.collection_jwk = None
        if _keys is not None:
            self.collection = _keys.generate_private_key("ec", curve="P-256")
            self.collection_jwk = _jwk.public_jwk(self.collection)

    def jwks(self, late=False):
        keys = [jwk_of(self.ec, "k-ec", "ES256"), jwk_of(self.rsa, "k-rsa", "RS256"), jwk_of(self.ed, "k-ed")]
        if self.collection_jwk:
            keys.append(self.collection_jwk)
        if late:
            keys.append(jwk_of(self.late_rsa, "k-late", "RS256"))
        return {"keys": keys}


def claims(**overrides):
    now = int(time.time())
    base = {"iss": ISS, "sub": "edge-01", "aud": AUD, "iat": now, "nbf": now, "exp": now + 300, "jti": "t-1"}
    for name, value in overrides.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


DROP = object()


def sign(key, alg, kid, payload):
    headers = {"typ": "JWT"}
    if kid is not None:
        headers["kid"] = kid
    return pyjwt.encode(payload, key, algorithm=alg, headers=headers)


def raw_token(header, payload, signature=b"sig"):
    head = header if isinstance(header, str) else b64(json.dumps(header))
    body = payload if isinstance(payload, str) else b64(json.dumps(payload))
    return "%s.%s.%s" % (head, body, b64(signature))


def tampered(token):
    head, _body, sig = token.split(".")
    return "%s.%s.%s" % (head, b64(json.dumps(claims(sub="someone-else"))), sig)


def now_offset(seconds):
    return int(time.time()) + seconds


# (name, method, path, token factory or None, extra headers/query, expected status, expected body)
# A factory takes the Keys and returns a token (or a list of (location, token)).
CASES = [
    ("no token", "GET", "/api/x", None, 403, RBAC),
    ("valid ES256", "GET", "/api/x", lambda k: sign(k.ec, "ES256", "k-ec", claims()), 200, None),
    ("valid RS256", "POST", "/api/x/y", lambda k: sign(k.rsa, "RS256", "k-rsa", claims()), 200, None),
    ("valid EdDSA, JWK without alg", "GET", "/api/", lambda k: sign(k.ed, "EdDSA", "k-ed", claims()), 200, None),
    ("valid, no kid: every matching key is tried", "GET", "/api/x",
     lambda k: sign(k.ec, "ES256", None, claims()), 200, None),
    ("valid, aud list containing the audience", "GET", "/api/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(aud=["x", AUD])), 200, None),
    ("valid in ?access_token=", "GET", "/api/x",
     lambda k: [("query", sign(k.ec, "ES256", "k-ec", claims()))], 200, None),
    ("expired 20 s ago: within the 60 s skew", "GET", "/api/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(iat=now_offset(-600), nbf=now_offset(-600), exp=now_offset(-20))),
     200, None),
    ("nbf 20 s ahead: within the 60 s skew", "GET", "/api/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(nbf=now_offset(20))), 200, None),
    ("bad signature (foreign key, known kid)", "GET", "/api/x",
     lambda k: sign(k.other_ec, "ES256", "k-ec", claims()), 401, envoy_jwt.JWT_VERIFICATION_FAIL),
    ("tampered payload", "GET", "/api/x",
     lambda k: tampered(sign(k.ec, "ES256", "k-ec", claims())), 401, envoy_jwt.JWT_VERIFICATION_FAIL),
    ("foreign key, no kid", "GET", "/api/x",
     lambda k: sign(k.other_ec, "ES256", None, claims()), 401, envoy_jwt.JWT_VERIFICATION_FAIL),
    ("unknown kid", "GET", "/api/x",
     lambda k: sign(k.other_ec, "ES256", "not-published", claims()), 401, envoy_jwt.JWKS_KID_ALG_MISMATCH),
    ("JWK alg differs from token alg (PS256 on an RS256 JWK)", "GET", "/api/x",
     lambda k: sign(k.rsa, "PS256", "k-rsa", claims()), 401, envoy_jwt.JWKS_KID_ALG_MISMATCH),
    ("expired 120 s ago: beyond the skew", "GET", "/api/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(iat=now_offset(-900), nbf=now_offset(-900), exp=now_offset(-120))),
     401, envoy_jwt.JWT_EXPIRED),
    ("expired and badly signed: expiry is checked first", "GET", "/api/x",
     lambda k: sign(k.other_ec, "ES256", "k-ec", claims(exp=now_offset(-3600))), 401, envoy_jwt.JWT_EXPIRED),
    ("nbf 300 s ahead", "GET", "/api/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(nbf=now_offset(300))), 401, envoy_jwt.JWT_NOT_YET_VALID),
    ("wrong iss", "GET", "/api/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(iss=ISS + "/")), 401, envoy_jwt.JWT_UNKNOWN_ISSUER),
    ("no iss", "GET", "/api/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(iss=DROP)), 401, envoy_jwt.JWT_UNKNOWN_ISSUER),
    ("malformed: two sections", "GET", "/api/x", lambda k: "abc.def", 401, envoy_jwt.JWT_BAD_FORMAT),
    ("malformed: header not base64url", "GET", "/api/x",
     lambda k: "a!b.%s.%s" % (b64("{}"), b64("s")), 401, envoy_jwt.JWT_HEADER_BAD_BASE64),
    ("malformed: header not JSON", "GET", "/api/x",
     lambda k: raw_token(b64("not json"), claims()), 401, envoy_jwt.JWT_HEADER_BAD_JSON),
    ("alg none", "GET", "/api/x",
     lambda k: raw_token({"alg": "none", "kid": "k-ec"}, claims(), b""), 401, envoy_jwt.JWT_BAD_FORMAT),
    ("alg none with a signature section", "GET", "/api/x",
     lambda k: raw_token({"alg": "none", "kid": "k-ec"}, claims(), b"x"), 401,
     envoy_jwt.JWT_HEADER_NOT_IMPLEMENTED_ALG),
    ("exp is a string", "GET", "/api/x",
     lambda k: raw_token({"alg": "ES256", "kid": "k-ec"}, claims(exp="tomorrow")), 401,
     "Jwt payload [exp] field is not an integer"),
    ("no sub", "GET", "/api/x", lambda k: sign(k.ec, "ES256", "k-ec", claims(sub=DROP)), 403, RBAC),
    ("empty sub", "GET", "/api/x", lambda k: sign(k.ec, "ES256", "k-ec", claims(sub="")), 403, RBAC),
    ("wrong aud", "GET", "/api/x", lambda k: sign(k.ec, "ES256", "k-ec", claims(aud="other")), 403, RBAC),
    ("no aud", "GET", "/api/x", lambda k: sign(k.ec, "ES256", "k-ec", claims(aud=DROP)), 403, RBAC),
    ("scopes: space-separated scope claim", "GET", "/scoped/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(scope="read write admin")), 200, None),
    ("scopes: scp list", "GET", "/scoped/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(scp=["write", "read"])), 200, None),
    ("scopes: scopes list", "GET", "/scoped/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(scopes=["read", "write"])), 200, None),
    ("scopes: one missing", "GET", "/scoped/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(scope="read")), 403, RBAC),
    ("scopes: scp string is not split", "GET", "/scoped/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(scp="read write")), 403, RBAC),
    ("scopes: split across claims", "GET", "/scoped/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(scp=["read"], scope="write")), 403, RBAC),
    ("authorizations are alternatives: second entry's audiences", "GET", "/scoped/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(aud=["third-aud", "other-aud"])), 200, None),
    ("all audiences of an entry are required", "GET", "/scoped/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(aud="other-aud")), 403, RBAC),
    ("{*} is one segment", "GET", "/scoped/x/y",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(scope="read write")), 403, RBAC),
    ("{*} inside a path", "PUT", "/multi/abc/items",
     lambda k: sign(k.ec, "ES256", "k-ec", claims()), 200, None),
    ("exact path", "GET", "/exact", lambda k: sign(k.ec, "ES256", "k-ec", claims(aud=DROP)), 200, None),
    ("exact path does not match a longer path", "GET", "/exact/",
     lambda k: sign(k.ec, "ES256", "k-ec", claims()), 403, RBAC),
    ("unlisted path", "GET", "/nope", lambda k: sign(k.ec, "ES256", "k-ec", claims()), 403, RBAC),
    ("unlisted method", "DELETE", "/api/x", lambda k: sign(k.ec, "ES256", "k-ec", claims()), 403, RBAC),
    ("noAuth rule without token", "GET", "/public", None, 200, None),
    ("noAuth rule with an invalid token: RequestAuthentication is workload-wide", "GET", "/public",
     lambda k: sign(k.other_ec, "ES256", "k-ec", claims()), 401, envoy_jwt.JWT_VERIFICATION_FAIL),
    ("rule order: an earlier noAuth rule wins", "GET", "/open/secret", None, 200, None),
    ("rule order: a later noAuth rule is shadowed", "GET", "/api/admin", None, 403, RBAC),
    ("rule order: the earlier jwt rule still applies", "GET", "/api/admin",
     lambda k: sign(k.ec, "ES256", "k-ec", claims()), 200, None),
    ("second issuer on its own rule", "GET", "/iss2/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(iss=ISS2)), 200, None),
    ("second issuer on a rule that does not name it", "GET", "/api/x",
     lambda k: sign(k.ec, "ES256", "k-ec", claims(iss=ISS2)), 403, RBAC),
    ("two tokens, one bad: all must verify", "GET", "/api/x",
     lambda k: [("header", sign(k.ec, "ES256", "k-ec", claims())),
                ("query", sign(k.other_ec, "ES256", "k-ec", claims()))], 401, envoy_jwt.JWT_VERIFICATION_FAIL),
    ("token made by the collection's JOSE code", "GET", "/api/x", "collection", 200, None),
]


# --------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------

def python():
    return sys.executable


def request(url, method="GET", token=None, locations=None):
    """(status, body) of one request; ``locations`` is a list of ("header"|"query", token)."""
    headers = {}
    query = []
    for where, value in locations or ([("header", token)] if token else []):
        if where == "header":
            headers["Authorization"] = "Bearer " + value
        else:
            query.append("access_token=" + value)
    if query:
        url += ("&" if "?" in url else "?") + "&".join(query)
    req = urllib.request.Request(url, method=method, headers=headers, data=b"" if method in ("POST", "PUT") else None)
    try:
        with urllib.request.build_opener().open(req, timeout=30) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("standin"))


@pytest.fixture(scope="module")
def setup(keys, workdir):
    apirule = os.path.join(workdir, "apirule.yaml")
    with open(apirule, "w") as handle:
        handle.write(APIRULE)
    jwks_file = os.path.join(workdir, "jwks.json")
    with open(jwks_file, "w") as handle:
        json.dump(keys.jwks(), handle)
    # The second issuer's JWKS is fetched over HTTP from the stand-in's JWKS server mode.
    jwks_dir = os.path.join(workdir, "served")
    os.mkdir(jwks_dir)
    shutil.copy(jwks_file, os.path.join(jwks_dir, "jwks.json"))
    server = Process(["jwks-server", "--jwks", os.path.join(jwks_dir, "jwks.json")], workdir, "jwks")
    gateway = Process(["gateway", "--apirule", apirule,
                       "--jwks-map", "%s=%s" % (ISS, jwks_file),
                       "--jwks-map", "%s=%s/.well-known/jwks.json" % (JWKS_URI2, server.url)], workdir, "gateway")
    yield {"gateway": gateway, "jwks_server": server, "apirule": apirule, "jwks_file": jwks_file}
    gateway.stop()
    server.stop()


def make_token(keys, factory):
    if factory == "collection":
        if _jws is None:
            pytest.skip("ansible_collections.selfjwt.kyma is not importable: run through scripts/run-pytest.sh")
        header = _jws.build_header(keys.collection)
        payload = _jws.build_claims(ISS, "edge-01", audience=AUD, expires_in=300)
        return [("header", _jws.sign_token(keys.collection, header, payload)[0])]
    if factory is None:
        return []
    made = factory(keys)
    return made if isinstance(made, list) else [("header", made)]


@pytest.fixture(scope="module")
def results(keys, setup):
    """Every case run once against the stand-in: {name: (status, body, locations)}."""
    done = {}
    for name, method, path, factory, _status, _body in CASES:
        if factory == "collection" and _jws is None:
            continue
        locations = make_token(keys, factory)
        status, body = request(setup["gateway"].url + path, method, locations=locations)
        done[name] = (status, body, locations)
    return done


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_request(case, results, setup):
    name, method, path, factory, expected_status, expected_body = case
    if factory == "collection" and _jws is None:
        pytest.skip("ansible_collections.selfjwt.kyma is not importable: run through scripts/run-pytest.sh")
    status, body, _locations = results[name]
    assert status == expected_status, "%s %s: got %d %r\n%s" % (method, path, status, body, setup["gateway"].log())
    if expected_body is not None:
        assert body == expected_body
    if status == 200:
        answer = json.loads(body)
        assert answer["ok"] is True and answer["path"] == path and answer["method"] == method


def test_401_carries_www_authenticate(keys, setup):
    token = sign(keys.other_ec, "ES256", "k-ec", claims())
    req = urllib.request.Request(setup["gateway"].url + "/api/x", headers={"Authorization": "Bearer " + token})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.build_opener().open(req, timeout=30)
    assert caught.value.code == 401
    assert caught.value.headers["WWW-Authenticate"].startswith('Bearer realm="http://')
    assert 'error="invalid_token"' in caught.value.headers["WWW-Authenticate"]


def test_jwks_server_serves_the_file(setup):
    status, body = request(setup["jwks_server"].url + "/.well-known/jwks.json")
    assert status == 200
    with open(setup["jwks_file"]) as handle:
        assert json.loads(body) == json.load(handle)
    assert request(setup["jwks_server"].url + "/other")[0] == 404


def test_listens_on_loopback_only(setup):
    port = setup["gateway"].port
    with open("/proc/net/tcp") as handle:
        rows = [line.split() for line in handle.readlines()[1:]]
    listening = [row[1] for row in rows if row[3] == "0A" and int(row[1].split(":")[1], 16) == port]
    assert listening == ["0100007F:%04X" % port]


# --------------------------------------------------------------------------------------
# second judge: node jose
# --------------------------------------------------------------------------------------

JOSE_SCRIPT = r"""
import * as jose from 'jose';
let input = '';
for await (const chunk of process.stdin) input += chunk;
const job = JSON.parse(input);
const keySet = jose.createLocalJWKSet(job.jwks);
const out = [];
const options = {issuer: job.issuers, clockTolerance: job.clockTolerance};
for (const token of job.tokens) {
  try {
    await jose.jwtVerify(token, keySet, options);
    out.push({ok: true});
  } catch (err) {
    let verdict = {ok: false, code: err.code || String(err)};
    if (err.code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') {
      // A token without kid: try every candidate key, as jose documents (and Envoy does).
      for await (const candidate of err) {
        try {
          await jose.jwtVerify(token, candidate, options);
          verdict = {ok: true};
          break;
        } catch (inner) {
          verdict = {ok: false, code: inner.code || String(inner)};
        }
      }
    }
    out.push(verdict);
  }
}
process.stdout.write(JSON.stringify(out));
"""


def jose_available():
    if shutil.which("node") is None:
        return "node is not installed"
    if not os.path.isfile(os.path.join(INTEROP, "node_modules", "jose", "package.json")):
        return "tests/interop/node_modules/jose is missing: run 'make node'"
    return None


def jose_verify(jwks, tokens, issuers, tolerance=60):
    """Verdicts of node jose (jwtVerify with a local JWKS) for a list of tokens."""
    job = json.dumps({"jwks": jwks, "tokens": tokens, "issuers": issuers, "clockTolerance": tolerance})
    done = subprocess.run(["node", "--input-type=module", "-e", JOSE_SCRIPT], cwd=INTEROP, input=job.encode("utf-8"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    return json.loads(done.stdout)


def test_node_jose_agrees_on_valid_and_invalid_tokens(keys, results):
    reason = jose_available()
    if reason:
        pytest.skip(reason)
    single = [(name, locations[0][1], status) for name, (status, _body, locations) in results.items()
              if len(locations) == 1]
    assert len(single) > 30
    verdicts = jose_verify(keys.jwks(), [token for _name, token, _status in single], [ISS, ISS2])
    disagreements = []
    for (name, _token, status), verdict in zip(single, verdicts):
        standin_valid = status != 401
        if standin_valid != verdict["ok"]:
            disagreements.append("%s: stand-in %d, jose %s" % (name, status, verdict))
    assert not disagreements
    assert any(v["ok"] for v in verdicts) and any(not v["ok"] for v in verdicts)


# --------------------------------------------------------------------------------------
# JWKS caching like istiod, bounded lifetime, stop, bad input
# --------------------------------------------------------------------------------------

def _gateway_with_jwks(keys, workdir, name, interval, jwks_source=None):
    apirule = os.path.join(workdir, "apirule.yaml")
    if not os.path.exists(apirule):
        with open(apirule, "w") as handle:
            handle.write(APIRULE)
    jwks_file = os.path.join(workdir, name + "-jwks.json")
    with open(jwks_file, "w") as handle:
        json.dump(keys.jwks(), handle)
    gateway = Process(["gateway", "--apirule", apirule, "--jwks-refresh-interval", str(interval),
                       "--jwks-map", "%s=%s" % (JWKS_URI, jwks_source or jwks_file)], workdir, name)
    return gateway, jwks_file


def test_no_refetch_on_unknown_kid(keys, workdir):
    gateway, jwks_file = _gateway_with_jwks(keys, workdir, "no-refetch", 3600)
    try:
        token = sign(keys.late_rsa, "RS256", "k-late", claims())
        assert request(gateway.url + "/api/x", token=token) == (401, envoy_jwt.JWKS_KID_ALG_MISMATCH)
        with open(jwks_file, "w") as handle:
            json.dump(keys.jwks(late=True), handle)
        for _attempt in range(3):
            assert request(gateway.url + "/api/x", token=token) == (401, envoy_jwt.JWKS_KID_ALG_MISMATCH)
    finally:
        gateway.stop()


def test_refetch_on_interval(keys, workdir):
    gateway, jwks_file = _gateway_with_jwks(keys, workdir, "refetch", 1)
    try:
        token = sign(keys.late_rsa, "RS256", "k-late", claims())
        assert request(gateway.url + "/api/x", token=token)[0] == 401
        with open(jwks_file + ".tmp", "w") as handle:
            json.dump(keys.jwks(late=True), handle)
        os.replace(jwks_file + ".tmp", jwks_file)
        end = time.monotonic() + 30
        status = None
        while time.monotonic() < end:
            status = request(gateway.url + "/api/x", token=token)[0]
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200, gateway.log()
    finally:
        gateway.stop()


def test_unreachable_jwks_rejects_every_token(keys, workdir):
    gateway, _jwks_file = _gateway_with_jwks(keys, workdir, "unreachable", 3600,
                                             jwks_source=os.path.join(workdir, "does-not-exist.json"))
    try:
        token = sign(keys.ec, "ES256", "k-ec", claims())
        assert request(gateway.url + "/api/x", token=token) == (401, envoy_jwt.JWT_VERIFICATION_FAIL)
        assert request(gateway.url + "/api/x") == (403, RBAC)
        assert "JWKS fetch failed" in gateway.log()
    finally:
        gateway.stop()


def test_stops_by_itself_after_max_seconds(workdir):
    apirule = os.path.join(workdir, "apirule.yaml")
    with open(apirule, "w") as handle:
        handle.write(APIRULE)
    gateway = Process(["gateway", "--apirule", apirule, "--max-seconds", "2",
                       "--jwks-map", "%s=%s" % (ISS, os.path.join(workdir, "missing.json"))], workdir, "bounded")
    try:
        assert gateway.proc.wait(60) == 0
        assert not os.path.exists(gateway.port_file) and not os.path.exists(gateway.pid_file)
    finally:
        gateway.stop()


def test_stop_command(workdir):
    apirule = os.path.join(workdir, "apirule.yaml")
    with open(apirule, "w") as handle:
        handle.write(APIRULE)
    gateway = Process(["gateway", "--apirule", apirule], workdir, "stoppable")
    try:
        done = subprocess.run([python(), "-m", "tools.kyma_standin", "stop", "--pid-file", gateway.pid_file],
                              cwd=REPO, stdout=subprocess.PIPE, timeout=60, check=False)
        assert done.returncode == 0 and json.loads(done.stdout)["stopped"] is True
        assert gateway.proc.wait(30) == 0
        again = subprocess.run([python(), "-m", "tools.kyma_standin", "stop", "--pid-file", gateway.pid_file],
                               cwd=REPO, stdout=subprocess.PIPE, timeout=60, check=False)
        assert again.returncode == 0 and json.loads(again.stdout)["stopped"] is False
    finally:
        gateway.stop()


def test_stop_refuses_foreign_pid(workdir):
    pid_file = os.path.join(workdir, "foreign.pid")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with open(pid_file, "w") as handle:
            handle.write("%d\n" % sleeper.pid)
        done = subprocess.run([python(), "-m", "tools.kyma_standin", "stop", "--pid-file", pid_file],
                              cwd=REPO, stdout=subprocess.PIPE, timeout=60, check=False)
        assert done.returncode == 1 and "not a kyma_standin process" in json.loads(done.stdout)["reason"]
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize("argv, message", [
    (["gateway", "--apirule", "/nonexistent/apirule.yaml"], "cannot read"),
    (["gateway", "--apirule", "APIRULE", "--jwks-map", "no-equals-sign"], "must look like"),
])
def test_bad_input_is_a_clear_error(argv, message, workdir):
    apirule = os.path.join(workdir, "apirule.yaml")
    with open(apirule, "w") as handle:
        handle.write(APIRULE)
    argv = [apirule if arg == "APIRULE" else arg for arg in argv]
    done = subprocess.run([python(), "-m", "tools.kyma_standin"] + argv + ["--max-seconds", "5"], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    assert done.returncode == 2
    assert message in done.stderr.decode("utf-8")


@pytest.mark.parametrize("value", ["0", "86401", "-1"])
def test_max_seconds_is_bounded(value):
    done = subprocess.run([python(), "-m", "tools.kyma_standin", "gateway", "--apirule", "x", "--max-seconds", value],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, check=False)
    assert done.returncode == 2 and b"--max-seconds" in done.stderr


# --------------------------------------------------------------------------------------
# direct checks of the parts
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("template, path, matches", [
    ("/*", "/", True), ("/*", "/a/b/c", True),
    ("/api/{**}", "/api/", True), ("/api/{**}", "/api/a/b", True), ("/api/{**}", "/api", False),
    ("/api/{*}", "/api/a", True), ("/api/{*}", "/api/a/b", False), ("/api/{*}", "/api/", False),
    ("/a/{*}/c/{**}", "/a/b/c/d/e", True), ("/a/{*}/c/{**}", "/a/b/x/d", False),
    ("/exact", "/exact", True), ("/exact", "/exactly", False), ("/a.b", "/aXb", False),
])
def test_path_templates(template, path, matches):
    assert bool(path_template_regex(template).match(path)) is matches


@pytest.mark.parametrize("spec, message", [
    ({"path": "/x", "methods": ["GET"]}, "exactly one of"),
    ({"path": "/x", "methods": ["get"], "noAuth": True}, "upper case"),
    ({"path": "/x/{**}/y", "methods": ["GET"], "noAuth": True}, "only at the end"),
    ({"path": "/x", "methods": ["GET"], "jwt": {"authentications": [{"issuer": "a"}]}}, "issuer and jwksUri"),
])
def test_apirule_problems_are_reported(spec, message):
    doc = {"apiVersion": "gateway.kyma-project.io/v2", "kind": "APIRule", "metadata": {"name": "x"},
           "spec": {"hosts": ["x"], "rules": [spec]}}
    with pytest.raises(ApiRuleError, match=message):
        ApiRule(doc)


def test_v1beta1_is_refused():
    with pytest.raises(ApiRuleError, match="apiVersion"):
        ApiRule({"apiVersion": "gateway.kyma-project.io/v1beta1", "kind": "APIRule", "spec": {"rules": []}})


def test_clock_skew_boundaries():
    parsed = envoy_jwt.Jwt()
    parsed.exp, parsed.nbf = 1000, 500
    assert envoy_jwt.verify_time(parsed, 1060) == envoy_jwt.OK
    assert envoy_jwt.verify_time(parsed, 1061) == envoy_jwt.JWT_EXPIRED
    assert envoy_jwt.verify_time(parsed, 440) == envoy_jwt.OK
    assert envoy_jwt.verify_time(parsed, 439) == envoy_jwt.JWT_NOT_YET_VALID


def test_invalid_jwks_members_are_skipped(keys):
    good = jwk_of(keys.ec, "k-ec", "ES256")
    parsed = envoy_jwt.parse_jwks(json.dumps({"keys": [
        {"kty": "RSA", "kid": "bad", "n": "AQAB"},
        dict(good, alg="RS256"),
        {"kty": "oct"},
        good,
    ]}))
    assert parsed.status == envoy_jwt.OK and parsed.kids == ["k-ec"] and len(parsed.problems) == 3
    assert envoy_jwt.parse_jwks('{"keys": []}').status == envoy_jwt.JWKS_NO_VALID_KEYS
    assert envoy_jwt.parse_jwks("[]").status == "Jwks is an invalid JSON"


def test_decide_without_http(keys):
    """Gateway.decide is what the HTTP handler calls; check it directly once."""
    from tools.kyma_standin.apirule import ApiRule as Rule  # pylint: disable=import-outside-toplevel
    from tools.kyma_standin.gateway import Gateway  # pylint: disable=import-outside-toplevel
    import yaml  # pylint: disable=import-outside-toplevel

    class Store:
        def get(self, issuer):
            return envoy_jwt.parse_jwks(json.dumps(keys.jwks())) if issuer in (ISS, ISS2) else None

    gateway = Gateway(Rule(yaml.safe_load(APIRULE)), Store())
    headers = email.message.Message()
    headers["Authorization"] = "Bearer " + sign(keys.ec, "ES256", "k-ec", claims())
    decision = gateway.decide("GET", "/api/x?y=1", headers)
    assert decision.status == 200 and decision.rule.path == "/api/{**}"
    assert gateway.decide("GET", "/api/x", email.message.Message()).status == 403
