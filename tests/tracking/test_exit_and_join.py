"""Runs left open at interpreter exit, inputs declared by a joined process, and the probe seeing
steps through run.log: each in real child processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

import runlock
from runlock.cli.main import app
from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.wrapper import run_command


def child(store: Store, body: str, cwd: Path) -> subprocess.CompletedProcess:
    code = f"import runlock\nstore = runlock.open_store({str(store.root)!r})\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


def test_a_run_left_open_is_finished_at_a_normal_exit(store: Store, tmp_path: Path) -> None:
    out = child(store, """
        run = runlock.start_run(project="p", store=store)
        run.log({"loss": 1.0}, step=0)
        print(run.id)
    """, tmp_path)
    rec = records.get(store, out.stdout.strip())
    assert rec.status == "finished" and rec.last_step == 0


def test_a_run_left_open_fails_with_the_traceback_of_an_uncaught_exception(store: Store, tmp_path: Path) -> None:
    out = child(store, """
        run = runlock.start_run(project="p", store=store)
        print(run.id, flush=True)
        raise RuntimeError("trainer blew up")
    """, tmp_path)
    assert out.returncode == 1 and "trainer blew up" in out.stderr
    rec = records.get(store, out.stdout.strip())
    assert rec.status == "failed" and "RuntimeError: trainer blew up" in rec.error


def test_a_joined_process_declares_inputs_into_the_lock(store: Store, tmp_path: Path) -> None:
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"base model")
    with runlock.start_run(project="p", store=store) as producer:
        art = producer.log_artifact(weights, name="base", kind="model")
    script = textwrap.dedent(f"""
        import runlock
        from runlock import artifacts
        run = runlock.current_run()
        run.use(artifacts.find(runlock.open_store(), {art.ref!r}))
    """)
    result = run_command(store, [sys.executable, "-c", script], project="wrapped")
    assert result.status == "finished"
    rec = records.get(store, result.run_id)
    assert [i["id"] for i in locks.load(store, rec.recipe_id)["inputs"]] == [art.digest]


PROBED = """
import numpy as np
import runlock
store = runlock.open_store({store!r})
runlock.seed_everything(3)
rng = np.random.default_rng({seed})
with runlock.start_run(project="probe", store=store) as run:
    for step in range(3):
        run.log({{"loss": float(rng.random())}}, step=step)
"""


def test_probe_sees_steps_logged_through_run_log(store: Store, tmp_path: Path) -> None:
    for seed, expected in (("3", True), ("", False)):
        script = tmp_path / f"train{seed}.py"
        script.write_text(PROBED.format(store=str(store.root), seed=seed))
        result = CliRunner().invoke(app, ["probe", "--steps", "2", "--json", "--", sys.executable, str(script)],
                                    catch_exceptions=False)
        report = json.loads(result.output)
        assert report["reproducible"] is expected, report
        if not expected:
            first = report["first_divergence"]  # the generator itself, by call site, before the loss it moved
            assert first["name"] == "numpy.random.default_rng() at train.py:6" and first["step"] == 0
            assert {"loss"} <= {d["name"] for d in report["divergences"]}
