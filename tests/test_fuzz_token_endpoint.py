"""Fuzzing the token endpoint (DESIGN §5, §6): its parsing and the JWT validation path.

Whatever arrives (arbitrary bytes, random form fields and header values, methods and content
types, repeated parameters, real tokens with bits flipped, forged headers, hostile claims under
a valid signature, nested ``act`` of random depth, huge claims, segments that are not UTF-8),
the answer is never a 5xx: it is an OAuth error JSON whose ``error_description`` is a fixed
ASCII text written in the source (never an echo of the input), and no token is issued: no
``access_token`` in the body, no new lineage row. Where a request may legitimately succeed
(a mutation that leaves the signed token unchanged, a trusted issuer's valid claims), the
success must be recorded like any other: its lineage row and its ``allowed`` audit event.

The number of examples per property comes from ``STS_FUZZ_EXAMPLES`` (small by default so
the suite stays fast); a long run on demand:
``STS_FUZZ_EXAMPLES=20000 pytest tests/test_fuzz_token_endpoint.py``.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from jwt.utils import base64url_decode, base64url_encode
from sqlalchemy import func, select
from werkzeug.http import HTTP_STATUS_CODES

from sts.core.domain import TOKEN_EXCHANGE
from sts.services import issuers, rules
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, IssuedToken
from tests.conftest import ISSUER
from tests.exchange_fixtures import (
    ACCESS_TOKEN,
    EXCHANGE,
    JWT_TYPE,
    PersonIdp,
    client_credentials,
    exchange,
)
from tests.helpers import FORM, KeyPair, basic, claims_of, header_of

EXAMPLES = int(os.environ.get("STS_FUZZ_EXAMPLES", "50"))
FUZZ = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
ROOT = Path(__file__).resolve().parent.parent
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: DESIGN §6: the codes the token endpoint answers a bad request with, and their status.
STATUS = {
    "invalid_request": 400,
    "invalid_client": 401,
    "unauthorized_client": 400,
    "invalid_target": 400,
    "invalid_scope": 400,
    "unsupported_grant_type": 400,
}
MISSING_TOKEN = {"error": "invalid_request", "error_description": "Missing token."}
TOO_LARGE = {"error": "invalid_request", "error_description": "Request too large."}
METHODS = ["POST", "GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND"]
ROUTED = {"POST", "GET", "PUT", "DELETE", "PATCH"}


# -- the oracle ------------------------------------------------------------------------------


@cache
def _source_texts() -> tuple[frozenset[str], tuple[re.Pattern[str], ...]]:
    """Every string literal of ``sts/`` and every f-string as a pattern whose holes take a
    short lowercase word (``The {role} token is invalid.``), plus werkzeug's status names."""
    literals: set[str] = set(HTTP_STATUS_CODES.values())
    patterns: list[re.Pattern[str]] = []
    for path in (ROOT / "sts").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                literals.add(node.value)
            elif isinstance(node, ast.JoinedStr):
                parts = [
                    re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z_]{1,24}"
                    for v in node.values
                ]
                patterns.append(re.compile("".join(parts)))
    return frozenset(literals), tuple(patterns)


def is_fixed_text(text: str) -> bool:
    literals, patterns = _source_texts()
    return text in literals or any(p.fullmatch(text) for p in patterns)


def issued_count(runtime: Any) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(IssuedToken)).scalar_one())


def assert_refused(resp: Any, method: str = "POST") -> None:
    """DESIGN §6: a 4xx OAuth error JSON with a fixed ASCII description; never a token."""
    assert resp.status_code < 500, resp.data[:300]
    assert b"access_token" not in resp.data
    if method in ("HEAD", "OPTIONS"):  # HTTP itself: no body to speak of
        assert resp.status_code in (200, 400, 405) and resp.data in (b"",)
        return
    assert resp.mimetype == "application/json", resp.data[:300]
    body = json.loads(resp.data)
    assert isinstance(body, dict) and set(body) == {"error", "error_description"}, body
    error, description = body["error"], body["error_description"]
    assert error in STATUS, body
    if method in ROUTED:
        assert resp.status_code == STATUS[error], body
    else:
        assert (resp.status_code, error) == (405, "invalid_request"), body
    assert description.isascii() and description.isprintable(), body
    assert 0 < len(description) <= 100 and is_fixed_text(description), body


