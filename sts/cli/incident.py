"""``sts revoke``, ``sts audit`` and ``sts gc``: containing and reconstructing a chain."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

import click
from tqdm import tqdm

from sts.cli.support import (
    MAX_TIME,
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
)
from sts.services import audit as audit_service
from sts.services import gc as gc_service
from sts.services import revocation
from sts.services.errors import Invalid
from sts.store.admin import admin_store
from sts.store.db import create_engine

#: The longest ``sts gc --retention-days``: a century.
MAX_RETENTION_DAYS = 36_500


@click.group()
def revoke() -> None:
    """Revoke something and every live token derived from it."""


def _revoke_command(kind: str, argument: str, help_text: str) -> None:
    @revoke.command(kind, help=help_text, context_settings=TAKES_IDS)
    @click.argument(argument)
    @click.option("--reason", default="", help="Why (kept in the audit trail).")
    @click.option("--dry-run", is_flag=True, help="Only show what would die (the blast radius).")
    @json_option
    @handles_errors
    def command(reason: str, dry_run: bool, as_json: bool, **kwargs: Any) -> None:
        target = kwargs[argument.lower()]
        with open_store() as store:
            result = revocation.revoke(
                store,
                kind,
                target,
                now=now_seconds(),
                admin=administrator(),
                reason=reason,
                dry_run=dry_run,
            )

        def human() -> None:
            verb = "would revoke" if dry_run else "revoked"
            say(
                f"{verb} {kind} {target}: {result.tokens} live token(s) in "
                f"{result.transactions} transaction(s)"
            )
            for jti in result.jtis[:20]:
                say(f"  {jti}")
            if result.tokens > 20:
                say(f"  ... and {result.tokens - 20} more (--json lists up to 1000)")

        emit(as_json, result.as_dict(), human)


_revoke_command("token", "JTI", "Revoke a token and all its descendants.")
_revoke_command("txn", "TXN", "Revoke every token of a transaction.")
_revoke_command(
    "nhi",
    "NAME",
    "Disable an NHI, revoke its credentials, every token in whose chain it appears and every "
    "token addressed to it.",
)
_revoke_command("credential", "ID", "Revoke a credential and the tokens obtained with it.")
_revoke_command("rule", "ID", "Disable a rule and revoke every token it minted, with descendants.")
_revoke_command("issuer", "ISS", "Stop trusting an issuer and revoke every chain it started.")


@click.group()
def audit() -> None:
    """Answer who initiated a chain, who touched it, what was granted."""


def _since(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        if value.isascii() and value.isdigit():
            since = int(value)
        else:
            since = int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except (ValueError, OverflowError):
        raise Invalid("--since takes an ISO 8601 time or epoch seconds") from None
    if not 0 <= since <= MAX_TIME:
        raise Invalid("--since must be a time from 1970 to 9999")
    return since


def _revoker(rev: dict[str, Any]) -> str:
    """Who revoked: an administrator, or the token's own client (RFC 7009)."""
    if rev["revoked_by_kind"] == "client":
        return f"its client {rev['revoked_by']} (RFC 7009)"
    return str(rev["revoked_by"])


@audit.command("show")
@click.option("--jti", default=None)
@click.option("--txn", default=None)
@json_option
@handles_errors
def audit_show(jti: str | None, txn: str | None, as_json: bool) -> None:
    """The whole story of a transaction (or of the transaction of a token)."""
    with open_store() as store:
        story = audit_service.show(store, now=now_seconds(), jti=jti, txn=txn)

    def human() -> None:
        init = story["initiated_by"]
        say(f"transaction {story['txn']}")
        say(
            f"initiated by {init['subject']} (issuer {init['issuer'] or 'not recorded'}) at "
            f"{iso_time(init['at'])}, first client {init['first_client']}"
        )
        say(f"executed by {' -> '.join(story['executed_by'])}")
        for hop in story["hops"]:
            say(
                f"  hop {hop['depth']}: {hop['actor']} (credential "
                f"{hop['credential_id'] or '-'}) -> {hop['target']} [{hop['scope']}] "
                f"rule {hop['rule_id'] or '-'} {hop['status']} jti {hop['jti']}"
            )
        for event in story["denied"]:
            say(
                f"  denied {iso_time(event['at'])}: {event['client_id']} -> "
                f"{event['target'] or '-'}: {event['reason']}"
            )
        for rev in story["revocations"]:
            say(
                f"  revoked {iso_time(rev['at'])} by {_revoker(rev)}: {rev['kind']} "
                f"{rev['target']} ({rev['reason'] or 'no reason given'})"
            )
        say("  accessed: not reported by resource servers")

    emit(as_json, story, human)


def _known_event(value: str | None) -> str | None:
    if value is not None and value not in audit_service.EVENTS:
        raise click.BadParameter(
            f"unknown event {value!r} (e.g. token.issued, token.denied, admin.revoke.nhi)"
        )
    return value


@audit.command("list")
@click.option("--actor", default=None, help="Client that made the request.")
@click.option("--subject", default=None)
@click.option("--since", default=None, help="ISO 8601 time or epoch seconds.")
@click.option("--decision", type=click.Choice(["allowed", "denied", "done"]), default=None)
@click.option(
    "--event",
    default=None,
    callback=lambda _ctx, _param, value: _known_event(value),
    help="e.g. token.issued, token.denied, admin.revoke.nhi",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@handles_errors
def audit_list(
    actor: str | None,
    subject: str | None,
    since: str | None,
    decision: str | None,
    event: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Audit events, newest first."""
    with open_store() as store:
        events = audit_service.list_events(
            store,
            actor=actor,
            subject=subject,
            since=_since(since),
            decision=decision,
            event=event,
            limit=limit,
        )

    def human() -> None:
        for e in events:
            say(
                f"{iso_time(e['at'])}  {e['event']:24} {e['decision']:8} "
                f"{e['client_id'] or '-':20} {e['subject'] or '-':20} {e['reason']}"
            )

    emit(as_json, {"items": events, "total": len(events)}, human)


@click.command()
@click.option(
    "--retention-days",
    type=click.IntRange(0, MAX_RETENTION_DAYS),
    default=None,
    help="Keep rows this long after expiry (default: STS_LINEAGE_RETENTION_DAYS).",
)
@json_option
@handles_errors
def gc(retention_days: int | None, as_json: bool) -> None:
    """Remove lineage rows long past expiry; audit events are kept."""
    settings = load_settings()
    days = settings.lineage_retention_days if retention_days is None else retention_days
    engine = create_engine(settings.database_url, hide_parameters=True)
    now = now_seconds()
    stores = partial(admin_store, engine)
    try:
        total = gc_service.expired_lineage(stores, now - days * 86400)
        with tqdm(total=total, unit="row", disable=as_json or total == 0, desc="lineage") as bar:
            result = gc_service.collect(
                stores, now=now, retention_seconds=days * 86400, progress=bar.update
            )
    finally:
        engine.dispose()
    emit(
        as_json,
        result,
        lambda: say(
            f"removed {result['lineage_rows']} lineage rows expired before "
            f"{iso_time(result['cutoff'])} and {result['assertion_jtis']} used assertion ids"
        ),
    )
