"""Split strategies: pure functions from record ids (and one column) to a partition per record.

Every random choice comes from ``hash64`` (``rl-hash64-v1``), a documented 64-bit hash of
(UTF-8 string, seed), never from a random number generator: the assignment is the same on any
machine, any NumPy version and any engine that reimplements the dozen lines of ``hash64``.

    random            records ordered by hash64(record id, seed); counts by largest remainder
    stratified        the same inside each class; a controlled rounding keeps every class and
                      every partition total within one record of its target
    group             whole groups, largest first, each to the partition furthest below target
    stratified-group  whole groups, each to the partition that best keeps the class proportions
    temporal          sorted by time; ties at a boundary go to the earlier partition
    hash              partition i iff B[i-1] <= hash64(id, seed) >> 11 < B[i], with
                      B[i] = floor(2**53 * (r[0] + ... + r[i])): stable when the dataset grows;
                      with --by, the key is the column's value in its canonical text (``key_texts``)

Ratios are turned into exact fractions (``Fraction(r).limit_denominator(10**6)``), so rounding
never depends on floating point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import math
from fractions import Fraction
from typing import Any

import numpy as np

from runlock.errors import InvalidInput

HASH_VERSION = "rl-hash64-v1"
KEY_VERSION = "rl-key-v1"   # how a column value becomes the text that is hashed (key_texts)
STRATEGIES = ("random", "stratified", "group", "stratified-group", "temporal", "hash")
NEEDS_COLUMN = {"stratified": "by", "group": "by", "stratified-group": "by", "temporal": "by"}
DEFAULT_NAMES = ("train", "validation", "test")
MAX_PARTITIONS = 100
MAX_SEED = 2**63 - 1

_M64 = (1 << 64) - 1
_C1, _C2, _GOLDEN = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x9E3779B97F4A7C15
_CHUNK = 1 << 20


# -- rl-hash64-v1 --------------------------------------------------------------------------------
def fmix64(x: int) -> int:
    """MurmurHash3's 64-bit finaliser (a bijection with full avalanche)."""
    x ^= x >> 33
    x = (x * _C1) & _M64
    x ^= x >> 33
    x = (x * _C2) & _M64
    return x ^ (x >> 33)


def seed_state(seed: int) -> int:
    return fmix64((check_seed(seed) + _GOLDEN) & _M64)


def hash64(value: str, seed: int) -> int:
    """rl-hash64-v1: the reference definition that ``hash64_array`` vectorises.

    h = fmix64(seed + 0x9E3779B97F4A7C15); for every 8-byte little-endian word w of the UTF-8
    bytes (the last one zero-padded): h = fmix64(h ^ w); finally h = fmix64(h ^ byte length).
    """
    data = value.encode("utf-8")
    h = seed_state(seed)
    for i in range(0, len(data), 8):
        h = fmix64(h ^ int.from_bytes(data[i:i + 8].ljust(8, b"\0"), "little"))
    return fmix64(h ^ len(data))


def _fmix_array(x: np.ndarray) -> np.ndarray:
    x ^= x >> np.uint64(33)
    x *= np.uint64(_C1)
    x ^= x >> np.uint64(33)
    x *= np.uint64(_C2)
    x ^= x >> np.uint64(33)
    return x


def utf8_layout(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """(UTF-8 bytes, offsets) of a sequence of strings; zero-copy for an Arrow string array."""
    if hasattr(values, "combine_chunks"):
        values = values.combine_chunks()
    kind = str(getattr(values, "type", ""))
    if kind in ("string", "large_string"):
        if values.null_count:
            raise InvalidInput(f"{values.null_count} values are missing; every key must be a string.")
        bufs = values.buffers()
        width = np.int64 if kind == "large_string" else np.int32
        offsets = np.frombuffer(bufs[1], dtype=width)[values.offset:values.offset + len(values) + 1]
        data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
        return data, offsets.astype(np.int64)
    if not all(isinstance(v, str) for v in values):
        raise InvalidInput("Keys to hash must be strings.", hint="Convert the values with str() first.")
    encoded = [v.encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), np.uint8), offsets


