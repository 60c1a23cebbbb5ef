"""Pipelines: ``runlock.yaml`` stages run as locked runs, cached by the full inputs document.

Modules, one concept each: ``spec`` (the file and the DAG, pure), ``params`` (FILE:KEY values),
``digests`` (content ids through the stat cache), ``inputs`` (a stage's inputs document and its
key), ``state`` (stage rows and per-stage locks in the database), ``outs`` (store and restore),
``repro`` (the scheduler), ``execute`` (one stage as a recorded run), ``status``, ``check``
(verify), ``show`` (DOT/PNG/JSON, export).

The names below are loaded on first use, as ``runlock``'s own are: a no-op ``runlock repro`` needs
the scheduler, the state and the digests, not the verify tiers (``check``) or the run machinery
(``execute``), whose imports would be most of its time.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "StageVerification": "check", "verify": "check",
    "ReproResult": "repro", "StageOutcome": "repro", "reap": "repro", "repro": "repro",
    "export": "show", "graph": "show", "to_dot": "show", "to_png": "show",
    "Pipeline": "spec", "SpecError": "spec", "Stage": "spec", "load": "spec",
    "StageStatus": "status", "status": "status",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_NAMES})
