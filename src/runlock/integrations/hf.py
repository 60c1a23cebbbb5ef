"""Hugging Face ``transformers.Trainer`` integration: one callback, and every run is recorded.

    trainer = Trainer(..., callbacks=[RunlockCallback(project="support-bot", name="lora-r8")])
    trainer.train()

On train begin the callback joins the active run (``runlock.current_run()``: a ``with
runlock.start_run(...)`` block around ``trainer.train()``, or a process started by ``runlock
run``) or starts its own. It records the ``TrainingArguments`` in the run's config under
``"training_args"`` (made JSON-safe, without the keys that only say *where* files go, so a rerun
elsewhere keeps its recipe id) and the seed and data seed; then it logs every scalar the Trainer
logs at ``step=state.global_step``, stores each checkpoint folder as an artifact
(``kind="checkpoint"``), and on train end saves and stores the final model (``kind="model"``) when
given ``model_dir``. A run the callback started is finished on train end; a joined run is only
flushed, and its owner ends it (evaluations after ``train()`` are logged to it too).

When the Trainer resumes from a checkpoint (``trainer.train(resume_from_checkpoint=...)``: the
state it starts from is past step 0), the run is linked to the run that logged that checkpoint
(``runlock.tracking.resume``: a ``resumes`` edge naming the checkpoint artifact, which becomes an
input of the run), and its steps continue the original's. The Trainer restores the RNG state
itself. Its ``train_loss`` covers only the steps of one ``train()`` call; in a resumed run the
callback logs it for the whole training instead (the losses logged before the checkpoint, as
its ``trainer_state.json`` holds them, then this call's), so a crashed and resumed training ends with
the uninterrupted one's value (bit for bit when every step's loss is logged).

Trainer has no hook for an exception inside ``train()``: a run the callback started stays
``running`` if training crashes. Wrap ``trainer.train()`` in ``with runlock.start_run(...)`` when
a crash must mark the run ``failed``.
"""

from __future__ import annotations

import enum
import math
import numbers
import os
from pathlib import Path, PurePath
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from runlock.api import current_run, start_run
from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.tracking.resume import continue_run
from runlock.tracking.run import Run

# TrainingArguments keys that name locations or labels, not anything that changes the result.
LOCATION_KEYS = frozenset({"output_dir", "logging_dir", "run_name"})
CONFIG_KEY = "training_args"


