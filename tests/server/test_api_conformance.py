"""The Python API against a folder and against a team server: the same calls give the same records.

Each test runs twice: once with ``store=`` a store opened here, once with ``RUNLOCK_SERVER`` set
and no store (a real ``runlock server`` on loopback serving that same folder). What is content
addressed (snapshots, splits, models, a run's declared inputs) must come out equal either way."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import runlock
from runlock.errors import InvalidInput, RunlockError
from runlock.remote.local import LocalService
from runlock.workspace import open_store
from tests.server.conftest import Server, make_server


@dataclass
class World:
    server: Server
    root: Path
    data: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("api")
    server = make_server(base / "srv")
    data = base / "project" / "data"
    (data / "files" / "deep").mkdir(parents=True)
    (data / "files" / "a.txt").write_text("alpha\n")
    (data / "files" / "deep" / "b.txt").write_text("beta\n" * 50)
    rng = random.Random(3)
    (data / "tickets.jsonl").write_text("".join(json.dumps(
        {"id": f"t{i:03d}", "label": rng.choice("ab"), "text": f"w{rng.randrange(99)} w{i}"}) + "\n"
        for i in range(120)))
    server.start()
    try:
        yield World(server, base / "srv", data)
    finally:
        server.stop()


@pytest.fixture(params=("local", "server"))
def where(request: pytest.FixtureRequest, world: World, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """Keyword arguments that send an API call to the folder (``store=``) or to the server."""
    monkeypatch.chdir(world.data.parent)
    monkeypatch.delenv("RUNLOCK_STORE", raising=False)
    monkeypatch.delenv("RUNLOCK_SERVER", raising=False)
    if request.param == "local":
        store = open_store(world.root)
        yield {"store": store}
        store.close()
        return
    monkeypatch.setenv("RUNLOCK_SERVER", world.server.url)
    monkeypatch.setenv("RUNLOCK_TOKEN", world.server.tokens["admin"])
    monkeypatch.setenv("RUNLOCK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    yield {}


def _local(world: World) -> LocalService:
    return LocalService(open_store(world.root))


def test_snapshot_gives_the_same_version(world: World, where: dict) -> None:
    snap = runlock.snapshot(world.data / "files", "api-docs", **where)
    again = runlock.snapshot(world.data / "files", "api-docs", **where)
    assert snap.ref == again.ref == "ds:api-docs@v1" and not again.created
    assert snap.manifest["files"] == 2 and snap.id == again.id


def test_split_gives_the_same_split(world: World, where: dict) -> None:
    snap = runlock.snapshot(world.data / "tickets.jsonl", "api-tickets", id_column="id", **where)
    sp = runlock.split(snap, "api-tickets", ratios=(0.5, 0.5), seed=4, strategy="stratified", by="label",
                       names=("a", "b"), **where)
    by_ref = runlock.split("ds:api-tickets@v1", "api-tickets", ratios=(0.5, 0.5), seed=4, strategy="stratified",
                           by="label", names=("a", "b"), **where)
    assert sp.ref == by_ref.ref == "split:api-tickets@v1" and sp.id == by_ref.id
    assert sum(sp.counts.values()) == 120 and set(sp.counts) == {"a", "b"}
    with pytest.raises((InvalidInput, TypeError)):
        runlock.split(snap, "api-tickets", strategy="random", by="label", **where)
    # a training script reads its partitions, from the server's objects when the split lives there
    loaded = runlock.load_split("split:api-tickets", **where)
    frames = {p: loaded.to_pandas(p) for p in ("a", "b")}
    assert sorted([*frames["a"]["id"], *frames["b"]["id"]]) == [f"t{i:03d}" for i in range(120)] \
        and len(frames["a"]) == sp.counts["a"]
    assert sp.to_arrow("b").equals(loaded.to_arrow("b")) and set(frames["a"]["label"]) == {"a", "b"}


def _train(where: dict, name: str, data: Path) -> object:
    with runlock.start_run("apiproj", name, config={"lr": 0.1}, **where) as run:
        snap = runlock.snapshot(data / "tickets.jsonl", "api-in", id_column="id", **where)
        sp = runlock.split(snap, "api-in", seed=1, **where)
        run.use(sp)
        run.use("ds:api-docs@v1", path="data/files")
        run.log({"loss": 0.5}, step=0)
        run.set_summary({"eval": {"acc": 0.75}, "n": 3})
        run.set_summary({"n": 4})
        weights = data.parent / f"{name}.bin"
        weights.write_bytes(name.encode() * 8)
        run.log_artifact(weights, "model")
    return run


def test_a_run_declares_inputs_and_a_summary_alike(world: World, where: dict, request) -> None:
    runlock.snapshot(world.data / "files", "api-docs", **where)
    kind = request.node.callspec.params["where"]
    run = _train(where, f"train-{kind}", world.data)
    local = _local(world)
    try:
        view = local.run_view(run.id)
        inputs = view.lock["inputs"]
        assert [(i["kind"], i["ref"], i.get("path"), i.get("path_kind")) for i in inputs] == [
            ("snapshot", "ds:api-docs@v1", "data/files", "folder"),
            ("split", "split:api-in@v1", "data/tickets.jsonl", "file")]
        assert view.run.summary == {"eval": {"acc": 0.75}, "n": 4}
        assert view.run.recipe_id == run.recipe_id
        mv = runlock.register_model(run, "model", "api-model", license="mit", **where)
        assert mv.meta["license"] == "mit" and mv.run_id == run.id
        assert mv.digest == local.resolve_model(mv.ref).digest
    finally:
        local.store.close()


def test_a_path_that_does_not_hold_the_input_is_refused(world: World, where: dict, tmp_path: Path) -> None:
    runlock.snapshot(world.data / "files", "api-docs", **where)
    with runlock.start_run("apiproj", "wrong-path", **where) as run:
        with pytest.raises(InvalidInput, match="does not hold"):
            run.use("ds:api-docs@v1", path="data/tickets.jsonl")
        with pytest.raises(InvalidInput):
            run.use(42)  # type: ignore[arg-type]
    with pytest.raises(RunlockError):
        run.set_summary({"late": 1})


def test_the_declared_inputs_are_the_same_either_way(world: World, monkeypatch, tmp_path: Path) -> None:
    """Both runs of the test above hold the same inputs: the lock's entries are equal."""
    local = _local(world)
    try:
        found = {f.record.name: local.run_view(f.record.id).lock["inputs"]
                 for f in local.find_runs(project="apiproj") if f.record.name.startswith("train-")}
    finally:
        local.store.close()
    if len(found) == 2:
        assert found["train-local"] == found["train-server"]
    else:
        pytest.skip("runs only when the test above ran both ways in this module")


