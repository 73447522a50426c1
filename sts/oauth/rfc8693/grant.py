"""The token-exchange grant (RFC 8693 §2): the runner of the steps, and Authlib's adapter.

:class:`TokenExchange` is the provider (Spring's word): it calls the steps of
:mod:`sts.oauth.rfc8693.steps` in order, handing each the values it needs, and keeps the
facts a denial's audit event records as one value it rebinds after each step.
:class:`TokenExchangeGrant` only connects it to Authlib's dispatch by ``grant_type``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sts.core.errors import StsError
from sts.core.scopes import scope_str
from sts.core.token_types import TOKEN_EXCHANGE
from sts.oauth.audit_facts import AuditFacts, Denied
from sts.oauth.issuance import Provenance, issue
from sts.oauth.rfc6749.grants import StsGrant, authenticate_for_grant, prove_possession
from sts.oauth.rfc8693 import steps
from sts.oauth.rfc9068 import AccessToken, new_jti
from sts.oauth.targets import named_target

if TYPE_CHECKING:
    from sts.core.keys import KeyStore
    from sts.core.ports import Store
    from sts.core.response import Response
    from sts.core.settings import Settings
    from sts.oauth.rfc6749.client_auth import ClientAuthenticator
    from sts.oauth.rfc6749.request import OAuthRequest
    from sts.oauth.rfc9449 import DpopChecker
    from sts.oauth.validation import TokenValidator


class TokenExchange:
    """DESIGN §5: every check, every time, then mint, record and respond."""

    def __init__(
        self,
        settings: Settings,
        validator: TokenValidator,
        keys: KeyStore,
        authenticator: ClientAuthenticator,
        dpop: DpopChecker,
    ) -> None:
        self.settings = settings
        self.validator = validator
        self.keys = keys
        self.authenticator = authenticator
        self.dpop = dpop

    def run(self, request: OAuthRequest, store: Store, facts: AuditFacts) -> Response:
        settings, now = self.settings, request.now
        try:
            inp = steps.parse(request, settings, self.authenticator)
        except StsError as err:
            raise Denied(err, facts) from None
        store.expect(inp.hints, now)
        auth, facts = authenticate_for_grant(
            TOKEN_EXCHANGE, self.authenticator, request, store, facts, inp.claim
        )
        client, params = auth.client, inp.params
        try:
            proof = prove_possession(self.dpop, request, store, settings.token_endpoint)
            subject = self.validator.validate(
                params.subject_token, "subject", store, now, inp.subject
            )
            facts = facts.but(
                subject=subject.sub,
                parent_jti=subject.jti if subject.own else None,
                txn=subject.txn,
                chain=subject.chain.subs(),
                target=named_target(params.audiences, params.resources),
            )
            steps.check_token_type(subject, params.subject_token_type, "subject")
            steps.bind_audience(subject, client, settings, "subject")
            steps.bind_subject_key(subject, proof, client)
            actor, actor_token = steps.resolve_actor(
                self.validator, inp, client, subject, store, now
            )
            actor_exp = actor_token.exp if actor_token else None
            target = steps.next_hop(store, params.audiences, params.resources, client)
            facts = facts.but(target=target.client_id)
            rules = steps.reaching_rules(store, client, target, now)
            chain = steps.extend_chain(subject, actor, settings)
            facts = facts.but(chain=chain.subs())
            decision = steps.decide_hop(
                store, settings, subject, chain, params.scope, actor_exp, rules, now
            )
            steps.require_binding(decision, proof)
        except StsError as err:
            raise Denied(err, facts) from None
        jti = new_jti()
        token = AccessToken(
            iss=settings.issuer,
            sub=subject.sub,
            aud=target.client_id,
            client_id=client.client_id,
            scope=scope_str(decision.scopes),
            iat=now,
            exp=decision.exp,
            jti=jti,
            txn=subject.txn or jti,
            act=chain.to_act(),
            subject_issuer=(
                None if subject.subject_issuer == settings.issuer else subject.subject_issuer
            ),
            jkt=proof.jkt if proof else None,
        )
        origin = Provenance(
            grant_type=TOKEN_EXCHANGE,
            parent_jti=subject.jti if subject.own else None,
            subject_issuer=subject.subject_issuer,
            rule_id=decision.rule.id,
            chain=chain.subs(),
            actor_jti=actor_token.jti if actor_token and actor_token.own else None,
            actor_issuer=actor_token.issuer if actor_token and not actor_token.own else None,
        )
        return issue(
            token,
            origin,
            auth,
            keys=self.keys,
            store=store,
            request_id=request.request_id,
            extra={"issued_token_type": params.requested_token_type},
            nonce=self.dpop.fresh_nonce(now) if proof else None,
        )


class TokenExchangeGrant(StsGrant):
    GRANT_TYPE = TOKEN_EXCHANGE

    def respond(self, store: Store, facts: AuditFacts) -> Response:
        return self.server.token_exchange.run(self.request, store, facts)
