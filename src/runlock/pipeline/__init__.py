"""Pipelines: ``runlock.yaml`` stages run as locked runs, cached by the full inputs document.

Modules, one concept each: ``spec`` (the file and the DAG, pure), ``params`` (FILE:KEY values),
``digests`` (content ids through the stat cache), ``inputs`` (a stage's inputs document and its
key), ``state`` (stage rows and per-stage locks in the database), ``outs`` (store and restore),
``repro`` (the scheduler), ``status``, ``check`` (verify), ``show`` (DOT/PNG/JSON, export).
"""

from runlock.pipeline.check import StageVerification, verify
from runlock.pipeline.repro import ReproResult, StageOutcome, reap, repro
from runlock.pipeline.show import export, graph, to_dot, to_png
from runlock.pipeline.spec import Pipeline, SpecError, Stage, load
from runlock.pipeline.status import StageStatus, status

__all__ = ["Pipeline", "ReproResult", "SpecError", "Stage", "StageOutcome", "StageStatus", "StageVerification",
           "export", "graph", "load", "reap", "repro", "status", "to_dot", "to_png", "verify"]
