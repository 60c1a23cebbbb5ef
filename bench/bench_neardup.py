"""Near-duplicate detection on N short texts: runlock's MinHash LSH vs datasketch, side by side.

    .venv/bin/python bench/bench_neardup.py [--small] [--n N] [--words W] [--only-runlock]

The corpus: N random W-word texts (default 20) over a Zipf-distributed 50,000-word vocabulary, of
which 1% are near copies of other texts with one word replaced (the planted pairs; each source is
copied at most once). Both sides use runlock's default parameters (``NearDupSettings()``:
normalised text, word 2-shingles, 120 permutations in 30 bands of 4 rows, threshold 0.65).
datasketch is used as its users do: MinHash.update_batch per text, MinHashLSH.insert, then query
per text; its candidate pairs are scored as found. runlock's pipeline additionally verifies
candidates by exact Jaccard >= the threshold.
Recall = planted pairs found / planted; precision = found pairs that are planted / found.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from datasketch import MinHash, MinHashLSH

from runlock.data.minhash import NearDupSettings, near_duplicates, normalise

SETTINGS = NearDupSettings()  # shingle 2, threshold 0.65, 30 bands x 4 rows


def corpus(n: int, seed: int = 0, length: int = 20) -> tuple[list[str], set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    p = 1 / np.arange(1, 50_001) ** 1.1
    words = vocab[rng.choice(50_000, size=(n, length), p=p / p.sum())]
    copies = n // 100
    base = n - copies
    sources = rng.choice(base, size=copies, replace=False)
    for k, src in enumerate(sources):
        words[base + k] = words[src]
        words[base + k, rng.integers(length)] = f"changed{k}"
    texts = [" ".join(row) for row in words]
    return texts, {(int(s), base + k) for k, s in enumerate(sources)}


def score(found: set[tuple[int, int]], planted: set[tuple[int, int]]) -> tuple[float, float]:
    hit = len(found & planted)
    return hit / len(planted), hit / max(1, len(found))


def run_runlock(texts: list[str]) -> set[tuple[int, int]]:
    a, b, _ = near_duplicates(texts, SETTINGS)
    return set(zip(a.tolist(), b.tolist()))


def run_datasketch(texts: list[str]) -> set[tuple[int, int]]:
    lsh = MinHashLSH(threshold=SETTINGS.threshold, num_perm=SETTINGS.num_perm,
                     params=(SETTINGS.bands, SETTINGS.rows))
    sigs = []
    for i, text in enumerate(normalise(texts).to_pylist()):
        w = text.split()
        m = MinHash(num_perm=SETTINGS.num_perm, seed=1)
        m.update_batch([f"{x} {y}".encode() for x, y in zip(w, w[1:])])
        lsh.insert(i, m)
        sigs.append(m)
    found = set()
    for i, m in enumerate(sigs):
        for j in lsh.query(m):
            if j != i:
                found.add((min(i, j), max(i, j)))
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="20,000 texts instead of 1 million")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--only-runlock", action="store_true", help="skip datasketch (for sizes it cannot reach)")
    ap.add_argument("--words", type=int, default=20, help="words per text (default 20)")
    args = ap.parse_args()
    n = args.n or (20_000 if args.small else 1_000_000)
    texts, planted = corpus(n, length=args.words)
    print(f"{n:,} texts of {args.words} words, {len(planted):,} planted near copies (one word changed); {SETTINGS}")
    rows = []
    sides = (("runlock", run_runlock),) + (() if args.only_runlock else (("datasketch", run_datasketch),))
    for name, fn in sides:
        t0 = time.perf_counter()
        found = fn(texts)
        seconds = time.perf_counter() - t0
        recall, precision = score(found, planted)
        rows.append((name, seconds, recall, precision, len(found)))
        print(f"{name:<11} {seconds:>8.1f} s  recall {recall:.4f}  precision {precision:.4f}  pairs {len(found):,}",
              flush=True)
    if len(rows) == 2:
        print(f"time ratio runlock / datasketch: {rows[0][1] / rows[1][1]:.3f}x "
              f"({rows[1][1] / rows[0][1]:.1f}x faster)")


if __name__ == "__main__":
    main()
