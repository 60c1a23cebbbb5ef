"""One conformance suite for both implementations of the client interface (``remote.interface``):
``LocalService`` over a store opened here, and ``HttpService`` against a real ``runlock server``
(uvicorn on loopback) serving that same store. The same test functions run against each; where
both can answer the same question, the answers must be equal. Then the CLI: each converted
command prints the same text against the folder (``--store``) and against the server
(``RUNLOCK_SERVER``); a command not served yet refuses in one line with exit status 2."""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import runlock
from runlock import auditlog, registry
from runlock.cli.main import app
from runlock.errors import InvalidInput, NotFound, RunlockError
from runlock.remote.client import Client
from runlock.remote.http import HttpService
from runlock.remote.interface import SplitRequest
from runlock.remote.local import LocalService
from runlock.paths import UnsafePath
from runlock.workspace import open_store
from tests.server.conftest import Server, make_server

IMPLEMENTATIONS = ("local", "http")


@dataclasses.dataclass
class World:
    server: Server
    root: Path          # the folder holding the store
    data: Path          # files to snapshot
    runs: list[str]


def refused(*calls: Callable[[], object]) -> None:
    """Each call is refused as a permission error (exit status 3), whoever asks and whatever exists."""
    for call in calls:
        with pytest.raises(RunlockError) as e:
            call()
        assert e.value.exit_code == 3, call


def _seed(root: Path, data: Path) -> list[str]:
    store = open_store(root)
    ids = []
    try:
        for i, lr in enumerate((0.1, 0.01, 0.001)):
            run = runlock.start_run("proj", f"r{i}", config={"lr": lr, "layers": i + 1}, store=store)
            for step in range(5):
                run.log({"loss": lr * (5 - step), "acc": 0.1 * step}, step=step)
            weights = data / f"w{i}.bin"
            weights.write_bytes(bytes([i]) * 1000)
            run.log_artifact(weights, "model")
            folder = data / f"ckpt{i}"
            (folder / "sub").mkdir(parents=True)
            (folder / "config.json").write_text(json.dumps({"lr": lr}))
            (folder / "sub" / "weights.bin").write_bytes(bytes([i, 1]) * 500)
            run.log_artifact(folder, "checkpoint")
            run.finish()
            ids.append(run.id)
        runlock.register_model(ids[0], "model", "bot", store=store)
    finally:
        store.close()
    return ids


def _data(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "files" / "deep").mkdir(parents=True)
    (folder / "files" / "a.txt").write_text("alpha\n")
    (folder / "files" / "deep" / "b.txt").write_text("beta\n" * 100)
    rng = random.Random(7)
    (folder / "tickets.jsonl").write_text("".join(
        json.dumps({"id": f"t{i:04d}", "text": " ".join(f"w{rng.randrange(500)}" for _ in range(12)),
                    "label": rng.choice("abc")}) + "\n" for i in range(300)))
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("conformance")
    server = make_server(base / "srv")
    data = _data(base / "data")
    ids = _seed(base / "srv", data)
    server.start()
    try:
        yield World(server, base / "srv", data, ids)
    finally:
        server.stop()


def _service(kind: str, world: World):  # noqa: ANN202
    if kind == "local":
        return LocalService(open_store(world.root))
    return HttpService(Client(world.server.url, world.server.tokens["admin"]))