def hash64_array(values: Any, seed: int) -> np.ndarray:
    """``hash64(v, seed)`` for every string in ``values`` (list or Arrow array), as uint64."""
    data, offsets = utf8_layout(values)
    lengths = np.diff(offsets)
    out = np.empty(len(lengths), np.uint64)
    start = np.uint64(seed_state(seed))
    distinct = np.unique(lengths)
    for size in distinct:
        rows = np.flatnonzero(lengths == size) if len(distinct) > 1 else np.arange(len(lengths))
        for lo in range(0, len(rows), _CHUNK):
            idx = rows[lo:lo + _CHUNK]
            out[idx] = _hash_rows(_byte_rows(data, offsets[idx], int(size)), int(size), start)
    return out


def _byte_rows(data: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """An (n, 8 * words) zero-padded byte matrix of n strings of ``size`` bytes each."""
    mat = np.zeros((len(starts), -(-size // 8) * 8), np.uint8)
    if size and len(starts):
        first = int(starts[0])
        if int(starts[-1]) - first == (len(starts) - 1) * size and (np.diff(starts) == size).all():
            mat[:, :size] = data[first:first + len(starts) * size].reshape(-1, size)
        else:
            mat[:, :size] = data[starts[:, None] + np.arange(size)[None, :]]
    return mat


def _hash_rows(mat: np.ndarray, size: int, start: np.uint64) -> np.ndarray:
    h = np.full(len(mat), start, np.uint64)
    words = mat.view("<u8")
    for j in range(words.shape[1]):
        h ^= words[:, j]
        _fmix_array(h)
    h ^= np.uint64(size)
    return _fmix_array(h)


# -- ratios, seeds and counts --------------------------------------------------------------------
def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise InvalidInput(f"Seed {seed!r} is not allowed; use a whole number from 0 to 2**63-1.")
    return int(seed)


def check_ratios(ratios: Sequence[float], names: Sequence[str] | None = None
                 ) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Integer weights (exact ratios over their sum) and partition names, or InvalidInput."""
    if len(ratios) > MAX_PARTITIONS:
        raise InvalidInput(f"{len(ratios)} ratios: a split has at most {MAX_PARTITIONS} partitions.")
    try:
        fracs = [Fraction(r).limit_denominator(10**6) for r in ratios]
    except (TypeError, ValueError, OverflowError):   # OverflowError: infinity
        raise InvalidInput(f"Ratios {list(ratios)!r} must be numbers, not infinite or NaN, e.g. 0.8,0.1,0.1.") from None
    if len(fracs) < 2 or any(f <= 0 for f in fracs):
        raise InvalidInput(f"Ratios {list(ratios)!r}: give at least two, each above 0.")
    if abs(sum(fracs) - 1) > Fraction(1, 10**6):
        raise InvalidInput(f"Ratios {list(ratios)!r} sum to {float(sum(fracs)):g}, not 1.",
                           hint="Give ratios that add up to 1, e.g. 0.8,0.1,0.1.")
    names = tuple(names) if names else DEFAULT_NAMES[:len(fracs)] if len(fracs) <= 3 else \
        tuple(f"part{i}" for i in range(len(fracs)))
    if len(names) != len(fracs) or len(set(names)) != len(names) or not all(
            isinstance(n, str) and n for n in names):
        raise InvalidInput(f"Partition names {list(names)!r} must be {len(fracs)} distinct, non-empty names.")
    total = sum(fracs)
    shares = [f / total for f in fracs]
    denom = math.lcm(*(s.denominator for s in shares))   # exact: numpy's lcm wraps around past 2**63
    if denom > 2**40:   # the weights must stay exact in 64-bit arithmetic, times the record count
        raise InvalidInput(f"Ratios {_few(ratios)} have no small common denominator.",
                           hint="Round them to a few decimals that add up to 1, e.g. 0.8,0.1,0.1.")
    return tuple(int(s * denom) for s in shares), names


def _few(ratios: Sequence[float]) -> str:
    shown = ", ".join(repr(r) for r in list(ratios)[:5])
    return f"[{shown}{', …' if len(ratios) > 5 else ''}]"


def largest_remainder(n: int, weights: Sequence[int]) -> np.ndarray:
    """Counts summing to ``n``, each the floor or the ceiling of n * w / sum(w)."""
    d = sum(weights)
    exact = [n * w for w in weights]
    counts = [e // d for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] % d), i))
    for i in order[:n - sum(counts)]:
        counts[i] += 1
    return np.array(counts, np.int64)


# -- strategies ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Assignment:
    """A partition index per record, plus what the user should know about it."""

    part: np.ndarray
    warnings: tuple[str, ...] = ()
    details: dict = field(default_factory=dict)


def assign(strategy: str, ids: Any, weights: Sequence[int], seed: int, *,
           column: np.ndarray | None = None, group: np.ndarray | None = None,
           allow_empty: bool = False) -> Assignment:
    """Dispatch to one strategy. ``column`` is the --by column, ``group`` the grouping column.
    ``allow_empty`` (for records added to an existing split) lets a partition stay empty."""
    if strategy not in STRATEGIES:
        raise InvalidInput(f"Unknown split strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    if strategy in NEEDS_COLUMN and column is None:
        raise InvalidInput(f"The {strategy} strategy needs a column: pass --by COLUMN.")
    if strategy == "stratified-group" and group is None:
        raise InvalidInput("The stratified-group strategy needs a group column: pass --group COLUMN.")
    keys = hash64_array(ids, seed)
    if strategy == "random":
        result = _random(keys, ids, weights)
    elif strategy == "stratified":
        result = _stratified(keys, ids, column, weights)
    elif strategy == "group":
        result = _grouped(column, weights, seed, None, allow_empty)
    elif strategy == "stratified-group":
        result = _grouped(group, weights, seed, column, allow_empty)
    elif strategy == "temporal":
        result = _temporal(column, weights, allow_empty)
    else:
        result = _hashed(keys if column is None else hash64_array(key_texts(column), seed), weights)
    if not allow_empty:
        _check_nonempty(result.part, weights, strategy)
    return result


def _cut(keys: np.ndarray, counts: np.ndarray, ids: Any, rows: np.ndarray) -> np.ndarray:
    """Partition per record: the ``counts[0]`` smallest hashes go to 0, the next to 1, and so on.

    Linear time (``np.partition``); hash ties, about one in 2**64, are broken by record id."""
    n = len(keys)
    bounds = np.cumsum(counts)[:-1]
    inner, mult = np.unique(bounds[(bounds > 0) & (bounds < n)], return_counts=True)
    kth = np.partition(keys, inner)[inner] if len(inner) else np.zeros(0, np.uint64)
    if any(np.count_nonzero(keys == k) > 1 for k in kth):
        return _cut_sorted(keys, counts, ids, rows)
    above = np.zeros(n, np.int8)
    for k in kth:
        above += keys >= k
    steps = (np.concatenate([[0], np.cumsum(mult)]) + int((bounds <= 0).sum())).astype(np.int8)
    return steps[above]


def _cut_sorted(keys: np.ndarray, counts: np.ndarray, ids: Any, rows: np.ndarray) -> np.ndarray:
    names = [str(ids[int(r)]) for r in rows]
    order = sorted(range(len(keys)), key=lambda k: (int(keys[k]), names[k]))
    part = np.empty(len(keys), np.int8)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    for i in range(len(counts)):
        part[order[bounds[i]:bounds[i + 1]]] = i
    return part


def _random(keys: np.ndarray, ids: Any, weights: Sequence[int]) -> Assignment:
    counts = largest_remainder(len(keys), weights)
    return Assignment(_cut(keys, counts, ids, np.arange(len(keys))))


def _hashed(keys: np.ndarray, weights: Sequence[int]) -> Assignment:
    d = sum(weights)
    bounds = np.array([(sum(weights[:i + 1]) << 53) // d for i in range(len(weights) - 1)], np.uint64)
    return Assignment(np.searchsorted(bounds, keys >> np.uint64(11), side="right").astype(np.int8))


def _stratified(keys: np.ndarray, ids: Any, labels: np.ndarray, weights: Sequence[int]) -> Assignment:
    classes, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    table = controlled_round(sizes, weights)
    small_int = np.int16 if len(classes) < 2**15 else np.int64
    by_class = np.argsort(inverse.astype(small_int), kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    part = np.empty(len(keys), np.int8)
    for c in range(len(classes)):
        rows = by_class[starts[c]:starts[c + 1]]
        part[rows] = _cut(keys[rows], table[c], ids, rows)
    need = -(-sum(weights) // min(weights))
    small = [str(plain(c)) for c, s in zip(classes, sizes) if s < need]
    warnings = (f"{len(small)} classes have fewer than {need} records and may be missing from a "
                f"partition: {', '.join(small[:10])}{' …' if len(small) > 10 else ''}",) if small else ()
    return Assignment(part, warnings, {"classes": len(classes), "small_classes": small[:100]})


def controlled_round(sizes: Sequence[int], weights: Sequence[int]) -> np.ndarray:
    """A (classes x partitions) count table: rows sum to the class sizes exactly, every cell and
    every column total is the floor or ceiling of its exact share (a bipartite max flow)."""
    sizes, w = np.asarray(sizes, np.int64), np.asarray(weights, np.int64)
    d = int(w.sum())
    exact = sizes[:, None] * w[None, :]
    floor, rest = exact // d, exact % d
    need = sizes - floor.sum(1)
    extra = np.zeros(floor.shape, bool)
    col = rest.sum(0)
    for cap in (col // d, -(-col // d)):
        for c in np.flatnonzero(need):
            while need[c] and _augment(extra, rest, cap, int(c)):
                need[c] -= 1
    if need.any():  # unreachable by the integrality of bipartite flows; kept as a guard
        raise AssertionError("controlled rounding found no solution")
    return floor + extra


def _augment(extra: np.ndarray, rest: np.ndarray, cap: np.ndarray, c: int) -> bool:
    """Give row ``c`` one more unit, moving other rows' units along a path of columns if needed."""
    load = extra.sum(0)
    open_cols = np.flatnonzero((rest[c] > 0) & ~extra[c])
    if not len(open_cols):
        return False
    free = [j for j in open_cols if load[j] < cap[j]]
    if free:
        extra[c, max(free, key=lambda j: (rest[c, j], -j))] = True
        return True
    parent: dict[int, tuple[int, int]] = {int(j): (-1, c) for j in open_cols}
    queue = [int(j) for j in open_cols]
    while queue:
        i = queue.pop(0)
        for j in range(extra.shape[1]):
            if j in parent:
                continue
            movers = np.flatnonzero(extra[:, i] & ~extra[:, j] & (rest[:, j] > 0))
            if not len(movers):
                continue
            parent[j] = (i, int(movers[0]))
            if load[j] < cap[j]:
                while j != -1:
                    i, row = parent[j]
                    extra[row, j] = True
                    if i != -1:
                        extra[row, i] = False
                    j = i
                return True
            queue.append(j)
    return False


def _grouped(groups: np.ndarray, weights: Sequence[int], seed: int,
             labels: np.ndarray | None, allow_empty: bool) -> Assignment:
    keys, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if len(keys) < len(weights) and not allow_empty:
        raise InvalidInput(f"Only {len(keys)} groups for {len(weights)} partitions; a group never "
                           "spans two partitions, so each partition needs at least one group.")
    ghash = hash64_array(key_texts(keys, what='group'), seed)
    order = np.lexsort((ghash, -sizes))
    d, n = sum(weights), int(sizes.sum())
    target = np.array([n * w for w in weights], np.int64)  # in units of 1/d records
    load = np.zeros(len(weights), np.int64)
    to_part = np.empty(len(keys), np.int8)
    if labels is None:
        for g in order:
            i = int(np.argmax(target - load * d))
            to_part[g] = i
            load[i] += sizes[g]
    else:
        to_part = _stratified_groups(order, inverse, labels, sizes, weights)
    part = to_part[inverse]
    counts = np.bincount(part, minlength=len(weights))
    return Assignment(part, (), {"groups": len(keys), "largest_group": int(sizes.max()),
                                 "achieved": [round(int(c) / n, 6) for c in counts]})


def _stratified_groups(order: np.ndarray, inverse: np.ndarray, labels: np.ndarray,
                       sizes: np.ndarray, weights: Sequence[int]) -> np.ndarray:
    """Each group goes where it least disturbs the class proportions (squared error, per class
    weighted by 1/class size); whole groups only."""
    classes, cls = np.unique(labels, return_inverse=True)
    pairs, pair_counts = np.unique(inverse.astype(np.int64) * len(classes) + cls, return_counts=True)
    g_of, c_of = pairs // len(classes), pairs % len(classes)
    starts = np.searchsorted(g_of, np.arange(len(sizes) + 1))
    class_n = np.bincount(cls, minlength=len(classes)).astype(float)
    share = np.asarray(weights, float) / sum(weights)
    target = class_n[:, None] * share[None, :]
    have = np.zeros((len(classes), len(weights)))
    size_target, size_have = share * len(labels), np.zeros(len(weights))
    to_part = np.empty(len(sizes), np.int8)
    for g in order:
        cs, gc = c_of[starts[g]:starts[g + 1]], pair_counts[starts[g]:starts[g + 1]].astype(float)
        dev = have[cs] - target[cs]
        cost = ((2 * dev + gc[:, None]) * gc[:, None] / class_n[cs, None]).sum(0)
        cost += (2 * (size_have - size_target) + sizes[g]) * sizes[g] / len(labels)
        i = int(np.argmin(cost))
        to_part[g] = i
        have[cs, i] += gc
        size_have[i] += sizes[g]
    return to_part


def _temporal(times: np.ndarray, weights: Sequence[int], allow_empty: bool) -> Assignment:
    order = np.argsort(times, kind="stable")
    st = times[order]
    cuts = np.cumsum(largest_remainder(len(st), weights))[:-1]
    moved = []
    for k, c in enumerate(cuts):
        if 0 < c < len(st) and st[c] == st[c - 1]:
            cuts[k] = np.searchsorted(st, st[c - 1], side="right")
            moved.append(k)
    bounds = np.concatenate([[0], cuts, [len(st)]])
    if np.any(np.diff(bounds) <= 0) and not allow_empty:
        raise InvalidInput("Too many records share a timestamp at a partition boundary: a later "
                           "partition would be empty.", hint="Use coarser ratios or more data.")
    part = np.empty(len(st), np.int8)
    for i in range(len(weights)):
        part[order[bounds[i]:bounds[i + 1]]] = i
    starts = [plain(st[b]) for b in bounds[1:-1]]
    return Assignment(part, (), {"boundaries": starts, "ties_moved_at": moved})


def _check_nonempty(part: np.ndarray, weights: Sequence[int], strategy: str) -> None:
    counts = np.bincount(part, minlength=len(weights))
    if (counts == 0).any():
        raise InvalidInput(f"The dataset is too small for these ratios: the {strategy} strategy left "
                           f"partition {int(np.argmin(counts))} empty ({len(part)} records).",
                           hint="Use more data or larger ratios for the small partitions.")


def key_texts(values: Any, *, what: str = "key") -> list[str]:
    """Every value of a key column (group, hash) in its canonical text form, ``rl-key-v1``:
    a string as it is; an integer, or a float with an integral value, in decimal without a
    fraction (``7`` whether the column holds 7 or 7.0); any other float as its shortest
    round-trip repr (``0.5``); a boolean as ``true`` / ``false``; a time in ISO 8601. So a key
    keeps its hash when one new row turns an integer column into a float column. Lists, objects
    and non-finite numbers are refused."""
    return [key_text(v, what=what) for v in values]


def key_text(value: Any, *, what: str = "key") -> str:
    """One value in the ``rl-key-v1`` form (see ``key_texts``)."""
    value = plain(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"A {what} value is {value}; a key must be a finite number, a string or a boolean.")
        return str(int(value)) if value.is_integer() else repr(value)
    raise InvalidInput(f"A {what} value is {type(value).__name__} ({str(value)[:40]}); a key must be a "
                       "string, a number, a boolean or a time.",
                       hint="Split by a column of plain values, or derive one with a transform.")



def plain(value: Any) -> Any:
    """A NumPy scalar as its Python value, a time as ISO-8601 text; anything else unchanged."""
    if isinstance(value, np.datetime64):
        return str(value)
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    return value.isoformat() if hasattr(value, "isoformat") else value
