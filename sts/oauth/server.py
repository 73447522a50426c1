"""The authorization server: Authlib's framework-free core, wired for Chain STS.

``token_response`` is the token endpoint (DESIGN §5): parse (repeated parameters, grant
type) → the grant, which authenticates, validates, decides, mints and records → respond. It
returns ``(status, body, headers)`` and never touches the web framework; the caller owns the
store's transaction and commits it before the answer leaves.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Error, UnsupportedGrantTypeError

from sts.core import errors
from sts.oauth.audit_facts import AuditFacts, Denied
from sts.oauth.rfc6749 import (
    ClientAuthenticator,
    ClientCredentialsGrant,
    ClientSecretBasic,
    ClientSecretPost,
)
from sts.oauth.rfc7523 import PrivateKeyJwt
from sts.oauth.rfc8693 import TokenExchange, TokenExchangeGrant
from sts.oauth.rfc8693.evaluation import ExchangeEvaluation
from sts.oauth.rfc9449 import DpopChecker, DpopNonces
from sts.oauth.validation import TokenValidator

if TYPE_CHECKING:
    from sts.core.jwks import JwksCache
    from sts.core.keys import KeyStore
    from sts.core.ports import AuditStore, ClientStore, Store
    from sts.core.response import Response
    from sts.core.secrets import SecretHasher
    from sts.core.settings import Settings
    from sts.oauth.rfc6749.client_auth import Authenticated
    from sts.oauth.rfc6749.grants import StsGrant
    from sts.oauth.rfc6749.request import OAuthRequest

log = logging.getLogger("sts.token")

_BY_CODE: dict[str, type[errors.StsError]] = {
    "invalid_request": errors.InvalidRequest,
    "invalid_client": errors.InvalidClient,
    "unauthorized_client": errors.UnauthorizedClient,
    "unsupported_grant_type": errors.UnsupportedGrantType,
    "invalid_scope": errors.InvalidScope,
    "invalid_target": errors.InvalidTarget,
}


def as_sts_error(err: OAuth2Error) -> errors.StsError:
    """Give an error raised inside Authlib our fixed public text (its own may echo input)."""
    if isinstance(err, errors.StsError):
        return err
    cls = _BY_CODE.get(err.error, errors.InvalidRequest)
    return cls(f"{err.error}: {err.description}"[:300])


class ChainAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self,
        settings: Settings,
        keys: KeyStore,
        hasher: SecretHasher,
        jwks_cache: JwksCache,
    ) -> None:
        super().__init__(scopes_supported=None)
        self.settings = settings
        self.keys = keys
        audiences = [settings.token_endpoint, settings.issuer]
        self.authenticator = ClientAuthenticator(
            settings,
            [
                ClientSecretBasic(hasher),
                ClientSecretPost(hasher),
                PrivateKeyJwt(
                    audiences,
                    settings.leeway,
                    settings.max_token_bytes,
                    settings.client_assertion_max_lifetime,
                    jwks_cache,
                ),
            ],
        )
        self.validator = TokenValidator(settings, keys, jwks_cache)
        nonces = (
            DpopNonces(hasher.derive("dpop-nonce"), settings.dpop_nonce_seconds, settings.leeway)
            if settings.dpop_require_nonce
            else None
        )
        self.dpop = DpopChecker(settings, nonces)
        self.token_exchange = TokenExchange(
            settings, self.validator, keys, self.authenticator, self.dpop
        )
        #: The exchange's verdict without the exchange (DESIGN §10).
        self.evaluation = ExchangeEvaluation(settings, self.validator)
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(TokenExchangeGrant)

    def query_client(self, client_id: str) -> None:
        raise NotImplementedError("clients are looked up through the request's store")

    def send_signal(self, name: str, *args: object, **kwargs: object) -> None:
        """No signals: audit events are written explicitly, in the request's transaction."""

    @property
    def grant_types(self) -> list[str]:
        return [grant.GRANT_TYPE for grant, _ in self._token_grants]

    def authenticate(
        self, request: OAuthRequest, store: ClientStore, facts: AuditFacts | None = None
    ) -> Authenticated:
        """RFC 6749 §2.3: the one method the request uses (DESIGN §5.1), at any endpoint."""
        return self.authenticator.authenticate(request, store, facts or AuditFacts())

    def token_response(self, request: OAuthRequest, store: Store) -> Response:
        """POST /token (RFC 6749 §3.2, §5; RFC 8693 §2)."""
        facts = AuditFacts()
        try:
            request.reject_repeated_parameters()
            if not request.param("grant_type"):
                raise errors.InvalidRequest("missing grant_type", "Missing grant_type.")
            try:
                grant: StsGrant = self.get_token_grant(request)
            except UnsupportedGrantTypeError:
                raise errors.UnsupportedGrantType("unsupported grant_type") from None
            facts = facts.but(grant_type=grant.GRANT_TYPE)
            return grant.respond(store, facts)
        except Denied as denied:
            err, facts = as_sts_error(denied.error), denied.facts
        except OAuth2Error as raised:
            err = as_sts_error(raised)
        self.record_denial(store, request, err, facts)
        return err.response()

    def refuse(
        self, store: AuditStore, request: OAuthRequest, exc: Denied | errors.StsError, event: str
    ) -> Response:
        """Record a refusal at an endpoint and answer it."""
        err, facts = (exc.error, exc.facts) if isinstance(exc, Denied) else (exc, AuditFacts())
        self.record_denial(store, request, err, facts, event)
        return err.response()

    def record_denial(
        self,
        store: AuditStore,
        request: OAuthRequest,
        err: errors.StsError,
        facts: AuditFacts,
        event: str = "token.denied",
    ) -> None:
        record = facts.denial(err, at=request.now, request_id=request.request_id, event=event)
        store.audit(record)
        log.info(
            "token denied",
            extra={
                "event": event,
                "error": err.error,
                "reason": err.reason,
                "client_id": record.client_id,
                "request_id": request.request_id,
            },
        )
