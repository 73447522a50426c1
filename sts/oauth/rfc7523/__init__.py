"""RFC 7523 §2.2 / §3: ``private_key_jwt`` client authentication, on PyJWT.

The assertion is parsed once (:mod:`sts.core.jws`); the client it names is looked up, its
registered keys (inline JWKS or ``jwks_uri``) tried for the header's ``kid`` and ``alg``, and
the key that verifies names the credential that signed. The claims are then held to §3:
``iss`` = ``sub`` = the client, ``aud`` this server, ``exp`` present and not passed, ``iat``
present, a ``jti`` refused if seen before (atomically, in the database), and a lifetime no
longer than ``client_assertion_max_lifetime`` so a remembered ``jti`` never outlives minutes.
Every failure becomes the same ``invalid_client`` answer; the precise reason goes to audit.

A workload may instead present its SPIFFE JWT-SVID as the assertion (DESIGN §12): its ``sub``
is a SPIFFE ID (and its ``iss``, if any, is not), it verifies with the JWT bundle of its trust
domain (a trusted issuer ``spiffe://<trust-domain>``), carries ``exp`` and exactly one
audience, this server, and authenticates the NHI whose ``sub`` is that SPIFFE ID. SVIDs carry
no ``jti`` as a rule; one that does is remembered like any assertion's, and an SVID's lifetime
is held to the same bound.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from jwt.exceptions import InvalidTokenError

from sts.core import jws, spiffe
from sts.core.domain import ASYMMETRIC_JWS_ALGORITHMS
from sts.core.errors import InvalidClient, InvalidRequest
from sts.core.jwks import JwksCache, JwksUnavailable
from sts.oauth.rfc6749.client_auth import Authenticated, Claimed, ClientDisabled

if TYPE_CHECKING:
    from sts.core.domain import Client, CredentialView
    from sts.core.jws import ParsedJWS
    from sts.core.ports import ClientStore
    from sts.oauth.rfc6749.request import OAuthRequest

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Largest NumericDate accepted (2^53: exact in every JSON implementation, and in BIGINT).
MAX_NUMERIC_DATE = 2**53
MAX_JTI_LENGTH = 255


def _refuse(reason: str) -> InvalidClient:
    return InvalidClient(f"client assertion: {reason}")


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """RFC 7519 §2: a NumericDate, possibly with a fraction; anything else is refused."""
    value = claims.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_NUMERIC_DATE
    ):
        raise _refuse(f"{name} is not a valid NumericDate")
    return float(value)


def _is_svid(claims: dict[str, Any]) -> bool:
    """A JWT-SVID, not a client's own assertion: its ``sub`` is a workload's SPIFFE ID, which
    it does not claim as its issuer (RFC 7523 assertions have ``iss`` = ``sub``)."""
    sub = claims.get("sub")
    return spiffe.trust_domain_of(sub) is not None and claims.get("iss") != sub


class PrivateKeyJwt:
    """RFC 7523 §2.2: the client proves itself with a JWT signed by one of its keys."""

    name = "private_key_jwt"

    def __init__(
        self,
        audiences: list[str],
        leeway: int,
        max_bytes: int,
        max_lifetime: int,
        jwks_cache: JwksCache,
    ) -> None:
        self.audiences = frozenset(audiences)
        self.leeway = leeway
        self.max_bytes = max_bytes
        self.max_lifetime = max_lifetime
        self.jwks_cache = jwks_cache

    def claim(self, request: OAuthRequest) -> Claimed:
        if request.param("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise InvalidRequest("unsupported client_assertion_type")
        assertion = request.param("client_assertion") or ""
        if not assertion:
            raise InvalidRequest("missing client_assertion")
        if len(assertion) > self.max_bytes:
            raise InvalidRequest("client_assertion too large", "Parameter too large.")
        try:
            parsed = jws.parse(assertion)
        except InvalidTokenError:
            return Claimed(None, None)
        sub = parsed.claims.get("sub")
        if _is_svid(parsed.claims):
            return Claimed(None, parsed)  # the NHI is found by its SPIFFE ID once verified
        return Claimed(sub if isinstance(sub, str) else None, parsed)

    def verify(self, request: OAuthRequest, claimed: Claimed, store: ClientStore) -> Authenticated:
        parsed: ParsedJWS | None = claimed.evidence
        if parsed is None:
            raise _refuse("not a JWT")
        alg = parsed.header.get("alg")
        if alg not in ASYMMETRIC_JWS_ALGORITHMS:
            raise _refuse(f"algorithm {str(alg)[:16]!r} not allowed")
        claims = parsed.claims
        if _is_svid(claims):
            return self._verify_svid(request, parsed, str(alg), store)
        if claimed.client_id is None or claims.get("iss") != claimed.client_id:
            raise _refuse("Issuer and Subject MUST match.")
        client = store.client(claimed.client_id, request.now, request.source)
        if client is None:
            raise InvalidClient("unknown client")
        credential_id = self._verify_signature(client, parsed, str(alg))
        self._check_claims(claims, request.now)
        jti = claims["jti"]
        # Kept until the assertion can no longer pass the exp check, leeway included.
        keep_until = math.ceil(claims["exp"]) + self.leeway
        if not store.remember_assertion(client.client_id, jti, keep_until, request.now):
            raise _refuse("JWT ID is used before.")
        body_client_id = request.param("client_id")
        if body_client_id is not None and body_client_id != client.client_id:
            raise InvalidRequest("client_id differs from the client assertion")
        if not client.active:
            raise ClientDisabled
        return Authenticated(client, credential_id)

    def _verify_svid(
        self, request: OAuthRequest, parsed: ParsedJWS, alg: str, store: ClientStore
    ) -> Authenticated:
        """A JWT-SVID as the client assertion (DESIGN §12)."""
        claims, now = parsed.claims, request.now
        domain = spiffe.trust_domain_of(claims.get("sub"))
        assert domain is not None
        config = store.trusted_issuer(domain)
        if config is None or config.status != "active":
            raise _refuse("SVID from a trust domain that is not trusted")
        if alg not in config.algorithms:
            raise _refuse("SVID algorithm not allowed for this trust domain")
        bundle = config.jwks
        if bundle is None:
            assert config.jwks_uri is not None
            try:
                bundle = self.jwks_cache.get(config.jwks_uri)
            except JwksUnavailable as exc:
                raise InvalidClient(f"trust domain bundle unavailable: {exc}") from None
        kid = parsed.header.get("kid")
        key = spiffe.svid_key(bundle, kid if isinstance(kid, str) else None)
        if key is None:
            raise _refuse("SVID kid not in the trust domain bundle")
        try:
            parsed.verify(jws.public_key(key, alg), alg)
        except InvalidTokenError:
            raise _refuse("SVID signature verification failed") from None
        refusal = spiffe.check_svid(claims, self.audiences)
        if refusal is not None:
            raise _refuse(refusal)
        exp, nbf = _numeric_date(claims, "exp"), _numeric_date(claims, "nbf")
        assert exp is not None
        if now >= exp + self.leeway:
            raise _refuse("The SVID is expired.")
        if nbf is not None and nbf > now + self.leeway:
            raise _refuse("The SVID is not valid yet.")
        if exp > now + self.max_lifetime + self.leeway:
            raise _refuse(f"SVID lifetime longer than {self.max_lifetime} s")
        nhi = store.nhi_by_sub(str(claims["sub"]))
        if nhi is None:
            raise InvalidClient("no NHI has this SPIFFE ID")
        client = store.client(nhi.client_id, now, request.source)
        if client is None:
            raise InvalidClient("unknown client")
        jti = claims.get("jti")
        if jti is not None:
            if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
                raise _refuse("SVID jti invalid")
            keep_until = math.ceil(exp) + self.leeway
            if not store.remember_assertion(client.client_id, jti, keep_until, now):
                raise _refuse("JWT ID is used before.")
        body_client_id = request.param("client_id")
        if body_client_id is not None and body_client_id != client.client_id:
            raise InvalidRequest("client_id differs from the client assertion")
        if not client.active:
            raise ClientDisabled
        return Authenticated(client, None)

    def _keys(self, credential: CredentialView) -> list[dict[str, Any]]:
        if credential.jwks is not None:
            keys = credential.jwks.get("keys", [])
        else:
            assert credential.jwks_uri is not None
            try:
                keys = self.jwks_cache.get(credential.jwks_uri).get("keys", [])
            except JwksUnavailable as exc:
                raise InvalidClient(f"client jwks_uri unavailable: {exc}") from None
        return [k for k in keys if isinstance(k, dict)]

    def _verify_signature(self, client: Client, parsed: ParsedJWS, alg: str) -> str:
        """The id of the key credential whose key verifies the signature, so lineage records
        it and revoking that credential reaches the tokens obtained with it. A ``kid`` names
        the key; without one, each of the client's keys is tried."""
        kid = parsed.header.get("kid")
        for credential in client.key_credentials():
            for jwk in self._keys(credential):
                if kid is not None and jwk.get("kid") != kid:
                    continue
                try:
                    parsed.verify(jws.public_key(jwk, alg), alg)
                except InvalidTokenError:
                    continue
                return credential.id
        raise _refuse("signature verification failed")

    def _check_claims(self, claims: dict[str, Any], now: int) -> None:
        """RFC 7523 §3 items 3-7, judged by the STS clock."""
        exp, iat = _numeric_date(claims, "exp"), _numeric_date(claims, "iat")
        nbf = _numeric_date(claims, "nbf")
        if exp is None:
            raise _refuse("Missing exp.")
        if iat is None:
            raise _refuse("Missing iat.")
        aud = claims.get("aud")
        auds = aud if isinstance(aud, list) else [aud]
        if not self.audiences & {a for a in auds if isinstance(a, str)}:
            raise _refuse("audience is not this server")
        if now >= exp + self.leeway:
            raise _refuse("The token is expired.")
        if nbf is not None and nbf > now + self.leeway:
            raise _refuse("The token is not valid yet.")
        if iat > now + self.leeway:
            raise _refuse("iat is in the future.")
        if exp - iat > self.max_lifetime or exp > now + self.max_lifetime + self.leeway:
            raise _refuse(f"lifetime longer than {self.max_lifetime} s")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            raise _refuse("Missing JWT ID.")