def assert_recorded(runtime: Any, resp: Any) -> None:
    """A success: the token it carries has its lineage row and its allowed audit event."""
    assert resp.status_code == 200, resp.json
    jti = claims_of(resp.json["access_token"])["jti"]
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(IssuedToken.jti).where(IssuedToken.jti == jti)).all()
        events = conn.execute(
            select(AuditEvent.decision).where(AuditEvent.jti == jti)
        ).scalars().all()
    assert len(rows) == 1 and list(events) == ["allowed"], (rows, events)


# -- the registry the fuzzer attacks ---------------------------------------------------------


@dataclass
class Target:
    """Real material to start from, and the NHIs that use it."""

    nhis: dict[str, Any]
    idp: PersonIdp
    signer: KeyPair
    root: str  # web's client_credentials token (aud: the STS)
    hop: str  # web's token exchanged for agent (aud: agent)
    person: str  # a person's token from the trusted issuer (aud: web)


@pytest.fixture
def target(client, runtime, make_nhi, clock) -> Target:
    """``web`` → ``agent`` → ``tool`` may run; ``fuzzer`` may only try token exchange (no rule
    names it, so nothing it sends can succeed); ``signer`` authenticates by private_key_jwt."""
    idp, signer = PersonIdp(), KeyPair("signer-1")
    nhis = {
        "web": make_nhi("web", "service", scope="orders:read orders:write"),
        "agent": make_nhi("agent", "agent"),
        "tool": make_nhi("tool", "workload"),
        "fuzzer": make_nhi("fuzzer", "service", grants=[TOKEN_EXCHANGE]),
        "signer": make_nhi("signer", "service", grants=[TOKEN_EXCHANGE], jwks=signer.jwks),
    }
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(store, issuer=idp.issuer, jwks=idp.keys.jwks, audiences=["web"],
                            algorithms=["ES256"], scope_mode="cap", now=clock.now(), admin="t")
        rules.create_rule(store, actor="web", targets=["agent"], scope="orders:read",
                          now=clock.now(), admin="t")
        rules.create_rule(store, actor="agent", targets=["tool"], scope="orders:read",
                          now=clock.now(), admin="t")
    root = client_credentials(client, nhis["web"], scope="orders:read").json["access_token"]
    hop = exchange(client, nhis["web"], root, audience="agent").json["access_token"]
    # The unmutated material works: the properties below are not vacuous.
    assert exchange(client, nhis["agent"], hop, audience="tool").status_code == 200
    person = idp.token("alice", "web", clock.now(), scope="orders:read")
    return Target(nhis, idp, signer, root, hop, person)


# -- strategies ------------------------------------------------------------------------------

PARAMS = [
    "grant_type", "subject_token", "subject_token_type", "actor_token", "actor_token_type",
    "requested_token_type", "audience", "resource", "scope", "client_id", "client_secret",
    "client_assertion", "client_assertion_type", "token", "token_type_hint", "code",
]
VALUES = [
    "", "client_credentials", EXCHANGE, ACCESS_TOKEN, JWT_TYPE, ASSERTION_TYPE,
    "urn:ietf:params:oauth:token-type:id_token", "urn:ietf:params:oauth:token-type:saml2",
    "password", "refresh_token", "orders:read", "orders:read orders:write", "web", "agent",
    "tool", "fuzzer", "https://tool.example.test", ISSUER, "none", "null", "[]", "{}", "%00",
]
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60)
any_text = st.text(max_size=80)  # any code point but lone surrogates, NUL included
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), any_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=12,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def encode_segment(value: Any) -> str:
    return b64(json.dumps(value, allow_nan=False).encode())


def unsigned(header: Any, payload: Any, signature: str = "") -> str:
    return f"{encode_segment(header)}.{encode_segment(payload)}.{signature}"


@st.composite
def nested_act(draw: st.DrawFn) -> Any:
    """An ``act`` claim of random depth, sometimes beyond every limit, sometimes malformed."""
    depth = draw(st.one_of(st.integers(0, 40), st.integers(100, 900)))
    member = st.one_of(st.sampled_from(["web", "agent", "tool", "alice"]), any_text, json_scalars)
    act: Any = None
    for _ in range(depth):
        level: dict[str, Any] = {"sub": draw(member)}
        if draw(st.booleans()):
            level["iss"] = draw(st.one_of(st.just(ISSUER), member))
        if act is not None:
            level["act"] = act
        act = level
    if draw(st.integers(0, 9)) == 0:
        act = draw(json_values)  # not an object at all
    return act


