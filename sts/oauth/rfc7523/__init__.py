"""RFC 7523 §2.2 / §3: ``private_key_jwt`` client authentication.

Authlib's :class:`JWTBearerClientAssertion` checks the assertion (signature, ``iss`` = ``sub``
= client_id, ``aud`` = this server, ``exp``); Chain STS adds the key lookup from the
registry, a size cap, and ``jti`` replay refusal that is atomic in the database (§3 item 7).
Every failure becomes the same ``invalid_client`` answer.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jwt
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from sts.core.domain import ASYMMETRIC_JWS_ALGORITHMS
from sts.core.errors import InvalidClient, InvalidRequest
from sts.core.jwks import JwksCache, JwksUnavailable
from sts.oauth.rfc6749.client_auth import Authenticated, claimed_client_id

if TYPE_CHECKING:
    from sts.core.domain import Client
    from sts.core.ports import ClientStore
    from sts.oauth.rfc6749.request import OAuthRequest

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@lru_cache(maxsize=4096)
def _key_set(jwks_json: str) -> KeySet:
    """Parsed key sets, cached by content: a JWKS is parsed once, not per request."""
    return KeySet.import_key_set(json.loads(jwks_json))


class _Assertion(JWTBearerClientAssertion):  # type: ignore[misc]
    """One per request, so that ``validate_jti`` reaches this request's store and clock."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(
        self,
        audiences: list[str],
        leeway: int,
        jwks_cache: JwksCache,
        store: ClientStore,
        now: int,
    ) -> None:
        super().__init__(validate_jti=True, leeway=leeway)
        self._audiences = audiences
        self._jwks_cache = jwks_cache
        self._store = store
        self._now = now
        self._exp = 0

    def get_audiences(self) -> list[str]:
        return self._audiences

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        """Verify the signature with the algorithms the metadata advertises, never HMAC or
        ``none`` (RFC 8725 §3.1); Authlib's default would allow HS256 and no EdDSA or PS256."""
        try:
            token = jose_jwt.decode(
                assertion, resolve_key, algorithms=list(ASYMMETRIC_JWS_ALGORITHMS)
            )
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from None
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        """RFC 7523 §3 items 2-4 and 7, judged by the STS clock rather than the wall clock."""
        exp = claims.get("exp")
        # A NumericDate may carry a fraction (RFC 7519 §2): keep the jti past the latest second.
        self._exp = math.ceil(exp) if isinstance(exp, int | float) and math.isfinite(exp) else 0
        registry = jose_jwt.JWTClaimsRegistry(
            now=self._now,
            leeway=self.leeway,
            iss={"essential": True},
            sub={"essential": True},
            aud={"essential": True, "values": self._audiences},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from None
        if claims["sub"] != claims["iss"]:
            raise InvalidClientError(description="Issuer and Subject MUST match.")
        if "jti" not in claims:
            raise InvalidClientError(description="Missing JWT ID.")
        if not self.validate_jti(claims, claims["jti"]):
            raise InvalidClientError(description="JWT ID is used before.")

    def validate_jti(self, claims: Any, jti: Any) -> bool:
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            return False
        # Kept until the assertion can no longer pass the exp check, leeway included.
        keep_until = self._exp + self.leeway
        return self._store.remember_assertion(claims["sub"], jti, keep_until, self._now)

    def resolve_client_public_key(self, client: Client) -> KeySet:
        keys: list[dict[str, Any]] = []
        for cred in client.key_credentials():
            if cred.jwks is not None:
                keys.extend(cred.jwks.get("keys", []))
            elif cred.jwks_uri is not None:
                try:
                    keys.extend(self._jwks_cache.get(cred.jwks_uri).get("keys", []))
                except JwksUnavailable as exc:
                    raise InvalidClient(f"client jwks_uri unavailable: {exc}") from None
        try:
            return _key_set(json.dumps({"keys": keys}, sort_keys=True))
        except (JoseError, ValueError, TypeError, KeyError):
            raise InvalidClient("client JWKS unusable") from None


class PrivateKeyJwt:
    """RFC 7523 §2.2: the client proves itself with a JWT signed by one of its keys."""

    name = "private_key_jwt"

    def __init__(
        self, audiences: list[str], leeway: int, max_bytes: int, jwks_cache: JwksCache
    ) -> None:
        self.audiences = audiences
        self.leeway = leeway
        self.max_bytes = max_bytes
        self.jwks_cache = jwks_cache

    def claim(self, request: OAuthRequest) -> str | None:
        if request.param("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise InvalidRequest("unsupported client_assertion_type")
        assertion = request.param("client_assertion") or ""
        if not assertion:
            raise InvalidRequest("missing client_assertion")
        if len(assertion) > self.max_bytes:
            raise InvalidRequest("client_assertion too large", "Parameter too large.")
        return claimed_client_id(request, self.max_bytes)

    def verify(
        self, request: OAuthRequest, client_id: str | None, store: ClientStore
    ) -> Authenticated:
        assertion = request.param("client_assertion") or ""
        verifier = _Assertion(self.audiences, self.leeway, self.jwks_cache, store, request.now)
        try:
            client: Client | None = verifier(lambda cid: store.client(cid, request.now), request)
        except InvalidClient:
            raise
        except InvalidClientError as exc:
            raise InvalidClient(f"client assertion: {exc.description}") from None
        if client is None:
            raise InvalidClient("client assertion not verified")
        body_client_id = request.param("client_id")
        if body_client_id is not None and body_client_id != client.client_id:
            raise InvalidRequest("client_id differs from the client assertion")
        if not client.active:
            raise InvalidClient("client disabled")
        return Authenticated(client, _credential_for(client, assertion, self.jwks_cache))


def _credential_for(client: Client, assertion: str, jwks_cache: JwksCache) -> str:
    """The key credential holding the key that signed (the signature is already verified),
    so lineage records it and revoking that credential reaches the tokens obtained with it.
    With several key credentials the assertion must name its key by ``kid``."""
    creds = client.key_credentials()
    if len(creds) == 1:
        return creds[0].id
    kid = jwt.get_unverified_header(assertion).get("kid")
    for cred in creds:
        if cred.jwks is not None:
            keys = cred.jwks.get("keys", [])
        else:
            assert cred.jwks_uri is not None
            try:  # fetched (and cached) a moment ago to verify the signature
                keys = jwks_cache.get(cred.jwks_uri).get("keys", [])
            except JwksUnavailable:
                keys = []
        if kid is not None and any(k.get("kid") == kid for k in keys):
            return cred.id
    raise InvalidClient("cannot tell which credential signed the assertion (no matching kid)")
