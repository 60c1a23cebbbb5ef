"""A store with something on every page: runs (one named like a script tag), metrics, artifacts,
tags and notes, two snapshot versions, a split with a duplicate across partitions, a registered
model with an alias, and the audit entries all of that wrote."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import runlock
from runlock.data.snapshot import create_snapshot
from runlock.errors import PermissionDenied
from runlock.data.split import create_split
from runlock.registry import register, set_alias
from runlock.store import Store
from runlock.tracking import annotations, records
from runlock.ui import create_app
from runlock.verify.records import add_verification
from runlock.workspace import init

EVIL = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def ui_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """Built once per test module; tests that change it (the tampering test) build their own."""
    store = build(tmp_path_factory.mktemp("ui"))
    yield store
    store.close()


def build(tmp_path: Path) -> Store:
    (tmp_path / "ws").mkdir()
    store = init(tmp_path / "ws")
    rows = [{"id": f"r{i}", "text": f"ticket number {i}", "label": i % 2} for i in range(40)]
    rows.append({"id": "dup", "text": "ticket number 3", "label": 1})     # an exact duplicate of r3
    data = tmp_path / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    snap = create_snapshot(store, data, "tickets", id_column="id")
    data.write_text("".join(json.dumps(r) + "\n" for r in rows[:-5]))
    create_snapshot(store, data, "tickets", id_column="id")
    create_split(store, snap, name="tickets", ratios=(0.5, 0.5), seed=3, text_columns=["text"])   # seed 3 puts dup and r3 apart
    weights = tmp_path / "model.bin"
    for i, (name, lr) in enumerate([("base", 0.1), ("tuned", 0.01), ("tuned-again", 0.01), ("evil", 0.5)]):
        with runlock.start_run(project="bot", name=name, config={"lr": lr, "optim": "adam"}, seed=1,
                               tags={"team": "nlp" if i % 2 else EVIL}, store=store) as run:
            for step in range(300):
                run.log({"loss": 1.0 / (step + 1) + (0.0 if lr == 0.01 else lr), "acc": step / 300}, step=step)
            weights.write_bytes(b"w" * (100 + (1 if lr == 0.01 else i)))   # the two tuned runs agree
            run.log_artifact(weights, "model")
            if name == "evil":   # names are checked on the way in; a store written by other means may hold anything
                records.update(store, run.id, name=EVIL)
        if name == "tuned-again":   # a rerun that reproduced "tuned" bit for bit
            add_verification(store, tuned_id, "rerun", "bitwise", {"tier": "bitwise"}, rerun_id=run.id)
        if name == "tuned":
            tuned_id = run.id
            annotations.note(store, run.id, f"best so far {EVIL}")
            register(store, run.id, "model", "bot")
            set_alias(store, "model:bot@v1", "staging", reason=f"passed review {EVIL}")
    return store


@pytest.fixture(scope="module")
def client(ui_store: Store) -> TestClient:
    return TestClient(create_app(lambda: ui_store))


@pytest.fixture(scope="module")
def run_ids(client: TestClient) -> dict[str, str]:
    return {r["name"]: r["id"] for r in client.get("/runs.json").json()["runs"]}


def denying(allowed: set[str]) -> Callable:
    """An ``authorize`` that refuses every action not in ``allowed``, as the server's table would."""
    def authorize(request, action: str, target: str) -> None:  # noqa: ANN001
        if action not in allowed:
            raise PermissionDenied("viewer", action, target, "a role that allows it")
    return authorize
