"""The ``sts`` console command for administrators and scripts.

Every command reads the same settings as the server (``STS_*`` over ``config/sts.toml``),
calls the shared service layer (:mod:`sts.services`), and with ``--json`` prints one JSON
document. Errors print a one-line message and exit non-zero (2: bad input, 1: other).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import click

from sts.cli.admin import admin
from sts.cli.delegation import chain, rule
from sts.cli.incident import audit, gc, revoke
from sts.cli.support import (
    _admin,
    _emit,
    _hasher,
    _iso,
    _now,
    _settings,
    _transaction,
    handles_errors,
    json_option,
)
from sts.core.keys import KeyStore, generate_key
from sts.core.secrets import load_hash_key
from sts.core.settings import SIGNING_ALGORITHMS, Settings
from sts.services import credentials, issuers, nhis
from sts.services.fields import load_jwks_text
from sts.store.migrate import upgrade


@click.group()
def main() -> None:
    """Chain STS: OAuth 2.0 token exchange with identity chaining."""


# -- db -------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@json_option
@handles_errors
def db_upgrade(as_json: bool) -> None:
    """Migrate the registry schema to the newest revision."""
    revision = upgrade(_settings().database_url)
    _emit(as_json, {"revision": revision}, lambda: click.echo(f"database at revision {revision}"))


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
@json_option
@handles_errors
def keys_generate(alg: str | None, as_json: bool) -> None:
    """Create a new signing key; it signs from now on, older keys stay published.

    Also creates the credential hashing key if the directory has none yet: production never
    creates it on its own, and this is the command that prepares a key directory.
    """
    settings = _settings()
    key = generate_key(settings.keys_dir, alg or settings.signing_alg)
    load_hash_key(settings.keys_dir, create=True)
    _emit(
        as_json,
        {"kid": key.kid, "alg": key.alg, "created_at": key.created_at},
        lambda: click.echo(f"generated {key.alg} key {key.kid}"),
    )


@keys.command("list")
@json_option
@handles_errors
def keys_list(as_json: bool) -> None:
    """List keys: signing, published (verifies older tokens) or retired."""
    settings = _settings()
    ring = KeyStore(settings.keys_dir, settings.max_token_ttl + settings.leeway).ring
    now = _now()
    listed = [(k, ring.status(k, now)) for k in reversed(ring.keys)]
    rows = [
        {"kid": k.kid, "alg": k.alg, "created_at": k.created_at, "status": status}
        for k, status in listed
    ]

    def human() -> None:
        for k, status in listed:
            click.echo(f"{k.kid}  {k.alg:6}  {_iso(k.created_at)}  {status}")

    _emit(as_json, rows, human)


# -- serve ----------------------------------------------------------------------------------
@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Migrate and seed a demo registry first (dev only).")
@handles_errors
def serve(host: str, port: int, demo: bool) -> None:
    """Run the development server (production: gunicorn, see config/gunicorn.conf.py)."""
    from sts.web import create_app
    from sts_demo.registry import seed_demo_registry

    settings = _settings()
    if "STS_ISSUER" not in os.environ and settings.issuer == Settings().issuer:
        # Development convenience: the issuer follows where the server actually listens.
        settings = dataclasses.replace(settings, issuer=f"http://{host}:{port}").validate()
    if demo or settings.demo_registry:
        if settings.is_production:
            raise click.ClickException("--demo is for development only")
        upgrade(settings.database_url)
        seed_demo_registry(settings, click.echo)
    app = create_app(settings)
    click.echo(f"Chain STS {settings.issuer} listening on http://{host}:{port}")
    app.run(host=host, port=port, threaded=True)


# -- nhi ------------------------------------------------------------------------------------
@main.group()
def nhi() -> None:
    """Non-human identities: services, agents, workloads."""


def _print_nhi(view: nhis.NhiView) -> None:
    click.echo(
        f"client_id: {view.client_id}\nkind:      {view.kind}\nsub:       {view.sub}\n"
        f"owner:     {view.owner or '-'}\nstatus:    {view.status}"
        + (f" ({view.status_reason})" if view.status_reason else "")
        + f"\nscope:     {view.scopes or '-'}\ngrants:    {' '.join(view.grants)}"
    )
    for uri in view.resources:
        click.echo(f"resource:  {uri}")
    for cred in view.credentials:
        click.echo(
            f"credential: {cred['id']} {cred['type']} {cred['status']}"
            + (f" expires {_iso(cred['expires_at'])}" if cred["expires_at"] else "")
        )


@nhi.command("create")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(["service", "agent", "workload"]))
@click.option("--owner", default="", help="Accountable owner (team or person).")
@click.option("--sub", default=None, help="Subject in tokens (default: the name).")
@click.option("--scope", default="", help="Scopes it may request for itself, space-separated.")
@click.option(
    "--grant",
    "grants",
    multiple=True,
    help="Allowed grant (client_credentials, token-exchange); default both.",
)
@click.option("--resource", "resources", multiple=True, help="RFC 8707 resource URI naming it.")
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Public JWKS file for private_key_jwt.",
)
@click.option("--jwks-uri", default=None, help="JWKS URL for private_key_jwt.")
@json_option
@handles_errors
def nhi_create(
    name: str,
    kind: str,
    owner: str,
    sub: str | None,
    scope: str,
    grants: tuple[str, ...],
    resources: tuple[str, ...],
    jwks_file: Path | None,
    jwks_uri: str | None,
    as_json: bool,
) -> None:
    """Register an NHI; prints its client_id and, once, its generated secret."""
    settings = _settings()
    jwks = load_jwks_text(jwks_file.read_text(), "--jwks") if jwks_file else None
    with _transaction() as store:
        view, secret = nhis.create_nhi(
            store,
            _hasher(settings),
            name=name,
            kind=kind,
            now=_now(),
            admin=_admin(),
            owner=owner,
            sub=sub,
            scope=scope,
            grants=list(grants),
            resources=list(resources),
            jwks=jwks,
            jwks_uri=jwks_uri,
        )
    data = {
        "client_id": view.client_id,
        "client_secret": secret,
        "sub": view.sub,
        "kind": view.kind,
    }

    def human() -> None:
        click.echo(f"client_id:     {view.client_id}")
        if secret:
            click.echo(f"client_secret: {secret}")
            click.echo("(the secret is shown only once; store it now)")

    _emit(as_json, data, human)


@nhi.command("list")
@click.option("--kind", default=None)
@click.option("--status", default=None, type=click.Choice(["active", "disabled"]))
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, type=click.IntRange(0))
@json_option
@handles_errors
def nhi_list(kind: str | None, status: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List NHIs."""
    with _transaction() as store:
        views, total = nhis.list_nhis(store, kind=kind, status=status, limit=limit, offset=offset)

    def human() -> None:
        for v in views:
            click.echo(f"{v.client_id:32} {v.kind:9} {v.status:9} {v.sub}")
        click.echo(f"({len(views)} of {total})")

    _emit(as_json, {"items": [v.as_dict() for v in views], "total": total}, human)


