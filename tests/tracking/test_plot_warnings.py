"""`plot` says what its picture leaves out: a key no run logged, and runs with no points."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock.cli.main import app
from runlock.errors import NotFound
from runlock.store import Store
from runlock.tracking.plot import plot_metrics

runner = CliRunner()


@pytest.fixture(autouse=True)
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def logged(store: Store, name: str, metrics: dict[str, float]) -> str:
    with runlock.start_run(project="p", name=name, store=store) as run:
        if metrics:
            run.log(metrics, step=0)
    return run.id


def test_a_missing_key_and_a_run_without_points_are_named(store: Store, tmp_path: Path) -> None:
    a = logged(store, "with-loss", {"train/loss": 1.0})
    b = logged(store, "no-loss", {"lr": 0.1})
    result = plot_metrics(store, [a, b], ["train/loss", "train/los"], tmp_path / "p.png")
    assert len(result.warnings) == 2
    runs_missing, key_missing = result.warnings
    assert "'train/loss'" in runs_missing and "no-loss" in runs_missing and "with-loss" not in runs_missing
    assert "no run logged 'train/los'" in key_missing and "Did you mean 'train/loss'" in key_missing
    out = runner.invoke(app, ["--store", str(store.root), "plot", a, b, "--key", "train/los", "--key", "train/loss",
                              "-o", str(tmp_path / "q.png"), "--json"])
    assert out.exit_code == 0
    assert len(json.loads(out.stdout)["warnings"]) == 2
    assert "warning: no run logged 'train/los'" in out.stderr


def test_no_points_at_all_is_an_error_with_a_suggestion(store: Store, tmp_path: Path) -> None:
    a = logged(store, "a", {"train/loss": 1.0})
    with pytest.raises(NotFound, match="Did you mean 'train/loss'"):
        plot_metrics(store, [a], ["train_loss"], tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()
