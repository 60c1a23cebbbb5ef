"""`migrate`, `audit proof` and `demo` answer --json like every other command."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from typer.testing import CliRunner

from runlock.cli.main import app
from runlock.store import _MIGRATIONS, Store

runner = CliRunner()


def cli(store: Store, *args: str):  # noqa: ANN201
    return runner.invoke(app, ["--store", str(store.root), *args])


def test_migrate_json_says_what_changed(store: Store) -> None:
    with store.db.write() as conn:        # take the store back to before the newest branch
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010@0001")
    first = cli(store, "migrate", "--json")
    assert first.exit_code == 0, first.output
    done = json.loads(first.stdout)
    assert done["upgraded"] and done["up_to_date"] and "0010" in done["revisions"] and "0010" not in done["before"]
    again = json.loads(cli(store, "migrate", "--json").stdout)
    assert again["upgraded"] is False and again["before"] == again["revisions"]


def test_audit_proof_json_with_an_output_file(store: Store, tmp_path: Path) -> None:
    cli(store, "users", "add", "a")
    assert cli(store, "audit", "checkpoint").exit_code == 0
    out = cli(store, "audit", "proof", "1", "-o", str(tmp_path / "p.json"), "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout) == {"entry": 1, "output": str(tmp_path / "p.json"),
                                      "tree_size": json.loads((tmp_path / "p.json").read_text())["tree_size"]}
    bare = cli(store, "audit", "proof", "1", "--json")
    assert json.loads(bare.stdout)["schema"] == "runlock.audit-proof/v1"


def test_demo_json_prints_the_result_on_stdout_and_the_story_on_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner_mod = importlib.import_module("runlock.demo.runner")   # torch: only for this test
    run = runner_mod.DemoRun("01A", "lora-r8", "sha256:r", "sha256:a", "sha256:w", ((0, 1.0),), 0.5, 1.6, 2.0)

    def fake(workdir: Path, console) -> object:  # noqa: ANN001
        console.print("pre-training the base model")
        return runner_mod.DemoResult(workdir, workdir / "d.jsonl", "ds:t@v1", "split:t@v1", "01B", "sha256:b",
                                     (run, run), 3.0, (("train", 3.0),))

    monkeypatch.setattr(runner_mod, "run_demo", fake)
    out = runner.invoke(app, ["demo", str(tmp_path / "d"), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["reproduced"] is True and data["runs"][0]["recipe_id"] == "sha256:r"
    assert "pre-training" in out.stderr and "pre-training" not in out.stdout
