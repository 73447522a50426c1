"""The token-exchange grant (RFC 8693 §2) as an explicit pipeline (DESIGN §5).

parse → authenticate → validate tokens → bind audience → actor → target → chain → policy →
mint → record → respond. Each step is a method that reads the previous steps' results and
either adds its own or raises the documented OAuth error; ``request.audit`` collects the facts
the audit event of a denial needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jwt.exceptions import InvalidTokenError

from sts.core import jws
from sts.core.chain import Actor, Chain, ChainError
from sts.core.domain import Client, Target
from sts.core.errors import InvalidRequest, InvalidTarget
from sts.core.policy import Decision, Subject, decide
from sts.core.ports import RuleView
from sts.core.response import Response
from sts.core.scopes import scope_str
from sts.core.token_types import TOKEN_EXCHANGE
from sts.oauth.rfc6749.client_auth import claimed_client_id
from sts.oauth.rfc6749.grants import StsGrant
from sts.oauth.rfc8693.params import ExchangeParams, parse_exchange_params
from sts.oauth.rfc9068 import AccessToken, new_jti
from sts.oauth.targets import resolve_target

if TYPE_CHECKING:
    from sts.oauth.validation import ValidatedToken


@dataclass(frozen=True)
class Exchange:
    """Everything decided about this exchange, ready to mint."""

    client: Client
    subject: ValidatedToken
    actor: Actor
    target: Target
    chain: Chain
    decision: Decision
    requested_token_type: str


class TokenExchangeGrant(StsGrant):
    GRANT_TYPE = TOKEN_EXCHANGE

    def validate_token_request(self) -> None:
        request, settings = self.request, self.server.settings
        params = parse_exchange_params(request, settings.max_token_bytes)
        lineage = self.read_ahead(params)
        client = self.authenticate_token_endpoint_client()
        # Our own tokens' roots are locked only for an authenticated client.
        request.store.prefetch_lineage(lineage)
        subject = self.validate_subject(params)
        self.bind_audience(subject, client, "subject")
        actor, actor_exp = self.resolve_actor(params, client, subject)
        target = self.resolve_target(params, client)
        rules = self.reaching_rules(client, target)
        chain = self.extend_chain(subject, actor)
        decision = self.decide(client, subject, target, chain, params, actor_exp, rules)
        self.exchange = Exchange(
            client, subject, actor, target, chain, decision, params.requested_token_type
        )

    # -- steps -----------------------------------------------------------------------------
    def read_ahead(self, params: ExchangeParams) -> tuple[str, ...]:
        """Tell the store what the next steps will look up (the client, the subject token's
        issuer, the one named audience and its rules), so it can fetch them in one round trip,
        and name our own tokens whose lineages will be walked (read ahead once the client is
        authenticated). Nothing is decided here: every value is untrusted until its own step
        checks it, and what cannot be read ahead is simply looked up by that step."""
        request, settings = self.request, self.server.settings
        issuer, lineage = None, []
        for token in (params.subject_token, params.actor_token):
            if token is None:
                continue
            try:
                parsed = request.parsed_tokens[token] = jws.parse(token)
            except InvalidTokenError:
                return ()  # refused by its own step, in its turn
            iss, jti = parsed.claims.get("iss"), parsed.claims.get("jti")
            if iss == settings.issuer and isinstance(jti, str):
                lineage.append(jti)
            elif isinstance(iss, str) and token is params.subject_token:
                issuer = iss
        single = len(params.audiences) == 1 and not params.resources
        # The transaction roots are locked before any issuer or rule, as a revocation takes
        # them: with a lineage to walk, those are left to their own steps.
        request.store.prefetch(
            client_id=claimed_client_id(request, settings.max_token_bytes),
            issuer=None if lineage else issuer,
            target=params.audiences[0] if single else None,
            rules=not lineage,
            now=request.now,
        )
        return tuple(lineage)

    def validate_subject(self, params: ExchangeParams) -> ValidatedToken:
        """DESIGN §5.2."""
        request = self.request
        subject = self.server.validator.validate(
            params.subject_token,
            "subject",
            request.store,
            request.now,
            request.parsed_tokens.get(params.subject_token),
        )
        request.audit.update(
            subject=subject.sub,
            parent_jti=subject.jti if subject.own else None,
            txn=subject.txn,
            chain=subject.chain.subs(),
        )
        return subject

    def bind_audience(self, token: ValidatedToken, client: Client, role: str) -> None:
        """DESIGN §5.3: only the token's audience may exchange it (or anyone, if the
        audience is this STS itself)."""
        settings = self.server.settings
        accepted = {client.client_id, client.sub, settings.issuer, settings.token_endpoint}
        if not accepted & set(token.aud):
            raise InvalidRequest(
                f"{role} token is not addressed to this client",
                f"The {role} token is not addressed to this client.",
            )

    def resolve_actor(
        self, params: ExchangeParams, client: Client, subject: ValidatedToken
    ) -> tuple[Actor, int | None]:
        """DESIGN §5.4: the actor is the authenticated client; an actor token must prove it.
        Returns the actor and the actor token's ``exp`` (which caps the new token's)."""
        request = self.request
        actor, actor_exp = Actor(client.sub), None
        if params.actor_token is not None:
            token = self.server.validator.validate(
                params.actor_token,
                "actor",
                request.store,
                request.now,
                request.parsed_tokens.get(params.actor_token),
            )
            if token.sub != client.sub:
                raise InvalidRequest(
                    "actor token sub is not the authenticated client",
                    "The actor token does not identify this client.",
                )
            if token.chain.depth:
                raise InvalidRequest(
                    "actor token carries a delegation chain", "The actor token must not carry act."
                )
            self.bind_audience(token, client, "actor")
            actor_exp = token.exp
            if not token.own:
                actor = Actor(client.sub, token.issuer)
        if subject.may_act is not None:
            expected_iss = subject.may_act.iss
            actor_iss = actor.iss or self.server.settings.issuer
            if subject.may_act.sub != actor.sub or (expected_iss and expected_iss != actor_iss):
                raise InvalidRequest(
                    "actor does not match may_act", "The actor is not allowed by may_act."
                )
        return actor, actor_exp

    def resolve_target(self, params: ExchangeParams, client: Client) -> Target:
        """DESIGN §5.6: one registered target; omitted means the actor itself."""
        request = self.request
        target = resolve_target(request.store, params.audiences, params.resources)
        if target is None:
            target = Target(client.id, client.client_id, client.sub, client.status, client.kind)
        request.audit["target"] = target.client_id
        return target

    def reaching_rules(self, client: Client, target: Target) -> list[RuleView]:
        """DESIGN §5.5-5.6: no rule letting this actor reach this target at all is
        ``invalid_target``, decided before anything about the chain, so a registered target
        without a rule answers exactly like an unknown one (the registry cannot be probed)."""
        request = self.request
        rules = request.store.rules_for(client.id, target.id, request.now)
        if not rules:
            raise InvalidTarget("no rule lets this actor reach this target")
        return rules

    def extend_chain(self, subject: ValidatedToken, actor: Actor) -> Chain:
        """DESIGN §5.9: newest actor outermost; no level for self; cycles refused.

        Every actor is the NHI that authenticated, whichever issuer vouched for it this time:
        an NHI already in the chain (or the NHI subject) is the same actor, so an actor token
        from a trusted issuer cannot make it look new. A subject from another issuer is never
        an NHI, whatever its ``sub``.
        """
        nhi_subject = subject.subject_issuer == self.server.settings.issuer
        known = next((a for a in subject.chain.actors if a.sub == actor.sub), None)
        if known is not None:
            actor = known
        elif nhi_subject and actor.sub == subject.sub:
            actor = Actor(actor.sub)
        try:
            chain = subject.chain.after_hop(actor, subject.sub, subject_is_nhi=nhi_subject)
        except ChainError as exc:
            raise InvalidRequest(f"cycle: {exc}") from None
        self.request.audit["chain"] = chain.subs()
        return chain

    def decide(
        self,
        client: Client,
        subject: ValidatedToken,
        target: Target,
        chain: Chain,
        params: ExchangeParams,
        actor_exp: int | None,
        rules: list[RuleView],
    ) -> Decision:
        """DESIGN §5.5, §5.7, §5.8."""
        request, settings = self.request, self.server.settings
        store = request.store
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
        )
        exps = (subject.exp,) if actor_exp is None else (subject.exp, actor_exp)
        decision = decide(
            rules=rules,
            subject=facts,
            new_chain=chain,
            requested=params.scope,
            now=request.now,
            default_ttl=settings.token_ttl,
            max_ttl=settings.max_token_ttl,
            max_depth=settings.max_chain_depth,
            token_exps=exps,
        )
        request.audit.update(rule_id=decision.rule.id, scope=scope_str(decision.scopes))
        return decision

    # -- mint, record, respond ------------------------------------------------------------
    def create_token_response(self) -> Response:
        """RFC 8693 §2.2.1."""
        request, settings, hop = self.request, self.server.settings, self.exchange
        jti = new_jti()
        txn = hop.subject.txn or jti
        token = AccessToken(
            iss=settings.issuer,
            sub=hop.subject.sub,
            aud=hop.target.client_id,
            client_id=hop.client.client_id,
            scope=scope_str(hop.decision.scopes),
            iat=request.now,
            exp=hop.decision.exp,
            jti=jti,
            txn=txn,
            act=hop.chain.to_act(),
        )
        return self.issue(
            token,
            parent_jti=hop.subject.jti if hop.subject.own else None,
            subject_issuer=hop.subject.subject_issuer,
            rule_id=hop.decision.rule.id,
            chain=hop.chain.subs(),
            extra={"issued_token_type": hop.requested_token_type},
        )
