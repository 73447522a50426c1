"""A subject is (issuer, sub) (DESIGN §3): rules that name a subject by ``sub`` also name the
trusted issuer it comes from, or else only an NHI of this STS; and every token minted for a
trusted issuer's subject says which issuer in ``sub_id`` (RFC 9493 ``iss_sub``), hop after hop,
so that a person whose ``sub`` is an NHI's name never looks like that NHI downstream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from sts.services import issuers, rules
from sts.store.admin import admin_store
from tests.admin_api_helpers import admin, admin_nhi, invalid
from tests.conftest import Registered
from tests.exchange_fixtures import PersonIdp, client_credentials, exchange
from tests.helpers import FORM, basic, claims_of
from tests.test_namespace import sts

__all__ = ["admin", "admin_nhi", "sts"]  # fixtures

OTHER_IDP = "https://other-idp.example.test"
REQUEST_INVALID = {"error": "invalid_request", "error_description": "The request is invalid."}
SCOPE = "orders:read"


@dataclass
class Setup:
    client: Any
    runtime: Any
    clock: Any
    idp: PersonIdp
    other: PersonIdp
    nhis: dict[str, Registered]

    def rule(self, actor: str, target: str, **kwargs: Any) -> dict[str, Any]:
        with admin_store(self.runtime.engine) as store:
            return rules.create_rule(
                store, actor=actor, targets=[target], scope=SCOPE, now=self.clock.now(),
                admin="t", **kwargs,
            )  # fmt: skip

    def person(self, sub: str = "alice", idp: PersonIdp | None = None) -> str:
        return (idp or self.idp).token(sub, "web", self.clock.now(), scope=SCOPE)

    def send(self, actor: str, token: str, **params: Any) -> Any:
        return exchange(self.client, self.nhis[actor], token, **params)

    def hop(self, actor: str, token: str, audience: str) -> str:
        resp = self.send(actor, token, audience=audience)
        assert resp.status_code == 200, resp.json
        minted: str = resp.json["access_token"]
        return minted


@pytest.fixture
def setup(client, runtime, make_nhi, clock) -> Setup:
    made = {
        "web": make_nhi("web", scope=SCOPE),
        "agent": make_nhi("agent", "agent", scope=SCOPE),
        "tool": make_nhi("tool", "workload", scope=SCOPE),
        "batch": make_nhi("batch", "workload", scope=SCOPE),
    }
    idp, other = PersonIdp(), PersonIdp(OTHER_IDP)
    with admin_store(runtime.engine) as store:
        for trusted in (idp, other):
            issuers.add_issuer(
                store, issuer=trusted.issuer, jwks=trusted.keys.jwks, audiences=["web"],
                algorithms=["ES256"], now=clock.now(), admin="t",
            )  # fmt: skip
    return Setup(client, runtime, clock, idp, other, made)


# -- rules match (issuer, sub) ---------------------------------------------------------------
def test_sub_rule_when_it_names_the_persons_issuer_then_allowed_along_the_chain(setup):
    setup.rule("web", "agent", subject="sub:alice", subject_issuer=setup.idp.issuer)
    setup.rule("agent", "tool", subject="sub:alice", subject_issuer=setup.idp.issuer)
    to_agent = setup.hop("web", setup.person(), "agent")
    # The second hop reads the rule after the lineage (own token), the first before it.
    to_tool = setup.hop("agent", to_agent, "tool")
    assert claims_of(to_tool)["sub"] == "alice"


@pytest.mark.parametrize(
    "rule",
    [
        {"subject": "sub:alice"},  # no issuer: an NHI named alice, not a person
        {"subject": "alice"},
        {"subject": "sub:alice", "subject_issuer": OTHER_IDP},
    ],
)
def test_sub_rule_when_issuer_missing_or_other_then_persons_exchange_refused(setup, rule):
    setup.rule("web", "agent", **rule)
    resp = setup.send("web", setup.person(), audience="agent")
    assert (resp.status_code, resp.json) == (400, REQUEST_INVALID)


def test_sub_rule_when_same_sub_from_another_issuer_then_refused(setup):
    setup.rule("web", "agent", subject="sub:alice", subject_issuer=setup.idp.issuer)
    resp = setup.send("web", setup.person(idp=setup.other), audience="agent")
    assert (resp.status_code, resp.json) == (400, REQUEST_INVALID)


def test_sub_rule_for_an_nhi_when_a_person_has_its_name_then_only_the_nhi_is_covered(setup):
    setup.rule("web", "agent", subject="sub:batch")
    namesake = setup.send("web", setup.person("batch"), audience="agent")
    assert (namesake.status_code, namesake.json) == (400, REQUEST_INVALID)
    own = client_credentials(setup.client, setup.nhis["batch"], audience="web")
    assert own.status_code == 200, own.json
    assert setup.send("web", own.json["access_token"], audience="agent").status_code == 200


# -- sub_id (RFC 9493) in every token minted for a trusted issuer's subject ------------------
def test_minted_token_when_subject_from_trusted_issuer_then_sub_id_on_every_hop(setup):
    setup.rule("web", "agent", subject=f"issuer:{setup.idp.issuer}")
    setup.rule("agent", "tool")
    setup.rule("tool", "tool")
    expected = {"format": "iss_sub", "iss": setup.idp.issuer, "sub": "alice"}
    to_agent = setup.hop("web", setup.person(), "agent")
    to_tool = setup.hop("agent", to_agent, "tool")
    held = setup.hop("tool", to_tool, "tool")
    assert [claims_of(t)["sub_id"] for t in (to_agent, to_tool, held)] == [expected] * 3


def test_minted_token_when_person_has_an_nhis_name_then_sub_id_tells_them_apart(setup):
    setup.rule("web", "agent")
    person = claims_of(setup.hop("web", setup.person("batch"), "agent"))
    own = client_credentials(setup.client, setup.nhis["batch"], audience="web").json
    nhi = claims_of(setup.hop("web", own["access_token"], "agent"))
    assert (person["sub"], nhi["sub"]) == ("batch", "batch")
    assert person["sub_id"] == {"format": "iss_sub", "iss": setup.idp.issuer, "sub": "batch"}
    assert "sub_id" not in nhi


def test_minted_token_when_chain_rooted_at_an_nhi_then_no_sub_id(setup):
    setup.rule("web", "agent")
    own = client_credentials(setup.client, setup.nhis["web"]).json["access_token"]
    assert "sub_id" not in claims_of(own)
    assert "sub_id" not in claims_of(setup.hop("web", own, "agent"))


def test_introspection_when_subject_from_trusted_issuer_then_sub_id(setup):
    setup.rule("web", "agent")
    token = setup.hop("web", setup.person(), "agent")
    resp = setup.client.post(
        "/introspect",
        data={"token": token},
        headers=basic("agent", setup.nhis["agent"].secret or ""),
        content_type=FORM,
    )
    claims = claims_of(token)
    assert claims["sub_id"] == {"format": "iss_sub", "iss": setup.idp.issuer, "sub": "alice"}
    assert resp.status_code == 200
    assert resp.json == {"active": True, "token_type": "Bearer", **claims, "depth": 1}


# -- the subject issuer in the admin API and the CLI -------------------------------------------
def test_admin_api_create_rule_when_subject_issuer_then_stored_shown_and_idempotent(setup, admin):
    body = {"actor": "web", "targets": ["agent"], "scope": SCOPE, "subject": "sub:alice"}
    created = admin.ok("POST", "/rules", {**body, "subject_issuer": setup.idp.issuer}, 201)
    assert {k: v for k, v in created.items() if k not in ("id", "created_at")} == {
        "actor": "web",
        "targets": ["agent"],
        "scope": SCOPE,
        "subject": "sub:alice",
        "subject_issuer": setup.idp.issuer,
        "upstream": None,
        "max_depth": None,
        "max_ttl": None,
        "expires_at": None,
        "require_dpop": False,
        "status": "enabled",
    }
    assert admin.ok("GET", f"/rules/{created['id']}") == created
    again = admin.ok("POST", "/rules", {**body, "subject_issuer": setup.idp.issuer})
    assert again == created
    # The same sub without an issuer is another rule: it names an NHI.
    nhi_rule = admin.ok("POST", "/rules", body, 201)
    assert nhi_rule["id"] != created["id"] and nhi_rule["subject_issuer"] is None
    assert setup.hop("web", setup.person(), "agent")


@pytest.mark.parametrize(
    ("extra", "status", "answer"),
    [
        (
            {"subject": "sub:alice", "subject_issuer": "not a uri"},
            422,
            invalid(("subject_issuer", "must be an absolute URI of printable ASCII characters")),
        ),
        (
            {"subject": f"issuer:{OTHER_IDP}", "subject_issuer": OTHER_IDP},
            422,
            invalid(("subject_issuer", "a subject issuer goes only with a sub:SUB subject")),
        ),
    ],
)
def test_admin_api_create_rule_when_subject_issuer_misplaced_then_422(
    setup, admin, extra, status, answer
):
    resp = admin.post("/rules", {"actor": "web", "targets": ["agent"], "scope": SCOPE, **extra})
    assert (resp.status_code, resp.get_json()) == (status, answer)
    assert admin.ok("GET", "/rules")["total"] == 0


def test_cli_rule_when_subject_issuer_then_created_shown_and_listed(setup, sts):
    created = json.loads(
        sts(
            "rule", "create", "--actor", "web", "--target", "agent", "--scope", SCOPE,
            "--subject", "sub:alice", "--subject-issuer", setup.idp.issuer, "--json",
        ).stdout
    )  # fmt: skip
    assert (created["subject"], created["subject_issuer"]) == ("sub:alice", setup.idp.issuer)
    nhi_rule = sts(
        "rule", "create", "--actor", "web", "--target", "agent", "--scope", SCOPE,
        "--subject", "sub:batch",
    ).stdout  # fmt: skip
    assert "  subject:  sub:batch (an NHI)\n" in nhi_rule
    shown = sts("rule", "show", created["id"]).stdout
    assert f"  subject:  sub:alice (issuer {setup.idp.issuer})\n" in shown
    listed = sts("rule", "list").stdout.splitlines()
    assert sorted(listed[:2]) == sorted(
        [
            f"{created['id']}  enabled   web -> agent  [{SCOPE}]  subject=sub:alice "
            f"issuer={setup.idp.issuer}",
            f"{nhi_rule.split()[0]}  enabled   web -> agent  [{SCOPE}]  subject=sub:batch",
        ]
    )
    assert setup.hop("web", setup.person(), "agent")


def test_cli_rule_create_when_subject_issuer_without_sub_subject_then_exit_2(setup, sts):
    result = sts(
        "rule", "create", "--actor", "web", "--target", "agent", "--scope", SCOPE,
        "--subject", "kind:agent", "--subject-issuer", setup.idp.issuer, code=2,
    )  # fmt: skip
    assert result.stdout == ""
    assert result.stderr == "error (invalid): a subject issuer goes only with a sub:SUB subject\n"
