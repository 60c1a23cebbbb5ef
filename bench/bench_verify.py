"""Verification cost: comparing two runs, and rerunning one from its lock.

    .venv/bin/python bench/bench_verify.py [--small]

1. compare: two recorded runs of M metrics x S steps (identical but for the last point of one
   metric). runlock's ``compare`` (tiers for every output, first divergence, diagnosis of the
   locks) against the check people write by hand today: pandas reads both runs' metric rows from
   the same store, merges them on (key, step) and tests ``np.array_equal`` / ``np.allclose``.
   Both read the same database; the peer yields only "equal / close / not", no divergence point
   and no diagnosis.
2. rerun: wall time of ``runlock.verify.rerun`` (plan, git worktree at the recorded commit,
   rebuilt inputs, restored knobs, the script, the reproduces edge) against doing the same by
   hand: ``git worktree add`` + ``python train.py`` + ``git worktree remove``.

Prints one JSON object with the timings and ratios (runlock / peer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

import runlock
from runlock.store.schema import metrics
from runlock.tracking import records
from runlock.verify import compare, rerun
from runlock.workspace import init

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.verify.conftest import toy_project  # noqa: E402  (the tiny training project of the tests)


def record(store, n_metrics: int, steps: int, bump: float) -> str:  # noqa: ANN001
    rng = np.random.default_rng(0)
    curves = rng.random((n_metrics, steps))
    with runlock.start_run(project="bench", store=store, config={"lr": 0.1}, seed=1, argv=["train.py"]) as run:
        for step in range(steps):
            last = step == steps - 1
            run.log({f"m{k}": float(curves[k, step]) + (bump if last and k == 0 else 0.0)
                     for k in range(n_metrics)}, step=step)
    return run.id


def pandas_check(store, a: str, b: str) -> tuple[bool, bool]:  # noqa: ANN001
    q = sa.select(metrics.c.run_id, metrics.c.key, metrics.c.step, metrics.c.value).where(
        metrics.c.run_id.in_([a, b]))
    with store.db.read() as conn:
        df = pd.read_sql(q, conn)
    left = df[df.run_id == a].drop(columns="run_id")
    right = df[df.run_id == b].drop(columns="run_id")
    merged = left.merge(right, on=["key", "step"], how="outer", suffixes=("_a", "_b")).sort_values(["key", "step"])
    va, vb = merged.value_a.to_numpy(), merged.value_b.to_numpy()
    return bool(np.array_equal(va, vb, equal_nan=True)), bool(np.allclose(va, vb, equal_nan=True))


def timed(fn, rounds: int) -> tuple[float, object]:  # noqa: ANN001
    times, out = [], None
    for _ in range(rounds):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def bench_compare(base: Path, n_metrics: int, steps: int, rounds: int) -> dict:
    (base / "c").mkdir()
    store = init(base / "c")
    os.chdir(base)  # outside a git repository: both locks' code sections match
    a, b = record(store, n_metrics, steps, 0.0), record(store, n_metrics, steps, 1e-12)
    t_rl, found = timed(lambda: compare(store, a, b), rounds)
    t_pd, (equal, close) = timed(lambda: pandas_check(store, a, b), rounds)
    assert found.tier == "tolerance" and not equal and close
    store.close()
    return {"points_per_run": n_metrics * steps, "runlock_s": round(t_rl, 4), "pandas_s": round(t_pd, 4),
            "ratio": round(t_rl / t_pd, 2), "runlock_tier": found.tier,
            "first_divergence": found.first_divergence}


def bench_rerun(base: Path, rounds: int) -> dict:
    (base / "r").mkdir()
    store = init(base / "r")
    toy = toy_project(base / "toy", store)
    env = {**os.environ, "RUNLOCK_STORE": str(store.root)}
    subprocess.run([sys.executable, "train.py", "--seed", "3"], cwd=toy.repo, env=env, check=True, capture_output=True)
    original = records.list_runs(store, limit=1)[0].id  # the toy trains on ds:train@v1

    def by_hand() -> None:
        wt = base / "wt"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(wt), "HEAD"], cwd=toy.repo, check=True)
        subprocess.run([sys.executable, "train.py", "--seed", "3"], cwd=wt, env=env, check=True, capture_output=True)
        subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=toy.repo, check=True)

    t_rl, result = timed(lambda: rerun(store, original), rounds)
    t_hand, _ = timed(by_hand, rounds)
    assert result.status == "finished" and compare(store, original, result.run_id).tier == "bitwise"
    store.close()
    return {"runlock_s": round(t_rl, 3), "by_hand_s": round(t_hand, 3), "ratio": round(t_rl / t_hand, 2),
            "overhead_s": round(t_rl - t_hand, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="small sizes, for a quick check")
    args = p.parse_args()
    n_metrics, steps, rounds = (5, 1_000, 3) if args.small else (10, 20_000, 5)
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            out = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                   "compare": bench_compare(Path(tmp), n_metrics, steps, rounds),
                   "rerun": bench_rerun(Path(tmp), 1 if args.small else 3)}
        finally:
            os.chdir(here)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
