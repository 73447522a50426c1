"""W3C Trace Context (``traceparent``) on every call the SDK makes: to the STS for an
exchange, and to the next hop with the exchanged token. A trace in the tracing backend and
a chain in the STS then join on one trace id.

Where OpenTelemetry is present in the service (``pip install chain-sts-client[otel]``) and a
span is current, its context is propagated. Otherwise the Flask integration continues the
incoming request's trace (a ``traceparent`` it received) or starts one per request, and a
call outside any request starts a trace of its own.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar, Token

try:  # the optional extra
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    _otel_trace = None  # type: ignore[assignment]

HEADER = "traceparent"
_FORMAT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_current: ContextVar[str | None] = ContextVar("chain_sts_traceparent", default=None)


def new_traceparent(trace_id: str | None = None, flags: str = "01") -> str:
    """A ``traceparent`` with a fresh parent id, in ``trace_id`` or a new trace."""
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-{flags}"


def continue_trace(incoming: str | None) -> str:
    """The ``traceparent`` for the calls made while answering a request that carried
    ``incoming``: the same trace with a parent id of its own, or a new trace when
    ``incoming`` is missing or malformed (W3C Trace Context §3.2)."""
    found = _FORMAT.match((incoming or "").strip().lower())
    if found is None or found.group(1) == "0" * 32 or found.group(2) == "0" * 16:
        return new_traceparent()
    return new_traceparent(found.group(1), found.group(3))


def bind(traceparent: str) -> Token[str | None]:
    """Make ``traceparent`` current (for this thread or task) until :func:`unbind`."""
    return _current.set(traceparent)


def unbind(token: Token[str | None]) -> None:
    _current.reset(token)


def current_traceparent() -> str:
    """What to send now: the current OpenTelemetry span's context, else the one bound for
    this request, else a new trace."""
    if _otel_trace is not None:
        context = _otel_trace.get_current_span().get_span_context()
        if context.is_valid:
            return (
                f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
            )
    return _current.get() or new_traceparent()
