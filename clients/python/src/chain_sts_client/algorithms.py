"""The JWS algorithms Chain STS trusts for signatures it did not make itself.

Asymmetric only (RFC 8725 §3.1): never ``none``, and never HMAC where a public key is
published, since anyone holding the public key could then forge. The STS accepts these from
clients (``private_key_jwt``) and trusted issuers; the SDK's verifier accepts only these.
"""

from __future__ import annotations

ASYMMETRIC_JWS_ALGORITHMS = (
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
)
