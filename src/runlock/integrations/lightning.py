"""PyTorch Lightning: ``RunlockLogger``, a Lightning logger that records into a runlock run.

    from lightning.pytorch import Trainer
    from runlock.integrations.lightning import RunlockLogger

    trainer = Trainer(logger=RunlockLogger(project="bot", name="lora-r8"), max_epochs=3)
    trainer.fit(model, datamodule)

On first use the logger joins the active run (a ``with runlock.start_run(...)`` block around
``trainer.fit``, or a process started by ``runlock run``), else starts one and then owns it:
``finalize`` seals it as ``finished`` (``failed`` when Lightning reports a failure). Metrics go
through ``Run.log`` (the non-blocking writer) at Lightning's global step; ``save_hyperparameters``
lands in the lock's config under ``hparams``; with ``log_checkpoints=True`` every checkpoint the
``ModelCheckpoint`` callback writes is stored as an artifact of kind ``checkpoint``.
Lightning calls a logger on global rank 0 only; other ranks can log with ``runlock.join_run``.
"""

from __future__ import annotations

import re
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.logger import _convert_params, _sanitize_params
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from runlock import canonical
from runlock.api import current_run, start_run
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.tracking.run import Run

HPARAMS_KEY = "hparams"


class RunlockLogger(Logger):
    def __init__(self, project: str = "lightning", name: str | None = None, *, config: Any = None,
                 seed: int | None = None, tags: dict | None = None, store: Store | str | Path | None = None,
                 run: Run | None = None, log_checkpoints: bool = False) -> None:
        super().__init__()
        self._project, self._name = project, name
        self._start = {"config": config, "seed": seed, "tags": tags, "store": store}
        self._run = run
        self._owned = False
        self._log_checkpoints = log_checkpoints
        self._logged_checkpoints: set[str] = set()

    # -- the Logger interface -----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._project

    @property
    def version(self) -> str:
        return self.experiment.id if self._run is not None or rank_zero_only.rank == 0 else ""

    @property
    @rank_zero_experiment
    def experiment(self) -> Run:
        """The runlock run (joined or started on first use)."""
        if self._run is None:
            self._run = current_run()
            if self._run is None:
                self._run = start_run(self._project, self._name, **self._start)
                self._owned = True
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        hparams = _sanitize_params(_convert_params(params))
        try:
            hparams = canonical.normalize(hparams)
        except InvalidInput:
            hparams = canonical.normalize({k: v if _is_json(v) else repr(v) for k, v in hparams.items()})
        run = self.experiment
        config = run.lock.get("config") or {}
        if config.get(HPARAMS_KEY) != hparams:
            run.record_config({**config, HPARAMS_KEY: hparams})

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        self.experiment.log(dict(metrics), step=step)

    @rank_zero_only
    def save(self) -> None:
        """Nothing to do: the writer writes in the background; ``finalize`` flushes."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._run is None:
            return
        if self._owned:
            self._run.finish("finished" if status in ("success", "finished") else "failed",
                             None if status in ("success", "finished") else f"Lightning reported {status}.")
        elif not self._run.ended:
            self._run.flush()

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._log_checkpoints:
            return
        for path in _checkpoint_paths(checkpoint_callback):
            if path not in self._logged_checkpoints and Path(path).is_file():
                self.experiment.log_artifact(path, name=_artifact_name(path), kind="checkpoint")
                self._logged_checkpoints.add(path)


def _checkpoint_paths(cb: Any) -> list[str]:
    paths = [getattr(cb, "last_model_path", ""), getattr(cb, "best_model_path", "")]
    paths += list(getattr(cb, "best_k_models", {}) or {})
    return sorted({str(p) for p in paths if p})


def _artifact_name(path: str) -> str:
    """``…/epoch=1-step=8.ckpt`` -> ``checkpoint-epoch_1-step_8.ckpt`` (an allowed artifact name)."""
    return ("checkpoint-" + re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).name))[:128]


def _is_json(value: Any) -> bool:
    try:
        canonical.normalize(value)
    except InvalidInput:
        return False
    return True
