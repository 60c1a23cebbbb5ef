"""The 4-stage example (examples/pipeline: prepare -> split -> fine-tune a LoRA adapter with peft ->
evaluate), run for real."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from runlock import audit, pipeline
from runlock.pipeline import state
from runlock.store import Store, schema
from runlock.tracking import lock as locks
from runlock.tracking import records

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline"
BIN = Path(sys.executable).parent
OUTS = ("data/all.csv", "data/split/train.csv", "data/split/test.csv", "model/adapter_model.safetensors",
        "model/adapter_config.json", "metrics.json")


@pytest.fixture
def project(tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the example beside a fresh store; stage commands find this venv's python."""
    dest = tmp_path / "example"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("data", "model", "metrics.json", "__pycache__"))
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("RUNLOCK_STORE", str(store.root))
    return dest


def stat_of(root: Path) -> dict[str, tuple[int, int]]:
    return {o: ((root / o).stat().st_ino, (root / o).stat().st_mtime_ns) for o in OUTS}


def actions(result: pipeline.ReproResult) -> dict[str, str]:
    return {s.stage: s.action for s in result.stages}


def test_repro_runs_four_then_none_then_the_two_a_param_reaches(project: Path, store: Store) -> None:
    pipe = pipeline.load(project)
    first = pipeline.repro(store, pipe, jobs=2)
    assert actions(first) == dict.fromkeys(["prepare", "split", "train", "evaluate"], "ran"), [s.error for s in first.stages]
    before = stat_of(project)
    metrics = json.loads((project / "metrics.json").read_text())
    assert metrics["test_mse"] < 0.05

    # each stage is a run whose lock holds its cmd, params, seed and every dep by digest
    train = next(s for s in first.stages if s.stage == "train")
    rec = records.get(store, train.run_id)
    lk = locks.load(store, rec.recipe_id)
    assert rec.status == "finished" and lk["seed"] == 0
    assert lk["config"]["pipeline"]["params"] == {"params.yaml:train.epochs": 400, "params.yaml:train.lr": 0.05,
                                                  "params.yaml:train.rank": 4}
    assert set(lk["config"]["pipeline"]["deps"]) == {"train.py", "tinymodel.py", "data/split"}
    adapter = json.loads((project / "model" / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "LORA" and adapter["r"] == 4 and adapter["target_modules"] == ["fc2", "head"]
    with store.db.read() as conn:
        edges = {(r.kind, r.src, r.dst) for r in conn.execute(sa.select(schema.edges))}
    split_art = state.last(store, str(pipe.root), "split").outs["data/split"]["digest"]
    model_art = state.last(store, str(pipe.root), "train").outs["model"]["digest"]
    assert ("used", f"run:{train.run_id}", f"artifact:{split_art}") in edges
    assert ("generated_by", f"artifact:{model_art}", f"run:{train.run_id}") in edges

    second = pipeline.repro(store, pipe)
    assert actions(second) == dict.fromkeys(["prepare", "split", "train", "evaluate"], "cached")
    assert all(s.restored == [] for s in second.stages)
    assert stat_of(project) == before                       # nothing in place was rewritten
    hits = audit.log(store, action="pipeline.cache_hit")
    assert len(hits) == 4 and {h.details["repro"] for h in hits} == {second.repro_id}

    params = project / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.05", "lr: 0.04"))
    st = {s.stage: s for s in pipeline.status(store, pipe)}
    assert st["prepare"].state == st["split"].state == "up-to-date"
    assert st["train"].state == "stale"
    assert st["train"].reasons == [{"what": "param", "name": "params.yaml:train.lr", "from": 0.05, "to": 0.04}]
    assert st["evaluate"].state == "stale" and st["evaluate"].upstream == ["train"]
    third = pipeline.repro(store, pipe)
    assert actions(third) == {"prepare": "cached", "split": "cached", "train": "ran", "evaluate": "ran"}
    assert all(s.state == "up-to-date" for s in pipeline.status(store, pipe))

    # back to the first lr: a cache hit that restores the first model and metrics, byte for byte
    params.write_text(params.read_text().replace("lr: 0.04", "lr: 0.05"))
    fourth = pipeline.repro(store, pipe)
    assert actions(fourth) == dict.fromkeys(["prepare", "split", "train", "evaluate"], "cached")
    assert {s.stage: s.restored for s in fourth.stages}["train"] == ["model"]
    assert json.loads((project / "metrics.json").read_text()) == metrics


def test_verify_reruns_one_stage_from_its_recorded_inputs_bitwise(project: Path, store: Store) -> None:
    pipe = pipeline.load(project)
    pipeline.repro(store, pipe)
    shutil.rmtree(project / "data")      # verify needs nothing upstream on disk: it rebuilds the inputs
    results = pipeline.verify(store, pipe, ["evaluate", "train"])
    # train too: the LoRA fine-tune is bitwise in a fresh process (another PYTHONHASHSEED, where
    # peft's set of target modules once reordered adapter_config.json)
    assert {r.stage: r.tier for r in results} == {"train": "bitwise", "evaluate": "bitwise"}
    for result in results:
        assert result.rerun != result.recorded_run
        assert records.get(store, result.rerun).status == "finished"
    assert not (project / "data").exists()                    # nothing upstream was rerun in place


def test_evaluate_applies_the_adapter_as_peft_does(tmp_path: Path) -> None:
    """evaluate.py merges the adapter without importing peft; it must compute what peft computes."""
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    spec = importlib.util.spec_from_file_location("tinymodel", EXAMPLE / "tinymodel.py")
    tinymodel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tinymodel)
    torch.manual_seed(3)
    tuned = peft.get_peft_model(tinymodel.base_model(), peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["fc2", "head"], lora_dropout=0.0, init_lora_weights=False))
    tuned.save_pretrained(tmp_path / "adapter")
    x = torch.randn(64, 4)
    with torch.no_grad():
        ours = tinymodel.with_adapter(tinymodel.base_model(), str(tmp_path / "adapter"))(x)
        theirs = tuned(x)
        loaded = peft.PeftModel.from_pretrained(tinymodel.base_model(), tmp_path / "adapter")(x)
    assert not torch.allclose(ours, tinymodel.base_model()(x))          # the adapter changes the model
    assert torch.allclose(ours, theirs, atol=1e-5) and torch.allclose(ours, loaded, atol=1e-5)


