"""How long a command takes from the shell, against the floor its libraries set, side by side.

    .venv/bin/python bench/bench_cli.py [--rounds 15] [--runs 1000] [--files 10000] [--keep DIR]

Each round runs every command below once, in a shuffled order, as a fresh process (the way a
user's shell runs it); the figure per command is the median over rounds, and each ratio is taken
between medians of the same rounds, so load that comes and goes hits all commands alike. Both the
wall-clock time and the CPU time (user + system, of the process and its children) are reported:
on a machine shared with other jobs the CPU time is the steadier of the two.

- floors: ``python -c "import typer"`` and ``python -c "import typer, sqlalchemy"``: what any CLI
  built on these libraries pays before doing anything;
- ``runlock --version``, ``runlock --help``, ``runlock runs list`` on a store of ``--runs`` runs;
- ``runlock data snapshot`` of an unchanged tree of ``--files`` files (a re-snapshot: every file
  is stat'ed, none is read), the whole command;
- ``mlflow --help`` and ``dvc --help``: what users of those tools wait for (the ``bench`` extra).

The store's runs are made with ``runlock.start_run`` (a config, five metric points, a summary);
the environment capture, identical for every run of one process, is taken once and reused, so
that building 1,000 runs takes about a minute. ``--keep DIR`` keeps the store and the tree in DIR
for the next invocation. Bytecode caches are written first (one warm-up round), as after any
install; PYTHONDONTWRITEBYTECODE is removed from the commands' environment.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TARGETS = {"runlock --version": ("import typer", 1.0), "runlock --help": ("import typer", 1.3),
           "runlock runs list": ("import typer, sqlalchemy", 1.5)}


def build_store(root: Path, runs: int) -> Path:
    import runlock
    from runlock import environment

    marker = root / f".bench-runs-{runs}"
    if marker.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    environment.capture = functools.cache(environment.capture)   # same machine, same answer
    store = runlock.init(root)
    t = time.perf_counter()
    for r in range(runs):
        config = {"lr": round(1e-4 * (1 + r % 7), 6), "optim": ("adam", "sgd")[r % 2], "lora": {"r": 4 << (r % 3)}}
        with runlock.start_run(project=("support-bot", "ranker")[r % 2], name=f"r{r}", config=config,
                               store=store) as run:
            for step in range(5):
                run.log({"train/loss": 1 / (step + 1 + r % 5)}, step=step)
            run.set_summary({"eval/f1": (r * 37 % 100) / 100})
        if (r + 1) % max(1, runs // 5) == 0:
            print(f"  built {r + 1}/{runs} runs ({time.perf_counter() - t:.0f} s)", flush=True)
    store.close()
    marker.touch()
    return root


def build_tree(root: Path, files: int) -> Path:
    tree = root / "tree"
    marker = root / f".bench-tree-{files}"
    if marker.exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    rng = random.Random(7)
    for i in range(files):
        p = tree / f"d{i % 100:02d}" / f"f{i:05d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f"{i}\n".encode() + rng.randbytes(rng.randint(100, 4000)))
    marker.touch()
    return tree


STAGES = """
import contextlib, io, json, sys, time
c = time.process_time
t = [c()]
import typer, sqlalchemy
t.append(c())
import runlock.cli.main, runlock.cli.runs, runlock.cli.runs_list
t.append(c())
import sqlalchemy.dialects.sqlite   # the SQLite dialect (its package loads the asyncio one too)
t.append(c())
sys.argv = ["runlock", "--store", sys.argv[1], "runs", "list"]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runlock.cli.main.main()
    except SystemExit:
        pass
t.append(c())
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""
STAGE_NAMES = ("import typer, sqlalchemy (the floor)", "runlock's modules for runs list",
               "SQLAlchemy's SQLite dialect", "open the store, query, print 50 rows")


