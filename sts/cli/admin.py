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
        click.echo(
            f"client_id:     {view.client_id}\nclient_secret: {secret}\nscope:         "
            f"{view.scopes}\n(the secret is shown only once; store it now)\n"
            f"Get an admin token: POST {settings.issuer.rstrip('/')}/token with "
            "grant_type=client_credentials and these credentials (HTTP Basic)."
        )

    emit(as_json, data, human)
