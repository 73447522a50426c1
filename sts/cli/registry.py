"""``sts nhi`` and ``sts issuer``: non-human identities, their credentials, trusted issuers."""

from __future__ import annotations

from pathlib import Path

import click

from sts.cli.support import (
    MAX_OFFSET,
    MAX_SECONDS,
    TAKES_IDS,
    administrator,
    emit,
    handles_errors,
    iso_time,
    json_option,
    load_settings,
    now_seconds,
    open_store,
    say,
    secret_hasher,
)
from sts.core.domain import KINDS
from sts.services import credentials, issuers, nhis
from sts.services.fields import load_jwks_text


# -- nhi ------------------------------------------------------------------------------------
@click.group()
def nhi() -> None:
    """Non-human identities: services, agents, workloads."""


def _print_nhi(view: nhis.NhiView) -> None:
    say(f"client_id: {view.client_id}")
    say(f"kind:      {view.kind}")
    say(f"sub:       {view.sub}")
    say(f"owner:     {view.owner or '-'}")
    say(f"status:    {view.status}" + (f" ({view.status_reason})" if view.status_reason else ""))
    say(f"scope:     {view.scopes or '-'}")
    say(f"grants:    {' '.join(view.grants)}")
    for uri in view.resources:
        say(f"resource:  {uri}")
    for cred in view.credentials:
        say(
            f"credential: {cred['id']} {cred['type']} {cred['status']}"
            + (f" expires {iso_time(cred['expires_at'])}" if cred["expires_at"] else "")
        )


