"""Rotation without refusals (DESIGN §9): a new signing key is published at once and signs only
after ``STS_KEY_STAGE_SECONDS``, by when every verifier's cached JWKS knows it. The first key
signs at once; ``sts keys generate --now`` makes a key sign at once for an emergency rotation.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from chain_sts_client.jwks import JwksCache
from click.testing import CliRunner, Result

from sts.cli import main
from sts.core.keys import KeyRing, KeyStore, generate_key, load_key
from sts.core.settings import JWKS_MAX_AGE, Settings, SettingsError
from sts.runtime import build_runtime
from sts.web import create_app
from tests.helpers import FORM, basic, header_of

RETIRE_AFTER = 3600 + 30
STAGE = 600
T0 = 1_800_000_000
#: The SDK's JWKS cache time when a service does not set one.
SDK_JWKS_MAX_AGE = int(inspect.signature(JwksCache).parameters["max_age"].default)
PRODUCTION = {"STS_ENV": "production", "STS_ISSUER": "https://sts.example.test",
              "STS_ALLOW_SQLITE_IN_PRODUCTION": "true"}  # fmt: skip


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def statuses(ring: KeyRing, now: int) -> list[str]:
    return [ring.status(k, now) for k in ring.keys]


# -- the ring ----------------------------------------------------------------------------------


def test_key_ring_when_new_key_then_published_at_once_and_signing_after_its_stage(tmp_path):
    old = generate_key(tmp_path, "ES256", now=T0)
    new = generate_key(tmp_path, "ES256", now=T0 + 1000)
    ring = KeyRing([old, new], RETIRE_AFTER, stage_seconds=STAGE)
    activation = T0 + 1000 + STAGE

    assert statuses(ring, T0 + 1000) == ["signing", "staged"]
    assert [k["kid"] for k in ring.jwks(T0 + 1000)["keys"]] == [new.kid, old.kid]
    assert ring.signing_key(activation - 1).kid == old.kid
    assert (ring.activation(new), ring.retires_at(new)) == (activation, None)

    assert ring.signing_key(activation).kid == new.kid
    assert statuses(ring, activation) == ["published", "signing"]
    # The old key signed until the new one activated: its tokens live max TTL + leeway longer.
    assert ring.retires_at(old) == activation + RETIRE_AFTER
    assert statuses(ring, activation + RETIRE_AFTER - 1) == ["published", "signing"]
    assert statuses(ring, activation + RETIRE_AFTER) == ["retired", "signing"]
    assert [k["kid"] for k in ring.jwks(activation + RETIRE_AFTER)["keys"]] == [new.kid]


def test_key_ring_when_first_key_then_it_signs_at_once(tmp_path):
    first = generate_key(tmp_path, "ES256", now=T0)
    ring = KeyRing([first], RETIRE_AFTER, stage_seconds=STAGE)
    assert (ring.signing_key(T0).kid, ring.status(first, T0)) == (first.kid, "signing")
    assert ring.activation(first) == T0


def test_key_ring_when_staged_key_then_it_verifies_already(tmp_path):
    """A replica whose clock runs a little ahead may sign with it a moment early."""
    generate_key(tmp_path, "ES256", now=T0)
    new = generate_key(tmp_path, "ES256", now=T0 + 1000)
    ring = KeyStore(tmp_path, RETIRE_AFTER, stage_seconds=STAGE).ring
    assert ring.verification_key(new.kid, T0 + 1000) is not None


def test_key_ring_when_two_keys_staged_then_each_signs_in_turn(tmp_path):
    old = generate_key(tmp_path, "ES256", now=T0)
    first = generate_key(tmp_path, "ES256", now=T0 + 1000)
    second = generate_key(tmp_path, "ES256", now=T0 + 1010)
    ring = KeyRing([old, first, second], RETIRE_AFTER, stage_seconds=STAGE)
    assert statuses(ring, T0 + 1010) == ["signing", "staged", "staged"]
    assert statuses(ring, T0 + 1000 + STAGE) == ["published", "signing", "staged"]
    assert statuses(ring, T0 + 1010 + STAGE) == ["published", "published", "signing"]
    assert ring.retires_at(old) == T0 + 1000 + STAGE + RETIRE_AFTER
    assert ring.retires_at(first) == T0 + 1010 + STAGE + RETIRE_AFTER


def test_key_ring_when_emergency_key_then_it_signs_at_once_and_the_staged_one_never(tmp_path):
    old = generate_key(tmp_path, "ES256", now=T0)
    staged = generate_key(tmp_path, "ES256", now=T0 + 1000)
    emergency = generate_key(tmp_path, "ES256", now=T0 + 1010, immediate=True)
    assert emergency.kid.endswith("-now") and emergency.immediate
    assert load_key(tmp_path / f"{emergency.kid}.pem").immediate
    ring = KeyRing([old, staged, emergency], RETIRE_AFTER, stage_seconds=STAGE)
    assert statuses(ring, T0 + 1010) == ["published", "published", "signing"]
    assert statuses(ring, T0 + 1010 + STAGE) == ["published", "published", "signing"]
    assert ring.retires_at(old) == T0 + 1010 + RETIRE_AFTER


# -- a rotation, as verifiers see it -----------------------------------------------------------


class CachingVerifier:
    """A resource server that keeps the JWKS it fetched for ``max_age`` seconds and never looks
    again earlier (a JWKS held by an HTTP cache, or by a library without unknown-kid refresh)."""

    def __init__(self, client: Any, max_age: int) -> None:
        self.client, self.max_age = client, max_age
        self.jwks: dict[str, Any] = {}
        self.fetched_at: int | None = None

    def accepts(self, token: str, now: int) -> bool:
        if self.fetched_at is None or now - self.fetched_at >= self.max_age:
            resp = self.client.get("/jwks.json")
            assert resp.headers["Cache-Control"] == f"public, max-age={JWKS_MAX_AGE}"
            self.jwks, self.fetched_at = resp.json, now
        found = [k for k in self.jwks["keys"] if k["kid"] == header_of(token)["kid"]]
        if not found:
            return False
        key = jwt.PyJWK(found[0])
        jwt.decode(token, key, algorithms=[found[0]["alg"]], options={"verify_aud": False,
                   "verify_exp": False, "verify_iat": False, "verify_nbf": False})  # fmt: skip
        return True


@pytest.mark.parametrize("max_age", [JWKS_MAX_AGE, SDK_JWKS_MAX_AGE])
def test_rotation_when_verifiers_cache_the_jwks_then_no_token_is_refused(
    client, runtime, keys_dir, make_nhi, clock, settings, max_age
):
    web = make_nhi("web")
    verifier = CachingVerifier(client, max_age)

    def mint() -> str:
        resp = client.post("/token", data={"grant_type": "client_credentials"},
                           headers=basic(web.client_id, web.secret or ""), content_type=FORM)
        assert resp.status_code == 200, resp.json
        return str(resp.json["access_token"])

    old_kid = header_of(mint())["kid"]
    assert verifier.accepts(mint(), clock.now())
    clock.advance(max_age // 2)  # the rotation lands while the verifier's copy is fresh
    new = generate_key(keys_dir, "ES256", now=clock.now())
    runtime.keys.reload()
    kids = []
    for _ in range((settings.key_stage_seconds + 2 * max_age) // 10):
        token = mint()
        kids.append(header_of(token)["kid"])
        assert verifier.accepts(token, clock.now()), (clock.now() - new.created_at, kids[-1])
        clock.advance(10)
    assert kids[0] == old_kid and kids[-1] == new.kid


# -- the command line --------------------------------------------------------------------------


def sts(tmp_path: Path, *args: str, code: int = 0, **env: str) -> Result:
    environ = {"STS_DATABASE_URL": f"sqlite:///{tmp_path / 'sts.db'}",
               "STS_KEYS_DIR": str(tmp_path / "keys"), **env}  # fmt: skip
    result = CliRunner().invoke(main, list(args), env=environ)
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("STS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_keys_generate_when_a_key_signs_then_the_new_one_is_staged(clean_env):
    first = json.loads(sts(clean_env, "keys", "generate", "--json").stdout)
    out = sts(clean_env, "keys", "generate").stdout
    listed = json.loads(sts(clean_env, "keys", "list", "--json").stdout)["items"]
    new = listed[0]
    assert [(k["kid"], k["status"]) for k in listed] == [
        (new["kid"], "staged"), (first["kid"], "signing")]  # fmt: skip
    assert new["signs_at"] == new["created_at"] + STAGE
    when = iso(new["signs_at"])
    assert out == f"generated ES256 key {new['kid']} (published; signs from {when})\n"


def test_keys_generate_when_stage_setting_then_it_is_the_stage(clean_env):
    sts(clean_env, "keys", "generate")
    new = json.loads(
        sts(clean_env, "keys", "generate", "--json", STS_KEY_STAGE_SECONDS="90").stdout
    )
    assert (new["status"], new["signs_at"]) == ("staged", new["created_at"] + 90)


def test_keys_generate_when_now_then_it_signs_at_once_and_the_old_key_stays_published(
    clean_env,
):
    first = generate_key(clean_env / "keys", "ES256", now=int(time.time()) - 100)
    urgent = json.loads(sts(clean_env, "keys", "generate", "--now", "--json").stdout)
    assert urgent["kid"].endswith("-now")
    assert (urgent["status"], urgent["signs_at"]) == ("signing", urgent["created_at"])
    listed = json.loads(sts(clean_env, "keys", "list", "--json").stdout)["items"]
    assert [(k["kid"], k["status"], k["retires_at"]) for k in listed] == [
        (urgent["kid"], "signing", None),
        (first.kid, "published", urgent["created_at"] + RETIRE_AFTER),
    ]
    assert "--now" in sts(clean_env, "keys", "generate", "--help").stdout


def test_runtime_when_staged_key_then_tokens_keep_the_old_kid_until_its_stage_ends(
    settings, clock, engine, make_nhi, runtime, client
):
    old_kid = runtime.keys.ring.signing_key(clock.now()).kid
    new = generate_key(settings.keys_dir, "ES256", now=clock.now() + 10)
    other = dataclasses.replace(settings, key_stage_seconds=0)
    rt = build_runtime(other, clock, engine=engine)  # a process configured without a stage
    clock.advance(10)
    assert rt.keys.ring.signing_key(clock.now()).kid == new.kid
    assert runtime.keys.reload().signing_key(clock.now()).kid == old_kid
    assert create_app(settings, rt=runtime).test_client().get("/readyz").status_code == 200


# -- the setting -------------------------------------------------------------------------------


def test_key_stage_seconds_when_default_then_longer_than_every_jwks_cache():
    default = Settings()
    assert default.key_stage_seconds == 600
    assert default.key_stage_seconds > SDK_JWKS_MAX_AGE + default.keys_reload_seconds
    assert default.key_stage_seconds > JWKS_MAX_AGE + default.keys_reload_seconds


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"STS_KEY_STAGE_SECONDS": "-1"}, "STS_KEY_STAGE_SECONDS must be between 0 and 604800"),
        ({"STS_KEY_STAGE_SECONDS": "604801"}, "must be between 0 and 604800 seconds"),
        ({"STS_KEY_STAGE_SECONDS": "99999999999999999999"}, "must be between 0 and 604800"),
        ({"STS_KEY_STAGE_SECONDS": "soon"}, "STS_KEY_STAGE_SECONDS is invalid"),
        ({"STS_KEY_STAGE_SECONDS": "1.5"}, "STS_KEY_STAGE_SECONDS is invalid"),
        (
            {**PRODUCTION, "STS_KEY_STAGE_SECONDS": "64"},
            "STS_KEY_STAGE_SECONDS must be at least 65 seconds in production (the JWKS cache "
            "time 60 s plus STS_KEYS_RELOAD_SECONDS)",
        ),
    ],
)  # fmt: skip
def test_key_stage_seconds_when_out_of_range_then_refused_at_start(environ, message):
    with pytest.raises(SettingsError) as refused:
        Settings.load(environ=environ)
    assert message in str(refused.value)


def test_key_stage_seconds_when_zero_in_development_then_keys_sign_at_once():
    assert Settings.load(environ={"STS_KEY_STAGE_SECONDS": "0"}).key_stage_seconds == 0
    production = {**PRODUCTION, "STS_KEY_STAGE_SECONDS": "65"}
    assert Settings.load(environ=production).key_stage_seconds == 65
