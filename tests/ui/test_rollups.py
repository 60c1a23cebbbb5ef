"""A sealed run's rollups answer its chart and its statistics as its points would."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import sqlalchemy as sa

import runlock
from runlock.store import Store
from runlock.tracking import rollups, series
from runlock.tracking.rollups import metric_rollups
from runlock.ui import charts
from runlock.workspace import init

N = 20_000


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    s = init(tmp_path_factory.mktemp("rollups"))
    yield s
    s.close()


def _log(store: Store, end: bool = True) -> str:
    run = runlock.start_run(project="p", name="long", store=store)
    for step in range(N):
        v = math.sin(step / 500) + (step % 7) * 0.01
        run.log({"loss": v if step != 1234 else float("nan"), "lr": 1.0 / (step + 1)}, step=step)
        if step % 3 == 0:
            run.log({"loss": v + 5}, step=step)          # the same step logged twice (a resumed loop)
    run.log({"spike": 1e9}, step=777)
    if end:
        run.finish()
    return run.id


@pytest.fixture(scope="module")
def run_id(store: Store) -> str:
    return _log(store)


def _without_rollups(store: Store, run_id: str):  # noqa: ANN202
    """What a run sealed before rollups existed answers: delete them, ask, put them back."""
    with store.db.write() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(metric_rollups).where(metric_rollups.c.run_id == run_id))]
        conn.execute(metric_rollups.delete().where(metric_rollups.c.run_id == run_id))
    return rows


def _restore(store: Store, rows: list) -> None:
    with store.db.write() as conn:
        conn.execute(metric_rollups.insert(), rows)


def test_sealing_writes_rollups_at_every_width(store: Store, run_id: str) -> None:
    with store.db.read() as conn:
        got = dict(conn.execute(sa.select(metric_rollups.c.width, sa.func.count()).where(
            metric_rollups.c.run_id == run_id, metric_rollups.c.key == "loss").group_by(metric_rollups.c.width)).all())
    assert got == {64: -(-N // 64), 512: -(-N // 512), 4096: -(-N // 4096)}


def test_a_running_run_has_none_until_it_ends(store: Store) -> None:
    run = runlock.start_run(project="p", name="short", store=store)
    run.log({"x": 1.0}, step=0)
    with store.db.read() as conn:
        assert not rollups.has(conn, run.id)
    run.finish()
    with store.db.read() as conn:
        assert rollups.has(conn, run.id)


def test_statistics_from_rollups_equal_those_from_the_points(store: Store, run_id: str) -> None:
    fast = series.summarize(store, run_id)
    rows = _without_rollups(store, run_id)
    try:
        slow = series.summarize(store, run_id)
    finally:
        _restore(store, rows)
    assert fast == slow
    loss = next(k for k in fast if k.key == "loss")
    assert loss.points == N + -(-N // 3) and loss.steps == N and loss.max > 5


def test_the_chart_from_rollups_is_the_envelope_of_the_points(store: Store, run_id: str) -> None:
    fast = charts.series(store, run_id, "loss", buckets=100)
    rows = _without_rollups(store, run_id)
    try:
        slow = charts.series(store, run_id, "loss", buckets=100)
    finally:
        _restore(store, rows)
    assert fast.downsampled and fast.points == slow.points == N + -(-N // 3) - 1    # the nan left out
    assert len(fast.steps) <= 200 and fast.steps == sorted(fast.steps)
    assert min(fast.values) == min(slow.values) and max(fast.values) == max(slow.values)
    assert fast.steps[0] == 0 and fast.steps[-1] == N - 1


@pytest.mark.parametrize(("start", "end"), [(1000, 15_999), (1001, 15_990), (0, N - 1), (130, None), (None, 9_000)])
def test_a_zoom_adds_the_edge_points_and_keeps_to_the_range(store: Store, run_id: str, start, end) -> None:  # noqa: ANN001
    fast = charts.series(store, run_id, "loss", start=start, end=end, buckets=100)
    rows = _without_rollups(store, run_id)
    try:
        slow = charts.series(store, run_id, "loss", start=start, end=end, buckets=100)
    finally:
        _restore(store, rows)
    assert fast.points == slow.points
    assert fast.steps[0] == slow.steps[0] and fast.steps[-1] == slow.steps[-1]
    assert min(fast.values) == min(slow.values) and max(fast.values) == max(slow.values)


def test_a_range_too_short_for_rollups_reads_the_points(store: Store, run_id: str) -> None:
    got = charts.series(store, run_id, "loss", start=500, end=700, buckets=100)
    assert got.steps[0] == 500 and got.steps[-1] == 700 and got.points == 201 + 67


def test_a_bundled_or_old_run_without_rollups_still_answers(tmp_path: Path) -> None:
    store = init(tmp_path)
    try:
        rid = _log(store)
        _without_rollups(store, rid)
        assert charts.series(store, rid, "lr", buckets=50).points == N
        assert {k.key for k in series.summarize(store, rid)} == {"loss", "lr", "spike"}
    finally:
        store.close()


def test_rollups_on_sqlite_and_postgresql(any_store: Store) -> None:
    run = runlock.start_run(project="p", name="both", store=any_store)
    for step in range(5_000):
        run.log({"loss": (step * 7919 % 1000) / 1000, "lr": float("inf") if step == 9 else 0.5}, step=step)
    run.finish()
    fast, chart = series.summarize(any_store, run.id), charts.series(any_store, run.id, "loss", buckets=60)
    rows = _without_rollups(any_store, run.id)
    try:
        slow, raw = series.summarize(any_store, run.id), charts.series(any_store, run.id, "loss", buckets=60)
    finally:
        _restore(any_store, rows)
    assert fast == slow and len(rows) == 2 * (-(-5_000 // 64) + -(-5_000 // 512) + -(-5_000 // 4096))
    assert chart.points == raw.points == 5_000 and (min(chart.values), max(chart.values)) == (0.0, 0.999)


def _rows(conn: sa.Connection, run_id: str) -> list[tuple]:
    cols = rollups.COLUMNS
    q = sa.select(*(metric_rollups.c[c] for c in cols)).where(metric_rollups.c.run_id == run_id)
    return sorted(tuple(r) for r in conn.execute(q))


def test_rollups_prepared_before_the_lock_equal_those_computed_in_it(store: Store, run_id: str) -> None:
    sealed = _without_rollups(store, run_id)         # what records.end wrote (prepared, outside the lock)
    try:
        with store.db.write() as conn:
            rollups.write(conn, run_id)              # the same rows computed by SQL inside a transaction
            in_lock = _rows(conn, run_id)
            conn.execute(metric_rollups.delete().where(metric_rollups.c.run_id == run_id))
        with store.db.read() as conn:
            prepared = rollups.prepare(conn, run_id)
    finally:
        _restore(store, sealed)
    cols = rollups.COLUMNS
    assert sorted(tuple(r[c] for c in cols) for r in sealed) == in_lock
    assert sorted(tuple(r[c] for c in cols) for r in prepared.rows) == in_lock
    assert {r[2] for r in in_lock} == set(rollups.WIDTHS) and len(in_lock) > 3 * 3


def test_a_point_logged_after_the_rollups_were_prepared_is_in_them(store: Store) -> None:
    run = runlock.start_run(project="p", name="late", store=store)
    for step in range(1000):
        run.log({"loss": float(step)}, step=step)
    run.flush()
    with store.db.read() as conn:
        stale = rollups.prepare(conn, run.id)        # the seal prepared them ...
    run.log({"loss": -7.0}, step=5000)               # ... then one more point arrived before its lock
    run.finish()
    with store.db.write() as conn:
        conn.execute(metric_rollups.delete().where(metric_rollups.c.run_id == run.id))
        rollups.write(conn, run.id, stale)           # what the seal does with a stale preparation
        got = _rows(conn, run.id)
    with store.db.read() as conn:
        fresh = rollups.prepare(conn, run.id)
    assert got == sorted(tuple(r[c] for c in rollups.COLUMNS) for r in fresh.rows)
    assert got != sorted(tuple(r[c] for c in rollups.COLUMNS) for r in stale.rows)
    assert [r for r in got if r[2] == 4096 and r[3] == 1][0][8] == -7.0       # vmin of steps 4096..8191
    assert series.summarize(store, run.id)[0].points == 1001


def test_fsck_names_a_run_whose_rollups_were_edited(tmp_path: Path) -> None:
    """Rollups are derived, not sealed: fsck recomputes them from the points and names a run whose
    stored rollups were changed behind runlock's back (a chart that would lie)."""
    from runlock.fsck import fsck

    s = init(tmp_path)
    try:
        run = runlock.start_run(project="p", name="short", store=s)
        for step in range(300):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        run.finish()
        assert fsck(s).ok
        with s.db.write() as conn:
            conn.execute(metric_rollups.update().where(metric_rollups.c.run_id == run.id,
                                                       metric_rollups.c.width == rollups.WIDTHS[0],
                                                       metric_rollups.c.bucket == 0).values(max0=0.0001))
        report = fsck(s)
        assert not report.ok and any(run.id in m and "rollups" in m for m in report.changed_records)
    finally:
        s.close()
