"""Loss curves that show two identical runs as two runs: line and markers, and the gap measured."""

from __future__ import annotations

import math
from pathlib import Path

import runlock
from runlock.store import Store
from runlock.tracking.plot import plot_metrics


def _run(store: Store, name: str, values: list[float]) -> str:
    with runlock.start_run(project="p", name=name, store=store) as run:
        for step, v in enumerate(values):
            run.log({"loss": v}, step=step)
    return run.id


def test_identical_runs_are_marked_identical_and_a_drifted_one_gets_its_gap(store: Store, tmp_path: Path) -> None:
    a = _run(store, "a", [1.0, 0.5, 0.25, math.nan])
    b = _run(store, "b", [1.0, 0.5, 0.25, math.nan])
    c = _run(store, "c", [1.0, 0.5, 0.375, math.nan])
    result = plot_metrics(store, [a, b, c], ["loss"], tmp_path / "loss.png")
    first, same, drifted = result.curves
    assert first.max_abs_diff is None and first.identical is None
    assert same.identical is True and same.max_abs_diff == 0.0
    assert drifted.identical is False and drifted.max_abs_diff == 0.125
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_with_other_steps_is_not_identical(store: Store, tmp_path: Path) -> None:
    a = _run(store, "a", [1.0, 0.5])
    b = _run(store, "b", [1.0, 0.5, 0.25])
    _, longer = plot_metrics(store, [a, b], ["loss"], tmp_path / "loss.png").curves
    assert longer.max_abs_diff == 0.0 and longer.identical is False
