"""Flask integration: protect views with ``@require_token`` and call the next hop with an
exchanged token, never the incoming one.

::

    sts = ChainSts(app, issuer="https://sts.example.com", client_id="agent",
                   client_secret=os.environ["AGENT_SECRET"])

    @app.post("/plan")
    @require_token(scope="orders:read")
    def plan():
        caller = current_caller()  # sub, subject_issuer, actors in order, txn, scopes
        r = requests.post(TOOL_URL, json=..., auth=downstream_auth("tool", scope="orders:read"))
        ...

``require_token`` verifies the bearer or DPoP-bound token (RFC 6750 §2.1, RFC 9449 §7)
against the STS's keys and revocation feed (a bound token needs a proof of its key), checks
that it is addressed to this service and carries the scope, and keeps it out of the view's
reach. ``downstream_auth`` exchanges it, per call, for a token addressed
to the named next hop. Refusals are RFC 6750 §3 answers: 401 ``invalid_token`` with a
``WWW-Authenticate`` challenge, 403 ``insufficient_scope``, 503 when keys or the revocation
feed cannot be read.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ParamSpec, TypeVar, overload

import jwt
from flask import Flask, Response, after_this_request, current_app, g, request

from chain_sts_client import tracecontext
from chain_sts_client.credentials import ClientCredential, ClientSecret
from chain_sts_client.dpop import Presentation
from chain_sts_client.errors import (
    InvalidDpopProof,
    InvalidToken,
    StsClientError,
    TokenRejected,
    VerificationUnavailable,
)
from chain_sts_client.exchange import ExchangeClient
from chain_sts_client.http_auth import ExchangeAuth
from chain_sts_client.reports import DEFAULT_QUEUE, AccessReporter
from chain_sts_client.ssf import SsfReceiver
from chain_sts_client.verifier import MAX_TOKEN_BYTES, Caller, TokenVerifier

__all__ = ["ChainSts", "current_caller", "downstream_auth", "require_token"]

EXTENSION = "chain_sts"
log = logging.getLogger("chain_sts_client.flask")
P = ParamSpec("P")
R = TypeVar("R")


class MissingToken(InvalidToken):
    """No bearer token at all: a bare challenge, without an error code (RFC 6750 §3.1)."""

    description = "The request has no access token."

    def www_authenticate(self) -> str:
        return "Bearer"


class ChainSts:
    """The Flask extension: one service identity, its exchange client, its verifiers.

    Either pass ``issuer`` with ``client_id`` and ``client_secret`` (or ``credential``), or a
    ready ``client``. Tokens from the STS addressed to this service are accepted; pass
    ``extra_verifiers`` to also accept tokens of other issuers (a person's identity provider
    at the first hop). The verifier for the STS is built on first use, so the app may start
    before the STS does; its revocation feed is then polled in the background.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        issuer: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        credential: ClientCredential | None = None,
        client: ExchangeClient | None = None,
        audience: str | None = None,
        accept_sts_tokens: bool = True,
        extra_verifiers: Sequence[TokenVerifier] = (),
        follow_feed: bool = True,
        poll_interval: float = 5.0,
        max_staleness: float = 60.0,
        report_queue: int = DEFAULT_QUEUE,
        ssf: str | None = None,
        ssf_push_url: str | None = None,
        ssf_push_path: str = "/ssf/events",
    ) -> None:
        if client is None:
            if credential is None and client_id is not None and client_secret is not None:
                credential = ClientSecret(client_id, client_secret)
            if issuer is None or credential is None:
                raise ValueError("give a client, or an issuer and the service's credential")
            client = ExchangeClient(issuer, credential)
        self.client = client
        self.audience = audience or client.client_id
        self.accept_sts_tokens = accept_sts_tokens
        self.extra_verifiers = list(extra_verifiers)
        self.follow_feed = follow_feed
        self.poll_interval = poll_interval
        self.max_staleness = max_staleness
        self.report_queue = report_queue
        #: Revocations from an SSF stream (``"poll"``, or ``"push"`` to ``ssf_push_url``,
        #: served at ``ssf_push_path``) instead of the cursor feed.
        self.ssf = ssf
        self.ssf_push_url = ssf_push_url
        self.ssf_push_path = ssf_push_path
        if ssf not in (None, "poll", "push") or (ssf == "push" and not ssf_push_url):
            raise ValueError('ssf is "poll", or "push" with ssf_push_url')
        self._sts_verifier: TokenVerifier | None = None
        self._reporter: AccessReporter | None = None
        self._lock = threading.Lock()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self
        app.before_request(_bind_trace)
        app.teardown_request(_unbind_trace)
        if self.ssf == "push":
            app.add_url_rule(
                self.ssf_push_path, "chain_sts_ssf_push", self._ssf_push, methods=["POST", "HEAD"]
            )

    def _ssf_push(self) -> Response:
        """RFC 8935 §2: take one SET pushed by the STS (202), or say why not (400/401)."""
        if request.method == "HEAD":
            return Response(status=200)
        try:
            source = self.sts_verifier.feed
        except TokenRejected:
            return Response(status=503)
        if not isinstance(source, SsfReceiver):
            return Response(status=404)
        status, error = source.receive_push(
            request.get_data(cache=False),
            request.headers.get("Content-Type"),
            request.headers.get("Authorization"),
        )
        body = json.dumps(error) if error else ""
        return Response(body, status=status, mimetype="application/json")

    # -- verification ----------------------------------------------------------------------
    @property
    def sts_verifier(self) -> TokenVerifier:
        with self._lock:
            if self._sts_verifier is None:
                try:
                    verifier = TokenVerifier.for_sts(
                        self.client,
                        self.audience,
                        follow_feed=self.follow_feed,
                        poll_interval=self.poll_interval,
                        max_staleness=self.max_staleness,
                        ssf=self.ssf,
                        ssf_push_url=self.ssf_push_url,
                    )
                except StsClientError as exc:
                    # The STS is not reachable yet: refuse with 503 and try again next time.
                    raise VerificationUnavailable("STS metadata unavailable") from exc
                verifier.start()
                self._sts_verifier = verifier
            return self._sts_verifier

    def verifier_for(self, token: str) -> TokenVerifier:
        """The verifier of the issuer the token claims (the claim is checked by it)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("malformed token")
        try:
            iss = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed token") from None
        if self.accept_sts_tokens and iss == self.client.issuer:
            return self.sts_verifier
        for verifier in self.extra_verifiers:
            if verifier.issuer == iss:
                return verifier
        raise InvalidToken("token from an unknown issuer")

    def verify(
        self,
        token: str,
        scope: str | Iterable[str] | None = None,
        presentation: Presentation | None = None,
    ) -> Caller:
        caller = self.verifier_for(token).verify(token, scope, presentation)
        if caller.issuer == self.client.issuer:
            # Only the STS's own tokens can be reported on (DESIGN §10).
            caller = dataclasses.replace(caller, reporter=self.reporter)
        return caller

    @property
    def reporter(self) -> AccessReporter:
        """The background sender of this service's access reports (made on first use)."""
        with self._lock:
            if self._reporter is None:
                self._reporter = AccessReporter(self.client, max_queue=self.report_queue)
            return self._reporter

    def close(self) -> None:
        """Stop polling the revocation feed; send what is left of the access reports."""
        if self._sts_verifier is not None:
            self._sts_verifier.stop()
        if self._reporter is not None:
            self._reporter.close()

    # -- decorators and downstream auth ----------------------------------------------------
    def require_token(
        self, scope: str | Iterable[str] | None = None, *, report: bool = False
    ) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
        return _require(lambda: self, scope, report)

    def downstream(
        self,
        audience: str | None = None,
        *,
        scope: str | None = None,
        resource: str | None = None,
    ) -> ExchangeAuth:
        """A ``requests`` auth that exchanges the current request's incoming token for one
        addressed to ``audience`` (or ``resource``), at every call it is used for."""
        return ExchangeAuth(
            self.client, incoming_token, audience=audience, scope=scope, resource=resource
        )


