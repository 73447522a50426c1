"""The token endpoint request, independent of any web framework (RFC 6749 §3.2)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from authlib.oauth2.rfc6749 import OAuth2Payload, OAuth2Request

from sts.core.errors import InvalidRequest

#: RFC 8693 §2.1 allows these to repeat; every other parameter is single-valued (RFC 6749 §3.2).
MULTI_VALUED = frozenset({"audience", "resource"})
#: Longest value of a known parameter that is not a token (a resource URI, RFC 8707, at most).
MAX_PARAMETER_LENGTH = 2048
#: Known parameters of every endpoint except those carrying a token or an assertion, which are
#: bounded by ``STS_MAX_TOKEN_BYTES`` where they are read. Unknown ones are ignored (§3.2).
SHORT_PARAMETERS: frozenset[str] = frozenset(
    {
        "grant_type",
        "scope",
        "audience",
        "resource",
        "subject_token_type",
        "actor_token_type",
        "requested_token_type",
        "client_id",
        "client_secret",
        "client_assertion_type",
        "token_type_hint",
    }
)
#: Every parameter any endpoint defines.
KNOWN_PARAMETERS = SHORT_PARAMETERS | {
    "subject_token",
    "actor_token",
    "client_assertion",
    "token",
}


class FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)
        self._data = {k: v[0] for k, v in self._datalist.items()}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


def check_parameter_lengths(pairs: Iterable[tuple[str, str]]) -> None:
    """Refuse an oversized parameter before anything is looked up, hashed or verified."""
    for name, value in pairs:
        if name in SHORT_PARAMETERS and len(value) > MAX_PARAMETER_LENGTH:
            raise InvalidRequest(f"parameter {name} too large", "Parameter too large.")


class OAuthRequest(OAuth2Request):  # type: ignore[misc]
    """A form-POST request to one of the STS endpoints (RFC 6749 §3.2): method, URI, headers
    and form parameters, with the time and the request id it is judged under. It carries
    nothing else: the store, the parsed tokens and the audit facts are values the pipeline
    passes along, never attributes written onto the request.
    """

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str] | Any,
        form: Iterable[tuple[str, str]],
        now: int,
        request_id: str = "",
        source: str = "",
    ) -> None:
        # Authlib's constructor insists on https; transport security is the deployment's
        # business (TLS terminates in front of the STS), so set the same fields directly.
        self.method = method
        self.uri = uri
        self.headers = headers
        self._body = None
        self.payload = FormPayload(form)
        self.client = None
        self.auth_method: str | None = None
        self.user = None
        self.authorization_code = None
        self.refresh_token = None
        self.credential = None
        self._scope = None
        self.now = now
        self.request_id = request_id
        #: The address the request came from (brute-force throttling counts per source).
        self.source = source

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data

    @property
    def args(self) -> dict[str, str]:
        return {}

    def param(self, name: str) -> str | None:
        return self.payload.data.get(name)

    def params(self, name: str) -> list[str]:
        return list(self.payload.datalist.get(name, []))

    def reject_repeated_parameters(self) -> None:
        """RFC 6749 §3.2: request parameters MUST NOT be included more than once."""
        for name, values in self.payload.datalist.items():
            if len(values) > 1 and name not in MULTI_VALUED:
                # Only a name we define is echoed into the reason: a client may have put a
                # credential where a parameter name belongs.
                shown = name if name in KNOWN_PARAMETERS else "(unknown)"
                raise InvalidRequest(f"parameter {shown!r} repeated", "Repeated parameter.")
