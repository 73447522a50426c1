"""Verifying an incoming token at a resource server, and reading its caller chain.

:class:`TokenVerifier` accepts a token only if all of these hold (RFC 9068 §4, RFC 8725):

* it is a JWT signed with an allowed asymmetric algorithm by a key of the issuer's JWKS,
  named by ``kid`` (an unknown ``kid`` refreshes the JWKS once, see :mod:`chain_sts_client.jwks`);
* its header ``typ`` is ``at+jwt`` (for tokens from the STS);
* ``iss`` is the issuer, ``aud`` names this service, ``exp``/``nbf``/``iat`` are sane within
  the leeway;
* its ``jti`` is not in the STS's revocation feed (when the verifier follows one);
* a token bound to a key (``cnf.jkt``, RFC 9449) comes with the ``DPoP`` scheme and a valid
  proof of that key for this request (:class:`~chain_sts_client.dpop.ProofChecker`); an
  unbound one as a bearer token;
* it carries every scope the endpoint requires (else ``insufficient_scope``, 403).

The result is a :class:`Caller`: the original subject and the issuer it came from, the actors
in the order they acted, the transaction id shared by every hop of one request, the scopes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import jwt

from chain_sts_client.algorithms import ASYMMETRIC_JWS_ALGORITHMS
from chain_sts_client.dpop import Presentation, ProofChecker
from chain_sts_client.errors import InsufficientScope, InvalidToken
from chain_sts_client.jwks import JwksCache, KeySource
from chain_sts_client.revocation_feed import RevocationFeed
from chain_sts_client.scopes import scope_set, scope_str

if TYPE_CHECKING:
    from chain_sts_client.exchange import ExchangeClient
    from chain_sts_client.reports import AccessReporter

#: Asymmetric JWS algorithms only: never ``none``, never HMAC (RFC 8725 §3.1).
DEFAULT_ALGORITHMS = ASYMMETRIC_JWS_ALGORITHMS
ACCESS_TOKEN_TYP = ("at+jwt", "application/at+jwt")
MAX_TOKEN_BYTES = 16384
MAX_ACT_DEPTH = 32
DEFAULT_LEEWAY = 30
#: A token presented as ``Authorization: Bearer`` (RFC 6750), with no DPoP proof.
BEARER = Presentation("bearer", None, "", "")


@dataclass(frozen=True)
class Caller:
    """Who is calling, on whose behalf, within which transaction.

    ``actors`` lists the services, agents and tools that handled the request, **in the order
    they acted**: ``actors[0]`` was the first hop, ``actors[-1]`` is the immediate caller.
    (The ``act`` claim nests the other way round: outermost is the current actor.)
    """

    issuer: str
    sub: str
    audience: tuple[str, ...]
    scopes: frozenset[str]
    exp: int
    actors: tuple[str, ...] = ()
    txn: str | None = None
    jti: str | None = None
    client_id: str | None = None
    act: Mapping[str, Any] | None = None
    #: RFC 9493 ``sub_id`` as the token carries it: for a subject from a trusted issuer (a
    #: person's identity provider), ``{"format": "iss_sub", "iss": ..., "sub": ...}``.
    sub_id: Mapping[str, Any] | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: Where :meth:`report` queues reports (set by the Flask integration for the STS's
    #: tokens).
    reporter: AccessReporter | None = field(default=None, repr=False, compare=False)

    def report(
        self,
        *,
        resource: str,
        action: str,
        data_classes: Iterable[str] = (),
        records: int | None = None,
        bytes: int | None = None,
        destination: str | None = None,
        outcome: str | None = None,
    ) -> bool:
        """Report what this service did under the caller's token (DESIGN §10): queued and
        sent in the background, never slowing the request. ``False`` if the report queue
        was full and it was dropped."""
        if self.reporter is None or self.jti is None:
            raise RuntimeError("only a token of the STS, verified by ChainSts, can be reported on")
        return self.reporter.report(
            jti=self.jti,
            resource=resource,
            action=action,
            data_classes=data_classes,
            records=records,
            bytes=bytes,
            destination=destination,
            outcome=outcome,
        )

    @property
    def scope(self) -> str:
        return scope_str(self.scopes)

    @property
    def subject_issuer(self) -> str:
        """Who vouched for ``sub``: the trusted issuer named by an ``iss_sub`` ``sub_id``, else
        the token's issuer (for the STS: the subject is one of its NHIs). The same ``sub`` from
        two issuers is two subjects: compare ``(subject_issuer, sub)``, never ``sub`` alone."""
        if self.sub_id is not None and self.sub_id.get("format") == "iss_sub":
            return str(self.sub_id["iss"])
        return self.issuer

    @property
    def immediate_caller(self) -> str:
        """The hop that sent this request: the last actor, or the subject itself."""
        return self.actors[-1] if self.actors else self.sub

    def summary(self) -> dict[str, Any]:
        """The decoded claims worth showing or logging (never the token itself)."""
        return {
            "sub": self.sub,
            "aud": self.audience[0] if len(self.audience) == 1 else list(self.audience),
            "scope": self.scope,
            "act": self.act,
            "actors": list(self.actors),
            "exp": self.exp,
            "txn": self.txn,
            "client_id": self.client_id,
            "subject_issuer": self.subject_issuer,
        }


def parse_sub_id(sub_id: Any, sub: str) -> Mapping[str, Any] | None:
    """RFC 9493 §3: a subject identifier is an object naming its ``format``. An ``iss_sub``
    one (§3.2.1) must carry string ``iss`` and ``sub``, its ``sub`` the token's own."""
    if sub_id is None:
        return None
    if not isinstance(sub_id, Mapping) or not isinstance(sub_id.get("format"), str):
        raise InvalidToken("malformed sub_id claim")
    if sub_id["format"] == "iss_sub" and not (
        isinstance(sub_id.get("iss"), str) and sub_id.get("sub") == sub
    ):
        raise InvalidToken("malformed sub_id claim")
    return sub_id


