"""The probe's verdict: two traces compared, and what differs first named.

A difference is ranked by what it says about the cause. Within one step, first come the
**sources**: generators the program's own code created without a seed, then global streams whose
state already differed when the probe first saw them (seeded from the clock, the pid or OS
entropy), then generators libraries created without a seed; then metrics, then
tensors; last, streams that were equal before the step and differ after it, which are usually a
*consequence* (a different batch shape draws a different amount from torch's generator). So a
planted ``np.random.default_rng()`` is blamed on NumPy, not on the torch stream it disturbs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from runlock.canonical import normalize
from runlock.probe.trace import show

_USER_SOURCE, _SOURCE, _LIBRARY_SOURCE, _METRIC, _PARAM, _CONSEQUENCE, _STEPS = range(7)
_KIND_RANK = {"metric": _METRIC, "parameter": _PARAM, "steps": _STEPS}
ENTROPY = "seeded from something that changes between runs (time, process id, OS entropy)"


@dataclass(frozen=True)
class Divergence:
    step: int
    kind: str  # "rng" | "metric" | "parameter" | "steps"
    name: str
    detail: str


@dataclass(frozen=True)
class WorkerRngFinding:
    """A dataset-held RNG whose state was identical at the start of two worker lives."""

    path: str
    workers: tuple[int, ...]
    detail: str


@dataclass(frozen=True)
class ProbeReport:
    steps: int
    reproducible: bool
    first_divergence: Divergence | None
    divergences: tuple[Divergence, ...]
    rng_consumed: tuple[tuple[str, ...], ...]
    nondeterministic_kernels: tuple[str, ...]
    duplicated_worker_rngs: tuple[WorkerRngFinding, ...]
    hashseed: dict[str, Any]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return normalize(asdict(self))


def build_report(a: dict[str, Any], b: dict[str, Any], c: dict[str, Any] | None,
                 workers: Sequence[WorkerRngFinding], hashseed: dict[str, Any],
                 notes: tuple[str, ...]) -> ProbeReport:
    """Compare trace ``a`` with ``b`` (same hash seed) and, if given, with ``c`` (another one)."""
    divergences = diff(a, b)
    if c is not None:
        by_hash = diff(a, c, unseeded=False) if not divergences else []
        hashseed = {**hashseed, "dependent": None if divergences else bool(by_hash),
                    "first_divergence": asdict(by_hash[0]) if by_hash else None}
    kernels = sorted(set(a["kernels"]) | set(b["kernels"]))
    named = {d.name for d in divergences if d.kind == "rng"}
    tracked = set(a.get("created") or {}) | set(b.get("created") or {})
    idle = sorted(set(_changed(a["start"] or {}, b["start"] or {})) - _used(a, b) - named - tracked)
    if idle:
        notes += (f"RNG streams {idle} are not seeded reproducibly, but no probed step drew from them.",)
    quiet = sorted(n for n, (_step, _drawn, user) in _unseeded(a, b).items() if user and n not in named)
    if quiet:
        notes += (f"Created without a seed, but not blamed (nothing drew from them, or the probed results "
                  f"agree): {', '.join(quiet)}.",)
    if divergences and divergences[0].kind != "rng":
        notes += ("No random stream the probe follows explains the first difference: look for one it "
                  "cannot see (a generator made before `import runlock`, in C code or in another "
                  "process), data read in a changing order, or a nondeterministic kernel.",)
    if hashseed.get("dependent"):
        notes += ("The result depends on the hash seed: run with `runlock run --hashseed N -- …`, "
                  "or remove the dependence (e.g. iterate over sorted(a_set)).",)
    clean = not (divergences or workers or kernels or hashseed.get("dependent"))
    return ProbeReport(steps=len(a["steps"]), reproducible=clean,
                       first_divergence=divergences[0] if divergences else None,
                       divergences=tuple(divergences),
                       rng_consumed=tuple(tuple(s["consumed"]) for s in a["steps"]),
                       nondeterministic_kernels=tuple(kernels), duplicated_worker_rngs=tuple(workers),
                       hashseed=hashseed, notes=tuple(notes))


def diff(a: dict[str, Any], b: dict[str, Any], *, unseeded: bool = True) -> list[Divergence]:
    """Differences between two traces, causes before consequences (see the module docstring).
    A global stream counts only if some probed step drew from it; each stream is named once.
    ``unseeded=False`` leaves out generators created without a seed (comparing runs with two
    hash seeds: those differ anyway, and the runs with one hash seed already agreed)."""
    used = _used(a, b)
    found: list[tuple[int, int, str, Divergence]] = []

    def add(step: int, rank: int, kind: str, name: str, detail: str) -> None:
        found.append((step, rank, name, Divergence(step, kind, name, detail)))

    named: set[str] = set()
    tracked = set(a.get("created") or {}) | set(b.get("created") or {})
    for name in _changed(a["start"] or {}, b["start"] or {}):
        if name in used and name not in tracked:
            named.add(name)
            add(0, _SOURCE, "rng", name, f"differs before step 0: {ENTROPY}")
    results_differ = _results_differ(a, b, used - tracked)
    for name, (step, drawn, user) in (_unseeded(a, b) if unseeded else {}).items():
        if results_differ and drawn and name not in named:
            named.add(name)
            add(step, _USER_SOURCE if user else _LIBRARY_SOURCE, "rng", name, "created without a seed, so it starts from OS entropy and "
                "differs between runs; give it one, e.g. default_rng(runlock.derive_seed(seed, 'noise'))")
    for sa, sb in zip(a["steps"], b["steps"]):
        step = sa["step"]
        for n in _changed(sa["rng"], sb["rng"]):
            if n in used and n not in named and n not in tracked:
                named.add(n)
                add(step, _CONSEQUENCE, "rng", n, "equal before this step, different after it: the step "
                    "drew a different amount from it (different shapes or control flow, usually caused by "
                    "a difference above) or reseeded it from something that changes")
        for n in _changed(sa["metrics"], sb["metrics"]):
            add(step, _METRIC, "metric", n, f"{show(sa['metrics'].get(n))} vs {show(sb['metrics'].get(n))}")
        for n in _changed(sa["params"], sb["params"]):
            add(step, _PARAM, "parameter", n, "tensor differs")
    if len(a["steps"]) != len(b["steps"]):
        add(min(len(a["steps"]), len(b["steps"])), _STEPS, "steps", "count",
            f"{len(a['steps'])} vs {len(b['steps'])} steps recorded")
    return [d for *_, d in sorted(found, key=lambda t: t[:3])]


def _results_differ(a: dict[str, Any], b: dict[str, Any], streams: set[str]) -> bool:
    """Whether metrics, tensors, the step count or one of ``streams`` differ."""
    if len(a["steps"]) != len(b["steps"]):
        return True
    return any(sa["metrics"] != sb["metrics"] or sa["params"] != sb["params"]
               or bool(set(_changed(sa["rng"], sb["rng"])) & streams) for sa, sb in zip(a["steps"], b["steps"]))


def _unseeded(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[int, bool, bool]]:
    """Generators created without a seed in both runs whose first states differ: name -> (the
    step during which it was made, whether anything drew from it, whether the program's own code
    made it rather than a library)."""
    ca, cb = a.get("created") or {}, b.get("created") or {}
    out = {}
    for name in sorted(set(ca) & set(cb)):
        if ca[name]["state"] != cb[name]["state"]:
            out[name] = (ca[name]["step"], _drawn(a, name) or _drawn(b, name), bool(ca[name].get("user")))
    return out


def _drawn(trace: dict[str, Any], name: str) -> bool:
    first = trace["created"][name]["state"]
    seen = [(trace["start"] or {}).get(name)] + [s["rng"].get(name) for s in trace["steps"]]
    return any(fp is not None and fp != first for fp in seen) or not any(fp is not None for fp in seen)


def _used(*traces: dict[str, Any]) -> set[str]:
    return {name for t in traces for s in t["steps"] for name in s["consumed"]}


def _changed(x: Mapping[str, Any], y: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))


def worker_findings(records: list[dict[str, Any]]) -> list[WorkerRngFinding]:
    seen: dict[tuple[str, str], list[int]] = {}
    for record in records:
        for path, fp in record["rngs"].items():
            seen.setdefault((path, fp), []).append(record["worker"])
    return [WorkerRngFinding(path, tuple(ids), f"dataset.{path} started from the same state in "
                             f"{len(ids)} worker lives (workers {sorted(set(ids))}); seed it per worker, "
                             "e.g. with runlock.torch.loader_kwargs")
            for (path, _fp), ids in sorted(seen.items()) if len(ids) > 1]
