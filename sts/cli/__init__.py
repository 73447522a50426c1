"""The ``sts`` console command for administrators and scripts.

Every command reads the same settings as the server (``STS_*`` over ``config/sts.toml``),
calls the shared service layer (:mod:`sts.services`), and with ``--json`` prints one JSON
document. Errors print a one-line message and exit non-zero (2: bad input, 1: other).
"""

from __future__ import annotations

import dataclasses
import os
import time

import click
from sqlalchemy.exc import DBAPIError

from sts.cli.admin import admin
from sts.cli.delegation import chain, rule
from sts.cli.incident import audit, gc, revoke
from sts.cli.manifest import registry_group
from sts.cli.policy import policy_group
from sts.cli.registry import issuer, nhi
from sts.cli.ssf import ssf
from sts.cli.support import (
    StsGroup,
    emit,
    handles_errors,
    iso_time,
    json_option,
    load_settings,
    now_seconds,
    say,
)
from sts.cli.token import token_group
from sts.core.keys import KeyStore, generate_key
from sts.core.metrics import MULTIPROC_ENV
from sts.core.secrets import load_hash_key
from sts.core.settings import SIGNING_ALGORITHMS, Settings
from sts.store.db import database_host, is_unavailable
from sts.store.migrate import upgrade


@click.group(cls=StsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    package_name="chain-sts", prog_name="sts", message="%(prog)s (Chain STS) %(version)s"
)
def main() -> None:
    """Chain STS: OAuth 2.0 token exchange with identity chaining."""


# -- db -------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option(
    "--wait",
    "wait_seconds",
    type=click.IntRange(0, 3600),
    default=0,
    show_default=True,
    help="Seconds to wait for the database to accept connections (a container starting "
    "beside it) before giving up.",
)
@json_option
@handles_errors
def db_upgrade(wait_seconds: int, as_json: bool) -> None:
    """Migrate the registry schema to the newest revision."""
    url = load_settings().database_url
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            revision = upgrade(url)
            break
        except DBAPIError as exc:
            if not is_unavailable(exc) or time.monotonic() >= deadline:
                raise
            # One line per try: where, and the error's class (never the URL's credentials).
            say(
                f"waiting for the database at {database_host(url)} ({type(exc.orig).__name__})",
                err=True,
            )
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    emit(as_json, {"revision": revision}, lambda: say(f"database at revision {revision}"))


# -- keys -----------------------------------------------------------------------------------
@main.group()
def keys() -> None:
    """Signing keys."""


@keys.command("generate")
@click.option(
    "--alg",
    type=click.Choice(SIGNING_ALGORITHMS),
    default=None,
    help="Key algorithm (default: STS_SIGNING_ALG).",
)
@click.option(
    "--now",
    "immediate",
    is_flag=True,
    help="Sign at once, without the stage (emergency rotation after a key compromise: "
    "verifiers that have not yet fetched the JWKS refuse its tokens until they do).",
)
@json_option
@handles_errors
def keys_generate(alg: str | None, immediate: bool, as_json: bool) -> None:
    """Create a new signing key: published at once, signing after STS_KEY_STAGE_SECONDS
    (or at once with --now); older keys stay published until their tokens have expired.

    Also creates the credential hashing key if the directory has none yet: production never
    creates it on its own, and this is the command that prepares a key directory.
    """
    settings = load_settings()
    key = generate_key(settings.keys_dir, alg or settings.signing_alg, immediate=immediate)
    load_hash_key(settings.keys_dir, create=True)
    ring = KeyStore.for_settings(settings).ring
    status, signs_at = ring.status(key, now_seconds()), ring.activation(key)
    data = {
        "kid": key.kid,
        "alg": key.alg,
        "created_at": key.created_at,
        "status": status,
        "signs_at": signs_at,
    }
    when = "signs now" if status == "signing" else f"signs from {iso_time(signs_at)}"
    emit(as_json, data, lambda: say(f"generated {key.alg} key {key.kid} (published; {when})"))


