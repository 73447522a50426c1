"""Input limits (DESIGN §5, §9): body size, parameter count, parameter length, token size and
``act`` depth are refused before any expensive work is done with the input.

"Before expensive work" is proven structurally, never by timing: the work that must not happen
is replaced by a tripwire that records being reached (and fails the request if it is). Limits
judged from the raw request (body, parameter count and length) are refused before the request's
transaction opens: no database at all. Token size is judged from the form, before the client is
looked up or its secret hashed, and ``act`` depth before the lineage is read; both are denials
of an exchange, so they leave their audit event (DESIGN §8) and nothing else.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from sts.core.chain import MAX_PARSE_DEPTH, Chain
from sts.core.secrets import SecretHasher
from sts.oauth.rfc6749.request import MAX_PARAMETER_LENGTH, SHORT_PARAMETERS
from sts.oauth.validation import TokenValidator
from sts.services import rules
from sts.store.admin import admin_store
from sts.store.models import AuditEvent, IssuedToken
from sts.store.sql import SqlStore
from tests.conftest import ISSUER
from tests.exchange_fixtures import ACCESS_TOKEN, client_credentials, exchange
from tests.helpers import FORM, KeyPair, basic, claims_of, header_of

BODY_TOO_LARGE = {"error": "invalid_request", "error_description": "Request too large."}
MALFORMED = {"error": "invalid_request", "error_description": "The body is malformed."}
PARAM_TOO_LARGE = {"error": "invalid_request", "error_description": "Parameter too large."}
SUBJECT_INVALID = {"error": "invalid_request", "error_description": "The subject token is invalid."}
TARGET_REFUSED = {
    "error": "invalid_target",
    "error_description": "The requested target is unknown or not allowed.",
}
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ENDPOINTS = ["/token", "/introspect", "/revoke"]


class Tripped(Exception):
    """Work that a refused request must never reach was reached."""


class Tripwires:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.reached: list[str] = []

    def on(self, owner: Any, *names: str) -> None:
        for name in names:
            label = f"{getattr(owner, '__name__', type(owner).__name__)}.{name}"

            def tripped(*_args: Any, _label: str = label, **_kwargs: Any) -> Any:
                self.reached.append(_label)
                raise Tripped(_label)

            self.monkeypatch.setattr(owner, name, tripped)

    def on_database(self, runtime: Any) -> None:
        """No transaction, no connection: the request must be refused without the database."""
        self.on(runtime.engine, "begin", "connect")

    def on_expensive_work(self) -> None:
        """Client lookup, secret hashing, token verification, lineage, rules, minting."""
        self.on(SqlStore, "client", "lineage", "rules_for", "record_issued", "trusted_issuer",
                "remember_assertion")
        self.on(SecretHasher, "match")
        self.on(TokenValidator, "validate")


@pytest.fixture
def wires(monkeypatch: pytest.MonkeyPatch) -> Tripwires:
    return Tripwires(monkeypatch)


def counts(runtime: Any) -> tuple[int, int]:
    """(audit events, issued tokens)."""
    with runtime.engine.connect() as conn:
        events = conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
        issued = conn.execute(select(func.count()).select_from(IssuedToken)).scalar_one()
    return int(events), int(issued)


def last_denial(runtime: Any) -> Any:
    with runtime.engine.connect() as conn:
        return conn.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()


def assert_error(resp: Any, status: int, body: dict[str, str], wires: Tripwires) -> None:
    assert wires.reached == [], f"refused too late: reached {wires.reached}"
    assert (resp.status_code, resp.json) == (status, body)


class CountingStream(io.BytesIO):
    """A request body that remembers how much of it the server read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def readline(self, size: int | None = -1) -> bytes:
        chunk = super().readline(size)
        self.consumed += len(chunk)
        return chunk


# -- body size ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_body_when_content_length_over_limit_then_refused_unread_without_database(
    client, runtime, settings, wires, path
):
    body = CountingStream(b"grant_type=client_credentials&" + b"x" * settings.max_request_bytes)
    wires.on_database(runtime)
    resp = client.post(path, input_stream=body, content_type=FORM,
                       content_length=settings.max_request_bytes + 1)
    assert_error(resp, 400, BODY_TOO_LARGE, wires)
    assert body.consumed == 0


