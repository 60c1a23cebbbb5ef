"""`runlock lineage` in process: the tree, impact, every export format, and clean errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from runlock.cli.main import app
from runlock.store import Store

runner = CliRunner()


def cli(store: Store, *args: str):  # noqa: ANN201
    return runner.invoke(app, ["--store", str(store.root), *args], catch_exceptions=False)


def test_tree_upstream_and_downstream_impact(store: Store, make_world) -> None:
    w = make_world(store)
    up = cli(store, "lineage", "model:support-bot@v1")
    assert up.exit_code == 0, up.output
    for label in ("model:support-bot@v1", "adapter", "support-bot/lora", "split:tickets@v1", "ds:tickets-clean@v1",
                  "ds:tickets@v1", "derived_from", "generated_by", "used"):
        assert label in up.output, label
    down = cli(store, "lineage", "ds:tickets@v1", "--downstream")
    assert down.exit_code == 0 and "1 model version(s) downstream: model:support-bot@v1" in down.output
    assert "faq-bot" not in down.output
    shallow = json.loads(cli(store, "lineage", "ds:tickets@v1", "--downstream", "--depth", "2", "--json").output)
    assert set(shallow["nodes"]) == {w.raw.lineage_node, w.clean.lineage_node, w.split.lineage_node}
    assert shallow["impact"] == {"snapshot": [w.clean.lineage_node], "split": [w.split.lineage_node]}


def test_every_format_writes_a_file_or_stdout(store: Store, make_world, tmp_path: Path) -> None:
    w = make_world(store)
    prov = json.loads(cli(store, "lineage", w.split.ref, "--format", "prov-json").stdout_bytes)
    assert w.split.lineage_node in prov["entity"]
    events = cli(store, "lineage", w.model.ref, "--format", "openlineage").stdout.splitlines()
    assert {json.loads(e)["eventType"] for e in events} == {"START", "COMPLETE"}
    assert cli(store, "lineage", w.model.ref, "-f", "dot").stdout.startswith("digraph lineage {")
    assert cli(store, "lineage", w.model.ref, "-f", "png", "-o", str(tmp_path / "g.png")).exit_code == 0
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input_is_one_line_and_a_nonzero_exit(store: Store, make_world) -> None:
    make_world(store)
    for args in (["ds:nope@v1"], ["model:support-bot@live"], ["nonsense"], ["ds:tickets@v1", "-f", "xml"],
                 ["ds:tickets@v1", "-o", "x.txt"]):
        result = cli(store, "lineage", *args)
        assert result.exit_code != 0, args
        assert "Traceback" not in result.output and result.output.count("error:") == 1, result.output
