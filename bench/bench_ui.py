"""The web UI's server time at scale: the runs page, a filtered and sorted runs page, and the page
of a run with a 1M-point series (and that series' chart data), each against a 300 ms target; with
``--mlflow``, MLflow's UI API on the same data beside it.

    .venv/bin/python bench/bench_ui.py [--runs 10000] [--keys 20] [--metrics 5] [--steps 1000]
                                       [--big 1000000] [--rounds 7] [--keep DIR] [--mlflow]

The store is built with bulk inserts straight into its tables (runs, their indexed fields, metric
points), the rows ``start_run`` would have written, because logging 50M points through the
tracking API would take hours: ``--runs`` runs, each with ``--keys`` config values and
``--metrics`` metrics of ``--steps`` points, plus one run whose ``loss`` has ``--big`` points.
Each run's rollups (``tracking/rollups.py``) are then written as sealing writes them; the time
that takes for the 1M-point run (what its seal adds) is printed. ``--keep DIR`` keeps (and
reuses) the store. Requests go through the ASGI app in-process (Starlette's TestClient): the
figure is the server's whole work for the request (routing, SQL, template, JSON), without a
network: the first request (cold for the app; a sealed run's chart data is cached after it) and
the median of ``--rounds`` more.

``--mlflow`` then loads the same runs (config values as params, every point) into ``mlflow server``
(SQLite, one worker, in ``DIR/mlflow``) through its batch logging API, four clients at once, starts
``runlock ui`` on the store, and times over HTTP from this process, on each: the runs search (first
page of 50; a filtered + sorted page of 50, checked to name the same runs in the same order), the
run itself, and the long series for a chart (2,000 points; MLflow's sampled
``get-history-bulk-interval``), and MLflow's full ``get-history`` of it. Use a small ``--runs``:
MLflow loads a few runs a second here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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
            for j, m in enumerate(names):     # the field holds the series' last value, as logging leaves it
                kind, num, text = typed(_value(i, j, steps - 1))
                field_rows.append((run_id, "metrics", m, slug(m), kind, num, text, steps - 1))
        raw.executemany(_insert(runs), run_rows)
        raw.executemany(_insert(run_fields), field_rows)
        sql = _insert(metrics)

        def points():  # noqa: ANN202  (rows in the table's column order: run_id key step rank seq value raw time)
            for i in range(n_runs):
                run_id = f"01BENCH{i:019d}"
                seq = 0
                for step in range(steps):
                    for j, m in enumerate(names):
                        yield (run_id, m, step, 0, seq, _value(i, j, step), None, 1.7e9 + step)
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
    (folder / "bench-ui.json").write_text(json.dumps({"big": big_id, "runs": n_runs, "steps": steps, "keys": n_keys,
                                                      "metrics": n_metrics, "bigsize": big}))
    store.close()
    return big_id


def _value(run: int, metric: int, step: int) -> float:
    """Point ``step`` of a run's series: a decaying curve whose scale differs by run and metric."""
    scale = ((run * 7919 + metric * 104729) % 1000 + 1) / 1000
    return scale * (0.5 + 0.5 / (1 + step / 10))


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
    ap.add_argument("--mlflow", action="store_true",
                    help="also load the store into `mlflow server` and time both over HTTP (use a small --runs)")
    a = ap.parse_args()
    folder = a.keep or Path(tempfile.mkdtemp(prefix="bench-ui-"))
    meta = folder / "bench-ui.json"
    big_id = json.loads(meta.read_text())["big"] if meta.exists() else \
        build(folder, a.runs, a.keys, a.metrics, a.steps, a.big)
    n_big = json.loads(meta.read_text()).get("bigsize", a.big)
    size = f"{n_big:,}"
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
        f"run page, {size}-point series": f"/runs/{big_id}",
        "its metric statistics (fragment: points, min, max)": f"/runs/{big_id}/metrics",
        f"chart data, {size} points -> <= 2,000": f"/runs/{big_id}/series.json?key=loss",
        "chart zoom, 10% of the range": f"/runs/{big_id}/series.json?key=loss&start={n_big * 4 // 10}"
                                        f"&end={n_big // 2}",
    }
    first = client.get("/runs.json?sort=-config.k1").json()
    cases["runs page, next page (keyset)"] = f"/runs?sort=-config.k1&after={first['next']}" if first["next"] else None
    print(f"store: {n} runs, {points} metric points ({folder})")
    print(f"| request | first request | median of the next {a.rounds} | target {TARGET_MS} ms |")
    print("| --- | ---: | ---: | --- |")
    for label, url in cases.items():
        if url is None:       # fewer runs than a page
            continue
        cold, ms = timed(client, url, a.rounds)
        verdict = "met" if max(cold, ms) <= TARGET_MS else "met when cached" if ms <= TARGET_MS else "NOT met"
        print(f"| {label} | {cold:.0f} ms | {ms:.0f} ms | {verdict} |")
    series = client.get(f"/runs/{big_id}/series.json?key=loss").json()
    print(f"\nchart data: {len(series['steps'])} points drawn of {series['points']}")
    store.close()
    if a.mlflow:
        mlflow_side(folder, a.rounds)



