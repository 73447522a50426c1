"""HTTP for the SDK core, on the standard library only.

Everything the SDK says to the STS goes through one callable, :class:`Transport`, so a test can
route it to an in-process application and a deployment can swap in its own client. The
default, :class:`UrllibTransport`, never follows redirects (a redirected token request would
carry client credentials somewhere else), caps response size and turns every network failure
into :class:`~chain_sts_client.errors.StsUnavailable`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from chain_sts_client.errors import StsUnavailable, oauth_error

MAX_RESPONSE_BYTES = 1 << 20
DEFAULT_TIMEOUT = 5.0
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise StsUnavailable(f"HTTP {self.status}: the answer is not JSON") from None


class Transport(Protocol):
    def __call__(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def check_url(url: str) -> str:
    """Only absolute http(s) URLs: never ``file:`` or other schemes urllib would open."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    return url


class UrllibTransport:
    """``follow_redirects`` only for requests that carry no credential, such as a JWKS."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, *, follow_redirects: bool = False) -> None:
        self.timeout = timeout
        handlers = [] if follow_redirects else [_NoRedirect()]
        self._opener = urllib.request.build_opener(*handlers)

    def __call__(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse:
        request = urllib.request.Request(  # noqa: S310 - scheme checked by check_url
            check_url(url), data=body, headers=dict(headers), method=method
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return HttpResponse(answer.status, dict(answer.headers.items()), _read(answer, url))
        except urllib.error.HTTPError as exc:
            with exc:
                return HttpResponse(exc.code, dict(exc.headers.items()), _read(exc, url))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise StsUnavailable(f"{method} {_where(url)} failed: {reason}") from None


def _read(answer: Any, url: str) -> bytes:
    data: bytes = answer.read(MAX_RESPONSE_BYTES + 1)
    if len(data) > MAX_RESPONSE_BYTES:
        raise StsUnavailable(f"answer from {_where(url)} too large")
    return data


def _where(url: str) -> str:
    """A URL for messages: scheme, host and path, never a query string."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def get_json(transport: Transport, url: str, headers: Mapping[str, str] | None = None) -> Any:
    """GET a JSON document; a non-200 answer is :class:`StsUnavailable`, or the OAuth error
    it carries."""
    response = transport(
        "GET", url, headers={"Accept": "application/json", **(headers or {})}, body=None
    )
    return _json_or_raise(response, url)


def post_form(
    transport: Transport,
    url: str,
    form: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
) -> Any:
    """POST ``application/x-www-form-urlencoded`` (RFC 6749 §3.2) and return the JSON answer;
    an OAuth error answer raises its typed exception."""
    response = transport(
        "POST",
        url,
        headers={"Content-Type": FORM, "Accept": "application/json", **(headers or {})},
        body=urlencode(form).encode("ascii"),
    )
    return _json_or_raise(response, url)


def _json_or_raise(response: HttpResponse, url: str) -> Any:
    if response.status == 200:
        data = response.json()
        if not isinstance(data, dict):
            raise StsUnavailable(f"{_where(url)}: the answer is not a JSON object")
        return data
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        raise oauth_error(
            response.status, body, response.header("Retry-After"), response.header("DPoP-Nonce")
        )
    raise StsUnavailable(f"{_where(url)} answered HTTP {response.status}")
