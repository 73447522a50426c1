"""Revocations as OpenID Shared Signals events (SSF 1.0, CAEP 1.0 ``session-revoked``).

:class:`SsfReceiver` is a revocation source for :class:`~chain_sts_client.TokenVerifier`, in
place of the cursor feed: it follows a stream of the STS by POLL (RFC 8936) or receives its
pushes (RFC 8935, see :func:`chain_sts_client.flask.ssf_push_endpoint`), verifies each SET
(RFC 8417: ``typ: secevent+jwt``, signed by a key of the STS's JWKS, ``aud`` this service) and
remembers the ``jti`` of every token it names, in a ``jwt_id`` subject or in each ``jwt_id``
of an ``aliases`` subject. Seen twice, a SET changes nothing (a redelivery has the same
``jti``).

It fails closed like the feed: when the stream has not been heard from for ``max_staleness``
seconds (no successful poll; for push, no answer to the verification events it asks for every
``poll_interval`` seconds, SSF 1.0 §8.1.4), :meth:`SsfReceiver.is_revoked` raises
:class:`~chain_sts_client.errors.VerificationUnavailable`, which the Flask integration answers
with 503.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import jwt

from chain_sts_client.algorithms import ASYMMETRIC_JWS_ALGORITHMS
from chain_sts_client.errors import (
    InvalidClient,
    StsClientError,
    StsUnavailable,
    VerificationUnavailable,
)
from chain_sts_client.jwks import JwksCache, KeySource
from chain_sts_client.polling import Poller
from chain_sts_client.transport import HttpResponse, Transport, get_json

if TYPE_CHECKING:
    from chain_sts_client.exchange import ExchangeClient

log = logging.getLogger("chain_sts_client.ssf")

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
SET_TYP = "secevent+jwt"
SCOPE = "ssf:manage"
#: Clock skew tolerated on a SET's ``iat``, seconds.
SET_LEEWAY = 60
#: SETs asked for in one poll, and polls in one round at most.
MAX_EVENTS = 500
MAX_ROUNDS = 100


class SetRejected(Exception):
    """A pushed SET that cannot be used: ``err`` is the RFC 8935 §2.4 error code."""

    def __init__(self, err: str, description: str) -> None:
        super().__init__(description)
        self.err = err
        self.description = description


def _json_answer(response: HttpResponse, what: str, ok: tuple[int, ...]) -> Any:
    if response.status in (401, 403):
        raise InvalidClient(response.status, {"error": "invalid_token"})
    if response.status not in ok:
        raise StsUnavailable(f"{what} answered HTTP {response.status}")
    return json.loads(response.body) if response.body else None


class SsfReceiver(Poller):
    """One SSF stream of the STS, as the revocation source of a verifier."""

    thread_name = "sts-ssf-receiver"

    def __init__(
        self,
        issuer: str,
        audience: str,
        keys: KeySource,
        transport: Transport,
        authorization: Callable[[], str],
        configuration: Mapping[str, Any],
        *,
        verification_endpoint: str | None = None,
        push_secret: str | None = None,
        poll_interval: float = 5.0,
        max_staleness: float = 60.0,
        retention: float = 3600.0 + 120.0,
        on_unauthorized: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.keys = keys
        self.transport = transport
        self.authorization = authorization
        self.stream_id = str(configuration["stream_id"])
        delivery = configuration["delivery"]
        self.method = str(delivery["method"])
        self.poll_url = str(delivery["endpoint_url"]) if self.method == POLL else None
        self.verification_endpoint = verification_endpoint
        self.push_secret = push_secret
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        #: Keep a revoked jti this long (the STS's longest token lifetime and leeway).
        self.retention = retention
        self.on_unauthorized = on_unauthorized
        self.clock = clock
        self.wall_clock = wall_clock
        self._revoked: dict[str, float] = {}
        self._seen: dict[str, float] = {}
        self._state: str | None = None
        self._last_success: float | None = None
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_client(
        cls,
        client: ExchangeClient,
        *,
        method: str = POLL,
        push_url: str | None = None,
        audience: str | None = None,
        poll_interval: float = 5.0,
        max_staleness: float = 60.0,
    ) -> SsfReceiver:
        """Register a stream at ``client``'s STS (the client needs the scope ``ssf:manage``):
        POLL by default, or PUSH to ``push_url`` with a fresh secret the pushes must carry."""
        issuer = client.metadata.issuer
        discovery = get_json(
            client.transport, issuer.rstrip("/") + "/.well-known/ssf-configuration"
        )
        if discovery.get("issuer") != issuer:
            raise StsUnavailable("SSF metadata of another issuer")

        def bearer() -> str:
            return "Bearer " + client.client_credentials(scope=SCOPE).access_token

        delivery: dict[str, Any] = {"method": method}
        secret = None
        if method == PUSH:
            if push_url is None:
                raise ValueError("push delivery needs push_url")
            secret = secrets.token_urlsafe(32)
            delivery.update(endpoint_url=push_url, authorization_header=f"Bearer {secret}")
        endpoint = str(discovery["configuration_endpoint"])
        headers = {"Authorization": bearer(), "Content-Type": "application/json"}
        # A service restarting takes up its stream again (a poll stream keeps what was not
        # acknowledged yet); a push stream gets the new secret.
        listed = _json_answer(
            client.transport("GET", endpoint, headers=headers, body=None), "stream list", (200,)
        )
        mine = [
            s
            for s in listed or []
            if isinstance(s, dict)
            and s.get("delivery", {}).get("method") == method
            and (method == POLL or s["delivery"].get("endpoint_url") == push_url)
        ]
        if mine:
            body = {"stream_id": mine[0]["stream_id"], "delivery": delivery}
            answer = client.transport(
                "PATCH", endpoint, headers=headers, body=json.dumps(body).encode()
            )
            expected: tuple[int, ...] = (200,)
        else:
            body = {"delivery": delivery, "events_requested": [SESSION_REVOKED]}
            answer = client.transport(
                "POST", endpoint, headers=headers, body=json.dumps(body).encode()
            )
            expected = (201,)
        config = _json_answer(answer, "stream registration", expected)
        receiver = cls(
            issuer,
            audience or client.client_id,
            JwksCache(client.metadata.jwks_uri, client.transport),
            client.transport,
            bearer,
            config,
            verification_endpoint=str(discovery["verification_endpoint"]),
            push_secret=secret,
            poll_interval=poll_interval,
            max_staleness=max_staleness,
            on_unauthorized=client.forget_own_token,
        )
        if method == POLL:
            receiver.poll()  # what waited for a stream taken up again
        else:
            # What waits is pushed once the endpoint serves; none can have been missed yet.
            receiver._last_success = receiver.clock()
        return receiver

    # -- reading (is_revoked, revoked_count: Poller) ------------------------------------------
    def _ensure_fresh(self) -> None:
        last = self._last_success
        if last is not None and self.clock() - last < self.max_staleness:
            return
        if self.method == POLL:
            try:
                self.poll()
                return
            except StsClientError as exc:
                raise VerificationUnavailable("SSF stream unavailable") from exc
        raise VerificationUnavailable("SSF stream silent")

    # -- SETs --------------------------------------------------------------------------------
    def accept(self, set_jwt: str) -> str:
        """Verify one SET and take what it says; its ``jti``. Raises :class:`SetRejected`."""
        try:
            header = jwt.get_unverified_header(set_jwt)
        except jwt.InvalidTokenError:
            raise SetRejected("invalid_request", "malformed SET") from None
        alg, kid = header.get("alg"), header.get("kid")
        if (
            header.get("typ") != SET_TYP
            or alg not in ASYMMETRIC_JWS_ALGORITHMS
            or not isinstance(kid, str)
        ):
            raise SetRejected("invalid_request", "not a SET of an allowed algorithm")
        try:
            key = self.keys.key(kid, str(alg))
            claims: dict[str, Any] = jwt.decode(
                set_jwt,
                key.key,
                algorithms=[str(alg)],
                audience=self.audience,
                issuer=self.issuer,
                leeway=SET_LEEWAY,
                options={"require": ["iss", "jti", "iat", "aud", "events"], "verify_exp": False},
            )
        except jwt.InvalidAudienceError:
            raise SetRejected("invalid_audience", "SET for another audience") from None
        except jwt.InvalidIssuerError:
            raise SetRejected("invalid_issuer", "SET from another issuer") from None
        except (jwt.InvalidTokenError, StsClientError):
            raise SetRejected("invalid_key", "SET signature not verified") from None
        events = claims["events"]
        if not isinstance(events, dict):
            raise SetRejected("invalid_request", "malformed events claim")
        now = self.wall_clock()
        with self._lock:
            if SESSION_REVOKED in events:
                for jti in self._revoked_jtis(claims.get("sub_id")):
                    self._revoked[jti] = now
            state = events.get(VERIFICATION, {}).get("state") if VERIFICATION in events else None
            if state is not None and state == self._state:
                self._last_success = self.clock()
            self._seen[str(claims["jti"])] = now
        return str(claims["jti"])

    def _revoked_jtis(self, sub_id: Any) -> list[str]:
        if not isinstance(sub_id, dict):
            return []
        subjects = sub_id.get("identifiers") if sub_id.get("format") == "aliases" else [sub_id]
        return [
            s["jti"]
            for s in subjects or []
            if isinstance(s, dict)
            and s.get("format") == "jwt_id"
            and s.get("iss") == self.issuer
            and isinstance(s.get("jti"), str)
        ]

    def receive_push(
        self, body: bytes, content_type: str | None, authorization: str | None
    ) -> tuple[int, dict[str, str] | None]:
        """RFC 8935 §2: one pushed SET; the HTTP status and error body to answer with."""
        expected = f"Bearer {self.push_secret}" if self.push_secret else None
        if expected is not None and not hmac.compare_digest(
            (authorization or "").encode(), expected.encode()
        ):
            return 401, {"err": "authentication_failed", "description": "not the transmitter"}
        if (content_type or "").split(";")[0].strip().lower() != "application/secevent+jwt":
            return 400, {"err": "invalid_request", "description": "not a SET"}
        try:
            self.accept(body.decode("ascii", "strict").strip())
        except (SetRejected, UnicodeDecodeError) as exc:
            err = exc.err if isinstance(exc, SetRejected) else "invalid_request"
            return 400, {"err": err, "description": "the SET was not accepted"}
        return 202, None

    # -- polling and heartbeats --------------------------------------------------------------
    def poll(self) -> int:
        """Poll until nothing more waits, acknowledging what was taken (RFC 8936 §2.4); how
        many SETs were new. Push streams ask for a verification event instead."""
        if self.method != POLL:
            self._request_verification()
            return 0
        assert self.poll_url is not None
        with self._poll_lock:
            started = self.clock()
            ack: list[str] = []
            errs: dict[str, dict[str, str]] = {}
            taken = 0
            for _ in range(MAX_ROUNDS):
                page = self._poll_once(MAX_EVENTS, ack, errs)
                ack, errs = [], {}
                for jti, set_jwt in page["sets"].items():
                    try:
                        new = jti not in self._seen
                        self.accept(str(set_jwt))
                        taken += new
                        ack.append(jti)
                    except SetRejected as exc:
                        errs[jti] = {"err": exc.err, "description": exc.description}
                if not page.get("moreAvailable"):
                    if ack or errs:
                        self._poll_once(0, ack, errs)
                    break
            self._purge()
            self._last_success = started
            return taken

    def _poll_once(
        self, max_events: int, ack: list[str], errs: dict[str, dict[str, str]]
    ) -> dict[str, Any]:
        assert self.poll_url is not None
        body = {"maxEvents": max_events, "returnImmediately": True, "ack": ack, "setErrs": errs}
        page = _json_answer(self._post(self.poll_url, body), "SSF poll", (200,))
        if not isinstance(page, dict) or not isinstance(page.get("sets"), dict):
            raise StsUnavailable("malformed SSF poll answer")
        return page

    def _request_verification(self) -> None:
        if self.verification_endpoint is None:
            raise StsUnavailable("no verification endpoint")
        self._state = secrets.token_urlsafe(16)
        answer = self._post(
            self.verification_endpoint, {"stream_id": self.stream_id, "state": self._state}
        )
        _json_answer(answer, "SSF verification", (204,))

    def _post(self, url: str, body: dict[str, Any]) -> HttpResponse:
        answer = self.transport(
            "POST",
            url,
            headers={"Authorization": self.authorization(), "Content-Type": "application/json"},
            body=json.dumps(body).encode(),
        )
        if answer.status == 401 and self.on_unauthorized is not None:
            self.on_unauthorized()
        return answer

    def _purge(self) -> None:
        horizon = self.wall_clock() - self.retention
        with self._lock:
            for table in (self._revoked, self._seen):
                for key in [k for k, at in table.items() if at < horizon]:
                    del table[key]