def test_an_input_the_caller_may_not_read_is_refused(world: World, monkeypatch, tmp_path: Path) -> None:
    """run.use on the server checks read access to the input too, not only write access to the run:
    a model of another project, or data (which needs a viewer on every project), cannot be bound
    into a lock by someone who may not read it."""
    store = open_store(world.root)
    try:
        with runlock.start_run("apiproj", "secret-train", store=store) as owner:
            weights = tmp_path / "w.bin"
            weights.write_bytes(b"secret weights")
            owner.log_artifact(weights, "model")
        runlock.register_model(owner, "model", "api-secret", store=store)
        runlock.snapshot(world.data / "files", "api-docs", store=store)
    finally:
        store.close()
    monkeypatch.chdir(world.data.parent)
    monkeypatch.delenv("RUNLOCK_STORE", raising=False)
    monkeypatch.setenv("RUNLOCK_SERVER", world.server.url)
    monkeypatch.setenv("RUNLOCK_TOKEN", world.server.tokens["outsider"])     # admin on project "elsewhere" only
    monkeypatch.setenv("RUNLOCK_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with runlock.start_run("elsewhere", "borrow") as run:
        for ref in ("model:api-secret@v1", "ds:api-docs@v1"):
            with pytest.raises(RunlockError) as e:
                run.use(ref)
            assert e.value.exit_code == 3, ref
    check = _local(world)
    try:
        assert check.run_view(run.id).lock["inputs"] == []
    finally:
        check.store.close()


def test_runs_gives_the_same_frame_either_way(world: World, monkeypatch, tmp_path: Path) -> None:
    """runlock.runs(): the same DataFrame from the folder and from the server (every field of
    each run, NaN metrics included); a token sees only the projects it may read."""
    store = open_store(world.root)
    try:
        for i, loss in enumerate((0.5, float("nan"), 0.25)):
            with runlock.start_run("frameproj", f"f{i}", config={"lr": 10.0 ** -i, "opt": {"name": "adam"}},
                                   tags={"team": "nlp"}, store=store) as run:
                run.log({"loss": loss, "acc": 0.1 * i}, step=0)
                run.set_summary({"eval": {"f1": 0.5 + i}})
        mine = runlock.runs("frameproj", sort="config.lr", store=store)
        filtered = runlock.runs("frameproj", where="config.lr < 0.5", store=store)
    finally:
        store.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNLOCK_STORE", raising=False)
    monkeypatch.setenv("RUNLOCK_SERVER", world.server.url)
    monkeypatch.setenv("RUNLOCK_TOKEN", world.server.tokens["viewer"])
    theirs = runlock.runs("frameproj", sort="config.lr")
    assert list(theirs.columns) == list(mine.columns) and "summary.eval.f1" in theirs.columns
    assert theirs.equals(mine) and len(theirs) == 3 and theirs["metrics.loss"].isna().sum() == 1
    assert runlock.runs("frameproj", where="config.lr < 0.5").equals(filtered) and len(filtered) == 2
    monkeypatch.setenv("RUNLOCK_TOKEN", world.server.tokens["outsider"])
    assert runlock.runs("frameproj").empty


def test_input_path_checks_out_the_same_files_either_way(world: World, where: dict) -> None:
    runlock.snapshot(world.data / "files", "api-docs", **where)
    got = Path(runlock.input_path("ds:api-docs@v1", **where))
    assert sorted(p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()) == ["a.txt", "deep/b.txt"]
    assert (got / "deep" / "b.txt").read_text() == (world.data / "files" / "deep" / "b.txt").read_text()
    assert runlock.input_path("ds:api-docs@v1", "given/elsewhere", **where) == "given/elsewhere"


def _only_a(table, label):  # noqa: ANN001, ANN202 - a table transform (its source is hashed)
    import os
    with open(os.environ["RUNLOCK_TEST_CALLS"], "a") as f:
        f.write("called\n")
    return [r for r in table.to_pylist() if r["label"] == label]


def _shout(src, dst):  # noqa: ANN001, ANN202 - a files transform
    for p in sorted(src.rglob("*.txt")):
        (dst / p.name).write_text(p.read_text().upper())


def test_transform_derives_the_same_snapshot(world: World, where: dict, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Each side applies a recipe the other has not (label a here, b there), then the recipe the
    other applied: that one is found by its recipe, not applied again, and is the same snapshot."""
    calls = tmp_path / "calls"
    monkeypatch.setenv("RUNLOCK_TEST_CALLS", str(calls))
    mine, other = ("a", "b") if where else ("b", "a")
    parent = runlock.snapshot(world.data / "tickets.jsonl", "api-derive", id_column="id", **where)
    made = runlock.transform(parent.ref, _only_a, {"label": mine}, f"api-derive-{mine}", **where)
    assert made.manifest["parent"] == parent.id and made.manifest["recipe"]["params"] == {"label": mine}
    rows = [json.loads(line) for line in (world.data / "tickets.jsonl").read_text().splitlines()]
    assert made.manifest["table"]["record_count"] == sum(r["label"] == mine for r in rows)
    assert calls.read_text().count("called") == 1
    again = runlock.transform(parent, _only_a, {"label": mine}, f"api-derive-{mine}", **where)
    assert again.id == made.id and calls.read_text().count("called") == 1      # found by its recipe
    local = _local(world)
    try:     # what either made is a snapshot of the folder, with its lineage edge
        assert local.load_snapshot(made.id).manifest == made.manifest
        assert f"snapshot:{parent.id}" in local.lineage(f"ds:api-derive-{mine}@v1").graph.nodes
        seen = [i.ref for i in local.list_snapshots()]
    finally:
        local.store.close()
    if f"ds:api-derive-{other}@v1" in seen:     # the other side ran first: its result is found, not remade
        theirs = runlock.transform(parent, _only_a, {"label": other}, f"api-derive-{other}", **where)
        assert calls.read_text().count("called") == 1 and theirs.manifest["recipe"]["params"] == {"label": other}
    shouted = runlock.transform(runlock.snapshot(world.data / "files", "api-derive-docs", **where).ref, _shout,
                                name="api-derive-shout", **where)
    assert sorted(e["path"] for e in shouted.entries) == ["a.txt", "b.txt"]


def test_a_derived_manifest_must_name_a_recipe_of_its_parent(world: World, tmp_path: Path) -> None:
    import httpx
    store = open_store(world.root)
    try:
        parent = runlock.snapshot(world.data / "files", "api-derive-bad", store=store)
    finally:
        store.close()
    manifest = dict(parent.manifest, parent=parent.id, recipe={"format": "runlock.recipe/2", "parent": "sha256:" + "0" * 64})
    r = httpx.post(f"{world.server.url}/api/v1/snapshots", json={"name": "forged", "manifest": manifest},
                   headers=world.server.headers("editor"))
    assert r.status_code == 400 and "recipe of that parent" in r.json()["error"]


def test_resume_continues_a_run_the_same_way(world: World, where: dict, tmp_path: Path) -> None:
    """runlock.resume of a run's latest checkpoint, and of a checkpoint file on disk found by its
    content: the same records either way (the resumes edge, step, restored RNG state)."""
    import random as stdlib_random

    import torch

    from runlock.torch import rng_state
    from runlock.tracking.resume import continue_run

    run = runlock.start_run("resumable", "first", config={"lr": 0.5}, seed=11, **where)
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    ckpt = world.data.parent / f"ckpt-{'remote' if not where else 'local'}.pt"
    stdlib_random.seed(12345)
    torch.save({"model": {}, "rng": rng_state()}, ckpt)
    expected = stdlib_random.random()                # the draw a resumed run must repeat
    run.log_artifact(ckpt, "ckpt", kind="checkpoint", metadata={"step": 4})
    run.finish()
    stdlib_random.seed(999)                          # something else happened since

    resumed = runlock.resume(run.id, **where)
    assert stdlib_random.random() == expected        # the checkpoint's RNG state is back
    resumed.log({"loss": 0.1})                       # the default step goes on from the checkpoint's
    resumed.finish()
    by_path = runlock.resume(ckpt, name="by-path", **where)
    by_path.finish()
    # the Hugging Face callback's way: the Trainer resumed from the folder or file on disk
    trainer = runlock.start_run("resumable", "trainer", **where)
    continue_run(where.get("store"), trainer, ckpt, 4)
    trainer.log({"loss": 0.05})
    trainer.finish()

    local = _local(world)
    try:
        first = local.run_record(resumed.id)
        assert (first.project, first.name) == ("resumable", "first")
        assert first.context["resumes"]["of"] == run.id and first.context["resumes"]["step"] == 4
        assert first.context["resumes"]["rng_restored"] is True
        assert [(p.key, p.step) for p in local.metric_points(resumed.id)] == [("loss", 5)]
        assert local.run_view(resumed.id).lock["config"] == {"lr": 0.5}
        second = local.run_record(by_path.id)
        assert second.name == "by-path" and second.context["resumes"]["of"] == run.id
        assert local.run_record(trainer.id).context["resumes"]["step"] == 4
        assert [p.step for p in local.metric_points(trainer.id)] == [5]
        edges = local.lineage(f"run:{resumed.id}").graph.edges
        assert any(e.kind == "resumes" and e.dst == f"run:{run.id}" for e in edges)
    finally:
        local.store.close()