@st.composite
def hostile_claims(draw: st.DrawFn, now: int, base: dict[str, Any]) -> dict[str, Any]:
    """Claims starting from a real token's, each possibly replaced by something hostile."""
    claims = dict(base)
    times = st.one_of(st.integers(now - 10**6, now + 10**6), json_values,
                      st.sampled_from([0, -1, 2**63, 2**70, 1.5, "1", True]))
    for name, strategy in (
        ("sub", st.one_of(any_text, json_values)),
        ("aud", st.one_of(st.sampled_from(["agent", ["agent"], ISSUER, []]), json_values)),
        ("exp", times), ("nbf", times), ("iat", times),
        ("jti", st.one_of(any_text, json_values, st.text(min_size=3000, max_size=5000))),
        ("txn", st.one_of(any_text, json_values)),
        ("scope", st.one_of(st.just("orders:read"), any_text, json_values)),
        ("may_act", json_values),
        ("client_id", any_text),
    ):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            claims[name] = draw(strategy)
        elif choice == 1:
            claims.pop(name, None)
    if draw(st.booleans()):
        claims["act"] = draw(nested_act())
    if draw(st.integers(0, 4)) == 0:
        claims["padding"] = "x" * draw(st.integers(1000, 20000))  # huge claims
    claims.update(draw(st.dictionaries(any_text, json_values, max_size=3)))
    return claims


ALGS = ["none", "None", "NONE", "HS256", "HS512", "RS256", "PS256", "ES256", "ES384", "ES512",
        "EdDSA", "ES256K", "", "dir", "A128KW"]


@st.composite
def forged_header(draw: st.DrawFn, real: dict[str, Any]) -> dict[str, Any]:
    header = dict(real)
    header["alg"] = draw(st.one_of(st.sampled_from(ALGS), any_text, json_scalars))
    header["kid"] = draw(st.one_of(
        st.just(real.get("kid")), any_text, json_scalars,
        st.sampled_from(["../../etc/passwd", "signer-1", "idp-1", "k" * 5000]),
    ))
    header["typ"] = draw(st.one_of(st.sampled_from(["at+jwt", "application/at+jwt", "JWT"]),
                                   any_text, json_scalars))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(["crit", "jku", "x5u", "jwk", "b64", "zip", "cty", "x5c"]))
        header[name] = draw(json_values)
    if draw(st.booleans()):
        header.pop(draw(st.sampled_from(["alg", "kid", "typ"])), None)
    return header


