"""The services of ``sts demo``: tiny Flask apps built on the service SDK.

Each hop of the demo chain (web → agent → tool → data) is one of these, run as its own
process (``python -m sts_demo.services CONFIG ROLE [DOWNSTREAM_URL]``) on a free loopback
port, which it reports on its first line of output (``READY <port>``). A hop verifies the
incoming token with ``@require_token``, calls the next hop with ``downstream_auth`` (a token
exchanged for that hop only), and answers with what it saw: the decoded claims of the token
it received (never the token), and the answer or refusal of the next hop. The ``data`` hop
reports what it read to the STS (an access report, sent in the background by the SDK).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import requests
from chain_sts_client import OAuthError, StaticJwks, StsClientError, TokenVerifier
from chain_sts_client.flask import ChainSts, current_caller, downstream_auth, require_token
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

ROLES = ("web", "agent", "tool", "data")
#: What the data service reads, and the classes of data in it.
DATA_RESOURCE = "db://orders"
DATA_CLASSES = ("pii", "order-history")
ORDERS = [
    {"id": "A-1001", "item": "coffee beans", "status": "shipped"},
    {"id": "A-1002", "item": "grinder", "status": "processing"},
]


def _refusal(role: str, reply: requests.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        body = {}
    if isinstance(body, dict) and "service" in body:
        return {"downstream": body}  # the next hop answered, and tells where it broke
    error = body.get("error") if isinstance(body, dict) else None
    return {
        "refused": {
            "by": role,
            "status": reply.status_code,
            "error": error or f"HTTP {reply.status_code}",
            "description": body.get("error_description", "") if isinstance(body, dict) else "",
        }
    }


def build_app(role: str, config: dict[str, Any], downstream_url: str | None = None) -> Flask:
    spec = config["services"][role]
    app = Flask(f"demo-{role}")
    extra: list[TokenVerifier] = []
    idp = spec.get("idp")
    if idp:
        # The first hop accepts the person's token from the demo identity provider.
        extra.append(
            TokenVerifier(
                idp["issuer"], spec["client_id"], StaticJwks(idp["jwks"]), token_type=None
            )
        )
    ChainSts(
        app,
        issuer=config["issuer"],
        client_id=spec["client_id"],
        client_secret=spec["client_secret"],
        extra_verifiers=extra,
        poll_interval=float(config.get("poll_interval", 1.0)),
    )
    downstream = spec.get("downstream")
    if downstream is not None and downstream_url is None:
        raise ValueError(f"{role} calls {downstream['role']}: give its URL")

    @app.post("/")
    @require_token(scope=spec["requires"])
    def handle() -> tuple[dict[str, Any], int]:
        hop: dict[str, Any] = {"service": role, "saw": current_caller().summary()}
        if downstream is None:
            caller = current_caller()
            # What this hop touched, reported to the STS in the background (DESIGN §10).
            caller.report(
                resource=DATA_RESOURCE,
                action="read",
                records=len(ORDERS),
                data_classes=list(DATA_CLASSES),
                destination=caller.immediate_caller,
                outcome="success",
            )
            hop["result"] = {"orders": ORDERS, "for": caller.sub}
            return hop, 200
        try:
            reply = requests.post(
                str(downstream_url),
                json={},
                auth=downstream_auth(downstream["audience"], scope=downstream["scope"]),
                timeout=15,
            )
        except OAuthError as exc:
            hop["refused"] = {
                "by": "sts",
                "target": downstream["role"],
                "status": exc.status,
                "error": exc.code,
                "description": exc.description,
            }
            return hop, 502
        except (StsClientError, requests.RequestException) as exc:
            hop["refused"] = {
                "by": downstream["role"],
                "status": 502,
                "error": "unreachable",
                "description": type(exc).__name__,
            }
            return hop, 502
        if reply.status_code != 200:
            hop.update(_refusal(downstream["role"], reply))
            return hop, 502
        hop["downstream"] = reply.json()
        return hop, 200

    return app


class _QuietHandler(WSGIRequestHandler):
    """Request lines only, no query strings (nothing secret travels in them, but still)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log("info", '"%s %s" %s', self.command, self.path.split("?")[0], code)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3) or args[1] not in ROLES:
        print(
            "usage: python -m sts_demo.services CONFIG web|agent|tool|data [DOWNSTREAM_URL]",
            file=sys.stderr,
        )
        return 2
    config = json.loads(Path(args[0]).read_text())
    app = build_app(args[1], config, args[2] if len(args) == 3 else None)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    print(f"READY {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