def breakdown(py: str, store: Path, env: dict, rounds: int) -> None:
    """Where the CPU time of `runlock runs list` goes, stage by stage, in fresh processes."""
    runs = [json.loads(subprocess.run([py, "-c", STAGES, str(store)], env=env, capture_output=True, text=True,
                                      check=True).stdout) for _ in range(rounds)]
    print("runlock runs list, CPU time by stage (median of fresh processes):")
    for i, name in enumerate(STAGE_NAMES):
        print(f"  {name:<40} {statistics.median(r[i] for r in runs) * 1000:6.0f} ms")


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--runs", type=int, default=1000, help="runs in the store that `runs list` reads")
    ap.add_argument("--files", type=int, default=10_000, help="files in the tree that is re-snapshotted")
    ap.add_argument("--keep", default=None, help="keep the store and tree in this folder, reuse them next time")
    ap.add_argument("--json", default=None, help="also write the medians and ratios to this file")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-cli-"))
    try:
        run(base, args)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def run(base: Path, args: argparse.Namespace) -> None:
    py, rl = str(BIN / "python"), str(BIN / "runlock")
    store = build_store(base / "store", args.runs)
    tree = build_tree(base, args.files)
    subprocess.run([rl, "--store", str(store), "data", "snapshot", str(tree), "--name", "tree"], check=True,
                   stdout=subprocess.DEVNULL)                       # the cold snapshot, once
    commands = {
        "import typer": [py, "-c", "import typer"],
        "import typer, sqlalchemy": [py, "-c", "import typer, sqlalchemy"],
        "runlock --version": [rl, "--version"],
        "runlock --help": [rl, "--help"],
        "runlock runs list": [rl, "--store", str(store), "runs", "list"],
        f"runlock data snapshot (unchanged, {args.files} files)":
            [rl, "--store", str(store), "data", "snapshot", str(tree), "--name", "tree"],
        "mlflow --help": [str(BIN / "mlflow"), "--help"],
        "dvc --help": [str(BIN / "dvc"), "--help"],
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(COLUMNS="100", RUNLOCK_STORE="")
    for name, cmd in commands.items():                            # warm-up: bytecode caches, page cache
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{name} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; load average before: {loadavg()}")
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    order = list(commands)
    for _ in range(args.rounds):
        random.shuffle(order)
        for name in order:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(commands[name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    print(f"load average after: {loadavg()}; {args.rounds} rounds, median (min-max) per command")
    med = {name: statistics.median(ts) for name, ts in times.items()}
    mcpu = {name: statistics.median(ts) for name, ts in cpu.items()}
    for name, ts in times.items():
        print(f"  {name:<48} wall {med[name] * 1000:6.0f} ms ({min(ts) * 1000:.0f}-{max(ts) * 1000:.0f}), "
              f"cpu {mcpu[name] * 1000:6.0f} ms")
    print("ratios (median / median), wall and cpu:")
    result = {"wall_ms": {k: round(v * 1000, 1) for k, v in med.items()},
              "cpu_ms": {k: round(v * 1000, 1) for k, v in mcpu.items()}, "load": os.getloadavg(), "ratios": {}}
    for name, (floor, target) in TARGETS.items():
        ratio, rcpu = med[name] / med[floor], mcpu[name] / mcpu[floor]
        result["ratios"][name] = {"wall": round(ratio, 3), "cpu": round(rcpu, 3)}
        print(f"  {name:<22} / {floor:<26} wall {ratio:5.2f}x, cpu {rcpu:5.2f}x  (target <= {target}x: "
              f"{'met' if ratio <= target else 'NOT met'} by wall, {'met' if rcpu <= target else 'NOT met'} by cpu)")
    for name in ("mlflow --help", "dvc --help"):
        print(f"  {name:<22} / {'import typer':<26} wall {med[name] / med['import typer']:5.2f}x, "
              f"cpu {mcpu[name] / mcpu['import typer']:5.2f}x")
    snap = next(k for k in med if k.startswith("runlock data snapshot"))
    print(f"  {snap}: wall {med[snap]:.2f} s, cpu {mcpu[snap]:.2f} s (target < 1 s: "
          f"{'met' if med[snap] < 1 else 'NOT met'} by wall)")
    breakdown(py, store, env, max(5, args.rounds // 2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