@st.composite
def mutated(draw: st.DrawFn, token: str, attacker: ec.EllipticCurvePrivateKey) -> str:
    """A real token, damaged or forged in one of many ways."""
    header, payload, signature = token.split(".")
    real_header, real_claims = header_of(token), claims_of(token)
    how = draw(st.sampled_from([
        "bitflip", "bitflips", "replace", "insert", "delete", "truncate", "segments",
        "header", "payload", "resign", "alg-none", "hmac-confusion", "not-utf8", "embedded-jwk",
    ]))
    if how == "bitflip" or how == "bitflips":
        chars = list(token)
        for _ in range(1 if how == "bitflip" else draw(st.integers(2, 8))):
            i = draw(st.integers(0, len(chars) - 1))
            chars[i] = chr(ord(chars[i]) ^ (1 << draw(st.integers(0, 7))))
        return "".join(chars)
    if how == "replace":
        i = draw(st.integers(0, len(token) - 1))
        # Lone surrogates cannot travel in a UTF-8 body (the client could not even send them).
        return token[:i] + draw(st.characters(exclude_categories=["Cs"])) + token[i + 1:]
    if how == "insert":
        i = draw(st.integers(0, len(token)))
        return token[:i] + draw(any_text.filter(bool)) + token[i:]
    if how == "delete":
        i = draw(st.integers(0, len(token) - 1))
        return token[:i] + token[i + draw(st.integers(1, 40)):]
    if how == "truncate":
        return token[: draw(st.integers(0, len(token) - 1))]
    if how == "segments":
        parts = draw(st.lists(st.sampled_from([header, payload, signature, "", "e30", "."]),
                              min_size=0, max_size=6))
        return ".".join(parts)
    if how == "header":  # the signature no longer covers the header
        return f"{encode_segment(draw(forged_header(real_header)))}.{payload}.{signature}"
    if how == "payload":
        forged = draw(hostile_claims(int(real_claims["iat"]), real_claims))
        return f"{header}.{encode_segment(forged)}.{signature}"
    if how == "resign":  # a key of the attacker's own, under our kid
        forged = draw(hostile_claims(int(real_claims["iat"]), real_claims))
        return jwt.encode(forged, attacker, algorithm="ES256", headers=real_header)
    if how == "alg-none":
        return unsigned({**real_header, "alg": draw(st.sampled_from(["none", "None"]))},
                        real_claims, draw(st.sampled_from(["", signature])))
    if how == "hmac-confusion":  # RFC 8725 §2.1: the public key used as an HMAC secret
        public = attacker.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        signing_input = f"{encode_segment({**real_header, 'alg': 'HS256'})}.{payload}"
        import hmac
        from hashlib import sha256

        return f"{signing_input}.{b64(hmac.new(public, signing_input.encode(), sha256).digest())}"
    if how == "not-utf8":
        junk = draw(st.binary(min_size=1, max_size=200))
        which = draw(st.integers(0, 2))
        parts = [header, payload, signature]
        parts[which] = b64(junk)
        return ".".join(parts)
    # embedded-jwk: the token names its own (attacker's) verification key
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(attacker.public_key()))
    return jwt.encode(real_claims, attacker, algorithm="ES256",
                      headers={**real_header, "jwk": jwk})


_BASE64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _signature_bytes(segment: str) -> bytes | None:
    """The signature as a strict base64url decoder reads it (RFC 7515 §2: canonical, no
    stray characters; up to two trailing ``=`` tolerated), or ``None`` where it must refuse."""
    stripped = segment.rstrip("=")
    padding = len(segment) - len(stripped)
    if padding > 2 or (padding and len(segment) % 4) or len(stripped) % 4 == 1:
        return None
    if not set(stripped) <= _BASE64URL:
        return None
    decoded = base64url_decode(stripped.encode())
    return decoded if base64url_encode(decoded).decode() == stripped else None


def same_signed_token(candidate: str, original: str) -> bool:
    """True when ``candidate`` is ``original`` but for ``=`` padding on its signature: the
    same signature over the same signed bytes, hence the same token."""
    parts, real = candidate.split("."), original.split(".")
    if len(parts) != 3 or parts[:2] != real[:2]:
        return False
    decoded = _signature_bytes(parts[2])
    return decoded is not None and decoded == _signature_bytes(real[2])


auth_headers = st.one_of(
    st.just({}),
    st.builds(lambda v: {"Authorization": v}, header_text),
    st.builds(lambda raw: {"Authorization": "Basic " + base64.b64encode(raw).decode()},
              st.binary(max_size=80)),
    st.builds(lambda u, p: basic(u, p), any_text.filter(lambda s: ":" not in s), any_text),
    st.builds(lambda v: {"Authorization": "Bearer " + v}, header_text),
)


# -- properties ------------------------------------------------------------------------------


@FUZZ
@given(
    body=st.binary(max_size=3000),
    content_type=st.one_of(
        st.sampled_from([FORM, FORM + "; charset=utf-8", FORM + "; charset=latin-1",
                         "application/json", "text/plain", "multipart/form-data; boundary=x",
                         "application/x-www-form-urlencoded;;", ""]),
        header_text,
    ),
    method=st.sampled_from(METHODS),
    headers=auth_headers,
    path=st.sampled_from(["/token", "/token", "/introspect", "/revoke"]),
)
def test_token_endpoint_when_arbitrary_bytes_then_oauth_error_and_nothing_issued(
    client, runtime, target, body, content_type, method, headers, path
):
    """Also at the endpoints that share the token endpoint's parsing (RFC 7662, RFC 7009)."""
    before = issued_count(runtime)
    resp = client.open(path, method=method, data=body,
                       headers={**headers, "Content-Type": content_type})
    assert_refused(resp, method)
    assert issued_count(runtime) == before


