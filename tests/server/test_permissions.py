"""Deny by default: every route is in the permission table, and each role is held to it."""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute

from runlock.server import create_app
from runlock.server.permissions import PERMISSIONS, rule_for
from runlock.workspace import init
from tests.server.conftest import Server

RUN = "01HZZZZZZZZZZZZZZZZZZZZZZZ"
DIGEST = "sha256:" + "0" * 64


def test_every_route_of_the_app_has_a_permission_entry(tmp_path) -> None:
    store = init(tmp_path)
    try:
        app = create_app(store)
    finally:
        store.close()
    seen = set()
    for route in app.routes:
        for method in getattr(route, "methods", None) or ():
            if method == "HEAD":
                continue
            assert rule_for(method, route.path) is not None, f"{method} {route.path} has no permission entry"
            seen.add((method, route.path))
    assert seen == set(PERMISSIONS), f"table entries without a route: {set(PERMISSIONS) - seen}"
    assert any(isinstance(r, APIRoute) for r in app.routes)


def _routes() -> list[tuple[str, str]]:
    return sorted(PERMISSIONS)


def _concrete(path: str) -> str:
    return path.replace("{run_id}", RUN).replace("{digest}", DIGEST)


@pytest.mark.parametrize(("method", "path"), [r for r in _routes() if PERMISSIONS[r].signed_in])
def test_without_a_token_every_protected_route_is_401(module_server: Server, method: str, path: str) -> None:
    server = module_server
    r = httpx.request(method, server.url + _concrete(path), json={})
    assert r.status_code == 401, r.text
    bad = httpx.request(method, server.url + _concrete(path), json={},
                        headers={"Authorization": "Bearer rlk_0000000000000000_" + "A" * 43})
    assert bad.status_code == 401


def _run_of(server, project: str = "proj") -> str:
    r = httpx.post(f"{server.url}/api/v1/runs", json={"project": project}, headers=server.headers("editor"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


# what each weaker role must not do; the concrete request that tries
def _writes(run_id: str) -> dict:
    return {
        "create a run": ("POST", "/api/v1/runs", {"json": {"project": "proj"}}),
        "log points": ("POST", f"/api/v1/runs/{run_id}/points", {"json": {"rank": 0, "points": []}}),
        "record an artifact": ("POST", f"/api/v1/runs/{run_id}/artifacts", {"json": {"name": "a", "digest": DIGEST}}),
        "finish": ("POST", f"/api/v1/runs/{run_id}/finish", {"json": {}}),
        "ask for missing objects": ("POST", "/api/v1/objects/missing", {"json": {"digests": [DIGEST]}}),
        "upload an object": ("PUT", f"/api/v1/objects/{DIGEST}", {"content": b""}),
    }


def test_a_viewer_is_refused_every_write(server) -> None:
    run_id = _run_of(server)
    for what, (method, path, kw) in _writes(run_id).items():
        r = httpx.request(method, server.url + path, headers=server.headers("viewer"), **kw)
        assert r.status_code == 403, f"viewer could {what}: {r.status_code} {r.text}"
    assert httpx.get(f"{server.url}/api/v1/runs/{run_id}", headers=server.headers("viewer")).status_code == 200


def test_a_grant_on_another_project_gives_nothing_here(server) -> None:
    run_id = _run_of(server)
    h = server.headers("outsider")
    assert httpx.get(f"{server.url}/api/v1/runs/{run_id}", headers=h).status_code == 403
    assert httpx.get(f"{server.url}/api/v1/runs/{run_id}/metrics", headers=h).status_code == 403
    assert httpx.post(f"{server.url}/api/v1/runs/{run_id}/points", headers=h,
                      json={"points": []}).status_code == 403
    assert httpx.post(f"{server.url}/api/v1/runs", json={"project": "proj"}, headers=h).status_code == 403
    listed = httpx.get(f"{server.url}/api/v1/runs", headers=h).json()["runs"]
    assert run_id not in [r["id"] for r in listed]
    mine = httpx.post(f"{server.url}/api/v1/runs", json={"project": "elsewhere"}, headers=h)
    assert mine.status_code == 201


def test_a_revoked_token_is_refused_at_once(server) -> None:
    from runlock import identity
    from runlock.workspace import open_store
    h = server.headers("editor")
    assert httpx.get(f"{server.url}/api/v1/whoami", headers=h).status_code == 200
    store = open_store(server.folder)
    try:
        identity.revoke_token(store, server.tokens["editor"])
    finally:
        store.close()
    assert httpx.get(f"{server.url}/api/v1/whoami", headers=h).status_code == 401


def test_writes_and_reads_of_objects_are_audited_with_the_token_identity(server) -> None:
    from runlock import audit
    from runlock.workspace import open_store
    data = b"weights"
    import hashlib
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert httpx.put(f"{server.url}/api/v1/objects/{digest}", content=data,
                     headers=server.headers("editor")).status_code == 201
    assert httpx.get(f"{server.url}/api/v1/objects/{digest}", headers=server.headers("viewer")).content == data
    store = open_store(server.folder)
    try:
        entries = [(e.actor, e.action) for e in audit.log(store, target=f"object:{digest}")]
    finally:
        store.close()
    assert entries == [("editor", "object.put"), ("viewer", "object.read")]


def test_objects_are_read_through_the_project_of_a_run_that_has_them(server) -> None:
    import hashlib
    data = b"project weights"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    h_out = server.headers("outsider")              # admin of "elsewhere" only
    assert httpx.put(f"{server.url}/api/v1/objects/{digest}", content=data, headers=h_out).status_code == 201
    assert httpx.get(f"{server.url}/api/v1/objects/{digest}", headers=h_out).status_code == 403   # no run has it
    run_id = _run_of(server, "proj")
    assert httpx.post(f"{server.url}/api/v1/runs/{run_id}/artifacts", json={"name": "w", "digest": digest},
                      headers=server.headers("editor")).status_code == 201
    assert httpx.get(f"{server.url}/api/v1/objects/{digest}", headers=h_out).status_code == 403   # proj's, not theirs
    mine = httpx.post(f"{server.url}/api/v1/runs", json={"project": "elsewhere"}, headers=h_out).json()["id"]
    assert httpx.post(f"{server.url}/api/v1/runs/{mine}/artifacts", json={"name": "w", "digest": digest},
                      headers=h_out).status_code == 201
    assert httpx.get(f"{server.url}/api/v1/objects/{digest}", headers=h_out).content == data
