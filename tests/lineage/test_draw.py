"""The pure-Python lineage picture: a layered layout drawn with matplotlib when Graphviz is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from runlock.lineage import draw, entities, export
from runlock.store import Store


def test_layers_put_each_node_above_its_deepest_dependency() -> None:
    # run -> split -> snapshot, run -> base, model -> art -> run: edges point at dependencies
    edges = [("run", "split"), ("split", "snap"), ("run", "base"), ("art", "run"), ("model", "art")]
    row = draw.layers(["snap", "split", "base", "run", "art", "model"], edges)
    assert row == {"snap": 0, "base": 0, "split": 1, "run": 2, "art": 3, "model": 4}


def test_layers_survive_a_cycle_and_an_isolated_node() -> None:
    row = draw.layers(["a", "b", "c"], [("a", "b"), ("b", "a")])
    assert set(row) == {"a", "b", "c"} and row["c"] == 0 and {row["a"], row["b"]} == {0, 1}


def test_order_uncrosses_two_parallel_chains() -> None:
    # x1 -> y2 and x2 -> y1 start crossed when both rows are sorted by name
    edges = [("y1", "x2"), ("y2", "x1")]
    rows = draw.order(draw.layers(["x1", "x2", "y1", "y2"], edges), edges)
    low, high = rows
    assert low.index("x2") == high.index("y1") and low.index("x1") == high.index("y2")


def test_png_without_graphviz(store: Store, make_world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = make_world(store)
    view = entities.view(store, w.model.ref, "upstream")
    monkeypatch.setenv("PATH", str(tmp_path))          # no `dot` anywhere on PATH
    png = export.write(view, "png", tmp_path / "lineage.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png == draw.to_png(view)
    assert len(png) > 5000   # boxes and text were drawn, not an empty canvas