@nhi.command("show")
@click.argument("name")
@json_option
@handles_errors
def nhi_show(name: str, as_json: bool) -> None:
    """Show one NHI with its credentials (never a secret)."""
    with _transaction() as store:
        view = nhis.get_nhi(store, name)
    _emit(as_json, view.as_dict(), lambda: _print_nhi(view))


@nhi.command("disable")
@click.argument("name")
@click.option("--reason", required=True)
@json_option
@handles_errors
def nhi_disable(name: str, reason: str, as_json: bool) -> None:
    """Disable an NHI: it can no longer authenticate, act or be a target."""
    with _transaction() as store:
        view = nhis.set_nhi_status(
            store, name, status="disabled", reason=reason, now=_now(), admin=_admin()
        )
    _emit(as_json, view.as_dict(), lambda: click.echo(f"{name} disabled"))


@nhi.command("enable")
@click.argument("name")
@json_option
@handles_errors
def nhi_enable(name: str, as_json: bool) -> None:
    """Enable a disabled NHI."""
    with _transaction() as store:
        view = nhis.set_nhi_status(
            store, name, status="active", reason="", now=_now(), admin=_admin()
        )
    _emit(as_json, view.as_dict(), lambda: click.echo(f"{name} enabled"))


@nhi.group("secret")
def nhi_secret() -> None:
    """Client secrets."""


@nhi_secret.command("rotate")
@click.argument("name")
@click.option(
    "--grace",
    default=3600,
    show_default=True,
    type=click.IntRange(0),
    help="Seconds the current secrets keep working (0: stop now).",
)
@json_option
@handles_errors
def nhi_secret_rotate(name: str, grace: int, as_json: bool) -> None:
    """Issue a new secret; old ones keep working for the grace period."""
    settings = _settings()
    with _transaction() as store:
        cred_id, secret = credentials.rotate_secret(
            store, _hasher(settings), name, now=_now(), admin=_admin(), grace=grace
        )
    data = {"client_id": name, "credential_id": cred_id, "client_secret": secret, "grace": grace}

    def human() -> None:
        click.echo(
            f"client_secret: {secret}\n(the secret is shown only once; "
            f"previous secrets stop working in {grace}s)"
        )

    _emit(as_json, data, human)


# -- issuer ---------------------------------------------------------------------------------
@main.group()
def issuer() -> None:
    """Trusted external token issuers."""


@issuer.command("add")
@click.argument("iss")
@click.option("--jwks", "jwks_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jwks-uri", default=None)
@click.option(
    "--audience", "audiences", multiple=True, help="Audience its tokens must carry (any one)."
)
@click.option("--alg", "algorithms", multiple=True, help="Allowed algorithm (repeatable).")
@click.option(
    "--scope-mode",
    type=click.Choice(["rule", "cap"]),
    default="rule",
    show_default=True,
    help="cap: its scopes cap exchanged scope; rule: rules only.",
)
@json_option
@handles_errors
def issuer_add(
    iss: str,
    jwks_file: Path | None,
    jwks_uri: str | None,
    audiences: tuple[str, ...],
    algorithms: tuple[str, ...],
    scope_mode: str,
    as_json: bool,
) -> None:
    """Trust an external issuer's JWTs as subject tokens."""
    jwks = load_jwks_text(jwks_file.read_text(), "--jwks") if jwks_file else None
    with _transaction() as store:
        data = issuers.add_issuer(
            store,
            issuer=iss,
            jwks=jwks,
            jwks_uri=jwks_uri,
            audiences=list(audiences),
            algorithms=list(algorithms),
            scope_mode=scope_mode,
            now=_now(),
            admin=_admin(),
        )
    _emit(as_json, data, lambda: click.echo(f"trusted issuer {iss} added"))


@issuer.command("list")
@json_option
@handles_errors
def issuer_list(as_json: bool) -> None:
    """List trusted issuers."""
    with _transaction() as store:
        rows = issuers.list_issuers(store)

    def human() -> None:
        for r in rows:
            click.echo(f"{r['issuer']}  {r['status']}  {r['jwks_uri'] or 'inline JWKS'}")

    _emit(as_json, rows, human)


# Command groups that live in their own modules.
for group in (rule, chain, revoke, audit, gc, admin):
    main.add_command(group)

from sts_demo.run import demo  # noqa: E402

main.add_command(demo)
