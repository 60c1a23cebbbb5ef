"""Team-server ingest: N concurrent clients logging through `runlock server` vs `mlflow server`.

    .venv/bin/python bench/bench_server.py [--clients 32] [--steps 10000] [--mlflow-steps 200]

Each client is its own process. runlock: ``RUNLOCK_SERVER`` set, ``start_run``, ``run.log`` of 5
scalars per step for ``--steps`` steps, then ``flush()`` (returns when the server acknowledged
every point: durable in its SQLite store). Measured: points per second from the first log call
to the last client's flush (durable), p50/p99 of one ``run.log`` call in the client, p99 of one
ingest request (a batch round trip, timed by the spool thread), and points lost (expected vs
stored, counted in the store afterwards).

MLflow: ``mlflow server --backend-store-uri sqlite:///…`` on the same machine; each client calls
``mlflow.log_metrics`` (5 scalars) per step, synchronously as a training loop does by default,
for ``--mlflow-steps`` steps (10,000 steps × 32 clients at MLflow's rate would take hours; the
rate is what is compared). The servers run one at a time.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

KEYS = ("loss", "acc", "lr", "grad_norm", "tokens_per_s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


# -- runlock ---------------------------------------------------------------------------------------
def runlock_client(url: str, token: str, steps: int, spool: str, go, out) -> None:  # noqa: ANN001
    os.environ.update(RUNLOCK_SERVER=url, RUNLOCK_TOKEN=token, RUNLOCK_SPOOL_DIR=spool)
    import runlock
    run = runlock.start_run("bench", config={"lr": 1e-3})
    out.put("ready")
    go.wait()
    lat = []
    t = time.perf_counter
    for step in range(steps):
        v = {"loss": 1.0 / (step + 1), "acc": step / steps, "lr": 1e-3, "grad_norm": 0.5, "tokens_per_s": 1e4}
        a = t()
        run.log(v, step=step)
        lat.append(t() - a)
    run.flush()
    done = time.time()
    out.put((run.id, lat, list(run._spool.request_seconds), done))
    run.finish()      # sealing (hashing every series) is not part of ingest: timed apart


def bench_runlock(clients: int, steps: int, work: Path) -> dict:
    from runlock import identity
    from runlock.workspace import init
    folder = work / "runlock-server"
    folder.mkdir()
    store = init(folder)
    identity.create_identity(store, "bench")
    identity.grant_role(store, "bench", "editor")
    token = identity.issue_token(store, "bench", days=1).token
    store.close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLOCK_")}
    proc = subprocess.Popen([sys.executable, "-c", "from runlock.cli.entry import main; main()", "server",
                             "--port", str(port)], cwd=folder, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/api/v1/health", proc)
        return _drive(runlock_client, (url, token, steps, str(work / "spool")), clients, steps,
                      lambda ids: _count_runlock(folder / ".runlock" / "runlock.db", ids))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _count_runlock(db: Path, ids: list[str]) -> int:
    with sqlite3.connect(db) as c:
        return sum(c.execute("SELECT count(*) FROM metrics WHERE run_id = ?", (i,)).fetchone()[0] for i in ids)


# -- MLflow ------------------------------------------------------------------------------------------
def mlflow_client(url: str, steps: int, go, out) -> None:  # noqa: ANN001
    os.environ["MLFLOW_TRACKING_URI"] = url
    import mlflow
    for attempt in range(10):   # 32 clients starting at once: the server may refuse some at first
        try:
            mlflow.set_experiment("bench")      # made once before the clients start (no creation race)
            run = mlflow.start_run()
            break
        except Exception as e:  # noqa: BLE001
            if attempt == 9:
                out.put(f"failed to start: {e!r}")
                return
            time.sleep(1 + attempt)
    out.put("ready")
    go.wait()
    lat = []
    t = time.perf_counter
    failed = 0
    for step in range(steps):
        v = {"loss": 1.0 / (step + 1), "acc": step / steps, "lr": 1e-3, "grad_norm": 0.5, "tokens_per_s": 1e4}
        a = t()
        try:
            mlflow.log_metrics(v, step=step)
        except Exception:  # noqa: BLE001 - the server refused (e.g. its connection pool is exhausted)
            failed += 1
        lat.append(t() - a)
    done = time.time()
    if failed:
        print(f"mlflow client: {failed} of {steps} log calls failed", file=sys.stderr)
    out.put((run.info.run_id, lat, lat, done))   # synchronous: a log call is one ingest request
    mlflow.end_run()


def bench_mlflow(clients: int, steps: int, work: Path) -> dict:
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    folder = work / "mlflow-server"
    folder.mkdir()
    db = folder / "mlflow.db"
    port = free_port()
    proc = subprocess.Popen([str(mlflow_bin), "server", "--backend-store-uri", f"sqlite:///{db}",
                             "--default-artifact-root", str(folder / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], cwd=folder, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", proc, limit=300)
        _create_experiment(url, "bench")
        return _drive(mlflow_client, (url, steps), clients, steps, lambda ids: _count_mlflow(db, ids))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:   # its workers linger: do not lose the result for that
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _create_experiment(url: str, name: str) -> None:
    """The experiment every client logs to, made once: 32 clients each creating it race and fail."""
    from mlflow.tracking import MlflowClient
    MlflowClient(tracking_uri=url).create_experiment(name)


def _count_mlflow(db: Path, ids: list[str]) -> int:
    with sqlite3.connect(db) as c:
        return sum(c.execute("SELECT count(*) FROM metrics WHERE run_uuid = ?", (i,)).fetchone()[0] for i in ids)


# -- shared ------------------------------------------------------------------------------------------
def _drive(target, args: tuple, clients: int, steps: int, count) -> dict:  # noqa: ANN001
    ctx = mp.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, go, out)) for _ in range(clients)]
    for p in procs:
        p.start()
    for _ in procs:                        # every client has started its run and waits
        said = out.get(timeout=600)
        if said != "ready":
            for p in procs:
                p.kill()
            raise SystemExit(f"a client could not start: {said}")
    began = time.time()
    go.set()
    results = [out.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join(600)
    end = max(r[3] for r in results)
    points = clients * steps * len(KEYS)
    lat = [x for r in results for x in r[1]]
    req = [x for r in results for x in r[2]]
    stored = count([r[0] for r in results])
    return {"clients": clients, "steps": steps, "points": points, "seconds": end - began,
            "points_per_s": points / (end - began), "log_p50_us": pct(lat, 0.5) * 1e6,
            "log_p99_us": pct(lat, 0.99) * 1e6, "ingest_p99_ms": pct(req, 0.99) * 1e3, "requests": len(req),
            "lost": points - stored}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--mlflow-steps", type=int, default=200)
    ap.add_argument("--no-mlflow", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    rows = []
    try:
        rows.append(("runlock server", bench_runlock(a.clients, a.steps, work)))
        print(rows[-1], flush=True)
        if not a.no_mlflow:
            rows.append(("mlflow server (sqlite)", bench_mlflow(a.clients, a.mlflow_steps, work)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{os.cpu_count()} CPUs; {a.clients} clients; 5 scalars per log call")
    print(f"{'':24} {'steps/client':>12} {'points/s durable':>17} {'log p50':>10} {'log p99':>10} "
          f"{'ingest p99':>11} {'lost':>5}")
    for name, r in rows:
        print(f"{name:24} {r['steps']:>12} {r['points_per_s']:>17,.0f} {r['log_p50_us']:>8.1f}us "
              f"{r['log_p99_us']:>8.1f}us {r['ingest_p99_ms']:>9.1f}ms {r['lost']:>5}")
    if len(rows) == 2:
        print(f"runlock / MLflow throughput: {rows[0][1]['points_per_s'] / rows[1][1]['points_per_s']:,.0f}x")


if __name__ == "__main__":
    main()
