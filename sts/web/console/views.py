"""The console's pages: sign-in, recent transactions, a transaction drawn, an NHI's live
tokens, and containment after a blast-radius preview (DESIGN §7, §8).

Every page runs in one database transaction with the signed-in administrator, like an admin
API request (:mod:`sts.admin_api.views.routing`); reads are audited as ``admin.read`` and
revocations by :func:`sts.services.revocation.revoke`, naming the administrator and the
reason given.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, render_template, request
from sqlalchemy.engine import Connection

from sts.admin_api.auth import Admin, admin_of_token
from sts.admin_api.errors import ApiError
from sts.admin_api.openapi import ADMIN, AUDIT, REVOKE
from sts.oauth.rfc6749 import OAuthRequest
from sts.oauth.rfc8414 import TOKEN_PATH
from sts.runtime import Runtime
from sts.services import audit, revocation, transactions
from sts.services.admin import audit_admin_action
from sts.services.errors import Invalid, NotFound, ServiceError
from sts.store.admin import AdminStore
from sts.store.sql import SqlStore
from sts.web.console import drawing
from sts.web.console.session import COOKIE, KEY_PURPOSE, PATH, Session, SessionCodec
from sts.web.source import request_source

log = logging.getLogger("sts.console")
PREFIX = PATH
bp = Blueprint(
    "console",
    __name__,
    url_prefix=PREFIX,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

READ = (ADMIN, AUDIT)
CONTAIN = (ADMIN, REVOKE)
#: What the console may revoke (DESIGN §7): a token, a transaction, an NHI or a rule.
KINDS = {"token": "token", "txn": "transaction", "nhi": "NHI", "rule": "rule"}
MAX_FIELD = 512
MAX_REASON = 500
REFUSED = "Sign-in refused: these credentials do not identify an administrator."
CSRF_REFUSED = "This form is not from your console session. Reload the page and try again."
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def _rt() -> Runtime:
    rt: Runtime = current_app.extensions["sts"]
    return rt


def _codec() -> SessionCodec:
    codec: SessionCodec = current_app.extensions["sts.console"]
    return codec


def _secure() -> bool:
    return request.is_secure or _rt().settings.issuer.startswith("https://")


def _set_session(response: Response, session: Session, now: int) -> Response:
    response.set_cookie(
        COOKIE,
        _codec().encode(session),
        max_age=max(session.expires_at - now, 0),
        path=PATH,
        secure=_secure(),
        httponly=True,
        samesite="Strict",
    )
    return response


def _clear_session(response: Response) -> Response:
    response.delete_cookie(COOKIE, path=PATH, secure=_secure(), httponly=True, samesite="Strict")
    return response


def _page(template: str, status: int = 200, **context: Any) -> Response:
    session: Session | None = g.get("console_session")
    body = render_template(
        template,
        session=session,
        can_revoke=bool(session and session.scopes & set(CONTAIN)),
        kinds=KINDS,
        when=_when,
        **context,
    )
    return Response(body, status=status, mimetype="text/html")


def _when(ts: int | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _see_other(location: str) -> Response:
    return Response(status=303, headers={"Location": location})


def _to_sign_in() -> Response:
    return _see_other(PREFIX + "/login")


@dataclass(frozen=True)
class Call:
    """One console request: its transaction's store, the administrator and the time."""

    store: AdminStore
    admin: str
    session: Session
    now: int


def _current_session(conn: Connection, now: int) -> Session | None:
    """The signed-in session, still in force: signed, not over, its NHI still active; its
    scopes no more than the NHI holds now."""
    session = _codec().decode(request.cookies.get(COOKIE), now)
    if session is None or session.admin is None:
        return None
    nhi = AdminStore(conn).nhis.find(session.admin)
    if nhi is None or nhi.status != "active":
        return None
    scopes = session.scopes & set(nhi.scopes.split())
    if not scopes & set(READ):
        return None
    return Session(session.admin, scopes, session.csrf, session.expires_at)


def _refuse_csrf(now: int, admin: str | None) -> Response:
    log.info(
        "console form refused",
        extra={
            "event": "console.csrf_refused",
            "client_id": admin,
            "path": request.path[:300],
            "request_id": g.get("request_id"),
        },
    )
    return _page("error.html", 403, title="Refused", message=CSRF_REFUSED)


