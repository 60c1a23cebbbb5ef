"""The UI in a real browser: Debian's Chromium (``apt-get install chromium``) driven by Playwright
for Python through ``executable_path`` (Playwright's own browser download is not used).

The app runs on uvicorn on a free loopback port. Each page is opened, its key interaction is
exercised (filter, sort, next page, pick columns, compare two runs, zoom a chart, verify the audit
log), the console must show no error, axe-core (axe-playwright-python) must find no serious or
critical violation, and a screenshot of each page is written to tests/ui/screenshots/ (kept out of
git), or to $RUNLOCK_UI_SCREENSHOTS.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from runlock.store import Store
from runlock.ui import create_app
from tests.ui.conftest import EVIL

playwright = pytest.importorskip("playwright.sync_api")   # the test extra installs it
from axe_playwright_python.sync_playwright import Axe  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(os.environ.get("RUNLOCK_UI_SCREENSHOTS", Path(__file__).parent / "screenshots"))
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(ui_store: Store) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(lambda: ui_store), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, base_url: str) -> Iterator:  # noqa: ANN001
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.errors = errors
    yield pg
    context.close()
    assert errors == [], f"console errors: {errors}"


def check(page, name: str) -> None:  # noqa: ANN001
    """No serious or critical axe violation; a full-page screenshot under SHOTS."""
    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], results.generate_report()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    print(f"screenshot: {SHOTS / f'{name}.png'}")


def test_runs_filter_sort_columns_and_next_page(page) -> None:  # noqa: ANN001
    page.goto("/runs")
    assert page.locator("table.runs tbody tr").count() == 4
    assert page.get_by_role("link", name=EVIL).count() == 1          # the name is text, no script ran
    page.fill("input[name=where]", "config.lr < 0.05")
    page.fill("input[name=col]", "config.lr,metrics.loss:min")
    page.click("form#filter button[type=submit]")                      # htmx swaps the table, pushes the URL
    page.wait_for_url("**/runs?*where=*")
    assert page.locator("table.runs tbody tr").count() == 2
    assert page.locator("th", has_text="metrics.loss:min").count() == 1
    page.get_by_role("link", name="Name").click()                      # sort by name
    page.wait_for_url("**sort=name**")
    names = page.locator("table.runs tbody tr td:nth-child(2)").all_inner_texts()
    assert names == ["tuned", "tuned-again"]
    check(page, "runs")
    page.goto("/runs?limit=1&sort=name")
    first = page.locator("table.runs tbody td:nth-child(2)").inner_text()
    page.click("#next-page")
    page.wait_for_url("**after=**")
    assert page.locator("table.runs tbody td:nth-child(2)").inner_text() != first


def test_compare_two_runs_from_the_runs_page(page) -> None:  # noqa: ANN001
    page.goto("/runs?sort=name")
    page.get_by_label("compare tuned", exact=True).check()
    page.get_by_label("compare tuned-again", exact=True).check()
    page.click("#compare-button")
    page.wait_for_url("**/compare?run=*")
    assert page.locator("#tier-1").inner_text() == "bitwise"
    page.wait_for_selector("figure.chart[data-ready='1'] canvas")
    assert page.locator(".identical").count() == 2
    check(page, "compare")
    page.click("#show-all")
    page.wait_for_url("**all=1**")
    assert page.locator("tr:not(.differs) td code", has_text="config.lr").count() >= 1


def test_run_page_draws_charts_and_zoom_fetches_finer_points(page) -> None:  # noqa: ANN001
    page.goto("/runs?sort=name")
    page.get_by_role("link", name="base", exact=True).click()
    fig = page.locator("figure.chart[data-key='loss']")
    page.wait_for_selector("figure.chart[data-key='loss'][data-ready='1']")
    assert "300 of 300 points" in fig.locator(".chart-note").inner_text()
    over = fig.locator(".u-over")
    box = over.bounding_box()
    with page.expect_response(lambda r: "series.json" in r.url and "start=" in r.url):
        page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
    page.wait_for_selector("figure.chart[data-key='loss'][data-zoomed]")
    check(page, "run")


def test_a_fragment_swapped_in_while_a_chart_loads_does_not_draw_it_twice(page) -> None:  # noqa: ANN001
    """The run page's statistics arrive by htmx while its charts still fetch their series: the
    script runs again on each swap and must not start a second chart in the same figure."""
    page.route("**/series.json*", lambda route: (time.sleep(0.4), route.continue_()))
    page.goto("/runs?sort=name")
    page.get_by_role("link", name="base", exact=True).click()
    page.wait_for_load_state("domcontentloaded")
    for _ in range(3):
        page.evaluate("document.dispatchEvent(new Event('htmx:afterSettle'))")
    page.wait_for_selector("figure.chart[data-key='loss'][data-ready='1']")
    page.wait_for_timeout(600)                      # a second draw, had one started, would be in by now
    assert page.locator("figure.chart[data-key='loss'] .u-over").count() == 1
    page.unroute("**/series.json*")


def test_audit_verify_button_shows_the_result(page) -> None:  # noqa: ANN001
    page.goto("/audit")
    page.click("#verify-button")
    page.wait_for_selector("#verify-report")
    assert "The audit log verifies." in page.locator("#verify-report").inner_text()
    assert page.url.endswith("/audit")                                 # htmx swapped a fragment in place
    check(page, "audit")
    page.goto("/audit?limit=5&action=run.*")
    newest = page.locator("table.audit tbody td:first-child").all_inner_texts()
    page.click("#older")
    page.wait_for_url("**before=**")
    older = page.locator("table.audit tbody td:first-child").all_inner_texts()
    assert older and int(older[0]) < int(newest[-1]) and "action=run.%2A" in page.url
    check(page, "audit-older")


def test_compare_three_runs_gives_two_verdicts(page) -> None:  # noqa: ANN001
    page.goto("/runs?sort=name")
    for name in ("tuned", "tuned-again", "base"):
        page.get_by_label(f"compare {name}", exact=True).check()
    page.click("#compare-button")
    page.wait_for_url("**/compare?run=*")
    assert page.locator("h2#verdict-h").inner_text().endswith("base")    # the first ticked row: the baseline
    tiers = [page.locator(f"#tier-{i}").inner_text() for i in (1, 2)]
    assert tiers[0] == tiers[1] != "bitwise"          # tuned and tuned-again are bitwise twins, both unlike base
    check(page, "compare-three")


@pytest.mark.parametrize("url,name", [("/data?split=split:tickets@v1&old=ds:tickets@v1&new=ds:tickets@v2", "data"),
                                      ("/lineage?entity=model:bot@v1", "lineage"),
                                      ("/registry?name=bot", "registry")])
def test_other_pages_render_cleanly(page, url: str, name: str) -> None:  # noqa: ANN001
    page.goto(url)
    assert page.locator("h1").count() == 1
    if name == "lineage":
        assert page.locator("svg rect").count() >= 3
    check(page, name)
