"""Signing keys and the JWKS (RFC 7517, DESIGN §9).

Key files are private (0600) and named ``<UTC timestamp>-<ALG>-<id>.pem``; a new key is
published at once and signs after its stage (``STS_KEY_STAGE_SECONDS``; the first key at once);
a superseded key stays published until every token it signed has expired (its successor's
activation + the maximum token lifetime + the leeway), then it is retired. Staging itself is
tested in ``test_key_staging.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from sts.core.keys import KeyFileError, KeyRing, KeyStore, generate_key, load_key
from sts.core.secrets import HASH_KEY_FILE, load_hash_key
from sts.runtime import build_runtime
from sts.services import nhis
from sts.store.admin import admin_store
from sts.web import create_app
from tests.conftest import ISSUER, Registered
from tests.helpers import FORM, basic, header_of

ALGS = ("ES256", "EdDSA", "RS256")
PUBLIC_MEMBERS = {
    "ES256": {"kty", "crv", "x", "y", "kid", "alg", "use"},
    "EdDSA": {"kty", "crv", "x", "kid", "alg", "use"},
    "RS256": {"kty", "n", "e", "kid", "alg", "use"},
}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
RETIRE_AFTER = 3600 + 30
STAGE = 600


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def issue(client: Any, nhi: Any) -> str:
    resp = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(nhi.client_id, nhi.secret),
        content_type=FORM,
    )
    assert resp.status_code == 200, resp.json
    token: str = resp.json["access_token"]
    return token


def verify_with_jwks(token: str, jwks: dict[str, Any], ahead: int = 0) -> dict[str, Any]:
    """Verify ``token`` against a published JWKS, choosing the key by ``kid``; ``ahead``: how
    far a test moved the frozen clock past the wall clock (a key's stage, say)."""
    kid = header_of(token)["kid"]
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == kid]
    key = jwt.PyJWK(jwk)
    # The frozen clock may have been moved a little ahead of the wall clock PyJWT reads.
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=[jwk["alg"]], audience=ISSUER, issuer=ISSUER, leeway=60 + ahead
    )
    return claims


def write_pem(path: Path, mode: int = 0o600) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_bytes(pem)
    path.chmod(mode)
    return path


# -- files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_generate_key_when_created_then_private_file_named_by_kid(tmp_path, alg):
    key = generate_key(tmp_path / "keys", alg, now=1_800_000_000)
    path = tmp_path / "keys" / f"{key.kid}.pem"
    assert mode_of(path) == 0o600
    assert re.fullmatch(rf"20270115T080000Z-{alg}-[0-9a-f]{{8}}", key.kid)
    assert key.alg == alg and key.created_at == 1_800_000_000
    assert load_key(path).public_jwk == key.public_jwk


def test_runtime_when_first_started_then_key_and_hash_key_are_private(runtime, keys_dir):
    (pem,) = keys_dir.glob("*.pem")
    assert mode_of(pem) == 0o600
    assert mode_of(keys_dir / HASH_KEY_FILE) == 0o600
    assert mode_of(keys_dir) & 0o077 == 0


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_key_store_when_key_readable_by_others_then_refused_naming_file(tmp_path, mode):
    path = write_pem(tmp_path / "keys" / "20260101T000000Z-ES256-abc123.pem", mode)
    with pytest.raises(KeyFileError, match=re.escape(str(path))) as raised:
        KeyStore(tmp_path / "keys", RETIRE_AFTER, stage_seconds=STAGE)
    assert "readable by others" in str(raised.value)


def test_key_store_when_one_of_several_keys_readable_by_others_then_refused(tmp_path):
    generate_key(tmp_path / "keys", "ES256", now=1_800_000_000)
    loose = write_pem(tmp_path / "keys" / "20270101T000000Z-ES256-loose.pem", 0o644)
    with pytest.raises(KeyFileError, match=re.escape(str(loose))):
        KeyStore(tmp_path / "keys", RETIRE_AFTER, stage_seconds=STAGE)


@pytest.mark.parametrize(
    "name",
    [
        "signing.pem",
        "20260101T000000Z-HS256-abc.pem",
        "20260101T000000Z-ES256-ABC.pem",
        "20260101T000000Z-ES256-.pem",
        "2026-01-01T00:00:00Z-ES256-abc.pem",
        "20260101T000000Z-ES256-abc-extra.pem",
        "20260101T000000Z-ES256-abcdefghijklmnopq.pem",
    ],
)
def test_key_store_when_file_badly_named_then_refused_naming_file(tmp_path, name):
    path = write_pem(tmp_path / "keys" / name)
    with pytest.raises(KeyFileError, match=re.escape(str(path))):
        KeyStore(tmp_path / "keys", RETIRE_AFTER, stage_seconds=STAGE)


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_key_store_when_key_type_differs_from_name_then_refused(tmp_path, alg):
    path = write_pem(tmp_path / "keys" / f"20260101T000000Z-{alg}-abc.pem")
    with pytest.raises(KeyFileError, match=re.escape(f"{path}: key type does not match {alg}")):
        KeyStore(tmp_path / "keys", RETIRE_AFTER, stage_seconds=STAGE)


