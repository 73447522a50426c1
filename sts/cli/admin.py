"""``sts admin``: the first administrator of the admin API."""

from __future__ import annotations

import click

from sts.cli.support import (
    administrator,
    emit,
    handles_errors,
    json_option,
    load_settings,
    now_seconds,
    open_store,
    say,
    secret_hasher,
)
from sts.services import nhis


@click.group()
def admin() -> None:
    """Administrators of the admin REST API."""


@admin.command("bootstrap")
@click.argument("name")
@click.option("--owner", default="", help="Accountable owner (team or person).")
@json_option
@handles_errors
def admin_bootstrap(name: str, owner: str, as_json: bool) -> None:
    """Register NAME as an administrator: client_credentials only, scopes
    sts:admin sts:audit sts:revoke; prints its secret once."""
    settings = load_settings()
    with open_store() as store:
        view, secret = nhis.bootstrap_admin(
            store,
            secret_hasher(settings),
            name=name,
            owner=owner,
            now=now_seconds(),
            admin=administrator(),
        )
    data = {"client_id": view.client_id, "client_secret": secret, "scope": view.scopes}

    def human() -> None:
        say(f"client_id:     {view.client_id}")
        say(f"client_secret: {secret}")
        say(f"scope:         {view.scopes}")
        say("(the secret is shown only once; store it now)")
        say(
            f"Get an admin token: POST {settings.issuer.rstrip('/')}/token with "
            "grant_type=client_credentials and these credentials (HTTP Basic)."
        )

    emit(as_json, data, human)
