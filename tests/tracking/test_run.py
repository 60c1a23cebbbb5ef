"""The run lifecycle, its lock, sealing and crash detection, on real stores and processes."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

import runlock
from runlock.errors import InvalidInput, SealedError
from runlock.store import Store
from runlock.store.schema import runs
from runlock.tracking import diff as diffs
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.wrapper import run_command
from runlock.api import open_for_writing
from runlock.workspace import open_store


def run_count(store: Store) -> int:
    with store.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar()


def test_run_records_metrics_summary_and_artifact(any_store: Store, tmp_path: Path) -> None:
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "w.bin").write_bytes(b"\x00\x01")
    with runlock.start_run(project="p", name="r", config={"lr": 1e-3}, seed=7, store=any_store) as run:
        for step in range(50):
            run.log({"train/loss": 1.0 / (step + 1), "np": np.float32(step), "nan": math.nan}, step=step)
        run.set_summary({"eval/f1": 0.5})
        art = run.log_artifact(tmp_path / "adapter", name="adapter", kind="model")
    rec = records.get(any_store, run.id)
    assert rec.status == "finished" and rec.last_step == 49 and rec.summary == {"eval/f1": 0.5}
    series = diffs.metric_series(any_store, run.id)
    assert [v for _, v in series["train/loss"]] == [1.0 / (s + 1) for s in range(50)]
    assert all(math.isnan(v) for _, v in series["nan"])
    assert art.files == 1 and art.digest.startswith("sha256:")
    lock = locks.load(any_store, rec.recipe_id)
    assert lock["config"] == {"lr": 1e-3} and lock["seed"] == 7


def test_ended_run_is_sealed(store: Store) -> None:
    with runlock.start_run(project="p", store=store) as run:
        run.log({"a": 1}, step=0)
    with pytest.raises(SealedError):
        run.log({"a": 2}, step=1)
    with pytest.raises(SealedError):
        records.update(store, run.id, summary={"x": 1})
    with pytest.raises(SealedError):
        records.end(store, run.id, "failed")
    with pytest.raises(SealedError):
        run.set_summary({"late": 1})


def test_exception_fails_the_run_with_its_traceback(store: Store) -> None:
    with pytest.raises(ZeroDivisionError):
        with runlock.start_run(project="p", store=store) as run:
            1 / 0
    rec = records.get(store, run.id)
    assert rec.status == "failed" and "ZeroDivisionError" in rec.error


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": float("nan")}, {1: 2}])
def test_config_that_is_not_json_is_refused_and_nothing_is_written(store: Store, bad: dict) -> None:
    with pytest.raises(InvalidInput, match="config"):
        runlock.start_run(project="p", config=bad, store=store)
    assert run_count(store) == 0


@pytest.mark.parametrize("values", [{"": 1.0}, {"k" * 251: 1.0}, {"v": [1, 2]}, {"v": "high"}, {"v": np.zeros(3)}])
def test_bad_metrics_are_refused_at_the_call(store: Store, values: dict) -> None:
    with runlock.start_run(project="p", store=store) as run:
        with pytest.raises(InvalidInput):
            run.log(values, step=0)


def _script(store_dir: Path, body: str) -> list[str]:
    code = "import runlock\nstore = runlock.open_store(%r)\n" % str(store_dir) + textwrap.dedent(body)
    return [sys.executable, "-c", code]


def test_sigkilled_process_leaves_a_crashed_run_with_its_flushed_points(store: Store) -> None:
    proc = subprocess.Popen(_script(store.root, """
        import sys, time
        run = runlock.start_run(project="p", store=store)
        for i in range(20):
            run.log({"loss": float(i)}, step=i)
        run.flush()
        print(run.id, flush=True)
        time.sleep(60)
    """), stdout=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rec = records.get(open_for_writing(store.root), run_id)   # the next writer reaps it
    assert rec.status == "crashed"
    assert rec.last_step == 19
    assert len(diffs.metric_series(store, run_id)["loss"]) == 20


def test_live_run_in_another_process_is_not_reaped(store: Store) -> None:
    proc = subprocess.Popen(_script(store.root, """
        import time
        run = runlock.start_run(project="p", store=store)
        print(run.id, flush=True)
        time.sleep(60)
    """), stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert records.get(open_store(store.root), run_id).status == "running"
    finally:
        proc.kill()
        proc.wait()


RECIPE = """
    run = runlock.start_run(project="p", name="n", config={"lr": 0.1, "layers": [1, 2]}, seed=3,
                            store=store, argv=["train.py", "--fast"])
    print(run.recipe_id)
    run.finish()
