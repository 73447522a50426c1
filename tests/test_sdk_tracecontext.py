"""The SDK sends W3C ``traceparent`` on every call: to the STS when it exchanges, and to the
next hop; from the current OpenTelemetry span when there is one, else continuing the incoming
request's trace, else a trace of its own."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from chain_sts_client import ClientSecret, ExchangeClient, HttpResponse, tracecontext
from chain_sts_client.discovery import ServerMetadata
from chain_sts_client.flask import ChainSts
from chain_sts_client.http_auth import ExchangeAuth
from flask import Flask
from opentelemetry.sdk.trace import TracerProvider

FORMAT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ISSUER = "https://sts.example.test"


class Recorder:
    """A transport answering every token request, recording the headers it was sent."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    def __call__(self, method: str, url: str, *, headers: Any, body: Any) -> HttpResponse:
        self.headers.append(dict(headers))
        return HttpResponse(200, {"Content-Type": "application/json"}, (
            b'{"access_token": "a.b.c", "token_type": "Bearer", "expires_in": 300,'
            b' "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",'
            b' "scope": "read"}'))  # fmt: skip


def client(recorder: Recorder) -> ExchangeClient:
    metadata = ServerMetadata.from_document(
        {"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token", "jwks_uri": f"{ISSUER}/jwks",
         "grant_types_supported": ["urn:ietf:params:oauth:grant-type:token-exchange"]},
        ISSUER,
    )  # fmt: skip
    return ExchangeClient(ISSUER, ClientSecret("web", "s"), metadata=metadata, transport=recorder)


@pytest.mark.parametrize(
    ("incoming", "same_trace"),
    [
        (INCOMING, True),
        (INCOMING.upper(), True),
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", False),
        ("01-garbage", False),
        (None, False),
    ],
)
def test_continue_trace_when_incoming_then_same_trace_new_parent_or_a_new_trace(
    incoming: str | None, same_trace: bool
) -> None:
    out = tracecontext.continue_trace(incoming)
    assert FORMAT.fullmatch(out)
    assert (out.split("-")[1] == INCOMING.split("-")[1]) is same_trace
    assert out.split("-")[2] != INCOMING.split("-")[2]


def test_traceparent_when_no_span_and_nothing_bound_then_a_new_trace_per_call() -> None:
    first, second = tracecontext.current_traceparent(), tracecontext.current_traceparent()
    assert FORMAT.fullmatch(first) and FORMAT.fullmatch(second) and first != second


def test_traceparent_when_an_opentelemetry_span_is_current_then_its_context() -> None:
    tracer = TracerProvider().get_tracer("service")
    with tracer.start_as_current_span("handle") as span:
        context = span.get_span_context()
        flags = int(context.trace_flags)
        expected = f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
        assert tracecontext.current_traceparent() == expected
        recorder = Recorder()
        client(recorder).exchange("subject", audience="tool")
    assert recorder.headers[0]["traceparent"] == expected


def test_flask_when_a_request_carries_traceparent_then_the_sts_and_next_hop_continue_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = Recorder()
    app = Flask("svc")
    ChainSts(app, client=client(recorder), follow_feed=False)
    sent: list[requests.PreparedRequest] = []

    @app.get("/")
    def view() -> str:
        request = requests.Request("GET", "https://tool.example.test/x").prepare()
        sent.append(ExchangeAuth(client(recorder), "subject", audience="tool")(request))
        return "ok"

    assert app.test_client().get("/", headers={"traceparent": INCOMING}).status_code == 200
    to_sts = recorder.headers[0]["traceparent"]
    to_next_hop = sent[0].headers["traceparent"]
    assert to_sts == to_next_hop and to_sts.split("-")[1] == INCOMING.split("-")[1]
    app.test_client().get("/")  # no traceparent: a trace of its own, per request
    assert recorder.headers[1]["traceparent"].split("-")[1] != INCOMING.split("-")[1]
    # Outside any request nothing stays bound.
    assert tracecontext.current_traceparent().split("-")[1] != INCOMING.split("-")[1]
