"""Processes that crowd one SQLite store: 8 writers at once (8 runs, or 8 ranks of one
distributed run) see no error (no ``database is locked``) and lose no point."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import sqlalchemy as sa

import runlock
from runlock.store import Store
from runlock.store.schema import metrics, runs
from runlock.tracking import records


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code), *args]


def _consistent(store: Store) -> None:
    with store.db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


WRITER = """
import sys
import runlock
from runlock.tracking.run import join_run
from runlock.tracking.writer import WriterSettings
store, mode, ident, n = runlock.open_store(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
settings = WriterSettings(batch_points=200, interval_ms=5)
if mode == "own":
    run = runlock.start_run(project="crowd", name=ident, store=store, settings=settings)
else:
    run = join_run(ident, store=store, rank=int(sys.argv[5]), settings=settings)
for step in range(n):
    run.log({"loss": 1.0 / (step + 1), "acc": float(step), "gpu": 0.5, "tok": 1e3}, step=step)
    if step % 500 == 0:
        run.flush()
run.flush()
run.finish()
print(run.id)
"""


def _crowd(commands: list[list[str]], cwd: Path) -> list[str]:
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
             for c in commands]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and "locked" not in err.lower() and "Traceback" not in err, err
    return [out.strip() for out, _ in outs]


def test_eight_processes_logging_eight_runs_into_one_sqlite_store(store: Store) -> None:
    n = 2000
    ids = _crowd([_python(WRITER, str(store.root), "own", f"r{i}", str(n)) for i in range(8)], store.root.parent)
    with store.db.read() as conn:
        counts = dict(conn.execute(sa.select(metrics.c.run_id, sa.func.count()).group_by(metrics.c.run_id)).all())
        statuses = set(conn.execute(sa.select(runs.c.status)).scalars())
    assert sorted(counts) == sorted(ids) and set(counts.values()) == {4 * n}
    assert statuses == {"finished"}
    _consistent(store)


def test_eight_ranks_of_one_distributed_run(store: Store) -> None:
    n = 2000
    owner = runlock.start_run(project="ddp", store=store)       # rank 0 owns the run ...
    _crowd([_python(WRITER, str(store.root), "join", owner.id, str(n), str(rank)) for rank in range(1, 8)]
           + [_python(WRITER, str(store.root), "join", owner.id, str(n), "0")], store.root.parent)
    owner.finish()                                               # ... and seals it after the others
    with store.db.read() as conn:
        per_rank = dict(conn.execute(sa.select(metrics.c.rank, sa.func.count()).where(
            metrics.c.run_id == owner.id).group_by(metrics.c.rank)).all())
    assert per_rank == {r: 4 * n for r in range(8)}
    rec = records.get(store, owner.id)
    assert rec.status == "finished" and rec.last_step == n - 1
    _consistent(store)