@FUZZ
@given(data=st.data())
def test_token_endpoint_when_random_form_fields_then_oauth_error_and_nothing_issued(
    client, runtime, target, data
):
    """Random names and values, repeated parameters, real tokens in random places, the
    fuzzer's real secret among them: the request goes deep, but no rule names ``fuzzer`` and
    it may not use client_credentials, so nothing can be issued."""
    fuzzer = target.nhis["fuzzer"]
    tokens = [target.root, target.hop, target.person, fuzzer.secret]
    names = st.one_of(st.sampled_from(PARAMS), any_text)
    values = st.one_of(st.sampled_from(VALUES + tokens), any_text,
                       st.text(max_size=3000), mutated(target.hop, ec.generate_private_key(
                           ec.SECP256R1())))
    pairs = data.draw(st.lists(st.tuples(names, values), max_size=24))
    if data.draw(st.booleans()):  # most of the time, a request that gets past the grant
        pairs += [("grant_type", EXCHANGE), ("subject_token_type", ACCESS_TOKEN)]
    headers = data.draw(st.one_of(auth_headers, st.just(basic("fuzzer", fuzzer.secret))))
    if data.draw(st.booleans()):
        headers = {**headers, "X-Request-Id": data.draw(header_text)}
    body = urlencode(
        [(n.encode("utf-8", "surrogatepass"), v.encode("utf-8", "surrogatepass"))
         for n, v in data.draw(st.permutations(pairs))]
    ).encode()
    if data.draw(st.integers(0, 5)) == 0:
        body += b"&" + data.draw(st.binary(max_size=40))  # broken percent-encoding, raw bytes
    before = issued_count(runtime)
    resp = client.post("/token", data=body, headers=headers, content_type=FORM)
    assert_refused(resp)
    assert issued_count(runtime) == before


@FUZZ
@given(data=st.data())
def test_exchange_when_subject_token_mutated_then_refused_unless_same_signed_token(
    client, runtime, target, data
):
    """The audience of the real token (``agent``) exchanges a damaged or forged copy."""
    token = data.draw(mutated(target.hop, ec.generate_private_key(ec.SECP256R1())))
    before = issued_count(runtime)
    resp = exchange(client, target.nhis["agent"], token, audience="tool")
    if same_signed_token(token, target.hop):
        assert_recorded(runtime, resp)
        return
    assert_refused(resp)
    assert issued_count(runtime) == before


@FUZZ
@given(data=st.data())
def test_exchange_when_actor_token_mutated_then_refused(client, runtime, target, data):
    actor = client_credentials(client, target.nhis["agent"]).json["access_token"]
    token = data.draw(mutated(actor, ec.generate_private_key(ec.SECP256R1())))
    before = issued_count(runtime)
    resp = exchange(client, target.nhis["agent"], target.hop, audience="tool",
                    actor_token=token, actor_token_type=ACCESS_TOKEN)
    if same_signed_token(token, actor):
        assert_recorded(runtime, resp)
        return
    assert_refused(resp)
    assert issued_count(runtime) == before


@FUZZ
@given(data=st.data())
def test_exchange_when_our_key_signs_hostile_claims_then_refused(client, runtime, target,
                                                                  data, clock):
    """Past the signature: hostile claims, nested ``act`` of random depth, huge claims, under
    a valid signature of this STS. No lineage row matches them, so nothing is issued."""
    key = runtime.keys.ring.signing_key(clock.now())
    claims = data.draw(hostile_claims(clock.now(), claims_of(target.hop)))
    if claims.get("jti") == claims_of(target.hop)["jti"]:
        claims["txn"] = "not-the-transaction"  # never the real token again
    header = data.draw(st.one_of(st.just(header_of(target.hop)),
                                 forged_header(header_of(target.hop))))
    try:
        token = jwt.encode(claims, key.private_key, algorithm=key.alg, headers=header)
    except Exception:  # a header PyJWT itself refuses to sign: sign the claims alone
        token = jwt.encode(claims, key.private_key, algorithm=key.alg,
                           headers=header_of(target.hop))
    before = issued_count(runtime)
    resp = exchange(client, target.nhis["agent"], token, audience="tool")
    assert_refused(resp)
    assert issued_count(runtime) == before


