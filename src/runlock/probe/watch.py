"""What the probe watches without any change to the program: nondeterministic kernels, generators
created without a seed, and dataset-held RNGs copied into DataLoader workers.

``Patches(tracker, workers_path).install()`` wraps, until ``uninstall()``:

* ``numpy.random.default_rng`` and ``random.Random``: a generator made **without a seed** is
  recorded with its call site (``numpy.random.default_rng() at train.py:12``) and its first
  state, so a report can blame it by name; ``random.Random`` made by the standard library itself
  (``tempfile`` names) is left out;
* ``torch.utils.data.DataLoader``: before a loader with workers starts them, its
  ``worker_init_fn`` is wrapped so that each worker appends its dataset-held RNG states
  (``runlock.seeding.find_rngs``) to ``workers_path``; two worker lives with one state is a
  duplicated RNG. It patches the class, so loaders made before the patch are covered too.

Modules that are not loaded yet are patched by a later ``install()`` (the probe calls it again
when it activates and at each step).
"""

from __future__ import annotations

import json
import os
import random
import sys
import sysconfig
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runlock.probe.trace import fingerprint, rng_object_state
from runlock.seeding import find_rngs

KERNEL_MARK = " does not have a deterministic implementation"
MAX_PER_SITE = 16       # generators kept alive (to follow their state) per call site
MAX_CREATED = 1000      # creations recorded in one trace
_HERE = str(Path(__file__).resolve().parent)
_RANDOM = random.__file__
_STDLIB = tuple({os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")})


class Tracker:
    """Generators created without a seed: ``live`` (name -> generator) and ``created``
    (name -> {"state", "step", "site"}); ``step`` is the number of steps recorded so far."""

    def __init__(self) -> None:
        self.live: dict[str, Any] = {}
        self.created: dict[str, dict[str, Any]] = {}
        self.step = 0
        self._per_site: dict[str, int] = {}

    def note(self, kind: str, rng: Any, site: tuple[str, bool]) -> None:
        site, user = site
        key = f"{kind} at {site}"
        k = self._per_site.get(key, 0)
        self._per_site[key] = k + 1
        name = key if k == 0 else f"{key} #{k + 1}"
        if k < MAX_PER_SITE:
            self.live[name] = rng
        if len(self.created) < MAX_CREATED:
            self.created[name] = {"state": fingerprint(rng_object_state(rng)), "step": self.step, "site": site,
                                 "user": user}


class Patches:
    """The wrappers above, installed into whatever of numpy / random / torch is loaded."""

    def __init__(self, tracker: Tracker, workers_path: str | None) -> None:
        self.tracker = tracker
        self.workers_path = workers_path
        self._saved: list[tuple[Any, str, Any]] = []
        self._done: set[str] = set()
        self._loaders: list[weakref.ref] = []

    def install(self) -> "Patches":
        if "random" not in self._done:
            self._done.add("random")
            self._swap(random.Random, "__init__", _random_init(random.Random.__init__, self.tracker))
        np = sys.modules.get("numpy")
        if np is not None and "numpy" not in self._done:
            self._done.add("numpy")
            self._swap(np.random, "default_rng", _default_rng(np.random.default_rng, self.tracker))
        data = sys.modules.get("torch.utils.data")
        if data is not None and self.workers_path and "torch" not in self._done:
            self._done.add("torch")
            self._swap(data.DataLoader, "_get_iterator", self._get_iterator(data.DataLoader._get_iterator))
        return self

    def uninstall(self) -> None:
        for owner, attr, value in reversed(self._saved):
            setattr(owner, attr, value)
        for ref in self._loaders:
            loader = ref()
            if loader is not None and isinstance(loader.worker_init_fn, WorkerAudit):
                loader.worker_init_fn = loader.worker_init_fn.inner
        self._saved, self._done, self._loaders = [], set(), []

    def _swap(self, owner: Any, attr: str, value: Any) -> None:
        self._saved.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, value)

    def _get_iterator(self, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        patches = self

        def _get_iterator(loader: Any) -> Any:
            if loader.num_workers > 0 and not isinstance(loader.worker_init_fn, WorkerAudit):
                loader.worker_init_fn = WorkerAudit(loader.worker_init_fn, patches.workers_path)
                patches._loaders.append(weakref.ref(loader))
            return original(loader)

        return _get_iterator


def _default_rng(original: Callable[..., Any], tracker: Tracker) -> Callable[..., Any]:
    def default_rng(seed: Any = None) -> Any:
        rng = original(seed)
        if seed is None:
            site = call_site()
            if site:
                tracker.note("numpy.random.default_rng()", rng, site)
        return rng

    default_rng.__doc__ = original.__doc__
    default_rng.__wrapped__ = original  # type: ignore[attr-defined]
    return default_rng


def _random_init(original: Callable[..., None], tracker: Tracker) -> Callable[..., None]:
    def __init__(self: random.Random, x: Any = None) -> None:
        original(self, x)
        if x is None and not isinstance(self, random.SystemRandom):
            site = call_site(skip_stdlib=True)
            if site:
                tracker.note("random.Random()", self, site)

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    return __init__


def call_site(*, skip_stdlib: bool = False) -> tuple[str, bool] | None:
    """(``FILE:LINE``, whether it is the program's own code rather than an installed library or
    the standard library) of the first frame outside the probe, NumPy and ``random``: relative
    to the working directory when inside it, else from the package folder on
    (``datasets/x.py:12``), else the file name. None for frozen modules."""
    frame = sys._getframe(1)
    while frame is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None or frame.f_code.co_filename.startswith("<"):
        return None
    path = os.path.realpath(frame.f_code.co_filename)
    library = "-packages" in path or path.startswith(_STDLIB)
    if skip_stdlib and library and "-packages" not in path:
        return None
    return f"{_short(path)}:{frame.f_lineno}", not library


def _internal(filename: str) -> bool:
    return (filename.startswith(_HERE) or f"{os.sep}numpy{os.sep}random{os.sep}" in filename
            or filename == _RANDOM)


def _short(path: str) -> str:
    cwd = os.path.realpath(os.getcwd())
    if path.startswith(cwd + os.sep):
        return os.path.relpath(path, cwd)
    for marker in ("site-packages", "dist-packages"):
        if f"{os.sep}{marker}{os.sep}" in path:
            return path.split(f"{os.sep}{marker}{os.sep}", 1)[1]
    return os.path.basename(path)


# --- kernels ------------------------------------------------------------------------------------

class KernelWatch:
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

    def _capture(self, message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        text = str(message)
        if KERNEL_MARK in text:
            self.kernels.add(text.split(KERNEL_MARK)[0])
        else:
            self._show(message, category, filename, lineno, file, line)

    def __exit__(self, *exc: Any) -> None:
        self._saved.__exit__(*exc)
        if self._torch is not None:
            self._torch.use_deterministic_algorithms(self._flags[0], warn_only=self._flags[1])


# --- workers ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerAudit:
    """Wraps a worker_init_fn: after it runs, append this worker's dataset-held RNG states."""

    inner: Callable[[int], None] | None
    path: str

    def __call__(self, worker_id: int) -> None:
        if self.inner is not None:
            self.inner(worker_id)
        info = sys.modules["torch"].utils.data.get_worker_info()
        rngs = {p: fingerprint(rng_object_state(r)) for p, r in find_rngs(info.dataset).items()}
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"worker": worker_id, "rngs": rngs}) + "\n")
        except OSError:
            pass  # the probe that asked is over (its folder is gone): nothing to report to


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
