"""`runlock probe -- CMD` end to end on real child processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from runlock.cli.main import app

SCRIPT = """
import numpy as np
from runlock.probe import record_step
rng = np.random.default_rng({seed})
for step in range(2):
    record_step(step, metrics={{"x": float(rng.random())}})
"""


def probe(tmp_path: Path, seed: str) -> tuple[int, dict]:
    script = tmp_path / f"train_{seed}.py"
    script.write_text(SCRIPT.format(seed=seed))
    result = CliRunner().invoke(app, ["probe", "--steps", "2", "--json", "--", sys.executable, str(script)],
                                catch_exceptions=False)
    return result.exit_code, json.loads(result.output)


def test_seeded_program_is_reproducible(tmp_path: Path) -> None:
    code, report = probe(tmp_path, "7")
    assert code == 0 and report["reproducible"] is True and report["first_divergence"] is None


def test_unseeded_default_rng_is_caught_at_step_zero(tmp_path: Path) -> None:
    code, report = probe(tmp_path, "")
    assert code == 1 and report["reproducible"] is False
    assert report["first_divergence"]["step"] == 0
    first = report["first_divergence"]  # blamed on the generator, by file and line, before the metric it moved
    assert first["kind"] == "rng" and first["name"].startswith("numpy.random.default_rng() at ")
    assert first["name"].endswith(".py:4")
    assert ("metric", "x") in {(d["kind"], d["name"]) for d in report["divergences"]}


RUN_SCRIPT = """
import numpy as np
import runlock
runlock.seed_everything(3)
with runlock.start_run(project="probe-demo", name="tiny", config={"lr": 0.1}) as run:
    for step in range(5):
        run.log({"x": float(np.random.rand())}, step=step)
"""


def test_a_script_that_logs_to_a_run_leaves_no_run_in_the_store(tmp_path: Path, monkeypatch) -> None:
    runner = CliRunner()
    store = tmp_path / "store"
    store.mkdir()
    assert runner.invoke(app, ["init", str(store)]).exit_code == 0
    monkeypatch.setenv("RUNLOCK_STORE", str(store))
    monkeypatch.setenv("RUNLOCK_RUN_ID", "01J0000000000000000000000")  # a `runlock run` around the probe
    script = tmp_path / "train.py"
    script.write_text(RUN_SCRIPT)
    result = runner.invoke(app, ["probe", "--steps", "2", "--json", "--", sys.executable, str(script)],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["reproducible"] is True and report["steps"] == 2
    assert report["rng_consumed"] == [["numpy"], ["numpy"]]  # run.log fed the probe from the seeded state
    listed = runner.invoke(app, ["--store", str(store), "runs", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output) == []


def test_human_output_names_the_unseeded_generator(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(seed=""))
    result = CliRunner().invoke(app, ["probe", "--steps", "2", "--no-progress", "--", sys.executable, str(script)])
    assert result.exit_code == 1
    assert "NOT reproducible" in result.output and "numpy.random.default_rng() at" in result.output
