"""Inputs where the script expects them (issue 13): a script that snapshots gitignored data by path
inside itself, and reads a model folder by path, reruns unchanged in an isolated worktree; the
inputs come back at the paths the original run found them, so the rerun writes the same paths
into its outputs and compares ``bitwise`` with the same recipe id."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import runlock
from runlock.errors import RunlockError
from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.verify import compare, plan_rerun, rerun
from runlock.verify.inputs import place
from tests.verify.conftest import git, write_data

SCRIPT = textwrap.dedent('''
    import json, os
    import numpy as np
    import runlock

    snap = runlock.snapshot("data/train.csv", name="train")
    base = runlock.snapshot("models/base", name="base")
    with runlock.start_run(project="paths", name="fit", config={"lr": 0.1}, seed=0) as run:
        run.use(snap)
        run.use(base)
        xy = np.loadtxt("data/train.csv", delimiter=",")
        w0 = np.frombuffer(open("models/base/w.bin", "rb").read())
        w = w0 - 0.1 * xy[:, :3].T @ (xy[:, :3] @ w0 - xy[:, 3]) / len(xy)
        run.log({"loss": float(np.mean((xy[:, :3] @ w - xy[:, 3]) ** 2))}, step=0)
        os.makedirs("out/adapter", exist_ok=True)
        with open("out/adapter/config.json", "w") as f:
            json.dump({"base_model_name_or_path": os.path.join("models", "base")}, f)
        with open("out/adapter/w.bin", "wb") as f:
            f.write(w.tobytes())
        run.log_artifact("out/adapter", name="adapter", kind="model")
''')


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store, str]:
    root = tmp_path_factory.mktemp("paths")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    (root / ".gitignore").write_text("data/\nmodels/\nout/\n.runlock/\n")
    (root / "train.py").write_text(SCRIPT)
    write_data(root / "data")
    (root / "models" / "base").mkdir(parents=True)
    (root / "models" / "base" / "w.bin").write_bytes(b"\0" * 24)
    store = runlock.init(root)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "script")
    done = subprocess.run([sys.executable, "train.py"], cwd=root, capture_output=True, text=True,
                          env={**_env(), "RUNLOCK_STORE": str(store.root)})
    assert done.returncode == 0, done.stderr
    (run_id,) = [r.id for r in records.list_runs(store)]
    yield root, store, run_id
    store.close()


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")}


def test_the_lock_records_where_the_run_found_each_input(project: tuple[Path, Store, str]) -> None:
    root, store, run_id = project
    inputs = locks.load(store, records.get(store, run_id).recipe_id)["inputs"]
    assert {(i["ref"], i["path"], i["path_kind"]) for i in inputs} == {
        ("ds:train@v1", "data/train.csv", "file"), ("ds:base@v1", "models/base", "folder")}
    notes = plan_rerun(store, run_id).notes
    assert any("data/train.csv (ds:train@v1)" in n and "models/base (ds:base@v1)" in n for n in notes)


def test_an_isolated_rerun_finds_gitignored_inputs_at_their_paths_and_is_bitwise(
        project: tuple[Path, Store, str], monkeypatch: pytest.MonkeyPatch) -> None:
    root, store, run_id = project
    monkeypatch.chdir(root)
    done = rerun(store, run_id, isolated=True)
    assert done.status == "finished", done
    found = compare(store, run_id, done.run_id)
    assert found.tier == "bitwise", [o for o in found.outputs if o.tier != "bitwise"]
    assert records.get(store, done.run_id).recipe_id == records.get(store, run_id).recipe_id


def test_in_place_never_overwrites_other_bytes_at_a_recorded_path(project: tuple[Path, Store, str],
                                                                  tmp_path: Path) -> None:
    root, store, run_id = project
    inputs = locks.load(store, records.get(store, run_id).recipe_id)["inputs"]
    here = tmp_path / "checkout"
    here.mkdir()
    placed = {p.path: p.written for p in place(store, inputs, here, replace=False)}   # missing: rebuilt
    assert placed == {"data/train.csv": 1, "models/base": 1}
    assert (here / "data/train.csv").read_bytes() == (root / "data/train.csv").read_bytes()
    assert {p.path: p.written for p in place(store, inputs, here, replace=False)} == {
        "data/train.csv": 0, "models/base": 0}                                    # already right: kept
    (here / "models/base/w.bin").write_bytes(b"edited")
    with pytest.raises(RunlockError, match="models/base/w.bin"):
        place(store, inputs, here, replace=False)
    assert (here / "models/base/w.bin").read_bytes() == b"edited"
    place(store, inputs, here, replace=True)                                       # a temporary worktree
    assert (here / "models/base/w.bin").read_bytes() == b"\0" * 24
