"""The UI of `runlock server` in Debian's Chromium: sign in with a token, see the runs, sign out.

The server's app (API + UI) runs on uvicorn on a free loopback port over the test store, with a
viewer's token; axe-core checks the login page as it does every other page.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from runlock import identity
from runlock.server import create_app
from runlock.store import Store
from tests.ui.test_browser import CHROMIUM, _free_port, check

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")]


@pytest.fixture(scope="module")
def served(ui_store: Store) -> Iterator[tuple[str, str]]:
    identity.create_identity(ui_store, "reader")
    identity.grant_role(ui_store, "reader", "viewer")
    token = identity.issue_token(ui_store, "reader", days=1).token
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ui_store), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", token
    server.should_exit = True
    thread.join(10)


def test_sign_in_see_runs_and_sign_out(served: tuple[str, str]) -> None:
    url, token = served
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(base_url=url, viewport={"width": 1280, "height": 900}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
        page.goto("/runs?sort=name")
        page.wait_for_url("**/login?next=**")
        check(page, "login")
        page.get_by_label("Token").fill(token)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/runs?sort=name")
        assert page.locator("table.runs tbody tr").count() == 4
        assert "reader" in page.locator("nav .signout").inner_text()
        check(page, "runs-signed-in")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/login")
        page.goto("/audit")
        page.wait_for_url("**/login?next=%2Faudit")
        browser.close()
    assert errors == [], errors