@nhi.command("create")
@click.argument("name")
@click.option("--kind", required=True, type=click.Choice(KINDS))
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
    """Register an NHI; prints its client_id and, once, its generated secret. Repeated with
    the same attributes it changes nothing and answers the same (without a secret), as the
    admin API does; with other attributes it is refused."""
    settings = load_settings()
    jwks = load_jwks_text(jwks_file.read_text(), "--jwks") if jwks_file else None
    with open_store() as store:
        view, secret, created = nhis.ensure_nhi(
            store,
            secret_hasher(settings),
            name=name,
            kind=kind,
            now=now_seconds(),
            admin=administrator(),
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
        say(f"client_id:     {view.client_id}")
        if not created:
            say("(already registered with these attributes: nothing changed)")
        if secret:
            say(f"client_secret: {secret}")
            say("(the secret is shown only once; store it now)")

    emit(as_json, data, human)


@nhi.command("list")
@click.option("--kind", default=None, type=click.Choice(KINDS))
@click.option("--status", default=None, type=click.Choice(["active", "disabled"]))
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, type=click.IntRange(0, MAX_OFFSET))
@json_option
@handles_errors
def nhi_list(kind: str | None, status: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List NHIs."""
    with open_store() as store:
        views, total = nhis.list_nhis(store, kind=kind, status=status, limit=limit, offset=offset)

    def human() -> None:
        for v in views:
            say(f"{v.client_id:32} {v.kind:9} {v.status:9} {v.sub}")
        say(f"({len(views)} of {total})")

    emit(as_json, {"items": [v.as_dict() for v in views], "total": total}, human)


@nhi.command("show", context_settings=TAKES_IDS)
@click.argument("name")
@json_option
@handles_errors
def nhi_show(name: str, as_json: bool) -> None:
    """Show one NHI with its credentials (never a secret)."""
    with open_store() as store:
        view = nhis.get_nhi(store, name)
    emit(as_json, view.as_dict(), lambda: _print_nhi(view))


@nhi.command("disable", context_settings=TAKES_IDS)
@click.argument("name")
@click.option("--reason", required=True)
@json_option
@handles_errors
def nhi_disable(name: str, reason: str, as_json: bool) -> None:
    """Disable an NHI: it can no longer authenticate, act or be a target, and every token
    it acted in or was addressed to is revoked for good (enable only allows new ones)."""
    with open_store() as store:
        view = nhis.set_nhi_status(
            store, name, status="disabled", reason=reason, now=now_seconds(), admin=administrator()
        )
    emit(as_json, view.as_dict(), lambda: say(f"{name} disabled"))


@nhi.command("enable", context_settings=TAKES_IDS)
@click.argument("name")
@json_option
@handles_errors
def nhi_enable(name: str, as_json: bool) -> None:
    """Enable a disabled NHI."""
    with open_store() as store:
        view = nhis.set_nhi_status(
            store, name, status="active", reason="", now=now_seconds(), admin=administrator()
        )
    emit(as_json, view.as_dict(), lambda: say(f"{name} enabled"))


@nhi.command("update", context_settings=TAKES_IDS)
@click.argument("name")
@click.option("--kind", default=None, type=click.Choice(KINDS))
@click.option("--owner", default=None)
@click.option("--sub", default=None)
@click.option("--scope", default=None, help="Scopes it may request for itself (replaces).")
@click.option("--grant", "grants", multiple=True, help="Allowed grant (replaces the list).")
@click.option("--resource", "resources", multiple=True, help="Resource URI (replaces the list).")
@click.option("--no-resources", is_flag=True, help="Remove every resource URI.")
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="New public JWKS (replaces its live keys; secrets stay).",
)
@click.option("--jwks-uri", default=None, help="New JWKS URL (replaces its live keys).")
@json_option
@handles_errors
def nhi_update(
    name: str,
    kind: str | None,
    owner: str | None,
    sub: str | None,
    scope: str | None,
    grants: tuple[str, ...],
    resources: tuple[str, ...],
    no_resources: bool,
    jwks_file: Path | None,
    jwks_uri: str | None,
    as_json: bool,
) -> None:
    """Change an NHI's attributes or keys; what is not given stays."""
    if no_resources and resources:
        raise click.UsageError("--resource and --no-resources exclude each other")
    jwks = load_jwks_text(jwks_file.read_text(), "--jwks") if jwks_file else None
    with open_store() as store:
        view, changed = nhis.update_nhi(
            store,
            name,
            now=now_seconds(),
            admin=administrator(),
            kind=kind,
            owner=owner,
            sub=sub,
            scope=scope,
            grants=list(grants) or None,
            resources=[] if no_resources else (list(resources) or None),
            jwks=jwks,
            jwks_uri=jwks_uri,
        )
    said = f"{name} updated: {', '.join(changed)}" if changed else f"{name}: nothing changed"
    emit(as_json, {**view.as_dict(), "changed": changed}, lambda: say(said))


@nhi.command("delete", context_settings=TAKES_IDS)
@click.argument("name")
@click.option(
    "--revoke",
    "revoke_live",
    is_flag=True,
    help="Revoke the live tokens it acted in or was addressed to (else: refused while any).",
)
@click.option("--reason", default="")
@json_option
@handles_errors
def nhi_delete(name: str, revoke_live: bool, reason: str, as_json: bool) -> None:
    """Remove an NHI and its credentials (the lineage and audit trail keep its name)."""
    with open_store() as store:
        done = nhis.delete_nhi(
            store,
            name,
            now=now_seconds(),
            admin=administrator(),
            revoke=revoke_live,
            reason=reason,
        )
    tokens = done["revoked_tokens"]
    emit(
        as_json,
        done,
        lambda: say(f"{name} deleted" + (f"; {tokens} token(s) revoked" if tokens else "")),
    )


@nhi.group("secret")
def nhi_secret() -> None:
    """Client secrets."""


@nhi_secret.command("rotate", context_settings=TAKES_IDS)
@click.argument("name")
@click.option(
    "--grace",
    default=3600,
    show_default=True,
    type=click.IntRange(0, MAX_SECONDS),
    help="Seconds the current secrets keep working (0: stop now).",
)
@json_option
@handles_errors
def nhi_secret_rotate(name: str, grace: int, as_json: bool) -> None:
    """Issue a new secret; old ones keep working for the grace period."""
    settings = load_settings()
    with open_store() as store:
        cred_id, secret = credentials.rotate_secret(
            store,
            secret_hasher(settings),
            name,
            now=now_seconds(),
            admin=administrator(),
            grace=grace,
        )
    data = {"client_id": name, "credential_id": cred_id, "client_secret": secret, "grace": grace}

    def human() -> None:
        say(f"client_secret: {secret}")
        say(f"(the secret is shown only once; previous secrets stop working in {grace}s)")

    emit(as_json, data, human)


# -- issuer ---------------------------------------------------------------------------------
@click.group()
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
    with open_store() as store:
        data, created = issuers.ensure_issuer(
            store,
            issuer=iss,
            jwks=jwks,
            jwks_uri=jwks_uri,
            audiences=list(audiences),
            algorithms=list(algorithms),
            scope_mode=scope_mode,
            now=now_seconds(),
            admin=administrator(),
        )
    said = "added" if created else "already trusted with these settings: nothing changed"
    emit(as_json, data, lambda: say(f"trusted issuer {iss} {said}"))


@issuer.command("list")
@json_option
@handles_errors
def issuer_list(as_json: bool) -> None:
    """List trusted issuers."""
    with open_store() as store:
        rows = issuers.list_issuers(store)

    def human() -> None:
        for r in rows:
            say(f"{r['issuer']}  {r['status']}  {r['jwks_uri'] or 'inline JWKS'}")

    emit(as_json, {"items": rows, "total": len(rows)}, human)


@issuer.command("show")
@click.argument("iss")
@json_option
@handles_errors
def issuer_show(iss: str, as_json: bool) -> None:
    """Show a trusted issuer: its keys (key ids), audiences, algorithms, status."""
    with open_store() as store:
        found = issuers.get_issuer(store, iss)

    def human() -> None:
        for key in (
            "issuer",
            "status",
            "jwks_uri",
            "kids",
            "audiences",
            "algorithms",
            "scope_mode",
        ):
            value = found[key]
            say(f"{key + ':':12}{' '.join(value) if isinstance(value, list) else value or '-'}")

    emit(as_json, found, human)


@issuer.command("update")
@click.argument("iss")
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Its new keys (after it rotated them).",
)
@click.option("--jwks-uri", default=None)
@click.option("--audience", "audiences", multiple=True, help="Replaces the audiences.")
@click.option("--alg", "algorithms", multiple=True, help="Replaces the algorithms.")
@click.option("--scope-mode", type=click.Choice(["rule", "cap"]), default=None)
@json_option
@handles_errors
def issuer_update(
    iss: str,
    jwks_file: Path | None,
    jwks_uri: str | None,
    audiences: tuple[str, ...],
    algorithms: tuple[str, ...],
    scope_mode: str | None,
    as_json: bool,
) -> None:
    """Change a trusted issuer's keys or settings; what is not given stays."""
    jwks = load_jwks_text(jwks_file.read_text(), "--jwks") if jwks_file else None
    with open_store() as store:
        found, changed = issuers.update_issuer(
            store,
            issuer=iss,
            jwks=jwks,
            jwks_uri=jwks_uri,
            audiences=list(audiences) or None,
            algorithms=list(algorithms) or None,
            scope_mode=scope_mode,
            now=now_seconds(),
            admin=administrator(),
        )
    said = f"{iss} updated: {', '.join(changed)}" if changed else f"{iss}: nothing changed"
    emit(as_json, {**found, "changed": changed}, lambda: say(said))


