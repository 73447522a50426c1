"""OpenTelemetry (DESIGN §13): one span per token request, a child of the caller's W3C
``traceparent``, carrying the chain's ``txn``, actor, target and outcome, never a token; off
unless an exporter is configured."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sts.services import rules
from sts.store.admin import admin_store
from sts.web import tracing
from sts.web.forms import FormEndpoints
from tests.exchange_fixtures import EXCHANGE, client_credentials
from tests.helpers import FORM, basic, claims_of

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans(app: Any) -> InMemorySpanExporter:
    """The token endpoint of ``app`` traced into memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    forms = app.wsgi_app
    assert isinstance(forms, FormEndpoints)
    forms.tracer = tracing.ExchangeTracer(provider)
    return exporter


def test_span_when_exchange_then_txn_actor_target_outcome_and_the_callers_trace(
    client: Any, make_nhi: Any, runtime: Any, clock: Any, spans: InMemorySpanExporter
) -> None:
    web = make_nhi("web", scope="read")
    make_nhi("tool")
    with admin_store(runtime.engine) as store:
        rules.create_rule(store, actor="web", targets=["tool"], scope="read", now=clock.now(),
                          admin="test")  # fmt: skip
    own = client_credentials(client, web, scope="read").get_json()["access_token"]
    resp = client.post(
        "/token",
        data={"grant_type": EXCHANGE, "subject_token": own, "audience": "tool",
              "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"},
        headers={**basic(web.client_id, web.secret), "traceparent": TRACEPARENT},
        content_type=FORM,
    )  # fmt: skip
    assert resp.status_code == 200, resp.get_json()
    minted = claims_of(resp.get_json()["access_token"])
    denied = client.post(
        "/token",
        data={"grant_type": EXCHANGE, "subject_token": own, "audience": "nowhere",
              "subject_token_type": "urn:ietf:params:oauth:token-type:access_token"},
        headers=basic(web.client_id, web.secret),
        content_type=FORM,
    )  # fmt: skip
    assert denied.status_code == 400

    first, exchanged, refused = spans.get_finished_spans()
    assert first.attributes["sts.grant"] == "client_credentials"
    assert exchanged.name == "sts token"
    assert {k: exchanged.attributes[k] for k in (
        "sts.txn", "sts.actor", "sts.target", "sts.outcome", "sts.grant",
        "http.response.status_code")} == {
        "sts.txn": minted["txn"], "sts.actor": "web", "sts.target": "tool",
        "sts.outcome": "issued", "sts.grant": "token_exchange",
        "http.response.status_code": 200}  # fmt: skip
    assert format(exchanged.context.trace_id, "032x") == TRACE_ID
    assert format(exchanged.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert refused.attributes["sts.outcome"] == "invalid_target"
    assert refused.status.status_code.name == "ERROR"
    assert format(refused.context.trace_id, "032x") != TRACE_ID  # no traceparent: a new trace
    for span in (first, exchanged, refused):
        assert not any("eyJ" in str(v) for v in span.attributes.values())


@pytest.mark.parametrize(
    ("environ", "configured"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
    ],
)
def test_tracing_when_environment_then_on_only_with_an_exporter(
    environ: dict[str, str], configured: bool
) -> None:
    assert tracing.exporter_configured(environ) is configured


def test_tracing_when_nothing_configured_then_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    assert tracing.exchange_tracer() is None
