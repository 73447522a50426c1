"""The screenshot of the console's transaction view shown in the README
(``docs/console-transaction.png``): a four-hop chain, tool's refused attempt, and hop 3
revoked with everything below it.

    .venv/bin/python -m tests.console_screenshot docs/console-transaction.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from sts.services import revocation
from sts.store.admin import admin_store
from tests.console_server import chromium_path, launch_chromium, sign_in, start_console_server


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    out = Path(argv[0] if argv else "docs/console-transaction.png")
    executable = chromium_path()
    if executable is None:
        print("chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as workdir:
        sts = start_console_server(Path(workdir))
        try:
            now = sts.runtime.clock.now()
            with admin_store(sts.runtime.engine) as store:
                revocation.revoke(store, "token", sts.jtis[2], now=now, admin="ops",
                                  reason="incident 7: tool leaked its token")
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright, executable)
                page = browser.new_page(viewport={"width": 1240, "height": 900})
                sign_in(page, sts.url, sts.four.admin)
                page.goto(f"{sts.url}/console/txn/{sts.txn}")
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            sts.stop()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
