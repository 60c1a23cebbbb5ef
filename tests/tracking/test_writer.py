"""The metric writer: values, bad input at the call, flush as a barrier, batching, and a store
that refuses writes (full disk, size-limited file, read-only, lost server) without the training
loop ever seeing an exception."""

from __future__ import annotations

import math
import os
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import torch
from sqlalchemy import event

import runlock
import runlock.tracking.query  # noqa: F401 (runlock imports it lazily)
from runlock.errors import InvalidInput, RunlockError, StoreError
from runlock.store import Store
from runlock.store.db import Database
from runlock.store.schema import metrics
from runlock.tracking import records, series
from runlock.tracking.run import join_run
from runlock.tracking.writer import WriterSettings
from runlock.workspace import init, open_store
from tests.pg import PostgresServer, _bin, new_database

SLOW = WriterSettings(batch_points=10**9, interval_ms=60_000)   # writes only on flush
FAST_RETRY = WriterSettings(batch_points=200, interval_ms=20, max_retry_s=0.1)


def count(store: Store, run_id: str) -> int:
    with store.db.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(metrics).where(metrics.c.run_id == run_id)).scalar()


def values_of(store: Store, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(p.step, p.value) for p in series.points(store, run_id, keys=[key])]


def test_scalars_of_every_kind_round_trip_exactly(any_store: Store) -> None:
    with runlock.start_run(project="p", store=any_store) as run:
        run.log({"f": 0.1, "i": 3, "b": True, "np32": np.float32(0.5), "np64": np.int64(7),
                 "np0d": np.array(2.25), "t0d": torch.tensor(1.5), "nan": math.nan, "inf": math.inf,
                 "-inf": -math.inf, "tiny": 5e-324}, step=0)
        run.flush()
        got = {p.key: p.value for p in series.points(any_store, run.id)}
    assert got["f"] == 0.1 and got["i"] == 3.0 and got["b"] == 1.0 and got["np32"] == 0.5
    assert got["np64"] == 7.0 and got["np0d"] == 2.25 and got["t0d"] == 1.5 and got["tiny"] == 5e-324
    assert math.isnan(got["nan"]) and got["inf"] == math.inf and got["-inf"] == -math.inf


@pytest.mark.parametrize("values, step, message", [
    ({"": 1.0}, 0, "empty"),
    ({"k" * 251: 1.0}, 0, "longer than 250"),
    ({3: 1.0}, 0, "not a string"),
    ({"v": [1.0, 2.0]}, 0, "list"),
    ({"v": "high"}, 0, "str"),
    ({"v": None}, 0, "NoneType"),
    ({"v": np.zeros(3)}, 0, "ndarray"),
    ({"v": torch.ones(2)}, 0, "Tensor"),
    ({"v": 10**400}, 0, "too large"),
    ({"v": 1.0}, -1, "negative"),
    ({"v": 1.0}, 1.5, "not an integer"),
    ({"v": 1.0}, True, "not an integer"),
    ({"v": 1.0}, 2**63, "larger than"),
    ([("v", 1.0)], 0, "dict"),
])
def test_bad_input_is_refused_at_the_call_and_the_whole_call_is_dropped(
        store: Store, values: object, step: object, message: str) -> None:
    with runlock.start_run(project="p", store=store) as run:
        run.log({"ok": 1.0}, step=0)
        bad = {"good": 2.0, **values} if isinstance(values, dict) else values
        with pytest.raises(InvalidInput, match=message):
            run.log(bad, step=step)
        run.log({"ok": 3.0}, step=1)   # the loop goes on after a refused call
        run.flush()
    assert values_of(store, run.id, "ok") == [(0, 1.0), (1, 3.0)]
    assert values_of(store, run.id, "good") == []   # nothing of the refused call was kept


def test_steps_may_go_backwards_and_every_point_is_kept_in_logging_order(store: Store) -> None:
    with runlock.start_run(project="p", store=store) as run:
        for i, s in enumerate((0, 1, 2, 3, 1, 2)):   # e.g. resumed from the checkpoint at step 1
            run.log({"loss": float(i)}, step=s)
        run.log({"loss": 99.0})        # no step: one past the highest step so far
    pts = values_of(store, run.id, "loss")
    assert pts == [(0, 0.0), (1, 1.0), (1, 4.0), (2, 2.0), (2, 5.0), (3, 3.0), (4, 99.0)]
    rec = records.get(store, run.id)
    assert rec.last_step == 4
    found = runlock.tracking.query.find_runs(store, where="metrics.loss == 99")
    assert [f.record.id for f in found] == [run.id]


def test_the_dict_is_copied_at_the_call(store: Store) -> None:
    with runlock.start_run(project="p", store=store, settings=SLOW) as run:
        d = {"a": 1.0}
        run.log(d, step=0)
        d["a"] = 2.0
        d["b"] = 3.0
    assert values_of(store, run.id, "a") == [(0, 1.0)] and values_of(store, run.id, "b") == []


def test_flush_is_a_barrier_and_nothing_is_written_before_it(store: Store) -> None:
    run = runlock.start_run(project="p", store=store, settings=SLOW)
    for i in range(1000):
        run.log({"a": float(i), "b": float(-i)}, step=i)
    other = open_store(store.root)      # another connection sees only committed rows
    time.sleep(0.3)
    assert count(other, run.id) == 0
    run.flush()
    assert count(other, run.id) == 2000
    assert records.get(other, run.id).last_step == 999
    run.finish()


