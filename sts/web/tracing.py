"""OpenTelemetry traces of the token endpoint (DESIGN §13), an optional extra:
``pip install chain-sts[otel]``.

Off unless an exporter is configured with the standard variables (``OTEL_TRACES_EXPORTER``
other than ``none``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
or the process has already installed an SDK tracer provider of its own; without the extra
installed, nothing is imported and nothing is traced.

Each request at the token endpoint is one span, a child of the caller's W3C ``traceparent``
when it sends one (the SDK does), so a trace in the tracing backend and a chain in the STS join:
the span carries the chain's ``sts.txn``, the ``sts.actor`` (the client that exchanged), the
``sts.target`` (the minted token's audience), the grant and the ``sts.outcome`` (``issued`` or
the OAuth error code). Never a token: the claims are read from the minted token's payload and
only these names are kept.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from typing import Any

log = logging.getLogger("sts.tracing")

try:  # the optional extra
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    trace = None  # type: ignore[assignment]

TRACEPARENT_HEADERS = {"traceparent": "HTTP_TRACEPARENT", "tracestate": "HTTP_TRACESTATE"}


def exporter_configured(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(
        exporter
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _install_provider() -> None:
    """A tracer provider exporting where the ``OTEL_*`` variables say (OTLP over HTTP, or
    the console for ``OTEL_TRACES_EXPORTER=console``); the service name defaults to
    ``chain-sts`` (``OTEL_SERVICE_NAME`` overrides it)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SpanExporter,
    )

    exporter: SpanExporter
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "chain-sts")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _sdk_provider_installed() -> bool:
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return False
    return isinstance(trace.get_tracer_provider(), TracerProvider)


class ExchangeTracer:
    """Starts and ends the span of one token request."""

    def __init__(self, provider: Any = None) -> None:
        self._tracer = trace.get_tracer("chain-sts", tracer_provider=provider)
        self._propagator = TraceContextTextMapPropagator()

    def start(self, endpoint: str, environ: dict[str, Any]) -> Any:
        carrier = {k: environ[v] for k, v in TRACEPARENT_HEADERS.items() if v in environ}
        parent = self._propagator.extract(carrier)
        return self._tracer.start_span(
            f"sts {endpoint}", context=parent, kind=trace.SpanKind.SERVER
        )

    def end(self, span: Any, grant: str, status: int, body: dict[str, Any], rid: str) -> None:
        span.set_attribute("sts.grant", grant)
        span.set_attribute("sts.request_id", rid)
        span.set_attribute("http.response.status_code", status)
        if status == 200 and isinstance(body.get("access_token"), str):
            claims = _payload(body["access_token"])
            for attribute, claim in (("sts.txn", "txn"), ("sts.actor", "client_id")):
                if isinstance(claims.get(claim), str):
                    span.set_attribute(attribute, claims[claim])
            if isinstance(claims.get("aud"), str):
                span.set_attribute("sts.target", claims["aud"])
            span.set_attribute("sts.outcome", "issued")
        else:
            error = str(body.get("error", "error"))
            span.set_attribute("sts.outcome", error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        span.end()


def _payload(token: str) -> dict[str, Any]:
    """The claims of a token this STS has just minted (its signature is ours)."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def exchange_tracer() -> ExchangeTracer | None:
    """The tracer of this process, or ``None`` when tracing is off (the default)."""
    if trace is None:
        if exporter_configured():
            log.warning(
                "OTEL_* exporter configured but OpenTelemetry is not installed "
                "(pip install chain-sts[otel]): no traces",
                extra={"event": "tracing.unavailable"},
            )
        return None
    if exporter_configured() and not _sdk_provider_installed():
        try:
            _install_provider()
        except ImportError:
            log.warning(
                "OTEL_* exporter configured but the OpenTelemetry SDK or exporter is not "
                "installed (pip install chain-sts[otel]): no traces",
                extra={"event": "tracing.unavailable"},
            )
            return None
    if not _sdk_provider_installed():
        return None
    return ExchangeTracer()
