"""The console's session: a short, signed cookie and the CSRF token it carries.

The cookie holds the administrator's ``client_id``, the scopes its sign-in token carried,
a per-session CSRF token and the time the session ends; it is signed with HMAC-SHA256
under a key derived from the STS's credential hashing key (so every STS process sharing the
key directory accepts it, and no key is ever written in the code). It is ``HttpOnly``,
``SameSite=Strict``, limited to ``/console`` and ``Secure`` whenever the console is served
over https. The end is checked by the server on every request: the cookie's own
``Max-Age`` is only a courtesy to the browser.

Before sign-in the same cookie, without an administrator, carries the CSRF token of the
sign-in form, so that no POST of the console is ever accepted without one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

COOKIE = "sts_console"
PATH = "/console"
#: How long a session lasts after sign-in (seconds), whatever the browser does.
LIFETIME = 15 * 60
#: How long the sign-in form may stay open before it must be reloaded.
FORM_LIFETIME = 30 * 60
KEY_PURPOSE = "console-session-v1"
#: A cookie larger than this is not even looked at.
MAX_COOKIE = 2048


@dataclass(frozen=True)
class Session:
    """A signed-in administrator (``admin``), or the sign-in form's pre-session (``None``)."""

    admin: str | None
    scopes: frozenset[str]
    csrf: str
    expires_at: int

    @classmethod
    def fresh(cls, admin: str | None, scopes: frozenset[str], now: int) -> Session:
        """A new session with a new CSRF token."""
        lifetime = LIFETIME if admin is not None else FORM_LIFETIME
        return cls(admin, scopes, secrets.token_urlsafe(32), now + lifetime)

    def csrf_matches(self, presented: str | None) -> bool:
        """Whether a form carried this session's CSRF token (compared in constant time)."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), self.csrf.encode("utf-8"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionCodec:
    """Signs sessions into cookie values and reads them back."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the console's session key must be at least 32 bytes")
        self._key = key

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def encode(self, session: Session) -> str:
        body = {
            "a": session.admin,
            "s": sorted(session.scopes),
            "c": session.csrf,
            "e": session.expires_at,
        }
        payload = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._sign(payload)}"

    def decode(self, value: str | None, now: int) -> Session | None:
        """The session a cookie holds, or ``None`` when it is missing, malformed, forged or
        over."""
        if not value or len(value) > MAX_COOKIE or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        try:
            if not hmac.compare_digest(signature.encode("ascii"), self._sign(payload).encode()):
                return None
            body = json.loads(_unb64(payload))
        except (UnicodeError, ValueError, binascii.Error):
            return None
        if not isinstance(body, dict):
            return None
        admin, scopes, csrf, expires_at = body.get("a"), body.get("s"), body.get("c"), body.get("e")
        if (
            not (admin is None or isinstance(admin, str))
            or not isinstance(scopes, list)
            or not all(isinstance(s, str) for s in scopes)
            or not isinstance(csrf, str)
            or not isinstance(expires_at, int)
        ):
            return None
        if expires_at <= now:
            return None
        return Session(admin, frozenset(scopes), csrf, expires_at)
