"""``run_demo(workdir)``: the whole runlock story on a laptop CPU in about a minute.

1. ``runlock.init`` a store in ``workdir``; generate 1,000 support tickets as JSONL.
2. Snapshot them (``ds:tickets@v1``) and split them 80/10/10 (``split:tickets-split@v1``).
3. Pre-train a tiny GPT-2 on the training partition (run ``base-lm``) and store it as an artifact.
4. Fine-tune a LoRA adapter on it twice with the same recipe (runs ``lora-r8`` and
   ``lora-r8-repeat``); each run uses the split and the base model, logs every step through the
   ``RunlockCallback``, stores its adapter and evaluates on the validation partition.
5. Show that both runs have the same recipe id, the same stored loss curve and the same adapter
   bytes, and say where to look next.

This module is the demo's surface, so it prints, through the rich console it is given.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from transformers import TrainerCallback

import runlock
from runlock.demo.data import Ticket, generate_tickets, write_tickets
from runlock.demo.model import BaseRecipe, LoraRecipe, format_ticket
from runlock.demo.train import Trained, fine_tune, pretrain_base
from runlock.errors import InvalidInput
from runlock.integrations.hf import RunlockCallback
from runlock.store import Store
from runlock.tracking.diff import metric_series

PROJECT = "support-bot"
RUN_NAMES = ("lora-r8", "lora-r8-repeat")
N_TICKETS = 1000
DATA_SEED = 0
SPLIT_SEED = 42
VALIDATION_NAMES = ("validation", "val", "valid", "dev")


@dataclass(frozen=True)
class DemoRun:
    """One LoRA run of the demo, as the store recorded it."""

    id: str
    name: str
    recipe_id: str
    adapter_digest: str        # the stored artifact (whole adapter folder)
    weights_sha256: str        # adapter_model.safetensors alone
    losses: tuple[tuple[int, float], ...]
    eval_loss: float
    perplexity: float
    seconds: float


@dataclass(frozen=True)
class DemoResult:
    workdir: Path
    dataset: Path
    snapshot_ref: str
    split_ref: str
    base_run_id: str
    base_digest: str
    runs: tuple[DemoRun, DemoRun]
    seconds: float

    @property
    def reproduced(self) -> bool:
        """Same recipe id, same stored loss curve and same adapter bytes in both runs."""
        a, b = self.runs
        return (a.recipe_id == b.recipe_id and a.losses == b.losses
                and a.adapter_digest == b.adapter_digest and a.weights_sha256 == b.weights_sha256)


class _StepBar(TrainerCallback):
    """Advance a rich progress bar once per optimizer step."""

    def __init__(self, progress: Progress, task: Any) -> None:
        self.progress, self.task = progress, task

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.progress.update(self.task, completed=state.global_step)


@contextmanager
def _step_bar(console: Console, label: str, steps: int) -> Iterator[_StepBar]:
    with Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        yield _StepBar(progress, progress.add_task(label, total=steps))


def _validation_ids(split: Any) -> list[str]:
    names = [str(n) for n in getattr(split, "partitions", None) or VALIDATION_NAMES]
    for name in VALIDATION_NAMES:
        if name in names:
            return list(split.ids(name))
    raise InvalidInput(f"Split {split.ref} has no validation partition (it has {names}).")


def _texts(tickets: dict[str, Ticket], ids: Sequence[str], *, label: bool) -> list[str]:
    return [format_ticket(tickets[i], label=label) for i in ids]


def _base_run(store: Store, console: Console, split: Any, train: list[str], val: list[str],
              workdir: Path) -> tuple[str, Any, Trained]:
    recipe = BaseRecipe()
    with runlock.start_run(project=PROJECT, name="base-lm", config=recipe.to_config(),
                           seed=recipe.seed, store=store) as run:
        run.use(split)
        with _step_bar(console, "pre-train base-lm", recipe.max_steps) as bar:
            trained = pretrain_base(recipe, train, val, workdir / "out" / "base-lm",
                                    callbacks=[RunlockCallback(store=store), bar])
        art = run.log_artifact(trained.model_dir, name="base-lm", kind="model")
        run.set_summary({"eval/loss": trained.eval_loss, "eval/perplexity": trained.perplexity})
        return run.id, art, trained


def _lora_run(store: Store, console: Console, name: str, split: Any, base_art: Any,
              base_dir: Path, train: list[str], val: list[str], workdir: Path) -> DemoRun:
    recipe = LoraRecipe()
    config = {**recipe.to_config(), "base_model": base_art.digest}
    with runlock.start_run(project=PROJECT, name=name, config=config, seed=recipe.seed,
                           store=store) as run:
        run.use(split)
        run.use(base_art)
        with _step_bar(console, f"fine-tune {name}", recipe.max_steps) as bar:
            trained = fine_tune(recipe, base_dir, train, val, workdir / "out" / name,
                                base_name=base_art.digest,
                                callbacks=[RunlockCallback(store=store), bar])
        art = run.log_artifact(trained.model_dir, name="adapter", kind="model")
        run.set_summary({"eval/loss": trained.eval_loss, "eval/perplexity": trained.perplexity,
                         "adapter_sha256": trained.weights_digest})
        run.flush()
        run_id = run.id
    stored = metric_series(store, run_id, "loss").get("loss", [])
    return DemoRun(id=run_id, name=name, recipe_id=run.recipe_id, adapter_digest=art.digest,
                   weights_sha256=trained.weights_digest,
                   losses=tuple((int(s), float(v)) for s, v in stored),
                   eval_loss=trained.eval_loss, perplexity=trained.perplexity,
                   seconds=trained.seconds)


def run_demo(workdir: Path, console: Console | None = None) -> DemoResult:
    """Run the demo in ``workdir`` (created if missing) and show it on ``console``."""
    started = time.perf_counter()
    console = console or Console()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]runlock demo[/]: a LoRA fine-tune, run twice, proven identical")
    store = runlock.init(workdir)
    console.print(f"Store: [cyan]{workdir / '.runlock'}[/]")

    with console.status("Generating tickets, snapshot and split…"):
        tickets = generate_tickets(N_TICKETS, seed=DATA_SEED)
        data = write_tickets(workdir / "data" / "tickets.jsonl", tickets)
        snap = runlock.snapshot(data.path, name="tickets", id_column="id", store=store)
        split = runlock.split(snap, name="tickets-split", ratios=(0.8, 0.1, 0.1), seed=SPLIT_SEED,
                              store=store)
    console.print(f"Dataset: {data.count} tickets ({data.exact_duplicates} exact and "
                  f"{data.near_duplicates} near duplicates) -> [cyan]{snap.ref}[/] -> "
                  f"[cyan]{split.ref}[/]")
    by_id = {t.id: t for t in tickets}
    train_ids, val_ids = list(split.ids("train")), _validation_ids(split)

    base_id, base_art, base = _base_run(
        store, console, split, _texts(by_id, train_ids, label=False),
        _texts(by_id, val_ids, label=False), workdir)
    console.print(f"Base model: run [cyan]{base_id}[/], eval loss {base.eval_loss:.3f}, "
                  f"stored as [cyan]{base_art.ref[:19]}…[/]")
    train, val = _texts(by_id, train_ids, label=True), _texts(by_id, val_ids, label=True)
    runs = tuple(_lora_run(store, console, name, split, base_art, base.model_dir, train, val,
                           workdir) for name in RUN_NAMES)
    result = DemoResult(workdir=workdir, dataset=data.path, snapshot_ref=snap.ref,
                        split_ref=split.ref, base_run_id=base_id, base_digest=base_art.digest,
                        runs=runs, seconds=time.perf_counter() - started)
    _show(console, result)
    return result


def _short(value: str) -> str:
    return value if len(value) <= 20 else f"{value[:19]}…"


def _show(console: Console, result: DemoResult) -> None:
    a, b = result.runs
    table = Table(title="Same recipe, same result?", show_lines=False)
    table.add_column("")
    table.add_column(a.name)
    table.add_column(b.name)
    table.add_column("same")

    def row(label: str, x: str, y: str, same: bool | None) -> None:
        mark = "" if same is None else "[green]yes[/]" if same else "[red]NO[/]"
        table.add_row(label, x, y, mark)

    row("run", _short(a.id), _short(b.id), None)
    row("recipe id", _short(a.recipe_id), _short(b.recipe_id), a.recipe_id == b.recipe_id)
    row(f"loss ({len(a.losses)} steps)", f"{a.losses[0][1]:.4f} → {a.losses[-1][1]:.4f}",
        f"{b.losses[0][1]:.4f} → {b.losses[-1][1]:.4f}", a.losses == b.losses)
    row("eval loss", f"{a.eval_loss:.6f}", f"{b.eval_loss:.6f}", a.eval_loss == b.eval_loss)
    row("adapter artifact", _short(a.adapter_digest), _short(b.adapter_digest),
        a.adapter_digest == b.adapter_digest)
    row("weights sha256", _short(a.weights_sha256), _short(b.weights_sha256),
        a.weights_sha256 == b.weights_sha256)
    row("train time", f"{a.seconds:.1f} s", f"{b.seconds:.1f} s", None)
    console.print(table)
    if result.reproduced:
        console.print("[bold green]Reproduced:[/] the same recipe gave the same loss curve and "
                      "byte-identical adapter weights.")
    else:
        console.print("[bold red]Not reproduced:[/] see `runlock runs diff` below for what differs.")
    console.print(f"Done in {result.seconds:.1f} s. Look around: cd {result.workdir}, then")
    for line in (f"runlock runs list --project {PROJECT}", f"runlock runs show {a.id}",
                 f"runlock runs diff {a.id} {b.id}", "runlock fsck"):
        console.print(f"  [bold]{line}[/]")
