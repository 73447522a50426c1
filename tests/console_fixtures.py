"""A four-hop chain for the console's tests: alice's request through web, agent and tool to
data, each hop exchanged at the token endpoint (over a Flask test client or real HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sts.runtime import Runtime
from sts.services import issuers, nhis, rules
from sts.store.admin import admin_store
from tests.conftest import Registered
from tests.exchange_fixtures import ACCESS_TOKEN, EXCHANGE, PersonIdp
from tests.helpers import claims_of

#: (actor, audience or None for itself, scope). Hop 1: web takes a delegated credential for
#: itself from alice's sign-in token; then web → agent → tool → data.
HOPS: list[tuple[str, str | None, str | None]] = [
    ("web", None, "orders:read orders:write"),
    ("web", "agent", "orders:read orders:write"),
    ("agent", "tool", "orders:read"),
    ("tool", "data", "orders:read"),
]
ROLES = [("web", "service"), ("agent", "agent"), ("tool", "workload"), ("data", "service")]

#: POST /token as ``who`` with form ``data``: (status, JSON body).
TokenCall = Callable[[Registered, dict[str, str]], tuple[int, dict[str, Any]]]


@dataclass
class FourHops:
    idp: PersonIdp
    nhis: dict[str, Registered]
    admin: Registered
    auditor: Registered


def register_four_hops(runtime: Runtime, now: int) -> FourHops:
    """The registry: four NHIs, alice's identity provider, the rules for each hop, an
    administrator (every admin scope) and an auditor (``sts:audit`` only)."""
    idp = PersonIdp()
    found: dict[str, Registered] = {}
    with admin_store(runtime.engine) as store:
        for name, kind in ROLES:
            view, secret = nhis.create_nhi(
                store, runtime.hasher, name=name, kind=kind, now=now, admin="test"
            )
            found[name] = Registered(view.client_id, secret, view.sub)
        issuers.add_issuer(store, issuer=idp.issuer, jwks=idp.keys.jwks, audiences=["web"],
                           algorithms=["ES256"], scope_mode="cap", now=now, admin="test")
        rules.create_rule(store, actor="web", targets=["web", "agent"],
                          scope="orders:read orders:write", subject=f"issuer:{idp.issuer}",
                          now=now, admin="test")
        rules.create_rule(store, actor="agent", targets=["tool"], scope="orders:read",
                          upstream="web", now=now, admin="test")
        rules.create_rule(store, actor="tool", targets=["data"], scope="orders:read",
                          upstream="agent", now=now, admin="test")
        view, secret = nhis.bootstrap_admin(store, runtime.hasher, name="ops", now=now,
                                            admin="test")
        admin = Registered(view.client_id, secret, view.sub)
        view, secret = nhis.create_nhi(store, runtime.hasher, name="auditor", kind="service",
                                       scope="sts:audit", now=now, admin="test")
        auditor = Registered(view.client_id, secret, view.sub)
    return FourHops(idp, found, admin, auditor)


def run_four_hops(
    call: TokenCall, fixture: FourHops, now: int, *, denied: bool = False
) -> tuple[str, list[str]]:
    """Exchange alice's token hop by hop; the transaction id and each hop's jti. With
    ``denied``, tool also tries to take its token back to web, which no rule allows."""
    token = fixture.idp.token("alice", "web", now, scope="orders:read orders:write profile")
    jtis: list[str] = []
    for actor, audience, scope in HOPS:
        data = {"grant_type": EXCHANGE, "subject_token": token,
                "subject_token_type": ACCESS_TOKEN}
        if audience:
            data["audience"] = audience
        if scope:
            data["scope"] = scope
        if denied and actor == "tool":
            status, body = call(fixture.nhis[actor], {**data, "audience": "web"})
            assert (status, body["error"]) == (400, "invalid_target"), body
        status, body = call(fixture.nhis[actor], data)
        assert status == 200, body
        token = body["access_token"]
        jtis.append(claims_of(token)["jti"])
    return claims_of(token)["txn"], jtis
