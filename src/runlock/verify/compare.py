"""Comparing two runs' outputs at the strictest tier that holds, and explaining the difference.

Outputs are every metric series (``metric:KEY``), every summary value (``summary:KEY``) and
every artifact (``artifact:NAME``). Each gets its own tier; the comparison's tier is:

    bitwise      every metric at every step, every summary value and every artifact's sha256
                 identical (NaN equals NaN)
    tolerance    every metric curve (same steps) and summary value within ``rtol``/``atol``
                 (``|a - b| <= atol + rtol * |b|``); artifacts may differ in bytes, but not in
                 tensors beyond the same tolerances
    statistical  every final metric in the seed-to-seed spread (``runlock variance``) of either
                 run within ``k`` standard deviations: ``|a - b| <= atol + k * std``
    different    none of the above
    nothing      neither run has a metric, a summary value or an artifact: nothing to compare

Series are aligned by step, never by position. A run resumed from a checkpoint
(``runlock.resume``, or the HF callback) is compared as its whole training: the runs it
continues up to the step it resumed from, then its own points (``tracking.resume.chain``).

Each artifact that differs says how (``verify.filediff``): the files of a folder whose bytes
differ, the first differing line of a text file, the tensors of a weights file with their
largest absolute and relative difference.

``first_divergence`` is the earliest step (then metric name) where the curves part bitwise; the
``diagnosis`` lists the lock fields that differ, most telling first: config keys, data, split,
code, seeds, knobs, package versions, the rest of the environment, the command. When nothing
recorded differs but the results do, the diagnosis says so: an unrecorded source of randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from runlock import artifacts
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.diff import lock_changes, metric_series
from runlock.tracking.resume import chain
from runlock.tracking.system import SYSTEM_PREFIX
from runlock.verify import records as vrecords
from runlock.verify.filediff import artifact_diff
from runlock.verify.records import NOTHING, Spread

RTOL, ATOL, K = 1e-5, 1e-8, 3.0
IGNORED = ("code.git.branch", "code.git.remote")  # names for people, not part of what runs
KIND_ORDER = ("config", "data", "split", "model", "input", "code", "seed", "knob", "package",
              "environment", "entrypoint", "other", "unrecorded")
UNRECORDED = "nothing recorded differs: an unrecorded source of randomness; run `runlock probe`"


@dataclass(frozen=True)
class Output:
    name: str
    tier: str
    a: object
    b: object
    detail: dict | None = None     # for an artifact: the files that differ, and how


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    tier: str
    first_divergence: dict | None
    diagnosis: list[dict]
    outputs: list[Output] = field(default_factory=list)
    tolerances: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "tier": self.tier, "first_divergence": self.first_divergence,
                "diagnosis": self.diagnosis, "outputs": [o.__dict__ for o in self.outputs],
                "tolerances": self.tolerances, "notes": self.notes}


@dataclass(frozen=True)
class _Results:
    """One side of a comparison: a run, or a resumed run stitched onto the runs it continues."""

    series: dict[str, np.ndarray]
    summary: dict
    artifacts: dict[str, artifacts.Artifact]
    note: str | None


def check_tolerances(**given: float) -> None:
    """Each tolerance must be a finite number of at least 0: ``inf`` or ``nan`` would make every
    pair of values agree (or none), which no comparison may decide silently."""
    for name, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise InvalidInput(f"--{name} {value!r} is not a tolerance; use a finite number of at least 0.",
                               hint=f"The default is {dict(rtol=RTOL, atol=ATOL, k=K)[name]}.")


def compare(store: Store, run_a: str, run_b: str, *, rtol: float = RTOL, atol: float = ATOL,
            k: float = K, spread: Spread | None = None, stitch: bool = True) -> Comparison:
    """Compare the outputs of two runs; ``spread`` defaults to the newest one measured for
    either run or for a run either of them reproduces. ``stitch``: a resumed run counts with
    the runs it continues."""
    check_tolerances(rtol=rtol, atol=atol, k=k)
    a, b = records.get(store, run_a), records.get(store, run_b)
    ra, rb = _results(store, a.id, stitch), _results(store, b.id, stitch)
    if spread is None:
        spread = vrecords.latest_spread(store, [a.id, b.id, *vrecords.reproduced(store, a.id),
                                                *vrecords.reproduced(store, b.id)])
    stats = spread.stats if spread else {}
    close = _Close(rtol, atol, k, stats)
    ma, mb = ra.series, rb.series
    outputs = [Output(f"metric:{key}", close.series(key, ma.get(key, _EMPTY), mb.get(key, _EMPTY)),
                      _last(ma.get(key)), _last(mb.get(key))) for key in sorted(set(ma) | set(mb))]
    outputs += [Output(f"summary:{key}", close.value(key, ra.summary.get(key), rb.summary.get(key)),
                       ra.summary.get(key), rb.summary.get(key))
                for key in sorted(set(ra.summary) | set(rb.summary))]
    outputs += [_artifact_output(store, n, ra.artifacts.get(n), rb.artifacts.get(n), rtol, atol)
                for n in sorted(set(ra.artifacts) | set(rb.artifacts))]
    finals_ok = bool(stats) and all(close.within_spread(key, _final(ra.summary, ma, key), _final(rb.summary, mb, key))
                                    for key in stats)
    lock_a = locks.load(store, a.recipe_id) if a.recipe_id else {}
    lock_b = locks.load(store, b.recipe_id) if b.recipe_id else {}
    tier = overall(outputs, finals_ok)
    first = first_divergence(ma, mb, outputs)
    diagnosis = diagnose(lock_a, lock_b)
    if not diagnosis and tier not in ("bitwise", NOTHING):
        diagnosis = [unrecorded(first)]
    notes = [n for n in (ra.note, rb.note) if n]
    if tier == NOTHING:
        notes.append("Nothing to compare: neither run logged a metric, a summary value or an artifact.")
    return Comparison(a.id, b.id, tier, first, diagnosis, outputs,
                      {"rtol": rtol, "atol": atol, "k": k, "spread": spread.id if spread else None}, notes)


def overall(outputs: list[Output], finals_within_spread: bool) -> str:
    if not outputs:
        return NOTHING
    if all(o.tier == "bitwise" for o in outputs):
        return "bitwise"
    if all(o.tier in ("bitwise", "tolerance") for o in outputs if not o.name.startswith("artifact:")) and \
            not any((o.detail or {}).get("beyond_tolerance") for o in outputs):
        return "tolerance"
    return "statistical" if finals_within_spread else "different"


def first_divergence(ma: dict, mb: dict, outputs: list[Output]) -> dict | None:
    """The earliest step, then metric, where the two runs' curves differ bitwise."""
    found = []
    for key in sorted(set(ma) | set(mb)):
        hit = _first_difference(ma.get(key, _EMPTY), mb.get(key, _EMPTY))
        if hit is not None:
            found.append({"metric": key, "step": hit[0], "a": hit[1], "b": hit[2]})
    if found:
        return min(found, key=lambda d: (d["step"], d["metric"]))
    other = next((o for o in outputs if o.tier != "bitwise"), None)
    if other is None:
        return None
    kind, name = other.name.split(":", 1)
    out = {kind: name, "a": other.a, "b": other.b}
    files = (other.detail or {}).get("files")
    if files:
        out["file"] = files[0]["path"]
    return out


