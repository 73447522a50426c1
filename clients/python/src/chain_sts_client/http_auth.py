"""A ``requests`` authentication that exchanges, per downstream call, for that call's target.

``requests.post(url, auth=ExchangeAuth(client, incoming, audience="tool"))`` sends a token
addressed to ``tool`` only, obtained from the STS by exchanging ``incoming`` (cached until
shortly before it expires). The incoming token itself never leaves the service. If the next
hop answers 401 ``invalid_token`` (say, the cached token was revoked), the cached token is
dropped and the call is sent once more with a freshly exchanged one. A DPoP-bound token
(RFC 9449) goes as ``Authorization: DPoP`` with a fresh proof of the client's key for this
method and URL, carrying the token's hash (``ath``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from requests.auth import AuthBase

from chain_sts_client import tracecontext
from chain_sts_client.exchange import ExchangeClient, IssuedToken

TokenSource = Callable[[], str]


class ExchangeAuth(AuthBase):
    def __init__(
        self,
        client: ExchangeClient,
        subject_token: str | TokenSource,
        *,
        audience: str | None = None,
        scope: str | None = None,
        resource: str | None = None,
        retry_on_invalid_token: bool = True,
    ) -> None:
        if audience is None and resource is None:
            raise ValueError("name the downstream target: audience or resource")
        self.client = client
        self._subject: TokenSource = (
            subject_token if callable(subject_token) else (lambda: subject_token)
        )
        self.audience = audience
        self.scope = scope
        self.resource = resource
        self.retry_on_invalid_token = retry_on_invalid_token

    def _token(self, subject: str, use_cache: bool = True) -> IssuedToken:
        return self.client.exchange(
            subject,
            audience=self.audience,
            scope=self.scope,
            resource=self.resource,
            use_cache=use_cache,
        )

    def _authorize(self, r: requests.PreparedRequest, issued: IssuedToken) -> None:
        key = self.client.dpop_key
        if issued.bound and key is not None:
            r.headers["Authorization"] = "DPoP " + issued.access_token
            r.headers["DPoP"] = key.proof(
                r.method or "GET", r.url or "", access_token=issued.access_token
            )
        else:
            r.headers["Authorization"] = "Bearer " + issued.access_token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        subject = self._subject()
        self._authorize(r, self._token(subject))
        # The next hop joins this trace (W3C Trace Context), unless the caller set one.
        r.headers.setdefault(tracecontext.HEADER, tracecontext.current_traceparent())
        if self.retry_on_invalid_token:
            r.hooks["response"].append(self._retry_hook(subject))
        return r

    def _retry_hook(self, subject: str) -> Callable[..., requests.Response]:
        def retry(response: requests.Response, **kwargs: Any) -> requests.Response:
            challenge = response.headers.get("WWW-Authenticate", "")
            body = response.request.body
            if (
                response.status_code != 401
                or 'error="invalid_token"' not in challenge
                or not (body is None or isinstance(body, bytes | str))
            ):
                return response
            self.client.forget(
                subject, audience=self.audience, scope=self.scope, resource=self.resource
            )
            response.content  # noqa: B018 - read it so the connection can be reused
            response.close()
            again = response.request.copy()
            self._authorize(again, self._token(subject, use_cache=False))
            # The copy still holds this hook: take it out so that we retry once only.
            again.hooks["response"] = [h for h in again.hooks["response"] if h is not retry]
            connection: requests.adapters.BaseAdapter = response.connection
            resent: requests.Response = connection.send(again, **kwargs)
            resent.history.append(response)
            resent.request = again
            return resent

        return retry