def _cli(project: Path, *args: str, **kw) -> subprocess.Popen:  # noqa: ANN003
    return subprocess.Popen([str(BIN / "runlock"), *args], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_killed_mid_stage_leaves_no_half_written_out_and_resume_finishes(project: Path, store: Store) -> None:
    proc = _cli(project, "repro", env={**os.environ, "PIPELINE_SLOW_S": "60"}, start_new_session=True)
    pipe = pipeline.load(project)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        row = state.last(store, str(pipe.root), "train", ("running",))
        if row is not None and row.run_id:
            break
        time.sleep(0.2)
    else:
        pytest.fail("train never started")
    while time.monotonic() < deadline:                         # half-way through training, in its sleep
        if (records.get(store, row.run_id).last_step or 0) >= 200:
            break
        time.sleep(0.2)
    else:
        pytest.fail("train never reached half-way")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (project / "model").exists()                    # removed before the stage; never half-written
    assert not (project / "metrics.json").exists()
    st = {s.stage: s.state for s in pipeline.status(store, pipe)}
    assert st["prepare"] == st["split"] == "up-to-date" and st["train"] != "up-to-date"

    res = subprocess.run([str(BIN / "runlock"), "pipeline", "resume", "--json"], cwd=project,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = {s["stage"]: s["action"] for s in json.loads(res.stdout)["stages"]}
    assert out == {"prepare": "cached", "split": "cached", "train": "ran", "evaluate": "ran"}
    killed = state.history(store, str(pipe.root))
    dead = [r for r in killed if r.stage == "train" and r.status == "failed"]
    assert len(dead) == 1 and records.get(store, dead[0].run_id).status == "crashed"   # no run stuck running
    assert all(s.state == "up-to-date" for s in pipeline.status(store, pipe))


def test_two_concurrent_repro_both_succeed_and_share_results(project: Path, store: Store) -> None:
    a, b = _cli(project, "repro", "--json"), _cli(project, "repro", "--json")
    out_a, err_a = a.communicate(timeout=300)
    out_b, err_b = b.communicate(timeout=300)
    assert a.returncode == 0, err_a
    assert b.returncode == 0, err_b
    acts = [s["action"] for r in (json.loads(out_a), json.loads(out_b)) for s in r["stages"]]
    assert acts.count("ran") == 4 and acts.count("cached") == 4    # each stage computed once, reused once
    with store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(state.locks)).scalar() == 0
    res = subprocess.run([str(BIN / "runlock"), "fsck"], cwd=project, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
