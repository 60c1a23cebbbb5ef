"""The web UI on a real `runlock server` (uvicorn on loopback): sign-in, the token's roles, escaping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

import runlock
from runlock.store import Store
from tests.server.conftest import Server, make_server

EVIL = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("uisrv") / "srv"
    s = make_server(folder)
    store = Store.open(folder)
    try:
        with runlock.start_run(project="bot", name="visible-run", config={"lr": 0.1}, store=store) as run:
            for step in range(50):
                run.log({"loss": 1.0 / (step + 1)}, step=step)
        with runlock.start_run(project="bot", name="second", config={"lr": 0.2}, tags={"who": EVIL},
                               store=store) as run:
            run.log({"loss": 0.5}, step=0)
    finally:
        store.close()
    s.start()
    try:
        yield s
    finally:
        s.stop()


@contextmanager
def _signed_in(server: Server, role: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        r = c.post("/login", data={"token": server.tokens[role], "next": "/runs"})
        assert r.status_code == 303 and r.headers["location"] == "/runs", r.text
        yield c


def test_without_a_login_a_page_redirects_to_the_login_and_a_twin_is_401(ui_server: Server) -> None:
    r = httpx.get(f"{ui_server.url}/runs?where=config.lr%20%3E%200", timeout=10)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fruns%3Fwhere%3Dconfig.lr%2520%253E%25200"
    for path in ("/runs.json", "/audit.json", "/runs/x/metrics"):
        r = httpx.get(ui_server.url + path, timeout=10, headers={"hx-request": "true"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
    assert httpx.post(f"{ui_server.url}/audit/verify", timeout=10).status_code == 401
    login = httpx.get(f"{ui_server.url}/login", timeout=10)
    assert login.status_code == 200 and 'name="token"' in login.text and "visible-run" not in login.text
    assert httpx.get(f"{ui_server.url}/static/app.css", timeout=10).status_code == 200


def test_a_wrong_token_is_refused_and_sets_no_cookie(ui_server: Server) -> None:
    r = httpx.post(f"{ui_server.url}/login", data={"token": "rlk_0123456789abcdef_" + "x" * 43}, timeout=10)
    assert r.status_code == 401 and "set-cookie" not in r.headers and "unknown" in r.text
    forged = httpx.get(f"{ui_server.url}/runs.json", cookies={"runlock_token": "rlk_nope"}, timeout=10)
    assert forged.status_code == 401


def test_the_login_cookie_is_httponly_and_samesite_strict(ui_server: Server) -> None:
    r = httpx.post(f"{ui_server.url}/login", data={"token": ui_server.tokens["viewer"], "next": "/audit"},
                   timeout=10)
    assert r.status_code == 303 and r.headers["location"] == "/audit"
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith("runlock_token=rlk_") and "httponly" in cookie and "samesite=strict" in cookie
    assert "path=/" in cookie


def test_after_login_only_paths_of_this_site_are_followed(ui_server: Server) -> None:
    for bad in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "runs"):
        r = httpx.post(f"{ui_server.url}/login", data={"token": ui_server.tokens["viewer"], "next": bad},
                       timeout=10)
        assert r.status_code == 303 and r.headers["location"] == "/runs", bad


def test_a_login_posted_from_another_site_is_refused(ui_server: Server) -> None:
    r = httpx.post(f"{ui_server.url}/login", data={"token": ui_server.tokens["viewer"]},
                   headers={"sec-fetch-site": "cross-site"}, timeout=10)
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_a_reader_sees_the_runs_and_user_data_as_text(ui_server: Server) -> None:
    with _signed_in(ui_server, "viewer") as c:
        page = c.get("/runs")
        assert page.status_code == 200 and "visible-run" in page.text and "Sign out" in page.text
        twin = c.get("/runs.json").json()
        ids = {r["name"]: r["id"] for r in twin["runs"]}
        assert set(ids) == {"visible-run", "second"}
        run = c.get(f"/runs/{ids['second']}")
        assert run.status_code == 200 and "<script>alert" not in run.text and "&lt;script&gt;" in run.text
        chart = c.get(f"/runs/{ids['visible-run']}/series.json", params={"key": "loss"}).json()
        assert chart["points"] == 50
        assert c.get("/audit").status_code == 200
        assert c.post("/audit/verify", headers={"hx-request": "true"}).status_code == 200
        out = c.post("/logout")
        assert out.status_code == 303 and 'runlock_token=""' in out.headers["set-cookie"]
        assert c.get("/runs.json").status_code == 401


def test_a_bearer_token_reads_the_json_twins(ui_server: Server) -> None:
    r = httpx.get(f"{ui_server.url}/runs.json", headers=ui_server.headers("viewer"), timeout=10)
    assert r.status_code == 200 and len(r.json()["runs"]) == 2
    bad = httpx.get(f"{ui_server.url}/runs", headers={"Authorization": "Bearer rlk_nope"}, timeout=10)
    assert bad.status_code == 401     # a script's bad token is told so, not redirected


def test_a_role_that_cannot_read_the_audit_log_gets_403_on_its_page_and_fragment(ui_server: Server) -> None:
    with _signed_in(ui_server, "outsider") as c:      # admin of another project, nothing on this one
        page = c.get("/audit")
        assert page.status_code == 403 and "audit.read" in page.text and "<table class=\"audit\"" not in page.text
        assert c.get("/audit.json").status_code == 403
        fragment = c.post("/audit/verify", headers={"hx-request": "true"})
        assert fragment.status_code == 403
        for path in ("/data", "/registry.json", "/lineage"):
            assert c.get(path).status_code == 403, path


def test_a_role_on_another_project_lists_none_of_this_projects_runs(ui_server: Server) -> None:
    with _signed_in(ui_server, "viewer") as reader:
        run_id = reader.get("/runs.json").json()["runs"][0]["id"]
    with _signed_in(ui_server, "outsider") as c:
        listed = c.get("/runs.json")
        assert listed.status_code == 200 and listed.json()["runs"] == []
        assert "visible-run" not in c.get("/runs").text
        assert c.get(f"/runs/{run_id}").status_code == 403
        assert c.get(f"/runs/{run_id}/series.json", params={"key": "loss"}).status_code == 403
        assert c.get(f"/runs/{run_id}/metrics", headers={"hx-request": "true"}).status_code == 403
        assert c.get("/compare", params={"run": [run_id, run_id]}).status_code == 403


def test_the_api_keeps_its_own_answers(ui_server: Server) -> None:
    assert httpx.get(f"{ui_server.url}/api/v1/health", timeout=10).status_code == 200
    assert httpx.get(f"{ui_server.url}/api/v1/runs", timeout=10).status_code == 401
    missing = httpx.get(f"{ui_server.url}/api/v1/no-such-route", timeout=10)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
    # a UI cookie is not an API credential: the API reads only its bearer header
    with _signed_in(ui_server, "viewer") as c:
        assert c.get("/api/v1/runs").status_code == 401