def _bind_trace() -> None:
    """Calls made while answering this request continue its caller's trace (or one of its
    own): see :mod:`chain_sts_client.tracecontext`."""
    incoming = request.headers.get(tracecontext.HEADER)
    g._chain_sts_trace = tracecontext.bind(tracecontext.continue_trace(incoming))


def _unbind_trace(_exc: BaseException | None = None) -> None:
    token = g.pop("_chain_sts_trace", None)
    if token is not None:
        tracecontext.unbind(token)


def _extension() -> ChainSts:
    try:
        ext: ChainSts = current_app.extensions[EXTENSION]
    except KeyError:
        raise RuntimeError("ChainSts is not initialised on this application") from None
    return ext


def bearer_token() -> str:
    """RFC 6750 §2.1: the token of an ``Authorization: Bearer`` header, or of an
    ``Authorization: DPoP`` one (RFC 9449 §7.1); nowhere else."""
    return presented_token()[0]


def presented_token() -> tuple[str, Presentation]:
    """The token and how it was presented: its scheme, the request's one ``DPoP`` proof
    (RFC 9449 §4.3 item 1: more than one is refused), method and URL."""
    scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
    scheme = scheme.lower()
    if scheme not in {"bearer", "dpop"} or not value.strip():
        raise MissingToken("no bearer token")
    proofs = request.headers.getlist("DPoP")
    if len(proofs) > 1 or any("," in p for p in proofs):  # WSGI joins repeated headers
        raise InvalidDpopProof("several DPoP headers")
    proof = proofs[0] if proofs else None
    return value.strip(), Presentation(scheme, proof, request.method, request.base_url)


