"""Access reports: what the audience of a token did under it (DESIGN §10, the fourth
question of §8).

``POST /access-reports`` takes one report, ``{"jti", "resource", "action", "data_classes",
"records", "bytes", "destination", "outcome", "at"}`` (only ``jti``, ``resource`` and
``action`` required), or a batch ``{"reports": [...]}`` of up to :data:`MAX_BATCH`, as JSON.
The client authenticates exactly as at the token endpoint (RFC 6749 §2.3): HTTP Basic, or the
``client_id``/``client_secret`` or ``client_assertion``/``client_assertion_type`` members
beside the report(s). A report is accepted only

* for a token this STS issued (its lineage row exists),
* from that token's audience (the authenticated client is the lineage row's target), and
* before the token's ``exp`` plus ``STS_ACCESS_REPORT_GRACE``, about an access (``at``) within
  the token's lifetime (with the verifier leeway).

Anything else is refused with the OAuth error shape of DESIGN §6 plus a stable ``code``, and
nothing of the request is stored: a batch is all or nothing. Unknown and foreign tokens get the
same answer (``unknown_token``), so the lineage cannot be probed.

Like every endpoint here it is framework-free: :func:`parse` reads the body before any work is
done; :func:`accept` runs in the transaction the caller owns and returns
``(status, body, headers)``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sts.core.errors import StsError
from sts.core.ports import AccessReport
from sts.core.response import JSON_NO_STORE, Response
from sts.oauth.audit_facts import AuditFacts, Denied
from sts.oauth.rfc6749.request import check_parameter_lengths

if TYPE_CHECKING:
    from sts.core.ports import ReportedToken, ReportingStore
    from sts.oauth.rfc6749.request import OAuthRequest
    from sts.oauth.server import ChainAuthorizationServer

JSON_TYPE = "application/json"
#: Reports in one batch, at most.
MAX_BATCH = 100
#: Data classes in one report, at most.
MAX_DATA_CLASSES = 32
MAX_COUNT = 2**53 - 1
#: The client authentication members a body may carry beside the report(s) (RFC 6749 §2.3).
AUTH_MEMBERS = ("client_id", "client_secret", "client_assertion", "client_assertion_type")
REPORT_MEMBERS = (
    "jti",
    "resource",
    "action",
    "data_classes",
    "records",
    "bytes",
    "destination",
    "outcome",
    "at",
)
REQUIRED = ("jti", "resource", "action")
#: Printable text: no control characters, no lone surrogates.
_PRINTABLE = re.compile(r"[^\u0000-\u001f\u007f\ud800-\udfff]*")
_JTI = re.compile(r"[A-Za-z0-9._~-]{1,64}")
#: The audit event of a refused report.
DENIED = "access_report.denied"


class ReportRefused(StsError):
    """A refused access report: ``invalid_request`` (DESIGN §6) with a stable ``code`` for
    the sender to branch on and, for input at fault, the ``fields`` that are (their names
    only, never their values)."""

    error = "invalid_request"
    codes: ClassVar[dict[str, tuple[int, str]]] = {
        "unsupported_media_type": (415, "The body must be application/json."),
        "body_too_large": (413, "Request too large."),
        "malformed_json": (400, "The body is not valid JSON."),
        "invalid_report": (400, "A report is malformed."),
        "batch_too_large": (400, "A batch holds at most 100 reports."),
        "unknown_token": (400, "The token is unknown or not addressed to this client."),
        "token_expired": (400, "The token's lifetime and grace period have passed."),
        "at_outside_lifetime": (400, "The access time is outside the token's lifetime."),
    }

    def __init__(self, code: str, reason: str, fields: list[dict[str, str]] | None = None) -> None:
        status, description = self.codes[code]
        super().__init__(reason, description, status_code=status)
        self.code = code
        self.fields = fields

    def get_body(self) -> list[tuple[str, Any]]:
        body: list[tuple[str, Any]] = [*super().get_body(), ("code", self.code)]
        if self.fields is not None:
            body.append(("fields", self.fields))
        return body


@dataclass(frozen=True)
class ReportInput:
    """One report as the service sent it, checked for shape only."""

    jti: str
    resource: str
    action: str
    data_classes: tuple[str, ...] = ()
    records: int | None = None
    bytes: int | None = None
    destination: str | None = None
    outcome: str | None = None
    at: int | None = None


@dataclass(frozen=True)
class ReportBatch:
    """A parsed body: the client authentication members (as form pairs) and the reports."""

    auth: list[tuple[str, str]]
    reports: tuple[ReportInput, ...]


def too_large() -> ReportRefused:
    return ReportRefused("body_too_large", "access report body too large")


def parse(raw: bytes, mimetype: str) -> ReportBatch:
    """The body as JSON (only ``application/json``), checked for shape before anything is
    looked up: one report or a batch, every member of the right type and size."""
    if mimetype.lower() != JSON_TYPE:
        raise ReportRefused("unsupported_media_type", "access report body is not JSON")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ReportRefused("malformed_json", "access report body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _invalid([{"field": "(body)", "message": "must be a JSON object"}])
    auth, fields = _auth_pairs(data)
    rest = {k: v for k, v in data.items() if k not in AUTH_MEMBERS}
    if "reports" in rest:
        items = rest.pop("reports")
        fields += [{"field": k[:64], "message": "not allowed beside reports"} for k in sorted(rest)]
        if not isinstance(items, list) or not items:
            raise _invalid([*fields, {"field": "reports", "message": "must be a non-empty array"}])
        if len(items) > MAX_BATCH:
            raise ReportRefused("batch_too_large", f"batch of {len(items)} reports")
        named = [(f"reports[{i}]", item) for i, item in enumerate(items)]
    else:
        named = [("", rest)]
    reports = []
    for prefix, item in named:
        report, problems = _report(prefix, item)
        fields += problems
        if report is not None:
            reports.append(report)
    if fields:
        raise _invalid(fields)
    check_parameter_lengths(auth)
    return ReportBatch(auth, tuple(reports))


def _no_constant(name: str) -> None:
    raise ValueError(name)


#: Messages whose field is a member name the sender chose: echoed to the sender, never logged.
_FOREIGN = frozenset({"unknown member", "not allowed beside reports"})


def _invalid(fields: list[dict[str, str]]) -> ReportRefused:
    """The refusal; its reason (logs, audit) names only members this endpoint defines."""
    named = [f"{f['field']} {f['message']}" for f in fields if f["message"] not in _FOREIGN]
    foreign = len(fields) - len(named)
    if foreign:
        named.append(f"{foreign} member(s) not defined here")
    reason = "malformed report: " + ", ".join(named[:5])
    return ReportRefused("invalid_report", reason[:300], fields[:20])


def _auth_pairs(data: dict[str, Any]) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    pairs, fields = [], []
    for name in AUTH_MEMBERS:
        if name in data:
            value = data[name]
            if isinstance(value, str):
                pairs.append((name, value))
            else:
                fields.append({"field": name, "message": "must be a string"})
    return pairs, fields


def _report(prefix: str, item: Any) -> tuple[ReportInput | None, list[dict[str, str]]]:
    def at(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    if not isinstance(item, dict):
        return None, [{"field": prefix, "message": "must be an object"}]
    fields = [
        {"field": at("(member)" if len(k) > 64 else k), "message": "unknown member"}
        for k in sorted(item)
        if k not in REPORT_MEMBERS
    ]
    fields += [{"field": at(k), "message": "is required"} for k in REQUIRED if k not in item]
    values: dict[str, Any] = {}
    for name, check in _CHECKS.items():
        if name in item and item[name] is not None:
            value, message = check(item[name])
            if message:
                fields.append({"field": at(name), "message": message})
            else:
                values[name] = value
    if fields:
        return None, fields
    return ReportInput(**values), []


def _text(max_length: int) -> Any:
    def check(value: Any) -> tuple[Any, str]:
        if not isinstance(value, str) or not 0 < len(value) <= max_length:
            return None, f"must be a string of 1 to {max_length} characters"
        if not _PRINTABLE.fullmatch(value):
            return None, "must not hold control characters"
        return value, ""

    return check


def _jti(value: Any) -> tuple[Any, str]:
    if not isinstance(value, str) or not _JTI.fullmatch(value):
        return None, "must be a token's jti"
    return value, ""


def _count(value: Any) -> tuple[Any, str]:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        return None, "must be a non-negative integer"
    return value, ""


def _data_classes(value: Any) -> tuple[Any, str]:
    text = _text(64)
    if not isinstance(value, list) or len(value) > MAX_DATA_CLASSES:
        return None, f"must be an array of at most {MAX_DATA_CLASSES} strings"
    if any(text(v)[1] for v in value):
        return None, "must hold strings of 1 to 64 printable characters"
    return tuple(dict.fromkeys(value)), ""


_CHECKS = {
    "jti": _jti,
    "resource": _text(2048),
    "action": _text(64),
    "data_classes": _data_classes,
    "records": _count,
    "bytes": _count,
    "destination": _text(2048),
    "outcome": _text(64),
    "at": _count,
}


def accept(
    server: ChainAuthorizationServer,
    batch: ReportBatch,
    request: OAuthRequest,
    store: ReportingStore,
) -> Response:
    """Authenticate the client, check every report against its token's lineage, store them
    all, or none (DESIGN §10). 201 ``{"stored": n}``."""
    try:
        auth = server.authenticate(request, store)
    except (Denied, StsError) as exc:
        return server.refuse(store, request, exc, DENIED)
    caller = auth.client.client_id
    facts = AuditFacts(client_id=caller, credential_id=auth.credential_id)
    stored = []
    tokens = store.reported_tokens([r.jti for r in batch.reports])
    for report in batch.reports:
        token = tokens.get(report.jti)
        try:
            stored.append(_checked(server, report, token, caller, request))
        except ReportRefused as err:
            if token is not None and token.target == caller:
                facts = facts.but(txn=token.txn, subject=token.subject, chain=token.chain)
            return server.refuse(store, request, Denied(err, facts), DENIED)
    store.record_access_reports(stored)
    return 201, {"stored": len(stored)}, JSON_NO_STORE


def _checked(
    server: ChainAuthorizationServer,
    report: ReportInput,
    token: ReportedToken | None,
    caller: str,
    request: OAuthRequest,
) -> AccessReport:
    if token is None:
        raise ReportRefused("unknown_token", "report on a token this STS did not issue")
    if token.target != caller:
        raise ReportRefused("unknown_token", f"report on a token addressed to {token.target}")
    now, settings = request.now, server.settings
    if now > token.expires_at + settings.access_report_grace:
        raise ReportRefused("token_expired", "report after the token's exp plus grace")
    # Without ``at`` the access is taken to be now: the report arrives while it may.
    at = now if report.at is None else report.at
    leeway = settings.verifier_leeway
    latest = min(token.expires_at + leeway, now + leeway)
    if report.at is not None and not token.issued_at - leeway <= at <= latest:
        raise ReportRefused("at_outside_lifetime", "report of an access outside the lifetime")
    return AccessReport(
        jti=token.jti,
        txn=token.txn,
        reported_by=caller,
        subject=token.subject,
        subject_issuer=token.subject_issuer,
        chain=token.chain,
        resource=report.resource,
        action=report.action,
        data_classes=report.data_classes,
        records=report.records,
        bytes=report.bytes,
        destination=report.destination,
        outcome=report.outcome,
        at=at,
        received_at=now,
        request_id=request.request_id,
    )