def unrecorded(first: dict | None) -> dict:
    """The diagnosis when the two locks are identical and the results are not."""
    where = ""
    if first and "metric" in first:
        where = f"; the runs part at step {first['step']} ({first['metric']}: {first['a']} vs {first['b']})"
    elif first:
        kind = next(k for k in first if k not in ("a", "b", "file"))
        where = f"; the first output that differs is {kind}:{first[kind]}" + (
            f" ({first['file']})" if first.get("file") else "")
    return {"field": None, "a": None, "b": None, "kind": "unrecorded", "message": UNRECORDED + where}


def _first_difference(xs: np.ndarray, ys: np.ndarray) -> tuple[int, float | None, float | None] | None:
    """(step, a, b) of the first step where two series differ: a value, or a step only one has.
    Series are aligned by step; several points at one step (ranks) are compared in order."""
    if len(xs) == len(ys) and np.array_equal(xs[:, 0], ys[:, 0]):
        va, vb = xs[:, 1], ys[:, 1]
        differ = np.flatnonzero(~((va == vb) | (np.isnan(va) & np.isnan(vb))))
        if not differ.size:
            return None
        i = int(differ[0])
        return int(xs[i, 0]), float(va[i]), float(vb[i])
    da, db = _by_step(xs), _by_step(ys)
    for step in sorted(set(da) | set(db)):
        pa, pb = da.get(step, []), db.get(step, [])
        for i in range(max(len(pa), len(pb))):
            x = pa[i] if i < len(pa) else None
            y = pb[i] if i < len(pb) else None
            if x is None or y is None or not _equal(x, y):
                return step, x, y
    return None


