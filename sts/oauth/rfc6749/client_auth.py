"""Client authentication at the token endpoint (RFC 6749 §2.3, DESIGN §5.1).

A request uses exactly one method: HTTP Basic together with a body secret or a client
assertion is ``invalid_request`` (RFC 6749 §2.3: "MUST NOT use more than one authentication
method in each request"). Every failure, whether the client is unknown, disabled or the secret
wrong, answers the same ``invalid_client`` bytes; the reason is kept for the audit trail, and
an unknown client costs the same hashing work as a known one.

Each method is two steps: :meth:`AuthMethod.claim` reads which client the request names (or
refuses a malformed request), :meth:`AuthMethod.verify` proves it against the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from authlib.oauth2.rfc6749.util import extract_basic_authorization

from sts.core import metrics
from sts.core.errors import InvalidClient, InvalidRequest, StsError
from sts.oauth.audit_facts import AuditFacts, Denied

if TYPE_CHECKING:
    from sts.core.domain import Client
    from sts.core.ports import ClientStore
    from sts.core.secrets import SecretHasher
    from sts.core.settings import Settings
    from sts.oauth.rfc6749.request import OAuthRequest

CLIENT_ASSERTION_PARAMS = ("client_assertion", "client_assertion_type")


class ClientDisabled(InvalidClient):
    """The credential was right but the client is disabled: answered like any failure, and
    never counted as one (the client's own retries while disabled must not lock it out once
    it is enabled again)."""

    def __init__(self) -> None:
        super().__init__("client disabled")


@dataclass(frozen=True)
class Authenticated:
    """The client a request proved to be, and the credential it proved it with."""

    client: Client
    credential_id: str | None


@dataclass(frozen=True)
class Claimed:
    """What a request says about its client, unverified: the client_id it names and the
    method's own evidence (a secret, a parsed client assertion)."""

    client_id: str | None
    evidence: Any


class AuthMethod(Protocol):
    name: str

    def claim(self, request: OAuthRequest) -> Claimed:
        """Which client the request names, unverified; refuses a malformed request."""

    def verify(self, request: OAuthRequest, claimed: Claimed, store: ClientStore) -> Authenticated:
        """Prove the claim, or raise ``invalid_client`` (or ``invalid_request``)."""


def detect_auth_method(request: OAuthRequest) -> str:
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


class _SecretMethod:
    """``client_secret_basic`` and ``client_secret_post``: a secret checked against the
    client's stored hashes (an unknown client is hashed against nothing, the same work)."""

    def __init__(self, hasher: SecretHasher) -> None:
        self.hasher = hasher

    def verify(self, request: OAuthRequest, claimed: Claimed, store: ClientStore) -> Authenticated:
        assert claimed.client_id is not None
        client = store.client(claimed.client_id, request.now, request.source)
        match = self.hasher.match(claimed.evidence, client.secrets() if client else [])
        if client is None:
            raise InvalidClient("unknown client")
        if match is None:
            raise InvalidClient("wrong client secret")
        if not client.active:
            raise ClientDisabled
        return Authenticated(client, match.id)


class ClientSecretBasic(_SecretMethod):
    name = "client_secret_basic"

    def claim(self, request: OAuthRequest) -> Claimed:
        try:
            client_id, secret = extract_basic_authorization(request.headers)
        except ValueError:  # "Basic " with nothing after it, or credentials not UTF-8
            client_id = secret = None
        if not client_id or not secret:
            raise InvalidClient("malformed Basic credentials")
        body_client_id = request.param("client_id")
        if body_client_id is not None and body_client_id != client_id:
            raise InvalidRequest("client_id in body differs from Basic credentials")
        return Claimed(str(client_id), str(secret))


class ClientSecretPost(_SecretMethod):
    name = "client_secret_post"

    def claim(self, request: OAuthRequest) -> Claimed:
        client_id, secret = request.param("client_id"), request.param("client_secret")
        if not client_id or not secret:
            raise InvalidClient("missing client_id or client_secret")
        return Claimed(client_id, secret)


class Claim(NamedTuple):
    method: AuthMethod
    claimed: Claimed


class ClientAuthenticator:
    """RFC 6749 §2.3 at every endpoint: the one method the request uses, then brute-force
    throttling (DESIGN §5.1)."""

    def __init__(self, settings: Settings, methods: list[AuthMethod]) -> None:
        self.settings = settings
        self.methods = {m.name: m for m in methods}

    def claim(self, request: OAuthRequest) -> Claim:
        """The one method the request uses and what it claims, unverified (RFC 6749 §2.3);
        a malformed request is refused here, before anything is looked up."""
        method = self.methods[detect_auth_method(request)]
        return Claim(method, method.claim(request))

    def authenticate(
        self,
        request: OAuthRequest,
        store: ClientStore,
        facts: AuditFacts,
        claim: Claim | None = None,
    ) -> Authenticated:
        """The authenticated client; a refusal is :class:`Denied` with the client the
        request attempted added to ``facts``. ``claim`` is :meth:`claim` of this request when
        the caller already made it (the exchange does, to read ahead the client)."""
        settings, attempted, done = self.settings, None, None
        try:
            method, claimed = claim or self.claim(request)
            attempted = claimed.client_id
            done = method.verify(request, claimed, store)
            # Checked after the credential, so a throttled client costs the same work (and
            # time) as any other and the answer is the same bytes: nothing tells an attacker
            # that the id exists or that it is throttled.
            if done.client.throttled(
                request.now, settings.auth_failure_limit, settings.auth_failure_window
            ):
                metrics.THROTTLED.inc()
                raise InvalidClient("throttled: too many failed authentications")
        except StsError as err:
            if err.error == "invalid_client" and attempted and not isinstance(err, ClientDisabled):
                self._count_failure(request, store, method.name, attempted)
            credential_id = done.credential_id if done is not None else None
            raise Denied(err, facts.but(client_id=attempted, credential_id=credential_id)) from None
        if done.client.failures:
            store.clear_auth_failures(done.client.client_id, request.source)
        return done

    def _count_failure(
        self, request: OAuthRequest, store: ClientStore, method: str, client_id: str
    ) -> None:
        """A failure counts against the client only from the source it came from, and only
        for a method the client really has: a stranger guessing secrets for a client that
        authenticates by key, or failing from their own address, locks out nobody."""
        client = store.client(client_id, request.now, request.source)
        if client is not None and client.check_endpoint_auth_method(method, "token"):
            store.record_auth_failure(
                client_id, request.source, request.now, self.settings.auth_failure_window
            )