def test_key_store_when_file_not_pem_then_refused_naming_file(tmp_path):
    path = tmp_path / "keys" / "20260101T000000Z-ES256-abc.pem"
    path.parent.mkdir()
    path.write_text("not a key\n")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=re.escape(f"{path}: not a PEM private key")):
        KeyStore(tmp_path / "keys", RETIRE_AFTER, stage_seconds=STAGE)


def test_key_store_when_directory_empty_or_missing_then_refused(tmp_path):
    with pytest.raises(KeyFileError, match="key directory does not exist"):
        KeyStore(tmp_path / "missing", RETIRE_AFTER, stage_seconds=STAGE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeyFileError, match="no signing keys"):
        KeyStore(tmp_path / "empty", RETIRE_AFTER, stage_seconds=STAGE)


def test_hash_key_when_readable_by_others_then_refused_naming_file(tmp_path):
    load_hash_key(tmp_path, create=True)
    (tmp_path / HASH_KEY_FILE).chmod(0o640)
    with pytest.raises(KeyFileError, match=re.escape(str(tmp_path / HASH_KEY_FILE))):
        load_hash_key(tmp_path, create=False)


# -- the JWKS -----------------------------------------------------------------------------------


def test_jwks_when_keys_of_every_algorithm_then_public_members_only(
    client, runtime, keys_dir, clock
):
    for alg in ("EdDSA", "RS256"):
        clock.advance(10)
        generate_key(keys_dir, alg, now=clock.now())
    runtime.keys.reload()
    resp = client.get("/jwks.json")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["Cache-Control"] == "public, max-age=60"
    keys = resp.json["keys"]
    assert [k["alg"] for k in keys] == ["RS256", "EdDSA", "ES256"]  # newest first
    assert len({k["kid"] for k in keys}) == 3
    for jwk in keys:
        assert set(jwk) == PUBLIC_MEMBERS[jwk["alg"]]
        assert not PRIVATE_MEMBERS & set(jwk)
        assert jwk["use"] == "sig"
    assert resp.json == {"keys": keys}


def test_metadata_when_fetched_then_jwks_uri_points_at_the_jwks(client):
    meta = client.get("/.well-known/oauth-authorization-server").json
    assert meta["issuer"] == ISSUER
    assert meta["jwks_uri"] == ISSUER + "/jwks.json"
    assert meta["token_endpoint"] == ISSUER + "/token"


