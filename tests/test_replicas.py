"""Two replicas (DESIGN §9): two real STS processes (``sts serve``) sharing one PostgreSQL
database and one key directory, as production runs them behind a load balancer.

What one replica (or the ``sts`` command) changes, the other honours on its very next request:
a revocation, a disabled NHI, a disabled rule. A key rotation (``sts keys generate``) is
picked up by both without a restart, within ``STS_KEYS_RELOAD_SECONDS`` (1 here): both publish
the new key, both sign with it, and tokens signed by the old one still exchange.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from click.testing import CliRunner

from sts.cli import main
from sts.core.keys import KeyStore, generate_key
from sts.core.secrets import SecretHasher, load_hash_key
from sts.core.settings import Settings, SettingsError
from sts.runtime import build_runtime
from sts.services import nhis, rules
from sts.store.admin import admin_store
from sts.store.db import create_engine
from sts.store.migrate import upgrade
from tests.conftest import ISSUER, PG_DB, Registered
from tests.exchange_fixtures import ACCESS_TOKEN, EXCHANGE
from tests.test_migrations import fresh_postgres

STS = Path(sys.executable).parent / "sts"
SUBJECT_INVALID = {"error": "invalid_request", "error_description": "The subject token is invalid."}
CLIENT_FAILED = {"error": "invalid_client", "error_description": "Client authentication failed."}
TARGET_REFUSED = {
    "error": "invalid_target",
    "error_description": "The requested target is unknown or not allowed.",
}
NAMES = itertools.count()
#: The replicas' STS_KEY_STAGE_SECONDS: short, so that a rotation completes within the test.
STAGE = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def post(self, path: str, who: Registered | None = None, **form: Any) -> requests.Response:
        auth = (who.client_id, who.secret) if who is not None else None
        return requests.post(self.url + path, data=form, auth=auth, timeout=10)

    def token(self, who: Registered, **form: Any) -> requests.Response:
        return self.post("/token", who, **form)

    def exchange(self, who: Registered, subject_token: str, **form: Any) -> requests.Response:
        return self.token(who, grant_type=EXCHANGE, subject_token=subject_token,
                          subject_token_type=ACCESS_TOKEN, **form)

    def introspect(self, who: Registered, token: str) -> Any:
        resp = self.post("/introspect", who, token=token)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def kids(self) -> list[str]:
        resp = requests.get(self.url + "/jwks.json", timeout=10)
        assert resp.status_code == 200, resp.text
        return [k["kid"] for k in resp.json()["keys"]]


@dataclass
class Cluster:
    a: Replica
    b: Replica
    env: dict[str, str]
    database_url: str
    keys_dir: Path

    @property
    def replicas(self) -> tuple[Replica, Replica]:
        return self.a, self.b

    def sts(self, *args: str) -> str:
        """The ``sts`` command an administrator runs against the same database and keys."""
        result = CliRunner().invoke(main, list(args), env=self.env)
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    def nhi(self, prefix: str, kind: str = "service", **kwargs: Any) -> Registered:
        name = f"{prefix}-{next(NAMES)}"
        engine = create_engine(self.database_url)
        try:
            with admin_store(engine) as store:
                view, secret = nhis.create_nhi(
                    store, SecretHasher(load_hash_key(self.keys_dir, create=False)), name=name,
                    kind=kind, now=int(time.time()), admin="t", **kwargs)
        finally:
            engine.dispose()
        return Registered(view.client_id, secret, view.sub)

    def rule(self, actor: Registered, target: Registered, scope: str = "orders:read") -> str:
        engine = create_engine(self.database_url)
        try:
            with admin_store(engine) as store:
                created = rules.create_rule(store, actor=actor.client_id,
                                            targets=[target.client_id], scope=scope,
                                            now=int(time.time()), admin="t")
        finally:
            engine.dispose()
        return str(created["id"])


def _start(env: dict[str, str], port: int, workdir: Path) -> Replica:
    log = workdir / f"replica-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(STS), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Replica(f"http://127.0.0.1:{port}", proc, log)


def _wait_ready(replica: Replica) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(replica.url + "/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if replica.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"replica did not start:\n{replica.log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("replicas")
    url = fresh_postgres(f"{PG_DB}_replicas")
    upgrade(url)
    keys_dir = workdir / "keys"
    generate_key(keys_dir, "ES256")
    load_hash_key(keys_dir, create=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    env.update({"STS_DATABASE_URL": url, "STS_KEYS_DIR": str(keys_dir), "STS_ISSUER": ISSUER,
                "STS_KEYS_RELOAD_SECONDS": "1", "STS_LOG_LEVEL": "INFO",
                "STS_KEY_STAGE_SECONDS": str(STAGE)})
    a = _start(env, _free_port(), workdir)
    b = _start(env, _free_port(), workdir)
    try:
        _wait_ready(a)
        _wait_ready(b)
        yield Cluster(a, b, env, url, keys_dir)
    finally:
        for replica in (a, b):
            replica.process.terminate()
        for replica in (a, b):
            try:
                replica.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait(timeout=20)
    for replica in (a, b):  # the replicas' own logs: redaction never had anything to hide
        text = replica.log.read_text()
        assert "[jwt]" not in text and "[secret]" not in text
        assert "Traceback" not in text


@dataclass
class Chain:
    web: Registered
    agent: Registered
    tool: Registered
    rules: dict[str, str]


@pytest.fixture
def chain(cluster: Cluster) -> Chain:
    """Fresh NHIs web → agent → tool with their rules (names unique in the shared database)."""
    web = cluster.nhi("web", scope="orders:read")
    agent, tool = cluster.nhi("agent", "agent"), cluster.nhi("tool", "workload")
    ids = {"web": cluster.rule(web, agent), "agent": cluster.rule(agent, tool)}
    return Chain(web, agent, tool, ids)


def hop(cluster: Cluster, chain: Chain, via: Replica) -> tuple[str, str]:
    """web's own token, and the token web exchanged it for, addressed to agent."""
    root = via.token(chain.web, grant_type="client_credentials").json()["access_token"]
    resp = via.exchange(chain.web, root, audience=chain.agent.client_id)
    assert resp.status_code == 200, resp.text
    return root, resp.json()["access_token"]


