"""RFC 9449: OAuth 2.0 Demonstrating Proof of Possession (DPoP) at the token endpoint.

A client that sends a ``DPoP`` header with its token request proves it holds a private key;
the token minted is bound to that key (``cnf.jkt``, the RFC 7638 thumbprint of the public key,
§6.1) and answered with ``token_type: DPoP`` (§5). :class:`DpopChecker` makes every check of
§4.3, and the nonce of §8 when configured; the replay check (§11.1) goes through the store's
:class:`~sts.core.ports.DpopReplayStore`, so every replica refuses a proof another accepted.
Nonces are stateless (time and an HMAC under a server key), so replicas agree on them too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from joserfc.jwk import thumbprint
from jwt.exceptions import InvalidTokenError, PyJWKError

from sts.core.domain import ASYMMETRIC_JWS_ALGORITHMS
from sts.core.errors import InvalidDpopProof, UseDpopNonce

if TYPE_CHECKING:
    from sts.core.ports import DpopReplayStore
    from sts.core.settings import Settings

__all__ = [
    "DPOP_ALGORITHMS",
    "DPOP_TYP",
    "DpopChecker",
    "DpopNonces",
    "DpopProof",
    "access_token_hash",
    "normalise_htu",
    "proof_header",
]

DPOP_TYP = "dpop+jwt"
#: §4.3 item 5: asymmetric algorithms only, never ``none`` or a MAC.
DPOP_ALGORITHMS = ASYMMETRIC_JWS_ALGORITHMS
#: §4.3 item 7: the ``jwk`` header is a public key: none of RFC 7518's private members.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class DpopProof:
    """An accepted proof: the key's RFC 7638 thumbprint (``cnf.jkt``), its ``jti`` and ``iat``."""

    jkt: str
    jti: str
    iat: int


def normalise_htu(url: str) -> str:
    """§4.3 item 9: the URI without query and fragment, normalised as RFC 3986 §6.2.2-6.2.3
    says (scheme and host in lower case, the scheme's default port dropped, empty path ``/``)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        return ""
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def access_token_hash(token: str) -> str:
    """§4.2 ``ath``: base64url (no padding) of the SHA-256 of the access token's ASCII."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def proof_header(headers: Mapping[str, str] | Any) -> str | None:
    """The one ``DPoP`` header (§4.3 item 1: not more than one), or ``None``. A gateway (and
    WSGI) joins repeated headers with commas, which no compact JWS contains."""
    getlist = getattr(headers, "getlist", None)
    if getlist is not None:
        values = list(getlist("DPoP"))
    else:
        values = [v for k, v in dict(headers).items() if k.lower() == "dpop"]
    if len(values) > 1 or any("," in v for v in values):
        raise InvalidDpopProof("several DPoP headers")
    return values[0] if values else None


class DpopNonces:
    """§8: server nonces, ``<time>.<HMAC>``; good for ``lifetime`` seconds on every replica,
    one whose clock runs up to ``skew`` seconds ahead included."""

    def __init__(self, key: bytes, lifetime: int, skew: int = 0) -> None:
        self._key = key
        self.lifetime = lifetime
        self.skew = skew

    def _mac(self, stamp: str) -> str:
        mac = hmac.new(self._key, stamp.encode("ascii"), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(mac).decode("ascii")

    def issue(self, now: int) -> str:
        stamp = str(now)
        return f"{stamp}.{self._mac(stamp)}"

    def valid(self, nonce: object, now: int) -> bool:
        if not isinstance(nonce, str) or nonce.count(".") != 1:
            return False
        stamp, mac = nonce.split(".")
        if not stamp.isdigit() or len(stamp) > 12:
            return False
        if not hmac.compare_digest(mac, self._mac(stamp)):
            return False
        return -self.skew <= now - int(stamp) <= self.lifetime


def _refuse(reason: str) -> InvalidDpopProof:
    return InvalidDpopProof(f"dpop: {reason}")


class DpopChecker:
    """§4.3: the checks of a proof at this server; ``check`` reads, verifies and remembers it."""

    def __init__(self, settings: Settings, nonces: DpopNonces | None) -> None:
        self.window = settings.dpop_proof_window
        self.leeway = settings.leeway
        self.max_bytes = settings.max_token_bytes
        #: ``None``: no nonce is asked for.
        self.nonces = nonces

    def verify(
        self, proof: str, *, method: str, url: str, now: int, access_token: str | None = None
    ) -> DpopProof:
        """Every check of §4.3 but the replay (which needs the store)."""
        if len(proof) > self.max_bytes:
            raise _refuse("proof too large")
        try:
            header = jwt.get_unverified_header(proof)
        except InvalidTokenError:
            raise _refuse("not a JWS") from None
        if header.get("typ") != DPOP_TYP:  # item 4
            raise _refuse("typ is not dpop+jwt")
        alg = header.get("alg")
        if alg not in DPOP_ALGORITHMS:  # item 5
            raise _refuse("alg not an allowed asymmetric algorithm")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise _refuse("jwk header missing")
        if PRIVATE_MEMBERS & jwk.keys():  # item 7
            raise _refuse("jwk holds private key members")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims = jwt.decode(  # item 6: the signature, with the embedded key
                proof,
                key.key,
                algorithms=[alg],
                options={
                    "require": ["jti", "htm", "htu", "iat"],
                    "verify_iat": False,
                    "verify_aud": False,
                },
            )
            jkt = thumbprint(jwk)
        except (InvalidTokenError, PyJWKError, ValueError, TypeError, KeyError):
            raise _refuse("signature or claims invalid") from None
        jti, iat = claims["jti"], claims["iat"]
        if not isinstance(jti, str) or not 0 < len(jti) <= 255:
            raise _refuse("jti invalid")
        if claims["htm"] != method:  # item 8
            raise _refuse("htm does not match")
        htu = claims["htu"]
        if not isinstance(htu, str) or normalise_htu(htu) != normalise_htu(url):  # item 9
            raise _refuse("htu does not match")
        if not isinstance(iat, int) or isinstance(iat, bool):
            raise _refuse("iat invalid")
        if not now - self.window - self.leeway <= iat <= now + self.leeway:  # item 11
            raise _refuse("iat outside the window")
        if access_token is not None and claims.get("ath") != access_token_hash(access_token):
            raise _refuse("ath does not match the access token")  # item 12
        if self.nonces is not None and not self.nonces.valid(claims.get("nonce"), now):
            raise UseDpopNonce("dpop: nonce missing or stale", self.nonces.issue(now))  # §8
        return DpopProof(jkt, jti, iat)

    def check(
        self,
        headers: Mapping[str, str] | Any,
        store: DpopReplayStore,
        *,
        method: str,
        url: str,
        now: int,
    ) -> DpopProof | None:
        """The request's proof, verified and its ``jti`` remembered (§11.1); ``None`` when
        the request carries none (an unbound request)."""
        proof = proof_header(headers)
        if proof is None:
            return None
        found = self.verify(proof, method=method, url=url, now=now)
        if not store.remember_dpop_proof(found.jkt, found.jti, self.expiry(found), now):
            raise _refuse("jti replayed")
        return found

    def expiry(self, proof: DpopProof) -> int:
        """Until when the proof's ``jti`` must be remembered: past it, its ``iat`` is too old."""
        return proof.iat + self.window + self.leeway + 1

    def fresh_nonce(self, now: int) -> str | None:
        return self.nonces.issue(now) if self.nonces is not None else None
