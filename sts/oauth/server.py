"""The authorization server: Authlib's framework-free core, wired for Chain STS.

``token_response`` is the token endpoint as a pipeline of named steps (DESIGN §5):
parse (repeated parameters, grant type) → the grant's own steps (authenticate the client,
validate, decide) → mint → record → respond. It returns ``(status, body, headers)`` and never
touches the web framework; the caller owns the database transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationServer, OAuth2Error, UnsupportedGrantTypeError

from sts.core import errors
from sts.core.domain import Client
from sts.core.jwks import JwksCache
from sts.core.keys import KeyStore
from sts.core.ports import AuditRecord
from sts.core.secrets import SecretHasher
from sts.core.settings import Settings
from sts.oauth.rfc6749 import (
    ClientCredentialsGrant,
    TokenRequest,
    authenticate_client_secret_basic,
    authenticate_client_secret_post,
)
from sts.oauth.rfc6749.client_auth import detect_auth_method
from sts.oauth.rfc7523 import authenticate_private_key_jwt
from sts.oauth.rfc8693 import TokenExchangeGrant
from sts.oauth.validation import TokenValidator

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
        self.register_client_auth_method(
            "client_secret_basic", authenticate_client_secret_basic(hasher)
        )
        self.register_client_auth_method(
            "client_secret_post", authenticate_client_secret_post(hasher)
        )
        self.register_client_auth_method(
            "private_key_jwt",
            authenticate_private_key_jwt(
                [settings.token_endpoint, settings.issuer],
                settings.leeway,
                settings.max_token_bytes,
                jwks_cache,
            ),
        )
        self.validator = TokenValidator(settings, keys, jwks_cache)
        self.register_grant(ClientCredentialsGrant)
        self.register_grant(TokenExchangeGrant)

    # The registered authentication methods look clients up through the request's store.
    def query_client(self, client_id: str) -> Any:
        raise NotImplementedError("clients are looked up through the request's store")

    def authenticate_client(
        self, request: TokenRequest, methods: list[str], endpoint: str = "token"
    ) -> Any:
        if self._client_auth is None:
            raise RuntimeError("client authentication methods are not registered")
        return self._client_auth(request, methods, endpoint)

    def authenticate(self, request: TokenRequest) -> Client:
        """RFC 6749 §2.3: the one method the request uses (DESIGN §5.1), at any endpoint."""
        method = detect_auth_method(request)
        settings = self.settings
        try:
            client: Client = self.authenticate_client(request, [method])
            # Checked after the credential, so a throttled client costs the same work (and
            # time) as any other and the answer is the same bytes: nothing tells an attacker
            # that the id exists or that it is throttled.
            if client.throttled(
                request.now, settings.auth_failure_limit, settings.auth_failure_window
            ):
                raise errors.InvalidClient("throttled: too many failed authentications")
        except OAuth2Error as err:
            attempted = request.audit.get("client_id")
            if err.error == "invalid_client" and attempted:
                request.store.record_auth_failure(
                    attempted, request.now, settings.auth_failure_window
                )
            raise
        if client.failures:
            request.store.clear_auth_failures(client.client_id)
        request.client = client
        request.audit["client_id"] = client.client_id
        return client

    def register_client_auth_method(self, method: str, func: Any) -> None:
        def bound(_query_client: Any, request: TokenRequest) -> Any:
            return func(lambda cid: request.store.client(cid, request.now), request)

        super().register_client_auth_method(method, bound)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals: audit events are written explicitly, in the request's transaction."""

    @property
    def grant_types(self) -> list[str]:
        return [grant.GRANT_TYPE for grant, _ in self._token_grants]

    def token_response(self, request: TokenRequest) -> tuple[int, dict[str, Any], list[Any]]:
        """POST /token (RFC 6749 §3.2, §5; RFC 8693 §2)."""
        try:
            request.reject_repeated_parameters()
            if not request.param("grant_type"):
                raise errors.InvalidRequest("missing grant_type", "Missing grant_type.")
            try:
                grant = self.get_token_grant(request)
            except UnsupportedGrantTypeError:
                raise errors.UnsupportedGrantType("unsupported grant_type") from None
            request.audit["grant_type"] = grant.GRANT_TYPE
            grant.validate_token_request()
            status, body, headers = grant.create_token_response()
            return status, body, headers
        except OAuth2Error as raised:
            err = as_sts_error(raised)
            self.record_denial(request, err)
            return err.response()

    def record_denial(
        self, request: TokenRequest, err: errors.StsError, event: str = "token.denied"
    ) -> None:
        facts = request.audit
        request.store.audit(
            AuditRecord(
                at=request.now,
                event=event,
                decision="denied",
                reason=err.reason,
                request_id=request.request_id,
                client_id=facts.get("client_id"),
                credential_id=request.credential_id,
                subject=facts.get("subject"),
                target=facts.get("target"),
                scope=facts.get("scope"),
                parent_jti=facts.get("parent_jti"),
                txn=facts.get("txn"),
                rule_id=facts.get("rule_id"),
                chain=tuple(facts.get("chain", ())),
                detail={"error": err.error, "grant_type": facts.get("grant_type")},
            )
        )
        log.info(
            "token denied",
            extra={
                "event": event,
                "error": err.error,
                "reason": err.reason,
                "client_id": facts.get("client_id"),
                "request_id": request.request_id,
            },
        )
