"""`runlock lineage` for a token of one project (issue 14): a walk crosses projects (one snapshot
feeds runs of many), so a reader who may not see all of it gets the walk with every node it may
not read renamed `hidden:N` and described by nothing else: its place in the graph shows, its id
and name do not. An entity it may not read is refused, the same whether it exists or not."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

import runlock
from runlock.cli.main import app
from runlock.workspace import open_store
from tests.server.conftest import Server, scoped_token


def test_a_reader_of_one_project_sees_its_part_of_the_walk(server: Server, tmp_path: Path) -> None:
    data = tmp_path / "shared.csv"
    data.write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"w" * 100)
    store = open_store(server.folder.parent)
    try:
        snap = runlock.snapshot(data, "secret-data", store=store)
        mine = runlock.start_run("alpha", "trains", store=store)
        mine.use(snap)
        mine.log_artifact(weights, "model")
        mine.finish()
        runlock.register_model(mine.id, "model", "m", store=store)
        theirs = runlock.start_run("beta", "also-reads", store=store)
        theirs.use(snap)
        theirs.finish()
    finally:
        store.close()
    alice = scoped_token(server.folder.parent, "alice", "viewer", "alpha")

    def ask(token: str, entity: str, direction: str = "upstream") -> httpx.Response:
        return httpx.get(f"{server.url}/api/v1/lineage", params={"entity": entity, "direction": direction},
                         headers={"Authorization": f"Bearer {token}"})

    full = ask(server.tokens["viewer"], "model:m@v1").json()
    assert f"snapshot:{snap.id}" in full["nodes"]
    seen = ask(alice, "model:m@v1")
    assert seen.status_code == 200, seen.text
    view = seen.json()
    weights_key = f"artifact:{full['described']['model:m@v1']['attrs']['digest']}"
    assert set(view["nodes"]) == {"model:m@v1", weights_key, f"run:{mine.id}", "hidden:1"}
    assert view["described"]["hidden:1"] == {"key": "hidden:1", "type": "hidden", "id": "1",
                                             "label": "(not visible to you)", "names": [], "status": None,
                                             "started_at": None, "ended_at": None, "attrs": {}}
    assert len(view["edges"]) == len(full["edges"])          # the same walk, the same shape
    assert snap.id not in seen.text and "secret-data" not in seen.text and theirs.id not in seen.text

    both = ask(alice, f"run:{mine.id}", "both").text          # downstream of the snapshot: beta's run
    assert theirs.id not in both and "secret-data" not in both
    # what alice may not read: the same refusal, found or not
    for real, fake in ((f"run:{theirs.id}", "run:01HZZZZZZZZZZZZZZZZZZZZZZZ"), ("ds:secret-data@v1", "ds:ghost@v1")):
        a, b = ask(alice, real), ask(alice, fake)
        assert a.status_code == b.status_code == 403
        assert a.json()["error"].replace(real, "X") == b.json()["error"].replace(fake, "X")

    result = CliRunner().invoke(app, ["lineage", "model:m@v1"], prog_name="runlock", env={
        "RUNLOCK_SERVER": server.url, "RUNLOCK_TOKEN": alice, "RUNLOCK_STORE": None, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "(not visible to you)" in result.output and "secret-data" not in result.output
    exported = CliRunner().invoke(app, ["lineage", "model:m@v1", "--format", "prov-json"], prog_name="runlock", env={
        "RUNLOCK_SERVER": server.url, "RUNLOCK_TOKEN": alice, "RUNLOCK_STORE": None})
    assert exported.exit_code == 0, exported.output
    assert snap.id not in exported.output and json.loads(exported.output)


def test_a_token_of_one_project_names_its_runs_by_prefix(server: Server, tmp_path: Path) -> None:
    store = open_store(server.folder.parent)
    try:
        mine = runlock.start_run("alpha", "a", store=store)
        mine.finish()
        theirs = runlock.start_run("beta", "b", store=store)
        theirs.finish()
    finally:
        store.close()
    alice = scoped_token(server.folder.parent, "alice", "viewer", "alpha")
    h = {"Authorization": f"Bearer {alice}"}
    for ref in (mine.id[:8], mine.id[:8].lower(), f"run:{mine.id[:10]}"):
        r = httpx.get(f"{server.url}/api/v1/runs/{ref}", headers=h)
        assert r.status_code == 200 and r.json()["id"] == mine.id, (ref, r.text)
    # the other project's run: refused as an unknown id is, by prefix or whole
    only_theirs = theirs.id[:max(6, len(_common_prefix(mine.id, theirs.id)) + 1)]
    for ref, fake in ((only_theirs, "01HZZZZZZZZZZZZZZZZZZZZZZZ"[:len(only_theirs)]), (theirs.id, "01HZZZZZZZZZZZZZZZZZZZZZZZ")):
        a = httpx.get(f"{server.url}/api/v1/runs/{ref}", headers=h)
        b = httpx.get(f"{server.url}/api/v1/runs/{fake}", headers=h)
        assert a.status_code == b.status_code == 403
        assert a.json()["error"].replace(ref, "X") == b.json()["error"].replace(fake, "X")
    shared = _common_prefix(mine.id, theirs.id)
    if len(shared) >= 6:       # both runs share it: for alice it names hers alone
        assert httpx.get(f"{server.url}/api/v1/runs/{shared}", headers=h).json()["id"] == mine.id
    result = CliRunner().invoke(app, ["runs", "show", mine.id[:8]], prog_name="runlock", env={
        "RUNLOCK_SERVER": server.url, "RUNLOCK_TOKEN": alice, "RUNLOCK_STORE": None, "COLUMNS": "200"})
    assert result.exit_code == 0 and mine.id in result.output, result.output


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]
