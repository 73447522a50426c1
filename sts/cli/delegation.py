"""``sts rule`` and ``sts chain``: delegation rules and reading chains back."""

from __future__ import annotations

from typing import Any

import click

from sts.cli.support import (
    MAX_OFFSET,
    TAKES_IDS,
    administrator,
    emit,
    handles_errors,
    iso_time,
    json_option,
    now_seconds,
    open_store,
    say,
)
from sts.services import lineage, rules


@click.group()
def rule() -> None:
    """Delegation rules: who may act for whom toward what."""


def _subject(r: dict[str, Any]) -> str:
    """The subject with the issuer it must come from (DESIGN §3); a ``sub`` rule without one
    covers NHI subjects only."""
    if not r["subject"].startswith("sub:"):
        return str(r["subject"])
    whose = f"issuer {r['subject_issuer']}" if r["subject_issuer"] else "an NHI"
    return f"{r['subject']} ({whose})"


def _print_rule(r: dict[str, Any]) -> None:
    say(f"{r['id']}  {r['status']}")
    say(f"  actor:    {r['actor']}")
    say(f"  targets:  {' '.join(r['targets'])}")
    say(f"  scope:    {r['scope'] or '-'}")
    say(f"  subject:  {_subject(r)}")
    say(f"  upstream: {r['upstream'] or '-'}")
    say(
        f"  max depth {r['max_depth'] or '-'}, max ttl {r['max_ttl'] or '-'}, "
        f"expires {iso_time(r['expires_at'])}"
    )
    if r.get("require_dpop"):
        say("  requires DPoP-bound requests")


@rule.command("create")
@click.option("--actor", required=True, help="The NHI that acts.")
@click.option(
    "--target",
    "targets",
    required=True,
    multiple=True,
    help="Target NHI (repeatable); '*' means any registered target.",
)
@click.option("--scope", required=True, help="Scopes it may carry, space-separated.")
@click.option(
    "--subject", default="any", show_default=True, help="any | SUB | issuer:ISS | kind:KIND"
)
@click.option(
    "--subject-issuer",
    default=None,
    help="The trusted issuer a SUB subject comes from; without it SUB names an NHI.",
)
@click.option("--upstream", default=None, help="The actor that must come right before.")
@click.option("--max-depth", type=int, default=None, help="Max act levels of minted tokens.")
@click.option("--max-ttl", type=int, default=None, help="Max lifetime of minted tokens (s).")
@click.option("--expires", default=None, help="ISO 8601 expiry of the rule itself.")
@click.option(
    "--require-dpop",
    is_flag=True,
    default=False,
    help="Refuse an exchange under this rule without a DPoP proof (RFC 9449).",
)
@json_option
@handles_errors
def rule_create(
    actor: str,
    targets: tuple[str, ...],
    scope: str,
    subject: str,
    subject_issuer: str | None,
    upstream: str | None,
    max_depth: int | None,
    max_ttl: int | None,
    expires: str | None,
    require_dpop: bool,
    as_json: bool,
) -> None:
    """Allow ACTOR to act for SUBJECT toward TARGET(s). An enabled rule saying exactly the
    same is answered instead of a duplicate (as the admin API does)."""
    with open_store() as store:
        found, created = rules.ensure_rule(
            store,
            actor=actor,
            targets=list(targets),
            scope=scope,
            subject=subject,
            subject_issuer=subject_issuer,
            upstream=upstream,
            max_depth=max_depth,
            max_ttl=max_ttl,
            expires=expires,
            require_dpop=require_dpop,
            now=now_seconds(),
            admin=administrator(),
        )

    def human() -> None:
        if not created:
            say("(an enabled rule says exactly this: nothing changed)")
        _print_rule(found)

    emit(as_json, found, human)


@rule.command("list")
@click.option("--actor", default=None)
@click.option("--status", type=click.Choice(["enabled", "disabled"]), default=None)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, type=click.IntRange(0, MAX_OFFSET))
@json_option
@handles_errors
def rule_list(
    actor: str | None, status: str | None, limit: int, offset: int, as_json: bool
) -> None:
    """List delegation rules."""
    with open_store() as store:
        items, total = rules.list_rules(
            store, actor=actor, status=status, limit=limit, offset=offset
        )

    def human() -> None:
        for r in items:
            say(
                f"{r['id']}  {r['status']:8}  {r['actor']} -> {','.join(r['targets'])}"
                f"  [{r['scope']}]  subject={r['subject']}"
                + (f" issuer={r['subject_issuer']}" if r["subject_issuer"] else "")
            )
        say(f"({len(items)} of {total})")

    emit(as_json, {"items": items, "total": total}, human)


@rule.command("show", context_settings=TAKES_IDS)
@click.argument("rule_id")
@json_option
@handles_errors
def rule_show(rule_id: str, as_json: bool) -> None:
    """Show one rule."""
    with open_store() as store:
        found = rules.get_rule(store, rule_id)
    emit(as_json, found, lambda: _print_rule(found))


@rule.command("disable", context_settings=TAKES_IDS)
@click.argument("rule_id")
@click.option("--reason", default="")
@json_option
@handles_errors
def rule_disable(rule_id: str, reason: str, as_json: bool) -> None:
    """Disable a rule: no new exchanges under it, and every token it minted is revoked."""
    with open_store() as store:
        found = rules.disable_rule(
            store, rule_id, now=now_seconds(), admin=administrator(), reason=reason
        )
    emit(as_json, found, lambda: say(f"{rule_id} disabled"))


