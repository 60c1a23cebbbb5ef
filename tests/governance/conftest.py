"""A small governed world: a git project, a finished run with a model folder and an eval report,
the model registered, and identities of every role, built by factories on any store."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import runlock
from runlock import identity, registry
from runlock.data import create_snapshot
from runlock.store import Store


# The world's policy: what `runlock check` (and so the production gate) asks of it. A rerun
# ("verified") and test metrics are left out; tests that need them write their own.
POLICY = """[check]
rules = ["code-committed", "inputs-pinned", "split-leakage", "environment-complete"]
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=cwd,
                   check=True, capture_output=True)


@dataclass
class World:
    store: Store
    repo: Path
    run_id: str
    model: registry.ModelVersion
    model_dir: Path
    tokens: dict[str, str]          # role -> a token of an identity holding exactly that role

    def as_role(self, role: str) -> Store:
        """A second handle on the same store acting as the identity with ``role``."""
        return runlock.open_store(self.store.root, token=self.tokens[role])


@pytest.fixture
def make_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Store], World]:
    def factory(store: Store) -> World:
        repo = tmp_path / f"repo-{store.db.url.split(':', 1)[0]}"
        repo.mkdir()
        (repo / "train.py").write_text("print('train')\n")
        (repo / "runlock-policy.toml").write_text(POLICY)
        (repo / "data").mkdir()
        (repo / "data" / "rows.jsonl").write_text('{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\n')
        git(repo, "init", "-q")
        git(repo, "add", "train.py", "runlock-policy.toml")
        git(repo, "commit", "-q", "-m", "init")
        monkeypatch.chdir(repo)
        snap = create_snapshot(store, repo / "data", name="rows")
        model_dir = repo / "out" / "adapter"
        model_dir.mkdir(parents=True)
        (model_dir / "weights.bin").write_bytes(bytes(range(256)) * 4)
        (model_dir / "config.json").write_text('{"r": 8}')
        (repo / "out" / "eval.json").write_text('{"f1": 0.91}')
        with runlock.start_run(project="bot", name="lora", config={"lr": 0.1}, seed=7, store=store) as run:
            run.use(snap)
            run.log_artifact(model_dir, name="adapter", kind="model")
            run.log_artifact(repo / "out" / "eval.json", name="eval", kind="evaluation")
        mv = registry.register(store, run.id, "adapter", "bot")
        tokens = {}
        for role in ("viewer", "editor", "maintainer", "admin"):
            identity.create_identity(store, role + "-user")
            identity.grant_role(store, role + "-user", role)
            tokens[role] = identity.issue_token(store, role + "-user").token
        return World(store, repo, run.id, mv, model_dir, tokens)

    return factory
