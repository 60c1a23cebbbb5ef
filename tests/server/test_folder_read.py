"""A viewer of one project downloads a folder model of that project (its file list, then each file
named by it: ``GET /objects/{digest}?via={file list}``); nobody else reads those files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import runlock
from runlock import artifacts, identity
from runlock.errors import RunlockError
from runlock.remote.client import Client
from runlock.remote.http import HttpService
from runlock.workspace import open_store
from tests.server.conftest import Server, make_server


def _folder_run(store, project: str, folder: Path, content: bytes) -> tuple[str, list[str], str]:  # noqa: ANN001
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_bytes(b"{}" + content)
    (folder / "sub" / "weights.bin").write_bytes(content * 100)
    with runlock.start_run(project, "train", store=store) as run:
        art = run.log_artifact(folder, "ckpt")
    return art.manifest, [e["digest"] for e in artifacts.folder_entries(store, art)], run.id


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict]]:
    base = tmp_path_factory.mktemp("folder-read")
    server = make_server(base / "srv")
    store = open_store(base / "srv")
    try:
        mine = _folder_run(store, "proj", base / "mine", b"proj")
        theirs = _folder_run(store, "elsewhere", base / "theirs", b"else")
        runlock.register_model(mine[2], "ckpt", "folded", store=store)
        identity.create_identity(store, "projviewer")
        identity.grant_role(store, "projviewer", "viewer", "proj")
        server.tokens["projviewer"] = identity.issue_token(store, "projviewer", days=1).token
    finally:
        store.close()
    server.start()
    try:
        yield server, {"mine": mine, "theirs": theirs}
    finally:
        server.stop()


def _get(server: Server, who: str, digest: str, via: str | None = None) -> int:
    params = {"via": via} if via else None
    return httpx.get(f"{server.url}/api/v1/objects/{digest}", params=params, headers=server.headers(who)).status_code


def test_a_project_viewer_downloads_a_folder_model_of_its_project(world, tmp_path: Path) -> None:
    server, _ = world
    svc = HttpService(Client(server.url, server.tokens["projviewer"]))
    try:
        got = svc.get_model("model:folded", tmp_path / "out")
    finally:
        svc.close()
    assert got.files == 2
    assert (tmp_path / "out" / "sub" / "weights.bin").read_bytes() == b"proj" * 100


def test_the_files_are_readable_only_through_a_list_that_names_them(world) -> None:
    server, found = world
    manifest, files, _ = found["mine"]
    other_manifest, other_files, _ = found["theirs"]
    assert all(_get(server, "projviewer", f, manifest) == 200 for f in files)
    assert all(_get(server, "projviewer", f) == 403 for f in files)                  # no list named
    assert _get(server, "projviewer", other_files[0], manifest) == 403                # a list that does not name it
    assert _get(server, "projviewer", other_files[0], other_manifest) == 403          # a list of another project
    assert _get(server, "projviewer", other_manifest) == 403


def test_a_viewer_of_another_project_still_gets_403(world, tmp_path: Path) -> None:
    server, found = world
    manifest, files, _ = found["mine"]
    assert all(_get(server, "outsider", f, manifest) == 403 for f in [manifest, *files])
    svc = HttpService(Client(server.url, server.tokens["outsider"]))
    try:
        with pytest.raises(RunlockError) as e:
            svc.get_model("model:folded", tmp_path / "out")
    finally:
        svc.close()
    assert e.value.exit_code == 3 and not (tmp_path / "out").exists()
