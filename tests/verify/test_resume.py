"""Resume is a first-class event (issue 13): ``runlock.resume`` starts a run linked to the one it
continues by a ``resumes`` edge naming the checkpoint, restores the RNG state the checkpoint
holds, continues the original's steps; ``compare`` of the interrupted + resumed training with an
uninterrupted one is ``bitwise``."""

from __future__ import annotations

import json

from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from typer.testing import CliRunner

import runlock
from runlock import artifacts
from runlock.audit import audit_log
from runlock.cli.main import app
from runlock.errors import InvalidInput, NotFound
from runlock.store import Store
from runlock.store.schema import edges
from runlock.torch import rng_state
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.diff import metric_series
from runlock.tracking.resume import chain, resume, resumed_from
from runlock.verify import compare

STEPS, SAVE_AT = 10, 4


def train(run: runlock.Run, w: torch.Tensor, steps: range, ckpt: Path | None = None) -> torch.Tensor:
    """A training loop whose every step draws from the global torch RNG."""
    for step in steps:
        w = w - 0.1 * torch.rand(3)
        run.log({"loss": float(w.sum())}, step=step if ckpt is not None else None)
        if ckpt is not None and step == SAVE_AT:
            torch.save({"w": w, "rng": rng_state()}, ckpt)
            run.log_artifact(ckpt, name=f"ckpt-{step}", kind="checkpoint", metadata={"step": step})
    return w


@pytest.fixture
def trained(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(tmp_path)
    runlock.seed_everything(0)
    with runlock.start_run(project="r", name="fit", config={"lr": 0.1}, seed=0, store=store) as whole:
        train(whole, torch.zeros(3), range(STEPS), tmp_path / "whole.pt")
    runlock.seed_everything(0)
    crashed = runlock.start_run(project="r", name="fit", config={"lr": 0.1}, seed=0, store=store)
    train(crashed, torch.zeros(3), range(7), tmp_path / "ckpt.pt")   # dies after step 6
    crashed.finish("failed", "killed")
    return {"whole": whole.id, "crashed": crashed.id, "ckpt": tmp_path / "ckpt.pt"}


def test_resume_links_restores_the_rng_and_compares_bitwise(store: Store, trained: dict) -> None:
    torch.manual_seed(12345)                  # whatever the process did before: the checkpoint's state wins
    with resume(trained["crashed"], store=store) as run:
        saved = torch.load(trained["ckpt"], weights_only=True)
        train(run, saved["w"], range(SAVE_AT + 1, STEPS))
    assert (run.project, run.name) == ("r", "fit")
    found = resumed_from(store, run.id)
    assert (found.of, found.step, found.rng_restored) == (trained["crashed"], SAVE_AT, True)
    assert found.checkpoint.startswith("artifact:sha256:")
    with store.db.read() as conn:
        edge = conn.execute(sa.select(edges).where(edges.c.kind == "resumes")).one()
        entry = conn.execute(sa.select(audit_log).where(audit_log.c.action == "run.resume")).one()
        used = {r.dst for r in conn.execute(sa.select(edges).where(edges.c.kind == "used", edges.c.src == f"run:{run.id}"))}
    assert (edge.src, edge.dst) == (f"run:{run.id}", f"run:{trained['crashed']}")
    assert entry.details == {"of": f"run:{trained['crashed']}", "checkpoint": found.checkpoint, "step": SAVE_AT}
    assert found.checkpoint in used                        # the checkpoint is an input of the run
    assert [s for s, _ in metric_series(store, run.id)["loss"]] == list(range(SAVE_AT + 1, STEPS))
    assert chain(store, run.id) == [(trained["crashed"], SAVE_AT), (run.id, None)]
    stitched = compare(store, run.id, trained["whole"])
    losses = {o.name: o.tier for o in stitched.outputs}
    assert losses["metric:loss"] == "bitwise", stitched.first_divergence     # steps 5-6 of the crashed run dropped
    assert stitched.notes and "up to step 4" in stitched.notes[0]
    assert compare(store, run.id, trained["whole"], stitch=False).first_divergence["step"] == 0
    for flags, step in (([], None), (["--no-stitch"], 0)):        # the CLI: stitched by default, --no-stitch alone
        out = CliRunner().invoke(app, ["--store", str(store.root), "compare", run.id, trained["whole"], "--json",
                                       *flags])
        found = json.loads(out.output)
        assert ({o["name"]: o["tier"] for o in found["outputs"]}["metric:loss"] == "bitwise") is (step is None)
        assert (found["first_divergence"] or {}).get("step") == step


def test_resume_from_a_checkpoint_on_disk_or_an_artifact(store: Store, trained: dict, tmp_path: Path) -> None:
    with resume(trained["ckpt"], store=store) as run:
        pass
    assert resumed_from(store, run.id).of == trained["crashed"]
    art = f"{trained['crashed']}/ckpt-{SAVE_AT}"
    with resume(art, store=store, name="again", step=3) as again:
        again.log({"loss": 0.0})
    assert (records.get(store, again.id).name, resumed_from(store, again.id).step) == ("again", 3)
    assert [s for s, _ in metric_series(store, again.id)["loss"]] == [4]


def test_resume_refuses_what_it_cannot_resume(store: Store, trained: dict, tmp_path: Path) -> None:
    stray = tmp_path / "stray.pt"
    stray.write_bytes(b"not logged by any run")
    with pytest.raises(NotFound):
        resume(stray, store=store)
    with runlock.start_run(project="r", store=store) as bare:
        pass
    with pytest.raises(InvalidInput, match="no checkpoint"):
        resume(bare.id, store=store)
    running = len(records.list_runs(store, status="running"))
    assert running == 0                       # a refused resume starts nothing


def test_a_path_must_hold_the_bytes_of_the_input_it_names(store: Store, trained: dict, tmp_path: Path) -> None:
    art = artifacts.get(store, trained["crashed"], f"ckpt-{SAVE_AT}").ref
    other = tmp_path / "other.pt"
    other.write_bytes(b"something else")
    with runlock.start_run(project="r", store=store) as run:
        with pytest.raises(InvalidInput, match="does not hold the bytes"):
            run.use(art, path=other)
        run.use(art, path=trained["ckpt"].name)            # relative to the working directory
    inputs = locks.load(store, records.get(store, run.id).recipe_id)["inputs"]
    assert [(i["path"], i["path_kind"]) for i in inputs] == [("ckpt.pt", "file")]