# -- revocation ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["rfc7009", "cli"])
def test_revocation_when_revoked_through_one_replica_then_other_refuses_next_request(
    cluster, chain, how
):
    a, b = cluster.replicas
    _root, token = hop(cluster, chain, via=b)
    assert b.introspect(chain.agent, token)["active"] is True
    if how == "rfc7009":
        assert a.post("/revoke", chain.web, token=token).status_code == 200
    else:
        cluster.sts("revoke", "token", jwt.decode(token, options={
            "verify_signature": False})["jti"], "--reason", "test")
    refused = b.exchange(chain.agent, token, audience=chain.tool.client_id)
    assert (refused.status_code, refused.json()) == (400, SUBJECT_INVALID)
    assert b.introspect(chain.agent, token) == {"active": False}
    assert a.introspect(chain.agent, token) == {"active": False}


# -- nhi disable, rule disable -----------------------------------------------------------


@pytest.mark.postgres
def test_nhi_disable_when_run_then_both_replicas_refuse_it_on_next_request(cluster, chain):
    _root, token = hop(cluster, chain, via=cluster.a)
    for replica in cluster.replicas:  # both serve agent before
        resp = replica.token(chain.agent, grant_type="client_credentials")
        assert resp.status_code == 200, resp.text
    cluster.sts("nhi", "disable", chain.agent.client_id, "--reason", "compromised")
    for replica in cluster.replicas:
        resp = replica.token(chain.agent, grant_type="client_credentials")
        assert (resp.status_code, resp.json()) == (401, CLIENT_FAILED)
        resp = replica.exchange(chain.agent, token, audience=chain.tool.client_id)
        assert (resp.status_code, resp.json()) == (401, CLIENT_FAILED)


@pytest.mark.postgres
def test_rule_disable_when_run_then_both_replicas_refuse_on_next_request(cluster, chain):
    root, token = hop(cluster, chain, via=cluster.b)
    cluster.sts("rule", "disable", chain.rules["web"], "--reason", "withdrawn")
    for replica in cluster.replicas:
        # No rule lets web reach agent any more ...
        resp = replica.exchange(chain.web, root, audience=chain.agent.client_id)
        assert (resp.status_code, resp.json()) == (400, TARGET_REFUSED)
        # ... and what the withdrawn rule minted is no longer good for a further hop.
        resp = replica.exchange(chain.agent, token, audience=chain.tool.client_id)
        assert (resp.status_code, resp.json()) == (400, SUBJECT_INVALID)


# -- key rotation ----------------------------------------------------------------------------


