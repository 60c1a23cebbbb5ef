"""RunlockLogger against the real PyTorch Lightning Trainer (CPU, a tiny regression model)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import runlock
from runlock import artifacts
from runlock.store import Store
from runlock.integrations.lightning import RunlockLogger
from runlock.tracking import lock as locks
from runlock.tracking import records, series


class Regression(pl.LightningModule):
    def __init__(self, lr: float = 0.1, hidden: int = 4, fail_at: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        if self.global_step == self.hparams.fail_at:
            raise RuntimeError("boom")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        x, y = batch
        self.log("val/loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16)


def trainer(tmp_path: Path, logger: RunlockLogger, **kw) -> pl.Trainer:  # noqa: ANN003
    kw = {"max_epochs": 2, **kw}
    return pl.Trainer(logger=logger, accelerator="cpu", log_every_n_steps=1, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, **kw)


@pytest.fixture(autouse=True)
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_logger_starts_owns_and_finishes_a_run(store: Store, tmp_path: Path) -> None:
    logger = RunlockLogger(project="lit", name="reg", store=store, log_checkpoints=True)
    trainer(tmp_path, logger).fit(Regression(lr=0.05), loader(), loader())
    rec = records.get(store, logger.version)
    assert rec.status == "finished" and rec.project == "lit" and rec.name == "reg"
    loss = [p for p in series.points(store, rec.id, keys=["train/loss"])]
    assert [p.step for p in loss] == list(range(8))                  # 4 batches x 2 epochs
    assert {p.key for p in series.points(store, rec.id)} >= {"train/loss", "val/loss", "epoch"}
    assert run_config(store, rec.id)["hparams"] == {"lr": 0.05, "hidden": 4, "fail_at": -1}
    arts = artifacts.for_run(store, rec.id)
    assert sorted((a.kind, a.name) for a in arts) == [("checkpoint", "checkpoint-epoch_0-step_4.ckpt"),
                                                       ("checkpoint", "checkpoint-epoch_1-step_8.ckpt")]


def test_logger_joins_the_active_run_and_leaves_it_open(store: Store, tmp_path: Path) -> None:
    with runlock.start_run(project="outer", config={"data": "v1"}, store=store) as run:
        logger = RunlockLogger()
        trainer(tmp_path, logger, max_epochs=1).fit(Regression(), loader())
        assert logger.version == run.id and not run.ended
        run.log({"after": 1.0}, step=100)
    assert records.get(store, run.id).status == "finished"
    assert run_config(store, run.id) == {"data": "v1", "hparams": {"lr": 0.1, "hidden": 4, "fail_at": -1}}
    assert len(list(series.points(store, run.id, keys=["train/loss"]))) == 4


def test_a_failing_fit_fails_the_run_with_its_flushed_points(store: Store, tmp_path: Path) -> None:
    logger = RunlockLogger(project="lit", store=store)
    with pytest.raises(RuntimeError, match="boom"):
        trainer(tmp_path, logger).fit(Regression(fail_at=5), loader())
    rec = records.get(store, logger.version)
    assert rec.status == "failed" and rec.last_step == 4


def run_config(store: Store, run_id: str) -> dict:
    return locks.load(store, records.get(store, run_id).recipe_id)["config"]
