"""Every command that takes a run takes a unique prefix of its id, through the one resolver
(records.get): any case, with or without run:, and LIKE wildcards match only themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock import artifacts
from runlock.cli import common
from runlock.cli.main import app
from runlock.errors import NotFound
from runlock.store import Store


@pytest.fixture(autouse=True)
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_artifacts_by_run_prefix(store: Store, tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"w")
    with runlock.start_run(project="p", store=store) as run:
        run.log_artifact(tmp_path / "w.bin", name="weights")
    assert artifacts.find(store, f"run:{run.id[:8].lower()}/weights").run_id == run.id
    for wild in ("%%%%%%%%/weights", "________/weights"):
        with pytest.raises(NotFound):
            artifacts.find(store, wild)
    listed = CliRunner().invoke(app, ["--store", str(store.root), "artifacts", "list", "--run", run.id[:8], "--json"])
    assert [a["run_id"] for a in json.loads(listed.stdout)] == [run.id]
    wild = CliRunner().invoke(app, ["--store", str(store.root), "artifacts", "list", "--run", "%%%%%%%%"])
    assert wild.exit_code != 0 and "Traceback" not in wild.output


def test_artifact_and_model_tables_show_short_run_ids(store: Store, tmp_path: Path) -> None:
    from runlock.tracking import records

    (tmp_path / "w.bin").write_bytes(b"w")
    with runlock.start_run(project="p", store=store) as run:
        run.log_artifact(tmp_path / "w.bin", name="weights", kind="model")
    runlock.register_model(run, "weights", name="bot")
    short = records.short_ids(store, [run.id])[run.id]
    for args in (["artifacts", "list"], ["registry", "list"]):
        out = CliRunner().invoke(app, ["--store", str(store.root), *args]).output
        assert short in out and run.id not in out, (args, out)
        old, common.console.width = common.console.width, 250
        try:
            wide = CliRunner().invoke(app, ["--store", str(store.root), *args, "--wide"]).output
        finally:
            common.console.width = old
        assert run.id in wide, (args, wide)