def _by_step(series: np.ndarray) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for step, value in series:
        out.setdefault(int(step), []).append(float(value))
    return out


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


# -- one side: a run, or a resumed run with the runs it continues ------------------------------------
def _results(store: Store, run_id: str, stitch: bool) -> _Results:
    segments = chain(store, run_id) if stitch else [(run_id, None)]
    series: dict[str, list[tuple[int, float]]] = {}
    summary: dict = {}
    arts: dict[str, artifacts.Artifact] = {}
    for i, (rid, upto) in enumerate(segments):
        start = segments[i - 1][1] if i else None      # this run logs from the step after the last resume
        for key, points in metric_series(store, rid).items():
            if key.startswith(SYSTEM_PREFIX):   # the machine's load, not the result
                continue
            kept = [p for p in points if (upto is None or p[0] <= upto) and (start is None or p[0] > start)]
            series.setdefault(key, []).extend(kept)
        summary.update(records.get(store, rid).summary)
        for art in artifacts.for_run(store, rid):
            step = (art.meta or {}).get("step")
            if upto is None or not isinstance(step, int) or step <= upto:
                arts[art.name] = art
    note = None
    if len(segments) > 1:
        note = f"run:{run_id} continues " + ", ".join(f"run:{rid} (up to step {upto})" for rid, upto in segments[:-1]) \
               + "; its series are stitched from them."
    return _Results(_arrays(series), summary, arts, note)


def _artifact_output(store: Store, name: str, a: artifacts.Artifact | None, b: artifacts.Artifact | None,
                     rtol: float, atol: float) -> Output:
    if a is None or b is None:
        return Output(f"artifact:{name}", "different", a and a.digest, b and b.digest,
                      {"missing": "b" if b is None else "a"})
    found = artifact_diff(store, a, b, rtol=rtol, atol=atol)
    detail = None if found.tier == "bitwise" else {"files": found.files, "beyond_tolerance": found.beyond_tolerance}
    return Output(f"artifact:{name}", found.tier, a.digest, b.digest, detail)


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
    """Each metric's points as an (n, 2) float array of (step, value) rows in step order (a
    stable sort keeps ranks in order); steps stay exact below 2**53."""
    out = {}
    for k, v in series.items():
        arr = np.array(v, dtype=np.float64).reshape(-1, 2)
        out[k] = arr[np.argsort(arr[:, 0], kind="stable")]
    return out


def _last(series: np.ndarray | None) -> float | None:
    return float(series[-1, 1]) if series is not None and len(series) else None


def _final(summary: dict, series: dict, key: str) -> object:
    return summary[key] if key in summary else _last(series.get(key))
