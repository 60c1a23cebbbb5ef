"""Running the probe: a command in child processes (``probe_command``, ``runlock probe``) or a
step function in this process (``probe_steps``)."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runlock.errors import InvalidInput, RunlockError
from runlock.probe.hooks import STEPS_ENV
from runlock.probe.report import ProbeReport, WorkerRngFinding, build_report, worker_findings
from runlock.probe.trace import Trace
from runlock.probe.watch import KernelWatch, Patches, Tracker, WorkerAudit, read_lines
from runlock.seeding import PROBE_ENV, hashseed_environ, seed_everything

ProgressFn = Callable[[str, int, int], None]  # (what is running, attempts done, attempts in all)
# a probed program must not join or name the run of a `runlock run` around the probe
_DROPPED_ENV = ("RUNLOCK_RUN_ID", "RUNLOCK_RANK")


def probe_command(argv: Sequence[str], steps: int = 3, *, hashseeds: tuple[int, int] = (0, 1),
                  cwd: str | None = None, timeout: float = 600, min_gap_s: float = 1.1,
                  on_progress: ProgressFn | None = None) -> ProbeReport:
    """Run ``argv`` twice with ``PYTHONHASHSEED=hashseeds[0]`` and once with ``hashseeds[1]``,
    each stopping after ``steps`` recorded steps, and compare. Raises RunlockError if the program
    fails or records no steps. Nothing is recorded in the store."""
    if not argv:
        raise InvalidInput("Nothing to probe: give a command after `--`.")
    if steps < 1 or hashseeds[0] == hashseeds[1]:
        raise InvalidInput("steps must be at least 1 and the two hash seeds must differ.")
    progress = on_progress or (lambda *_: None)
    plan = (("a", hashseeds[0], "run 1 of 3"), ("b", hashseeds[0], "run 2 of 3 (same hash seed)"),
            ("c", hashseeds[1], f"run 3 of 3 (hash seed {hashseeds[1]})"))
    traces = {}
    with tempfile.TemporaryDirectory(prefix="runlock-probe-") as tmp:
        started = time.monotonic()
        for done, (key, hashseed, label) in enumerate(plan):
            progress(label, done, len(plan))
            if key == "b":
                time.sleep(max(0.0, min_gap_s - (time.monotonic() - started)))
            traces[key] = _run_once(argv, steps, hashseed, Path(tmp) / f"{key}.json", cwd, timeout)
        progress("compared", len(plan), len(plan))
    workers = worker_findings(traces["a"]["workers"])  # within one run: runs a and b are meant to match
    return build_report(traces["a"], traces["b"], traces["c"], workers,
                        {"tested": True, "values": list(hashseeds)}, ())


def _run_once(argv, steps, hashseed, path: Path, cwd, timeout) -> dict[str, Any]:  # noqa: ANN001
    env = hashseed_environ(hashseed)
    for name in _DROPPED_ENV:
        env.pop(name, None)
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
                           hint="Log to a run (run.log) or call record_step(step, metrics=…, params=model) "
                                "after each step (from runlock.probe import record_step).")
    data = json.loads(path.read_text())
    data["workers"] = read_lines(Path(f"{path}.workers"))
    return data


# --- in this process ----------------------------------------------------------------------------

def probe_steps(step_fn: Callable[..., Any], *, steps: int = 3, state_fn: Callable[..., Any] | None = None,
                setup_fn: Callable[[], Any] | None = None, seed: int | None = None,
                generators: Callable[..., Mapping[str, Any]] | None = None, loaders: Iterable[Any] = (),
                min_gap_s: float = 1.1) -> ProbeReport:
    """Run ``steps`` steps twice in this process and compare them (``runlock.probe_steps``).

    Each run: ``seed_everything(seed, warn_only=True)`` if ``seed`` is given, then
    ``ctx = setup_fn()`` (build model, data, optimiser afresh), then per step
    ``step_fn(ctx, step)`` returning a metric, a dict of metrics or None, and ``state_fn(ctx)``
    returning a module or a dict of tensors to fingerprint. Without ``setup_fn`` the calls are
    ``step_fn(step)`` and ``state_fn()``, and step_fn must itself start from a fresh state.
    ``generators(ctx)`` names extra generators (e.g. a DataLoader's) to track. DataLoaders
    iterated during the first run are audited for dataset-held RNGs duplicated across workers, and
    so is each loader in ``loaders`` (two epochs each, after both runs).
    """
    if steps < 1:
        raise InvalidInput(f"steps must be at least 1, got {steps}.")
    with tempfile.TemporaryDirectory(prefix="runlock-probe-") as tmp:
        started = time.monotonic()
        first = _trial(step_fn, steps, state_fn, setup_fn, seed, generators, str(Path(tmp) / "workers.jsonl"))
        time.sleep(max(0.0, min_gap_s - (time.monotonic() - started)))
        second = _trial(step_fn, steps, state_fn, setup_fn, seed, generators, None)
        workers = worker_findings(read_lines(Path(tmp) / "workers.jsonl"))
    workers += [w for loader in loaders for w in audit_loader(loader)]
    note = "The hash seed is the same for both runs in one process; use probe_command to test it."
    return build_report(first, second, None, workers, {"tested": False}, (note,))


def _trial(step_fn, steps, state_fn, setup_fn, seed, generators, workers_path) -> dict[str, Any]:  # noqa: ANN001
    tracker = Tracker()
    patches = Patches(tracker, workers_path).install()
    try:
        with KernelWatch() as kernels:
            if seed is not None:
                seed_everything(seed, deterministic=True, warn_only=True)
            patches.install()  # seeding may have loaded torch
            args = () if setup_fn is None else (setup_fn(),)
            gens = (lambda: generators(*args)) if generators else dict
            trace = Trace(gens, tracked=lambda: dict(tracker.live))
            for step in range(steps):
                metrics = step_fn(*args, step)
                trace.data["created"] = dict(tracker.created)
                trace.add(step, metrics, state_fn(*args) if state_fn else None)
                tracker.step = step + 1
    finally:
        patches.uninstall()
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
        loader.worker_init_fn = WorkerAudit(original, str(path))
        try:
            for _ in range(epochs):
                for _batch in loader:
                    pass
        finally:
            loader.worker_init_fn = original
        return tuple(worker_findings(read_lines(path)))
