"""The nondeterminism probe: run the first steps twice from identical state and say what differs.

Two ways in:

* ``probe(step_fn, steps=3, setup_fn=…, state_fn=…)`` runs the steps twice in this process.
* ``probe_command(argv, steps=3)`` (``runlock probe -- python train.py …``) runs the program three
  times: twice with the same ``PYTHONHASHSEED`` (any difference is nondeterminism) and once with
  another (a difference only there is a dependence on the hash seed, e.g. set ordering). The
  program marks its steps with ``record_step(step, metrics=…, params=model)``, which does nothing
  unless ``RUNLOCK_PROBE`` is set, and stops it after ``RUNLOCK_PROBE_STEPS`` steps.

Each step records a fingerprint (sha256) of every global RNG state (Python, NumPy's legacy RNG,
torch CPU, initialised CUDA devices, named generators), the exact metric values and a fingerprint
of each parameter tensor. The report names the first step, metric or tensor that differs, the RNG
streams each step consumed, the nondeterministic torch kernels that ran (torch's deterministic
mode in ``warn_only``), and dataset-held RNGs that start identical in two DataLoader workers
(``watch_loader`` / ``loaders=``). The second run starts at least ``min_gap_s`` after the first,
so that a seed taken from a seconds clock differs and shows up.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runlock.canonical import normalize
from runlock.errors import InvalidInput, RunlockError
from runlock.seeding import PROBE_ENV, find_rngs, hashseed_environ, seed_everything

STEPS_ENV = "RUNLOCK_PROBE_STEPS"
KERNEL_MARK = " does not have a deterministic implementation"
_active: dict[str, Any] = {}  # the trace of this process while RUNLOCK_PROBE is set


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


# --- in-process probe -------------------------------------------------------------------------

def probe(step_fn: Callable[..., Any], *, steps: int = 3, state_fn: Callable[..., Any] | None = None,
          setup_fn: Callable[[], Any] | None = None, seed: int | None = None,
          generators: Callable[..., Mapping[str, Any]] | None = None, loaders: Iterable[Any] = (),
          min_gap_s: float = 1.1) -> ProbeReport:
    """Run ``steps`` steps twice and compare them.

    Each run: ``seed_everything(seed, warn_only=True)`` if ``seed`` is given, then
    ``ctx = setup_fn()`` (build model, data, optimiser afresh), then per step
    ``step_fn(ctx, step)`` returning a metric, a dict of metrics or None, and ``state_fn(ctx)``
    returning a module or a dict of tensors to fingerprint. Without ``setup_fn`` the calls are
    ``step_fn(step)`` and ``state_fn()``, and step_fn must itself start from a fresh state.
    ``generators(ctx)`` names extra generators (e.g. a DataLoader's) to track. Each loader in
    ``loaders`` is then audited for dataset-held RNGs duplicated across workers (two epochs).
    """
    if steps < 1:
        raise InvalidInput(f"steps must be at least 1, got {steps}.")
    started = time.monotonic()
    first = _trial(step_fn, steps, state_fn, setup_fn, seed, generators)
    time.sleep(max(0.0, min_gap_s - (time.monotonic() - started)))
    second = _trial(step_fn, steps, state_fn, setup_fn, seed, generators)
    workers = [w for loader in loaders for w in audit_loader(loader)]
    note = "The hash seed is the same for both runs in one process; use probe_command to test it."
    return _report(first, second, None, workers, {"tested": False}, (note,))


def _trial(step_fn, steps, state_fn, setup_fn, seed, generators) -> dict[str, Any]:
    with _KernelWatch() as kernels:
        if seed is not None:
            seed_everything(seed, deterministic=True, warn_only=True)
        args = () if setup_fn is None else (setup_fn(),)
        gens = (lambda: generators(*args)) if generators else dict
        trace = _Trace(gens)
        for step in range(steps):
            metrics = step_fn(*args, step)
            trace.add(step, metrics, state_fn(*args) if state_fn else None)
    trace.data["kernels"] = sorted(kernels)
    return trace.data


def audit_loader(loader: Any, *, epochs: int = 2) -> tuple[WorkerRngFinding, ...]:
    """Iterate ``loader`` for ``epochs`` epochs and report dataset-held RNGs that start identical in
    two worker lives (two workers, or one worker in two epochs). Consumes the loader's generator."""
    if not getattr(loader, "num_workers", 0):
        return ()
    with tempfile.TemporaryDirectory(prefix="runlock-probe-") as tmp:
        path = Path(tmp) / "workers.jsonl"
        original = loader.worker_init_fn
        loader.worker_init_fn = _WorkerAudit(original, str(path))
        try:
            for _ in range(epochs):
                for _batch in loader:
                    pass
        finally:
            loader.worker_init_fn = original
        return _worker_findings(_read_lines(path))


# --- hooks for a probed program (RUNLOCK_PROBE set) ---------------------------------------------

def active() -> bool:
    return bool(os.environ.get(PROBE_ENV))


def activate(*, _late: bool = False) -> None:
    """Start recording in a probed program (idempotent). Call it before the first step (after
    seeding) so that the RNG state at the start and the first step's kernels are seen; otherwise
    ``record_step`` starts recording late and step 0's RNG use is reported as unknown."""
    if not active() or _active:
        return
    watch = _KernelWatch()
    watch.__enter__()
    _active.update(path=os.environ[PROBE_ENV], steps=int(os.environ.get(STEPS_ENV, "3")),
                   trace=_Trace(dict, started=not _late), watch=watch)


def record_step(step: int, *, metrics: Any = None, params: Any = None,
                generators: Mapping[str, Any] | None = None) -> None:
    """Record one finished step; exit the program (status 0) after the probed number of steps.
    Does nothing unless the program runs under ``runlock probe``."""
    if not active():
        return
    activate(_late=True)
    trace = _active["trace"]
    trace.generators = lambda: dict(generators or {})
    trace.add(step, metrics, params)
    trace.data["kernels"] = sorted(_active["watch"].kernels)
    _write_json(_active["path"], trace.data)
    if len(trace.data["steps"]) >= _active["steps"]:
        raise SystemExit(0)


def watch_loader(loader: Any) -> Any:
    """Under ``runlock probe``, make each worker of ``loader`` record its dataset-held RNG states;
    otherwise do nothing. Returns the loader."""
    if active() and getattr(loader, "num_workers", 0):
        loader.worker_init_fn = _WorkerAudit(loader.worker_init_fn, os.environ[PROBE_ENV] + ".workers")
    return loader


# --- probing a command --------------------------------------------------------------------------

def probe_command(argv: Sequence[str], steps: int = 3, *, hashseeds: tuple[int, int] = (0, 1),
                  cwd: str | None = None, timeout: float = 600, min_gap_s: float = 1.1) -> ProbeReport:
    """Run ``argv`` twice with ``PYTHONHASHSEED=hashseeds[0]`` and once with ``hashseeds[1]``,
    each stopping after ``steps`` recorded steps, and compare. Raises RunlockError if the program
    fails or records no steps."""
    if not argv:
        raise InvalidInput("Nothing to probe: give a command after `--`.")
    if steps < 1 or hashseeds[0] == hashseeds[1]:
        raise InvalidInput("steps must be at least 1 and the two hash seeds must differ.")
    with tempfile.TemporaryDirectory(prefix="runlock-probe-") as tmp:
        started = time.monotonic()
        a = _run_once(argv, steps, hashseeds[0], Path(tmp) / "a.json", cwd, timeout)
        time.sleep(max(0.0, min_gap_s - (time.monotonic() - started)))
        b = _run_once(argv, steps, hashseeds[0], Path(tmp) / "b.json", cwd, timeout)
        c = _run_once(argv, steps, hashseeds[1], Path(tmp) / "c.json", cwd, timeout)
    workers = _worker_findings(a["workers"])  # within one run: runs a and b are meant to match
    return _report(a, b, c, workers, {"tested": True, "values": list(hashseeds)}, ())


def _run_once(argv, steps, hashseed, path: Path, cwd, timeout) -> dict[str, Any]:
    env = hashseed_environ(hashseed)
    env.update({PROBE_ENV: str(path), STEPS_ENV: str(steps)})
    try:
        done = subprocess.run(list(argv), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RunlockError(f"Could not run {argv[0]!r} under the probe: {err}.") from err
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RunlockError(f"The probed command exited with status {done.returncode}: " + " | ".join(tail))
    if not path.exists():
        raise RunlockError("The probed command recorded no steps.",
                           hint="Call record_step(step, metrics=…, params=model) after each step (from runlock.probe import record_step).")
    data = json.loads(path.read_text())
    data["workers"] = _read_lines(Path(f"{path}.workers"))
    return data


# --- traces and their comparison ----------------------------------------------------------------

class _Trace:
    """Fingerprints of one run: RNG states at the start and after each step, metrics, tensors."""

    def __init__(self, generators: Callable[[], Mapping[str, Any]], *, started: bool = True) -> None:
        self.generators = generators
        start = _rng_fingerprints(generators()) if started else None
        self.data: dict[str, Any] = {"start": start, "steps": [], "kernels": []}
        self._last = start

    def add(self, step: int, metrics: Any, params: Any) -> None:
        rngs = _rng_fingerprints(self.generators())
        if self._last is None:  # recording began after this step had run
            consumed = ["unknown"]
        else:
            consumed = sorted(k for k in set(rngs) & set(self._last) if rngs[k] != self._last[k])
        self.data["steps"].append({"step": step, "rng": rngs, "consumed": consumed,
                                   "metrics": _metrics(metrics), "params": _params(params)})
        self._last = rngs


def _report(a, b, c, workers, hashseed, notes) -> ProbeReport:
    divergences = _diff(a, b)
    if c is not None:
        by_hash = _diff(a, c) if not divergences else []
        hashseed = {**hashseed, "dependent": None if divergences else bool(by_hash),
                    "first_divergence": asdict(by_hash[0]) if by_hash else None}
    kernels = sorted(set(a["kernels"]) | set(b["kernels"]))
    idle = sorted(set(_changed(a["start"] or {}, b["start"] or {})) - _used(a, b))
    if idle:
        notes += (f"RNG streams {idle} are not seeded reproducibly, but no probed step drew from them.",)
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


def _used(*traces: dict[str, Any]) -> set[str]:
    return {name for t in traces for s in t["steps"] for name in s["consumed"]}


def _diff(a: dict[str, Any], b: dict[str, Any]) -> list[Divergence]:
    """Differences between two traces; an RNG stream counts only if some probed step drew from it."""
    used = _used(a, b)
    out = [Divergence(0, "rng", name, "differs before step 0: seeded from something that changes "
                      "between runs (time, process id, OS entropy)")
           for name in _changed(a["start"] or {}, b["start"] or {}) if name in used]
    for sa, sb in zip(a["steps"], b["steps"]):
        step = sa["step"]
        out += [Divergence(step, "rng", n, "state differs after this step")
                for n in _changed(sa["rng"], sb["rng"]) if n in used]
        out += [Divergence(step, "metric", n, f"{_show(sa['metrics'].get(n))} vs {_show(sb['metrics'].get(n))}")
                for n in _changed(sa["metrics"], sb["metrics"])]
        out += [Divergence(step, "parameter", n, "tensor differs") for n in _changed(sa["params"], sb["params"])]
    if len(a["steps"]) != len(b["steps"]):
        out.append(Divergence(min(len(a["steps"]), len(b["steps"])), "steps", "count",
                              f"{len(a['steps'])} vs {len(b['steps'])} steps recorded"))
    order = {"rng": 0, "metric": 1, "parameter": 2, "steps": 3}
    return sorted(out, key=lambda d: (d.step, order[d.kind], d.name))


def _changed(x: Mapping[str, Any], y: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(x) | set(y) if x.get(k) != y.get(k))


def _show(value: Any) -> str:
    return repr(float.fromhex(value)) if isinstance(value, str) and value.startswith(("0x", "-0x")) else repr(value)


def _worker_findings(records: list[dict[str, Any]]) -> list[WorkerRngFinding]:
    seen: dict[tuple[str, str], list[int]] = {}
    for record in records:
        for path, fp in record["rngs"].items():
            seen.setdefault((path, fp), []).append(record["worker"])
    return [WorkerRngFinding(path, tuple(ids), f"dataset.{path} started from the same state in "
                             f"{len(ids)} worker lives (workers {sorted(set(ids))}); seed it per worker, "
                             "e.g. with runlock.torch.loader_kwargs")
            for (path, _fp), ids in sorted(seen.items()) if len(ids) > 1]


# --- fingerprints -------------------------------------------------------------------------------

def _rng_fingerprints(generators: Mapping[str, Any]) -> dict[str, str]:
    out = {"python": _fingerprint(random.getstate())}
    np = sys.modules.get("numpy")
    if np is not None:
        out["numpy"] = _fingerprint(np.random.get_state(legacy=False))
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = _fingerprint(torch.get_rng_state())
        if torch.cuda.is_initialized():
            out.update((f"cuda:{i}", _fingerprint(s)) for i, s in enumerate(torch.cuda.get_rng_state_all()))
    out.update((f"generator:{k}", _fingerprint(_rng_object_state(g))) for k, g in generators.items())
    return out


def _rng_object_state(rng: Any) -> Any:
    for attr in ("getstate", "get_state"):
        if callable(getattr(rng, attr, None)):
            return getattr(rng, attr)()
    return rng.bit_generator.state


def _fingerprint(value: Any) -> str:
    h = hashlib.sha256()
    _feed(h, value)
    return h.hexdigest()[:32]


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            h.update(f"k{key!s}:".encode())
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"l{len(value)}:".encode())
        for item in value:
            _feed(h, item)
    elif hasattr(value, "detach"):  # torch tensor: dtype, shape and exact bytes
        t = value.detach().cpu().contiguous()
        h.update(f"t{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(sys.modules["torch"].uint8).numpy().tobytes())
    elif hasattr(value, "tobytes") and hasattr(value, "dtype"):  # numpy array or scalar
        h.update(f"a{value.dtype}{getattr(value, 'shape', ())}:".encode())
        h.update(value.tobytes())
    else:
        h.update(f"v{value!r};".encode())


def _metrics(metrics: Any) -> dict[str, Any]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        metrics = {"value": metrics}
    return {str(k): _exact(v) for k, v in metrics.items()}


def _exact(value: Any) -> Any:
    """A metric as an exact, comparable JSON value (floats as hex, tensors with >1 element hashed)."""
    if hasattr(value, "item"):
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            return "sha256:" + _fingerprint(value)
    if isinstance(value, float):
        return value.hex()
    return value if value is None or isinstance(value, (bool, int, str)) else repr(value)


def _params(params: Any) -> dict[str, str]:
    if params is None:
        return {}
    if hasattr(params, "state_dict"):
        params = params.state_dict()
    if not isinstance(params, Mapping):
        params = {"value": params}
    return {str(k): _fingerprint(v) for k, v in params.items()}


# --- kernels and workers ------------------------------------------------------------------------

class _KernelWatch:
    """Turn on torch's deterministic mode in warn_only and collect the kernels it warns about."""

    def __enter__(self) -> set[str]:
        self.kernels: set[str] = set()
        self._saved = warnings.catch_warnings()
        self._saved.__enter__()
        self._show = warnings.showwarning
        torch = sys.modules.get("torch")
        self._torch = torch
        if torch is not None:
            self._flags = (torch.are_deterministic_algorithms_enabled(),
                           torch.is_deterministic_algorithms_warn_only_enabled())
            torch.use_deterministic_algorithms(True, warn_only=True)
        warnings.filterwarnings("always", message=f".*{KERNEL_MARK}")
        warnings.showwarning = self._capture
        return self.kernels

    def _capture(self, message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message)
        if KERNEL_MARK in text:
            self.kernels.add(text.split(KERNEL_MARK)[0])
        else:
            self._show(message, category, filename, lineno, file, line)

    def __exit__(self, *exc: Any) -> None:
        self._saved.__exit__(*exc)
        if self._torch is not None:
            self._torch.use_deterministic_algorithms(self._flags[0], warn_only=self._flags[1])


@dataclass(frozen=True)
class _WorkerAudit:
    """Wraps a worker_init_fn: after it runs, append this worker's dataset-held RNG states."""

    inner: Callable[[int], None] | None
    path: str

    def __call__(self, worker_id: int) -> None:
        if self.inner is not None:
            self.inner(worker_id)
        info = sys.modules["torch"].utils.data.get_worker_info()
        rngs = {p: _fingerprint(_rng_object_state(r)) for p, r in find_rngs(info.dataset).items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"worker": worker_id, "rngs": rngs}) + "\n")


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)