# -- MLflow beside it ------------------------------------------------------------------------------
def mlflow_side(folder: Path, rounds: int) -> None:
    """Load the runlock store in ``folder`` into an ``mlflow server`` (SQLite) through its batch
    logging API, serve both over HTTP on this machine, and time the same views on each."""
    import httpx   # the bench extra's clients, loaded only for this side
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.ERROR)

    meta = json.loads((folder / "bench-ui.json").read_text())
    work = folder / "mlflow"
    fresh = not work.exists()
    work.mkdir(exist_ok=True)
    ml_port, rl_port = _free_port(), _free_port()
    ml = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
                           f"sqlite:///{work / 'mlflow.db'}", "--default-artifact-root", str(work / "artifacts"),
                           "--host", "127.0.0.1", "--port", str(ml_port), "--workers", "1"], cwd=work,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    rl = subprocess.Popen([str(Path(sys.executable).parent / "runlock"), "ui", "--port", str(rl_port)], cwd=folder,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ml_url, rl_url = f"http://127.0.0.1:{ml_port}", f"http://127.0.0.1:{rl_port}"
    try:
        _wait(httpx, f"{ml_url}/health", ml)
        _wait(httpx, f"{rl_url}/runs.json", rl)
        client = MlflowClient(tracking_uri=ml_url)
        if fresh:
            exp = client.create_experiment("bench")
            t = time.time()
            ids = _load_mlflow(folder, client, exp, Metric, Param)
            print(f"mlflow: loaded {len(ids)} runs through log_batch in {time.time() - t:.0f} s", file=sys.stderr)
        exp = client.get_experiment_by_name("bench").experiment_id
        big = client.search_runs([exp], "attributes.run_name = 'big'")[0].info.run_id
        http = httpx.Client(timeout=600)
        search = f"{ml_url}/api/2.0/mlflow/runs/search"
        where = 'config.k0 == "adam" and metrics.acc > 0.3'
        cases = [
            ("runs search, first page of 50",
             lambda: http.get(f"{rl_url}/runs"),
             lambda: http.post(search, json={"experiment_ids": [exp], "max_results": 50})),
            (f"`{where}`, sorted by `-metrics.loss`, 50",
             lambda: http.get(f"{rl_url}/runs", params={"where": where, "sort": "-metrics.loss"}),
             lambda: http.post(search, json={"experiment_ids": [exp], "max_results": 50,
                                             "filter": "params.k0 = 'adam' and metrics.acc > 0.3",
                                             "order_by": ["metrics.loss DESC"]})),
            ("run page (the run itself)",
             lambda: http.get(f"{rl_url}/runs/{meta['big']}"),
             lambda: http.get(f"{ml_url}/api/2.0/mlflow/runs/get", params={"run_id": big})),
            (f"the {meta['bigsize']:,}-point series for a chart, 2,000 points",
             lambda: http.get(f"{rl_url}/runs/{meta['big']}/series.json", params={"key": "loss"}),
             lambda: http.get(f"{ml_url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                              params={"run_ids": big, "metric_key": "loss", "max_results": 2000})),
            (f"the {meta['bigsize']:,}-point series, every point",
             None,
             lambda: _history(http, ml_url, big)),
        ]
        _same_answer(http, rl_url, search, exp, where)
        print(f"\nMLflow {_mlflow_version()} (`mlflow server`, SQLite, 1 worker) vs `runlock ui` (SQLite), both over "
              f"HTTP on this machine: {meta['runs']} runs x {meta['keys']} params x {meta['metrics']} metrics x "
              f"{meta['steps']} steps + one {meta['bigsize']:,}-point series")
        print(f"| request | runlock first / median of {rounds} | MLflow first / median of {rounds} "
              "| MLflow / runlock |")
        print("| --- | ---: | ---: | ---: |")
        for label, ours, theirs in cases:
            a = _timed_call(ours, rounds) if ours else None
            b = _timed_call(theirs, rounds)
            ratio = f"{b[1] / a[1]:.1f}x" if a else "—"
            ours_s = f"{a[0]:.0f} / {a[1]:.0f} ms" if a else "— (not served: the chart asks for a range)"
            print(f"| {label} | {ours_s} | {b[0]:.0f} / {b[1]:.0f} ms | {ratio} |")
    finally:
        for proc in (ml, rl):
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _load_mlflow(folder: Path, client, exp: str, Metric, Param) -> list[str]:  # noqa: ANN001, N803
    """Every run of the runlock store, its config as params and its points as metrics, 1,000 a batch."""
    store = open_store(folder)
    with store.db.read() as conn:
        todo = conn.execute(sa.select(runs.c.id, runs.c.name).order_by(runs.c.id)).all()

    def one(run_id: str, name: str) -> str:
        with store.db.read() as conn:
            params = [Param(k, text if text is not None else repr(num)) for k, num, text in conn.execute(
                sa.select(run_fields.c.key, run_fields.c.num, run_fields.c.text)
                .where(run_fields.c.run_id == run_id, run_fields.c.section == "config"))]
            run = client.create_run(exp, run_name=name)
            pts = conn.execute(sa.select(metrics.c.key, metrics.c.value, metrics.c.time, metrics.c.step)
                               .where(metrics.c.run_id == run_id).order_by(metrics.c.seq)).all()
            batch: list = []
            for key, value, at, step in pts:
                batch.append(Metric(key, value, int(at * 1000), step))
                if len(batch) == 1000:
                    client.log_batch(run.info.run_id, metrics=batch, params=params, synchronous=True)
                    batch, params = [], []
            if batch or params:
                client.log_batch(run.info.run_id, metrics=batch, params=params, synchronous=True)
            client.set_terminated(run.info.run_id)
            return run.info.run_id

    with ThreadPoolExecutor(4) as pool:      # four clients at once, as a team's jobs would log
        ids = list(pool.map(lambda row: one(*row), todo))
    store.close()
    return ids


def _same_answer(http, rl_url: str, search: str, exp: str, where: str) -> None:  # noqa: ANN001
    """The filtered, sorted page names the same runs in the same order on both (else the times mean nothing)."""
    ours = http.get(f"{rl_url}/runs.json", params={"where": where, "sort": "-metrics.loss"}).json()
    theirs = http.post(search, json={"experiment_ids": [exp], "max_results": 50,
                                     "filter": "params.k0 = 'adam' and metrics.acc > 0.3",
                                     "order_by": ["metrics.loss DESC"]}).json()
    a = [r["name"] for r in ours["runs"]]
    b = [r["info"]["run_name"] for r in theirs.get("runs", [])]
    if not a or a != b:
        raise SystemExit(f"the two answers differ: runlock {a[:5]}... vs MLflow {b[:5]}...")
    print(f"same answer: {len(a)} runs, the same names in the same order", file=sys.stderr)


def _history(http, url: str, run_id: str):  # noqa: ANN001, ANN202
    """Every point of ``loss`` through MLflow's get-history, page by page (25,000 a page)."""
    token, last = None, None
    while True:
        params = {"run_id": run_id, "metric_key": "loss", "max_results": 25000,
                  **({"page_token": token} if token else {})}
        last = http.get(f"{url}/api/2.0/mlflow/metrics/get-history", params=params)
        token = last.json().get("next_page_token")
        if not token:
            return last


def _timed_call(call, rounds: int) -> tuple[float, float]:  # noqa: ANN001
    t = time.perf_counter()
    call().raise_for_status()
    first = (time.perf_counter() - t) * 1000
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        call().raise_for_status()
        times.append((time.perf_counter() - t) * 1000)
    return first, statistics.median(times)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(httpx, url: str, proc: subprocess.Popen, limit: float = 300) -> None:  # noqa: ANN001
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited ({proc.returncode})")
        try:
            if httpx.get(url, timeout=5).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer in {limit:.0f} s")


def _mlflow_version() -> str:
    import mlflow
    return mlflow.__version__


if __name__ == "__main__":
    main()
