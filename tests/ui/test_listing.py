"""The runs table's keyset pages and the chart series on both databases (the conformance fixture):
every run exactly once in the order of the whole query, keys missing from some runs sorting last,
and the min/max buckets computed by the database."""

from __future__ import annotations

import pytest

import runlock
from runlock.store import Store
from runlock.ui import charts, listing


@pytest.fixture
def seven(any_store: Store) -> Store:
    for i in range(7):
        config = {"lr": [0.1, 0.01, 0.1, None, 0.5, 0.01, 0.2][i], "opt": "adam" if i % 2 else "sgd"}
        if i == 3:
            config = {"opt": "sgd"}                                 # no lr at all: sorts last
        with runlock.start_run(project="p", name=f"r{i}", config=config, store=any_store) as run:
            run.log({"loss": float(i)}, step=0)
            if i == 0:
                for step in range(1, 1000):
                    run.log({"loss": (step % 10) - 5.0 + step / 1000}, step=step)
    return any_store


@pytest.mark.parametrize("sort", ["", "-config.lr", "config.lr,name", "config.opt,-name", "-metrics.loss"])
def test_pages_cover_every_run_once(seven: Store, sort: str) -> None:
    whole = [r.run.id for r in listing.page(seven, sort=sort, limit=500).rows]
    seen, after = [], None
    for _ in range(20):
        got = listing.page(seven, sort=sort, limit=2, after=after)
        seen += [r.run.id for r in got.rows]
        after = got.next_cursor
        if after is None:
            break
    assert seen == whole and len(set(seen)) == 7


def test_missing_values_sort_last_and_filters_apply(seven: Store) -> None:
    names = [r.run.name for r in listing.page(seven, sort="-config.lr", limit=500).rows]
    assert names[0] == "r4" and names[-1] == "r3"
    found = listing.page(seven, where='config.opt == "adam"', sort="name", limit=500,
                         columns=listing.parse_columns(["config.lr", "metrics.loss:max"]))
    assert [(r.run.name, r.values["config.lr"]) for r in found.rows] == [("r1", 0.01), ("r5", 0.01)]
    assert found.rows[0].values["metrics.loss:max"] == 1.0


def test_series_buckets_keep_the_extremes(seven: Store) -> None:
    r0 = next(r.run.id for r in listing.page(seven, limit=500).rows if r.run.name == "r0")
    s = charts.series(seven, r0, "loss", buckets=50)
    assert s.downsampled and s.points == 1000 and len(s.steps) <= 100
    assert min(s.values) == pytest.approx(-5.0 + 0.01)
    assert max(s.values) == pytest.approx(4.0 + 0.999)
    assert s.steps == sorted(s.steps) and s.steps[0] == 0 and s.steps[-1] == 999
    fine = charts.series(seven, r0, "loss", start=100, end=199, buckets=50)
    assert not fine.downsampled and fine.steps == list(range(100, 200))
