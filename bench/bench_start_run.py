"""What one ``runlock.start_run`` costs in a process that starts many runs (a sweep, a notebook).

    .venv/bin/python bench/bench_start_run.py [--runs 20]

Each run logs one point and ends. "before" reads every installed distribution's metadata at each
start, as runlock did (the per-process cache of ``environment._installed`` is emptied before each
run); "after" reads it once, at the first run. Both in the same process, alternating, on one
store; the figure is the median per run, wall and CPU. torch, when installed, is imported by the
first capture in both cases (the lock records it), so it is out of both figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import runlock
from runlock import environment


def one(store, cold: bool) -> tuple[float, float]:  # noqa: ANN001
    if cold:
        environment._read.clear()
    w, c = time.perf_counter(), time.process_time()
    with runlock.start_run(project="bench", config={"lr": 0.1}, store=store) as run:
        run.log({"loss": 1.0}, step=0)
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        store = runlock.init(d)
        one(store, cold=True)                                   # imports, torch, bytecode: once
        got: dict[str, list[tuple[float, float]]] = {"before (metadata read each run)": [],
                                                      "after (read once per process)": []}
        for _ in range(args.runs):
            got["before (metadata read each run)"].append(one(store, cold=True))
            got["after (read once per process)"].append(one(store, cold=False))
        print(f"{args.runs} runs each, median per start_run..end:")
        for name, xs in got.items():
            print(f"  {name:<34} wall {statistics.median(x[0] for x in xs) * 1000:7.1f} ms, "
                  f"cpu {statistics.median(x[1] for x in xs) * 1000:7.1f} ms")
        store.close()


if __name__ == "__main__":
    main()
