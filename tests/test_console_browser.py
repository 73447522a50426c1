"""The incident console in a real headless Chromium (Debian's ``chromium``, driven by
Playwright with ``executable_path``: nothing is downloaded): sign-in, a refused sign-in, a
four-hop chain drawn (person → web → agent → tool → data), a revocation after its preview,
the chain redrawn with its dead hops, and a forged form refused.

One STS (a real server on a free port, SQLite) and one browser for the whole module; each
test opens its own browser context, so no cookie leaks from one to the next. Without chromium
or Playwright the module is skipped with the reason, unless ``CI`` is set: there that is a
failure (``.ci/run`` installs chromium).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.console_server import (
    ConsoleServer,
    chromium_path,
    launch_chromium,
    sign_in,
    start_console_server,
)

REFUSED = "Sign-in refused: these credentials do not identify an administrator."


def _requirements() -> tuple[Any, str]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "Playwright is not installed (pip install -e '.[test]')"
    else:
        executable = chromium_path()
        if executable is not None:
            return sync_playwright, executable
        missing = "chromium is not installed (apt-get install -y chromium)"
    if IN_CI:
        pytest.fail(f"the console's browser tests must run in CI: {missing}")
    pytest.skip(f"browser tests skipped: {missing}")


@pytest.fixture(scope="module")
def sts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    server = start_console_server(tmp_path_factory.mktemp("console"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_playwright, executable = _requirements()
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright, executable)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    # Nothing but the STS itself is ever asked for (no CDN, font or script elsewhere).
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.requested = requested
    yield page
    context.close()


def boxes(page: Any) -> list[str]:
    return [b.get_attribute("data-name") for b in page.locator("svg#chain g.box").all()]


def arrows(page: Any) -> list[tuple[str, str]]:
    return [(a.get_attribute("data-hop"), a.get_attribute("data-state"))
            for a in page.locator("svg#chain g.arrow").all()]


def test_sign_in_when_admin_then_recent_transactions_and_nothing_from_elsewhere(page, sts):
    sign_in(page, sts.url, sts.four.admin)
    assert page.url == sts.url + "/console/"
    assert page.locator("#admin").inner_text() == "ops"
    assert page.locator(f'#transactions a.txn:text-is("{sts.txn}")').count() == 1
    (cookie,) = page.context.cookies()
    assert (cookie["name"], cookie["path"], cookie["httpOnly"], cookie["sameSite"],
            cookie["secure"]) == ("sts_console", "/console", True, "Strict", False)
    # HttpOnly: no script of the page can read it.
    assert page.evaluate("document.cookie") == ""
    assert {u.split("/console/")[0] for u in page.requested} == {sts.url}


def test_sign_in_when_secret_wrong_then_refused_without_saying_which_half(page, sts):
    sign_in(page, sts.url, sts.four.admin, secret="sts_" + "x" * 43)
    assert page.url == sts.url + "/console/login"
    assert page.locator("#message").inner_text() == REFUSED
    page.goto(sts.url + "/console/")
    assert page.url == sts.url + "/console/login"  # no session


def test_transaction_when_four_hops_then_drawn_person_web_agent_tool_data(page, sts):
    sign_in(page, sts.url, sts.four.admin)
    page.click(f'#transactions a.txn:text-is("{sts.txn}")')
    assert page.url == f"{sts.url}/console/txn/{sts.txn}"
    assert page.locator("svg#chain").is_visible()
    assert boxes(page) == ["alice", "web", "agent", "tool", "data"]
    assert arrows(page) == [("1", "live"), ("2", "live"), ("3", "live"), ("4", "live")]
    numbers = page.locator("svg#chain text.numtext").all_text_contents()
    assert numbers == ["1", "2", "3", "4"]
    cards = page.locator("#hops > li h3").all_inner_texts()
    assert cards == ["Hop 1: web → web live", "Hop 2: web → agent live",
                     "Hop 3: agent → tool live", "Hop 4: tool → data live"]
    # tool's attempt to take hop 3's token back to web was refused: shown under hop 3.
    denied = page.locator("#hop-3 ul.denied li").all_inner_texts()
    assert len(denied) == 1 and "tool toward web" in denied[0]
    assert page.locator("#hop-4 .muted").inner_text() == "None reported."
    # Drawn boxes really are laid out left to right, one after another.
    xs = [page.locator(f'svg#chain g.box[data-name="{n}"] rect').bounding_box()["x"]
          for n in boxes(page)]
    assert xs == sorted(xs) and len(set(xs)) == 5


def test_revoke_when_previewed_and_confirmed_then_chain_redrawn_with_dead_hops(page, sts):
    sign_in(page, sts.url, sts.four.admin)
    page.goto(f"{sts.url}/console/txn/{sts.txn}")
    page.click("#hop-3 a.revoke-token")
    assert page.locator("#target").inner_text() == sts.jtis[2]
    page.fill("#reason", "incident 7: tool leaked its token")
    page.click("#preview")
    assert page.locator("#blast").inner_text() == "Would revoke 2 live tokens in 1 transaction."
    assert sorted(page.locator("#jtis li").all_inner_texts()) == sorted(sts.jtis[2:])
    # Nothing died yet (seen from a second tab of the same session).
    other = page.context.new_page()
    other.goto(f"{sts.url}/console/txn/{sts.txn}")
    assert arrows(other) == [("1", "live"), ("2", "live"), ("3", "live"), ("4", "live")]
    other.close()
    page.click("#confirm")
    assert page.locator("#tokens").inner_text() == "2"
    page.click("#back")
    assert page.url == f"{sts.url}/console/txn/{sts.txn}"
    assert arrows(page) == [("1", "live"), ("2", "live"), ("3", "revoked"), ("4", "revoked")]
    assert page.locator("#hop-4 .badge").inner_text() == "revoked"
    assert "by ops (administrator): incident 7: tool leaked its token" in (
        page.locator("#revocations").inner_text())


def test_form_when_csrf_token_forged_then_refused_and_nothing_revoked(page, sts):
    sign_in(page, sts.url, sts.four.admin)
    page.goto(f"{sts.url}/console/revoke?kind=txn&target={sts.txn}&back={sts.txn}")
    page.fill("#reason", "forged")
    page.locator('main input[name="csrf"]').evaluate("input => { input.value = 'forged'; }")
    with page.expect_navigation() as navigation:
        page.click("#preview")
    assert navigation.value.status == 403
    assert page.locator("#message").inner_text() == (
        "This form is not from your console session. Reload the page and try again.")
    page.goto(f"{sts.url}/console/txn/{sts.txn}")
    assert arrows(page)[:2] == [("1", "live"), ("2", "live")]