@FUZZ
@given(data=st.data())
def test_exchange_when_trusted_issuer_signs_random_claims_then_refused_or_recorded(
    client, runtime, target, data, clock
):
    """A trusted issuer's signature over random claims: most are refused; any that pass are
    a person's valid token, and the token minted from it is recorded before it leaves."""
    base = claims_of(target.person)
    claims = data.draw(hostile_claims(clock.now(), base))
    # A NUL in sub is its own known failure: test_exchange_when_person_sub_has_nul_then_...
    if isinstance(claims.get("sub"), str):
        claims["sub"] = claims["sub"].replace("\x00", "")
    token = jwt.encode(claims, target.idp.keys.private, algorithm="ES256",
                       headers={"kid": target.idp.keys.kid})
    before = issued_count(runtime)
    resp = exchange(client, target.nhis["web"], token, audience="agent")
    if resp.status_code == 200:
        assert_recorded(runtime, resp)
        assert claims_of(resp.json["access_token"])["sub"] == claims["sub"]
        return
    assert_refused(resp)
    assert issued_count(runtime) == before


@FUZZ
@given(data=st.data())
def test_private_key_jwt_when_assertion_mutated_then_invalid_client_or_refused(
    client, runtime, target, data, clock
):
    """Client assertions (RFC 7523) damaged, forged or with hostile claims under the client's
    real key. ``signer`` may not use client_credentials, so even a valid one issues nothing."""
    signer = target.signer
    claims = data.draw(hostile_claims(clock.now(), {
        "iss": "signer", "sub": "signer", "aud": f"{ISSUER}/token", "iat": clock.now(),
        "exp": clock.now() + 60, "jti": secrets.token_hex(8),
    }))
    assertion = data.draw(st.one_of(
        st.just(signer.assertion("signer", f"{ISSUER}/token", clock.now())),
        mutated(signer.assertion("signer", f"{ISSUER}/token", clock.now()),
                ec.generate_private_key(ec.SECP256R1())),
        st.just(jwt.encode(claims, signer.private, algorithm="ES256",
                           headers={"kid": signer.kid})),
    ))
    form = {"grant_type": data.draw(st.sampled_from(["client_credentials", EXCHANGE])),
            "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    before = issued_count(runtime)
    resp = client.post("/token", data=form, content_type=FORM)
    assert_refused(resp)
    assert issued_count(runtime) == before


@FUZZ
@given(data=st.data())
def test_introspection_when_token_mutated_then_inactive(client, runtime, target, data):
    """The same validation path behind RFC 7662: a damaged token is simply not active."""
    token = data.draw(mutated(target.hop, ec.generate_private_key(ec.SECP256R1())))
    agent = target.nhis["agent"]
    resp = client.post("/introspect", data={"token": token}, content_type=FORM,
                       headers=basic(agent.client_id, agent.secret))
    if not token:  # RFC 7662 §2.1: the token parameter is REQUIRED
        assert (resp.status_code, resp.json) == (400, MISSING_TOKEN)
        return
    # The body exactly as the test client encodes it (werkzeug's ``_urlencode``).
    if len(urlencode({"token": token}, safe="!$'()*,/:;?@")) > runtime.settings.max_request_bytes:
        # A mutation can outgrow the body limit (deep ``act``, escaped padding): refused whole.
        assert (resp.status_code, resp.json) == (400, TOO_LARGE)
        return
    assert resp.status_code == 200, resp.data[:300]
    if same_signed_token(token, target.hop):
        assert resp.json["active"] is True
    else:
        assert resp.json == {"active": False}


def test_exchange_when_person_sub_has_nul_then_refused_or_recorded(client, runtime, target,
                                                                    clock):
    """A trusted issuer vouching for a ``sub`` with a NUL character (which PostgreSQL text
    cannot hold): whatever the answer, a token that leaves is one that was recorded."""
    token = target.idp.token("ali\x00ce", "web", clock.now(), scope="orders:read")
    before = issued_count(runtime)
    resp = exchange(client, target.nhis["web"], token, audience="agent")
    if resp.status_code == 200:
        assert_recorded(runtime, resp)
    else:
        assert_refused(resp)
        assert issued_count(runtime) == before
