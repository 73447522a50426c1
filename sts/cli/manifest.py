"""``sts registry``: the registry as code (one YAML or JSON document, see
:mod:`sts.services.manifest`)."""

from __future__ import annotations

import sys
from pathlib import Path

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
from sts.services import manifest


@click.group("registry")
def registry_group() -> None:
    """The registry as code: export it, apply a document to it."""


@registry_group.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Document format.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (default: standard output).",
)
@handles_errors
def registry_export(fmt: str, output: Path | None) -> None:
    """Write NHIs (without secrets), trusted issuers and rules as one document."""
    with open_store() as store:
        text = manifest.dump(manifest.export(store), fmt)
    if output is None:
        for line in text.splitlines():
            say(line)
    else:
        output.write_text(text)
        say(f"registry written to {output}")


@registry_group.command("apply")
@click.option(
    "-f",
    "--file",
    "path",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="The document (YAML or JSON; '-' reads standard input).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option(
    "--prune",
    is_flag=True,
    help="Also remove NHIs, issuers and rules the document does not name (their live "
    "tokens are revoked).",
)
@json_option
@handles_errors
def registry_apply(path: str, dry_run: bool, prune: bool, as_json: bool) -> None:
    """Make the registry match the document: create, change and (with --prune) remove,
    all in one transaction; a refused document changes nothing."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {type(exc).__name__}") from None
    settings = load_settings()
    with open_store() as store:
        plan = manifest.apply(
            store,
            secret_hasher(settings),
            text,
            now=now_seconds(),
            admin=administrator(),
            dry_run=dry_run,
            prune=prune,
        )

    def human() -> None:
        for line in plan.lines():
            say(line)
        for name, secret in plan.secrets.items():
            say(f"client_secret of {name}: {secret} (shown only once; store it now)")

    emit(as_json, plan.as_dict(), human)
