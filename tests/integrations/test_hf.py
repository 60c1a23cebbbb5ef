"""RunlockCallback against the real transformers Trainer on a tiny GPT-2 (no mocks)."""

from __future__ import annotations

import enum
import math
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import runlock
from runlock import canonical
from runlock.artifacts import for_run
from runlock.errors import InvalidInput
from runlock.integrations.hf import RunlockCallback, json_safe, scalar_metrics, training_config
from runlock.store import Store
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.diff import metric_series

STEPS = 4


class TokenRows(torch.utils.data.Dataset):
    def __init__(self, n: int = 32, length: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 64, (n, length), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _args(out: Path, **overrides: object) -> TrainingArguments:
    return TrainingArguments(**{
        "output_dir": str(out), "max_steps": STEPS, "per_device_train_batch_size": 8,
        "learning_rate": 1e-3, "seed": 5, "data_seed": 6, "use_cpu": True,
        "dataloader_num_workers": 0, "report_to": [], "logging_steps": 1,
        "save_strategy": "steps", "save_steps": 2, "disable_tqdm": True, **overrides})


def _trainer(out: Path, callback: RunlockCallback, **overrides: object) -> Trainer:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1,
                                       n_head=2))
    return Trainer(model=model, args=_args(out, **overrides), train_dataset=TokenRows(),
                   callbacks=[callback])


def test_callback_starts_logs_and_finishes_its_own_run(store: Store, tmp_path: Path) -> None:
    cb = RunlockCallback(project="hf-test", name="tiny", store=store, model_dir=tmp_path / "final")
    _trainer(tmp_path / "out", cb).train()
    assert runlock.current_run() is None
    (rec,) = records.list_runs(store, project="hf-test")
    assert (rec.name, rec.status) == ("tiny", "finished")
    loss = metric_series(store, rec.id, "loss")["loss"]
    assert [step for step, _ in loss] == list(range(1, STEPS + 1))
    assert all(math.isfinite(v) for _, v in loss)
    logged = set(metric_series(store, rec.id))
    assert {"learning_rate", "grad_norm", "epoch", "train_loss"} <= logged
    assert not any(k.endswith(("_runtime", "_per_second")) for k in logged)  # wall-clock timings are not results
    arts = {a.name: a for a in for_run(store, rec.id)}
    assert {n: a.kind for n, a in arts.items()} == {
        "checkpoint-2": "checkpoint", "checkpoint-4": "checkpoint", "model": "model"}
    assert arts["model"].digest.startswith("sha256:")
    assert (tmp_path / "final" / "model.safetensors").is_file()
    lock = locks.load(store, rec.recipe_id)
    args = lock["config"]["training_args"]
    assert args["seed"] == 5 and args["data_seed"] == 6 and args["max_steps"] == STEPS
    assert "output_dir" not in args and "run_name" not in args
    assert lock["seed"] == 5
    assert lock["knobs"]["declared"]["data_seed"] == 6
    assert lock["seeding"]["by"] == "transformers.Trainer"


def test_callback_joins_the_active_run_and_leaves_it_open(store: Store, tmp_path: Path) -> None:
    with runlock.start_run(project="hf-test", name="outer", config={"recipe": "r1"}, seed=5,
                           store=store) as run:
        cb = RunlockCallback(project="ignored", store=store)
        _trainer(tmp_path / "out", cb, save_strategy="no").train()
        assert runlock.current_run() is run          # still open: the callback did not end it
        run.set_summary({"eval/loss": 1.5})
        run_id = run.id
    (rec,) = records.list_runs(store)
    assert (rec.id, rec.name, rec.status) == (run_id, "outer", "finished")
    assert rec.summary == {"eval/loss": 1.5}
    lock = locks.load(store, rec.recipe_id)
    assert lock["config"]["recipe"] == "r1"          # the script's config is kept ...
    assert lock["config"]["training_args"]["seed"] == 5   # ... and the arguments added
    assert [s for s, _ in metric_series(store, run_id, "loss")["loss"]] == list(range(1, STEPS + 1))
    assert for_run(store, run_id) == []              # no checkpoints saved, no model_dir given


def test_same_arguments_in_another_folder_give_the_same_config(tmp_path: Path) -> None:
    a = training_config(_args(tmp_path / "a"))
    b = training_config(_args(tmp_path / "elsewhere" / "b", run_name="second-try"))
    c = training_config(_args(tmp_path / "a", learning_rate=2e-3))
    assert a == b != c


def test_training_config_is_plain_json(tmp_path: Path) -> None:
    cfg = training_config(_args(tmp_path))
    assert canonical.loads(canonical.dumps(cfg)) == cfg


class Color(enum.Enum):
    RED = "red"


def test_json_safe_turns_odd_values_into_plain_json() -> None:
    assert json_safe({"a": Color.RED, "b": Path("/x"), "c": float("nan"), "d": (1, 2),
                      "e": {3: float("inf")}, "f": object}) == {
        "a": "red", "b": "/x", "c": "nan", "d": [1, 2], "e": {"3": "inf"}, "f": str(object)}


def test_scalar_metrics_keeps_numbers_only() -> None:
    logs = {"loss": 1.25, "step": 3, "flag": True, "name": "x", "hist": [1, 2],
            "t": torch.tensor(0.5), "v": torch.tensor([1.0, 2.0])}
    assert scalar_metrics(logs) == {"loss": 1.25, "step": 3.0, "t": 0.5}
    assert scalar_metrics(None) == {}
    timings = {"train_runtime": 3.2, "train_samples_per_second": 9.1, "eval_runtime": 0.4, "train_loss": 1.5}
    assert scalar_metrics(timings) == {"train_loss": 1.5}


def test_a_non_dict_run_config_is_refused(store: Store, tmp_path: Path) -> None:
    with runlock.start_run(project="hf-test", config=["not", "a", "dict"], store=store):
        cb = RunlockCallback(store=store)
        with pytest.raises(InvalidInput, match="record_config=False"):
            _trainer(tmp_path / "out", cb, save_strategy="no").train()
