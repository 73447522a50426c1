"""The revocation feed: what resource servers poll to learn of revocations (DESIGN §7).

Revocations are serialised (see :mod:`sts.store.revocation`), so revocation ids commit in order and
a cursor never skips one that commits late.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sts.core import errors
from sts.core.response import JSON_NO_STORE, Response
from sts.oauth.rfc7662 import own_live_token

if TYPE_CHECKING:
    from sts.core.ports import RevocationStore, Store
    from sts.oauth.rfc6749.request import OAuthRequest
    from sts.oauth.server import ChainAuthorizationServer

FEED_PAGE = 1000
#: Revocation ids are 32-bit integers; no cursor the feed hands out goes beyond.
MAX_REVOCATION_ID = 2**31 - 1


def authenticate_poller(
    server: ChainAuthorizationServer, request: OAuthRequest, store: Store
) -> None:
    """A resource server polls with HTTP Basic client credentials, or with a bearer token
    this STS issued to it for itself (``aud`` = this STS) by ``client_credentials``."""
    authorization = request.headers.get("Authorization") or ""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer":
        server.authenticate(request, store)
        return
    found = own_live_token(server, store, request.now, credential.strip())
    if found is None or server.settings.issuer not in found.aud or found.chain.depth:
        raise errors.InvalidClient("feed bearer token not acceptable")


def parse_cursor(value: str | None) -> tuple[int, str]:
    """The feed cursor: ``<revocation id>.<jti>`` as returned in ``next``; empty: start."""
    if not value:
        return 0, ""
    rid, _, jti = value.partition(".")
    # ASCII digits only (str.isdigit also accepts "²", which int() refuses), and no larger
    # than a revocation id can be (a 32-bit integer column), so the query never overflows;
    # a jti is printable ASCII (PostgreSQL refuses a NUL in a text parameter).
    if (
        len(value) > 128
        or not (rid.isascii() and rid.isdigit())
        or not (jti.isascii() and jti.isprintable())
        or len(rid) > 10
        or int(rid) > MAX_REVOCATION_ID
    ):
        raise errors.InvalidRequest("malformed feed cursor", "Malformed cursor.")
    return int(rid), jti


def feed(store: RevocationStore, now: int, since: str | None, grace: int) -> Response:
    """Revoked ``jti``s after a cursor, in revocation order, one page at a time: cheap
    enough to poll every second (one indexed range scan). A token stays listed until its
    ``exp`` plus ``grace``, the largest leeway a verifier may apply (DESIGN §7): a verifier
    that still accepts it must still be able to learn it is revoked."""
    cursor = parse_cursor(since)
    rows = store.revoked_since(cursor, now - grace, FEED_PAGE + 1)
    page = rows[:FEED_PAGE]
    last = page[-1] if page else None
    next_cursor = f"{last[0]}.{last[1]}" if last else (since or "")
    return (
        200,
        {
            "revoked": [{"jti": jti, "exp": exp} for _, jti, exp in page],
            "next": next_cursor,
            "more": len(rows) > FEED_PAGE,
        },
        JSON_NO_STORE,
    )
