"""DPoP (RFC 9449): proofs a service sends, and the checks a resource server makes.

A token bound to a key (``cnf.jkt``) is worth nothing without that key: whoever steals it from
one hop's memory or logs cannot present it. The SDK makes every hop bound by default:

* :class:`DpopKey` holds a key pair and creates proofs (§4.2); :func:`process_key` is the
  per-process key the :class:`~chain_sts_client.exchange.ExchangeClient` uses unless told
  otherwise, so a service's tokens are bound without code changes;
* :class:`ProofChecker` verifies a proof presented with a bound token at a resource server
  (§4.3, §7.1): ``typ``, an asymmetric ``alg``, a public ``jwk``, the signature, ``htm``,
  ``htu``, ``iat`` within a window, ``ath``, the key's thumbprint against ``cnf.jkt``, and
  ``jti`` replay (an in-process :class:`ReplayCache`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import thumbprint
from jwt.algorithms import ECAlgorithm

from chain_sts_client.algorithms import ASYMMETRIC_JWS_ALGORITHMS
from chain_sts_client.errors import InvalidDpopProof

__all__ = [
    "DPOP_TYP",
    "DpopKey",
    "Presentation",
    "ProofChecker",
    "ReplayCache",
    "access_token_hash",
    "normalise_htu",
    "process_key",
]

DPOP_TYP = "dpop+jwt"
#: RFC 7518's private key members: a proof's ``jwk`` must hold none of them (§4.3 item 7).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
DEFAULT_WINDOW = 60
MAX_PROOF_BYTES = 8192
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_htu(url: str) -> str:
    """§4.3 item 9: the URI without query and fragment, scheme and host in lower case, the
    default port dropped, an empty path ``/`` (RFC 3986 §6.2.2-6.2.3)."""
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
    """§4.2 ``ath``: base64url (unpadded) SHA-256 of the access token."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class DpopKey:
    """An ES256 key pair that proves possession (§4.2). ``repr`` shows its thumbprint only."""

    alg = "ES256"

    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._private = private_key or ec.generate_private_key(ec.SECP256R1())
        self.clock = clock
        self.jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(self._private.public_key()))
        #: RFC 7638 thumbprint of the public key: the ``cnf.jkt`` of tokens bound to it.
        self.jkt: str = thumbprint(self.jwk)
        #: The last nonce each server asked for (§8), by its origin.
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """A fresh proof for one request: ``htm``, ``htu`` (no query or fragment), ``iat``,
        a new ``jti``, ``ath`` with a bound access token, and the server's nonce if known."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method.upper(),
            "htu": normalise_htu(url),
            "iat": int(self.clock()),
        }
        nonce = nonce if nonce is not None else self.nonce_for(url)
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        headers = {"typ": DPOP_TYP, "jwk": self.jwk}
        return jwt.encode(claims, self._private, algorithm=self.alg, headers=headers)

    def remember_nonce(self, url: str, nonce: str) -> None:
        with self._lock:
            self._nonces[_origin(url)] = nonce

    def nonce_for(self, url: str) -> str | None:
        with self._lock:
            return self._nonces.get(_origin(url))

    def __repr__(self) -> str:
        return f"DpopKey(jkt={self.jkt!r})"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


_PROCESS_KEY: DpopKey | None = None
_PROCESS_LOCK = threading.Lock()


def process_key() -> DpopKey:
    """This process's DPoP key, created on first use (never written anywhere): the default
    key of every :class:`~chain_sts_client.exchange.ExchangeClient` of the process."""
    global _PROCESS_KEY
    with _PROCESS_LOCK:
        if _PROCESS_KEY is None:
            _PROCESS_KEY = DpopKey()
        return _PROCESS_KEY


class ReplayCache:
    """Proof ``jti``s seen within the window, per key (§11.1); bounded, oldest dropped first.

    In-process: a service with several replicas behind a load balancer without affinity
    accepts a replay on another replica within the window (short: ``window`` seconds)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, jkt: str, jti: str, until: float, now: float) -> bool:
        """``False`` if ``(jkt, jti)`` was seen and is still remembered (a replay)."""
        with self._lock:
            while self._seen:
                oldest_key, oldest_until = next(iter(self._seen.items()))
                if oldest_until >= now and len(self._seen) < self.max_entries:
                    break
                del self._seen[oldest_key]
            seen = self._seen.get((jkt, jti))
            if seen is not None and seen >= now:
                return False
            self._seen[(jkt, jti)] = until
            return True