def test_body_when_chunked_and_over_limit_then_read_no_further_than_limit_without_database(
    client, runtime, settings, wires
):
    body = CountingStream(b"grant_type=client_credentials&pad=" + b"x" * (
        10 * settings.max_request_bytes))
    wires.on_database(runtime)
    resp = client.post("/token", input_stream=body, content_type=FORM,
                       headers={"Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})
    assert_error(resp, 400, BODY_TOO_LARGE, wires)
    assert body.consumed <= settings.max_request_bytes + 1


# -- parameter count -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_parameters_when_more_than_64_then_refused_without_database(client, runtime, wires, path):
    body = "&".join(["grant_type=client_credentials", *(f"p{i}=v" for i in range(64))])
    wires.on_database(runtime)
    resp = client.post(path, data=body.encode(), content_type=FORM)
    assert_error(resp, 400, MALFORMED, wires)


def test_parameters_when_exactly_64_then_request_is_served(client, runtime, make_nhi):
    web = make_nhi("web")
    body = "&".join(["grant_type=client_credentials", *(f"p{i}=v" for i in range(63))])
    resp = client.post("/token", data=body.encode(), content_type=FORM,
                       headers=basic("web", web.secret))
    assert resp.status_code == 200, resp.json


# -- parameter length ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHORT_PARAMETERS))
@pytest.mark.parametrize("path", ENDPOINTS)
def test_parameter_when_longer_than_limit_then_refused_without_database(
    client, runtime, make_nhi, wires, name, path
):
    web = make_nhi("web")
    form = {"grant_type": "client_credentials", name: "a" * (MAX_PARAMETER_LENGTH + 1)}
    wires.on_database(runtime)
    resp = client.post(path, data=form, content_type=FORM, headers=basic("web", web.secret))
    assert_error(resp, 400, PARAM_TOO_LARGE, wires)


def test_parameter_when_at_limit_then_judged_by_the_pipeline(client, runtime, make_nhi):
    web = make_nhi("web")
    before = counts(runtime)
    resp = client_credentials(client, web, audience="a" * MAX_PARAMETER_LENGTH)
    assert (resp.status_code, resp.json) == (400, TARGET_REFUSED)
    assert counts(runtime) == (before[0] + 1, before[1])  # an audited denial


def test_parameter_when_unknown_and_long_then_ignored(client, make_nhi, settings):
    """RFC 6749 §3.2: unrecognized parameters are ignored (the body limit still bounds them)."""
    web = make_nhi("web")
    resp = client_credentials(client, web, claims="x" * (settings.max_request_bytes // 2))
    assert resp.status_code == 200, resp.json


# -- token size --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["subject", "actor"])
def test_token_when_larger_than_max_token_bytes_then_refused_before_authentication(
    client, runtime, make_nhi, settings, wires, role
):
    web = make_nhi("web")
    huge, small = "e" * (settings.max_token_bytes + 1), "e" * 10
    tokens = {"subject": (huge, None), "actor": (small, huge)}[role]
    before = counts(runtime)
    wires.on_expensive_work()
    resp = exchange(client, web, tokens[0], audience="agent", actor_token=tokens[1],
                    actor_token_type=ACCESS_TOKEN if tokens[1] else None)
    assert_error(resp, 400, PARAM_TOO_LARGE, wires)
    assert counts(runtime) == (before[0] + 1, before[1])
    event = last_denial(runtime)
    assert (event.reason, event.client_id) == (f"{role}_token too large", None)


def test_client_assertion_when_larger_than_max_token_bytes_then_refused_before_lookup(
    client, runtime, make_nhi, settings, wires, clock
):
    keys = KeyPair()
    make_nhi("signer", jwks=keys.jwks)
    assertion = keys.assertion("signer", f"{ISSUER}/token", clock.now(),
                               pad="x" * settings.max_token_bytes)
    before = counts(runtime)
    wires.on_expensive_work()
    resp = client.post("/token", content_type=FORM, data={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion})
    assert_error(resp, 400, PARAM_TOO_LARGE, wires)
    assert counts(runtime) == (before[0] + 1, before[1])
    assert last_denial(runtime).reason == "client_assertion too large"


def test_introspected_token_when_larger_than_max_token_bytes_then_inactive_unparsed(
    client, make_nhi, settings, wires
):
    web = make_nhi("web")
    for name in ("decode", "decode_complete"):
        wires.on(jwt, name)
    resp = client.post("/introspect", data={"token": "e" * (settings.max_token_bytes + 1)},
                       content_type=FORM, headers=basic("web", web.secret))
    assert wires.reached == []
    assert (resp.status_code, resp.json) == (200, {"active": False})


# -- act depth ---------------------------------------------------------------------------


@pytest.fixture
def signed_hop(client, runtime, make_nhi, clock) -> Callable[[Any], str]:
    """Sign the claims of a real web → agent token, with ``act`` replaced, by our own key."""
    web, _agent = make_nhi("web", scope="orders:read"), make_nhi("agent", "agent")
    make_nhi("tool", "workload")
    with admin_store(runtime.engine) as store:
        for actor, target in (("web", "agent"), ("agent", "tool")):
            rules.create_rule(store, actor=actor, targets=[target], scope="orders:read",
                              now=clock.now(), admin="t")
    root = client_credentials(client, web).json["access_token"]
    hop = exchange(client, web, root, audience="agent").json["access_token"]

    def sign(act: Any) -> str:
        key = runtime.keys.ring.signing_key(clock.now())
        claims = {**claims_of(hop), "act": act}
        return jwt.encode(claims, key.private_key, algorithm=key.alg, headers=header_of(hop))

    return sign


def nested(depth: int) -> dict[str, Any] | None:
    act: dict[str, Any] | None = None
    for i in range(depth):
        act = {"sub": f"actor-{i}", **({"act": act} if act else {})}
    return act


def test_act_when_deeper_than_parse_limit_then_refused_before_lineage_and_policy(
    client, runtime, make_nhi, wires, signed_hop
):
    token = signed_hop(nested(MAX_PARSE_DEPTH + 1))
    agent = make_nhi("agent2", "agent")
    before = counts(runtime)
    wires.on(SqlStore, "lineage", "rules_for", "record_issued")
    resp = exchange(client, agent, token, audience="tool")
    assert_error(resp, 400, SUBJECT_INVALID, wires)
    assert counts(runtime) == (before[0] + 1, before[1])
    assert last_denial(runtime).reason == "subject token: act nesting too deep"


def test_act_when_at_parse_limit_then_parsed_and_judged_by_lineage(
    client, runtime, make_nhi, signed_hop
):
    token = signed_hop(nested(MAX_PARSE_DEPTH))
    resp = exchange(client, make_nhi("agent2", "agent"), token, audience="tool")
    assert (resp.status_code, resp.json) == (400, SUBJECT_INVALID)
    assert last_denial(runtime).reason == "subject token: token does not match its lineage"


def test_act_when_deep_in_a_forged_token_then_refused_at_the_signature_unparsed(
    client, runtime, make_nhi, wires, signed_hop
):
    """A deep ``act`` the STS did not sign is never walked: the signature fails first."""
    real = signed_hop(None)
    attacker = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode({**claims_of(real), "act": nested(MAX_PARSE_DEPTH * 4)}, attacker,
                        algorithm="ES256", headers=header_of(real))
    wires.on(Chain, "from_act")
    wires.on(SqlStore, "lineage", "rules_for", "record_issued")
    resp = exchange(client, make_nhi("agent2", "agent"), forged, audience="tool")
    assert_error(resp, 400, SUBJECT_INVALID, wires)
    assert last_denial(runtime).reason == "subject token: signature verification failed"


def test_act_when_nested_past_the_json_recursion_limit_then_refused_as_not_a_jwt(
    client, runtime, make_nhi, settings, wires
):
    """Nesting deep enough to exhaust a recursive JSON parser, within the token size limit."""
    depth = (settings.max_token_bytes * 3 // 4 - 200) // len('{"act":}')
    payload = '{"act":' * depth + "1" + "}" * depth
    header = json.dumps({"alg": "ES256", "typ": "at+jwt", "kid": "k"}).encode()
    token = ".".join(jwt.utils.base64url_encode(p).decode()
                     for p in (header, payload.encode(), b"sig"))
    assert depth > 1000 and len(token) <= settings.max_token_bytes
    web = make_nhi("web")
    wires.on(TokenValidator, "_verify_own", "_verify_external")
    wires.on(SqlStore, "lineage", "rules_for", "record_issued")
    resp = exchange(client, web, token, audience="agent")
    assert_error(resp, 400, SUBJECT_INVALID, wires)
    assert last_denial(runtime).reason == "subject token: not a JWT"
