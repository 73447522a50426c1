"""OpenID Shared Signals Framework 1.0 and CAEP 1.0: the transmitter's vocabulary (DESIGN §11).

Pure values: the event types and delivery methods Chain STS speaks, the Security Event Tokens
(RFC 8417) it builds for a revoked token, and the check of a stream configuration a receiver
sends (SSF 1.0 §8.1.1). Storage lives in :mod:`sts.store.ssf`, delivery in
:mod:`sts.services.ssf`.

A SET says what one revocation did to one chain transaction: CAEP ``session-revoked``, with
``txn`` (RFC 8417 §2.2) the chain's transaction and ``sub_id`` naming the revoked tokens. A
single token is named by a ``jwt_id`` subject (SSF 1.0 §3, ``iss`` and ``jti``); when one
revocation kills several tokens of one transaction they are one subject, the part of the
chain that died, named by an ``aliases`` subject (RFC 9493 §3.2.9) whose identifiers are
each a ``jwt_id``, at most ``max_tokens`` per SET. So a revocation of 100,000 tokens in one
chain is a few hundred SETs, not 100,000 (``max_tokens`` = 1 gives one SET per token).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from sts.core.keys import SigningKey

SPEC_VERSION = "1_0"
#: CAEP 1.0 §3.1.
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
#: SSF 1.0 §8.1.4.
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
#: SSF 1.0 §8.1.5.
STREAM_UPDATED = "https://schemas.openid.net/secevent/ssf/event-type/stream-updated"
EVENTS_SUPPORTED = (SESSION_REVOKED,)
#: RFC 8935 (push) and RFC 8936 (poll), as SSF 1.0 §6.1 names them.
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
DELIVERY_METHODS = (PUSH, POLL)
#: RFC 8417 §2.3: the media type of a SET.
SET_TYP = "secevent+jwt"
SET_MEDIA_TYPE = "application/secevent+jwt"
STATUSES = ("enabled", "paused", "disabled")
#: Seconds a receiver must leave between two verification requests (SSF 1.0 §8.1.4.2).
MIN_VERIFICATION_INTERVAL = 1
MAX_DESCRIPTION = 255
MAX_URL = 2048
MAX_AUTHORIZATION_HEADER = 4096

#: Members a receiver may set, and the ones the transmitter sets (echoed back unchanged).
RECEIVER_MEMBERS = frozenset({"delivery", "events_requested", "description"})
TRANSMITTER_MEMBERS = frozenset(
    {"stream_id", "iss", "aud", "events_supported", "events_delivered",
     "min_verification_interval"}
)  # fmt: skip


class ConfigError(ValueError):
    """A stream configuration is malformed: ``field`` says where, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class StreamRequest:
    """What a receiver asked for: its delivery method and endpoint, the events it wants."""

    method: str
    endpoint_url: str | None
    authorization_header: str | None
    events_requested: tuple[str, ...]
    description: str


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_push_url(url: str, *, allow_http_loopback: bool) -> None:
    """A push endpoint is an absolute https URL without a fragment (RFC 8935 §2, §5.1); plain
    http only to a loopback address, and only when the development setting allows it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError("delivery.endpoint_url", "must be an absolute https URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError("delivery.endpoint_url", "must be an absolute https URL")
    if parts.fragment or parts.username or parts.password:
        raise ConfigError("delivery.endpoint_url", "must have no fragment and no user info")
    if parts.scheme == "http" and not (allow_http_loopback and is_loopback(host)):
        raise ConfigError(
            "delivery.endpoint_url",
            "must use https (http only to a loopback address in development)",
        )


def _string(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ConfigError(field, f"must be a string of at most {limit} characters")
    if "\x00" in value:  # no stored text can hold NUL
        raise ConfigError(field, "must not contain NUL")
    return value


def parse_stream_request(
    body: Any, *, allow_http_loopback: bool, current: Mapping[str, Any] | None = None
) -> StreamRequest:
    """Check a stream configuration (SSF 1.0 §8.1.1): ``delivery`` with its ``method`` (push
    needs ``endpoint_url``; poll must not give one, the transmitter does), optional
    ``events_requested`` and ``description``. Transmitter-supplied members are accepted only
    when they equal ``current`` (the stream as stored); anything else is refused."""
    if not isinstance(body, dict):
        raise ConfigError("(body)", "must be a JSON object")
    for name in sorted(body):
        if name in RECEIVER_MEMBERS:
            continue
        if name in TRANSMITTER_MEMBERS:
            if current is None or body[name] != current.get(name):
                raise ConfigError(name, "is set by the transmitter")
            continue
        raise ConfigError(name, "is not a stream configuration member")
    delivery = body.get("delivery")
    if not isinstance(delivery, dict):
        raise ConfigError("delivery", "is required: an object with a method")
    unknown = sorted(set(delivery) - {"method", "endpoint_url", "authorization_header"})
    if unknown:
        raise ConfigError(f"delivery.{unknown[0]}", "is not a delivery member")
    method = delivery.get("method")
    if method not in DELIVERY_METHODS:
        raise ConfigError("delivery.method", f"must be one of {', '.join(DELIVERY_METHODS)}")
    endpoint = delivery.get("endpoint_url")
    header = delivery.get("authorization_header")
    if method == PUSH:
        if endpoint is None:
            raise ConfigError("delivery.endpoint_url", "is required for push delivery")
        url = _string(endpoint, "delivery.endpoint_url", MAX_URL)
        check_push_url(url, allow_http_loopback=allow_http_loopback)
        if header is not None:
            _string(header, "delivery.authorization_header", MAX_AUTHORIZATION_HEADER)
            if not header.strip() or any(c in header for c in "\r\n\0"):
                raise ConfigError("delivery.authorization_header", "must be one header value")
    else:
        poll_url = current.get("delivery", {}).get("endpoint_url") if current else None
        if endpoint is not None and endpoint != poll_url:
            raise ConfigError("delivery.endpoint_url", "is set by the transmitter for poll")
        if header is not None:
            raise ConfigError("delivery.authorization_header", "is for push delivery only")
    requested = body.get("events_requested", list(EVENTS_SUPPORTED))
    if not isinstance(requested, list) or not all(isinstance(e, str) for e in requested):
        raise ConfigError("events_requested", "must be a list of event type URIs")
    if len(requested) > 32 or any(len(e) > MAX_URL for e in requested):
        raise ConfigError("events_requested", "is too long")
    description = _string(body.get("description", ""), "description", MAX_DESCRIPTION)
    return StreamRequest(
        method,
        endpoint if method == PUSH else None,
        header if method == PUSH else None,
        tuple(dict.fromkeys(requested)),
        description,
    )


def events_delivered(requested: Sequence[str]) -> list[str]:
    """SSF 1.0 §8.1.1: the events both supported and requested."""
    return [e for e in EVENTS_SUPPORTED if e in requested]


# -- Security Event Tokens -------------------------------------------------------------------
def set_jti(stream_id: str, *parts: object) -> str:
    """A SET's ``jti``, the same every time the same SET is built again (a redelivery after a
    crash carries the ``jti`` the receiver may already have seen)."""
    seed = "\0".join([stream_id, *map(str, parts)]).encode()
    return hashlib.sha256(seed).hexdigest()[:32]


def jwt_id_subject(issuer: str, jti: str) -> dict[str, str]:
    return {"format": "jwt_id", "iss": issuer, "jti": jti}


def revoked_subject(issuer: str, jtis: Sequence[str]) -> dict[str, Any]:
    """One token: a ``jwt_id`` subject; several of one chain: an ``aliases`` subject."""
    if len(jtis) == 1:
        return jwt_id_subject(issuer, jtis[0])
    return {"format": "aliases", "identifiers": [jwt_id_subject(issuer, j) for j in jtis]}


#: CAEP 1.0 §2 ``initiating_entity``: an administrator's revocation or disable (``admin``), a
#: client revoking its own token at the RFC 7009 endpoint (``user``: the token's holder).
INITIATORS = ("admin", "user", "policy", "system")


@dataclass(frozen=True)
class RevokedChain:
    """The tokens one revocation killed in one chain transaction (one SET's worth)."""

    jti: str
    txn: str
    jtis: tuple[str, ...]
    revoked_at: int
    reason: str
    initiator: str


def session_revoked_claims(
    issuer: str, audience: str, event: RevokedChain, iat: int
) -> dict[str, Any]:
    """RFC 8417 §2.2 claims of a CAEP ``session-revoked`` SET (CAEP 1.0 §3.1)."""
    payload: dict[str, Any] = {
        "event_timestamp": event.revoked_at,
        "initiating_entity": event.initiator,
    }
    if event.reason:
        payload["reason_admin"] = {"en": event.reason}
    return {
        "iss": issuer,
        "jti": event.jti,
        "iat": iat,
        "aud": audience,
        "txn": event.txn,
        "sub_id": revoked_subject(issuer, event.jtis),
        "events": {SESSION_REVOKED: payload},
    }


def verification_claims(
    issuer: str, audience: str, stream_id: str, jti: str, iat: int, state: str | None
) -> dict[str, Any]:
    """SSF 1.0 §8.1.4.1: a verification event, subject the stream itself."""
    payload = {} if state is None else {"state": state}
    return {
        "iss": issuer,
        "jti": jti,
        "iat": iat,
        "aud": audience,
        "sub_id": {"format": "opaque", "id": stream_id},
        "events": {VERIFICATION: payload},
    }


def sign(claims: Mapping[str, Any], key: SigningKey) -> str:
    """A SET signed with the STS's signing key, header ``typ: secevent+jwt`` (RFC 8417 §2.3)."""
    return jwt.encode(
        dict(claims), key.private_key, algorithm=key.alg, headers={"kid": key.kid, "typ": SET_TYP}
    )
