"""Rerunning a recorded run from its lock, as a new run linked to the original.

``plan_rerun`` reads the lock and decides everything without touching anything: the command,
the environment variables to restore, the inputs to rebuild, and how today's environment differs
from the recorded one (so a person knows whether to expect bitwise or only statistical equality).
``prepared`` checks out the code and rebuilds the inputs into a temporary folder; ``launch``
starts the command there; ``rerun`` does all three and records the ``reproduces`` edge.

The command is ``lock["entrypoint"]["argv"]``. A script that called ``start_run`` recorded its
own ``sys.argv`` (``["train.py", "--lr", "0.1"]``) and runs again under this interpreter; a
command ``runlock run`` wrapped (``["python", "train.py"]``) runs again under a new wrapper.
Either way it starts through ``runlock.cli.boot``, which restores torch threads and
determinism flags, with the recorded result-affecting environment variables (hash seed, thread
counts, CUBLAS workspace...) set or unset exactly as recorded, and with:

    RUNLOCK_STORE        this store          RUNLOCK_REPRODUCES   the original run id
    RUNLOCK_SEED         the recorded seed   RUNLOCK_INPUT_*      the rebuilt inputs (see inputs.py)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from runlock import audit, lineage
from runlock.errors import RunlockError
from runlock.store import Store
from runlock.store.schema import runs, utcnow
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.verify import inputs as inputs_mod
from runlock.verify import workdir
from runlock.verify.envlock import EnvDiff, env_diff

Progress = Callable[[int, int, str], None]   # (done, total, description)

ENV_REPRODUCES = "RUNLOCK_REPRODUCES"
ENV_REPLAY = "RUNLOCK_REPLAY"  # the recorded knobs, for runlock.cli.boot
ENV_SEED = "RUNLOCK_SEED"
_NOT_REPLAYABLE = ("", "-c", "-m", "-")


@dataclass(frozen=True)
class RerunPlan:
    run_id: str
    project: str
    name: str
    recipe_id: str
    argv: list[str]
    style: str                     # "script" (called start_run) or "wrapper" (runlock run -- CMD)
    isolated: bool
    seed: int | None
    env_set: dict[str, str]
    env_unset: list[str]
    knobs: dict
    inputs: list[dict]
    lock: dict = field(repr=False)
    drift: EnvDiff | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__ if f not in ("lock", "drift", "knobs")}
        return {**d, "drift": self.drift.to_dict() if self.drift else None}


@dataclass(frozen=True)
class Rerun:
    original: str
    run_id: str
    status: str
    returncode: int
    plan: RerunPlan

    def to_dict(self) -> dict:
        return {"original": self.original, "run": self.run_id, "status": self.status,
                "returncode": self.returncode, "plan": self.plan.to_dict()}


@dataclass(frozen=True)
class Prepared:
    code: workdir.CodeCheckout
    env: dict[str, str]
    folder: Path
    placed: list[inputs_mod.Placed] = field(default_factory=list)


def plan_rerun(store: Store, run: str, *, isolated: bool = True) -> RerunPlan:
    """Everything a rerun of ``run`` will do, decided from its lock; nothing is changed."""
    rec = records.get(store, run)
    audit.require_sealed(store, f"run:{rec.id}")    # a run edited since its seal is not rerun
    if not rec.recipe_id:
        raise RunlockError(f"Run {rec.id} has no lock, so there is nothing to rerun it from.",
                           hint="Only runs started with runlock.start_run or `runlock run` can be rerun.")
    lock = locks.load(store, rec.recipe_id)
    audit.require_sealed(store, *[str(i["ref"]) for i in lock.get("inputs") or []
                                  if str(i.get("ref", "")).startswith(("ds:", "split:", "model:"))])
    argv = list((lock.get("entrypoint") or {}).get("argv") or [])
    if not argv or argv[0] in _NOT_REPLAYABLE or "ipykernel" in argv[0]:
        raise RunlockError(f"Run {rec.id} was not started from a command runlock can replay "
                           f"(recorded argv {argv}): it ran interactively or inside another program.",
                           hint="Start the training as a script (`python train.py` or `runlock run -- ...`).")
    # The environment as it was when the run started wins over the knobs: knobs may have been
    # recorded again later, after the script itself changed a variable (the HF Trainer sets
    # CUBLAS_WORKSPACE_CONFIG), and the rerun's script will make that change again itself.
    recorded = {**((lock.get("knobs") or {}).get("env") or {}), **((lock.get("environment") or {}).get("env") or {})}
    notes = []
    if rec.status == "running":
        notes.append("The run is still running; its lock may still change.")
    if rec.context.get("untracked_count"):
        notes.append(f"The run had {rec.context['untracked_count']} untracked file(s) in its work tree; they "
                     "are not part of the recipe and the rerun does not see them.")
    inputs = list(lock.get("inputs") or [])
    at = [f"{i['path']} ({i.get('ref') or i['node']})" for i in inputs if i.get("path")]
    if at:
        notes.append("Inputs are rebuilt where the run found them, in the work tree: " + ", ".join(at) + ".")
    if len(at) < len(inputs):
        notes.append(f"{len(inputs) - len(at)} input(s) recorded no path in the project; the script finds "
                     "them with runlock.input_path().")
    if isolated:
        workdir.recorded_git(lock, rec.id)
    return RerunPlan(
        run_id=rec.id, project=rec.project, name=rec.name, recipe_id=rec.recipe_id, argv=argv,
        style=(lock.get("entrypoint") or {}).get("kind") or ("script" if argv[0].endswith(".py") else "wrapper"),
        isolated=isolated, seed=lock.get("seed"),
        env_set={k: v for k, v in sorted(recorded.items()) if v is not None},
        env_unset=sorted(k for k, v in recorded.items() if v is None),
        knobs=lock.get("knobs") or {}, inputs=inputs, lock=lock,
        drift=env_diff(store, rec.id), notes=notes)


@contextmanager
def prepared(store: Store, plan: RerunPlan, *, repo: str | Path | None = None,
             keep: bool = False, progress: Progress | None = None) -> Iterator[Prepared]:
    """Check out the code and rebuild the inputs in a temporary folder; remove both after.
    ``progress(done, total, description)`` follows the steps; it reaches ``total`` just before
    the body runs (the command's own output follows)."""
    folder = Path(tempfile.mkdtemp(prefix="runlock-rerun-"))
    here = Path.cwd()
    code = None
    steps = len(plan.inputs) + 1
    tick = progress or (lambda done, total, description: None)
    try:
        tick(0, steps, "checking out the recorded code")
        if plan.isolated:
            repo_path = Path(repo).resolve() if repo else _recorded_repo(store, plan) or workdir.find_repo(here)
            if repo_path is None:
                raise RunlockError(f"No git repository here ({here}) to check the code of run {plan.run_id} out of.",
                                   hint="Run this inside the project's repository, or pass --repo PATH.")
            code = workdir.isolated(store, plan.lock, plan.run_id, repo_path, folder / "code")
        else:
            code = workdir.in_place(plan.lock, plan.run_id, workdir.find_repo(here), here)
        placed = inputs_mod.place(store, plan.inputs, code.root, replace=code.isolated)
        _, env = inputs_mod.materialize(store, plan.inputs, folder / "inputs",
                                        on_progress=lambda n, _, ref: tick(1 + n, steps, f"rebuilding {ref}"))
        tick(steps, steps, "running the recorded command")
        yield Prepared(code, env, folder, placed)
    finally:
        if code is not None and not keep:
            workdir.remove(code)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def launch(store: Store, plan: RerunPlan, prep: Prepared, *, argv: list[str] | None = None,
           seed: int | None = None) -> Rerun:
    """Start the recorded command (or ``argv``, with ``seed`` instead of the recorded one) in the
    prepared folder; return the run it made."""
    argv = list(argv or plan.argv)
    seed = plan.seed if seed is None else seed
    if plan.style == "script":
        cmd = [sys.executable, "-m", "runlock.cli.boot", *argv]
    else:
        spec = json.dumps({"project": plan.project, "name": plan.name, "seed": seed})
        cmd = [sys.executable, "-m", "runlock.cli.boot", "--wrap", spec, "--", *argv]
    started = utcnow()
    try:
        proc = subprocess.Popen(cmd, cwd=prep.code.cwd, env=child_env(store, plan, prep, seed), stdout=_stdout())
    except OSError as e:
        raise RunlockError(f"Could not start the rerun of run {plan.run_id}: {e.strerror}.") from None
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait()
    made = _runs_started_by(store, proc.pid, started)
    if not made:
        raise RunlockError(f"The rerun of run {plan.run_id} exited with status {rc} without starting a run.",
                           hint="Check its output above; the script must call runlock.start_run.")
    if made[0].status == "running":
        records.reap_crashed(store)
    new = records.get(store, made[0].id)
    return Rerun(plan.run_id, new.id, new.status, rc, plan)


def rerun(store: Store, run: str, *, isolated: bool = True, repo: str | Path | None = None,
          keep: bool = False, plan: RerunPlan | None = None, progress: Progress | None = None) -> Rerun:
    """Rerun ``run`` from its lock as a new run with a ``reproduces`` edge to it
    (``progress(done, total, description)``: the preparation, see ``prepared``)."""
    plan = plan or plan_rerun(store, run, isolated=isolated)
    with prepared(store, plan, repo=repo, keep=keep, progress=progress) as prep:
        result = launch(store, plan, prep)
    link(store, result.run_id, plan.run_id)
    return result


def link(store: Store, new: str, original: str) -> None:
    def write(conn: sa.Connection) -> None:
        if lineage.record_edge(conn, "reproduces", f"run:{new}", f"run:{original}"):
            audit.append(conn, store.actor, "run.reproduce", f"run:{new}", details={"of": f"run:{original}"})

    store.db.run_write(write)


def child_env(store: Store, plan: RerunPlan, prep: Prepared, seed: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in plan.env_unset and k not in ("RUNLOCK_RUN_ID", "RUNLOCK_RANK")}
    env.update(plan.env_set)
    env.update({"RUNLOCK_STORE": str(store.root), ENV_REPRODUCES: plan.run_id,
                ENV_REPLAY: json.dumps({"torch": plan.knobs.get("torch"), "threads": plan.knobs.get("threads")})})
    if seed is not None:
        env[ENV_SEED] = str(seed)
    src = prep.code.root / "src"
    if prep.code.isolated and src.is_dir():  # a src-layout project installed editable: use the checked-out copy
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH")) if p)
    env.update(prep.env)
    return env


def _runs_started_by(store: Store, pid: int, since: str) -> list[records.RunRecord]:
    q = sa.select(runs.c.id).where(runs.c.pid == pid, runs.c.host == socket.gethostname(),
                                   runs.c.started_at >= since).order_by(runs.c.started_at)
    with store.db.read() as conn:
        ids = [r.id for r in conn.execute(q)]
    return [records.get(store, i) for i in ids]


def _recorded_repo(store: Store, plan: RerunPlan) -> Path | None:
    """The repository the run ran in, else the store's own (where an imported bundle's code is)."""
    cwd = records.get(store, plan.run_id).context.get("cwd")
    found = workdir.find_repo(Path(cwd)) if cwd and Path(cwd).is_dir() else None
    return found or workdir.store_repo(store, ((plan.lock.get("code") or {}).get("git") or {}).get("commit"))


def _stdout() -> int | None:
    """The rerun's output goes to stderr, so stdout stays clean for runlock's own result."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