@pytest.mark.postgres
def test_key_rotation_when_key_generated_then_both_replicas_use_it_without_restart(
    cluster, chain
):
    a, b = cluster.replicas
    old_kid = a.kids()[0]
    assert b.kids()[0] == old_kid
    _root, before = hop(cluster, chain, via=a)
    assert jwt.get_unverified_header(before)["kid"] == old_kid

    generated = json.loads(cluster.sts("keys", "generate", "--json"))
    new_kid, signs_at = generated["kid"], generated["signs_at"]
    assert (generated["status"], signs_at) == ("staged", generated["created_at"] + STAGE)
    deadline = time.monotonic() + 10  # the setting says 1 s; allow for a slow machine
    while not (a.kids()[:1] == [new_kid] and b.kids()[:1] == [new_kid]):
        assert time.monotonic() < deadline, (a.kids(), b.kids())
        time.sleep(0.1)
    # Published on both, and signing only from its activation: never before a verifier could
    # have fetched it.
    deadline = time.monotonic() + STAGE + 10
    while True:
        minted = [r.token(chain.web, grant_type="client_credentials").json()["access_token"]
                  for r in cluster.replicas]
        kids = [jwt.get_unverified_header(t)["kid"] for t in minted]
        for token, kid in zip(minted, kids, strict=True):
            issued = jwt.decode(token, options={"verify_signature": False})["iat"]
            assert kid == (new_kid if issued >= signs_at else old_kid), (issued, signs_at)
        if kids == [new_kid, new_kid]:
            break
        assert time.monotonic() < deadline, kids
        time.sleep(0.2)
    for replica in cluster.replicas:
        assert replica.kids()[:2] == [new_kid, old_kid]  # the old key stays published
        fresh = replica.token(chain.web, grant_type="client_credentials").json()["access_token"]
        assert jwt.get_unverified_header(fresh)["kid"] == new_kid
        # A token signed by the old key still exchanges, on either replica.
        resp = replica.exchange(chain.agent, before, audience=chain.tool.client_id)
        assert resp.status_code == 200, resp.text
        assert jwt.get_unverified_header(resp.json()["access_token"])["kid"] == new_kid
    assert a.process.poll() is None and b.process.poll() is None  # never restarted


# -- the setting -----------------------------------------------------------------------------


def test_keys_reload_seconds_when_set_then_the_key_store_checks_that_often(tmp_path):
    settings = Settings.load(environ={"STS_KEYS_RELOAD_SECONDS": "1",
                                      "STS_KEYS_DIR": str(tmp_path / "keys")},
                             database_url=f"sqlite:///{tmp_path / 'sts.db'}")
    runtime = build_runtime(settings)
    try:
        assert isinstance(runtime.keys, KeyStore) and runtime.keys.check_interval == 1
    finally:
        runtime.close()
    assert Settings().keys_reload_seconds == 5


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "soon"])
def test_keys_reload_seconds_when_not_a_positive_integer_then_refused(value):
    with pytest.raises(SettingsError, match="STS_KEYS_RELOAD_SECONDS"):
        Settings.load(environ={"STS_KEYS_RELOAD_SECONDS": value})


def test_generate_key_when_writing_then_a_replica_scanning_never_sees_a_partial_key(
    tmp_path, monkeypatch
):
    """``sts keys generate`` writes into the directory every replica rescans: a scan that falls
    between creating the file and writing it must not find an unreadable key."""
    keys_dir = tmp_path / "keys"
    first = generate_key(keys_dir, "ES256", now=1_700_000_000)
    store = KeyStore(keys_dir, retire_after=60, stage_seconds=0)
    scans: list[list[str]] = []
    real_fdopen = os.fdopen

    class ScanBeforeWrite:
        def __init__(self, fh: Any) -> None:
            self.fh = fh

        def __enter__(self) -> ScanBeforeWrite:
            return self

        def __exit__(self, *exc: Any) -> None:
            self.fh.close()

        def write(self, data: bytes) -> int:
            scans.append([k.kid for k in store.reload().keys])  # a replica's rescan, mid-write
            return int(self.fh.write(data))

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: ScanBeforeWrite(real_fdopen(fd, *a, **k)))
    second = generate_key(keys_dir, "ES256", now=1_700_000_100)
    monkeypatch.undo()
    assert scans == [[first.kid]]
    assert [k.kid for k in store.reload().keys] == [first.kid, second.kid]
    assert sorted(p.name for p in keys_dir.iterdir() if p.name != "credential-hash.key") == [
        f"{first.kid}.pem", f"{second.kid}.pem"]
