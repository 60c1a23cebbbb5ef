"""Dataset snapshot speed: runlock vs DVC, side by side in one process.

    .venv/bin/python bench/bench_snapshot.py [--small] [--dir DIR]

1. Cold snapshot of a tree (full: 10,000 files, 2 GB; --small: 1,000 files, 200 MB), each copy
   durable when its time stops:
   - ``runlock.data.create_snapshot`` into a fresh store (it makes its objects durable itself:
     ``store/durable.py``);
   - ``dvc add`` into a fresh repo (DVC's Python API, ``Repo.add``; cache type copy, as on any
     ext4 disk) **followed by** ``sync``: DVC does not sync its cache, so without it the copy
     may still be in memory when the time stops;
   - ``cp -r`` of the tree to the same disk, followed by ``sync``: the disk's own floor for a
     durable copy.
   Each starts with no dirty pages (a ``sync`` and a pause before it, not timed).
2. Warm re-snapshot of the same unchanged tree vs ``dvc status``.
3. One large file (full: 4 GB; --small: 400 MB): runlock's throughput as a fraction of this
   machine's raw sha256 speed (hashlib over a buffer in memory: the limit), and vs ``dvc add``.

All read the same files from the page cache (the tree is written, then synced, first).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from runlock.data import create_snapshot
from runlock.store import durable
from runlock.workspace import init


def make_tree(root: Path, files: int, total: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    sizes = [rng.randint(1, 2 * total // files) for _ in range(files)]
    block = os.urandom(4 << 20)
    written = 0
    for i, size in enumerate(sizes):
        p = root / f"d{i % 100:02d}" / f"s{(i // 100) % 10}" / f"f{i:05d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        start = rng.randrange(0, len(block) - 1)
        data = (block[start:] + block[:start]) * (size // len(block) + 1)
        p.write_bytes(i.to_bytes(8, "little") + data[:size])
        written += size + 8
    return written


def make_big(path: Path, size: int) -> None:
    block = os.urandom(64 << 20)
    with open(path, "wb") as f:
        for i in range(size // len(block)):
            f.write(i.to_bytes(8, "little") + block[8:])


CPU: dict[str, list[float]] = {}   # CPU seconds (this process and its children) of each cold copy
LAST_CPU = [0.0]


def timed(fn):
    c, t = cpu_now(), time.perf_counter()
    result = fn()
    LAST_CPU[0] = cpu_now() - c
    return time.perf_counter() - t, result


def cpu_now() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def settle() -> None:
    os.sync()
    time.sleep(0.3)


def raw_sha256_gbps() -> float:
    buf = os.urandom(512 << 20)
    best = 0.0
    for _ in range(3):
        dt, _ = timed(lambda: hashlib.sha256(buf).digest())
        best = max(best, len(buf) / dt / 1e9)
    return best


def dvc_repo(root: Path):
    from dvc.repo import Repo

    return Repo.init(str(root), no_scm=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true", help="1,000 files / 200 MB and a 400 MB file")
    ap.add_argument("--dir", default=None, help="where to put the data (default: a temp folder)")
    ap.add_argument("--no-sync", action="store_true",
                    help="diagnosis only: runlock skips making its objects durable, to see how much of "
                         "the cold time is the disk")
    ap.add_argument("--no-dvc", action="store_true", help="cold snapshots of runlock and cp -r + sync only")
    ap.add_argument("--no-big", action="store_true", help="skip the one-large-file measurement")
    ap.add_argument("--repeat", type=int, default=1, help="cold snapshots per tool (medians are reported)")
    args = ap.parse_args()
    if args.no_sync:  # this process only; runlock never runs like this outside the benchmark
        durable.start = durable.barrier = lambda *_: None
        print("NOTE: --no-sync: runlock's objects are not made durable in this run")
    files, total, big = (1_000, 200 << 20, 400 << 20) if args.small else (10_000, 2 << 30, 4 << 30)
    base = Path(tempfile.mkdtemp(prefix="bench-snapshot-", dir=args.dir))
    try:
        run(base, files, total, 0 if args.no_big else big, args.repeat, not args.no_dvc)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def cold_runs(base: Path, tree: Path, repeat: int, with_dvc: bool = True) -> dict[str, list[float]]:
    """Each tool copies the tree ``repeat`` times into a fresh destination each time; the order of
    the tools is reversed every other round, so that load which comes and goes hits all alike."""
    times: dict[str, list[float]] = {"runlock": [], "dvc add + sync": [], "cp -r + sync": []}
    if not with_dvc:
        del times["dvc add + sync"]

    def runlock_cold(i: int) -> float:
        (base / f"rl{i}").mkdir()
        store = init(base / f"rl{i}")
        settle()
        t, _ = timed(lambda: create_snapshot(store, tree, "bench"))
        store.close()
        shutil.rmtree(base / f"rl{i}")
        return t

    def dvc_cold(i: int) -> float:
        dvc_root = base / f"dvc{i}"
        dvc_root.mkdir()
        shutil.copytree(tree, dvc_root / "data", copy_function=os.link)   # the same files, hard-linked
        repo = dvc_repo(dvc_root)
        settle()
        t, _ = timed(lambda: (repo.add(str(dvc_root / "data")), os.sync()))
        shutil.rmtree(dvc_root)
        return t

    def cp_cold(i: int) -> float:
        settle()
        t, _ = timed(lambda: (subprocess.run(["cp", "-r", str(tree), str(base / f"cp{i}")], check=True),
                              subprocess.run(["sync"], check=True)))
        shutil.rmtree(base / f"cp{i}")
        return t

    tools = [(k, fn) for k, fn in (("runlock", runlock_cold), ("dvc add + sync", dvc_cold),
                                   ("cp -r + sync", cp_cold)) if k in times]
    for i in range(repeat):
        for name, fn in (tools if i % 2 == 0 else tools[::-1]):
            times[name].append(fn(i))
            CPU.setdefault(name, []).append(LAST_CPU[0])
        print(f"  round {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s (cpu {CPU[k][-1]:.1f} s)"
                                               for k, v in times.items())
              + f"; load average {os.getloadavg()[0]:.1f}", flush=True)
    return times


def run(base: Path, files: int, total: int, big: int, repeat: int, with_dvc: bool = True) -> None:
    print(f"machine: {os.cpu_count()} cores; raw sha256 (one core, in memory): {raw_sha256_gbps():.2f} GB/s; "
          f"load average {os.getloadavg()[0]:.1f}")
    tree = base / "tree"
    tree.mkdir(parents=True)
    size = make_tree(tree, files, total)
    settle()
    print(f"tree: {files} files, {size / 1e9:.2f} GB")

    times = cold_runs(base, tree, repeat, with_dvc)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"cold, {k:<15} {med[k]:6.2f} s ({size / med[k] / 1e9:.2f} GB/s)  runs: "
              + ", ".join(f"{x:.2f}" for x in v))
    rl, cp = med["runlock"], med["cp -r + sync"]
    vs_cp = statistics.median(r / c for r, c in zip(times["runlock"], times["cp -r + sync"]))
    if with_dvc:
        dvc = med["dvc add + sync"]
        vs_dvc = statistics.median(d / r for r, d in zip(times["runlock"], times["dvc add + sync"]))
        print(f"cold snapshot vs durable DVC: runlock {dvc / rl:.2f}x its speed by medians, {vs_dvc:.2f}x by the "
              f"median of each round's ratio (target >= 1.5x)")
    print(f"cold snapshot vs cp -r + sync: runlock {rl / cp:.2f}x its time by medians, {vs_cp:.2f}x by the median "
          f"of each round's ratio (target <= 1.3x); load average {os.getloadavg()[0]:.1f}")
    if not with_dvc:
        return

    (base / "rl").mkdir()
    store = init(base / "rl")
    create_snapshot(store, tree, "bench")
    warm, again = timed(lambda: create_snapshot(store, tree, "bench"))
    assert not again.created
    dvc_root = base / "dvc"
    dvc_root.mkdir()
    shutil.copytree(tree, dvc_root / "data", copy_function=os.link)
    repo = dvc_repo(dvc_root)
    repo.add(str(dvc_root / "data"))
    dvc_warm, status = timed(lambda: repo.status())
    assert status == {}, status
    print(f"warm re-snapshot: runlock {warm:.3f} s, dvc status {dvc_warm:.3f} s -> runlock "
          f"{dvc_warm / warm:.1f}x faster")
    shutil.rmtree(dvc_root)
    shutil.rmtree(tree)
    if big:
        one_big_file(base, store, big)


def one_big_file(base: Path, store, big: int) -> None:  # noqa: ANN001
    big_root = base / "dvc-big"
    big_root.mkdir()
    big_file = big_root / "big.bin"
    make_big(big_file, big)
    settle()
    read_only, _ = timed(lambda: hashlib.file_digest(open(big_file, "rb"), "sha256"))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_big, _ = timed(lambda: create_snapshot(store, big_file, "big"))
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settle()
    big_repo = dvc_repo(big_root)
    dvc_big, _ = timed(lambda: (big_repo.add(str(big_file)), os.sync()))
    limit = raw_sha256_gbps()
    gbps = big / t_big / 1e9
    print(f"one {big / 2**30:.1f} GiB file: runlock {t_big:.2f} s ({gbps:.2f} GB/s = {gbps / limit:.0%} of raw "
          f"sha256 {limit:.2f} GB/s; hash-only read of the file {big / read_only / 1e9:.2f} GB/s), "
          f"dvc add + sync {dvc_big:.2f} s -> runlock {dvc_big / t_big:.1f}x faster; "
          f"peak RSS grew {(rss_after - rss_before) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
