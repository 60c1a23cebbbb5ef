"""Comparing two runs' outputs at the strictest tier that holds, and explaining the difference.

Outputs are every metric series (``metric:KEY``), every summary value (``summary:KEY``) and
every artifact (``artifact:NAME``). Each gets its own tier; the comparison's tier is:

    bitwise      every metric at every step, every summary value and every artifact's sha256
                 identical (NaN equals NaN)
    tolerance    every metric curve (same steps) and summary value within ``rtol``/``atol``
                 (``|a - b| <= atol + rtol * |b|``); artifacts need not be identical
    statistical  every final metric in the seed-to-seed spread (``runlock variance``) of either
                 run within ``k`` standard deviations: ``|a - b| <= atol + k * std``
    different    none of the above

``first_divergence`` is the earliest step (then metric name) where the curves part bitwise; the
``diagnosis`` lists the lock fields that differ, most telling first: config keys, data, split,
code, seeds, knobs, package versions, the rest of the environment, the command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from runlock import artifacts
from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.diff import lock_changes, metric_series
from runlock.tracking.system import SYSTEM_PREFIX
from runlock.verify import records as vrecords
from runlock.verify.records import Spread

RTOL, ATOL, K = 1e-5, 1e-8, 3.0
IGNORED = ("code.git.branch", "code.git.remote")  # names for people, not part of what runs
KIND_ORDER = ("config", "data", "split", "model", "input", "code", "seed", "knob", "package",
              "environment", "entrypoint", "other")


@dataclass(frozen=True)
class Output:
    name: str
    tier: str
    a: object
    b: object


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    tier: str
    first_divergence: dict | None
    diagnosis: list[dict]
    outputs: list[Output] = field(default_factory=list)
    tolerances: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "tier": self.tier, "first_divergence": self.first_divergence,
                "diagnosis": self.diagnosis, "outputs": [o.__dict__ for o in self.outputs],
                "tolerances": self.tolerances}


def compare(store: Store, run_a: str, run_b: str, *, rtol: float = RTOL, atol: float = ATOL,
            k: float = K, spread: Spread | None = None) -> Comparison:
    """Compare the outputs of two runs; ``spread`` defaults to the newest one measured for
    either run or for a run either of them reproduces."""
    a, b = records.get(store, run_a), records.get(store, run_b)
    ma, mb = (_arrays({k: v for k, v in metric_series(store, r.id).items() if not k.startswith(SYSTEM_PREFIX)})
              for r in (a, b))   # system/ metrics: the machine's load, not the result
    if spread is None:
        spread = vrecords.latest_spread(store, [a.id, b.id, *vrecords.reproduced(store, a.id),
                                                *vrecords.reproduced(store, b.id)])
    stats = spread.stats if spread else {}
    close = _Close(rtol, atol, k, stats)
    outputs = [Output(f"metric:{key}", close.series(key, ma.get(key, _EMPTY), mb.get(key, _EMPTY)),
                      _last(ma.get(key)), _last(mb.get(key))) for key in sorted(set(ma) | set(mb))]
    outputs += [Output(f"summary:{key}", close.value(key, a.summary.get(key), b.summary.get(key)),
                       a.summary.get(key), b.summary.get(key)) for key in sorted(set(a.summary) | set(b.summary))]
    da = {x.name: x.digest for x in artifacts.for_run(store, a.id)}
    db = {x.name: x.digest for x in artifacts.for_run(store, b.id)}
    outputs += [Output(f"artifact:{n}", "bitwise" if da.get(n) == db.get(n) else "different", da.get(n), db.get(n))
                for n in sorted(set(da) | set(db))]
    finals_ok = bool(stats) and all(close.within_spread(key, _final(a.summary, ma, key), _final(b.summary, mb, key))
                                    for key in stats)
    lock_a = locks.load(store, a.recipe_id) if a.recipe_id else {}
    lock_b = locks.load(store, b.recipe_id) if b.recipe_id else {}
    return Comparison(a.id, b.id, overall(outputs, finals_ok), first_divergence(ma, mb, outputs),
                      diagnose(lock_a, lock_b), outputs,
                      {"rtol": rtol, "atol": atol, "k": k, "spread": spread.id if spread else None})


def overall(outputs: list[Output], finals_within_spread: bool) -> str:
    if all(o.tier == "bitwise" for o in outputs):
        return "bitwise"
    if all(o.tier in ("bitwise", "tolerance") for o in outputs if not o.name.startswith("artifact:")):
        return "tolerance"
    return "statistical" if finals_within_spread else "different"


def first_divergence(ma: dict, mb: dict, outputs: list[Output]) -> dict | None:
    """The earliest step, then metric, where the two runs' curves differ bitwise."""
    found = []
    for key in sorted(set(ma) | set(mb)):
        xs, ys = ma.get(key, _EMPTY), mb.get(key, _EMPTY)
        i = _first_difference(xs, ys)
        if i is not None:
            x, y = (xs[i] if i < len(xs) else None), (ys[i] if i < len(ys) else None)
            found.append({"metric": key, "step": int(min(p[0] for p in (x, y) if p is not None)),
                          "a": None if x is None else float(x[1]), "b": None if y is None else float(y[1])})
    if found:
        return min(found, key=lambda d: (d["step"], d["metric"]))
    other = next((o for o in outputs if o.tier != "bitwise"), None)
    return None if other is None else {other.name.split(":", 1)[0]: other.name.split(":", 1)[1],
                                       "a": other.a, "b": other.b}


