"""A rehearsal whose rerun cannot happen exits non-zero, with one line per run and no traceback;
environment drift is explained without promising a tier the comparison may not give."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from runlock.cli import verify as verify_cli
from runlock.cli.main import app
from runlock.verify.envlock import Drift, EnvDiff
from tests.verify.conftest import Toy, git

ARGS = ("--lr", "0.1", "--seed", "5", "--data", "ds:train@v1")


def test_a_rehearsal_with_a_failed_rerun_exits_1(toy: Toy, tmp_path: Path) -> None:
    run = toy.train(*ARGS)
    gone = tmp_path / "gone"          # a repository without the recorded commit: the rerun cannot start
    gone.mkdir()
    git(gone, "init", "-q")
    out = CliRunner().invoke(app, ["--store", str(toy.store.root), "verify", "--sample", "50", "--seed", "1",
                                   "--repo", str(gone), "--json"])
    assert out.exit_code == 1, out.output
    assert "Traceback" not in out.output
    done = json.loads(out.stdout)
    assert run in [r["run"] for r in done["results"]]
    assert all(r["tier"] == "failed" and r["previous"] is None and r["error"] for r in done["results"])


def test_numeric_drift_does_not_promise_a_tier() -> None:
    console = Console(record=True, width=200)
    drift = EnvDiff("R", [Drift("packages", "environment.packages.numpy", "1.26.0", "2.1.0"),
                          Drift("variables", "environment.env.LANG", "C", "en_US")])
    verify_cli._print_drift(drift, [], out=console)
    text = console.export_text()
    assert "(expect tolerance" not in text and "expect: bitwise if the run never reaches what changed (packages)" in text
    calm = EnvDiff("R", [Drift("variables", "environment.env.LANG", "C", "en_US")])
    verify_cli._print_drift(calm, [], out=console)
    assert "expect: bitwise. Nothing that changed computes numbers" in console.export_text()


def test_history_takes_a_run_id_prefix(toy: Toy) -> None:
    run = toy.train(*ARGS, "--steps", "3")
    from runlock.verify.records import add_verification

    add_verification(toy.store, run, "rerun", "bitwise", {"tier": "bitwise"})
    out = CliRunner().invoke(app, ["--store", str(toy.store.root), "verify", run[:9].lower(), "--history", "--json"])
    assert [v["tier"] for v in json.loads(out.stdout)] == ["bitwise"]
    table = CliRunner().invoke(app, ["--store", str(toy.store.root), "verify", run[:9], "--history"])
    assert table.exit_code == 0 and "bitwise" in table.output


def test_a_rerun_reports_its_preparation_and_finishes_before_the_command(toy: Toy) -> None:
    from runlock.verify.rerun import rerun

    run = toy.train(*ARGS, "--steps", "2")
    seen: list[tuple[int, int, str]] = []
    again = rerun(toy.store, run, progress=lambda done, total, what: seen.append((done, total, what)))
    assert again.status == "finished"
    assert [(d, t) for d, t, _ in seen] == [(0, 2), (1, 2), (2, 2)]   # code, one input, then the command
    assert seen[1][2] == "rebuilding ds:train@v1" and seen[-1][2] == "running the recorded command"
