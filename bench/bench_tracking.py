"""Tracking benchmark: runlock vs MLflow (SQLite backend), side by side in one process.

    .venv/bin/python bench/bench_tracking.py            # full sizes (about 8 minutes on 2 cores)
    .venv/bin/python bench/bench_tracking.py --small    # a quick smoke run

1. Cost of one log call of 5 scalars inside a loop (median and p99 per call): runlock ``run.log``
   vs ``mlflow.log_metrics`` synchronous (the default) and ``synchronous=False``.
2. Sustained ingest: N points into one run, time until durable (runlock: ``run.flush()``;
   MLflow async: ``mlflow.flush_async_logging()``; MLflow sync: every call is durable on return,
   measured on fewer points and reported as a rate because 1M synchronous calls take ~15 min).
3. Query: a store of R runs, each with 50 params and S steps of 3 metrics; time for a filtered,
   sorted listing (runlock ``find_runs`` / ``runlock.runs()`` DataFrame vs MLflow ``search_runs``).
   Scaled down from the issue's 10,000 runs x 1,000 steps to 1,000 x 200: building that store
   through both APIs takes about 4 minutes here; the full size would take over an hour.
MLflow's slow paths (synchronous calls, the async queue) run on fewer points and are compared
as rates; the sizes are printed with the results.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
logging.getLogger("alembic").setLevel(logging.ERROR)

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

import runlock  # noqa: E402
from runlock.tracking import query  # noqa: E402

VALUES = {"loss": 0.5, "acc": 0.9, "lr": 3e-4, "grad_norm": 1.2, "tokens": 4096.0}


def pct(ns: list[int], q: float) -> float:
    s = sorted(ns)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0   # µs


def timed_calls(fn, n: int) -> list[int]:  # noqa: ANN001
    out, clock = [], time.perf_counter_ns
    for i in range(n):
        t = clock()
        fn(i)
        out.append(clock() - t)
    return out


def row(name: str, ns: list[int]) -> dict:
    r = {"name": name, "calls": len(ns), "median_us": pct(ns, 0.5), "p99_us": pct(ns, 0.99)}
    print(f"  {name:<34} {r['calls']:>8} calls  median {r['median_us']:>9.2f} µs  p99 {r['p99_us']:>9.2f} µs")
    return r


def mlflow_setup(root: Path) -> MlflowClient:
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment("bench")
    return MlflowClient()


# -- 1. cost of one log call ------------------------------------------------------------------------
def bench_log_cost(store: runlock.Store, n_rl: int, n_sync: int, n_async: int) -> dict:
    print("1. one log call of 5 scalars")
    with runlock.start_run(project="bench", name="log-cost", store=store) as run:
        rl = row("runlock run.log", timed_calls(lambda i: run.log(VALUES, step=i), n_rl))
    with mlflow.start_run():
        sync = row("mlflow log_metrics (sync)", timed_calls(lambda i: mlflow.log_metrics(VALUES, step=i), n_sync))
    with mlflow.start_run():
        asy = row("mlflow log_metrics (async)", timed_calls(
            lambda i: mlflow.log_metrics(VALUES, step=i, synchronous=False), n_async))
        mlflow.flush_async_logging()
    ratios = {k: {"median": o["median_us"] / rl["median_us"], "p99": o["p99_us"] / rl["p99_us"]}
              for k, o in (("sync", sync), ("async", asy))}
    for k, r in ratios.items():
        print(f"  runlock is {r['median']:.0f}x cheaper than MLflow {k} (median), {r['p99']:.0f}x (p99)")
    return {"runlock": rl, "mlflow_sync": sync, "mlflow_async": asy, "ratios": ratios}


# -- 2. sustained ingest ----------------------------------------------------------------------------
def ingest_runlock(store: runlock.Store, points: int) -> float:
    t = time.perf_counter()
    with runlock.start_run(project="bench", name="ingest", store=store) as run:
        for i in range(points // len(VALUES)):
            run.log(VALUES, step=i)
        run.flush()
        dt = time.perf_counter() - t
    return dt


def ingest_mlflow(points: int, synchronous: bool) -> float:
    with mlflow.start_run():
        t = time.perf_counter()
        for i in range(points // len(VALUES)):
            mlflow.log_metrics(VALUES, step=i, synchronous=synchronous)
        if not synchronous:
            mlflow.flush_async_logging()
        return time.perf_counter() - t


def bench_ingest(store: runlock.Store, n: int, n_sync: int, n_async: int) -> dict:
    print("2. sustained ingest into one run, until durable")
    out = {}
    for name, pts, fn in (("runlock", n, lambda p: ingest_runlock(store, p)),
                          ("mlflow_async", n_async, lambda p: ingest_mlflow(p, False)),
                          ("mlflow_sync", n_sync, lambda p: ingest_mlflow(p, True))):
        dt = fn(pts)
        out[name] = {"points": pts, "seconds": dt, "points_per_s": pts / dt}
        print(f"  {name:<14} {pts:>9} points  {dt:8.2f} s  {pts / dt:>10.0f} points/s")
    for k in ("mlflow_async", "mlflow_sync"):
        r = out["runlock"]["points_per_s"] / out[k]["points_per_s"]
        out[f"ratio_vs_{k}"] = r
        print(f"  runlock ingests {r:.0f}x faster than {k} (rate); 1M points in {1e6 / out[k]['points_per_s']:.0f} s "
              f"for {k} vs {1e6 / out['runlock']['points_per_s']:.1f} s")
    return out


# -- 3. query ---------------------------------------------------------------------------------------
def build(store: runlock.Store, client: MlflowClient, runs: int, params: int, steps: int) -> dict:
    exp = client.get_experiment_by_name("bench").experiment_id
    t_rl = t_ml = 0.0
    for r in range(runs):
        config = {f"p{j}": (r * 7 + j) % 13 / 10 for j in range(params - 1)} | {"optim": ("adam", "sgd")[r % 2]}
        f1 = (r * 37 % 100) / 100
        t = time.perf_counter()
        with runlock.start_run(project="q", name=f"r{r}", config=config, store=store) as run:
            for s in range(steps):
                run.log({"loss": 1 / (s + 1), "acc": s / steps, "lr": 3e-4}, step=s)
            run.set_summary({"eval/f1": f1})
        t_rl += time.perf_counter() - t
        t = time.perf_counter()
        mr = client.create_run(exp, run_name=f"r{r}")
        now = int(time.time() * 1000)
        ms = [Metric(k, v, now, s) for s in range(steps) for k, v in
              (("loss", 1 / (s + 1)), ("acc", s / steps), ("lr", 3e-4))] + [Metric("eval_f1", f1, now, 0)]
        ps = [Param(k, str(v)) for k, v in config.items()]
        for i in range(0, max(len(ms), len(ps)), 1000):   # MLflow takes at most 1000 metrics per batch
            client.log_batch(mr.info.run_id, metrics=ms[i:i + 1000], params=ps if i == 0 else [])
        client.set_terminated(mr.info.run_id)
        t_ml += time.perf_counter() - t
        if (r + 1) % max(1, runs // 10) == 0:
            print(f"    built {r + 1}/{runs} runs (runlock {t_rl:.0f} s, mlflow {t_ml:.0f} s)", flush=True)
    return {"runlock_build_s": t_rl, "mlflow_build_s": t_ml, "experiment": exp}


def best_of(fn, repeat: int = 5) -> tuple[float, object]:  # noqa: ANN001
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def bench_query(store: runlock.Store, client: MlflowClient, runs: int, params: int, steps: int) -> dict:
    print(f"3. query over {runs} runs x {params} params x {steps} steps x 3 metrics")
    built = build(store, client, runs, params, steps)
    exp = built.pop("experiment")
    where = "config.optim == 'adam' and summary.eval_f1 >= 0.9"
    flt = "params.optim = 'adam' and metrics.eval_f1 >= 0.9"
    t_rl, found = best_of(lambda: query.find_runs(store, project="q", where=where, sort="-summary.eval_f1"))
    t_df, df = best_of(lambda: query.frame(store, project="q", where=where, sort="-summary.eval_f1"))
    t_ml, ml = best_of(lambda: client.search_runs([exp], filter_string=flt, order_by=["metrics.eval_f1 DESC"],
                                                  max_results=50_000))
    t_mdf, mdf = best_of(lambda: mlflow.search_runs([exp], filter_string=flt, order_by=["metrics.eval_f1 DESC"],
                                                    max_results=50_000))
    assert len(found) == len(ml) == len(df) == len(mdf), (len(found), len(ml), len(df), len(mdf))
    out = {**built, "matches": len(found), "runlock_find_runs_s": t_rl, "runlock_dataframe_s": t_df,
           "mlflow_search_runs_s": t_ml, "mlflow_search_runs_df_s": t_mdf,
           "ratio_list": t_ml / t_rl, "ratio_dataframe": t_mdf / t_df}
    print(f"  build: runlock {built['runlock_build_s']:.0f} s, mlflow {built['mlflow_build_s']:.0f} s")
    print(f"  {len(found)} matches; runlock find_runs {t_rl * 1000:.1f} ms vs MLflow search_runs {t_ml * 1000:.1f} ms "
          f"({out['ratio_list']:.1f}x); DataFrame {t_df * 1000:.1f} ms vs {t_mdf * 1000:.1f} ms "
          f"({out['ratio_dataframe']:.1f}x)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one)")
    a = ap.parse_args()
    sizes = dict(n_rl=20_000, n_sync=200, n_async=2_000, ingest=100_000, ingest_sync=2_000, ingest_async=20_000,
                 runs=100, params=50, steps=100) if a.small else \
        dict(n_rl=200_000, n_sync=2_000, n_async=10_000, ingest=1_000_000, ingest_sync=10_000, ingest_async=100_000,
             runs=1_000, params=50, steps=200)
    root = Path(a.dir or tempfile.mkdtemp(prefix="bench-tracking-"))
    (root / "rl").mkdir(parents=True, exist_ok=True)
    os.chdir(root)   # outside any git checkout, as a training job's store usually is
    store = runlock.init(root / "rl")
    client = mlflow_setup(root)
    print(f"python {sys.version.split()[0]}, mlflow {mlflow.__version__}, runlock {runlock.__version__}, "
          f"{os.cpu_count()} CPUs, sizes {sizes}")
    results = {"log": bench_log_cost(store, sizes["n_rl"], sizes["n_sync"], sizes["n_async"]),
               "ingest": bench_ingest(store, sizes["ingest"], sizes["ingest_sync"], sizes["ingest_async"]),
               "query": bench_query(store, client, sizes["runs"], sizes["params"], sizes["steps"])}
    print("summary:", {k: round(v, 1) for k, v in {
        "log_median_vs_sync": results["log"]["ratios"]["sync"]["median"],
        "log_median_vs_async": results["log"]["ratios"]["async"]["median"],
        "log_p99_vs_async": results["log"]["ratios"]["async"]["p99"],
        "ingest_vs_async": results["ingest"]["ratio_vs_mlflow_async"],
        "ingest_vs_sync": results["ingest"]["ratio_vs_mlflow_sync"],
        "query_list": results["query"]["ratio_list"], "query_df": results["query"]["ratio_dataframe"]}.items()})


if __name__ == "__main__":
    main()
