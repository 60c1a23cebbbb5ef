"""One LoRA fine-tune of the demo as a script, so that its run can be rerun from its lock::

    RUNLOCK_STORE=demo-out/.runlock python -m runlock.demo.finetune \\
        --split split:tickets-split@v1 --base art:sha256:… [--lr 0.005] [--seed 42] [--steps 60]

It opens the store (``RUNLOCK_STORE``, else the nearest ``.runlock``), starts a run that uses the
split and the base model artifact, fine-tunes the adapter exactly as :func:`train.fine_tune`
does, stores it as the artifact ``adapter`` and prints one line. The lock records this command
(``sys.argv[0]`` is this file), so ``runlock rerun RUN --in-place`` runs it again through
``runlock.cli.boot`` with the inputs rebuilt from the store: their folders come in
``RUNLOCK_INPUT_*`` (:func:`runlock.input_path`), and are built here from the store otherwise.

Only what decides the result is on the command line. The run name (``RUNLOCK_DEMO_RUN_NAME``,
default ``lora-r8``) and the output folder (``RUNLOCK_DEMO_OUT``, default a temporary one) come
from the environment, so two runs of one recipe have one recipe id. With ``RUNLOCK_DEMO_REPORT=1``
the script writes JSON lines instead: ``{"step": N}`` per optimizer step, then the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import enable_full_determinism

import runlock
from runlock import artifacts
from runlock.api import open_for_writing
from runlock.data.checkout import checkout
from runlock.demo.data import Ticket, read_tickets
from runlock.demo.model import LoraRecipe, format_ticket
from runlock.demo.train import fine_tune
from runlock.errors import InvalidInput, RunlockError
from runlock.integrations.hf import RunlockCallback
from runlock.store import Store

PROJECT = "support-bot"
DEFAULT_NAME = "lora-r8"
ENV_NAME, ENV_OUT, ENV_REPORT = "RUNLOCK_DEMO_RUN_NAME", "RUNLOCK_DEMO_OUT", "RUNLOCK_DEMO_REPORT"
VALIDATION_NAMES = ("validation", "val", "valid", "dev")


def validation_ids(split: Any) -> list[str]:
    """The record ids of the split's validation partition, whatever it is called."""
    names = [str(n) for n in getattr(split, "partitions", None) or VALIDATION_NAMES]
    for name in VALIDATION_NAMES:
        if name in names:
            return list(split.ids(name))
    raise InvalidInput(f"Split {split.ref} has no validation partition (it has {names}).")


def texts(tickets: dict[str, Ticket], ids: Sequence[str], *, label: bool) -> list[str]:
    return [format_ticket(tickets[i], label=label) for i in ids]


class _Report(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        _say({"step": state.global_step})


def _say(line: dict) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def _input(ref: str, build: Callable[[], Path]) -> Path:
    """The folder a rerun rebuilt for input ``ref``; outside a rerun, ``build()``."""
    found = runlock.input_path(ref, default="")
    return Path(found) if found else build()


def load_tickets(path: Path) -> dict[str, Ticket]:
    """The tickets of a JSONL file, or of the one ``.jsonl`` file in a folder, by id."""
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    if len(files) != 1:
        raise InvalidInput(f"The split's data in {path} should hold one .jsonl file; found {len(files)}.")
    return {t.id: t for t in read_tickets(files[0])}


def _deterministic_process(recipe: LoraRecipe) -> None:
    """Put this process in the state training runs in (what ``Trainer(full_determinism=True)``
    sets: determinism switches and environment variables; ``recipe.torch_threads`` threads)
    *before* the run starts. The lock then records one state from start to end, and a rerun,
    which restores the recorded knobs when its process starts, records the same lock."""
    torch.set_num_threads(recipe.torch_threads)
    enable_full_determinism(recipe.seed)


def parser() -> argparse.ArgumentParser:
    d = LoraRecipe()
    p = argparse.ArgumentParser(prog="python -m runlock.demo.finetune", description=__doc__.split("\n\n")[0])
    p.add_argument("--split", required=True, help="the ticket split, e.g. split:tickets-split@v1")
    p.add_argument("--base", required=True, help="the base model artifact, art:sha256:…")
    p.add_argument("--lr", type=float, default=d.learning_rate, help="learning rate")
    p.add_argument("--seed", type=int, default=d.seed, help="training seed")
    p.add_argument("--steps", type=int, default=d.max_steps, help="optimizer steps")
    return p


def run(store: Store, args: argparse.Namespace, work: Path, *, report: bool = False) -> dict:
    """Fine-tune as ``args`` say, under a new run; return what it made."""
    split = runlock.load_split(args.split, store)
    base = artifacts.find(store, args.base)
    recipe = LoraRecipe(learning_rate=args.lr, seed=args.seed, max_steps=args.steps)
    split_dir = _input(split.ref, lambda: Path(checkout(store, split.snapshot_id, work / "split" / "data").dest).parent)
    base_dir = _input(base.ref, lambda: artifacts.materialize(store, base, work / "base" / base.name))
    by_id = load_tickets(split_dir / "data")
    train, val = texts(by_id, split.ids("train"), label=True), texts(by_id, validation_ids(split), label=True)
    out = Path(os.environ.get(ENV_OUT) or work / "out")
    config = {**recipe.to_config(), "base_model": base.digest}
    _deterministic_process(recipe)
    with runlock.start_run(project=PROJECT, name=os.environ.get(ENV_NAME) or DEFAULT_NAME,
                           config=config, seed=recipe.seed, store=store) as active:
        active.use(split)
        active.use(base)
        callbacks = [RunlockCallback(store=store), *([_Report()] if report else [])]
        trained = fine_tune(recipe, base_dir, train, val, out, base_name=base.digest, callbacks=callbacks)
        art = active.log_artifact(trained.model_dir, name="adapter", kind="model")
        active.set_summary({"eval/loss": trained.eval_loss, "eval/perplexity": trained.perplexity,
                            "adapter_sha256": trained.weights_digest})
        active.flush()
    return {"run": active.id, "recipe_id": active.recipe_id, "adapter": art.digest,
            "weights_sha256": trained.weights_digest, "eval_loss": trained.eval_loss,
            "perplexity": trained.perplexity, "seconds": trained.seconds}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    report = os.environ.get(ENV_REPORT) == "1"
    try:
        store = open_for_writing()
        try:
            with tempfile.TemporaryDirectory(prefix="runlock-demo-") as work:
                result = run(store, args, Path(work), report=report)
        finally:
            store.close()
    except RunlockError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if report:
        _say(result)
    else:
        print(f"run {result['run']}: eval loss {result['eval_loss']:.6f}, adapter {result['weights_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
