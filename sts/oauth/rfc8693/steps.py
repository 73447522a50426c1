"""The token-exchange steps (RFC 8693 §2, DESIGN §5), each a function of values.

parse → (authenticate, DPoP proof) → validate subject → bind audience and key → actor →
target → rules → chain → decide → require binding → (mint, record, respond). Each step takes
what it needs and returns its result or raises the documented OAuth error; none reads or
writes anything on the request. The runner in :mod:`sts.oauth.rfc8693.grant` calls them in
order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jwt.exceptions import InvalidTokenError

from sts.core import jws
from sts.core.chain import Actor, Chain, ChainError
from sts.core.domain import Client, Target
from sts.core.errors import InvalidDpopProof, InvalidRequest, InvalidTarget, StsError
from sts.core.policy import Decision, Subject, decide
from sts.core.ports import ExchangeHints
from sts.core.token_types import ID_TOKEN_TYPE
from sts.oauth.rfc6749.client_auth import Claim, ClientAuthenticator
from sts.oauth.rfc8693.params import ExchangeParams, parse_exchange_params
from sts.oauth.targets import resolve_target
from sts.oauth.validation import AT_JWT_TYPES

if TYPE_CHECKING:
    from sts.core.jws import ParsedJWS
    from sts.core.ports import PolicyStore, RuleView, Store, TargetStore
    from sts.core.settings import Settings
    from sts.oauth.rfc6749.request import OAuthRequest
    from sts.oauth.rfc9449 import DpopProof
    from sts.oauth.validation import TokenValidator, ValidatedToken


@dataclass(frozen=True)
class ExchangeInput:
    """What the form holds: its parameters, its tokens parsed once (unverified; ``None`` when
    not a JWT, which the token's own step refuses), and what the store should expect."""

    params: ExchangeParams
    subject: ParsedJWS | None
    actor: ParsedJWS | None
    hints: ExchangeHints
    #: The client authentication the request claims (``None``: refused in its own step).
    claim: Claim | None = None


def _parsed(token: str | None) -> ParsedJWS | None:
    if token is None:
        return None
    try:
        return jws.parse(token)
    except InvalidTokenError:
        return None


def parse(
    request: OAuthRequest, settings: Settings, authenticator: ClientAuthenticator
) -> ExchangeInput:
    """RFC 8693 §2.1 syntax, and the hints for the store: the client, the subject token's
    issuer, the one named audience, and our own tokens whose lineages will be walked. The
    client's claim (a client assertion parsed once) is kept for its authentication."""
    params = parse_exchange_params(request, settings.max_token_bytes)
    subject, actor = _parsed(params.subject_token), _parsed(params.actor_token)
    if subject is None or (params.actor_token is not None and actor is None):
        # A token that is not a JWT is refused by its own step, in its turn.
        return ExchangeInput(params, subject, actor, ExchangeHints())
    own, issuer = [], None
    for parsed in (subject, actor):
        if parsed is None:
            continue
        iss, jti = parsed.claims.get("iss"), parsed.claims.get("jti")
        if iss == settings.issuer and isinstance(jti, str):
            own.append(jti)
        elif isinstance(iss, str) and parsed is subject:
            issuer = iss
    try:
        claim = authenticator.claim(request)
    except StsError:
        claim = None  # refused by the authentication step, in its turn
    single = len(params.audiences) == 1 and not params.resources
    hints = ExchangeHints(
        client_id=claim.claimed.client_id if claim else None,
        issuer=issuer,
        target=params.audiences[0] if single else None,
        own_jtis=tuple(own),
        source=request.source,
    )
    return ExchangeInput(params, subject, actor, hints, claim)


def check_token_type(token: ValidatedToken, declared: str, role: str) -> None:
    """RFC 8693 §2.1: the token is validated as the type the request indicates. This STS's
    tokens are access tokens (``access_token`` or the generic ``jwt``), never ID tokens; an
    ``id_token`` is only ever a trusted issuer's ID token, not its access token."""
    if declared != ID_TOKEN_TYPE:
        return
    if token.own or token.typ in AT_JWT_TYPES:
        raise InvalidRequest(
            f"{role} token: an access token declared as id_token",
            f"The {role} token is invalid.",
        )


def bind_audience(token: ValidatedToken, client: Client, settings: Settings, role: str) -> None:
    """DESIGN §5.3: only the token's audience may exchange it. A token addressed to the STS
    itself is good for exchange by anyone only when a trusted issuer minted it; one of this
    STS's own can only be exchanged by the client it was issued to (its ``client_id``):
    whoever else obtains it holds nothing."""
    audience = set(token.aud)
    if audience & {client.client_id, client.sub}:
        return
    if audience & {settings.issuer, settings.token_endpoint} and (
        not token.own or token.claims.get("client_id") == client.client_id
    ):
        return
    raise InvalidRequest(
        f"{role} token is not addressed to this client",
        f"The {role} token is not addressed to this client.",
    )


def bind_subject_key(token: ValidatedToken, proof: DpopProof | None, client: Client) -> None:
    """DESIGN §12, RFC 9449 §6: a bound token's key is checked by the service that receives
    it. A token of this STS addressed to the requesting client was checked by that client's
    own service; one addressed to the STS itself is received here, so the request must prove
    its key (a stolen self-addressed token is useless without it)."""
    if not token.own:
        return
    cnf = token.claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if jkt is None or set(token.aud) & {client.client_id, client.sub}:
        return
    if proof is None or proof.jkt != jkt:
        raise InvalidDpopProof("subject token bound to another key")


def require_binding(decision: Decision, proof: DpopProof | None) -> None:
    """DESIGN §12: a rule may require DPoP for its target; an unbound request under it is
    refused with ``invalid_dpop_proof`` (RFC 9449 §7.1's code for a missing or bad proof), so
    a client knows to send one."""
    if proof is None and decision.rule.require_dpop:
        raise InvalidDpopProof(
            "rule requires a DPoP-bound request", "A DPoP proof is required for this target."
        )


def resolve_actor(
    validator: TokenValidator,
    inp: ExchangeInput,
    client: Client,
    subject: ValidatedToken,
    store: Store,
    now: int,
) -> tuple[Actor, ValidatedToken | None]:
    """DESIGN §5.4: the actor is the authenticated client; an actor token must prove it.
    Returns the actor and the actor token (whose ``exp`` caps the new token's, and which the
    lineage records so that revoking it reaches what it helped mint)."""
    settings = validator.settings
    actor, token = Actor(client.sub), None
    if inp.params.actor_token is not None:
        token = validator.validate(inp.params.actor_token, "actor", store, now, inp.actor)
        if token.sub != client.sub:
            raise InvalidRequest(
                "actor token sub is not the authenticated client",
                "The actor token does not identify this client.",
            )
        if token.chain.depth:
            raise InvalidRequest(
                "actor token carries a delegation chain", "The actor token must not carry act."
            )
        bind_audience(token, client, settings, "actor")
        if not token.own:
            actor = Actor(client.sub, token.issuer)
    check_may_act(subject, actor, settings)
    return actor, token


def check_may_act(subject: ValidatedToken, actor: Actor, settings: Settings) -> None:
    """RFC 8693 §4.4: a subject token's ``may_act`` names the one actor allowed."""
    if subject.may_act is not None:
        expected_iss = subject.may_act.iss
        actor_iss = actor.iss or settings.issuer
        if subject.may_act.sub != actor.sub or (expected_iss and expected_iss != actor_iss):
            raise InvalidRequest(
                "actor does not match may_act", "The actor is not allowed by may_act."
            )


def next_hop(
    store: TargetStore, audiences: list[str], resources: list[str], client: Client
) -> Target:
    """DESIGN §5.6: one registered target; omitted means the actor itself."""
    target = resolve_target(store, audiences, resources)
    if target is None:
        target = Target(client.id, client.client_id, client.sub, client.status, client.kind)
    return target


def reaching_rules(store: PolicyStore, client: Client, target: Target, now: int) -> list[RuleView]:
    """DESIGN §5.5-5.6: no rule letting this actor reach this target at all is
    ``invalid_target``, decided before anything about the chain, so a registered target
    without a rule answers exactly like an unknown one (the registry cannot be probed)."""
    rules = store.rules_for(client.id, target.id, now)
    if not rules:
        raise InvalidTarget("no rule lets this actor reach this target")
    return rules


def extend_chain(subject: ValidatedToken, actor: Actor, settings: Settings) -> Chain:
    """DESIGN §5.9: newest actor outermost; no level for self; cycles refused.

    Every actor is the NHI that authenticated, whichever issuer vouched for it this time:
    an NHI already in the chain (or the NHI subject) is the same actor, so an actor token
    from a trusted issuer cannot make it look new. A subject from another issuer is never
    an NHI, whatever its ``sub``.
    """
    nhi_subject = subject.subject_issuer == settings.issuer
    known = next((a for a in subject.chain.actors if a.sub == actor.sub), None)
    if known is not None:
        actor = known
    elif nhi_subject and actor.sub == subject.sub:
        actor = Actor(actor.sub)
    try:
        return subject.chain.after_hop(actor, subject.sub, subject_is_nhi=nhi_subject)
    except ChainError as exc:
        raise InvalidRequest(f"cycle: {exc}") from None


def decide_hop(
    store: TargetStore,
    settings: Settings,
    subject: ValidatedToken,
    chain: Chain,
    requested: frozenset[str] | None,
    actor_exp: int | None,
    rules: list[RuleView],
    now: int,
) -> Decision:
    """DESIGN §5.5, §5.7, §5.8: the policy's verdict on this hop of this chain."""
    # A chain rooted here started with an NHI's own token: its subject is that NHI. Its
    # kind is looked up only when some rule asks for one (a round trip saved otherwise).
    rooted_here = subject.subject_issuer == settings.issuer
    wants_kind = rooted_here and any(r.subject_type == "kind" for r in rules)
    subject_nhi = store.nhi_by_sub(subject.sub) if wants_kind else None
    if subject.own:
        cap: frozenset[str] | None = subject.scopes or frozenset()
    elif subject.issuer_config is not None and subject.issuer_config.scope_mode == "cap":
        cap = subject.scopes or frozenset()
    else:
        cap = None
    outermost = subject.chain.outermost
    upstream = outermost.sub if outermost else (subject.sub if rooted_here else None)
    facts = Subject(
        subject.sub,
        subject.subject_issuer,
        subject_nhi.kind if subject_nhi else None,
        cap,
        upstream,
        rooted_here,
    )
    exps = (subject.exp,) if actor_exp is None else (subject.exp, actor_exp)
    return decide(
        rules=rules,
        subject=facts,
        new_chain=chain,
        requested=requested,
        now=now,
        default_ttl=settings.token_ttl,
        max_ttl=settings.max_token_ttl,
        max_depth=settings.max_chain_depth,
        token_exps=exps,
    )
