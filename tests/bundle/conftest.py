"""A demo-like model, cheap: a tiny script committed in a git repository snapshots its data,
splits it, trains a one-number model, logs it as an artifact and registers it as model:tiny@v1."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runlock import keys
from runlock.store import Store
from runlock.tracking import records
from runlock.workspace import init

TRAIN = textwrap.dedent('''
    import json, os
    import runlock

    rows = [{"id": f"r{i}", "x": i, "y": (i * 7) % 5} for i in range(40)]
    os.makedirs("data", exist_ok=True)
    with open("data/rows.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\\n")
    snap = runlock.snapshot("data/rows.jsonl", name="rows", id_column="id")
    split = runlock.split(snap, name="rows", ratios=(0.8, 0.1, 0.1), seed=7)
    with runlock.start_run(project="tiny", name="fit", config={"lr": 0.5}, seed=7) as run:
        run.use(split)
        train = [r for r in rows if r["id"] in set(split.ids("train"))]
        w = 0.0
        for step in range(5):
            target = sum(r["y"] for r in train) / len(train)
            w += 0.5 * (target - w)
            run.log({"train/loss": (target - w) ** 2}, step=step)
        os.makedirs("out", exist_ok=True)
        with open("out/weights.txt", "w") as f:
            f.write(repr(w))
        run.log_artifact("out/weights.txt", name="weights", kind="model")
        run.set_summary({"test/loss": (target - w) ** 2})
    runlock.register_model(run, "weights", "tiny")
''')


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class Tiny:
    repo: Path
    store: Store
    run_id: str
    pub: Path


def tiny_project(base: Path) -> Tiny:
    (base / "store").mkdir(parents=True)
    store = init(base / "store")
    repo = base / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "train.py").write_text(TRAIN)
    (repo / ".gitignore").write_text("data/\nout/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny training script")
    env = {**os.environ, "RUNLOCK_STORE": str(store.root)}
    env.pop("RUNLOCK_RUN_ID", None)
    done = subprocess.run([sys.executable, "train.py"], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (run,) = records.list_runs(store)
    pub = base / "store.pub"
    keys.export_public(store, pub)
    return Tiny(repo, store, run.id, pub)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tiny]:
    project = tiny_project(tmp_path_factory.mktemp("tiny"))
    yield project
    project.store.close()
