"""``sts policy explain``: would this exchange be allowed, and why (DESIGN §10).

The same question as the AuthZEN endpoint, answered by the same evaluator (the token
exchange's own steps, nothing minted) through :func:`sts.services.policy.explain`, and
audited as ``policy.evaluated`` naming ``cli:<login>``.
"""

from __future__ import annotations

import sys

import click

from sts.cli.support import (
    administrator,
    emit,
    handles_errors,
    json_option,
    load_settings,
    now_seconds,
    say,
)
from sts.cli.token import MAX_TOKEN_BYTES, STDIN
from sts.core.policy_query import PolicyAnswer
from sts.core.scopes import scope_str
from sts.runtime import build_runtime
from sts.services import issuers, policy
from sts.store.admin import AdminStore
from sts.store.sql import SqlStore


@click.group("policy")
def policy_group() -> None:
    """Ask the delegation policy."""


def _hops(chain: tuple[str, ...]) -> str:
    """Actors in hop order, numbered from the first hop."""
    return "  ".join(f"{i}:{sub}" for i, sub in enumerate(chain, 1)) or "- (no act: self)"


def _print(answer: PolicyAnswer) -> None:
    if answer.allowed:
        say(f"decision:  ALLOWED by rule {answer.rule_id}")
        say(f"scope:     {scope_str(answer.scope or frozenset())}")
        say(f"lifetime:  {answer.expires_in} s")
    else:
        say(f"decision:  DENIED ({answer.error})")
        say(f"reason:    {answer.reason}")
        say(f"answer:    {answer.error}: {answer.description}")
    subject = answer.subject or "-"
    whose = f" (issuer {answer.subject_issuer})" if answer.subject_issuer else ""
    say(f"subject:   {subject}{whose}")
    say(f"actor:     {answer.actor}")
    say(f"target:    {answer.target}")
    say(f"chain:     {_hops(answer.chain)}  (hop numbers: 1 = first hop)")
    say(f"rules:     {' '.join(answer.rules) or '- (none reaches the target)'}")


@policy_group.command("explain")
@click.option("--actor", required=True, help="The NHI that would exchange.")
@click.option(
    "--subject",
    default=None,
    help="Who it acts for: ISSUER:SUB for a trusted issuer's subject, or an NHI's name.",
)
@click.option(
    "--subject-issuer", default=None, help="The trusted issuer of --subject (instead of ISSUER:)."
)
@click.option(
    "--subject-token",
    default=None,
    help="A real subject token, judged as /token would ('-': read it from stdin).",
)
@click.option("--target", required=True, help="The next hop: an NHI's name or resource URI.")
@click.option("--scope", default=None, help="Requested scope (default: the largest allowed).")
@click.option("--chain", default=None, help="NHIs that acted so far, first hop first: A1,A2.")
@json_option
@handles_errors
def explain(
    actor: str,
    subject: str | None,
    subject_issuer: str | None,
    subject_token: str | None,
    target: str,
    scope: str | None,
    chain: str | None,
    as_json: bool,
) -> None:
    """Would ACTOR's exchange toward TARGET be allowed: the decision, the deciding rule and
    the precise reason for a denial, from the exchange's own checks; nothing is minted."""
    names = [] if chain is None else [n.strip() for n in chain.split(",")]
    if subject_token == STDIN:
        # Kept out of the shell's history and the process list.
        subject_token = sys.stdin.read(MAX_TOKEN_BYTES + 1).strip()
    query = policy.build_query(
        actor=actor,
        target=target,
        scope=scope,
        subject=subject,
        subject_issuer=subject_issuer,
        subject_token=subject_token,
        chain=names,
    )
    rt = build_runtime(load_settings())
    try:
        with rt.engine.begin() as conn:
            if query.subject is not None and query.subject_issuer is None:
                trusted = [i["issuer"] for i in issuers.list_issuers(AdminStore(conn))]
                issuer, sub = policy.split_subject(query.subject, trusted, rt.settings.issuer)
                query = policy.with_subject(query, issuer, sub)
            answer = policy.explain(
                SqlStore(conn),
                rt.server.evaluation,
                query,
                by=administrator(),
                now=now_seconds(),
            )
    finally:
        rt.close()
    emit(as_json, policy.answer_dict(answer), lambda: _print(answer))
