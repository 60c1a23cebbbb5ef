"""Hooks inside a probed program (``RUNLOCK_PROBE`` set by ``runlock probe``); outside one they
do nothing.

The program marks its steps with ``record_step(step, metrics=…, params=model)`` (``run.log``
does it for a script that logs to a run). ``activate()`` (called by ``seed_everything`` and
``start_run``) starts the trace from the state the program is in, so call it after seeding.
From ``import runlock`` on (and from the import of numpy or torch, whichever comes later),
generators created without a seed and DataLoader workers are watched (``runlock.probe.watch``)
with no change to the program. After the probed number of steps the
program exits with status 0.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from runlock.probe.trace import Trace
from runlock.probe.watch import KernelWatch, Patches, Tracker
from runlock.seeding import PROBE_ENV

STEPS_ENV = "RUNLOCK_PROBE_STEPS"
_active: dict[str, Any] = {}  # the trace of this process while RUNLOCK_PROBE is set
_tracker = Tracker()
_patches: list[Patches] = []


def active() -> bool:
    return bool(os.environ.get(PROBE_ENV))


def watch() -> None:
    """Install the watches into whatever of numpy / random / torch is loaded by now."""
    if not active():
        return
    if not _patches:
        _patches.append(Patches(_tracker, os.environ[PROBE_ENV] + ".workers"))
    _patches[0].install()


def activate(*, _late: bool = False) -> None:
    """Start recording in a probed program (idempotent). Call it before the first step (after
    seeding) so that the RNG state at the start and the first step's kernels are seen; otherwise
    ``record_step`` starts recording late and step 0's RNG use is reported as unknown."""
    if not active():
        return
    watch()
    if _active:
        return
    kernels = KernelWatch()
    kernels.__enter__()
    _active.update(path=os.environ[PROBE_ENV], steps=int(os.environ.get(STEPS_ENV, "3")),
                   trace=Trace(dict, started=not _late, tracked=lambda: dict(_tracker.live)), watch=kernels)


def record_step(step: int, *, metrics: Any = None, params: Any = None,
                generators: Mapping[str, Any] | None = None) -> None:
    """Record one finished step; exit the program (status 0) after the probed number of steps.
    Does nothing unless the program runs under ``runlock probe``."""
    if not active():
        return
    activate(_late=True)
    watch()
    trace = _active["trace"]
    trace.generators = lambda: dict(generators or {})
    trace.data["created"] = dict(_tracker.created)
    trace.add(step, metrics, params)
    _tracker.step = len(trace.data["steps"])
    trace.data["kernels"] = sorted(_active["watch"].kernels)
    _write_json(_active["path"], trace.data)
    if len(trace.data["steps"]) >= _active["steps"]:
        raise SystemExit(0)


def watch_loader(loader: Any) -> Any:
    """Kept for programs written for earlier versions: the probe now watches every DataLoader
    by itself. Returns the loader unchanged."""
    watch()
    return loader


def _write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


class _WatchAfterImport(importlib.abc.MetaPathFinder):
    """Installs the watches as soon as numpy or torch is imported, whichever order a program
    imports them and runlock in (only in a probed program)."""

    NAMES = frozenset({"numpy", "torch"})

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.NAMES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is not None and hasattr(loader, "exec_module"):
            inner = loader.exec_module

            def exec_module(module: Any) -> None:
                inner(module)
                watch()

            loader.exec_module = exec_module
        return spec


if active():  # from `import runlock` on, in a probed program
    if not any(isinstance(f, _WatchAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _WatchAfterImport())
    watch()
