"""The STS as a real HTTP server on a free port, with a four-hop chain in its registry, and
Debian's chromium driven by Playwright: for the console's browser tests and its screenshot.

The browser is the system's (``/usr/bin/chromium``, Debian's ``chromium`` package): nothing
is downloaded at run time.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from werkzeug.serving import BaseWSGIServer, make_server

from sts.core.settings import Settings
from sts.runtime import Runtime, build_runtime
from sts.store.migrate import upgrade
from sts.web import create_app
from sts.web.devserver import PathOnlyRequestHandler
from tests.conftest import Registered
from tests.console_fixtures import FourHops, register_four_hops, run_four_hops

CHROMIUM = "/usr/bin/chromium"


def chromium_path() -> str | None:
    """Debian's chromium, if installed."""
    if Path(CHROMIUM).is_file():
        return CHROMIUM
    return shutil.which("chromium")


@dataclass
class ConsoleServer:
    url: str
    runtime: Runtime
    four: FourHops
    txn: str
    jtis: list[str]
    server: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()
        self.runtime.close()


def start_console_server(workdir: Path) -> ConsoleServer:
    """Migrate a SQLite registry in ``workdir``, serve the STS on a free port (threaded), and
    run a four-hop chain (with one denied attempt) through its token endpoint over HTTP."""
    url = f"sqlite:///{workdir / 'sts.db'}"
    upgrade(url)
    # Bind first: the issuer must name the port the server really listens on.
    server = make_server("127.0.0.1", 0, _unbound_app, threaded=True,
                         request_handler=PathOnlyRequestHandler)
    base = f"http://127.0.0.1:{server.server_port}"
    settings = Settings(issuer=base, database_url=url, keys_dir=workdir / "keys")
    runtime = build_runtime(settings)
    server.app = create_app(settings, rt=runtime)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    now = runtime.clock.now()
    four = register_four_hops(runtime, now)

    def call(who: Registered, data: dict[str, str]) -> tuple[int, dict[str, Any]]:
        resp = requests.post(base + "/token", data=data, auth=(who.client_id, who.secret or ""),
                             timeout=10)
        return resp.status_code, resp.json()

    txn, jtis = run_four_hops(call, four, now, denied=True)
    return ConsoleServer(base, runtime, four, txn, jtis, server, thread)


def _unbound_app(environ: Any, start_response: Any) -> Any:  # pragma: no cover
    raise RuntimeError("the STS is not built yet")


def launch_chromium(playwright: Any, executable: str) -> Any:
    """Headless chromium; no sandbox when running as root (containers)."""
    return playwright.chromium.launch(executable_path=executable, headless=True,
                                      args=["--no-sandbox", "--disable-gpu"])


def sign_in(page: Any, url: str, who: Registered, secret: str | None = None) -> None:
    page.goto(url + "/console/")
    page.fill("#client_id", who.client_id)
    page.fill("#client_secret", who.secret if secret is None else secret)
    page.click("#sign-in")
