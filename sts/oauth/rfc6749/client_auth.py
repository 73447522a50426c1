"""Client authentication at the token endpoint (RFC 6749 §2.3, DESIGN §5.1).

A request uses exactly one method: HTTP Basic together with a body secret or a client
assertion is ``invalid_request`` (RFC 6749 §2.3: "MUST NOT use more than one authentication
method in each request"). Every failure, whether the client is unknown, disabled or the secret
wrong, answers the same ``invalid_client`` bytes; the reason is kept for the audit trail, and
an unknown client costs the same hashing work as a known one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from jwt.exceptions import InvalidTokenError

from sts.core import jws
from sts.core.errors import InvalidClient, InvalidRequest

if TYPE_CHECKING:
    from sts.core.domain import Client
    from sts.core.secrets import SecretHasher
    from sts.oauth.rfc6749.request import TokenRequest

QueryClient = Callable[[str], "Client | None"]
CLIENT_ASSERTION_PARAMS = ("client_assertion", "client_assertion_type")


def detect_auth_method(request: TokenRequest) -> str:
    """Name the one authentication method the request uses."""
    authorization = request.headers.get("Authorization") or ""
    used = []
    if authorization:
        if authorization.split(" ", 1)[0].lower() != "basic":
            raise InvalidClient("unsupported Authorization scheme")
        used.append("client_secret_basic")
    if request.param("client_secret") is not None:
        used.append("client_secret_post")
    if any(request.param(p) is not None for p in CLIENT_ASSERTION_PARAMS):
        used.append("private_key_jwt")
    if len(used) > 1:
        raise InvalidRequest(
            "more than one client authentication method: " + ",".join(used),
            "Use exactly one client authentication method.",
        )
    if not used:
        raise InvalidClient("no client authentication")
    return used[0]


def claimed_client_id(request: TokenRequest, max_assertion_bytes: int) -> str | None:
    """The client_id the request claims, unchecked: HTTP Basic, a body ``client_id`` with a
    secret, or the ``sub`` of a client assertion (RFC 7523 §3); ``None`` if it names none. An
    assertion over the size limit is not even parsed (its own step refuses it)."""
    if request.headers.get("Authorization"):
        try:
            client_id, _ = extract_basic_authorization(request.headers)
        except ValueError:
            return None
        return client_id or None
    if request.param("client_secret"):
        return request.param("client_id")
    assertion = request.param("client_assertion")
    if not assertion or len(assertion) > max_assertion_bytes:
        return None
    try:
        sub = jws.parse(assertion).claims.get("sub")
    except InvalidTokenError:
        return None
    return sub if isinstance(sub, str) else None


def _check_secret(
    hasher: SecretHasher,
    request: TokenRequest,
    query_client: QueryClient,
    client_id: str,
    secret: str,
) -> Client:
    request.audit["client_id"] = client_id[:255]
    client = query_client(client_id)
    match = hasher.match(secret, client.secrets() if client is not None else [])
    if client is None:
        raise InvalidClient("unknown client")
    if match is None:
        raise InvalidClient("wrong client secret")
    if not client.active:
        raise InvalidClient("client disabled")
    request.credential_id = match.id
    return client


def authenticate_client_secret_basic(hasher: SecretHasher) -> Callable[..., Client]:
    def authenticate(query_client: QueryClient, request: TokenRequest) -> Client:
        try:
            client_id, secret = extract_basic_authorization(request.headers)
        except ValueError:  # "Basic " with nothing after it, or credentials not UTF-8
            client_id = secret = None
        if not client_id or not secret:
            raise InvalidClient("malformed Basic credentials")
        body_client_id = request.param("client_id")
        if body_client_id is not None and body_client_id != client_id:
            raise InvalidRequest("client_id in body differs from Basic credentials")
        return _check_secret(hasher, request, query_client, client_id, secret)

    return authenticate


def authenticate_client_secret_post(hasher: SecretHasher) -> Callable[..., Client]:
    def authenticate(query_client: QueryClient, request: TokenRequest) -> Client:
        client_id = request.param("client_id")
        secret = request.param("client_secret")
        if not client_id or not secret:
            raise InvalidClient("missing client_id or client_secret")
        return _check_secret(hasher, request, query_client, client_id, secret)

    return authenticate
