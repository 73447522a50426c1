"""Validating subject and actor tokens (DESIGN §5.2, RFC 8725, RFC 9068 §4).

A token is judged by the issuer it claims: ``iss`` equal to this STS means it must verify with
one of our still-published keys, be an ``at+jwt``, and have a live lineage row; a token that
claims to be ours but fails any of that is refused, never retried as external. Any other
``iss`` must be a registered, active trusted issuer whose keys and algorithm allow-list apply.
Each token is parsed once (:mod:`sts.core.jws`) and its signature checked by PyJWT's algorithm for
the one ``alg`` the key allows; the time claims are judged against the injected clock with the
configured leeway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from jwt.exceptions import InvalidTokenError

from sts.core import jws
from sts.core.chain import Actor, Chain, ChainError
from sts.core.domain import MAX_LINEAGE
from sts.core.errors import InvalidRequest
from sts.core.jwks import JwksCache, JwksUnavailable
from sts.core.lineage import void_reason
from sts.core.scopes import scope_set
from sts.oauth.rfc9068 import ACCESS_TOKEN_TYP

if TYPE_CHECKING:
    from sts.core.jws import ParsedJWS
    from sts.core.keys import KeyStore
    from sts.core.ports import Hop, IssuerConfig, Store
    from sts.core.settings import Settings

AT_JWT_TYPES = {ACCESS_TOKEN_TYP, "application/at+jwt"}
#: The audit trail's words for a void hop (a hop of the token's own lineage or an ancestor's).
_VOID_REASONS = {
    "revoked": "token or an ancestor is revoked",
    "actor disabled": "an identity in the chain is disabled",
    "actor missing": "an identity in the chain is disabled",
    "rule no longer in force": "a rule that minted the chain is no longer in force",
}


@dataclass(frozen=True)
class ValidatedToken:
    """A subject or actor token that passed every check."""

    claims: dict[str, Any]
    issuer: str
    own: bool
    sub: str
    aud: tuple[str, ...]
    exp: int
    jti: str | None
    scopes: frozenset[str] | None
    chain: Chain
    may_act: Actor | None
    #: For our own tokens: the lineage row and its ancestors, the token itself first.
    hops: tuple[Hop, ...] = ()
    issuer_config: IssuerConfig | None = None
    #: The JWS header's ``typ``, lowercased (``at+jwt`` for every token of this STS).
    typ: str = ""

    @property
    def txn(self) -> str | None:
        return self.hops[0].txn if self.hops else None

    @property
    def subject_issuer(self) -> str:
        """Issuer of the chain's original subject (a person's IdP, or this STS)."""
        return self.hops[0].subject_issuer if self.hops else self.issuer


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _identifier(value: Any) -> TypeGuard[str]:
    """An identity claim (``iss``, ``sub``, ``jti``) we will look up, record and compare: a
    non-empty string of at most 2048 characters without control characters (which no stored
    identity holds, and PostgreSQL text cannot even store NUL)."""
    return isinstance(value, str) and 0 < len(value) <= 2048 and not _CONTROL.search(value)


class TokenValidator:
    def __init__(self, settings: Settings, keys: KeyStore, jwks_cache: JwksCache) -> None:
        self.settings = settings
        self.keys = keys
        self.jwks_cache = jwks_cache

    def validate(
        self, token: str, role: str, store: Store, now: int, parsed: ParsedJWS | None = None
    ) -> ValidatedToken:
        """``role`` is ``subject`` or ``actor``; it only names the token in errors.
        ``parsed`` is the same token already parsed (unverified) by the caller."""

        def fail(reason: str) -> InvalidRequest:
            return InvalidRequest(f"{role} token: {reason}", f"The {role} token is invalid.")

        if len(token) > self.settings.max_token_bytes:
            raise InvalidRequest(f"{role} token too large", "Parameter too large.")
        try:
            # Parsed once: the header names the key, the payload the issuer.
            parsed = parsed if parsed is not None and parsed.token == token else jws.parse(token)
        except InvalidTokenError:
            raise fail("not a JWT") from None
        header, unverified = parsed.header, parsed.claims
        alg, kid, iss = header.get("alg"), header.get("kid"), unverified.get("iss")
        if not isinstance(alg, str) or alg.lower() == "none" or alg.startswith("HS"):
            raise fail(f"algorithm {str(alg)[:16]!r} not allowed")
        if kid is not None and not isinstance(kid, str):
            raise fail("kid is not a string")
        if not _identifier(iss):
            raise fail("no valid iss")
        if iss == self.settings.issuer:
            claims = self._verify_own(parsed, alg, kid, now, fail)
            config = None
        else:
            config = store.trusted_issuer(iss)
            if config is None:
                raise fail("issuer not trusted")
            if config.status != "active":
                raise fail("issuer revoked")
            claims = self._verify_external(parsed, alg, kid, config, fail)
        self._check_times(claims, now, fail)
        typ = str(header.get("typ", "")).lower()
        return self._build(claims, iss, config, store, now, fail, typ)

    # -- signatures ------------------------------------------------------------------------
    def _verify_own(
        self, parsed: ParsedJWS, alg: str, kid: str | None, now: int, fail: Any
    ) -> dict[str, Any]:
        if str(parsed.header.get("typ", "")).lower() not in AT_JWT_TYPES:
            raise fail("typ is not at+jwt")
        key = self.keys.ring.verification_key(kid, now) if kid else None
        if key is None:
            raise fail("kid does not resolve to a published key")
        if alg != key.alg:
            raise fail("algorithm does not match the key")
        try:
            return parsed.verify(key.public_key, key.alg)
        except InvalidTokenError:
            raise fail("signature verification failed") from None

    def _issuer_key(self, config: IssuerConfig, kid: str | None, fail: Any) -> dict[str, Any]:
        """The issuer's public JWK named by ``kid`` (or its only key when no ``kid``)."""

        def find(jwks: dict[str, Any]) -> dict[str, Any] | None:
            keys = [k for k in jwks.get("keys", []) if isinstance(k, dict)]
            if kid is None:
                return keys[0] if len(keys) == 1 else None
            return next((k for k in keys if k.get("kid") == kid), None)

        if config.jwks is not None:
            key = find(config.jwks)
        else:
            assert config.jwks_uri is not None
            try:
                key = find(self.jwks_cache.get(config.jwks_uri))
                if key is None:  # maybe rotated: refetch, at most once per interval
                    key = find(self.jwks_cache.get(config.jwks_uri, refresh=True))
            except JwksUnavailable as exc:
                raise fail(f"issuer JWKS unavailable: {exc}") from None
        if key is None:
            raise fail("kid does not resolve to an issuer key")
        return key

    def _verify_external(
        self, parsed: ParsedJWS, alg: str, kid: str | None, config: IssuerConfig, fail: Any
    ) -> dict[str, Any]:
        if alg not in config.algorithms:
            raise fail("algorithm not allowed for this issuer")
        key = self._issuer_key(config, kid, fail)
        try:
            claims = parsed.verify(jws.public_key(key, alg), alg)
        except InvalidTokenError:
            raise fail("signature verification failed") from None
        if config.audiences:
            aud = claims.get("aud")
            auds = aud if isinstance(aud, list) else [aud]
            if not set(config.audiences) & {a for a in auds if isinstance(a, str)}:
                raise fail("audience not accepted for this issuer")
        if "act" in claims:
            raise fail("external token carries act")
        return claims

    # -- claims ----------------------------------------------------------------------------
    def _check_times(self, claims: dict[str, Any], now: int, fail: Any) -> None:
        """RFC 7519 §4.1.4-6 with leeway: exp required; nbf and iat not in the future."""
        leeway = self.settings.leeway
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise fail(f"{name} is not an integer")
        if exp is None:
            raise fail("no exp")
        if now >= exp + leeway:
            raise fail("expired")
        if nbf is not None and nbf > now + leeway:
            raise fail("not yet valid (nbf)")
        if iat is not None and iat > now + leeway:
            raise fail("issued in the future (iat)")

    def _build(
        self,
        claims: dict[str, Any],
        iss: str,
        config: IssuerConfig | None,
        store: Store,
        now: int,
        fail: Any,
        typ: str,
    ) -> ValidatedToken:
        sub = claims.get("sub")
        if not _identifier(sub):
            raise fail("no valid sub")
        aud = claims.get("aud")
        auds = tuple(a for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str))
        scope = claims.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise fail("scope is not a string")
        jti = claims.get("jti")
        if jti is not None and not _identifier(jti):
            raise fail("jti is not a valid identifier")
        try:
            chain = Chain.from_act(claims.get("act"))
            may_act = Actor.parse(claims["may_act"]) if "may_act" in claims else None
        except ChainError as exc:
            raise fail(str(exc)) from None
        hops: tuple[Hop, ...] = ()
        if config is None:
            if not jti:
                raise fail("no jti")
            hops = tuple(store.lineage(jti, now))
            self._check_lineage(hops, sub, chain, claims, fail)
        return ValidatedToken(
            claims,
            iss,
            config is None,
            sub,
            auds,
            int(claims["exp"]),
            jti,
            scope_set(scope) if scope is not None else None,
            chain,
            may_act,
            hops,
            config,
            typ,
        )

    @staticmethod
    def _check_lineage(
        hops: tuple[Hop, ...], sub: str, chain: Chain, claims: dict[str, Any], fail: Any
    ) -> None:
        """Our token must match its lineage row; every ancestor must still be in force."""
        if not hops:
            raise fail("no lineage for this token")
        if len(hops) >= MAX_LINEAGE:
            raise fail("lineage too long to extend")
        own = hops[0]
        if own.subject != sub or own.chain != chain.subs() or own.txn != claims.get("txn"):
            raise fail("token does not match its lineage")
        for hop in hops:
            void = void_reason(
                revoked=hop.revoked, actor_status=hop.actor_status, rule_in_force=hop.rule_in_force
            )
            if void is not None:
                raise fail(_VOID_REASONS[void])
        if hops[-1].parent_jti is not None:
            raise fail("lineage incomplete")