@issuer.command("disable")
@click.argument("iss")
@click.option("--reason", default="")
@json_option
@handles_errors
def issuer_disable(iss: str, reason: str, as_json: bool) -> None:
    """Stop trusting an issuer; every live token derived from its tokens is revoked."""
    with open_store() as store:
        found = issuers.disable_issuer(
            store, iss, now=now_seconds(), admin=administrator(), reason=reason
        )
    emit(as_json, found, lambda: say(f"trusted issuer {iss} disabled"))


@issuer.command("enable")
@click.argument("iss")
@json_option
@handles_errors
def issuer_enable(iss: str, as_json: bool) -> None:
    """Trust a disabled issuer again (new exchanges only)."""
    with open_store() as store:
        found = issuers.enable_issuer(store, iss, now=now_seconds(), admin=administrator())
    emit(as_json, found, lambda: say(f"trusted issuer {iss} enabled"))


@issuer.command("remove")
@click.argument("iss")
@click.option("--reason", default="")
@json_option
@handles_errors
def issuer_remove(iss: str, reason: str, as_json: bool) -> None:
    """Forget an issuer, revoking every live token derived from its tokens first."""
    with open_store() as store:
        done = issuers.remove_issuer(
            store, iss, now=now_seconds(), admin=administrator(), reason=reason
        )
    emit(as_json, done, lambda: say(f"trusted issuer {iss} removed"))
