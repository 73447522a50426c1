"""The token-exchange pipeline on the in-memory store: steps as values, no database.

The same endpoint code that runs over SQL runs here over :class:`tests.memory_store.MemoryStore`,
so what the pipeline asks of the store, in which terms, and what it records can be specified
without a schema, locks or a web server.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from sts.core.domain import Client, CredentialView
from sts.core.errors import InvalidRequest
from sts.core.jwks import JwksCache
from sts.core.keys import KeyStore, generate_key
from sts.core.ports import ExchangeHints, RuleView
from sts.core.secrets import SecretHasher
from sts.core.settings import Settings
from sts.core.token_types import ACCESS_TOKEN_TYPE, CLIENT_CREDENTIALS, TOKEN_EXCHANGE
from sts.oauth.rfc6749 import OAuthRequest
from sts.oauth.rfc8693 import steps
from sts.oauth.server import ChainAuthorizationServer
from tests.helpers import basic, claims_of
from tests.memory_store import MemoryStore

ISSUER = "https://sts.example.test"
NOW = 1_900_000_000


class World:
    """An STS over a memory store with NHIs web → agent → tool, each with a secret."""

    def __init__(self, keys_dir: Path) -> None:
        generate_key(keys_dir, "ES256", now=NOW - 10)
        self.settings = Settings(
            issuer=ISSUER, database_url="sqlite://", keys_dir=keys_dir, leeway=30
        )
        self.hasher = SecretHasher(secrets.token_bytes(32))
        keys = KeyStore(keys_dir, 900, stage_seconds=0)
        self.server = ChainAuthorizationServer(
            self.settings, keys, self.hasher, JwksCache(1.0, 60.0)
        )
        self.store = MemoryStore()
        self.secrets: dict[str, str] = {}
        for number, name in enumerate(("web", "agent", "tool"), start=1):
            secret = secrets.token_urlsafe(16)
            self.secrets[name] = secret
            credential = CredentialView(f"cred-{name}", "secret", self.hasher.hash(secret))
            self.store.add_client(
                Client(
                    number,
                    name,
                    "service",
                    name,
                    "team",
                    "active",
                    frozenset({"orders:read", "orders:write"}),
                    frozenset({CLIENT_CREDENTIALS, TOKEN_EXCHANGE}),
                    (credential,),
                )
            )

    def allow(self, actor: str, target: str, rule_id: str, scopes: str = "orders:read") -> None:
        self.store.add_rule(
            RuleView(
                rule_id,
                self.store.clients[actor].id,
                "any",
                "",
                None,
                frozenset(scopes.split()),
                None,
                None,
                None,
                frozenset({self.store.clients[target].id}),
            )
        )

    def post(self, who: str, **form: str) -> tuple[int, dict[str, object]]:
        request = OAuthRequest(
            "POST",
            ISSUER + "/token",
            basic(who, self.secrets[who]),
            list(form.items()),
            NOW,
            "rid-1",
        )
        status, body, _ = self.server.token_response(request, self.store)
        return status, body

    def root_token(self, who: str = "web") -> str:
        status, body = self.post(who, grant_type=CLIENT_CREDENTIALS, scope="orders:read")
        assert status == 200, body
        return str(body["access_token"])

    def exchange(self, who: str, subject_token: str, **form: str) -> tuple[int, dict[str, object]]:
        return self.post(
            who,
            grant_type=TOKEN_EXCHANGE,
            subject_token=subject_token,
            subject_token_type=ACCESS_TOKEN_TYPE,
            **form,
        )


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "keys")


def test_pipeline_when_three_hops_exchange_then_act_nests_and_lineage_is_recorded(
    world: World,
) -> None:
    world.allow("web", "agent", "r-web")
    world.allow("agent", "tool", "r-agent")
    world.allow("tool", "tool", "r-tool")  # no audience: a credential the tool keeps
    root = world.root_token()
    status, first = world.exchange("web", root, audience="agent")
    assert status == 200, first
    status, second = world.exchange("agent", str(first["access_token"]), audience="tool")
    assert status == 200, second
    status, third = world.exchange("tool", str(second["access_token"]))
    assert status == 200, third
    claims = claims_of(str(third["access_token"]))
    assert claims["sub"] == "web" and claims["aud"] == "tool"
    assert claims["act"] == {"sub": "tool", "act": {"sub": "agent"}}
    assert claims["txn"] == claims_of(root)["jti"]
    record = world.store.issued[claims["jti"]]
    assert (record.parent_jti, record.rule_id, record.chain) == (
        claims_of(str(second["access_token"]))["jti"],
        "r-tool",
        ("tool", "agent"),  # the chain's actors, outermost first
    )
    assert [e.event for e in world.store.events] == ["token.issued"] * 4


def test_pipeline_when_exchanging_then_the_store_is_told_the_hints_up_front(world: World) -> None:
    world.allow("web", "agent", "r-web")
    root = world.root_token()
    world.exchange("web", root, audience="agent")
    assert world.store.expected == [
        ExchangeHints(
            client_id="web", issuer=None, target="agent", own_jtis=(claims_of(root)["jti"],)
        )
    ]


def test_pipeline_when_no_rule_reaches_the_target_then_the_denial_keeps_the_facts_so_far(
    world: World,
) -> None:
    root = world.root_token()
    status, body = world.exchange("web", root, audience="tool")
    assert (status, body) == (
        400,
        {
            "error": "invalid_target",
            "error_description": "The requested target is unknown or not allowed.",
        },
    )
    denial = world.store.events[-1]
    assert (denial.event, denial.decision, denial.reason) == (
        "token.denied",
        "denied",
        "no rule lets this actor reach this target",
    )
    assert (denial.client_id, denial.credential_id, denial.subject, denial.target) == (
        "web",
        "cred-web",
        "web",
        "tool",
    )
    assert denial.txn == claims_of(root)["jti"] and denial.rule_id is None
    assert denial.detail == {"error": "invalid_target", "grant_type": TOKEN_EXCHANGE}


def test_pipeline_when_the_secret_is_wrong_then_the_attempted_client_is_recorded_and_counted(
    world: World,
) -> None:
    world.secrets["web"] = "not-the-secret"
    status, body = world.post("web", grant_type=CLIENT_CREDENTIALS)
    assert (status, body["error"]) == (401, "invalid_client")
    denial = world.store.events[-1]
    assert (denial.client_id, denial.reason, denial.credential_id) == (
        "web",
        "wrong client secret",
        None,
    )
    assert world.store.failures[("web", "")][0] == 1


def test_pipeline_when_an_ancestor_is_revoked_then_the_next_hop_is_refused(world: World) -> None:
    world.allow("web", "agent", "r-web")
    world.allow("agent", "tool", "r-agent")
    root = world.root_token()
    _, first = world.exchange("web", root, audience="agent")
    assert world.store.revoke_token(claims_of(root)["jti"], NOW, "test", "test") == 2
    status, body = world.exchange("agent", str(first["access_token"]), audience="tool")
    assert (status, body["error"]) == (400, "invalid_request")
    assert world.store.events[-1].reason == "subject token: token or an ancestor is revoked"


def test_pipeline_when_an_actor_token_is_revoked_then_what_it_minted_is_refused(
    world: World,
) -> None:
    world.allow("web", "agent", "r-web")
    world.allow("agent", "tool", "r-agent")
    actor = world.root_token("web")
    status, first = world.exchange(
        "web",
        world.root_token(),
        audience="agent",
        actor_token=actor,
        actor_token_type=ACCESS_TOKEN_TYPE,
    )
    assert status == 200, first
    assert world.store.issued[claims_of(str(first["access_token"]))["jti"]].actor_jti == (
        claims_of(actor)["jti"]
    )
    assert world.store.revoke_token(claims_of(actor)["jti"], NOW, "web", "test") == 2
    status, body = world.exchange("agent", str(first["access_token"]), audience="tool")
    assert (status, body["error"]) == (400, "invalid_request")
    assert world.store.events[-1].reason == "subject token: token or an ancestor is revoked"


def test_pipeline_when_an_actor_in_the_chain_is_disabled_then_the_next_hop_is_refused(
    world: World,
) -> None:
    world.allow("web", "agent", "r-web")
    world.allow("agent", "tool", "r-agent")
    _, first = world.exchange("web", world.root_token(), audience="agent")
    world.store.disable("web")
    status, _ = world.exchange("agent", str(first["access_token"]), audience="tool")
    assert status == 400
    assert world.store.events[-1].reason == "subject token: an identity in the chain is disabled"


def test_parse_when_a_token_is_not_a_jwt_then_the_store_is_told_nothing(world: World) -> None:
    request = OAuthRequest(
        "POST",
        ISSUER + "/token",
        basic("web", "x"),
        [
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", "not-a-jwt"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ],
        NOW,
    )
    parsed = steps.parse(request, world.settings, world.server.authenticator)
    assert parsed.subject is None and parsed.hints == ExchangeHints()


def test_extend_chain_when_the_actor_is_deeper_in_the_chain_then_it_is_a_cycle(
    world: World,
) -> None:
    world.allow("web", "agent", "r-web")
    world.allow("agent", "web", "r-back")
    _, first = world.exchange("web", world.root_token(), audience="agent")
    status, body = world.exchange("agent", str(first["access_token"]), audience="web")
    assert status == 200, body  # agent acts for web toward web: no cycle yet
    status, body = world.exchange("web", str(body["access_token"]), audience="agent")
    assert (status, body["error"]) == (400, "invalid_request")
    assert world.store.events[-1].reason.startswith("cycle: ")


def test_bind_audience_when_the_token_names_another_client_then_it_is_refused(
    world: World,
) -> None:
    world.allow("web", "agent", "r-web")
    _, first = world.exchange("web", world.root_token(), audience="agent")
    with pytest.raises(InvalidRequest) as refused:
        token = world.server.validator.validate(
            str(first["access_token"]), "subject", world.store, NOW
        )
        steps.bind_audience(token, world.store.clients["tool"], world.settings, "subject")
    assert refused.value.reason == "subject token is not addressed to this client"


def test_pipeline_when_exchanging_then_each_token_is_parsed_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sts.core import jws

    world.allow("web", "agent", "r-web")
    root = world.root_token()
    calls: list[str] = []
    real = jws.parse

    def counting(token: str) -> jws.ParsedJWS:
        calls.append(token)
        return real(token)

    monkeypatch.setattr(jws, "parse", counting)
    status, _ = world.exchange("web", root, audience="agent")
    assert status == 200 and calls == [root]
    assert world.store.expected[-1].client_id == "web"  # the claim, read once, names it