def parse_act(act: Any) -> tuple[str, ...]:
    """RFC 8693 §4.1: nested ``act`` claims, outermost first; returned in acting order."""
    outermost_first: list[str] = []
    level = act
    while level is not None:
        if not isinstance(level, Mapping) or not isinstance(level.get("sub"), str):
            raise InvalidToken("malformed act claim")
        if len(outermost_first) >= MAX_ACT_DEPTH:
            raise InvalidToken("act claim nested too deeply")
        outermost_first.append(level["sub"])
        level = level.get("act")
    return tuple(reversed(outermost_first))


_DECODE_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "token not addressed to this service"),
    (jwt.InvalidIssuerError, "token from another issuer"),
    (jwt.MissingRequiredClaimError, "token lacks a required claim"),
    (jwt.InvalidSignatureError, "bad signature"),
)


class RevocationSource(Protocol):
    """What a verifier asks about revocations: the cursor feed
    (:class:`~chain_sts_client.revocation_feed.RevocationFeed`) or an SSF stream
    (:class:`~chain_sts_client.ssf.SsfReceiver`)."""

    def is_revoked(self, jti: str) -> bool: ...

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...


class TokenVerifier:
    """Verify tokens of one issuer addressed to one audience (this service).

    ``keys``: a :class:`~chain_sts_client.jwks.JwksCache` (or a static key set). ``feed``: the
    STS's revocation feed or an SSF stream of it, or ``None`` for an issuer that has none.
    ``token_type``: the required header ``typ`` (``None`` accepts any, for an identity
    provider's ID-style JWTs).
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        keys: KeySource,
        *,
        feed: RevocationSource | None = None,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: int = DEFAULT_LEEWAY,
        token_type: str | None = "at+jwt",  # noqa: S107
        required_claims: Iterable[str] = ("iss", "aud", "exp", "iat", "sub"),
        proofs: ProofChecker | None = None,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.feed = feed
        self.algorithms = tuple(a for a in algorithms if a in DEFAULT_ALGORITHMS)
        self.leeway = leeway
        self.token_type = token_type
        self.required_claims = list(required_claims)
        self.proofs = proofs or ProofChecker()
        if feed is not None and "jti" not in self.required_claims:
            self.required_claims.append("jti")

    @classmethod
    def for_sts(
        cls,
        client: ExchangeClient,
        audience: str | None = None,
        *,
        follow_feed: bool = True,
        poll_interval: float = 5.0,
        max_staleness: float = 60.0,
        leeway: int = DEFAULT_LEEWAY,
        ssf: str | None = None,
        ssf_push_url: str | None = None,
    ) -> TokenVerifier:
        """A verifier for tokens the STS of ``client`` issued to ``audience`` (default: the
        client itself), with its JWKS and, if ``follow_feed``, its revocation feed read as
        ``client``. Call :meth:`start` to poll the feed in the background.

        With ``ssf`` (``"poll"``, or ``"push"`` to ``ssf_push_url``) revocations come from an
        SSF stream registered for ``client`` (which needs the scope ``ssf:manage``) instead of
        the cursor feed."""
        metadata = client.metadata
        keys = JwksCache(metadata.jwks_uri, client.transport)
        feed: RevocationSource | None = None
        if follow_feed and ssf is not None:
            from chain_sts_client.ssf import POLL, PUSH, SsfReceiver

            feed = SsfReceiver.for_client(
                client,
                method={"poll": POLL, "push": PUSH}[ssf],
                push_url=ssf_push_url,
                audience=audience,
                poll_interval=poll_interval,
                max_staleness=max_staleness,
            )
        elif follow_feed:
            feed = RevocationFeed.for_client(
                client, poll_interval=poll_interval, max_staleness=max_staleness
            )
        return cls(metadata.issuer, audience or client.client_id, keys, feed=feed, leeway=leeway)

    def start(self) -> None:
        if self.feed is not None:
            self.feed.start()

    def stop(self) -> None:
        if self.feed is not None:
            self.feed.stop()

    def verify(
        self,
        token: str,
        scope: str | Iterable[str] | None = None,
        presentation: Presentation | None = None,
    ) -> Caller:
        """The caller, if ``token`` is acceptable here and carries ``scope``; otherwise
        :class:`~chain_sts_client.errors.InvalidToken`,
        :class:`~chain_sts_client.errors.InvalidDpopProof` or
        :class:`~chain_sts_client.errors.InsufficientScope` (or ``VerificationUnavailable`` when
        keys or the feed cannot be read). ``presentation`` is how the request carried the
        token (without one: as a bearer token, so a DPoP-bound token is refused)."""
        claims = self._verified_claims(token)
        caller = self._caller(claims)
        if self.feed is not None and self.feed.is_revoked(str(caller.jti)):
            raise InvalidToken("token revoked")
        self.proofs.check(token, claims, presentation or BEARER)
        missing = scope_set(scope) - caller.scopes
        if missing:
            raise InsufficientScope(frozenset(missing))
        return caller

    def _verified_claims(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed token") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken("algorithm not allowed")
        typ = header.get("typ")
        if self.token_type is not None and (
            not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYP
        ):
            raise InvalidToken("not an access token (typ)")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token without key id")
        key = self.keys.key(kid, alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": self.required_claims},
            )
        except jwt.InvalidTokenError as exc:
            reason = next((r for cls, r in _DECODE_ERRORS if isinstance(exc, cls)), None)
            raise InvalidToken(reason or "malformed token") from None
        return claims

    def _caller(self, claims: dict[str, Any]) -> Caller:
        aud = claims["aud"]
        audience = (aud,) if isinstance(aud, str) else tuple(str(a) for a in aud)
        scope = claims.get("scope")
        jti, txn, client_id = claims.get("jti"), claims.get("txn"), claims.get("client_id")
        act, sub = claims.get("act"), str(claims["sub"])
        return Caller(
            issuer=claims["iss"],
            sub=sub,
            audience=audience,
            scopes=scope_set(scope if isinstance(scope, str) else None),
            exp=int(claims["exp"]),
            actors=parse_act(act),
            txn=txn if isinstance(txn, str) else None,
            jti=jti if isinstance(jti, str) else None,
            client_id=client_id if isinstance(client_id, str) else None,
            act=act if isinstance(act, Mapping) else None,
            sub_id=parse_sub_id(claims.get("sub_id"), sub),
            claims=claims,
        )