@keys.command("check")
@json_option
@handles_errors
def keys_check(as_json: bool) -> None:
    """Check that the key directory can serve: a signing key and the credential hashing
    key (what a production start needs; a container runs this before its server)."""
    settings = load_settings()
    key = KeyStore.for_settings(settings).ring.signing_key(now_seconds())
    load_hash_key(settings.keys_dir, create=False)
    data = {"kid": key.kid, "alg": key.alg, "keys_dir": str(settings.keys_dir)}
    emit(as_json, data, lambda: say(f"keys ready: {key.kid} signs ({key.alg})"))


@keys.command("list")
@json_option
@handles_errors
def keys_list(as_json: bool) -> None:
    """List keys: staged (published, signs from its time), signing, published (verifies the
    tokens it signed, until its time) or retired."""
    ring = KeyStore.for_settings(load_settings()).ring
    now = now_seconds()
    listed = [(k, ring.status(k, now), ring.activation(k), ring.retires_at(k)) for k in ring.keys]
    rows = [
        {
            "kid": k.kid,
            "alg": k.alg,
            "created_at": k.created_at,
            "status": status,
            "signs_at": signs_at,
            "retires_at": retires_at,
        }
        for k, status, signs_at, retires_at in reversed(listed)
    ]

    def human() -> None:
        for k, status, signs_at, retires_at in reversed(listed):
            when = {
                "staged": f"  signs from {iso_time(signs_at)}",
                "published": f"  until {iso_time(retires_at)}",
            }.get(status, "")
            say(f"{k.kid}  {k.alg:6}  {iso_time(k.created_at)}  {status}{when}")

    emit(as_json, {"items": rows, "total": len(rows)}, human)


# -- serve ----------------------------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--demo", is_flag=True, help="Migrate and seed a demo registry first (dev only).")
@click.option(
    "--dev-server",
    is_flag=True,
    help="Werkzeug's single-process threaded server instead of Granian (debugging).",
)
@handles_errors
def serve(host: str, port: int, demo: bool, dev_server: bool) -> None:
    """Run the STS: Granian with STS_HTTP_WORKERS processes (see sts/web/server.py)."""
    from sts_demo.registry import seed_demo_registry

    settings = load_settings()
    if "STS_ISSUER" not in os.environ and settings.issuer == Settings().issuer:
        # Development convenience: the issuer follows where the server actually listens. The
        # workers read their settings from the environment, so it goes there too.
        settings = dataclasses.replace(settings, issuer=f"http://{host}:{port}").validate()
        os.environ["STS_ISSUER"] = settings.issuer
    if demo or settings.demo_registry:
        if settings.is_production:
            raise click.ClickException("--demo is for development only")
        upgrade(settings.database_url)
        seed_demo_registry(settings, say)
    if dev_server:
        from sts.web import create_app
        from sts.web.devserver import PathOnlyRequestHandler

        app = create_app(settings)
        say(f"Chain STS {settings.issuer} listening on http://{host}:{port} (development server)")
        # Logs each request's path, never its query string (which may carry a token or secret).
        app.run(host=host, port=port, threaded=True, request_handler=PathOnlyRequestHandler)
        return
    from sts.runtime import build_runtime
    from sts.web.server import production_server, workers_for

    # Keys are checked (and development keys made) once here, not raced by every worker; the
    # engine is only built, never connected, and each worker opens its own after the fork.
    build_runtime(settings).engine.dispose()
    workers = workers_for(settings)
    say(
        f"Chain STS {settings.issuer} listening on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''})"
    )
    if workers > 1 and settings.metrics != "off" and not os.environ.get(MULTIPROC_ENV):
        # Metric objects are made when the CLI starts, before the workers fork: only a
        # directory named beforehand lets /metrics count every worker (the image names one).
        say(f"note: /metrics counts the answering worker only; set {MULTIPROC_ENV} to a "
            "directory of its own to count all of them", err=True)  # fmt: skip
    production_server(settings, host, port).serve()


# Command groups that live in their own modules.
for group in (
    nhi,
    issuer,
    rule,
    chain,
    revoke,
    audit,
    gc,
    admin,
    policy_group,
    token_group,
    ssf,
    registry_group,
):
    main.add_command(group)

from sts_demo.run import demo  # noqa: E402

main.add_command(demo)
