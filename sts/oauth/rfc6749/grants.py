"""The grants' shared shape and the ``client_credentials`` grant (RFC 6749 §4.4, DESIGN §4).

A grant class is the thin adapter Authlib's :class:`AuthorizationServer` dispatches to by
``grant_type``; the work is done by plain functions that take values and return values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from authlib.oauth2.rfc6749.grants import BaseGrant, TokenEndpointMixin

from sts.core.errors import InvalidScope, StsError, UnauthorizedClient
from sts.core.scopes import parse_scope, scope_str
from sts.core.token_types import CLIENT_CREDENTIALS
from sts.oauth.audit_facts import AuditFacts, Denied
from sts.oauth.issuance import Provenance, issue
from sts.oauth.rfc9068 import AccessToken, new_jti
from sts.oauth.targets import named_target, resolve_target

if TYPE_CHECKING:
    from sts.core.domain import Client
    from sts.core.ports import DpopReplayStore, Store
    from sts.core.response import Response
    from sts.oauth.rfc6749.client_auth import Authenticated, Claim, ClientAuthenticator
    from sts.oauth.rfc6749.request import OAuthRequest
    from sts.oauth.rfc9449 import DpopChecker, DpopProof
    from sts.oauth.server import ChainAuthorizationServer


def authenticate_for_grant(
    grant_type: str,
    authenticator: ClientAuthenticator,
    request: OAuthRequest,
    store: Store,
    facts: AuditFacts,
    claim: Claim | None = None,
) -> tuple[Authenticated, AuditFacts]:
    """RFC 6749 §2.3 and §3.2.1; DESIGN §5.1: the client, allowed this grant."""
    auth = authenticator.authenticate(request, store, facts, claim)
    facts = facts.but(client_id=auth.client.client_id, credential_id=auth.credential_id)
    try:
        check_grant(auth.client, grant_type)
    except UnauthorizedClient as err:
        raise Denied(err, facts) from None
    return auth, facts


def check_grant(client: Client, grant_type: str) -> None:
    """DESIGN §5.1: the client is allowed this grant, else ``unauthorized_client``."""
    if not client.check_grant_type(grant_type):
        raise UnauthorizedClient(f"grant {grant_type} not allowed for client")


def prove_possession(
    dpop: DpopChecker, request: OAuthRequest, store: DpopReplayStore, token_endpoint: str
) -> DpopProof | None:
    """RFC 9449 §5: the request's DPoP proof, checked against this token endpoint, or ``None``
    (the token will be a bearer token)."""
    return dpop.check(
        request.headers, store, method=request.method, url=token_endpoint, now=request.now
    )


class StsGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """What every Chain STS grant is to Authlib: a ``GRANT_TYPE`` and :meth:`respond`."""

    request: OAuthRequest
    server: ChainAuthorizationServer

    def respond(self, store: Store, facts: AuditFacts) -> Response:
        """The token response, or :class:`Denied` with the facts known when refused."""
        raise NotImplementedError


class ClientCredentialsGrant(StsGrant):
    """RFC 6749 §4.4: an NHI gets a token for itself; the root of a chain no person started.

    Without ``audience``/``resource`` the token's ``aud`` is this STS (good only for exchange
    here); with one, it is that registered target. With a DPoP proof, the token is bound to
    its key (RFC 9449 §5).
    """

    GRANT_TYPE = CLIENT_CREDENTIALS

    def respond(self, store: Store, facts: AuditFacts) -> Response:
        request, server = self.request, self.server
        settings = server.settings
        auth, facts = authenticate_for_grant(
            self.GRANT_TYPE, server.authenticator, request, store, facts
        )
        client = auth.client
        audiences, resources = request.params("audience"), request.params("resource")
        facts = facts.but(target=named_target(audiences, resources))
        try:
            requested = parse_scope(request.param("scope"))
            if requested is not None and not requested <= client.scopes:
                raise InvalidScope("requested scope exceeds the client's scopes")
            target = resolve_target(store, audiences, resources)
            proof = prove_possession(server.dpop, request, store, settings.token_endpoint)
        except StsError as err:
            raise Denied(err, facts) from None
        jti = new_jti()
        token = AccessToken(
            iss=settings.issuer,
            sub=client.sub,
            aud=target.client_id if target else settings.issuer,
            client_id=client.client_id,
            scope=scope_str(client.scopes if requested is None else requested),
            iat=request.now,
            exp=request.now + min(settings.token_ttl, settings.max_token_ttl),
            jti=jti,
            txn=jti,
            jkt=proof.jkt if proof else None,
        )
        origin = Provenance(self.GRANT_TYPE, None, settings.issuer, None, ())
        return issue(
            token,
            origin,
            auth,
            keys=server.keys,
            store=store,
            request_id=request.request_id,
            extra={},
            nonce=server.dpop.fresh_nonce(request.now) if proof else None,
        )