"""


def test_recipe_id_is_equal_across_fresh_processes(store: Store, tmp_path: Path) -> None:
    ids = {subprocess.run(_script(store.root, RECIPE), capture_output=True, text=True, check=True,
                          cwd=tmp_path).stdout.strip()
           for _ in range(2)}
    assert len(ids) == 1 and next(iter(ids)).startswith("sha256:")


def test_lock_without_git_says_so(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with runlock.start_run(project="p", store=store) as run:
        pass
    assert run.lock["code"] == {"git": None, "reason": "not inside a git repository"}


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_lock_records_commit_and_the_uncommitted_diff(store: Store, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("lr = 0.1\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-qm", "init")
    monkeypatch.chdir(repo)
    with runlock.start_run(project="p", store=store) as clean:
        pass
    (repo / "train.py").write_text("lr = 0.2\n")
    (repo / "notes.txt").write_text("untracked\n")
    with runlock.start_run(project="p", store=store) as dirty:
        pass
    g0, g1 = clean.lock["code"]["git"], dirty.lock["code"]["git"]
    assert g0["commit"] == g1["commit"] and len(g0["commit"]) == 40
    assert records.get(store, clean.id).context["git"] == {"branch": "main", "remote": None}
    assert "branch" not in g0 and "remote" not in g0  # where the code sat is not part of the recipe
    assert not g0["dirty"] and g0["diff"] is None
    assert g1["dirty"] and b"+lr = 0.2" in store.objects.get_bytes(g1["diff"])
    assert records.get(store, dirty.id).context["untracked_count"] == 1
    assert clean.recipe_id != dirty.recipe_id


def test_lock_without_torch_installed(store: Store) -> None:
    out = subprocess.run(_script(store.root, """
        import sys
        sys.modules["torch"] = None   # as if torch were not installed
        with runlock.start_run(project="p", store=store) as run:
            pass
        lock = run.lock
        print(lock["environment"]["torch"], "torch" in str(lock["knobs"]).lower())
    """), capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "None"


def test_use_records_inputs_in_the_lock_and_moves_the_recipe(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"weights")
    with runlock.start_run(project="p", store=store) as producer:
        art = producer.log_artifact(f, name="w")
    with runlock.start_run(project="p", store=store) as consumer:
        before = consumer.recipe_id
        consumer.use(art)
        consumer.use(art)
    assert consumer.recipe_id != before
    assert consumer.lock["inputs"] == [{"node": art.lineage_node, "id": art.digest, "ref": art.ref,
                                        "kind": "artifact"}]


def test_runs_diff_names_config_and_metric_differences(store: Store) -> None:
    with runlock.start_run(project="p", config={"lr": 0.1}, store=store) as a:
        a.log({"loss": 1.0}, step=0)
    with runlock.start_run(project="p", config={"lr": 0.2}, store=store) as b:
        b.log({"loss": 2.0}, step=0)
    d = diffs.diff_runs(store, a.id, b.id)
    assert not d.same_recipe
    assert [c.field for c in d.fields["config"]] == ["config.lr"]
    assert [(m.key, m.identical) for m in d.metrics] == [("loss", False)]


def test_current_run_and_wrapper_child_join(store: Store) -> None:
    child = "import runlock; r = runlock.current_run(); r.log({'x': 1.5}, step=3); r.flush()"
    result = run_command(store, [sys.executable, "-c", child], project="wrapped")
    assert result.status == "finished" and result.returncode == 0
    assert diffs.metric_series(store, result.run_id)["x"] == [(3, 1.5)]
    failing = run_command(store, [sys.executable, "-c", "raise SystemExit(3)"], project="wrapped")
    assert failing.status == "failed" and failing.returncode == 3
    assert records.get(store, failing.run_id).status == "failed"


def test_use_by_reference_resolves_model_aliases_and_artifacts(store: Store, tmp_path: Path) -> None:
    from runlock import registry

    f = tmp_path / "adapter.bin"
    f.write_bytes(b"adapter weights")
    with runlock.start_run(project="p", store=store) as producer:
        art = producer.log_artifact(f, name="adapter", kind="model")
    version = runlock.register_model(producer.id, artifact="adapter", name="bot", store=store)
    registry.set_alias(store, version.ref, "live", reason="test")
    with runlock.start_run(project="p", store=store) as consumer:
        consumer.use("model:bot@live")
        consumer.use(art.ref)
    assert consumer.lock["inputs"] == sorted([
        {"node": art.lineage_node, "id": art.digest, "ref": art.ref, "kind": "artifact"},
        {"node": "model:bot@v1", "id": art.digest, "ref": "model:bot@v1", "kind": "model"},
    ], key=lambda i: i["node"])
    with runlock.start_run(project="p", store=store) as other:
        with pytest.raises(InvalidInput, match="art:sha256"):
            other.use("weights.bin")
