"""A process killed with SIGKILL at random moments loses no flushed point and leaves a
consistent store in which its run reads ``crashed`` with its last step."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import sqlalchemy as sa

from runlock.store import Store
from runlock.store.schema import metrics
from runlock.tracking import records
from runlock.api import open_for_writing

KEYS = ("loss", "acc", "lr")

# One process imports runlock (and torch, which the lock's environment capture loads) once, then
# forks a fresh child per kill: the same code path as a training script, at a fraction of the
# start-up cost. A child logs, flushes every few steps and reports each completed flush in its
# own file; the zygote reaps each killed child so that its pid is really gone.
ZYGOTE = """
import os, sys
import torch, runlock
from runlock.tracking.writer import WriterSettings

def child(root, report, batch, per_flush):
    out = open(report, "w", buffering=1)
    run = runlock.start_run(project="crash", store=runlock.open_store(root),
                            settings=WriterSettings(batch_points=batch, interval_ms=5))
    out.write(f"run {run.id}\\n")
    step = 0
    while True:
        for _ in range(per_flush):
            run.log({"loss": 1.0 / (step + 1), "acc": step * 1e-6, "lr": 3e-4}, step=step)
            step += 1
        run.flush()
        out.write(f"flushed {step - 1}\\n")

for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "fork":
        pid = os.fork()
        if pid == 0:
            try:
                child(args[0], args[1], int(args[2]), int(args[3]))
            finally:
                os._exit(1)
        print(pid, flush=True)
    else:
        print(os.waitpid(int(args[0]), 0)[1], flush=True)
"""


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code), *args]


def _consistent(store: Store) -> None:
    with store.db.read() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def _report(path: Path, lines: int, timeout: float = 60) -> list[list[str]]:
    """The child's report once it has ``lines`` lines (or whatever it has after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        got = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
        if len(got) >= lines or time.monotonic() > deadline:
            return got
        time.sleep(0.002)


def test_sigkill_at_random_moments_loses_no_flushed_point(store: Store, tmp_path: Path) -> None:
    rng = random.Random(20261123)          # a fixed schedule: the same kills on every run
    zygote = subprocess.Popen(_python(ZYGOTE), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=tmp_path)   # outside a git checkout: no diff to capture per run
    seen_runs = 0
    try:
        for attempt in range(24):
            batch, per_flush = rng.choice([50, 500, 5000]), rng.choice([1, 7, 100, 1000])
            wait_lines = rng.choice([0, 1, 2, 5, 30, 300])   # 0: kill during start_run
            report = tmp_path / f"report{attempt}"
            zygote.stdin.write(f"fork {store.root} {report} {batch} {per_flush}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            lines = _report(report, wait_lines) if wait_lines else []
            time.sleep(rng.random() * 0.02)
            os.kill(pid, signal.SIGKILL)
            zygote.stdin.write(f"wait {pid}\n")
            zygote.stdin.flush()
            assert int(zygote.stdout.readline()) == signal.SIGKILL   # killed, not exited
            lines = _report(report, 0)   # everything it reported before it died
            run_id = next((w[1] for w in lines if w[0] == "run"), None)
            flushed = max((int(w[1]) for w in lines if w[0] == "flushed"), default=-1)
            fresh = open_for_writing(store.root)    # opened to write: reaps the dead run
            _consistent(fresh)
            if run_id is not None:
                seen_runs += 1
                _check_run(fresh, run_id, flushed, attempt)
            fresh.close()
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)
    assert seen_runs >= 15


def _check_run(store: Store, run_id: str, flushed: int, attempt: int) -> None:
    rec = records.get(store, run_id)
    assert rec.status == "crashed", (attempt, rec.status)
    with store.db.read() as conn:
        rows = conn.execute(sa.select(metrics.c.key, metrics.c.step).where(metrics.c.run_id == run_id)).all()
    steps = {k: sorted(s for kk, s in rows if kk == k) for k in KEYS}
    for k in KEYS:   # every flushed point is there, and what is there is a prefix without gaps
        assert steps[k][: flushed + 1] == list(range(flushed + 1)), (attempt, k, flushed)
        assert steps[k] == list(range(len(steps[k]))), (attempt, k)
    assert rec.last_step == (max(steps["loss"]) if steps["loss"] else None)
