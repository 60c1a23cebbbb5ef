"""Dataset snapshot speed: runlock vs DVC, side by side in one process.

    .venv/bin/python bench/bench_snapshot.py [--small] [--dir DIR]

1. Cold snapshot of a tree (full: 10,000 files, 2 GB; --small: 1,000 files, 200 MB):
   ``runlock.data.create_snapshot`` into a fresh store vs ``dvc add`` into a fresh repo
   (DVC's Python API, ``Repo.add``; cache type copy, as on any ext4 disk).
2. Warm re-snapshot of the same unchanged tree vs ``dvc status``.
3. One large file (full: 4 GB; --small: 400 MB): runlock's throughput as a fraction of this
   machine's raw sha256 speed (hashlib over a buffer in memory: the limit), and vs ``dvc add``.

Both tools read the same files from the page cache (the tree is written, then synced, first).
runlock's timings include storing every byte in its object store and one ``sync`` before the
snapshot is recorded (durable); DVC copies into its cache without syncing.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

from runlock.data import create_snapshot
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


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


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
                    help="diagnosis only: skip runlock's two syncs, to see how much of the cold time is the disk")
    args = ap.parse_args()
    if args.no_sync:
        os.sync = lambda: None  # this process only; runlock never runs like this outside the benchmark
        print("NOTE: --no-sync: runlock's objects are not synced in this run (not durable)")
    files, total, big = (1_000, 200 << 20, 400 << 20) if args.small else (10_000, 2 << 30, 4 << 30)
    base = Path(tempfile.mkdtemp(prefix="bench-snapshot-", dir=args.dir))
    try:
        run(base, files, total, big)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run(base: Path, files: int, total: int, big: int) -> None:
    print(f"machine: {os.cpu_count()} cores; raw sha256 (one core, in memory): {raw_sha256_gbps():.2f} GB/s")
    dvc_root = base / "dvc"
    tree = dvc_root / "data"
    tree.mkdir(parents=True)
    size = make_tree(tree, files, total)
    settle()
    print(f"tree: {files} files, {size / 1e9:.2f} GB")

    (base / "rl").mkdir()
    store = init(base / "rl")
    cold, snap = timed(lambda: create_snapshot(store, tree, "bench"))
    warm, again = timed(lambda: create_snapshot(store, tree, "bench"))
    assert again.id == snap.id and not again.created
    settle()
    repo = dvc_repo(dvc_root)
    dvc_cold, _ = timed(lambda: repo.add(str(tree)))
    dvc_warm, status = timed(lambda: repo.status())
    assert status == {}, status
    print(f"cold snapshot: runlock {cold:.2f} s ({size / cold / 1e9:.2f} GB/s), dvc add {dvc_cold:.2f} s "
          f"({size / dvc_cold / 1e9:.2f} GB/s) -> runlock {dvc_cold / cold:.1f}x faster")
    print(f"warm re-snapshot: runlock {warm:.3f} s, dvc status {dvc_warm:.3f} s -> runlock "
          f"{dvc_warm / warm:.1f}x faster")
    shutil.rmtree(dvc_root)

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
    dvc_big, _ = timed(lambda: big_repo.add(str(big_file)))
    limit = raw_sha256_gbps()
    gbps = big / t_big / 1e9
    print(f"one {big / 2**30:.1f} GiB file: runlock {t_big:.2f} s ({gbps:.2f} GB/s = {gbps / limit:.0%} of raw "
          f"sha256 {limit:.2f} GB/s; hash-only read of the file {big / read_only / 1e9:.2f} GB/s), "
          f"dvc add {dvc_big:.2f} s -> runlock {dvc_big / t_big:.1f}x faster; "
          f"peak RSS grew {(rss_after - rss_before) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