@pytest.fixture(params=IMPLEMENTATIONS)
def svc(request: pytest.FixtureRequest, world: World, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.delenv("RUNLOCK_SERVER", raising=False)
    s = _service(request.param, world)
    yield s
    s.close()
    if request.param == "local":
        s.store.close()


@pytest.fixture
def both(world: World, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.delenv("RUNLOCK_SERVER", raising=False)
    local, http = _service("local", world), _service("http", world)
    yield local, http
    http.close()
    local.store.close()


# -- the same calls, the same answers --------------------------------------------------------------
@pytest.mark.parametrize("query", [
    {},
    {"where": "config.lr < 0.05", "sort": "-config.lr"},
    {"sort": "config.layers", "limit": 2},
    {"project": "proj", "status": "finished", "where": "metrics.loss >= 0.005"},
    {"deleted": True},
])
def test_find_runs_gives_the_same_runs(both, query: dict) -> None:
    local, http = both
    mine, theirs = local.find_runs(**query), http.find_runs(**query)
    assert mine == theirs
    if query.get("limit"):
        assert len(mine) == query["limit"]


def test_runs_are_found_filtered_and_sorted(svc, world: World) -> None:
    found = svc.find_runs(where="config.lr < 0.05", sort="config.lr")
    assert [f.record.id for f in found] == [world.runs[2], world.runs[1]]
    assert [f.fields["config.lr"] for f in found] == [0.001, 0.01]


def test_a_bad_filter_is_invalid_input_in_both(svc) -> None:
    with pytest.raises(InvalidInput):
        svc.find_runs(where="config.lr >")


def test_short_ids_and_run_views_agree(both, world: World) -> None:
    local, http = both
    assert local.short_ids(world.runs) == http.short_ids(world.runs)
    for run_id in world.runs:
        assert local.run_view(run_id[:10]) == http.run_view(run_id[:10])


def test_a_run_view_holds_lock_metrics_and_artifacts(svc, world: World) -> None:
    view = svc.run_view(world.runs[1])
    assert view.run.id == world.runs[1] and view.lock["config"] == {"lr": 0.01, "layers": 2}
    assert {m.key: m.steps for m in view.metrics} == {"acc": 5, "loss": 5}
    assert sorted(a.name for a in view.artifacts) == ["checkpoint", "model"]


def test_a_missing_run_or_model_is_not_found_in_both(svc) -> None:
    with pytest.raises(NotFound):
        svc.run_view("01HZZZZZZZZZZZZZZZZZZZZZZZ")
    with pytest.raises(NotFound):
        svc.resolve_model("model:nobody")


def test_models_listed_and_resolved_alike(both) -> None:
    local, http = both
    assert local.list_models() == http.list_models()
    assert local.list_models("bot") == http.list_models("bot")
    assert local.resolve_model("model:bot") == http.resolve_model("model:bot@v1")


def test_the_audit_log_verifies_alike(both) -> None:
    local, http = both
    theirs = http.verify_audit(deep=True)
    mine = local.verify_audit(deep=True)
    assert theirs.ok and mine.ok
    assert dataclasses.asdict(mine) == dataclasses.asdict(theirs)


def test_metrics_diffs_and_comparisons_agree(both, world: World) -> None:
    local, http = both
    for r in world.runs:
        assert local.metric_summaries(r) == http.metric_summaries(r)
        assert list(local.metric_points(r, keys=["loss"])) == list(http.metric_points(r, keys=["loss"]))
        assert list(local.metric_points(r)) == list(http.metric_points(r))
    assert local.metric_summaries(world.runs[0], rank=1) == http.metric_summaries(world.runs[0], rank=1) == []
    a, b = world.runs[0], world.runs[1][:10]
    assert local.diff_runs(a, b) == http.diff_runs(a, b) and local.diff_runs(a, b).fields
    assert local.compare_runs(world.runs) == http.compare_runs(world.runs)
    assert local.compare_runs(world.runs, only_differences=True) == http.compare_runs(world.runs, only_differences=True)


def test_snapshots_and_splits_are_listed_and_loaded_alike(both, world: World) -> None:
    _named(world)
    local, http = both
    assert local.list_snapshots() == http.list_snapshots() and len(local.list_snapshots()) >= 2
    assert local.list_snapshots("cat-docs") == http.list_snapshots("cat-docs")
    assert local.load_snapshot("ds:cat-tickets") == http.load_snapshot("ds:cat-tickets@v1")
    assert local.list_splits() == http.list_splits()
    mine, theirs = local.load_split("split:cat-tickets"), http.load_split("split:cat-tickets@v1")
    assert (mine.id, mine.manifest, mine.ref, mine.leakage) == (theirs.id, theirs.manifest, theirs.ref, theirs.leakage)
    with pytest.raises(NotFound):
        http.load_snapshot("ds:nothing")


def test_alias_history_and_the_audit_log_agree(both, world: World) -> None:
    _named(world)
    local, http = both
    assert local.model_history("bot") == http.model_history("bot") and local.model_history("bot")
    assert local.aliases_at("bot", "2100-01-01") == http.aliases_at("bot", "2100-01-01")
    assert local.audit_log(limit=None) == http.audit_log(limit=None)
    assert local.audit_log(action="model.*", limit=3) == http.audit_log(action="model.*", limit=3)


def test_the_reading_routes_hold_to_roles(world: World) -> None:
    _named(world)
    viewer = HttpService(Client(world.server.url, world.server.tokens["viewer"]))
    outsider = HttpService(Client(world.server.url, world.server.tokens["outsider"]))
    try:
        assert viewer.list_snapshots() and viewer.list_splits() and viewer.diff_runs(*world.runs[:2])
        refused(outsider.list_snapshots, outsider.list_splits, lambda: outsider.load_split("split:cat-tickets"),
                lambda: outsider.diff_runs(*world.runs[:2]), lambda: outsider.compare_runs(world.runs[:1]),
                lambda: outsider.metric_summaries(world.runs[0]), outsider.audit_log,
                lambda: outsider.model_history("bot"), lambda: outsider.aliases_at("bot", "2100-01-01"),
                lambda: list(outsider.metric_points(world.runs[0])))
    finally:
        viewer.close()
        outsider.close()


# -- writes: content-addressed results are equal, whoever writes them ---------------------------------
def test_a_snapshot_of_files_has_the_same_id_either_way(both, world: World) -> None:
    local, http = both
    theirs = http.snapshot(world.data / "files", "docs")
    mine = local.snapshot(world.data / "files", "docs")
    assert (theirs.id, theirs.manifest, theirs.ref) == (mine.id, mine.manifest, mine.ref)
    assert theirs.created and not mine.created          # one version: the same content, named once


def test_a_table_snapshot_and_its_split_are_the_same_either_way(both, world: World) -> None:
    local, http = both
    mine = local.snapshot(world.data / "tickets.jsonl", "tickets", id_column="id")
    theirs = http.snapshot(world.data / "tickets.jsonl", "tickets", id_column="id")
    assert theirs.id == mine.id and theirs.manifest == mine.manifest and theirs.record_count == 300
    request = SplitRequest("ds:tickets", name="tickets", seed=3, strategy="stratified", by="label")
    split_here, split_there = local.split(request), http.split(request)
    assert split_there.id == split_here.id and split_there.counts == split_here.counts
    assert split_there.leakage == split_here.leakage
    assert sum(split_there.counts.values()) == 300


def test_registering_and_getting_a_model_alike(both, world: World, tmp_path: Path) -> None:
    local, http = both
    there = http.register_model(world.runs[1], "checkpoint", "ckpt", {"license": "mit"})
    here = local.register_model(world.runs[1], "checkpoint", "ckpt", {"license": "mit"})
    assert (there.ref, there.digest, there.meta) == (here.ref, here.digest, here.meta)
    got_there = http.get_model("model:ckpt", tmp_path / "there")
    got_here = local.get_model("model:ckpt", tmp_path / "here")
    assert (got_there.ref, got_there.digest, got_there.files, got_there.size) == \
        (got_here.ref, got_here.digest, got_here.files, got_here.size) == (here.ref, here.digest, 2, 1000 + len(json.dumps({"lr": 0.01})))
    for rel in ("config.json", "sub/weights.bin"):
        assert (tmp_path / "there" / rel).read_bytes() == (tmp_path / "here" / rel).read_bytes()


def test_a_download_never_writes_into_a_git_folder_or_over_a_file(svc, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    with pytest.raises(InvalidInput):
        svc.get_model("model:bot", tmp_path / ".git" / "hooks")
    (tmp_path / "taken").write_text("mine")
    with pytest.raises(RunlockError):
        svc.get_model("model:bot", tmp_path / "taken")
    assert (tmp_path / "taken").read_text() == "mine"


def test_a_lying_manifest_is_refused_by_the_server(world: World) -> None:
    http = _service("http", world)
    try:
        snap = http.snapshot(world.data / "files", "docs")
        bad = json.loads(json.dumps(snap.manifest))
        bad["entries"][0]["size"] += 1
        bad["size"] += 1
        with pytest.raises(RunlockError, match="holds"):
            http.client.call("POST", "/snapshots", json={"name": "liar", "manifest": bad})
        bad = json.loads(json.dumps(snap.manifest))
        bad["entries"][0]["path"] = "../escape.txt"
        with pytest.raises(InvalidInput):
            http.client.call("POST", "/snapshots", json={"name": "liar", "manifest": bad})
        with pytest.raises(NotFound):
            http.resolve_model("model:liar")
    finally:
        http.close()


def test_a_viewer_may_read_but_not_write(world: World) -> None:
    viewer = HttpService(Client(world.server.url, world.server.tokens["viewer"]))
    try:
        assert [f.record.id for f in viewer.find_runs(sort="config.layers")] == world.runs
        assert viewer.list_models("bot")
        with pytest.raises(RunlockError) as e:
            viewer.snapshot(world.data / "files", "viewers")
        assert e.value.exit_code == 3
        with pytest.raises(RunlockError):
            viewer.register_model(world.runs[2], "model", "viewers")
    finally:
        viewer.close()


def test_alias_moves_through_the_server_are_the_domain_s_own(world: World) -> None:
    """Set and remove through the server: the same history, audited as the token's identity; the
    production alias needs an admin there as here, and a refused move leaves nothing behind."""
    store = open_store(world.root)
    local = LocalService(store)
    maintainer = HttpService(Client(world.server.url, world.server.tokens["maintainer"]))
    admin = HttpService(Client(world.server.url, world.server.tokens["admin"]))
    try:
        moved = maintainer.set_alias("model:bot@v1", "canary", reason="try it")
        assert (moved.alias, moved.to_version, moved.actor, moved.reason) == ("canary", 1, "maintainer", "try it")
        assert local.model_history("bot", "canary") == [moved] == maintainer.model_history("bot", "canary")
        before = local.model_history("bot")
        with pytest.raises(RunlockError) as e:
            maintainer.set_alias("model:bot@v1", "production", reason="ship")
        assert e.value.exit_code == 3 and "admin" in e.value.message
        assert local.model_history("bot") == before
        for svc in (admin, local):      # the production gate, in the move's transaction, on both sides
            with pytest.raises(RunlockError, match="has not passed the production gate"):
                svc.set_alias("model:bot@v1", "production", reason="ship")
        store.db.run_write(lambda conn: auditlog.append(conn, store.actor, "gate.override", "model:bot@v1",
                                                          details={"reason": "the conformance test"}))
        shipped = admin.set_alias("model:bot@v1", "production", reason="ship")
        assert shipped.actor == "admin" and local.resolve_model("model:bot@production").version == 1
        with pytest.raises(RunlockError) as e:
            maintainer.remove_alias("bot", "production", reason="oops")
        assert e.value.exit_code == 3
        gone = maintainer.remove_alias("bot", "canary", reason="done")
        assert gone.to_version is None and local.model_history("bot", "canary")[-1] == gone
        for svc in (admin, local):      # the same refusals, in the same words, from both
            with pytest.raises(NotFound):
                svc.remove_alias("bot", "canary", reason="again")
            with pytest.raises(RunlockError, match="already points at v1"):
                svc.set_alias("model:bot@v1", "production", reason="again")
        entries = [(e.actor, e.action) for e in local.audit_log(target="model:bot@canary", limit=None)]
        assert entries == [("maintainer", "model.alias"), ("maintainer", "model.alias")]
        viewer = HttpService(Client(world.server.url, world.server.tokens["viewer"]))
        with pytest.raises(RunlockError) as e:
            viewer.set_alias("model:bot@v1", "mine", reason="no")
        viewer.close()
        assert e.value.exit_code == 3
    finally:
        maintainer.close()
        admin.close()
        store.close()


def test_alias_commands_print_the_same_text(world: World) -> None:
    """Who moved it and when differ (the token's identity, the clock); the rest is the same text."""
    def norm(out: tuple[int, str]) -> tuple[int, str]:
        import re
        return out[0], re.sub(r"by \S+ at \S+:", "by WHO at WHEN:", out[1])
    for n, remote in enumerate((True, False)):
        a = f"cli{n}"
        assert norm(_cli(world, ["registry", "alias", "set", "model:bot@v1", a, "-m", "why"], remote=remote)) == \
            (0, f"model:bot@{a}: (none) -> v1  by WHO at WHEN: why\n")
        assert norm(_cli(world, ["registry", "alias", "remove", "bot", a, "-m", "done", "--json"], remote=remote))[0] == 0
    for args in (["registry", "alias", "set", "model:nobody@v1", "x", "-m", "y"],
                 ["registry", "alias", "remove", "bot", "never-set", "-m", "y"],
                 ["registry", "alias", "set", "model:bot@v1", "bad alias!", "-m", "y"],
                 ["registry", "alias", "set", "model:bot@v1", "x", "-m", " "]):
        remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
        assert remote == local and remote[0] != 0, f"{args}\nserver:\n{remote[1]}\nlocal:\n{local[1]}"


def test_an_inclusion_proof_is_the_same_from_both_and_checks(both, world: World) -> None:
    local, http = both
    from runlock import audit, keys
    there = http.audit_proof(2)         # the server signs a checkpoint covering it if none does yet
    here = local.audit_proof(2)
    assert there == here and there.to_dict()["schema"] == "runlock.audit-proof/v1"
    check = audit.check_proof(there.to_dict(), keys.public_key(local.store))
    assert check.ok and check.seq == 2, check.reasons
    with pytest.raises(NotFound):
        http.audit_proof(10**9)


def test_audit_proof_prints_the_same_text(world: World, tmp_path: Path) -> None:
    for args in (["audit", "proof", "1"], ["audit", "proof", "3", "--json"], ["audit", "proof", "999999"]):
        remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
        assert remote == local, f"{args}\nserver:\n{remote[1]}\nlocal:\n{local[1]}"
    assert _cli(world, ["audit", "proof", "1"], remote=True)[0] == 0
    r = httpx.post(f"{world.server.url}/api/v1/audit/proof", json={"seq": 1}, headers=world.server.headers("outsider"))
    assert r.status_code == 403


def test_a_checkout_writes_the_same_files_from_both(both, world: World, tmp_path: Path) -> None:
    _named(world)
    local, http = both
    here, there = local.checkout("ds:cat-docs", tmp_path / "here"), http.checkout("ds:cat-docs", tmp_path / "there")
    assert dataclasses.replace(there, dest="") == dataclasses.replace(here, dest="") and there.files == 2
    files = sorted(p.relative_to(tmp_path / "here") for p in (tmp_path / "here").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "there") for p in (tmp_path / "there").rglob("*") if p.is_file())
    assert all((tmp_path / "here" / f).read_bytes() == (tmp_path / "there" / f).read_bytes() for f in files)
    with pytest.raises(InvalidInput, match="not an empty folder"):
        http.checkout("ds:cat-docs", tmp_path / "there")


@pytest.mark.parametrize("bad", ["../escaped.txt", "/etc/passwd-copy", ".git/hooks/pre-commit", "a/../../b"])
def test_a_checkout_from_a_lying_server_writes_nothing(both, world: World, tmp_path: Path, bad: str) -> None:
    """The client checks every path of the manifest the server sends (``runlock.paths``) before it
    writes a byte: a server (or whoever sits between) that sends a path out of DEST gets nothing."""
    _named(world)
    _, http = both
    real = http.load_snapshot("ds:cat-docs")
    entries = [dict(real.entries[0]), {**real.entries[1], "path": bad}]
    crafted = dataclasses.replace(real, manifest={**real.manifest, "entries": entries})
    http.load_snapshot = lambda ref: crafted     # what a hostile server would answer
    with pytest.raises(UnsafePath, match="Nothing was written"):
        http.checkout("ds:cat-docs", tmp_path / "dest")
    assert sorted(os.listdir(tmp_path)) == [] and not (tmp_path.parent / "escaped.txt").exists()


def test_data_checkout_prints_the_same_text(world: World, tmp_path: Path) -> None:
    _named(world)
    outs = []
    for remote in (True, False):
        dest = tmp_path / ("r" if remote else "l")
        code, out = _cli(world, ["data", "checkout", "ds:cat-docs", str(dest)], remote=remote)
        outs.append((code, out.replace(str(dest), "DEST")))
    assert outs[0] == outs[1] and outs[0][0] == 0, outs
    for args in (["data", "checkout", "ds:nothing", str(tmp_path / "x")], ["data", "checkout", "ds:cat-docs", str(tmp_path / "r")]):
        assert _cli(world, args, remote=True) == _cli(world, args, remote=False), args


def test_lineage_is_the_same_walk_from_both(both, world: World) -> None:
    _named(world)
    local, http = both
    for entity, direction, depth in (("model:bot", "upstream", 10), (f"run:{world.runs[0]}", "both", 2),
                                     ("ds:cat-tickets", "downstream", 10)):
        here, there = local.lineage(entity, direction, depth), http.lineage(entity, direction, depth)
        assert there == here
        assert there.to_dict() == here.to_dict() and there.graph.nodes
    with pytest.raises(NotFound):
        http.lineage("model:nobody")


def test_lineage_refuses_an_entity_the_token_cannot_read(world: World) -> None:
    """A grant on another project reads nothing of this one (tests/server/test_lineage_scoped.py
    has what a reader of one project sees of a walk that crosses projects)."""
    for role, expected in (("viewer", 200), ("outsider", 403)):
        r = httpx.get(f"{world.server.url}/api/v1/lineage", params={"entity": "model:bot@v1"},
                      headers=world.server.headers(role))
        assert r.status_code == expected, r.text
    too_many = httpx.get(f"{world.server.url}/api/v1/lineage", headers=world.server.headers("viewer"),
                         params={"entity": "model:bot@v1", "max_nodes": 10**9})
    assert too_many.status_code == 422


# -- the CLI: the same text from a folder and from a server ---------------------------------------------
def _cli(world: World, args: list[str], *, remote: bool) -> tuple[int, str]:
    env = {"COLUMNS": "200", "RUNLOCK_SERVER": world.server.url if remote else None,
           "RUNLOCK_TOKEN": world.server.tokens["admin"] if remote else None, "RUNLOCK_STORE": None}
    argv = args if remote else ["--store", str(world.root), *args]
    result = CliRunner().invoke(app, argv, env=env, prog_name="runlock")
    return result.exit_code, result.output


@pytest.mark.parametrize("args", [
    ["runs", "list"],
    ["runs", "list", "--where", "config.lr < 0.05", "--sort", "-config.lr", "--limit", "1"],
    ["runs", "list", "--json", "--sort", "config.layers"],
    ["runs", "list", "--wide", "--status", "finished"],
    ["runs", "show", "RUN1"],
    ["runs", "show", "RUN0", "--json"],
    ["registry", "list"],
    ["registry", "list", "bot", "--json"],
    ["registry", "show", "model:bot@v1"],
    ["registry", "show", "model:nobody"],
    ["audit", "verify"],
    ["audit", "verify", "--deep", "--json"],
    ["data", "snapshot", "DATA/files", "--name", "cli-docs"],
    ["data", "snapshot", "DATA/tickets.jsonl", "--name", "cli-tickets", "--id-column", "id", "--json"],
    ["metrics", "RUN1"],
    ["metrics", "RUN0", "--json", "--key", "loss", "--rank", "0"],
    ["metrics", "RUN1", "--csv", "--key", "acc"],
    ["metrics", "RUN1", "--csv"],
    ["runs", "diff", "RUN0", "RUN1"],
    ["runs", "diff", "RUN0", "RUN2", "--json"],
    ["runs", "compare", "RUN0", "RUN1", "RUN2"],
    ["runs", "compare", "RUN0", "RUN1", "--all", "--wide"],
    ["runs", "compare", "RUN0", "RUN2", "--json"],
    ["runs", "diff", "RUN0", "01HZZZZZZZZZZZZZZZZZZZZZZZ"],
    ["data", "list"],
    ["data", "list", "cat-docs", "--json"],
    ["data", "show", "ds:cat-docs"],
    ["data", "show", "ds:cat-tickets@v1", "--files", "--json"],
    ["data", "show", "ds:nothing"],
    ["split", "list"],
    ["split", "list", "cat-tickets", "--json"],
    ["split", "show", "split:cat-tickets@v1"],
    ["split", "show", "split:cat-tickets", "--pairs", "--json"],
    ["registry", "history", "bot"],
    ["registry", "history", "bot", "--alias", "prod", "--json"],
    ["registry", "history", "bot", "--at", "2100-01-01"],
    ["registry", "history", "nobody"],
    ["audit", "log"],
    ["audit", "log", "--action", "model.*", "--json"],
    ["audit", "log", "--target", "model:bot@v1", "--limit", "2"],
    ["lineage", "model:bot"],
    ["lineage", "model:bot@v1", "--json"],
    ["lineage", "run:RUN0", "--downstream", "--wide"],
    ["lineage", "run:RUN2", "--upstream", "--downstream", "--depth", "1"],
    ["lineage", "ds:cat-docs", "--downstream", "--format", "dot"],
    ["lineage", "ds:cat-tickets", "--downstream", "--max-nodes", "2", "--json"],
    ["lineage", "model:nobody"],
    ["data", "diff", "ds:cat-docs@v1", "ds:cat-docs"],
    ["data", "diff", "ds:cat-edit@v1", "ds:cat-edit@v2", "--json"],
    ["data", "diff", "ds:cat-edit@v1", "ds:cat-edit@v2"],
    ["data", "diff", "ds:cat-docs", "ds:nothing"],
    ["artifacts", "list"],
    ["artifacts", "list", "--run", "RUN1", "--json"],
    ["artifacts", "list", "--kind", "checkpoint", "--wide", "--limit", "2"],
    ["artifacts", "list", "--name", "model", "--limit", "0"],
    ["artifacts", "show", "RUN0/checkpoint"],
    ["artifacts", "show", "RUN1/model", "--json"],
    ["artifacts", "show", "RUN0/nothing"],
    ["artifacts", "show", "art:sha256:0000000000000000000000000000000000000000000000000000000000000000"],
])
def test_each_served_command_prints_the_same_text(world: World, args: list[str], monkeypatch) -> None:
    args = [a.replace("RUN1", world.runs[1][:12]).replace("RUN0", world.runs[0]).replace("RUN2", world.runs[2])
            .replace("DATA", str(world.data)) for a in args]
    if args[:2] == ["data", "snapshot"]:       # named once beforehand: both print "Snapshot …", not "Created"
        _cli(world, args, remote=False)
    if args[0] in ("data", "split") and args[1] in ("list", "show", "diff") or args[:2] == ["registry", "history"] \
            or args[0] == "lineage":
        _named(world)
    remote = _cli(world, args, remote=True)
    local = _cli(world, args, remote=False)
    assert remote == local, f"server:\n{remote[1]}\nlocal:\n{local[1]}"
    made_up = any(w in a for a in args for w in ("model:nobody", "nothing", "ZZZZZZ", "0" * 64))
    assert (local[0] != 0) == made_up, local[1]      # an answer, not the same error twice


def _named(world: World) -> None:
    """ds:cat-docs, ds:cat-tickets and split:cat-tickets exist (whichever test runs first names them)."""
    store = open_store(world.root)
    try:
        svc = LocalService(store)
        svc.snapshot(world.data / "files", "cat-docs")
        svc.snapshot(world.data / "tickets.jsonl", "cat-tickets", id_column="id")
        svc.split(SplitRequest("ds:cat-tickets", name="cat-tickets", seed=3, strategy="stratified", by="label"))
        svc.snapshot(world.data / "tickets.jsonl", "cat-edit", id_column="id")
        edited = world.data / "edited" / "tickets.jsonl"        # one record changed, one gone, one new
        if not edited.exists():
            lines = (world.data / "tickets.jsonl").read_text().splitlines()
            lines[3] = json.dumps({**json.loads(lines[3]), "label": "z"})
            del lines[7]
            lines.append(json.dumps({"id": "t9999", "text": "new", "label": "a"}))
            edited.parent.mkdir()
            edited.write_text("\n".join(lines) + "\n")
        svc.snapshot(edited, "cat-edit", id_column="id")
        if not svc.model_history("bot", "prod"):
            registry.set_alias(store, "model:bot@v1", "prod", reason="first")
    finally:
        store.close()


def test_split_create_prints_the_same_text(world: World) -> None:
    _cli(world, ["data", "snapshot", str(world.data / "tickets.jsonl"), "--name", "split-src",
                 "--id-column", "id"], remote=False)
    args = ["split", "create", "ds:split-src", "--seed", "5", "--name", "cli-split"]
    first = _cli(world, args, remote=True)
    assert first[0] == 0, first[1]
    assert _cli(world, args, remote=True) == _cli(world, args, remote=False)


def test_registry_get_prints_the_same_text_but_the_destination(world: World, tmp_path: Path) -> None:
    code_r, out_r = _cli(world, ["registry", "get", "model:bot", str(tmp_path / "r.bin")], remote=True)
    code_l, out_l = _cli(world, ["registry", "get", "model:bot", str(tmp_path / "l.bin")], remote=False)
    assert (code_r, out_r.replace("r.bin", "X")) == (code_l, out_l.replace("l.bin", "X")) and code_r == 0
    assert (tmp_path / "r.bin").read_bytes() == (tmp_path / "l.bin").read_bytes() == bytes([0]) * 1000


@pytest.mark.parametrize("args", [["gc"], ["pipeline", "status"], ["fsck"]])
def test_a_command_not_served_yet_says_so_in_one_line(world: World, args: list[str]) -> None:
    code, out = _cli(world, [a.replace("RUN0", world.runs[0]) for a in args], remote=True)
    assert code == 2, out
    assert "does not work against a runlock server yet" in out and "Traceback" not in out
    assert len([line for line in out.splitlines() if line.strip()]) <= 2    # the line, wrapped at most once


def test_an_explicit_store_wins_over_the_server(world: World) -> None:
    result = CliRunner().invoke(app, ["--store", str(world.root), "data", "list"],
                                env={"RUNLOCK_SERVER": world.server.url, "COLUMNS": "200"})
    assert result.exit_code == 0 and "docs" in result.output or "cli-docs" in result.output


def test_an_unreachable_server_is_one_line(world: World) -> None:
    result = CliRunner().invoke(app, ["runs", "list"], env={"RUNLOCK_SERVER": "http://127.0.0.1:9",
                                                            "RUNLOCK_STORE": None})
    assert result.exit_code != 0 and "did not answer" in result.output and "Traceback" not in result.output
    assert os.environ.get("RUNLOCK_SERVER") is None


def test_a_nan_metric_prints_the_same_from_a_server(world: World) -> None:
    """Last: it adds a run. JSON cannot carry NaN; the server sends "nan" and the client turns a
    metric's "nan" back into a NaN, so `--json` says "NaN" and a table "nan" either way."""
    store = open_store(world.root)
    try:
        with runlock.start_run("nanproj", "nan", config={"lr": 1.0}, store=store) as run:
            run.log({"loss": 0.5, "acc": float("inf")}, step=0)
            run.log({"loss": float("nan")}, step=1)
    finally:
        store.close()
    for args in (["runs", "list", "--project", "nanproj", "--sort", "metrics.loss", "--json"],
                 ["runs", "list", "--project", "nanproj", "--sort", "metrics.loss"],
                 ["runs", "show", run.id, "--json"], ["metrics", run.id, "--json"], ["metrics", run.id, "--csv"],
                 ["runs", "compare", run.id, world.runs[0], "--json"], ["runs", "compare", run.id, world.runs[0]],
                 ["runs", "diff", run.id, world.runs[0], "--json"]):
        remote, local = _cli(world, args, remote=True), _cli(world, args, remote=False)
        assert remote == local and remote[0] == 0, f"{args}\nserver:\n{remote[1]}\nlocal:\n{local[1]}"
    for args in (["runs", "compare", run.id, world.runs[0], "--json"], ["metrics", run.id, "--json"],
                 ["runs", "list", "--project", "nanproj", "--sort", "metrics.loss", "--json"]):
        assert '"NaN"' in _cli(world, args, remote=True)[1], args


def test_a_long_run_streams_its_points_in_order(world: World, tmp_path: Path) -> None:
    """`metrics --csv` of a run with many points: the server streams them (one per line) as it
    reads them, and the file is the one a local store writes, byte for byte."""
    store = open_store(world.root)
    try:
        run = runlock.start_run("proj", "long", store=store)
        for step in range(6000):
            run.log({"loss": 1.0 / (step + 1), "acc": float("nan") if step == 7 else step / 6000}, step=step)
        run.finish()
    finally:
        store.close()
    outs = []
    for remote in (True, False):
        out = tmp_path / f"{remote}.csv"
        assert _cli(world, ["metrics", run.id, "--csv", "-o", str(out)], remote=remote)[0] == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 12_001
    code, out = _cli(world, ["metrics", "01HZZZZZZZZZZZZZZZZZZZZZZZ", "--csv", "-o", str(tmp_path / "x.csv")],
                     remote=True)
    assert code != 0 and not (tmp_path / "x.csv").exists()
