"""What every protocol endpoint returns: ``(status, body, headers)``, free of any web
framework (Authlib's shape); the web layer only serialises it."""

from __future__ import annotations

from typing import Any

Headers = list[tuple[str, str]]
Response = tuple[int, dict[str, Any], Headers]

#: RFC 6749 §5.1: answers carrying tokens or token facts are never cached.
JSON_NO_STORE: Headers = [
    ("Content-Type", "application/json"),
    ("Cache-Control", "no-store"),
    ("Pragma", "no-cache"),
]
