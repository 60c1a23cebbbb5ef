"""Split assignment of N records: runlock's strategies vs scikit-learn, side by side.

    .venv/bin/python bench/bench_split.py [--small] [--n N]

Both sides get the same N records (ids "rec-000000001"…, 10 balanced labels) and produce an
80/10/10 partition. scikit-learn gets integer positions (its cheapest input; it never looks at
an id) and needs two calls for three partitions; runlock gets the ids as an Arrow string array
and hashes every id (that is what makes its assignment independent of row order and, for
``hash``, stable when the dataset grows). Peak memory is the tracemalloc peak of each call
(NumPy and Python allocations), measured in a second run so it does not slow the timing.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import pyarrow as pa
from sklearn.model_selection import StratifiedShuffleSplit, train_test_split

from runlock.data import strategies as S

WEIGHTS, _ = S.check_ratios((0.8, 0.1, 0.1))


def sk_random(n: int, labels: np.ndarray) -> tuple:
    idx = np.arange(n)
    train, rest = train_test_split(idx, test_size=0.2, random_state=42)
    val, test = train_test_split(rest, test_size=0.5, random_state=42)
    return train, val, test


def sk_stratified(n: int, labels: np.ndarray) -> tuple:
    first = StratifiedShuffleSplit(n_splits=1, test_size=0.2, random_state=42)
    train, rest = next(first.split(np.zeros(n), labels))
    second = StratifiedShuffleSplit(n_splits=1, test_size=0.5, random_state=42)
    val, test = next(second.split(np.zeros(len(rest)), labels[rest]))
    return train, rest[val], rest[test]


def measure(fn, *args) -> tuple[float, float]:
    """(seconds, peak MiB)."""
    t0 = time.perf_counter()
    fn(*args)
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="100,000 records instead of 10 million")
    ap.add_argument("--n", type=int, default=None)
    args = ap.parse_args()
    n = args.n or (100_000 if args.small else 10_000_000)
    ids = pa.array([f"rec-{i:09d}" for i in range(n)], pa.string())
    labels = np.random.default_rng(0).integers(0, 10, n)
    cases = [
        ("random", lambda: S.assign("random", ids, WEIGHTS, 42), sk_random, "train_test_split x2"),
        ("stratified", lambda: S.assign("stratified", ids, WEIGHTS, 42, column=labels), sk_stratified,
         "StratifiedShuffleSplit x2"),
        ("hash", lambda: S.assign("hash", ids, WEIGHTS, 42), sk_random, "train_test_split x2"),
    ]
    print(f"{n:,} records, ratios 0.8/0.1/0.1")
    print(f"{'strategy':<11} {'runlock s':>10} {'sklearn s':>10} {'time ratio':>11} "
          f"{'runlock MiB':>12} {'sklearn MiB':>12} {'mem ratio':>10}  peer")
    for name, ours, theirs, peer in cases:
        t_r, m_r = measure(ours)
        t_s, m_s = measure(theirs, n, labels)
        print(f"{name:<11} {t_r:>10.2f} {t_s:>10.2f} {t_r / t_s:>10.2f}x {m_r:>12.0f} {m_s:>12.0f} "
              f"{m_r / m_s:>9.2f}x  {peer}")
    print("ratio = runlock / scikit-learn (below 1: runlock is faster / smaller)")


if __name__ == "__main__":
    main()