def page(
    rule: str, methods: tuple[str, ...] = ("GET",), scopes: tuple[str, ...] = READ
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """A console page: signed-in only (else to the sign-in page), a POST only with the
    session's CSRF token (else 403), in one transaction; a read is audited."""

    def register(view: Callable[..., Response]) -> Callable[..., Response]:
        def endpoint(**kwargs: str) -> Response:
            rt = _rt()
            now = rt.clock.now()
            try:
                with rt.engine.begin() as conn:
                    return _run(view, kwargs, scopes, conn, now)
            except NotFound as err:  # a refusal rolls the transaction back, as in the API
                return _page("error.html", 404, title="Not found", message=_sentence(err))
            except ServiceError as err:
                return _page("error.html", 400, title="Refused", message=_sentence(err))

        endpoint.__name__ = view.__name__
        bp.add_url_rule(rule, view.__name__, endpoint, methods=list(methods))
        return view

    return register


def _run(
    view: Callable[..., Response],
    kwargs: dict[str, str],
    scopes: tuple[str, ...],
    conn: Connection,
    now: int,
) -> Response:
    session = _current_session(conn, now)
    if session is None or session.admin is None:
        return _to_sign_in()
    g.console_session = session
    if request.method == "POST" and not session.csrf_matches(request.form.get("csrf")):
        return _refuse_csrf(now, session.admin)
    if not session.scopes & set(scopes):
        return _page("error.html", 403, title="Not allowed", message=_not_allowed())
    call = Call(AdminStore(conn), session.admin, session, now)
    response = view(call, **kwargs)
    if request.method == "GET" and response.status_code < 300:
        audit_admin_action(call.store, now, call.admin, "admin.read", path=request.path[:300])
    return response


def _not_allowed() -> str:
    return "Your administrator's scopes do not allow this (it needs sts:admin or sts:revoke)."


def _sentence(err: ServiceError) -> str:
    message = err.message
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


# -- signing in and out ----------------------------------------------------------------------
@bp.get("/login")
def sign_in_form() -> Response:
    now = _rt().clock.now()
    existing = _codec().decode(request.cookies.get(COOKIE), now)
    pre = existing if existing is not None and existing.admin is None else None
    pre = pre or Session.fresh(None, frozenset(), now)
    return _set_session(_page("login.html", csrf=pre.csrf, message=None), pre, now)


@bp.post("/login")
def sign_in() -> Response:
    rt = _rt()
    now = rt.clock.now()
    pre = _codec().decode(request.cookies.get(COOKIE), now)
    if pre is None or not pre.csrf_matches(request.form.get("csrf")):
        return _refuse_csrf(now, None)
    client_id = request.form.get("client_id", "").strip()
    secret = request.form.get("client_secret", "")
    admin = _authenticate(rt, client_id, secret, now)
    if admin is None or not admin.scopes & set(READ):
        return _page("login.html", 401, csrf=pre.csrf, message=REFUSED)
    session = Session.fresh(admin.client_id, admin.scopes, now)
    log.info(
        "console sign-in",
        extra={
            "event": "console.signed_in",
            "client_id": admin.client_id,
            "request_id": g.get("request_id"),
        },
    )
    return _set_session(_see_other(PREFIX + "/"), session, now)


def _authenticate(rt: Runtime, client_id: str, secret: str, now: int) -> Admin | None:
    """The administrator these credentials identify, or ``None``. The token endpoint's own
    ``client_credentials`` pipeline runs (a refusal is audited and counts toward
    brute-force throttling like any other), then the admin API's check of its token."""
    if not client_id or not secret or len(client_id) > MAX_FIELD or len(secret) > MAX_FIELD:
        return None
    oauth_request = OAuthRequest(
        "POST",
        rt.settings.issuer.rstrip("/") + TOKEN_PATH,
        {},
        [
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ],
        now,
        g.get("request_id", ""),
        request_source(request.environ, rt.settings.proxy_networks()),
    )
    with rt.engine.begin() as conn:
        status, body, _ = rt.server.token_response(oauth_request, SqlStore(conn))
    if status != 200 or not isinstance(body.get("access_token"), str):
        return None
    try:
        with rt.engine.begin() as conn:
            admin = admin_of_token(body["access_token"], conn, rt, now)
            if admin.scopes & set(READ):
                audit_admin_action(AdminStore(conn), now, admin.client_id, "admin.console.sign_in")
            return admin
    except ApiError:
        return None


@page("/logout", ("POST",))
def sign_out(call: Call) -> Response:
    return _clear_session(_see_other(PREFIX + "/login"))


# -- reading ---------------------------------------------------------------------------------
def _time_filter(name: str) -> int | None:
    """A ``datetime-local`` value (UTC) as epoch seconds."""
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{name} must be a date and time (YYYY-MM-DDTHH:MM, UTC)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


FILTERS = ("person", "nhi", "resource", "decision", "since", "until")


@page("/")
def recent(call: Call) -> Response:
    args = {name: request.args.get(name, "").strip()[:MAX_FIELD] for name in FILTERS}
    found = transactions.recent(
        call.store,
        person=args["person"] or None,
        nhi=args["nhi"] or None,
        resource=args["resource"] or None,
        decision=args["decision"] or None,
        since=_time_filter("since"),
        until=_time_filter("until"),
    )
    return _page("recent.html", filters=args, transactions=found)


@page("/txn/<txn>")
def transaction(call: Call, txn: str) -> Response:
    if len(txn) > MAX_FIELD:
        raise NotFound("no tokens in this transaction", what="txn")
    shown = audit.show(call.store, now=call.now, txn=txn)
    shown["hops"] = drawing.chain_order(shown["hops"])
    denied_by_hop: dict[str, list[dict[str, Any]]] = {}
    for event in shown["denied"]:
        denied_by_hop.setdefault(event.get("parent_jti") or "", []).append(event)
    return _page(
        "transaction.html",
        audit=shown,
        drawing=drawing.draw(shown, _kinds(call.store, shown)),
        layout=drawing,
        state_label=drawing.state_label,
        denied_by_hop=denied_by_hop,
    )


def _kinds(store: AdminStore, shown: dict[str, Any]) -> dict[str, str]:
    """The kind of every NHI the chain names (one that is gone is just an ``nhi``)."""
    kinds: dict[str, str] = {}
    for name in {h["actor"] for h in shown["hops"]} | {h["target"] for h in shown["hops"]}:
        found = store.nhis.find(name)
        if found is not None:
            kinds[name] = found.kind
    return kinds


@page("/nhi/<name>")
def nhi_tokens(call: Call, name: str) -> Response:
    if len(name) > MAX_FIELD:
        raise NotFound(f"no NHI named {name!r}", what="nhi")
    live = transactions.live_tokens(call.store, name, now=call.now)
    return _page("nhi.html", name=name, tokens=live)


# -- containment -----------------------------------------------------------------------------
def _revocation_form() -> tuple[str, str, str, str]:
    source = request.form if request.method == "POST" else request.args
    kind = source.get("kind", "")
    target = source.get("target", "").strip()[:MAX_FIELD]
    back = source.get("back", "").strip()[:MAX_FIELD]
    reason = source.get("reason", "").strip()
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}")
    if not target:
        raise Invalid("name what to revoke")
    return kind, target, back, reason