# -- signing with each algorithm ----------------------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_signing_when_newest_key_is_eddsa_or_rs256_then_tokens_use_it(
    client, runtime, keys_dir, make_nhi, clock, settings, alg
):
    web = make_nhi("web")
    clock.advance(10)
    key = generate_key(keys_dir, alg, now=clock.now())
    runtime.keys.reload()
    clock.advance(settings.key_stage_seconds)
    token = issue(client, web)
    assert header_of(token) == {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    claims = verify_with_jwks(token, client.get("/jwks.json").json, settings.key_stage_seconds)
    assert claims["sub"] == "web"


@pytest.mark.parametrize("alg", ALGS)
def test_signing_when_configured_algorithm_then_first_key_generated_with_it(
    tmp_path, settings, engine, clock, alg
):
    configured = dataclasses.replace(settings, signing_alg=alg, keys_dir=tmp_path / alg)
    rt = build_runtime(configured, clock, engine=engine)
    client = create_app(configured, rt=rt).test_client()
    assert rt.keys.ring.signing_key(clock.now()).alg == alg
    with admin_store(engine) as store:
        view, secret = nhis.create_nhi(
            store, rt.hasher, name="web", kind="service", now=clock.now(), admin="test"
        )
    token = issue(client, Registered(view.client_id, secret, view.sub))
    assert header_of(token)["alg"] == alg
    verify_with_jwks(token, client.get("/jwks.json").json)


# -- rotation -----------------------------------------------------------------------------------


def test_rotation_when_new_key_then_old_tokens_verify_and_new_tokens_use_new_kid(
    client, runtime, keys_dir, make_nhi, clock, settings
):
    web = make_nhi("web")
    old_kid = runtime.keys.ring.signing_key(clock.now()).kid
    before = issue(client, web)
    assert header_of(before)["kid"] == old_kid

    clock.advance(10)
    new = generate_key(keys_dir, "ES256", now=clock.now())
    runtime.keys.reload()

    jwks = client.get("/jwks.json").json  # what a verifier fetched right after the rotation
    assert [k["kid"] for k in jwks["keys"]] == [new.kid, old_kid]
    assert verify_with_jwks(before, jwks)["sub"] == "web"
    assert header_of(issue(client, web))["kid"] == old_kid  # staged: published, not signing
    clock.advance(settings.key_stage_seconds)
    after = issue(client, web)
    assert header_of(after)["kid"] == new.kid
    assert verify_with_jwks(after, jwks, settings.key_stage_seconds)["sub"] == "web"


def test_rotation_when_every_old_token_expired_then_old_key_retired(
    client, runtime, keys_dir, make_nhi, clock, settings
):
    web = make_nhi("web")
    old_kid = runtime.keys.ring.signing_key(clock.now()).kid
    before = issue(client, web)
    clock.advance(10)
    new = generate_key(keys_dir, "ES256", now=clock.now())
    runtime.keys.reload()
    clock.advance(settings.key_stage_seconds - 1)
    last_of_old = issue(client, web)  # the old key's last token: one second before the new signs
    assert header_of(last_of_old)["kid"] == old_kid
    activation = new.created_at + settings.key_stage_seconds
    retire_at = activation + settings.max_token_ttl + settings.leeway

    clock.advance(retire_at - 1 - clock.now())
    assert [k["kid"] for k in client.get("/jwks.json").json["keys"]] == [new.kid, old_kid]
    assert runtime.keys.ring.verification_key(old_kid, clock.now()) is not None

    clock.advance(1)
    jwks = client.get("/jwks.json").json
    assert [k["kid"] for k in jwks["keys"]] == [new.kid]
    assert runtime.keys.ring.verification_key(old_kid, clock.now()) is None
    # Every token the old key signed has expired by now: the longest possible is still dead.
    assert jwt.decode(before, options={"verify_signature": False})["exp"] < clock.now()
    assert jwt.decode(last_of_old, options={"verify_signature": False})["exp"] < clock.now()
    assert header_of(issue(client, web))["kid"] == new.kid


def test_key_ring_when_three_generations_then_each_retired_after_its_successor(tmp_path):
    keys_dir = tmp_path / "keys"
    k1 = generate_key(keys_dir, "ES256", now=1_000_000)
    k2 = generate_key(keys_dir, "EdDSA", now=1_000_100)
    k3 = generate_key(keys_dir, "ES256", now=1_000_200)
    ring = KeyRing([k3, k1, k2], RETIRE_AFTER, stage_seconds=0)  # order given does not matter
    assert ring.signing_key(1_000_200).kid == k3.kid

    def statuses(now: int) -> list[str]:
        return [ring.status(k, now) for k in ring.keys]

    assert statuses(1_000_200) == ["published", "published", "signing"]
    assert statuses(1_000_100 + RETIRE_AFTER - 1) == ["published", "published", "signing"]
    assert statuses(1_000_100 + RETIRE_AFTER) == ["retired", "published", "signing"]
    assert statuses(1_000_200 + RETIRE_AFTER) == ["retired", "retired", "signing"]
    assert [k["kid"] for k in ring.jwks(1_000_200 + RETIRE_AFTER)["keys"]] == [k3.kid]


def test_key_ring_when_key_file_stamped_older_then_it_does_not_take_over_signing(tmp_path):
    keys_dir = tmp_path / "keys"
    current = generate_key(keys_dir, "ES256", now=2_000_000)
    generate_key(keys_dir, "ES256", now=1_000_000)
    store = KeyStore(keys_dir, RETIRE_AFTER, stage_seconds=STAGE)
    assert store.ring.signing_key(2_000_000 + STAGE).kid == current.kid


def test_key_store_when_another_process_adds_a_key_then_picked_up_without_reload(tmp_path):
    keys_dir = tmp_path / "keys"
    generate_key(keys_dir, "ES256", now=1_000_000)
    store = KeyStore(keys_dir, RETIRE_AFTER, check_interval=0, stage_seconds=STAGE)
    new = generate_key(keys_dir, "ES256", now=1_000_100)
    assert store.ring.signing_key(1_000_100 + STAGE).kid == new.kid


def test_key_store_when_unusable_file_appears_then_keeps_signing_with_loaded_keys(
    tmp_path, caplog
):
    keys_dir = tmp_path / "keys"
    key = generate_key(keys_dir, "ES256")
    store = KeyStore(keys_dir, retire_after=100, check_interval=0, stage_seconds=STAGE)
    bad = keys_dir / "20990101T000000Z-ES256-bad.pem"
    bad.write_text("not a key")
    os.chmod(bad, 0o600)
    with caplog.at_level(logging.ERROR, logger="sts.core.keys"):
        assert store.ring.signing_key(key.created_at + STAGE).kid == key.kid
    assert "key directory not reloaded" in caplog.text
    bad.unlink()
    newer = generate_key(keys_dir, "ES256")
    assert store.ring.signing_key(newer.created_at + STAGE).kid == newer.kid
