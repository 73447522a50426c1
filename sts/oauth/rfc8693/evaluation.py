"""The exchange's verdict without the exchange (DESIGN §10): the steps of
:mod:`sts.oauth.rfc8693.steps`, in the token endpoint's order, stopped before anything is
minted or recorded.

What the token endpoint learns from the request it cannot learn here is supplied by the
query: the actor is named rather than authenticated (it must still exist, be active and be
allowed the exchange grant), and the subject is either a real subject token, judged exactly
as the token endpoint judges it (signature, lifetime, lineage, every hop in force, audience
binding, ``may_act``), or an identity and a chain so far, which stand for a token that would
carry them: every NHI named must be registered and active, and no scope cap or lifetime of a
token is assumed beyond the global ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sts.core.chain import Actor, Chain
from sts.core.errors import InvalidClient, InvalidRequest, StsError
from sts.core.policy_query import PolicyAnswer, PolicyQuery
from sts.core.token_types import TOKEN_EXCHANGE
from sts.oauth.rfc6749.grants import check_grant
from sts.oauth.rfc8693 import steps
from sts.oauth.validation import ValidatedToken

if TYPE_CHECKING:
    from sts.core.domain import Client, Target
    from sts.core.ports import Store
    from sts.core.settings import Settings
    from sts.oauth.validation import TokenValidator


def _hop_order(chain: Chain) -> tuple[str, ...]:
    """Actors first hop first (``act`` nests them the other way round)."""
    return tuple(reversed(chain.subs()))


class ExchangeEvaluation:
    """A :class:`~sts.core.policy_query.PolicyEvaluator` made of the exchange's steps."""

    def __init__(self, settings: Settings, validator: TokenValidator) -> None:
        self.settings = settings
        self.validator = validator

    def __call__(self, query: PolicyQuery, store: Store, now: int) -> PolicyAnswer:
        # What is established so far, for the answer to a refusal.
        actor_name, target_name = query.actor, query.target
        sub: str | None = None
        issuer: str | None = None
        weighed: tuple[str, ...] = ()
        hops: tuple[str, ...] = ()
        try:
            client = self._actor(query, store, now)
            actor_name = client.client_id
            subject = self._subject(query, store, now)
            sub, issuer = subject.sub, subject.subject_issuer
            if query.subject_token is not None:
                steps.bind_audience(subject, client, self.settings, "subject")
            actor = Actor(client.sub)
            steps.check_may_act(subject, actor, self.settings)
            target = steps.next_hop(store, [query.target], [], client)
            target_name = target.client_id
            rules = steps.reaching_rules(store, client, target, now)
            weighed = tuple(r.id for r in rules)
            chain = steps.extend_chain(subject, actor, self.settings)
            hops = _hop_order(chain)
            decision = steps.decide_hop(
                store, self.settings, subject, chain, query.scope, None, rules, now
            )
        except StsError as err:
            return PolicyAnswer(
                allowed=False,
                subject=sub,
                subject_issuer=issuer,
                actor=actor_name,
                target=target_name,
                chain=hops,
                error=err.error,
                description=err.description,
                reason=err.reason,
                rules=weighed,
            )
        return PolicyAnswer(
            allowed=True,
            subject=sub,
            subject_issuer=issuer,
            actor=actor_name,
            target=target_name,
            chain=hops,
            rule_id=decision.rule.id,
            scope=decision.scopes,
            expires_in=decision.exp - now,
            rules=weighed,
        )

    # -- what the request would have established -----------------------------------------
    def _actor(self, query: PolicyQuery, store: Store, now: int) -> Client:
        """DESIGN §5.1 for a client that is named, not authenticated: the same refusals."""
        client = store.client(query.actor, now)
        if client is None:
            raise InvalidClient("unknown client")
        if not client.active:
            raise InvalidClient("client disabled")
        check_grant(client, TOKEN_EXCHANGE)
        return client

    def _subject(self, query: PolicyQuery, store: Store, now: int) -> ValidatedToken:
        if query.subject_token is not None:
            token = self.validator.validate(query.subject_token, "subject", store, now)
            if query.subject is not None and query.subject != token.sub:
                raise InvalidRequest("subject token: its sub is not the subject asked about")
            return token
        assert query.subject is not None
        issuer = query.subject_issuer or self.settings.issuer
        if issuer == self.settings.issuer:
            sub = self._nhi(store, query.subject, "subject").sub
        else:
            config = store.trusted_issuer(issuer)
            if config is None:
                raise InvalidRequest("subject token: issuer not trusted")
            if config.status != "active":
                raise InvalidRequest("subject token: issuer revoked")
            sub = query.subject
        actors = tuple(Actor(self._nhi(store, name, "chain").sub) for name in query.chain)
        return ValidatedToken(
            claims={},
            issuer=issuer,
            own=False,
            sub=sub,
            aud=(),
            exp=now + self.settings.max_token_ttl,
            jti=None,
            scopes=None,
            chain=Chain(tuple(reversed(actors))),
            may_act=None,
        )

    @staticmethod
    def _nhi(store: Store, name: str, role: str) -> Target:
        """An NHI named in the query (by name, or by its ``sub``), registered and active, as
        every identity in a live token's chain must be."""
        found = store.target_by_name(name) or store.nhi_by_sub(name)
        if found is None:
            raise InvalidRequest(f"{role}: {name[:128]!r} is not a registered NHI")
        if found.status != "active":
            raise InvalidRequest("subject token: an identity in the chain is disabled")
        return found
