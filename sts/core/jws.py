"""A compact JWS parsed once, verified once (RFC 7515 §5.2, RFC 7519 §7.2).

Choosing the key needs the header (``alg``, ``kid``) and the payload (``iss``) before the
signature can be checked. ``jwt.decode`` would parse the whole token a second time for the
check, and PyJWT's parse is the costly part (a per-character base64url scan). So PyJWT parses
the token once, unverified, with its header checks (``crit``, ``kid`` type, a JSON-object
payload); once the key is chosen, the algorithm PyJWT registers under ``alg`` verifies the
signature over the JWS Signing Input. Nothing here decodes base64url, JSON or a signature
itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from jwt import PyJWK
from jwt.algorithms import get_default_algorithms
from jwt.exceptions import InvalidSignatureError, InvalidTokenError, PyJWTError

_ALGORITHMS = get_default_algorithms()


@dataclass(frozen=True)
class ParsedJWS:
    """An unverified token: nothing in it may be trusted until :meth:`verify` has passed."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]
    signature: bytes

    @property
    def signing_input(self) -> bytes:
        """RFC 7515 §5.2: the compact serialization up to the signature."""
        return self.token[: self.token.rindex(".")].encode()

    def verify(self, key: Any, alg: str) -> dict[str, Any]:
        """The claims, once the signature verifies with ``key`` under ``alg``; raises
        :class:`jwt.exceptions.InvalidTokenError` otherwise. ``alg`` is the caller's choice,
        already held against the header's and the key's; a key that cannot do ``alg`` is a
        refusal, never an exception of another kind."""
        if self.header.get("alg") != alg:
            raise InvalidTokenError("algorithm does not match the header")
        algorithm = _ALGORITHMS.get(alg)
        if algorithm is None:
            raise InvalidTokenError("algorithm not supported")
        try:
            prepared = algorithm.prepare_key(key)
            valid = algorithm.verify(self.signing_input, prepared, self.signature)
        except (TypeError, ValueError, jwt.PyJWTError):
            raise InvalidSignatureError("key cannot verify this algorithm") from None
        if not valid:
            raise InvalidSignatureError("signature verification failed")
        return self.claims


def parse(token: str) -> ParsedJWS:
    """Parse a compact JWS whose payload is a JSON object (a JWT), without verifying it."""
    complete = jwt.decode_complete(token, options={"verify_signature": False})
    return ParsedJWS(token, complete["header"], complete["payload"], complete["signature"])


@lru_cache(maxsize=4096)
def _jwk(jwk_json: str, alg: str) -> Any:
    return PyJWK(json.loads(jwk_json), algorithm=alg).key


def public_key(jwk: Mapping[str, Any], alg: str) -> Any:
    """A public JWK (RFC 7517) as the key PyJWT verifies ``alg`` with, parsed once per
    content. A key whose type cannot do ``alg`` (an RS256 header naming an EC key), or that
    is malformed, raises :class:`jwt.exceptions.InvalidTokenError`: a refusal, never an
    exception of another kind."""
    try:
        return _jwk(json.dumps(jwk, sort_keys=True), alg)
    except (PyJWTError, TypeError, ValueError, KeyError) as exc:
        raise InvalidTokenError(f"unusable key: {type(exc).__name__}") from None