def _first_difference(xs: np.ndarray, ys: np.ndarray) -> int | None:
    """Index of the first point where two series differ in step or value (NaN equals NaN)."""
    n = min(len(xs), len(ys))
    (sa_, va), (sb, vb) = xs[:n].T, ys[:n].T
    differ = np.flatnonzero((sa_ != sb) | ~((va == vb) | (np.isnan(va) & np.isnan(vb))))
    if differ.size:
        return int(differ[0])
    return n if len(xs) != len(ys) else None


def diagnose(lock_a: dict, lock_b: dict) -> list[dict]:
    """The lock fields that differ, each with its kind, most telling kinds first."""
    found = [{"field": c.field, "a": c.a, "b": c.b, "kind": _kind(c.field)}
             for cs in lock_changes(lock_a, lock_b).values() for c in cs if c.field not in IGNORED]
    return sorted(found, key=lambda d: (KIND_ORDER.index(d["kind"]), d["field"]))


def _kind(name: str) -> str:
    head = name.split(".", 1)[0].split("[", 1)[0]
    if head == "inputs":
        ns = name.split(".", 1)[1].split(":", 1)[0] if "." in name else ""
        return {"ds": "data", "snapshot": "data", "split": "split", "model": "model"}.get(ns, "input")
    if name.startswith("environment.packages."):
        return "package"
    return {"config": "config", "code": "code", "seed": "seed", "seeding": "seed", "knobs": "knob",
            "environment": "environment", "entrypoint": "entrypoint"}.get(head, "other")


class _Close:
    """The numeric tests behind the tiers, with one set of tolerances."""

    def __init__(self, rtol: float, atol: float, k: float, stats: dict) -> None:
        self.rtol, self.atol, self.k, self.stats = rtol, atol, k, stats

    def near(self, x: float, y: float) -> bool:
        return _equal(x, y) or (math.isfinite(x) and math.isfinite(y) and abs(x - y) <= self.atol + self.rtol * abs(y))

    def within_spread(self, key: str, x: object, y: object) -> bool:
        s = self.stats.get(key)
        if s is None or not _number(x) or not _number(y):
            return False
        return _equal(x, y) or abs(x - y) <= self.atol + self.k * (s.get("std") or 0.0)

    def series(self, key: str, xs: np.ndarray, ys: np.ndarray) -> str:
        """Tier of one metric curve; a curve is an (n, 2) array of (step, value) rows."""
        if _first_difference(xs, ys) is None:
            return "bitwise"
        if len(xs) and len(xs) == len(ys) and np.array_equal(xs[:, 0], ys[:, 0]) and bool(
                np.all(np.isclose(xs[:, 1], ys[:, 1], rtol=self.rtol, atol=self.atol, equal_nan=True))):
            return "tolerance"
        return "statistical" if len(xs) and len(ys) and self.within_spread(key, _last(xs), _last(ys)) else "different"

    def value(self, key: str, x: object, y: object) -> str:
        if _number(x) and _number(y):
            if _equal(x, y):
                return "bitwise"
            if self.near(x, y):
                return "tolerance"
            return "statistical" if self.within_spread(key, x, y) else "different"
        return "bitwise" if x == y else "different"


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _equal(x: float, y: float) -> bool:
    return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))


_EMPTY = np.empty((0, 2))


def _arrays(series: dict[str, list[tuple[int, float]]]) -> dict[str, np.ndarray]:
    """Each metric's points as an (n, 2) float array of (step, value); steps stay exact below 2**53."""
    return {k: np.array(v, dtype=np.float64).reshape(-1, 2) for k, v in series.items()}


def _last(series: np.ndarray | None) -> float | None:
    return float(series[-1, 1]) if series is not None and len(series) else None


def _final(summary: dict, series: dict, key: str) -> object:
    return summary[key] if key in summary else _last(series.get(key))

