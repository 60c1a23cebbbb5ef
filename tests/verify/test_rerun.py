"""End to end: a real training script in a real git repository, rerun from its lock in fresh
processes; the rerun is bitwise equal, and every kind of change is named by the diagnosis."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import runlock

from runlock.cli.main import app
from runlock.data import create_snapshot, load_snapshot
from runlock.data.verify import verify as verify_snapshot
from runlock.errors import IntegrityError, NotFound, RunlockError
from runlock.store import Store
from runlock.store.schema import edges
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.diff import lock_changes
from runlock.verify import compare, plan_rerun, rerun, verifications_of, verify
from tests.verify.conftest import Toy, git

ARGS = ("--lr", "0.1", "--seed", "3", "--data", "ds:train@v1")


@pytest.fixture(scope="module")
def original(toy: Toy) -> str:
    return toy.train(*ARGS)


def cli(store: Store, *args: str) -> object:
    return CliRunner().invoke(app, ["--store", str(store.root), *args])


def same_recipe(store: Store, a: str, b: str) -> bool:
    """The rerun has the original's recipe id: the same lock, field for field (the branch name,
    which a detached worktree lacks, lives in the run record, not the lock)."""
    la, lb = (locks.load(store, records.get(store, r).recipe_id) for r in (a, b))
    changed = {c.field: (c.a, c.b) for cs in lock_changes(la, lb).values() for c in cs}
    assert changed == {}
    return records.get(store, a).recipe_id == records.get(store, b).recipe_id


def test_verify_reruns_bitwise_with_the_same_lock_and_records_it(toy: Toy, original: str) -> None:
    result = cli(toy.store, "verify", original, "--require", "bitwise", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found["tier"] == "bitwise" and found["kind"] == "rerun"
    assert found["report"]["diagnosis"] == [] and found["report"]["first_divergence"] is None
    new = records.get(toy.store, found["rerun_id"])
    assert new.status == "finished" and new.id != original
    assert same_recipe(toy.store, original, new.id)
    with toy.store.db.read() as conn:
        edge = conn.execute(sa.select(edges).where(edges.c.kind == "reproduces")).first()
    assert (edge.src, edge.dst) == (f"run:{new.id}", f"run:{original}")
    assert [v.tier for v in verifications_of(toy.store, original)] == ["bitwise"]
    assert git(toy.repo, "worktree", "list").count("\n") == 0  # the temporary worktree is gone


def test_one_byte_of_training_data_makes_it_different_and_names_the_snapshot(toy: Toy, original: str) -> None:
    csv = toy.data / "train.csv"
    raw = bytearray(csv.read_bytes())
    i = next(i for i, c in enumerate(raw) if chr(c).isdigit())
    raw[i] = ord("7") if raw[i] != ord("7") else ord("2")
    csv.write_bytes(bytes(raw))
    v2 = create_snapshot(toy.store, toy.data, "train")
    assert v2.ref == "ds:train@v2"
    edited = toy.train("--lr", "0.1", "--seed", "3", "--data", "ds:train@v2")
    found = compare(toy.store, original, edited)
    assert found.tier == "different"
    first = found.diagnosis[0]
    assert first["kind"] == "data" and first["field"] == "inputs.ds:train"
    assert (first["a"], first["b"]) == (load_snapshot(toy.store, "ds:train@v1").id, v2.id)
    assert found.first_divergence["metric"] == "train/loss"


def test_a_changed_learning_rate_is_named_as_the_config_key(toy: Toy, original: str) -> None:
    other = toy.train("--lr", "0.05", "--seed", "3", "--data", "ds:train@v1")
    found = compare(toy.store, original, other)
    assert found.tier == "different"
    assert found.diagnosis[0] == {"field": "config.lr", "a": 0.1, "b": 0.05, "kind": "config"}
    assert found.first_divergence == {"metric": "train/loss", "step": 0, "a": found.first_divergence["a"],
                                      "b": found.first_divergence["b"]}
    assert found.first_divergence["a"] != found.first_divergence["b"]
    assert {o.name: o.tier for o in found.outputs}["artifact:weights"] == "different"


def test_uncommitted_changes_are_rebuilt_from_the_recorded_diff(toy: Toy) -> None:
    script = toy.repo / "train.py"
    clean = script.read_text()
    script.write_text(clean.replace("size=8", "size=16"))  # a real change, never committed
    try:
        dirty = toy.train(*ARGS)
    finally:
        script.write_text(clean)
    lock = locks.load(toy.store, records.get(toy.store, dirty).recipe_id)
    assert lock["code"]["git"]["dirty"] and lock["code"]["git"]["diff"]
    again = rerun(toy.store, dirty)  # the work tree is clean now: only the recorded diff has the change
    assert again.status == "finished"
    assert same_recipe(toy.store, dirty, again.run_id)
    assert compare(toy.store, dirty, again.run_id).tier == "bitwise"


def test_a_commit_missing_from_the_repository_is_named(toy: Toy, original: str, tmp_path: Path) -> None:
    other = tmp_path / "unrelated"
    other.mkdir()
    git(other, "init", "-q")
    git(other, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "--allow-empty", "-m", "x")
    commit = locks.load(toy.store, records.get(toy.store, original).recipe_id)["code"]["git"]["commit"]
    with pytest.raises(RunlockError, match=f"Commit {commit} .* not in the repository") as err:
        rerun(toy.store, original, repo=other)
    assert "git fetch origin" in str(err.value)
    result = cli(toy.store, "rerun", original, "--repo", str(other))
    assert result.exit_code == 1 and commit in result.output and "Traceback" not in result.output
    recorded = verify(toy.store, original, repo=other)  # an audit wants this outcome kept
    assert recorded.tier == "failed" and commit in recorded.report["error"]


def test_lost_snapshot_objects_are_named(toy: Toy, original: str, tmp_path: Path) -> None:
    root = shutil.copytree(toy.store.root, tmp_path / "copy" / ".runlock")
    copy = Store.open(root)
    try:
        lost = load_snapshot(copy, "ds:train@v1").entries[0]["sha256"]
        copy.objects.delete(lost)
        with pytest.raises(IntegrityError) as err:
            rerun(copy, original)
        assert "train.csv" in str(err.value) and lost in str(err.value) and "fsck" in str(err.value)
        problems = verify_snapshot(copy, "ds:train@v1").problems
        assert [(p.path, p.object, p.problem) for p in problems] == [("train.csv", lost, "missing")]
    finally:
        copy.close()
    assert git(toy.repo, "worktree", "list").count("\n") == 0  # cleaned up after the failure too


def test_runs_runlock_did_not_start_from_a_command_are_refused(toy: Toy) -> None:
    with pytest.raises(NotFound):
        rerun(toy.store, "01NOSUCHRUN000000000000000")
    with runlock.start_run(project="nb", store=toy.store, argv=["-c"]) as run:
        run.log({"x": 1.0}, step=0)
    with pytest.raises(RunlockError, match="not started from a command runlock can replay"):
        plan_rerun(toy.store, run.id)


def test_the_environment_drift_is_known_before_the_rerun_starts(toy: Toy, original: str) -> None:
    plan = plan_rerun(toy.store, original)
    assert plan.style == "script" and plan.argv == ["train.py", *ARGS]
    assert plan.drift.drift == [] and plan.drift.expectation == "bitwise"
    assert "PYTHONHASHSEED" in plan.env_unset  # recorded as unset, so the rerun unsets it too
    assert subprocess.run(["git", "status", "--porcelain"], cwd=toy.repo, capture_output=True,
                          text=True).stdout == ""
