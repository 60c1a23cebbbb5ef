"""Hostile input gets a 4xx with a JSON error, never a 500 and never a file outside the store."""

from __future__ import annotations

import gzip
import hashlib
import json

import httpx
import pytest

from runlock.server.limits import MAX_BATCH_BYTES, MAX_BODY_BYTES


def _run(server) -> str:
    r = httpx.post(f"{server.url}/api/v1/runs", json={"project": "proj"}, headers=server.headers("admin"))
    return r.json()["id"]


@pytest.mark.parametrize("path", [
    "/api/v1/objects/..%2F..%2F..%2Fetc%2Fpasswd", "/api/v1/objects/sha256:..%2F..%2Fconfig.toml",
    "/api/v1/objects/%2e%2e", "/api/v1/runs/..%2F..%2Fetc/metrics", "/api/v1/objects/sha256:" + "A" * 64,
    "/api/v1/../../etc/passwd", "/api/v1/runs/%00/points",
])
def test_paths_that_try_to_escape_are_4xx(module_server, path: str) -> None:
    server = module_server
    r = httpx.get(server.url + path, headers=server.headers("admin"))
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    assert b"root:" not in r.content and b"[database]" not in r.content


def test_an_oversized_body_is_413_and_nothing_is_stored(server) -> None:
    run_id = _run(server)
    big = json.dumps({"project": "p" * (MAX_BODY_BYTES + 10)})
    r = httpx.post(f"{server.url}/api/v1/runs", content=big, headers={**server.headers("admin"),
                                                                        "Content-Type": "application/json"})
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(MAX_BATCH_BYTES // 65536 + 2):
            yield b"x" * 65536
    r = httpx.post(f"{server.url}/api/v1/runs/{run_id}/points", content=chunks(),
                   headers={**server.headers("admin"), "Content-Type": "application/json"})
    assert r.status_code == 413


def test_a_gzip_bomb_is_refused(server) -> None:
    run_id = _run(server)
    bomb = gzip.compress(b"[" + b"0," * (40 * 1024 * 1024) + b"0]")
    r = httpx.post(f"{server.url}/api/v1/runs/{run_id}/points", content=bomb,
                   headers={**server.headers("admin"), "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("body", [b"{", b"[]", b"null", b'{"points": "x"}', b'{"points": [[1,2,3]]}',
                                  b'{"points": [["k", -1, 1, 1.0, 0]]}', b'{"points": [["k", 1, 1, true, 0]]}',
                                  b'{"rank": "0", "points": []}', b"\xff\xfe", b'{"points": [["", 1, 1, 1, 0]]}'])
def test_malformed_batches_are_4xx(module_server, body: bytes) -> None:
    server = module_server
    run_id = _run(server)
    r = httpx.post(f"{server.url}/api/v1/runs/{run_id}/points", content=body,
                   headers={**server.headers("admin"), "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
    assert "error" in r.json()


@pytest.mark.parametrize("body", [b"{", b'{"project": 5}', b'{"project": "a/../b"}', b'{"project": "x", "lock": {}}',
                                  b'{"project": "x", "tags": []}', b"[]"])
def test_malformed_run_bodies_are_4xx(module_server, body: bytes) -> None:
    server = module_server
    r = httpx.post(f"{server.url}/api/v1/runs", content=body,
                   headers={**server.headers("admin"), "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, (body, r.status_code, r.text)


@pytest.mark.parametrize("where", [
    "1=1; DROP TABLE runs", "status == 'x' OR 1=1 --", "__import__('os').system('id')",
    "config.lr > (select 1)", "' or ''='", "status == \"finished\"; delete from runs", "a" * 5000,
    "lambda: 1",
])
def test_sql_like_filters_are_parsed_never_interpolated(module_server, where: str) -> None:
    server = module_server
    run_id = _run(server)
    r = httpx.get(f"{server.url}/api/v1/runs", params={"where": where}, headers=server.headers("admin"))
    assert 400 <= r.status_code < 500, (where, r.status_code, r.text)
    assert httpx.get(f"{server.url}/api/v1/runs/{run_id}", headers=server.headers("admin")).status_code == 200


def test_a_dunder_is_only_a_key_name_that_no_run_has(server) -> None:
    _run(server)
    r = httpx.get(f"{server.url}/api/v1/runs", params={"where": "config.lr.__class__ == 1"},
                  headers=server.headers("admin"))
    assert r.status_code == 200 and r.json()["runs"] == []


def test_an_upload_whose_bytes_do_not_match_its_name_is_refused(server) -> None:
    claimed = "sha256:" + hashlib.sha256(b"good").hexdigest()
    r = httpx.put(f"{server.url}/api/v1/objects/{claimed}", content=b"evil", headers=server.headers("editor"))
    assert r.status_code == 400
    missing = httpx.post(f"{server.url}/api/v1/objects/missing", json={"digests": [claimed]},
                         headers=server.headers("editor")).json()["missing"]
    assert missing == [claimed]
    assert not list((server.folder / "tmp").glob("upload-*"))


def test_a_client_killed_mid_upload_leaves_no_object(server) -> None:
    import socket
    data = b"y" * 1_000_000
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall((f"PUT /api/v1/objects/{digest} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                   f"{server.tokens['editor']}\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data[:300_000])
    import time
    time.sleep(0.5)
    missing = httpx.post(f"{server.url}/api/v1/objects/missing", json={"digests": [digest]},
                         headers=server.headers("editor")).json()["missing"]
    assert missing == [digest]
    r = httpx.get(f"{server.url}/api/v1/objects/{digest}", headers=server.headers("editor"))
    assert r.status_code == 404


def test_an_upload_is_no_oracle_of_what_the_server_holds(server, tmp_path) -> None:  # noqa: ANN001
    """An editor of one project cannot learn whether the server holds some bytes by naming their
    digest: an object it may not read is "missing" to it, and a PUT of it must carry bytes that
    hash to the digest (proof that it has them) before the answer says anything."""
    from tests.server.conftest import scoped_token

    secret = b"a leaked document someone might look for\n"
    digest = "sha256:" + hashlib.sha256(secret).hexdigest()
    ok = httpx.put(f"{server.url}/api/v1/objects/{digest}", content=secret, headers=server.headers("editor"))
    assert ok.status_code == 201 and ok.json()["stored"] is True
    everywhere = httpx.post(f"{server.url}/api/v1/objects/missing", json={"digests": [digest]},
                            headers=server.headers("editor"))
    assert everywhere.json()["missing"] == []                 # an editor on * may read it: no upload needed
    probe = {"Authorization": f"Bearer {scoped_token(server.folder.parent, 'prober', 'editor', 'side')}"}
    unknown = "sha256:" + hashlib.sha256(b"never stored").hexdigest()
    answer = httpx.post(f"{server.url}/api/v1/objects/missing", json={"digests": [digest, unknown]},
                        headers=probe).json()["missing"]
    assert answer == [digest, unknown]                        # held and not held read the same
    for claimed in (digest, unknown):
        r = httpx.put(f"{server.url}/api/v1/objects/{claimed}", content=b"guess", headers=probe)
        assert r.status_code == 400 and "nothing was stored" in r.json()["error"]
    proved = httpx.put(f"{server.url}/api/v1/objects/{digest}", content=secret, headers=probe)
    assert proved.status_code == 201 and proved.json() == {"digest": digest, "stored": False}
