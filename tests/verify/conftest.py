"""A tiny project for rerun tests: a git repository with a deterministic NumPy training script,
its training data as a snapshot, and a store; ``toy.train(...)`` runs the script as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runlock.data import create_snapshot
from runlock.store import Store
from runlock.tracking import records
from runlock.workspace import init

TRAIN = textwrap.dedent('''
    import argparse, os, tempfile
    import numpy as np
    import runlock
    from runlock import input_path

    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default="ds:train@v1")
    p.add_argument("--steps", type=int, default=12)
    a = p.parse_args()
    with runlock.start_run(project="toy", name="fit", config={"lr": a.lr, "steps": a.steps}, seed=a.seed) as run:
        run.use(a.data)
        folder = input_path(a.data)
        xy = np.loadtxt(os.path.join(folder, "train.csv"), delimiter=",")
        x, y = xy[:, :-1], xy[:, -1]
        rng = np.random.default_rng(a.seed)
        w = rng.normal(size=x.shape[1])
        for step in range(a.steps):
            idx = rng.integers(0, len(x), size=8)
            w -= a.lr * 2 * x[idx].T @ (x[idx] @ w - y[idx]) / len(idx)
            run.log({"train/loss": float(np.mean((x @ w - y) ** 2))}, step=step)
        run.set_summary({"test/mse": float(np.mean((x @ w - y) ** 2))})
        out = os.path.join(tempfile.mkdtemp(), "weights.bin")
        with open(out, "wb") as f:
            f.write(w.tobytes())
        run.log_artifact(out, name="weights", kind="model")
''')


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def write_data(folder: Path, *, noise_seed: int = 0) -> None:
    import numpy as np

    rng = np.random.default_rng(noise_seed)
    x = rng.normal(size=(64, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.1 * rng.normal(size=64)
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "train.csv", np.column_stack([x, y]), delimiter=",", fmt="%.6f")


@dataclass
class Toy:
    repo: Path
    data: Path
    store: Store

    def train(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run train.py as a user would (python train.py ARGS); return the run id it made."""
        before = {r.id for r in records.list_runs(self.store)}
        full = {**os.environ, "RUNLOCK_STORE": str(self.store.root), **(env or {})}
        full.pop("RUNLOCK_RUN_ID", None)
        done = subprocess.run([sys.executable, "train.py", *args], cwd=self.repo, env=full,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        made = [r.id for r in records.list_runs(self.store) if r.id not in before]
        assert len(made) == 1, made
        return made[0]

    def commit(self, message: str) -> str:
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", message)
        return git(self.repo, "rev-parse", "HEAD")


def toy_project(base: Path, store: Store) -> Toy:
    """A git repository with train.py committed, and its data snapshotted as ds:train@v1."""
    repo = base / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "train.py").write_text(TRAIN)
    toy = Toy(repo, base / "data", store)
    toy.commit("toy training script")
    write_data(toy.data)
    create_snapshot(store, toy.data, "train")
    return toy


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toy]:
    """One toy project per test module (training runs cost seconds; tests share them)."""
    base = tmp_path_factory.mktemp("toy")
    (base / "store").mkdir()
    store = init(base / "store")
    yield toy_project(base, store)
    store.close()
