"""Pipelines: ``runlock.yaml`` stages run as locked runs, cached by the full inputs document.

Modules, one concept each: ``spec`` (the file and the DAG, pure), ``params`` (FILE:KEY values),
``digests`` (content ids through the stat cache) and ``folders`` (the folder cache), ``inputs``
(a stage's inputs document and its key), ``state`` (stage rows and per-stage locks in the
database), ``outs`` (store and restore), ``repro`` (the scheduler), ``execute`` (one stage as a
recorded run), ``status``, ``check`` (verify), ``show`` (DOT/PNG/JSON, export).

``verify``/``StageVerification`` (``check``) and the drawing and export names (``show``) are
loaded on first use, as ``runlock``'s own names are: ``check`` brings the compare tiers and numpy,
``show`` the lineage views, and ``execute`` the run machinery (``repro`` loads it only when a
stage runs); together they would be most of the time of a ``repro`` with nothing to do.
"""

from __future__ import annotations

import importlib
from typing import Any

from runlock.pipeline.repro import ReproResult, StageOutcome, reap, repro
from runlock.pipeline.spec import Pipeline, SpecError, Stage, load
from runlock.pipeline.status import StageStatus, status

_LAZY = {"StageVerification": "runlock.pipeline.check", "verify": "runlock.pipeline.check",
         **dict.fromkeys(["export", "graph", "to_dot", "to_png"], "runlock.pipeline.show")}

__all__ = ["Pipeline", "ReproResult", "SpecError", "Stage", "StageOutcome", "StageStatus", "StageVerification",
           "export", "graph", "load", "reap", "repro", "status", "to_dot", "to_png", "verify"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
