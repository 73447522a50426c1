"""``sts token decode``: a pasted token's header, claims, act chain in hop order and times,
unverified unless ``--verify`` checks it against this STS's keys; garbage is one line."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from sts.cli import main
from sts.cli import token as token_cli
from sts.cli.support import iso_time
from sts.cli.token import relative
from sts.services import issuers, rules
from sts.store.admin import admin_store
from tests.conftest import ISSUER
from tests.exchange_fixtures import PersonIdp, client_credentials, exchange
from tests.helpers import claims_of, header_of


@pytest.fixture
def sts(settings: Any, monkeypatch: pytest.MonkeyPatch, clock: Any) -> Any:
    env = {
        "STS_DATABASE_URL": settings.database_url,
        "STS_KEYS_DIR": str(settings.keys_dir),
        "STS_ISSUER": ISSUER,
    }
    # The command reads the wall clock; the tests read it at the test clock's now + 100.
    monkeypatch.setattr(token_cli, "wall_clock", lambda: clock.now() + 100)

    def run(*args: str, code: int = 0, stdin: str | None = None) -> Result:
        result = CliRunner().invoke(main, list(args), env=env, input=stdin)
        assert result.exit_code == code, (result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    return run


@pytest.fixture
def three_hops(client: Any, make_nhi: Any, runtime: Any, clock: Any) -> str:
    """alice → web → agent → tool: the token tool holds, minted by agent."""
    idp = PersonIdp()
    nhis = {n: make_nhi(n) for n in ("web", "agent", "tool")}
    with admin_store(runtime.engine) as store:
        issuers.add_issuer(
            store,
            issuer=idp.issuer,
            jwks=idp.keys.jwks,
            audiences=["web"],
            now=clock.now(),
            admin="test",
        )
        for actor, target in (("web", "agent"), ("agent", "tool")):
            rules.create_rule(
                store,
                actor=actor,
                targets=[target],
                scope="orders:read",
                now=clock.now(),
                admin="test",
            )
    person = idp.token("alice", "web", clock.now())
    first = exchange(client, nhis["web"], person, audience="agent").get_json()["access_token"]
    second = exchange(client, nhis["agent"], first, audience="tool").get_json()
    return str(second["access_token"])


def test_relative_when_past_future_or_now_then_two_largest_units():
    assert relative(1000, 1000) == "now"
    assert relative(1250, 1000) == "in 4m 10s"
    assert relative(1000, 1000 + 3 * 3600 + 120 + 5) == "3h 2m ago"
    assert relative(1000 + 2 * 86400 + 7, 1000) == "in 2d"
    assert relative(999, 1000) == "1s ago"


def test_token_decode_when_a_chain_token_then_header_claims_hops_and_times(sts, three_hops, clock):
    claims, header = claims_of(three_hops), header_of(three_hops)
    now = clock.now()
    lines = sts("token", "decode", three_hops).stdout.splitlines()
    assert lines[0] == "header"
    assert "  alg  ES256" in lines and "  typ  at+jwt" in lines
    assert f"  kid  {header['kid']}" in lines
    assert "claims" in lines
    assert any(line.split() == ["sub", "alice"] for line in lines)
    assert any(line.split() == ["aud", "tool"] for line in lines)
    assert any(line.split() == ["client_id", "agent"] for line in lines)
    exp = next(line for line in lines if line.split()[:1] == ["exp"])
    iat = next(line for line in lines if line.split()[:1] == ["iat"])
    assert exp.split(None, 1)[1] == (
        f"{iso_time(claims['exp'])}  ({relative(claims['exp'], now + 100)})"
    )
    assert iat.endswith("(1m 40s ago)")
    assert lines[-4:] == [
        "act chain (hop 1 = first actor, deepest in act; the last hop acts now)",
        "  hop 1  web",
        "  hop 2  agent  <- current actor",
        "signature: NOT verified (--verify checks it against this STS's keys)",
    ]


def test_token_decode_when_json_then_chain_in_hop_order_and_times(sts, three_hops, clock):
    data = json.loads(sts("token", "decode", three_hops, "--json").stdout)
    claims = claims_of(three_hops)
    assert data["claims"] == claims and data["header"] == header_of(three_hops)
    assert data["chain"] == [{"hop": 1, "sub": "web"}, {"hop": 2, "sub": "agent"}]
    assert data["times"]["iat"] == {"at": iso_time(claims["iat"]), "relative": "1m 40s ago"}
    assert (data["verified"], data["verification"]) == (None, "not verified")


def test_token_decode_when_verify_and_ours_then_valid_with_its_key(sts, three_hops):
    kid = header_of(three_hops)["kid"]
    out = sts("token", "decode", "--verify", three_hops).stdout
    assert (
        out.splitlines()[-1] == f"signature: VALID: signature verified with key {kid} of {ISSUER}"
    )
    data = json.loads(sts("token", "decode", "--verify", "--json", three_hops).stdout)
    assert data["verified"] is True


def test_token_decode_when_verify_and_forged_then_invalid_and_exit_1(
    sts, three_hops, client, make_nhi
):
    kid = header_of(three_hops)["kid"]
    other = client_credentials(client, make_nhi("other")).get_json()["access_token"]
    forged = three_hops.rsplit(".", 1)[0] + "." + other.rsplit(".", 1)[1]
    result = sts("token", "decode", "--verify", forged, code=1)
    assert result.stdout.splitlines()[-1] == (
        f"signature: INVALID: the signature does not verify with key {kid}"
    )


def test_token_decode_when_verify_and_another_issuers_then_invalid(sts, runtime, clock):
    person = PersonIdp().token("alice", "web", clock.now())
    result = sts("token", "decode", "--verify", person, code=1)
    assert result.stdout.splitlines()[-2:] == [
        "act chain: none (the subject acts for itself)",
        "signature: INVALID: its kid is not a published key of this STS",
    ]


def test_token_decode_when_pasted_on_stdin_with_bearer_then_read(sts, three_hops):
    data = json.loads(sts("token", "decode", "--json", stdin=f"Bearer {three_hops}\n").stdout)
    assert data["claims"]["aud"] == "tool"
    data = json.loads(sts("token", "decode", "-", "--json", stdin=three_hops).stdout)
    assert data["chain"][1]["sub"] == "agent"


@pytest.mark.parametrize(
    ("arg", "stdin", "message"),
    [
        ("garbage", None, "error (invalid): not a JWT: Not enough segments"),
        ("a.b.c", None, "error (invalid): not a JWT: Invalid header padding"),
        (None, "   \n", "error (invalid): no token given (an argument, or on stdin)"),
        ("x" * 70000, None, "error (invalid): the token is longer than 65536 bytes"),
    ],
)
def test_token_decode_when_garbage_then_one_line_and_exit_2(sts, arg, stdin, message):
    args = ["token", "decode"] + ([arg] if arg is not None else [])
    result = sts(*args, code=2, stdin=stdin)
    assert result.stdout == ""
    assert result.stderr.splitlines() == [message]
