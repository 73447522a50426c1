"""``sts demo``: a person's request through four hops, then a revocation, end to end.

What it does, in its own temporary working directory (a SQLite registry and signing keys),
unless ``--issuer`` names an STS that is already running:

1. starts ``sts serve`` on a free loopback port;
2. registers a demo registry through the service layer (the same calls as the CLI commands
   it prints): a trusted identity provider for people (a key pair made here), the NHIs
   ``web``, ``agent``, ``tool`` and ``data``, and the delegation rules between them;
3. starts each hop as a tiny Flask app on the service SDK (:mod:`sts_demo.services`);
4. sends alice's request to ``web`` and prints the token each hop received (decoded: ``sub``,
   ``aud``, scope, ``act`` chain, ``exp``), then the audit answer for the transaction;
5. revokes the agent and sends the next request, which dies at the agent's hop;
6. stops every process it started and removes its working directory.

Tokens are never printed, only their decoded claims; client secrets stay in a 0600 file in
the working directory.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click
import jwt
import requests
from chain_sts_client import StsClientError, discover
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sts.core.keys import generate_key
from sts.core.secrets import SecretHasher, load_hash_key
from sts.core.settings import Settings, SettingsError
from sts.services import audit, issuers, nhis, revocation, rules
from sts.services.fields import load_jwks_text
from sts.store.admin import admin_store
from sts.store.db import create_engine
from sts.store.migrate import upgrade

Say = Callable[[str], None]
ROLES = {"web": "service", "agent": "agent", "tool": "workload", "data": "service"}
#: (actor, target, scope the actor asks for, rule options). Scope narrows, life shortens.
HOPS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("web", "agent", "orders:read orders:write", {}),
    ("agent", "tool", "orders:read", {"upstream": "web"}),
    ("tool", "data", "orders:read", {"upstream": "agent", "max_ttl": 120}),
]
PERSON = "alice"
PERSON_SCOPE = "orders:read orders:write profile"
IDP_ISSUER = "https://idp.demo.invalid"
START_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0


class DemoError(Exception):
    """The demo could not run (a process did not start, a step failed unexpectedly)."""


class DemoIdp:
    """A person's identity provider: an ES256 key pair that signs alice's sign-in token."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.kid = "demo-idp-1"
        self._key = ec.generate_private_key(ec.SECP256R1())

    @property
    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(ECAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": self.kid, "alg": "ES256", "use": "sig"})
        return {"keys": [jwk]}

    def token(self, sub: str, audience: str, scope: str, lifetime: int = 600) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience,
            "scope": scope,
            "iat": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(claims, self._key, algorithm="ES256", headers={"kid": self.kid})


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _private_file(path: Path, content: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    return path


def _child_env(**overrides: str) -> dict[str, str]:
    """The environment of a child process: no ``STS_*`` setting leaks in from the caller's
    shell (the demo's STS is configured here, completely)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STS_")}
    env.update(overrides)
    return env


@dataclass
class Processes:
    """Child processes, stopped in reverse order of start, whatever happens."""

    workdir: Path
    children: list[tuple[str, subprocess.Popen[str]]] = field(default_factory=list)
    logs: list[IO[str]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        log = open(self.workdir / f"{name}.log", "w")  # noqa: SIM115 - closed in stop_all
        self.logs.append(log)
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            args,
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.children.append((name, child))
        return child

    def log_tail(self, name: str, lines: int = 15) -> str:
        path = self.workdir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop_all(self) -> int:
        stopped = 0
        for _, child in reversed(self.children):
            if child.poll() is None:
                child.terminate()
                stopped += 1
        for _, child in reversed(self.children):
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
            if child.stdout is not None:
                child.stdout.close()
        for log in self.logs:
            log.close()
        self.children.clear()
        return stopped


def _ready_line(child: subprocess.Popen[str], timeout: float) -> str | None:
    """The child's first line of output, or ``None`` if it exits or stays silent."""
    lines: queue.Queue[str] = queue.Queue()
    assert child.stdout is not None
    stdout = child.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout) or None
    except queue.Empty:
        return None


def _wait_ready(url: str, child: subprocess.Popen[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.1)
    return False


def start_sts(procs: Processes, say: Say) -> Settings:
    """A fresh STS on the embedded database in the working directory."""
    keys_dir = procs.workdir / "keys"
    database_url = f"sqlite:///{procs.workdir / 'sts.db'}"
    upgrade(database_url)
    generate_key(keys_dir, "ES256")
    load_hash_key(keys_dir, create=True)
    for _attempt in range(3):
        port = _free_port()
        settings = Settings(
            issuer=f"http://127.0.0.1:{port}",
            database_url=database_url,
            keys_dir=keys_dir,
            log_level="WARNING",
        ).validate()
        env = _child_env(
            STS_ENV="development",
            STS_ISSUER=settings.issuer,
            STS_DATABASE_URL=database_url,
            STS_KEYS_DIR=str(keys_dir),
            STS_LOG_LEVEL="WARNING",
        )
        child = procs.start(
            "sts",
            [sys.executable, "-c", "from sts.cli import main; main()", "serve",
             "--host", "127.0.0.1", "--port", str(port)],
            env,
        )  # fmt: skip
        if _wait_ready(settings.issuer + "/readyz", child, START_TIMEOUT):
            say(f"  STS      {settings.issuer}  (sts serve, pid {child.pid})")
            return settings
        if child.poll() is None:
            break  # running but never ready: not a port clash
    raise DemoError("the STS did not start:\n" + procs.log_tail("sts"))


def existing_sts(issuer: str, say: Say) -> Settings:
    """An STS that is already running; the demo registers in its registry (``STS_*``)."""
    try:
        settings = Settings.load()
        discover(issuer)
    except (SettingsError, StsClientError) as exc:
        raise DemoError(f"cannot use the STS at {issuer}: {exc}") from None
    say(f"  STS      {issuer}  (already running; registry {settings.database_url.split(':')[0]})")
    return settings


def register(
    settings: Settings, names: dict[str, str], idp: DemoIdp, workdir: Path, say: Say
) -> dict[str, str]:
    """The demo registry, through the service layer the CLI uses; returns client secrets."""
    jwks_file = workdir / "idp-jwks.json"
    jwks_file.write_text(json.dumps(idp.jwks, indent=2))
    hasher = SecretHasher(load_hash_key(settings.keys_dir, create=not settings.is_production))
    engine = create_engine(settings.database_url, hide_parameters=True)
    now = int(time.time())
    found: dict[str, str] = {}
    try:
        with admin_store(engine) as store:
            issuers.add_issuer(
                store,
                issuer=idp.issuer,
                jwks=load_jwks_text(jwks_file.read_text(), "--jwks"),
                audiences=[names["web"]],
                algorithms=["ES256"],
                scope_mode="cap",
                now=now,
                admin="demo",
            )
            say(
                f"  $ sts issuer add {idp.issuer} --jwks idp-jwks.json --audience {names['web']}"
                " --alg ES256 --scope-mode cap"
            )
            for role, kind in ROLES.items():
                _, secret = nhis.create_nhi(
                    store, hasher, name=names[role], kind=kind, owner="demo", now=now, admin="demo"
                )
                found[role] = str(secret)
                say(f"  $ sts nhi create {names[role]} --kind {kind} --owner demo")
            for actor, target, scope, options in HOPS:
                upstream = options.get("upstream")
                rules.create_rule(
                    store,
                    actor=names[actor],
                    targets=[names[target]],
                    scope=scope,
                    subject=f"issuer:{idp.issuer}" if actor == "web" else "any",
                    upstream=names[upstream] if upstream else None,
                    max_ttl=options.get("max_ttl"),
                    now=now,
                    admin="demo",
                )
                say(
                    f"  $ sts rule create --actor {names[actor]} --target {names[target]}"
                    f' --scope "{scope}"'
                    + (f" --subject issuer:{idp.issuer}" if actor == "web" else "")
                    + (f" --upstream {names[upstream]}" if upstream else "")
                    + (f" --max-ttl {options['max_ttl']}" if "max_ttl" in options else "")
                )
    finally:
        engine.dispose()
    return found


def start_services(
    procs: Processes,
    settings: Settings,
    names: dict[str, str],
    idp: DemoIdp,
    client_secrets: dict[str, str],
    say: Say,
) -> dict[str, str]:
    """Start data, tool, agent, web (each needs the URL of the next); return their URLs."""
    calls = {actor: (target, scope) for actor, target, scope, _ in HOPS}
    services: dict[str, Any] = {}
    for role in ROLES:
        spec: dict[str, Any] = {
            "client_id": names[role],
            "client_secret": client_secrets[role],
            "requires": "orders:read",
        }
        if role in calls:
            target, scope = calls[role]
            spec["downstream"] = {"role": target, "audience": names[target], "scope": scope}
        if role == "web":
            spec["idp"] = {"issuer": idp.issuer, "jwks": idp.jwks}
        services[role] = spec
    config = {"issuer": settings.issuer, "poll_interval": 1.0, "services": services}
    config_file = _private_file(procs.workdir / "services.json", json.dumps(config))
    urls: dict[str, str] = {}
    pids: dict[str, int] = {}
    downstream_url: str | None = None
    for role in reversed(ROLES):
        args = [sys.executable, "-m", "sts_demo.services", str(config_file), role]
        child = procs.start(role, [*args, downstream_url] if downstream_url else args,
                            _child_env())  # fmt: skip
        line = _ready_line(child, START_TIMEOUT)
        if not line or not line.startswith("READY "):
            raise DemoError(f"the {role} service did not start:\n" + procs.log_tail(role))
        urls[role] = downstream_url = f"http://127.0.0.1:{int(line.split()[1])}/"
        pids[role] = child.pid
    for role in ROLES:
        say(f"  {role:<8} {urls[role]}  (NHI {names[role]}, kind {ROLES[role]}, pid {pids[role]})")
    return urls


def _act(act: dict[str, Any] | None) -> str:
    """The ``act`` claim as RFC 8693 §4.1 writes it (``sub`` first, the outermost actor is
    the current one), with the order the actors acted in."""
    if not act:
        return "-  (no actor yet: the person's own token)"
    subs: list[str] = []
    level: dict[str, Any] | None = act
    while level:
        subs.append(level["sub"])
        level = level.get("act")
    nested = "".join(f'{{"sub": "{s}", "act": ' for s in subs[:-1])
    nested += f'{{"sub": "{subs[-1]}"}}' + "}" * (len(subs) - 1)
    return f"{nested}  (acted: {' -> '.join(reversed(subs))})"


def _hops(trace: dict[str, Any]) -> Iterator[dict[str, Any]]:
    hop: dict[str, Any] | None = trace
    while hop is not None:
        yield hop
        hop = hop.get("downstream")


def print_trace(trace: dict[str, Any], say: Say) -> tuple[str, str] | None:
    """Each hop's decoded token; returns the edge (from, to) where the request died."""
    now = int(time.time())
    sender = f"{PERSON} (sign-in token from the identity provider)"
    for n, hop in enumerate(_hops(trace), start=1):
        saw = hop["saw"]
        say(f"  hop {n}  {sender} -> {hop['service']}")
        say(f"         sub    {saw['sub']}")
        say(f"         aud    {saw['aud']}")
        say(f"         scope  {saw['scope'] or '-'}")
        say(f"         act    {_act(saw['act'])}")
        say(f"         exp    {_iso(saw['exp'])} (in {saw['exp'] - now} s)")
        say(f"         txn    {saw['txn'] or '-'}")
        refused = hop.get("refused")
        if refused:
            target = refused.get("target", refused["by"])
            who = "the STS" if refused["by"] == "sts" else refused["by"]
            say(f"  hop {n + 1}  {hop['service']} -> {target}: REFUSED by {who}:"
                f" {refused['error']} ({refused['description']})")  # fmt: skip
            return hop["service"], target
        if "result" in hop:
            orders = ", ".join(f"{o['id']} {o['item']}" for o in hop["result"]["orders"])
            say(f"         answered: orders of {hop['result']['for']}: {orders}")
        sender = hop["service"]
    return None


def send_request(web_url: str, token: str) -> tuple[int, dict[str, Any]]:
    reply = requests.post(
        web_url, json={}, headers={"Authorization": f"Bearer {token}"}, timeout=REQUEST_TIMEOUT
    )
    try:
        body = reply.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict) or "service" not in body:
        raise DemoError(f"web answered HTTP {reply.status_code} without a trace: {body}")
    return reply.status_code, body


def _story(settings: Settings, txn: str) -> dict[str, Any]:
    engine = create_engine(settings.database_url, hide_parameters=True)
    try:
        with admin_store(engine) as store:
            return audit.show(store, now=int(time.time()), txn=txn)
    finally:
        engine.dispose()


def wait_for_reports(settings: Settings, txn: str, timeout: float = 10.0) -> dict[str, Any]:
    """The transaction's story once the data service's report has arrived (the SDK sends it
    in the background, after the answer), or as it stands at the timeout."""
    deadline = time.monotonic() + timeout
    story = _story(settings, txn)
    while story["accessed"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
        story = _story(settings, txn)
    return story


def print_audit(story: dict[str, Any], say: Say) -> None:
    """The four questions of an incident, answered for the transaction."""
    init = story["initiated_by"]
    say(f"  1. initiated by  {init['subject']} (issuer {init['issuer'] or 'not recorded'})"
        f" at {_iso(init['at'])}, first client {init['first_client']}")  # fmt: skip
    say(f"  2. executed by   {' -> '.join(story['executed_by'])}")
    say("  3. identities per hop (hop 1 is the first exchange):")
    for number, hop in enumerate(story["hops"], 1):
        say(
            f"     hop {number}: {hop['actor']} -> {hop['target']} [{hop['scope']}]"
            f"  credential {hop['credential_id'] or '-'}  rule {hop['rule_id'] or '-'}"
            f"  {hop['status']}"
        )
    say("  4. data accessed and sent (as the services reported it):")
    for number, hop in enumerate(story["hops"], 1):
        for r in hop.get("reports", []):
            say(
                f"     hop {number}: {r['reported_by']} {r['action']} {r['resource']}"
                f"  [{', '.join(r['data_classes']) or '-'}]  {r['records']} record(s)"
                f"  sent to {r['destination'] or '-'}"
            )
    if story["accessed"] is None:
        say("     nothing reported")


def print_died(story: dict[str, Any], say: Say) -> None:
    """Each hop of the transaction after the revocation: what died, what was left."""
    for number, hop in enumerate(story["hops"], 1):
        state = hop["status"] + (f" ({hop['status_reason']})" if hop["status_reason"] else "")
        say(f"     hop {number}: {hop['actor']} -> {hop['target']}  {state}")


def revoke_agent(settings: Settings, agent: str, say: Say) -> None:
    reason = "demo: the agent is compromised"
    engine = create_engine(settings.database_url, hide_parameters=True)
    try:
        with admin_store(engine) as store:
            result = revocation.revoke(
                store, "nhi", agent, now=int(time.time()), admin="demo", reason=reason
            )
    finally:
        engine.dispose()
    say(f'  $ sts revoke nhi {agent} --reason "{reason}"')
    say(
        f"  revoked nhi {agent}: {result.tokens} live token(s) in {result.transactions}"
        " transaction(s); it can no longer authenticate, act or be called"
    )


def run_demo(issuer: str | None, keep: bool, say: Say) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="chain-sts-demo-"))
    procs = Processes(workdir)
    ok = False
    try:
        say("Chain STS demo: a person's request through web -> agent -> tool -> data\n")
        say(f"  workdir  {workdir}")
        settings = start_sts(procs, say) if issuer is None else existing_sts(issuer, say)
        suffix = "" if issuer is None else "-" + secrets.token_hex(3)
        names = {role: role + suffix for role in ROLES}
        idp = DemoIdp(IDP_ISSUER + (f"/{suffix[1:]}" if suffix else ""))

        say("\nRegistry (the same calls as these commands):")
        client_secrets = register(settings, names, idp, workdir, say)

        say("\nServices (Flask apps on the chain-sts-client SDK, one process each):")
        urls = start_services(procs, settings, names, idp, client_secrets, say)

        say(f"\nRequest 1: {PERSON} asks web for her orders")
        status, trace = send_request(urls["web"], idp.token(PERSON, names["web"], PERSON_SCOPE))
        died = print_trace(trace, say)
        if status != 200 or died is not None:
            raise DemoError(f"request 1 failed (HTTP {status})")
        txn = next(h["saw"]["txn"] for h in _hops(trace) if h["saw"]["txn"])

        say(f"\nAudit: the four questions  ($ sts audit show --txn {txn})")
        print_audit(wait_for_reports(settings, txn), say)

        say("\nRevocation: the agent is compromised")
        revoke_agent(settings, names["agent"], say)
        say(f"  what died in request 1's chain  ($ sts chain show --txn {txn}):")
        print_died(_story(settings, txn), say)
        say(f"  the console draws this chain at {settings.issuer}/console/txn/{txn}")
        say("  (sign in with an admin NHI: $ sts admin bootstrap NAME; the demo's own STS")
        say("  stops when the demo ends, so use --issuer to keep the chain on a running STS)")

        say(f"\nRequest 2: {PERSON} asks again, with a new sign-in token")
        status, trace = send_request(urls["web"], idp.token(PERSON, names["web"], PERSON_SCOPE))
        died = print_trace(trace, say)
        if died is None or "agent" not in died:
            raise DemoError(f"request 2 was expected to die at the agent's hop (HTTP {status})")
        say(f"  => the request died at the agent's hop ({died[0]} -> {died[1]});"
            f" web answered HTTP {status}")  # fmt: skip
        ok = True
    except DemoError as exc:
        say(f"\ndemo failed: {exc}")
    finally:
        stopped = procs.stop_all()
        if keep:
            say(f"\nStopped {stopped} process(es); kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            say(f"\nStopped {stopped} process(es) and removed {workdir}")
    return 0 if ok else 1


@contextmanager
def _terminate_as_exit() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the children are stopped and the workdir removed."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@click.command()
@click.option(
    "--issuer",
    default=None,
    help="Use the STS already running at this URL (registers in the registry of STS_*).",
)
@click.option("--keep-workdir", is_flag=True, help="Keep the working directory and its logs.")
def demo(issuer: str | None, keep_workdir: bool) -> None:
    """Run a person's request through web -> agent -> tool -> data, then revoke the agent."""
    with _terminate_as_exit():
        code = run_demo(issuer, keep_workdir, click.echo)
    sys.exit(code)
