"""One fine-tune of the demo recipe with ``transformers.Trainer`` on CPU, bit for bit repeatable.

``Trainer(full_determinism=True)`` seeds Python, NumPy and torch globally and switches torch to
deterministic algorithms for the rest of the process. Training runs on ``recipe.torch_threads``
threads (default 1): a float sum's order, hence the last bits of every weight, can depend on the
thread count, and one thread is also the fastest for a model this small on a busy machine.
:func:`_process_state_kept` saves that global state before training and puts it back afterwards,
so a fine-tune leaves no trace on its caller.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers.utils import logging as hf_logging
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from runlock.demo.model import (
    BaseRecipe,
    LoraRecipe,
    TicketLM,
    add_lora,
    build_base,
    load_base,
    save_adapter,
    save_base,
    train_tokenizer,
)
from runlock.hashing import digest_file

_ENV_TOUCHED = ("CUDA_LAUNCH_BLOCKING", "CUBLAS_WORKSPACE_CONFIG", "ASCEND_LAUNCH_BLOCKING",
                "HCCL_DETERMINISTIC", "FLASH_ATTENTION_DETERMINISTIC")


@dataclass(frozen=True)
class Trained:
    """What one training stage produced: the saved model folder and how training went."""

    losses: tuple[tuple[int, float], ...]   # (global step, training loss), one per step
    eval_loss: float
    perplexity: float
    model_dir: Path
    weights_digest: str                      # sha256 of the folder's main .safetensors file
    seconds: float


@contextlib.contextmanager
def _process_state_kept(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch threads; afterwards put back the global RNGs,
    determinism switches, environment variables, thread count and progress-bar setting."""
    env = {k: os.environ.get(k) for k in _ENV_TOUCHED}
    py_state, np_state = random.getstate(), np.random.get_state()
    det, det_warn = torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    bars_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        torch.set_num_threads(threads_before)
        if bars_on:
            hf_logging.enable_progress_bar()
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.use_deterministic_algorithms(det, warn_only=det_warn)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def training_arguments(recipe: BaseRecipe | LoraRecipe, output_dir: str | Path) -> TrainingArguments:
    """CPU, single process, no reporters, every step logged, deterministic, no checkpoints."""
    return TrainingArguments(
        output_dir=str(output_dir), max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.batch_size, per_device_eval_batch_size=64,
        learning_rate=recipe.learning_rate, warmup_steps=recipe.warmup_steps,
        weight_decay=recipe.weight_decay, lr_scheduler_type="linear",
        seed=recipe.seed, data_seed=recipe.data_seed, full_determinism=True,
        use_cpu=True, dataloader_num_workers=0, report_to=[], logging_steps=1,
        save_strategy="no", eval_strategy="no", disable_tqdm=True, log_level="error",
    )


def _train(model: torch.nn.Module, args: TrainingArguments, train: TicketLM, evaluation: TicketLM,
           callbacks: Sequence[TrainerCallback]) -> tuple[Trainer, float]:
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                      callbacks=list(callbacks))
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return trainer, float(trainer.evaluate()["eval_loss"])


def _trained(trainer: Trainer, eval_loss: float, model_dir: Path, weights: str,
             started: float) -> Trained:
    losses = tuple((int(e["step"]), float(e["loss"])) for e in trainer.state.log_history
                   if "loss" in e)
    digest, _ = digest_file(model_dir / weights)
    return Trained(losses=losses, eval_loss=eval_loss, perplexity=math.exp(eval_loss),
                   model_dir=model_dir, weights_digest=digest,
                   seconds=time.perf_counter() - started)


def pretrain_base(recipe: BaseRecipe, train_texts: Sequence[str], eval_texts: Sequence[str],
                  output_dir: str | Path, *, callbacks: Sequence[TrainerCallback] = ()) -> Trained:
    """Train a tokenizer and a tiny GPT-2 from scratch; save both to ``output_dir/model``."""
    started, output_dir = time.perf_counter(), Path(output_dir)
    with _process_state_kept(recipe.torch_threads):
        tokenizer = train_tokenizer(train_texts, recipe.vocab_size)
        model = build_base(recipe, tokenizer)
        trainer, eval_loss = _train(
            model, training_arguments(recipe, output_dir / "trainer"),
            TicketLM(train_texts, tokenizer, recipe.seq_len),
            TicketLM(eval_texts, tokenizer, recipe.seq_len), callbacks)
        model_dir = save_base(model, tokenizer, output_dir / "model")
    return _trained(trainer, eval_loss, model_dir, "model.safetensors", started)


def fine_tune(recipe: LoraRecipe, base_dir: str | Path, train_texts: Sequence[str],
              eval_texts: Sequence[str], output_dir: str | Path, *, base_name: str = "tiny-gpt2",
              callbacks: Sequence[TrainerCallback] = ()) -> Trained:
    """Fit a LoRA adapter on the base model in ``base_dir``; save it to ``output_dir/adapter``,
    naming its base ``base_name`` (a location-free name, e.g. the base artifact's ref)."""
    started, output_dir = time.perf_counter(), Path(output_dir)
    with _process_state_kept(recipe.torch_threads):
        base, tokenizer = load_base(base_dir)
        model = add_lora(recipe, base)
        seq_len = base.config.n_positions
        trainer, eval_loss = _train(
            model, training_arguments(recipe, output_dir / "trainer"),
            TicketLM(train_texts, tokenizer, seq_len), TicketLM(eval_texts, tokenizer, seq_len),
            callbacks)
        model_dir = save_adapter(model, output_dir / "adapter", base_name=base_name)
    return _trained(trainer, eval_loss, model_dir, "adapter_model.safetensors", started)