def json_safe(value: Any) -> Any:
    """A plain-JSON copy of ``value``: enums by value, paths as strings, non-finite floats as
    ``"nan"`` / ``"inf"`` / ``"-inf"``, anything else as ``str()`` of it."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [json_safe(v) for v in items]
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def training_config(args: TrainingArguments) -> dict[str, Any]:
    """``args.to_dict()`` made JSON-safe, without :data:`LOCATION_KEYS`."""
    return {k: v for k, v in json_safe(args.to_dict()).items() if k not in LOCATION_KEYS}


WALL_CLOCK = ("_runtime", "_per_second")  # train_runtime, eval_samples_per_second, ...


def scalar_metrics(logs: dict[str, Any] | None) -> dict[str, float]:
    """The entries of a Trainer log that are one real number (bools, strings, lists dropped).
    The Trainer's wall-clock timings are dropped too: they are not results, and they would keep
    every rerun of the same recipe from comparing bitwise."""
    out: dict[str, float] = {}
    for key, value in (logs or {}).items():
        if isinstance(value, bool) or not isinstance(key, str) or key.endswith(WALL_CLOCK):
            continue
        if isinstance(value, numbers.Real):
            out[key] = float(value)
        elif callable(getattr(value, "item", None)) and tuple(getattr(value, "shape", (1,))) == ():
            item = value.item()
            if isinstance(item, numbers.Real) and not isinstance(item, bool):
                out[key] = float(item)
    return out


class RunlockCallback(TrainerCallback):
    """Record a ``Trainer`` run in runlock (see the module docstring)."""

    def __init__(self, project: str = "default", name: str | None = None, *,
                 store: Store | str | Path | None = None, model_dir: str | Path | None = None,
                 model_name: str = "model", log_checkpoints: bool = True,
                 record_config: bool = True, tags: dict | None = None) -> None:
        self.project = project
        self.name = name
        self.store = store
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.model_name = model_name
        self.log_checkpoints = log_checkpoints
        self.record_config = record_config
        self.tags = tags
        self.run: Run | None = None
        self.owns_run = False
        self._losses: _LossTotal | None = None   # set in a resumed run

    # -- lifecycle ---------------------------------------------------------------------------
    def on_train_begin(self, args: TrainingArguments, state: TrainerState,
                       control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero or self.run is not None:
            return
        config = training_config(args) if self.record_config else None
        active = current_run()
        if active is None:
            self.run = start_run(self.project, self.name,
                                 config={CONFIG_KEY: config} if config else None,
                                 seed=args.seed, tags=self.tags, store=self.store)
            self.owns_run = True
        else:
            self.run = active
            if config is not None:
                _merge_config(active, config)
        _record_seeding(self.run, args)
        if state.global_step > 0:
            self._resumed(args, state)

    def _resumed(self, args: TrainingArguments, state: TrainerState) -> None:
        """The Trainer loaded a checkpoint: link the run to the one that logged it."""
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if folder.is_dir():
            continue_run(getattr(self.run, "store", None), self.run, folder, state.global_step)  # None: a server's
        else:
            self.run.continue_from(state.global_step)
        self._losses = _LossTotal(state.log_history, state.global_step)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        values = scalar_metrics(logs)
        if self._losses is not None:
            values = self._losses.whole_training(values, state.global_step)
        if self.run is not None and values:
            self.run.log(values, step=state.global_step)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        if self.run is None or not self.log_checkpoints:
            return
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if folder.is_dir():
            self.run.log_artifact(folder, name=folder.name, kind="checkpoint",
                                  metadata={"step": state.global_step})

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     model: Any = None, processing_class: Any = None, **kwargs: Any) -> None:
        run = self.run
        if run is None:
            return
        # A joined run stays: its owner ends it, and what the script evaluates after train()
        # (trainer.evaluate(test_set, metric_key_prefix="test")) is logged to it too.
        self.run = None if self.owns_run else run
        if self.model_dir is not None and model is not None:
            model.save_pretrained(self.model_dir)
            if processing_class is not None and hasattr(processing_class, "save_pretrained"):
                processing_class.save_pretrained(self.model_dir)
            run.log_artifact(self.model_dir, name=self.model_name, kind="model",
                             metadata={"step": state.global_step})
        if self.owns_run:
            run.finish("finished")
        else:
            run.flush()
        self.owns_run = False
        self._losses = None


class _LossTotal:
    """The Trainer's ``train_loss`` for a whole training that was resumed: the sum, in logging
    order, of each logging interval's loss (logged mean x interval length), over the steps logged
    before the checkpoint and in this call, divided by the last step. That is how the Trainer
    computes it for an uninterrupted run; it is exact when every step is logged (or every 2**k)."""

    def __init__(self, history: list[dict], step: int) -> None:
        self.total, self.last = 0.0, 0
        for entry in history:
            if "loss" in entry and isinstance(entry.get("step"), int) and entry["step"] <= step:
                self._add(float(entry["loss"]), entry["step"])

    def _add(self, loss: float, step: int) -> None:
        self.total += loss * (step - self.last)
        self.last = step

    def whole_training(self, values: dict[str, float], step: int) -> dict[str, float]:
        if "loss" in values and "train_loss" not in values:
            self._add(values["loss"], step)
        elif "train_loss" in values and self.last == step and step > 0:
            values = {**values, "train_loss": self.total / step}
        return values


def _merge_config(run: Run, training_args: dict[str, Any]) -> None:
    existing = run.lock.get("config")
    if existing in (None, {}):
        run.record_config({CONFIG_KEY: training_args})
    elif isinstance(existing, dict):
        if existing.get(CONFIG_KEY) != training_args:
            run.record_config({**existing, CONFIG_KEY: training_args})
    else:
        raise InvalidInput(
            f"The active run's config is a {type(existing).__name__}, so the TrainingArguments "
            "cannot be added to it.",
            hint="Start the run with a dict config, or pass RunlockCallback(record_config=False).")


def _record_seeding(run: Run, args: TrainingArguments) -> None:
    """The Trainer seeds Python, NumPy and torch itself (``set_seed`` or, with
    ``full_determinism``, ``enable_full_determinism``): say so in the lock unless the script
    already recorded its own seeding, and declare the knobs that shape the batches."""
    lock = run.lock
    if lock.get("seeding") is None:
        run.record_seeding({"by": "transformers.Trainer", "seed": args.seed,
                            "data_seed": args.data_seed,
                            "full_determinism": bool(args.full_determinism)},
                           seed=args.seed if lock.get("seed") is None else None)
    declared = dict((lock.get("knobs") or {}).get("declared") or {})
    declared.update(data_seed=args.data_seed, full_determinism=bool(args.full_determinism),
                    batch_size=args.per_device_train_batch_size,
                    grad_accum=args.gradient_accumulation_steps,
                    num_workers=args.dataloader_num_workers,
                    world_size=int(os.environ.get("WORLD_SIZE", "1")))
    run.record_knobs(**declared)
