"""Layered config: files then overrides, merged by OmegaConf into one canonical config; the origin
of every key recorded with the run and shown by `runlock config explain`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runlock
from runlock import config as configs
from runlock.cli.main import app
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.tracking import records

runner = CliRunner()


@pytest.fixture
def layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    project = tmp_path / "conf" / "project.yaml"
    project.write_text("lr: 1.0e-3\nepochs: 3\nlora:\n  r: 8\n  alpha: 16\n  dropout: 0.1\n"
                       "optim: {name: adamw, betas: [0.9, 0.999]}\nwarmup: ${epochs}\n")
    exp = tmp_path / "conf" / "exp.yaml"
    exp.write_text("lora:\n  r: 4\nepochs: 5\noptim: sgd\n")
    return project, exp


def test_later_layers_win_and_every_leaf_has_its_origin(layers: tuple[Path, Path]) -> None:
    project, exp = layers
    cfg = configs.resolve([project, exp], ["lr=3e-4", "lora.r=16", "tags=[a,b]"])
    assert cfg.values == {"epochs": 5, "lora": {"alpha": 16, "dropout": 0.1, "r": 16}, "lr": 0.0003,
                          "optim": "sgd", "tags": ["a", "b"], "warmup": 5}
    assert cfg.origins == {"epochs": "conf/exp.yaml", "lora.alpha": "conf/project.yaml",
                           "lora.dropout": "conf/project.yaml", "lora.r": "override lora.r=16",
                           "lr": "override lr=3e-4", "optim": "conf/exp.yaml", "tags": "override tags=[a,b]",
                           "warmup": "conf/project.yaml"}
    assert [s.kind for s in cfg.sources] == ["file", "file", "override", "override", "override"]
    assert cfg.sources[0].digest.startswith("sha256:")
    assert cfg.leaves()["lora.r"] == 16


def test_the_lock_holds_values_the_run_record_holds_origins(store: Store, layers: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    project, exp = layers
    cfg = configs.resolve([project, exp], ["lr=3e-4"])
    with runlock.start_run(project="p", config=cfg, store=store) as run:
        pass
    assert run.lock["config"] == cfg.values
    assert records.get(store, run.id).context["config"]["origins"]["lr"] == "override lr=3e-4"
    out = runner.invoke(app, ["--store", str(store.root), "config", "explain", run.id, "--json"])
    explained = {k["key"]: (k["value"], k["origin"]) for k in json.loads(out.output)["keys"]}
    assert explained["lr"] == (0.0003, "override lr=3e-4") and explained["epochs"] == (5, "conf/exp.yaml")
    table = runner.invoke(app, ["--store", str(store.root), "config", "explain", run.id], env={"COLUMNS": "200"})
    assert "conf/project.yaml" in table.output and "lora.alpha" in table.output
    # the same values from files elsewhere: the same recipe (the lock holds values, not paths)
    moved = tmp_path / "elsewhere.yaml"
    moved.write_text(json.dumps(cfg.values))
    with runlock.start_run(project="p", config=configs.resolve([moved]), store=store) as again:
        pass
    assert again.lock["config"] == run.lock["config"]


def test_changing_a_key_in_code_forgets_its_file_origin(store: Store, layers: tuple[Path, Path]) -> None:
    project, _ = layers
    with runlock.start_run(project="p", config=configs.resolve([project]), store=store) as run:
        run.record_config({**run.lock["config"], "lr": 0.5, "extra": 1})
    keys = {k.key: k.origin for k in configs.explain(store, run.id).keys}
    assert keys["lr"] == configs.CODE_ORIGIN and keys["extra"] == configs.CODE_ORIGIN
    assert keys["epochs"] == "conf/project.yaml"


def test_plain_dict_config_is_explained_as_set_in_code(store: Store) -> None:
    with runlock.start_run(project="p", config={"a": {"b": 1}}, store=store) as run:
        pass
    assert [(k.key, k.value, k.origin) for k in configs.explain(store, run.id).keys] == [
        ("a.b", 1, "start_run(config=...)")]


@pytest.mark.parametrize("files, overrides, message", [
    (["missing.yaml"], [], "Cannot read"),
    (["bad.yaml"], [], "Cannot use"),
    (["list.yaml"], [], "mapping"),
    ([], ["lr"], "KEY=VALUE"),
    ([], ["=3"], "KEY=VALUE"),
    ([], ["x=${nope}"], "Cannot use"),
    ([], ["x=.nan"], "cannot be recorded"),
])
def test_bad_layers_are_clear_errors(layers: tuple[Path, Path], files: list[str], overrides: list[str],
                                     message: str) -> None:
    Path("bad.yaml").write_text("a: [1, 2\n")
    Path("list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(InvalidInput, match=message):
        configs.resolve(files, overrides)


def test_resolve_cli_and_digest_is_stable_across_processes(layers: tuple[Path, Path]) -> None:
    project, exp = layers
    out = runner.invoke(app, ["config", "resolve", str(project), str(exp), "--set", "lr=3e-4", "--json"])
    data = json.loads(out.output)
    assert data["values"]["lr"] == 0.0003 and data["origins"]["optim"] == "conf/exp.yaml"
    code = ("from runlock import config; "
            f"print(config.resolve([{str(project)!r}, {str(exp)!r}], ['lr=3e-4']).digest)")
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert fresh == data["digest"]
