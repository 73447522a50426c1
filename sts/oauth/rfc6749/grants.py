"""The grants' shared shape and the ``client_credentials`` grant (RFC 6749 §4.4, DESIGN §4)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749.grants import BaseGrant, TokenEndpointMixin

from sts.core.domain import AUTH_METHODS, Client
from sts.core.errors import InvalidScope, UnauthorizedClient
from sts.core.ports import AuditRecord, IssuedRecord
from sts.core.response import Response
from sts.core.scopes import parse_scope, scope_str
from sts.core.token_types import CLIENT_CREDENTIALS
from sts.oauth.rfc9068 import AccessToken, new_jti
from sts.oauth.targets import resolve_target

if TYPE_CHECKING:
    from sts.core.domain import Target
    from sts.oauth.rfc6749.request import TokenRequest
    from sts.oauth.server import ChainAuthorizationServer


class StsGrant(BaseGrant, TokenEndpointMixin):  # type: ignore[misc]
    """Common steps of every Chain STS grant: one authentication method, grant allowed."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = list(AUTH_METHODS)
    request: TokenRequest
    server: ChainAuthorizationServer

    def authenticate_token_endpoint_client(self) -> Client:
        """RFC 6749 §2.3 and §3.2.1; DESIGN §5.1."""
        client = self.server.authenticate(self.request)
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClient(f"grant {self.GRANT_TYPE} not allowed for client")
        return client

    def issue(
        self,
        token: AccessToken,
        *,
        parent_jti: str | None,
        subject_issuer: str,
        rule_id: str | None,
        chain: tuple[str, ...],
        extra: dict[str, Any],
    ) -> Response:
        """Sign, record lineage and the audit event (same transaction), and respond."""
        request = self.request
        client = request.client
        assert client is not None
        lineage = IssuedRecord(
            jti=token.jti,
            parent_jti=parent_jti,
            txn=token.txn,
            grant_type=self.GRANT_TYPE,
            subject=token.sub,
            subject_issuer=subject_issuer,
            actor_id=client.id,
            client_id=client.client_id,
            credential_id=request.credential_id,
            target=token.aud,
            scope=token.scope,
            rule_id=rule_id,
            chain=chain,
            issued_at=token.iat,
            expires_at=token.exp,
        )
        signed = token.sign(self.server.keys.ring.signing)
        request.store.record_issued(
            lineage,
            AuditRecord(
                at=request.now,
                event="token.issued",
                decision="allowed",
                reason="issued",
                request_id=request.request_id,
                client_id=lineage.client_id,
                credential_id=lineage.credential_id,
                subject=lineage.subject,
                target=lineage.target,
                scope=lineage.scope,
                jti=lineage.jti,
                parent_jti=lineage.parent_jti,
                txn=lineage.txn,
                rule_id=lineage.rule_id,
                chain=lineage.chain,
                detail={"grant_type": self.GRANT_TYPE, "exp": token.exp},
            ),
        )
        body: dict[str, Any] = {
            "access_token": signed,
            "token_type": "Bearer",
            "expires_in": token.exp - token.iat,
            **extra,
        }
        if token.scope:
            body["scope"] = token.scope
        return 200, body, list(self.TOKEN_RESPONSE_HEADER)


class ClientCredentialsGrant(StsGrant):
    """RFC 6749 §4.4: an NHI gets a token for itself; the root of a chain no person started.

    Without ``audience``/``resource`` the token's ``aud`` is this STS (good only for exchange
    here); with one, it is that registered target.
    """

    GRANT_TYPE = CLIENT_CREDENTIALS

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        requested = parse_scope(self.request.param("scope"))
        if requested is not None and not requested <= client.scopes:
            raise InvalidScope("requested scope exceeds the client's scopes")
        self.scopes = client.scopes if requested is None else requested
        self.target: Target | None = resolve_target(
            self.request.store, self.request.params("audience"), self.request.params("resource")
        )

    def create_token_response(self) -> Response:
        request, settings = self.request, self.server.settings
        client = request.client
        assert client is not None
        jti = new_jti()
        aud = self.target.client_id if self.target else settings.issuer
        token = AccessToken(
            iss=settings.issuer,
            sub=client.sub,
            aud=aud,
            client_id=client.client_id,
            scope=scope_str(self.scopes),
            iat=request.now,
            exp=request.now + min(settings.token_ttl, settings.max_token_ttl),
            jti=jti,
            txn=jti,
        )
        return self.issue(
            token,
            parent_jti=None,
            subject_issuer=settings.issuer,
            rule_id=None,
            chain=(),
            extra={},
        )
