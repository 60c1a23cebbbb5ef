"""The verify commands as a user meets them: help text, JSON shape, tier gates, clean errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
import torch  # noqa: F401  (imported before any run: every lock here sees the same torch knobs)
import typer
from typer.testing import CliRunner

import runlock
from runlock.cli import verify as verify_cli
from runlock.cli.main import app
from runlock.store import Store

COMMANDS = ["rerun", "compare", "variance", "verify", "check", "env export", "env diff"]


def test_every_verify_command_has_help_and_json() -> None:
    root = typer.main.get_command(app)
    for path in COMMANDS:
        cmd = root
        for part in path.split():
            cmd = cmd.commands[part]
        assert cmd.help and len(cmd.help) > 20, path
        assert any("--json" in getattr(p, "opts", []) for p in cmd.params), path
        result = CliRunner().invoke(app, [*path.split(), "--help"])
        assert result.exit_code == 0 and "Usage" in result.output
    assert set(typer.main.get_command(verify_cli.app).commands) == {"rerun", "compare", "variance", "verify",
                                                                   "check", "env"}


def two_runs(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second: float) -> tuple[str, str]:
    monkeypatch.chdir(tmp_path)
    ids = []
    for last in (0.5, second):
        with runlock.start_run(project="p", store=store, config={"lr": last}, argv=["train.py"]) as run:
            run.log({"loss": 1.0}, step=0)
            run.log({"loss": last}, step=1)
        ids.append(run.id)
    return ids[0], ids[1]


def test_compare_json_has_tier_divergence_and_diagnosis(store: Store, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two_runs(store, tmp_path, monkeypatch, 0.75)
    result = CliRunner().invoke(app, ["--store", str(store.root), "compare", a, b, "--json"])
    assert result.exit_code == 0
    found = json.loads(result.stdout)
    assert found["tier"] == "different"
    assert found["first_divergence"] == {"metric": "loss", "step": 1, "a": 0.5, "b": 0.75}
    assert found["diagnosis"] == [{"field": "config.lr", "a": 0.5, "b": 0.75, "kind": "config"}]
    table = CliRunner().invoke(app, ["--store", str(store.root), "compare", a, b])
    assert "config.lr" in table.stdout and "first divergence" in table.stdout


def test_require_gates_on_the_tier(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two_runs(store, tmp_path, monkeypatch, 0.5 + 1e-12)
    cli = CliRunner()
    base = ["--store", str(store.root), "compare", a, b]
    assert cli.invoke(app, [*base, "--require", "tolerance"]).exit_code == 0
    assert cli.invoke(app, [*base, "--require", "bitwise"]).exit_code == 1
    bad = cli.invoke(app, [*base, "--require", "exact"])
    assert bad.exit_code == 2 and "not a tier" in bad.output and "Traceback" not in bad.output


def test_verify_needs_a_run_or_a_sample(store: Store) -> None:
    result = CliRunner().invoke(app, ["--store", str(store.root), "verify"])
    assert result.exit_code == 2 and "--sample" in result.output
    missing = CliRunner().invoke(app, ["--store", str(store.root), "rerun", "01NOSUCHRUN0000"])
    assert missing.exit_code == 1 and "No run" in missing.output and "Traceback" not in missing.output


def test_the_example_ci_workflow_uses_real_commands() -> None:
    workflow = yaml.safe_load((Path(__file__).parents[2] / "docs" / "examples" / "runlock-gate.yml").read_text())
    script = "\n".join(str(step.get("run", "")) for job in workflow["jobs"].values() for step in job["steps"])
    calls = re.findall(r"runlock ([a-z]+)((?: [^|>)\n]*)?)", script)
    root = typer.main.get_command(app)
    for name, rest in calls:
        cmd = root.commands[name]
        if hasattr(cmd, "commands"):
            cmd = cmd.commands[rest.split()[0]]
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert set(re.findall(r"(?<!\S)(--?[a-z][a-z-]*)", rest)) <= opts, (name, rest)
    assert {name for name, _ in calls} == {"init", "data", "runs", "verify", "check", "env"}
