"""``run_demo(workdir)``: the whole runlock story on a laptop CPU in about a minute.

1. ``runlock.init`` a store in ``workdir``; generate 1,000 support tickets as JSONL.
2. Snapshot them (``ds:tickets@v1``) and split them 80/10/10 (``split:tickets-split@v1``).
3. Pre-train a tiny GPT-2 on the training partition (run ``base-lm``) and store it as an artifact.
4. Fine-tune a LoRA adapter on it twice with the same recipe (runs ``lora-r8`` and
   ``lora-r8-repeat``), each in its own process through ``python -m runlock.demo.finetune``, so
   each run's lock records a command ``runlock rerun`` can replay; each run uses the split and
   the base model, logs every step, stores its adapter and evaluates on the validation partition.
5. Show that both runs have the same recipe id, the same stored loss curve and the same adapter
   bytes, and say where to look next.

This module is the demo's surface, so it prints, through the rich console it is given.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from transformers import TrainerCallback

import runlock
from runlock.demo import finetune
from runlock.demo.data import TicketFile, generate_tickets, write_tickets
from runlock.demo.model import BaseRecipe, LoraRecipe
from runlock.integrations.hf import RunlockCallback
from runlock.lineage.entities import view
from runlock.lineage.export import to_png
from runlock.tracking.plot import plot_metrics
from runlock.demo.train import Trained, pretrain_base
from runlock.errors import RunlockError
from runlock.store import Store
from runlock.tracking.diff import metric_series

PROJECT = finetune.PROJECT
RUN_NAMES = (finetune.DEFAULT_NAME, "lora-r8-repeat")
N_TICKETS = 1000
DATA_SEED = 0
SPLIT_SEED = 42


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
    phases: tuple[tuple[str, float], ...] = ()   # (phase, seconds) in the order they ran

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


def make_data(store: Store, workdir: Path, n: int = N_TICKETS) -> tuple[TicketFile, Any, Any]:
    """Write ``n`` tickets to ``workdir/data/tickets.jsonl``; snapshot (``ds:tickets``) and split
    them (``split:tickets-split``). Returns the file, the snapshot and the split."""
    data = write_tickets(workdir / "data" / "tickets.jsonl", generate_tickets(n, seed=DATA_SEED))
    snap = runlock.snapshot(data.path, name="tickets", id_column="id", store=store)
    split = runlock.split(snap, name="tickets-split", ratios=(0.8, 0.1, 0.1), seed=SPLIT_SEED,
                          store=store)
    return data, snap, split


def pretrain(store: Store, split: Any, data: Path, workdir: Path, recipe: BaseRecipe = BaseRecipe(),
             callbacks: Sequence[Any] = ()) -> tuple[str, Any, Trained]:
    """Run ``base-lm``: pre-train the base model on the split's training texts from the JSONL
    file ``data``; store it as an artifact. Returns the run id, the artifact and the result."""
    by_id = finetune.load_tickets(data)
    train = finetune.texts(by_id, split.ids("train"), label=False)
    val = finetune.texts(by_id, finetune.validation_ids(split), label=False)
    with runlock.start_run(project=PROJECT, name="base-lm", config=recipe.to_config(),
                           seed=recipe.seed, store=store) as run:
        run.use(split)
        trained = pretrain_base(recipe, train, val, workdir / "out" / "base-lm",
                                callbacks=[RunlockCallback(store=store), *callbacks])
        art = run.log_artifact(trained.model_dir, name="base-lm", kind="model")
        run.set_summary({"eval/loss": trained.eval_loss, "eval/perplexity": trained.perplexity})
        return run.id, art, trained


def run_finetune(store: Store, workdir: Path, name: str, split_ref: str, base_ref: str,
                 args: Sequence[str] = (), on_step: Callable[[int], None] | None = None) -> DemoRun:
    """Run ``python -m runlock.demo.finetune --split SPLIT --base BASE ARGS`` in ``workdir`` as
    run ``name`` in a fresh process (its output folder ``workdir/out/NAME``)."""
    # the demo records in its own new store, also where RUNLOCK_SERVER names a team server
    env = {k: v for k, v in os.environ.items() if k not in ("RUNLOCK_RUN_ID", "RUNLOCK_SERVER")}
    env.update({"RUNLOCK_STORE": str(store.root), finetune.ENV_NAME: name, finetune.ENV_REPORT: "1",
                finetune.ENV_OUT: str(workdir / "out" / name)})
    cmd = [sys.executable, "-m", "runlock.demo.finetune", "--split", split_ref, "--base", base_ref, *args]
    lines: list[dict] = []
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
        for line in proc.stdout or ():
            if line.startswith("{"):
                lines.append(json.loads(line))
                if on_step and "step" in lines[-1]:
                    on_step(lines[-1]["step"])
        rc = proc.wait()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace").strip()
    if rc != 0 or not lines or "run" not in lines[-1]:
        raise RunlockError(f"The fine-tune {name} failed (exit status {rc}): {stderr[-2000:] or 'no output'}",
                           hint=f"Run it by hand to see everything: {' '.join(cmd)}")
    made = lines[-1]
    stored = metric_series(store, made["run"], "loss").get("loss", [])
    return DemoRun(id=made["run"], name=name, recipe_id=made["recipe_id"], adapter_digest=made["adapter"],
                   weights_sha256=made["weights_sha256"],
                   losses=tuple((int(s), float(v)) for s, v in stored),
                   eval_loss=made["eval_loss"], perplexity=made["perplexity"], seconds=made["seconds"])


def run_demo(workdir: Path, console: Console | None = None) -> DemoResult:
    """Run the demo in ``workdir`` (created if missing) and show it on ``console``."""
    started = time.perf_counter()
    phases: list[tuple[str, float]] = []

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        phases.append((name, now - since))
        return now

    console = console or Console()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]runlock demo[/]: a LoRA fine-tune, run twice, proven identical")
    store = runlock.init(workdir)
    console.print(f"Store: [cyan]{workdir / '.runlock'}[/]")

    t = time.perf_counter()
    with console.status("Generating tickets, snapshot and split…"):
        data, snap, split = make_data(store, workdir)
    console.print(f"Dataset: {data.count} tickets ({data.exact_duplicates} exact and "
                  f"{data.near_duplicates} near duplicates) -> [cyan]{snap.ref}[/] -> "
                  f"[cyan]{split.ref}[/]")
    t = lap("data", t)
    base_recipe = BaseRecipe()
    with _step_bar(console, "pre-train base-lm", base_recipe.max_steps) as bar:
        base_id, base_art, base = pretrain(store, split, data.path, workdir, base_recipe, [bar])
    console.print(f"Base model: run [cyan]{base_id}[/], eval loss {base.eval_loss:.3f}, "
                  f"stored as [cyan]{base_art.ref[:19]}…[/]")
    t = lap("base model", t)
    runs = []
    for name in RUN_NAMES:
        with _step_bar(console, f"fine-tune {name}", LoraRecipe().max_steps) as bar:
            runs.append(run_finetune(store, workdir, name, split.ref, base_art.ref,
                                     on_step=lambda step, bar=bar: bar.progress.update(bar.task, completed=step)))
        t = lap(name, t)
    _pictures(console, store, workdir, runs)
    lap("pictures", t)
    result = DemoResult(workdir=workdir, dataset=data.path, snapshot_ref=snap.ref,
                        split_ref=split.ref, base_run_id=base_id, base_digest=base_art.digest,
                        runs=(runs[0], runs[1]), seconds=time.perf_counter() - started, phases=tuple(phases))
    _show(console, result)
    return result


def _pictures(console: Console, store: Store, workdir: Path, runs: list[DemoRun]) -> None:
    """The two loss curves and the lineage of the first run, as PNG files beside the store."""
    try:
        plotted = plot_metrics(store, [r.id for r in runs], ["loss"], workdir / "loss.png",
                               title="LoRA fine-tune, same recipe twice")
        gap = plotted.curves[-1].max_abs_diff
        console.print(f"Loss curves: [cyan]{workdir / 'loss.png'}[/] (max |difference| between the runs: {gap:.3g})")
    except RunlockError as e:
        console.print(f"[yellow]No loss plot:[/] {escape(str(e))}")
    try:
        (workdir / "lineage.png").write_bytes(to_png(view(store, f"art:{runs[0].adapter_digest}", "upstream", 10)))
        how = "Graphviz" if shutil.which("dot") else "matplotlib; install Graphviz for a finer layout"
        console.print(f"Lineage (data -> split -> base model -> adapter): [cyan]{workdir / 'lineage.png'}[/] "
                      f"(drawn with {how})")
    except RunlockError as e:
        console.print(f"[yellow]No lineage picture:[/] {escape(str(e))}")


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
    console.print(f"Look around: cd {result.workdir}, then")
    for line in (f"runlock runs list --project {PROJECT}", f"runlock runs diff {a.id} {b.id}",
                 f"runlock verify {a.id} --in-place", "runlock fsck"):
        console.print(f"  [bold]{escape(line)}[/]")
    console.print("Next, with your own script (in its git repository):")
    for line in ("runlock init", "runlock run -p my-project -- python train.py",
                 "runlock check RUN   # then: runlock verify RUN"):
        console.print(f"  [bold]{escape(line)}[/]")
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.phases)
    console.print(f"Demo finished in {result.seconds:.1f} s ({parts}).")