@dataclass(frozen=True)
class Presentation:
    """How a token was presented to a resource server: the ``Authorization`` scheme
    (``bearer`` or ``dpop``), the ``DPoP`` header (``None`` if absent), the request's method
    and URL."""

    scheme: str
    proof: str | None
    method: str
    url: str


class ProofChecker:
    """§7.1: a DPoP-bound token is accepted only with a valid proof of its key."""

    def __init__(
        self,
        *,
        window: int = DEFAULT_WINDOW,
        leeway: int = 5,
        replay: ReplayCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.leeway = leeway
        self.replay = replay or ReplayCache()
        self.clock = clock

    def check(self, token: str, claims: dict[str, Any], shown: Presentation) -> None:
        """Raise :class:`~chain_sts_client.errors.InvalidDpopProof` unless the presentation
        suits the token: a bound token with the DPoP scheme and a proof of its key, an
        unbound one as a bearer token."""
        cnf = claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if cnf is not None and not isinstance(jkt, str):
            raise InvalidDpopProof("token confirmation is not a key thumbprint")
        if jkt is None:
            if shown.scheme != "bearer":
                raise InvalidDpopProof("DPoP scheme with an unbound token")
            return
        if shown.scheme != "dpop":
            raise InvalidDpopProof("bound token presented as a bearer token")
        if shown.proof is None:
            raise InvalidDpopProof("bound token without a DPoP proof")
        proof_claims, proof_jkt = self._verified(shown.proof)
        if proof_claims["htm"] != shown.method.upper():
            raise InvalidDpopProof("htm does not match")
        htu = proof_claims["htu"]
        if not isinstance(htu, str) or normalise_htu(htu) != normalise_htu(shown.url):
            raise InvalidDpopProof("htu does not match")
        iat, now = proof_claims["iat"], self.clock()
        if not isinstance(iat, int) or not now - self.window - self.leeway <= iat:
            raise InvalidDpopProof("proof too old")
        if iat > now + self.leeway:
            raise InvalidDpopProof("proof from the future")
        ath = proof_claims.get("ath")
        if ath is None:
            raise InvalidDpopProof("proof without ath")
        if ath != access_token_hash(token):
            raise InvalidDpopProof("ath does not match the token")
        if proof_jkt != jkt:
            raise InvalidDpopProof("proof key does not match the token's cnf")
        jti = proof_claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise InvalidDpopProof("proof without jti")
        if not self.replay.remember(jkt, jti, iat + self.window + self.leeway, now):
            raise InvalidDpopProof("proof replayed")

    def _verified(self, proof: str) -> tuple[dict[str, Any], str]:
        if len(proof) > MAX_PROOF_BYTES:
            raise InvalidDpopProof("proof too large")
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.InvalidTokenError:
            raise InvalidDpopProof("proof is not a JWS") from None
        if header.get("typ") != DPOP_TYP:
            raise InvalidDpopProof("proof typ is not dpop+jwt")
        alg = header.get("alg")
        if alg not in ASYMMETRIC_JWS_ALGORITHMS:
            raise InvalidDpopProof("proof algorithm not allowed")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise InvalidDpopProof("proof without jwk")
        if PRIVATE_MEMBERS & jwk.keys():
            raise InvalidDpopProof("proof jwk holds a private key")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims: dict[str, Any] = jwt.decode(
                proof,
                key.key,
                algorithms=[alg],
                options={
                    "require": ["jti", "htm", "htu", "iat"],
                    "verify_iat": False,
                    "verify_aud": False,
                },
            )
            return claims, thumbprint(jwk)
        except (jwt.InvalidTokenError, jwt.PyJWKError, ValueError, TypeError, KeyError):
            raise InvalidDpopProof("proof signature or claims invalid") from None