@rule.command("enable", context_settings=TAKES_IDS)
@click.argument("rule_id")
@json_option
@handles_errors
def rule_enable(rule_id: str, as_json: bool) -> None:
    """Enable a disabled rule (new exchanges only; what it minted stays revoked)."""
    with open_store() as store:
        found = rules.enable_rule(store, rule_id, now=now_seconds(), admin=administrator())
    emit(as_json, found, lambda: say(f"{rule_id} enabled"))


@rule.command("update", context_settings=TAKES_IDS)
@click.argument("rule_id")
@click.option("--actor", default=None)
@click.option("--target", "targets", multiple=True, help="Replaces the targets.")
@click.option("--scope", default=None)
@click.option("--subject", default=None, help="any | SUB | issuer:ISS | kind:KIND")
@click.option("--subject-issuer", default=None)
@click.option("--upstream", default=None)
@click.option("--max-depth", type=click.IntRange(1, 32), default=None)
@click.option("--max-ttl", type=click.IntRange(1, rules.MAX_TTL), default=None)
@click.option("--expires", default=None, help="ISO 8601 expiry of the rule itself.")
@click.option(
    "--require-dpop/--no-require-dpop",
    default=None,
    help="Refuse (or no longer refuse) exchanges under the rule without a DPoP proof.",
)
@json_option
@handles_errors
def rule_update(
    rule_id: str,
    actor: str | None,
    targets: tuple[str, ...],
    scope: str | None,
    subject: str | None,
    subject_issuer: str | None,
    upstream: str | None,
    max_depth: int | None,
    max_ttl: int | None,
    expires: str | None,
    require_dpop: bool | None,
    as_json: bool,
) -> None:
    """Change what a rule says; what is not given stays (its id and status too)."""
    now = now_seconds()
    rules.parse_expiry(expires, now)  # a bad value is named before the rule is looked up
    with open_store() as store:
        cur = rules.get_rule(store, rule_id)
        found, changed = rules.update_rule(
            store,
            rule_id,
            actor=actor or cur["actor"],
            targets=list(targets) or cur["targets"],
            scope=cur["scope"] if scope is None else scope,
            subject=subject or cur["subject"],
            subject_issuer=subject_issuer or (None if subject else cur["subject_issuer"]),
            upstream=upstream or cur["upstream"],
            max_depth=cur["max_depth"] if max_depth is None else max_depth,
            max_ttl=cur["max_ttl"] if max_ttl is None else max_ttl,
            expires=expires or (iso_time(cur["expires_at"]) if cur["expires_at"] else None),
            require_dpop=cur["require_dpop"] if require_dpop is None else require_dpop,
            now=now,
            admin=administrator(),
        )
    said = f"{rule_id} updated" if changed else f"{rule_id}: nothing changed"
    emit(as_json, {**found, "changed": changed}, lambda: say(said))


@rule.command("delete", context_settings=TAKES_IDS)
@click.argument("rule_id")
@click.option("--reason", default="")
@json_option
@handles_errors
def rule_delete(rule_id: str, reason: str, as_json: bool) -> None:
    """Remove a rule; every live token it minted is revoked first, with its descendants."""
    with open_store() as store:
        done = rules.delete_rule(
            store, rule_id, now=now_seconds(), admin=administrator(), reason=reason
        )
    tokens = done["revoked_tokens"]
    emit(as_json, done, lambda: say(f"{rule_id} deleted; {tokens} token(s) revoked"))


@click.group()
def chain() -> None:
    """Read identity chains back from the lineage."""


def _print_tree(nodes: list[dict[str, Any]], indent: str = "", hop: int = 1) -> None:
    """The tree, each token numbered by its hop in chain order (1: the first exchange)."""
    for i, node in enumerate(nodes):
        last = i == len(nodes) - 1
        branch = "" if not indent and not node["parent_jti"] else ("└─ " if last else "├─ ")
        say(
            f"{indent}{branch}hop {hop}: {node['jti']}  {node['actor']} -> {node['target']}  "
            f"[{node['scope']}]  exp {iso_time(node['expires_at'])}  "
            f"rule {node['rule_id'] or '-'}  {node['status']}"
            + (f" ({node['status_reason']})" if node["status_reason"] else "")
        )
        _print_tree(node["children"], indent + ("   " if last else "│  "), hop + 1)


@chain.command("show", context_settings=TAKES_IDS)
@click.argument("jti", required=False)
@click.option("--txn", default=None, help="Show a whole transaction.")
@json_option
@handles_errors
def chain_show(jti: str | None, txn: str | None, as_json: bool) -> None:
    """Print the lineage of a token (JTI) or of a transaction (--txn) as a tree."""
    with open_store() as store:
        roots = lineage.chain_tree(store, now=now_seconds(), jti=jti, txn=txn)

    def human() -> None:
        first = roots[0]
        say(f"txn {first['txn']}  subject {first['subject']} (issuer {first['subject_issuer']})")
        _print_tree(roots)

    emit(as_json, roots, human)
