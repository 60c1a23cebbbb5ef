"""The HF callback treats a Trainer that resumes from a checkpoint as a resumed run (issue 13): it
links the run to the one that logged the checkpoint, continues its steps, and logs the whole
training's ``train_loss`` (the Trainer's own covers one ``train()`` call), so the interrupted +
resumed training compares ``bitwise`` with an uninterrupted one. In process, on a tiny GPT-2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from peft import LoraConfig, get_peft_model
from transformers import (DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments)

import runlock
from runlock.demo.model import BaseRecipe, build_base, train_tokenizer
from runlock.integrations.hf import RunlockCallback
from runlock.store import Store
from runlock.store.schema import edges
from runlock.tracking.diff import metric_series
from runlock.tracking.resume import resumed_from
from runlock.verify import compare

TEXTS = [f"ticket {i}: my order {i * 7 % 13} has not arrived, please help with item {i % 5}" for i in range(24)]


class Stop(Exception):
    pass


class Die(TrainerCallback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if state.global_step == self.at:
            raise Stop(f"killed at step {self.at}")


def fit(store: Store, folder: Path, *, resume: bool = False, die_at: int | None = None) -> str:
    """Train in ``folder`` (output_dir ``out``: the Trainer pickles it into every checkpoint)."""
    folder.mkdir(exist_ok=True)
    os.chdir(folder)
    tok = train_tokenizer(TEXTS, 200)
    runlock.seed_everything(0)
    model = get_peft_model(build_base(BaseRecipe(vocab_size=200, n_layer=1, n_embd=16, n_head=2, seq_len=24), tok),
                           LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True, task_type="CAUSAL_LM"))
    enc = tok(TEXTS, max_length=24, truncation=True, padding="max_length")
    data = [{"input_ids": i, "attention_mask": m} for i, m in zip(enc["input_ids"], enc["attention_mask"])]
    args = TrainingArguments(output_dir="out", max_steps=6, per_device_train_batch_size=4, learning_rate=1e-2,
                             logging_steps=1, save_steps=3, report_to=[], seed=0, use_cpu=True, disable_tqdm=True)
    callbacks = [RunlockCallback(), *([Die(die_at)] if die_at else [])]
    with runlock.start_run(project="hf", name="lora", seed=0, store=store) as run:
        trainer = Trainer(model=model, args=args, train_dataset=data,
                          data_collator=DataCollatorForLanguageModeling(tok, mlm=False), callbacks=callbacks)
        try:
            trainer.train(resume_from_checkpoint=resume)
        except Stop:
            pass
    return run.id


@pytest.mark.slow
def test_a_resumed_trainer_is_linked_and_compares_bitwise(store: Store, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    whole = fit(store, tmp_path / "whole")
    crashed = fit(store, tmp_path / "again", die_at=5)
    resumed = fit(store, tmp_path / "again", resume=True)
    found = resumed_from(store, resumed)
    assert (found.of, found.step) == (crashed, 3)
    with store.db.read() as conn:
        assert conn.execute(sa.select(edges.c.dst).where(edges.c.kind == "resumes",
                                                         edges.c.src == f"run:{resumed}")).scalar() == f"run:{crashed}"
    assert [s for s, _ in metric_series(store, resumed)["loss"]] == [4, 5, 6]
    trainer_loss = metric_series(store, resumed)["train_loss"]
    assert trainer_loss == metric_series(store, whole)["train_loss"]      # the whole training's, not steps 4-6
    result = compare(store, resumed, whole)
    assert result.tier == "bitwise", [o for o in result.outputs if o.tier != "bitwise"]
    assert compare(store, resumed, whole, stitch=False).tier == "different"