def _refusal(exc: TokenRejected) -> Response:
    response = Response(json.dumps(exc.body()), status=exc.status, mimetype="application/json")
    if exc.status == 503:
        response.headers["Retry-After"] = "5"
    else:
        response.headers["WWW-Authenticate"] = exc.www_authenticate()
    response.headers["Cache-Control"] = "no-store"
    return response


def _report_route(caller: Caller) -> None:
    """After the view: report the route (resource) and the HTTP method (action), with the
    answer's outcome, under the caller's token."""
    resource = request.url_rule.rule if request.url_rule is not None else request.path
    action = request.method

    @after_this_request
    def report(response: Response) -> Response:
        outcome = "success" if response.status_code < 400 else f"http_{response.status_code}"
        caller.report(resource=resource, action=action, outcome=outcome)
        return response


def _require(
    extension: Callable[[], ChainSts], scope: str | Iterable[str] | None, report: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R | Response]]:
    def decorator(view: Callable[P, R]) -> Callable[P, R | Response]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
            try:
                token, presentation = presented_token()
                caller = extension().verify(token, scope, presentation)
            except TokenRejected as exc:
                log.info(
                    "token refused",
                    extra={
                        "event": "token.refused",
                        "error": exc.error,
                        "reason": exc.reason,
                        "path": request.path,
                    },
                )
                return _refusal(exc)
            g._chain_sts_token = token
            g.chain_sts_caller = caller
            if report and caller.reporter is not None:
                _report_route(caller)
            return view(*args, **kwargs)

        return wrapper

    return decorator


@overload
def require_token(
    scope: Callable[P, R],
) -> Callable[P, R | Response]: ...


@overload
def require_token(
    scope: str | Iterable[str] | None = None,
    *,
    report: bool = False,
) -> Callable[[Callable[P, R]], Callable[P, R | Response]]: ...


def require_token(scope: Any = None, *, report: bool = False) -> Any:
    """Protect a view: ``@require_token`` or ``@require_token(scope="orders:read")``, with the
    :class:`ChainSts` of the current application. With ``report=True`` each call is reported
    to the STS as an access (resource: the route, action: the HTTP method), in the
    background."""
    if callable(scope):
        return _require(_extension, None)(scope)
    return _require(_extension, scope, report)


def current_caller() -> Caller:
    """The verified caller of the current request (inside a ``@require_token`` view)."""
    caller: Caller | None = g.get("chain_sts_caller")
    if caller is None:
        raise RuntimeError("current_caller() outside a view protected by @require_token")
    return caller


def incoming_token() -> str:
    """The verified incoming token, for exchanging it (the SDK does this; views need not)."""
    token: str | None = g.get("_chain_sts_token")
    if token is None:
        raise RuntimeError("no verified incoming token: use inside a @require_token view")
    return token


def downstream_auth(
    audience: str | None = None, *, scope: str | None = None, resource: str | None = None
) -> ExchangeAuth:
    """``requests`` auth for a call to the next hop, from the current application's
    :class:`ChainSts` (see :meth:`ChainSts.downstream`)."""
    return _extension().downstream(audience, scope=scope, resource=resource)