@page("/revoke", ("GET",), CONTAIN)
def revoke_form(call: Call) -> Response:
    kind, target, back, _ = _revocation_form()
    return _page("revoke.html", kind=kind, target=target, back=back, reason="", message=None)


@page("/revoke/preview", ("POST",), CONTAIN)
def revoke_preview(call: Call) -> Response:
    kind, target, back, reason = _revocation_form()
    problem = _reason_problem(reason)
    if problem:
        return _page(
            "revoke.html", 400, kind=kind, target=target, back=back, reason=reason, message=problem
        )
    result = revocation.revoke(
        call.store, kind, target, now=call.now, admin=call.admin, reason=reason, dry_run=True
    )
    return _page("preview.html", kind=kind, target=target, back=back, reason=reason, result=result)


@page("/revoke", ("POST",), CONTAIN)
def revoke(call: Call) -> Response:
    kind, target, back, reason = _revocation_form()
    problem = _reason_problem(reason)
    if problem or request.form.get("confirm") != "yes":
        message = problem or "Confirm the revocation after its preview."
        return _page(
            "revoke.html", 400, kind=kind, target=target, back=back, reason=reason, message=message
        )
    result = revocation.revoke(
        call.store, kind, target, now=call.now, admin=call.admin, reason=reason
    )
    return _page("revoked.html", kind=kind, target=target, back=back, reason=reason, result=result)


def _reason_problem(reason: str) -> str | None:
    if not reason:
        return "A reason is required: it is recorded with the revocation."
    if len(reason) > MAX_REASON:
        return f"The reason must be at most {MAX_REASON} characters."
    return None


# -- every console answer --------------------------------------------------------------------
@bp.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask, rt: Runtime) -> None:
    """Serve the console from ``app``, its sessions signed under a key derived from the
    STS's credential hashing key."""
    app.extensions["sts.console"] = SessionCodec(rt.hasher.derive(KEY_PURPOSE))
    app.register_blueprint(bp)
