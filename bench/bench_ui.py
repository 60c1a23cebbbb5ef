"""The web UI's server time at scale: the runs page, a filtered and sorted runs page, and the page
of a run with a 1M-point series (and that series' chart data), each against a 300 ms target.

    .venv/bin/python bench/bench_ui.py [--runs 10000] [--keys 20] [--metrics 5] [--steps 1000]
                                       [--big 1000000] [--rounds 7] [--keep DIR]

The store is built with bulk inserts straight into its tables (runs, their indexed fields, metric
points), the rows ``start_run`` would have written, because logging 50M points through the
tracking API would take hours: ``--runs`` runs, each with ``--keys`` config values and
``--metrics`` metrics of ``--steps`` points, plus one run whose ``loss`` has ``--big`` points.
Each run's rollups (``tracking/rollups.py``) are then written as sealing writes them; the time
that takes for the 1M-point run (what its seal adds) is printed. ``--keep DIR`` keeps (and reuses) the store. Requests go through the ASGI app in-process
(Starlette's TestClient): the figure is the server's whole work for the request (routing, SQL,
template, JSON), without a network: the first request (cold for the app; a sealed run's chart
data is cached after it) and the median of ``--rounds`` more.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from starlette.testclient import TestClient

from runlock.store.schema import metrics, runs
from runlock.tracking import rollups
from runlock.tracking.fields import run_fields, slug, typed
from runlock.ui import create_app
from runlock.workspace import init, open_store

TARGET_MS = 300
METRICS = ("loss", "acc", "f1", "lr_now", "grad_norm")


def build(folder: Path, n_runs: int, n_keys: int, n_metrics: int, steps: int, big: int) -> str:
    """Fill a new store in ``folder``; return the id of the run with the big series."""
    folder.mkdir(parents=True, exist_ok=True)
    store = init(folder)
    rng = random.Random(0)
    t0 = time.time()
    names = METRICS[:n_metrics]
    with store.db.write() as conn:
        raw = conn.connection.driver_connection
        run_rows, field_rows = [], []
        for i in range(n_runs):
            run_id = f"01BENCH{i:019d}"
            started = f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z"
            run_rows.append((run_id, f"proj{i % 5}", f"run-{i}", "finished", None, "bench", started, started,
                             None, "host", None, None, steps - 1, "{}", "{}", None, "{}", None, None, None))
            for k in range(n_keys):
                value = rng.random() if k % 4 else rng.choice(["adam", "sgd", "adamw"])
                kind, num, text = typed(value)
                field_rows.append((run_id, "config", f"k{k}", f"k{k}", kind, num, text, None))
            for m in names:
                kind, num, text = typed(rng.random())
                field_rows.append((run_id, "metrics", m, slug(m), kind, num, text, steps - 1))
        raw.executemany(_insert(runs), run_rows)
        raw.executemany(_insert(run_fields), field_rows)
        sql = _insert(metrics)

        def points():  # noqa: ANN202  (rows in the table's column order: run_id key step rank seq value raw time)
            for i in range(n_runs):
                run_id = f"01BENCH{i:019d}"
                seq = 0
                for step in range(steps):
                    for m in names:
                        yield (run_id, m, step, 0, seq, 1.0 / (step + 1 + i % 7), None, 1.7e9 + step)
                        seq += 1

        raw.executemany(sql, points())
        big_id = "01BIGRUN" + "0" * 18
        raw.execute(_insert(runs),
                    (big_id, "proj0", "big", "finished", None, "bench", "2027-01-01T00:00:00Z", None, None, "host",
                     None, None, big - 1, "{}", "{}", None, "{}", None, None, None))
        raw.executemany(sql, ((big_id, "loss", s, 0, s, 1.0 / (s + 1) + rng.random() * 1e-3, None, 1.7e9 + s)
                              for s in range(big)))
        t1 = time.time()
        for i in range(n_runs):                   # what records.end writes when each run is sealed
            rollups.write(conn, f"01BENCH{i:019d}")
        t2 = time.time()
        rollups.write(conn, big_id)
        print(f"rollups: {n_runs} runs in {t2 - t1:.1f} s; the {big}-point run's in {time.time() - t2:.2f} s "
              f"(what its seal adds)", file=sys.stderr)
    print(f"built {n_runs} runs x {n_keys} keys x {n_metrics} metrics x {steps} steps + one {big}-point series "
          f"in {time.time() - t0:.0f} s", file=sys.stderr)
    (folder / "bench-ui.json").write_text(json.dumps({"big": big_id, "runs": n_runs, "steps": steps}))
    store.close()
    return big_id


def _insert(table: sa.Table) -> str:
    names = [c.name for c in table.c]
    return f"INSERT INTO {table.name} ({','.join(names)}) VALUES ({','.join('?' * len(names))})"


def timed(client: TestClient, url: str, rounds: int) -> tuple[float, float]:
    """The first request's time (cold: nothing cached by the app), and the median of the next ones."""
    t = time.perf_counter()
    client.get(url).raise_for_status()
    first = (time.perf_counter() - t) * 1000
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return first, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--metrics", type=int, default=5)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--keep", type=Path)
    a = ap.parse_args()
    folder = a.keep or Path(tempfile.mkdtemp(prefix="bench-ui-"))
    meta = folder / "bench-ui.json"
    big_id = json.loads(meta.read_text())["big"] if meta.exists() else \
        build(folder, a.runs, a.keys, a.metrics, a.steps, a.big)
    store = open_store(folder)
    client = TestClient(create_app(lambda: store))
    with store.db.read() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(runs)).scalar()
        points = conn.execute(sa.select(sa.func.count()).select_from(metrics)).scalar()
    cases = {
        "runs page (first 50)": "/runs",
        "runs page, filtered + sorted + 2 columns": "/runs?where=config.k1+%3E+0.5+and+config.k0+%3D%3D+%22adam%22"
                                                    "&sort=-metrics.loss&col=config.k1,metrics.loss",
        "runs page, next page (keyset)": None,
        "run page, 1M-point series": f"/runs/{big_id}",
        "its metric statistics (fragment: points, min, max)": f"/runs/{big_id}/metrics",
        "chart data, 1M points -> <= 2,000": f"/runs/{big_id}/series.json?key=loss",
        "chart zoom, 10% of the range": f"/runs/{big_id}/series.json?key=loss&start=400000&end=500000",
    }
    first = client.get("/runs.json?sort=-config.k1").json()
    cases["runs page, next page (keyset)"] = f"/runs?sort=-config.k1&after={first['next']}"
    print(f"store: {n} runs, {points} metric points ({folder})")
    print(f"| request | first request | median of the next {a.rounds} | target {TARGET_MS} ms |")
    print("| --- | ---: | ---: | --- |")
    for label, url in cases.items():
        cold, ms = timed(client, url, a.rounds)
        verdict = "met" if max(cold, ms) <= TARGET_MS else "met when cached" if ms <= TARGET_MS else "NOT met"
        print(f"| {label} | {cold:.0f} ms | {ms:.0f} ms | {verdict} |")
    series = client.get(cases["chart data, 1M points -> <= 2,000"]).json()
    print(f"\nchart data: {len(series['steps'])} points drawn of {series['points']}")
    store.close()


if __name__ == "__main__":
    main()
