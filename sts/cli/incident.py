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
        # Hops in chain order: hop 1 is the first exchange of the transaction.
        for number, hop in enumerate(story["hops"], 1):
            say(
                f"  hop {number}: {hop['actor']} (credential "
                f"{hop['credential_id'] or '-'}) -> {hop['target']} [{hop['scope']}] "
                f"rule {hop['rule_id'] or '-'} {hop['status']} jti {hop['jti']}"
            )
            for report in hop.get("reports", []):
                say(f"    {_report_line(report)}")
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
        say(f"  accessed: {_accessed_line(story['accessed'])}")

    emit(as_json, story, human)


def _report_line(report: dict[str, Any]) -> str:
    """One access report under its hop: who did what to which data, and where it went."""
    parts = [
        f"{iso_time(report['at'])} {report['reported_by']} {report['action']} {report['resource']}"
    ]
    if report["data_classes"]:
        parts.append(f"[{', '.join(report['data_classes'])}]")
    if report["records"] is not None:
        parts.append(f"{report['records']} record(s)")
    if report["bytes"] is not None:
        parts.append(f"{report['bytes']} bytes")
    if report["destination"]:
        parts.append(f"-> {report['destination']}")
    if report["outcome"]:
        parts.append(f"({report['outcome']})")
    return " ".join(parts)


def _accessed_line(accessed: dict[str, Any] | None) -> str:
    if accessed is None:
        return "nothing reported by the services the tokens were addressed to"
    classes = ", ".join(accessed["data_classes"]) or "no data classes named"
    sent = ", ".join(accessed["destinations"]) or "nowhere reported"
    return (
        f"{accessed['reports']} report(s): {', '.join(accessed['resources'])} "
        f"[{classes}], {accessed['records']} record(s), {accessed['bytes']} bytes, "
        f"sent to {sent}"
    )


@audit.command("touched")
@click.option("--resource", required=True, help="The resource reported (URI, table, path).")
@click.option("--data-class", default=None, help="Only reports naming this data class.")
@click.option("--since", default=None, help="ISO 8601 time or epoch seconds.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@json_option
@handles_errors
def audit_touched(
    resource: str, data_class: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """The chains that touched a resource, newest first: who initiated each, its path."""
    with open_store() as store:
        chains = audit_service.touched(
            store, resource=resource, data_class=data_class, since=_since(since), limit=limit
        )

    def human() -> None:
        if not chains:
            say(f"no reported access to {resource}")
            return
        for c in chains:
            init = c["initiated_by"]
            say(
                f"txn {c['txn']}  initiated by {init['subject']} (issuer {init['issuer']})  "
                f"{iso_time(c['first_at'])} .. {iso_time(c['last_at'])}"
            )
            say(f"  path: {' -> '.join(c['path'])}")
            classes = ", ".join(c["data_classes"]) or "-"
            say(f"  did: {', '.join(c['actions'])} [{classes}] {c['records']} record(s)")

    emit(as_json, chains, human)


#: What an administrative event changed, in words; members missing from an event's detail
#: read as ``?``.
ADMIN_EVENTS = {
    "admin.nhi.create": "created {kind} NHI {nhi}",
    "admin.nhi.disable": "disabled NHI {nhi}, {tokens} live token(s) revoked",
    "admin.nhi.enable": "enabled NHI {nhi}",
    "admin.credential.add": "added {type} credential {credential} to {nhi}",
    "admin.credential.rotate": "rotated {nhi} to credential {credential} (old ones live {grace} s)",
    "admin.rule.create": "created rule {rule}: {actor} -> {targets}",
    "admin.rule.disable": "disabled rule {rule}, {tokens} live token(s) revoked",
    "admin.issuer.add": "trusted issuer {issuer}",
}


class _Detail(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def _what(e: dict[str, Any]) -> str:
    """What an event changed or why it was refused, in one phrase."""
    name, detail = e["event"], _Detail(e["detail"] or {})
    if isinstance(detail.get("targets"), list):
        detail["targets"] = ", ".join(str(t) for t in detail["targets"])
    if name.startswith("admin.revoke."):
        kind = name.split(".")[2]
        if name.endswith(".dry_run"):
            what = f"previewed revoking {kind} {detail['target']}: {detail['tokens']} token(s)"
        else:
            what = f"revoked {kind} {detail['target']}: {detail['tokens']} live token(s)"
    elif name in ADMIN_EVENTS:
        what = ADMIN_EVENTS[name].format_map(detail)
    else:
        return str(e["reason"] or "-")
    reason = detail.get("reason")
    return f"{what} ({reason})" if reason else what


AUDIT_COLUMNS = (
    ("TIME", 20),
    ("EVENT", 24),
    ("DECISION", 8),
    ("CLIENT", 20),
    ("SUBJECT", 20),
    ("TARGET", 20),
    ("TXN", 24),
    ("JTI", 24),
)


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
        say(" ".join(f"{name:{width}}" for name, width in AUDIT_COLUMNS) + " WHAT")
        for e in events:
            values = (
                iso_time(e["at"]),
                e["event"],
                e["decision"],
                *(e[k] or "-" for k in ("client_id", "subject", "target", "txn", "jti")),
            )
            cells = (f"{v:{w}}" for v, (_, w) in zip(values, AUDIT_COLUMNS, strict=True))
            say(" ".join(cells) + " " + _what(e))

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
            f"{iso_time(result['cutoff'])}, {result['assertion_jtis']} used assertion ids and "
            f"{result['dpop_proof_jtis']} used DPoP proof ids"
        ),
    )