def test_a_full_batch_is_written_without_a_flush(store: Store) -> None:
    run = runlock.start_run(project="p", store=store,
                            settings=WriterSettings(batch_points=100, interval_ms=60_000))
    for i in range(150):
        run.log({"a": float(i)}, step=i)
    deadline = time.monotonic() + 20
    while count(store, run.id) < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert count(store, run.id) >= 100
    run.finish()
    assert count(store, run.id) == 150


# -- a store that refuses writes --------------------------------------------------------------
def _log_while_refused(run: runlock.Run, steps: range, expect: str = "could not be written in time") -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in steps:
            run.log({"a": float(i), "b": 1.0}, step=i)   # never raises
        with pytest.raises(RunlockError, match=expect):
            run.flush(timeout=0.5)
    return [str(w.message) for w in caught]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 8 MiB tmpfs: the disk a store lives on fills up for real."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(path: Path) -> None:
    with path.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    os.sync()


def test_full_disk_keeps_points_buffered_then_writes_them_all(small_disk: Path) -> None:
    store = init(small_disk)
    run = runlock.start_run(project="p", store=store, settings=FAST_RETRY)
    run.log({"a": -1.0, "b": 1.0}, step=0)
    run.flush()
    _fill(small_disk / "filler")
    messages = _log_while_refused(run, range(1, 5001))
    assert any("full" in m and "buffered" in m for m in messages), messages
    (small_disk / "filler").unlink()
    run.flush(timeout=60)
    run.finish()
    assert count(store, run.id) == 10_002 and run.dropped_points == 0
    assert [s for s, _ in values_of(store, run.id, "a")] == list(range(5001))
    store.close()


def _size_limited(db: Database, pages: int) -> None:
    """Cap the SQLite file at ``pages`` pages (SQLite then reports 'database or disk is full')."""
    @event.listens_for(db.engine, "connect")
    def _cap(dbapi_conn, _record) -> None:  # noqa: ANN001
        dbapi_conn.execute(f"PRAGMA max_page_count={pages}")


def test_size_limited_database_file_drops_oldest_past_the_bound_with_a_warning(store: Store) -> None:
    run = runlock.start_run(project="p", store=store, settings=WriterSettings(
        batch_points=200, interval_ms=20, max_retry_s=0.1, max_buffered=1000))
    with store.db.read() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    store.db.dispose()
    _size_limited(store.db, pages)
    messages = _log_while_refused(run, range(5000), expect="dropped instead of written")
    assert any("dropped the" in m for m in messages), messages
    assert run.dropped_points >= 8000
    store.db.dispose()                   # the disk is freed: connections without the cap
    run.log({"a": 1.0}, step=10_000)
    run.flush(timeout=60)                # a later flush with nothing dropped since is clean
    run.finish()
    steps = [s for s, _ in values_of(store, run.id, "a")]
    assert steps[-1] == 10_000 and steps[-2] == 4999     # the newest points survived
    assert count(store, run.id) + run.dropped_points == 10_001


def test_read_only_store_reads_and_refuses_writes_clearly(store: Store) -> None:
    with runlock.start_run(project="p", config={"lr": 0.1}, store=store) as done:
        done.log({"loss": 0.5}, step=0)
    live = runlock.start_run(project="p", store=store)
    ro = Store.open(store.root)
    ro.db = Database(f"sqlite:///file:{store.root / 'runlock.db'}?mode=ro&uri=true")
    assert [f.record.id for f in runlock.tracking.query.find_runs(ro, where="config.lr > 0.01")] == [done.id]
    assert values_of(ro, done.id, "loss") == [(0, 0.5)]
    with pytest.raises(StoreError, match="read-only"):
        runlock.start_run(project="p", store=ro)
    joined = join_run(live.id, store=ro, rank=1, settings=FAST_RETRY)
    messages = _log_while_refused(joined, range(100))
    assert any("read-only" in m for m in messages)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        joined.finish(timeout=0.5)        # the loop ends; what the store never took is reported
    assert joined.dropped_points == 200 and any("200 points" in str(w.message) for w in caught)
    assert runlock.current_run() is live
    live.finish()
    ro.close()


def test_lost_database_server_keeps_points_and_reconnects(tmp_path: Path) -> None:
    server = PostgresServer().start()
    try:
        store = init(tmp_path, database=new_database(server.base_url))
        run = runlock.start_run(project="p", store=store, settings=FAST_RETRY)
        run.log({"a": 0.0, "b": 1.0}, step=0)
        run.flush()
        server._run(_bin("pg_ctl"), "-D", str(server.data), "-m", "immediate", "-w", "stop")
        messages = _log_while_refused(run, range(1, 2001))
        assert any("buffered" in m for m in messages), messages
        server._run(_bin("pg_ctl"), "-D", str(server.data), "-l", str(server.dir / "log"), "-w", "-t", "60",
                    "-o", f"-p {server.port} -k {server.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        run.flush(timeout=60)
        run.finish()
        assert count(store, run.id) == 4002 and run.dropped_points == 0
        assert records.get(store, run.id).status == "finished"
        store.close()
    finally:
        server.stop()
