"""`runlock registry` and `runlock artifacts` in process, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from runlock.cli.main import app
from runlock.store import Store

runner = CliRunner()


def cli(store: Store, *args: str):  # noqa: ANN201
    return runner.invoke(app, ["--store", str(store.root), *args], catch_exceptions=False)


def js(store: Store, *args: str):  # noqa: ANN201
    result = cli(store, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_register_promote_history_get_and_card(store: Store, make_run, tmp_path: Path) -> None:
    a, b = make_run(store, "a", b"one"), make_run(store, "b", b"two")
    assert js(store, "registry", "register", a.id, "adapter", "support-bot")["ref"] == "model:support-bot@v1"
    assert js(store, "registry", "register", b.id, "adapter", "support-bot", "--license", "mit")["version"] == 2
    js(store, "registry", "alias", "set", "model:support-bot@v1", "live", "-m", "launch")
    move = js(store, "registry", "alias", "set", "model:support-bot@v2", "live", "--reason", "better f1")
    assert (move["from_version"], move["to_version"], move["reason"]) == (1, 2, "better f1")
    listed = js(store, "registry", "list")
    assert [(m["ref"], m["aliases"]) for m in listed] == [("model:support-bot@v1", []),
                                                          ("model:support-bot@v2", ["live"])]
    assert js(store, "registry", "show", "support-bot@live")["run_id"] == b.id
    history = js(store, "registry", "history", "support-bot")
    assert [(h["from_version"], h["to_version"]) for h in history] == [(None, 1), (1, 2)]
    at = js(store, "registry", "history", "support-bot", "--at", history[0]["at"])
    assert at["aliases"] == {"live": "model:support-bot@v1"}
    table = cli(store, "registry", "history", "support-bot")
    assert table.exit_code == 0 and "better f1" in table.output
    got = js(store, "registry", "get", "model:support-bot@live", str(tmp_path / "m"))
    assert got["ref"] == "model:support-bot@v2" and (tmp_path / "m" / "adapter_model.safetensors").read_bytes() == b"two"
    again = cli(store, "registry", "get", "model:support-bot@live", str(tmp_path / "m"))
    assert again.exit_code != 0 and "--force" in again.output
    forced = cli(store, "registry", "get", "model:support-bot@live", str(tmp_path / "m"), "--force", "--progress")
    assert forced.exit_code == 0 and "wrote model:support-bot@v2" in forced.stdout
    card = js(store, "registry", "card", "model:support-bot@v2", "-o", str(tmp_path / "m"))
    assert card["front_matter"]["license"] == "mit" and (tmp_path / "m" / "README.md").is_file()


def test_registry_refusals_are_clean(store: Store, make_run) -> None:
    run = make_run(store)
    js(store, "registry", "register", run.id, "adapter", "bot")
    for args in (["registry", "register", run.id, "adapter", "bad name"],
                 ["registry", "show", "model:bot@live"],
                 ["registry", "alias", "set", "model:bot@v1", "v2", "-m", "x"],
                 ["registry", "alias", "set", "model:bot@v1", "live"],          # no --reason
                 ["registry", "alias", "remove", "bot", "staging", "-m", "x"],
                 ["registry", "history", "bot", "--at", "yesterday"]):
        result = cli(store, *args)
        assert result.exit_code != 0, args
        assert "Traceback" not in result.output, args


def test_artifacts_list_show_get(store: Store, make_run, tmp_path: Path) -> None:
    run = make_run(store)
    listed = js(store, "artifacts", "list", "--run", run.id)
    assert [(x["name"], x["kind"], x["files"]) for x in listed] == [("adapter", "model", 3)]
    shown = js(store, "artifacts", "show", f"art:{listed[0]['digest']}")
    assert shown["producers"][0]["run"] == run.id and len(shown["entries"]) == 3
    assert "sub/tokenizer.json" in cli(store, "artifacts", "show", f"{run.id}/adapter").output
    assert js(store, "artifacts", "get", f"{run.id}/adapter", str(tmp_path / "a"))["files"] == 3
    refused = cli(store, "artifacts", "get", f"{run.id}/adapter", str(tmp_path / "a"))
    assert refused.exit_code != 0 and "already exists" in refused.output
