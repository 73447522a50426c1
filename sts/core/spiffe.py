"""SPIFFE workload identity: JWT-SVIDs from a trusted trust domain (DESIGN §12).

A trust domain is trusted like any issuer, under the identifier ``spiffe://<trust-domain>``,
with its JWT bundle as the JWKS (the bundle file's contents, or the bundle endpoint as its
``jwks_uri``; only keys for ``jwt-svid`` use count). A JWT-SVID (SPIFFE JWT-SVID §3) names its
workload in ``sub`` (a SPIFFE ID, ``spiffe://<trust-domain>/<path>``) and may carry no ``iss``,
so it is judged by the trust domain of its ``sub``. It is accepted as a subject token, and as a
``private_key_jwt``-style client assertion when its SPIFFE ID is an NHI's ``sub``. Beyond the
signature, every SVID must carry ``exp`` and exactly one audience (§3: a workload should mint
one SVID per audience, so several are refused), which the use decides.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SCHEME", "check_svid", "is_trust_domain", "svid_key", "trust_domain_of"]

SCHEME = "spiffe://"
#: SPIFFE ID §2.1: trust domain names are lower-case letters, digits, ``.``, ``-``, ``_``.
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
#: SPIFFE ID §2.2: path segments of letters, digits, ``.``, ``-``, ``_``; never ``.``/``..``.
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
MAX_ID_LENGTH = 2048


def trust_domain_of(spiffe_id: object) -> str | None:
    """``spiffe://<trust-domain>`` of a workload's SPIFFE ID (one with a path), else ``None``."""
    if not isinstance(spiffe_id, str) or not spiffe_id.startswith(SCHEME):
        return None
    if len(spiffe_id) > MAX_ID_LENGTH:
        return None
    domain, slash, path = spiffe_id[len(SCHEME) :].partition("/")
    if not slash or not _TRUST_DOMAIN.fullmatch(domain):
        return None
    segments = path.split("/")
    if any(s in {".", ".."} or not _SEGMENT.fullmatch(s) for s in segments):
        return None
    return SCHEME + domain


def is_trust_domain(issuer: str) -> bool:
    """``spiffe://<trust-domain>``, without a path: a trust domain, not a workload."""
    return issuer.startswith(SCHEME) and bool(_TRUST_DOMAIN.fullmatch(issuer[len(SCHEME) :]))


def svid_key(jwks: dict[str, Any], kid: str | None) -> dict[str, Any] | None:
    """The bundle's JWT-SVID key named by ``kid`` (SPIFFE Trust Domain and Bundle §4.2.1:
    keys of ``use`` ``x509-svid`` never verify a JWT); without ``kid``, the only one."""
    keys = [
        k
        for k in jwks.get("keys", [])
        if isinstance(k, dict) and k.get("use", "jwt-svid") == "jwt-svid"
    ]
    if kid is None:
        return keys[0] if len(keys) == 1 else None
    return next((k for k in keys if k.get("kid") == kid), None)


def check_svid(claims: dict[str, Any], audiences: frozenset[str] | None = None) -> str | None:
    """Why a JWT-SVID is refused (``None``: it is not): no ``exp``, several audiences, or
    (when ``audiences`` is given) an audience not among them."""
    if "exp" not in claims:
        return "JWT-SVID without exp"
    aud = claims.get("aud")
    values = aud if isinstance(aud, list) else [aud]
    if len(values) != 1 or not isinstance(values[0], str):
        return "JWT-SVID must name exactly one audience"
    if audiences is not None and values[0] not in audiences:
        return "JWT-SVID for another audience"
    return None
