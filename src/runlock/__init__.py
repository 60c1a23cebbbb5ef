"""runlock: reproducible, auditable ML runs.

The public API a training script needs::

    import runlock
    runlock.init(".")                                   # once per project: creates .runlock/
    runlock.seed_everything(42)
    snap = runlock.snapshot("data/tickets.jsonl", name="tickets", id_column="id")
    split = runlock.split(snap, name="tickets", ratios=(0.8, 0.1, 0.1), seed=42)
    with runlock.start_run(project="support-bot", name="lora-r8", config=cfg, seed=42) as run:
        run.use(split)
        run.log({"train/loss": loss}, step=step)
        run.log_artifact("out/adapter", name="adapter", kind="model")
        run.set_summary({"eval/f1": f1})

Verification (``runlock.verify`` is the package; its functions take the store first)::

    store = runlock.open_store()
    runlock.compare(store, "run:A", "run:B")      # bitwise / tolerance / statistical / different
    runlock.verify.verify(store, "run:A")          # rerun from the lock, compare, record
    runlock.check(store, "model:support-bot@v3")   # the reproducibility checklist
"""

from __future__ import annotations

import importlib
import os as _os
from typing import Any

from runlock._version import __version__

# The public API, loaded on first use: ``import runlock`` costs almost nothing, so that a command
# line or a script that needs one function does not pay for every layer (SQLAlchemy, numpy, …).
# name -> "module:attribute"
_API = {
    "ResolvedConfig": "runlock.config:ResolvedConfig",
    "resolve_config": "runlock.config:resolve",
    "Snapshot": "runlock.data.snapshot:Snapshot",
    "load_snapshot": "runlock.data.snapshot:load_snapshot",
    "snapshot": "runlock.api:snapshot",
    "Split": "runlock.data.split:Split",
    "load_split": "runlock.api:load_split",
    "split": "runlock.api:split",
    "transform": "runlock.api:transform",
    "RunlockError": "runlock.errors:RunlockError",
    "probe_steps": "runlock.probe:probe_steps",
    "register_model": "runlock.api:register_model",
    "derive_seed": "runlock.seeding:derive_seed",
    "runs": "runlock.api:runs",
    "Run": "runlock.tracking.run:Run",
    "current_run": "runlock.api:current_run",
    "join_run": "runlock.api:join_run",
    "seed_everything": "runlock.api:seed_everything",
    "start_run": "runlock.api:start_run",
    "resume": "runlock.api:resume",
    "WriterSettings": "runlock.tracking.writer:WriterSettings",
    "check": "runlock.verify:check",
    "compare": "runlock.verify:compare",
    "input_path": "runlock.api:input_path",
    "rerun": "runlock.verify:rerun",
    "variance": "runlock.verify:variance",
    "init": "runlock.api:init",
    "open_store": "runlock.api:open_store",
}

__all__ = sorted([*_API, "__version__"])


def __getattr__(name: str) -> Any:
    """A public name on first use, or a submodule (``runlock.verify``, ``runlock.store``…)."""
    if name in _API:
        module, attribute = _API[name].split(":")
        value = getattr(importlib.import_module(module), attribute)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


if _os.environ.get("RUNLOCK_PROBE"):  # under `runlock probe`: watch generators and loaders from here on
    importlib.import_module("runlock.probe")
