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
from typing import Any, Protocol

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


class Rerunner(Protocol):
    """Where a rerun's records are: a store here (``LocalRerunner``), or a team server
    (``runlock.remote.rerun.RemoteRerunner``). The rerun itself always runs here, where the code
    is; what it reads and what it records go through this."""

    where: str

    def plan(self, run: str, *, isolated: bool) -> RerunPlan: ...

    def record(self, run: str) -> records.RunRecord: ...

    def sources(self, plan: RerunPlan) -> list[inputs_mod.Source]: ...

    def build(self, sources: list[inputs_mod.Source], dest: Path,
              on_progress: Callable[[int, int, str], None]) -> dict[str, str]: ...

    def place(self, sources: list[inputs_mod.Source], root: Path, *, replace: bool) -> list[inputs_mod.Placed]: ...

    def patch(self, digest: str) -> bytes: ...

    def recorded_repo(self, plan: RerunPlan) -> Path | None: ...

    def launch(self, plan: RerunPlan, prep: Prepared, *, argv: list[str], seed: int | None) -> Rerun: ...

    def link(self, new: str, original: str) -> None: ...

    def verified(self, run: str, *, rerun_id: str | None = None, failure: dict | None = None,
                 rtol: float = 0.0, atol: float = 0.0, k: float = 0.0, rehearsal_id: str | None = None) -> Any: ...

    def spread(self, run: str, seeds: list[int], runs: list[str]) -> Any: ...


def rerunner(source: Store | Rerunner) -> Rerunner:
    return LocalRerunner(source) if isinstance(source, Store) else source


def plan_from(rec: records.RunRecord, lock: dict, *, isolated: bool, drift: EnvDiff | None) -> RerunPlan:
    """Everything a rerun of run ``rec`` will do, decided from its record and lock."""
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
        knobs=lock.get("knobs") or {}, inputs=inputs, lock=lock, drift=drift, notes=notes)


def sealed_recipe(store: Store, run: str) -> tuple[records.RunRecord, dict]:
    """The run and its lock, refused when either, or an input it names, changed since sealed."""
    rec = records.get(store, run)
    audit.require_sealed(store, f"run:{rec.id}")    # a run edited since its seal is not rerun
    if not rec.recipe_id:
        raise RunlockError(f"Run {rec.id} has no lock, so there is nothing to rerun it from.",
                           hint="Only runs started with runlock.start_run or `runlock run` can be rerun.")
    lock = locks.load(store, rec.recipe_id)
    audit.require_sealed(store, *[str(i["ref"]) for i in lock.get("inputs") or []
                                  if str(i.get("ref", "")).startswith(("ds:", "split:", "model:"))])
    return rec, lock


def incomplete(rec: records.RunRecord) -> dict | None:
    """Why no rerun can be compared with ``rec`` (it did not store every point it logged), or None."""
    if not (rec.context.get("lost_points") or rec.context.get("unflushed_writers")):
        return None
    return {"error": f"Run {rec.id} did not store every metric point it logged (lost_points "
                     f"{rec.context.get('lost_points') or 0}, {len(rec.context.get('unflushed_writers') or [])} "
                     "process(es) never reported); its series are incomplete, so no rerun can be compared with "
                     "it.", "hint": "Run it again and verify the new run.",
            "lost_points": rec.context.get("lost_points") or 0}


class LocalRerunner:
    """A rerun whose records are in ``store``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.where = str(store.root)

    def plan(self, run: str, *, isolated: bool) -> RerunPlan:
        rec, lock = sealed_recipe(self.store, run)
        return plan_from(rec, lock, isolated=isolated, drift=env_diff(self.store, rec.id))

    def record(self, run: str) -> records.RunRecord:
        return records.get(self.store, run)

    def sources(self, plan: RerunPlan) -> list[inputs_mod.Source]:
        return inputs_mod.resolve_sources(self.store, plan.inputs)

    def build(self, sources: list[inputs_mod.Source], dest: Path,
              on_progress: Callable[[int, int, str], None]) -> dict[str, str]:
        return inputs_mod.build_all(self.store, sources, dest, on_progress=on_progress,
                                    broken=lambda entry, e: inputs_mod._broken_snapshot(self.store, entry, e))[1]

    def place(self, sources: list[inputs_mod.Source], root: Path, *, replace: bool) -> list[inputs_mod.Placed]:
        return inputs_mod.place_all(self.store, sources, root, replace=replace)

    def patch(self, digest: str) -> bytes:
        return self.store.objects.get_bytes(digest)

    def recorded_repo(self, plan: RerunPlan) -> Path | None:
        """The repository the run ran in, else the store's own (where an imported bundle's code is)."""
        cwd = records.get(self.store, plan.run_id).context.get("cwd")
        found = workdir.find_repo(Path(cwd)) if cwd and Path(cwd).is_dir() else None
        return found or workdir.store_repo(self.store, ((plan.lock.get("code") or {}).get("git") or {}).get("commit"))

    def launch(self, plan: RerunPlan, prep: Prepared, *, argv: list[str], seed: int | None) -> Rerun:
        store = self.store
        if plan.style == "script":
            cmd = [sys.executable, "-m", "runlock.cli.boot", *argv]
        else:
            spec = json.dumps({"project": plan.project, "name": plan.name, "seed": seed})
            cmd = [sys.executable, "-m", "runlock.cli.boot", "--wrap", spec, "--", *argv]
        started = utcnow()
        env = child_env(plan, prep, seed, {"RUNLOCK_STORE": str(store.root)}, drop=("RUNLOCK_SERVER",))
        rc, pid = run_rerun(cmd, prep, env, plan.run_id)
        made = _runs_started_by(store, pid, started)
        if not made:
            raise RunlockError(f"The rerun of run {plan.run_id} exited with status {rc} without starting a run.",
                               hint="Check its output above; the script must call runlock.start_run.")
        if made[0].status == "running":
            records.reap_crashed(store)
        new = records.get(store, made[0].id)
        return Rerun(plan.run_id, new.id, new.status, rc, plan)

    def link(self, new: str, original: str) -> None:
        def write(conn: sa.Connection) -> None:
            if lineage.record_edge(conn, "reproduces", f"run:{new}", f"run:{original}"):
                audit.append(conn, self.store.actor, "run.reproduce", f"run:{new}", details={"of": f"run:{original}"})

        self.store.db.run_write(write)

    def verified(self, run: str, *, rerun_id: str | None = None, failure: dict | None = None,
                 rtol: float = 0.0, atol: float = 0.0, k: float = 0.0, rehearsal_id: str | None = None) -> Any:
        """Store the outcome of verifying ``run``: ``failure`` (``{"error", "hint"}``) when no
        rerun could be compared, else the comparison of ``rerun_id`` with it, made here."""
        from runlock.verify.compare import compare          # numpy: not for every rerun's boot
        from runlock.verify.records import FAILED, add_verification

        if failure is None:
            failure = incomplete(records.get(self.store, run))
        if failure is not None:
            return add_verification(self.store, run, "rerun", FAILED, failure, rerun_id=rerun_id,
                                    rehearsal_id=rehearsal_id)
        found = compare(self.store, run, rerun_id, rtol=rtol, atol=atol, k=k)
        return add_verification(self.store, run, "rerun", found.tier, found.to_dict(), rerun_id=rerun_id,
                                rehearsal_id=rehearsal_id)

    def spread(self, run: str, seeds: list[int], runs: list[str]) -> Any:
        from runlock.verify.records import add_spread
        from runlock.verify.spread import spread_stats

        return add_spread(self.store, run, seeds, runs, spread_stats(self.store, runs))


def plan_rerun(source: Store | Rerunner, run: str, *, isolated: bool = True) -> RerunPlan:
    """Everything a rerun of ``run`` will do, decided from its lock; nothing is changed."""
    return rerunner(source).plan(run, isolated=isolated)


@contextmanager
def prepared(source: Store | Rerunner, plan: RerunPlan, *, repo: str | Path | None = None,
             keep: bool = False, progress: Progress | None = None) -> Iterator[Prepared]:
    """Check out the code and rebuild the inputs in a temporary folder; remove both after.
    ``progress(done, total, description)`` follows the steps; it reaches ``total`` just before
    the body runs (the command's own output follows)."""
    backend = rerunner(source)
    folder = Path(tempfile.mkdtemp(prefix="runlock-rerun-"))
    here = Path.cwd()
    code = None
    steps = len(plan.inputs) + 1
    tick = progress or (lambda done, total, description: None)
    try:
        tick(0, steps, "checking out the recorded code")
        if plan.isolated:
            repo_path = Path(repo).resolve() if repo else backend.recorded_repo(plan) or workdir.find_repo(here)
            if repo_path is None:
                raise RunlockError(f"No git repository here ({here}) to check the code of run {plan.run_id} out of.",
                                   hint="Run this inside the project's repository, or pass --repo PATH.")
            code = workdir.isolated(backend.patch, plan.lock, plan.run_id, repo_path, folder / "code")
        else:
            code = workdir.in_place(plan.lock, plan.run_id, workdir.find_repo(here), here)
        sources = backend.sources(plan)
        placed = backend.place(sources, code.root, replace=code.isolated)
        env = backend.build(sources, folder / "inputs", lambda n, _, ref: tick(1 + n, steps, f"rebuilding {ref}"))
        tick(steps, steps, "running the recorded command")
        yield Prepared(code, env, folder, placed)
    finally:
        if code is not None and not keep:
            workdir.remove(code)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def launch(source: Store | Rerunner, plan: RerunPlan, prep: Prepared, *, argv: list[str] | None = None,
           seed: int | None = None) -> Rerun:
    """Start the recorded command (or ``argv``, with ``seed`` instead of the recorded one) in the
    prepared folder; return the run it made."""
    return rerunner(source).launch(plan, prep, argv=list(argv or plan.argv), seed=plan.seed if seed is None else seed)


def rerun(source: Store | Rerunner, run: str, *, isolated: bool = True, repo: str | Path | None = None,
          keep: bool = False, plan: RerunPlan | None = None, progress: Progress | None = None) -> Rerun:
    """Rerun ``run`` from its lock as a new run with a ``reproduces`` edge to it
    (``progress(done, total, description)``: the preparation, see ``prepared``)."""
    backend = rerunner(source)
    plan = plan or backend.plan(run, isolated=isolated)
    with prepared(backend, plan, repo=repo, keep=keep, progress=progress) as prep:
        result = backend.launch(plan, prep, argv=list(plan.argv), seed=plan.seed)
    backend.link(result.run_id, plan.run_id)
    return result


def run_rerun(cmd: list[str], prep: Prepared, env: dict[str, str], original: str) -> tuple[int, int]:
    """Start the rerun's process in the prepared folder and wait for it: ``(exit status, pid)``."""
    try:
        proc = subprocess.Popen(cmd, cwd=prep.code.cwd, env=env, stdout=_stdout())
    except OSError as e:
        raise RunlockError(f"Could not start the rerun of run {original}: {e.strerror}.") from None
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait()
    return rc, proc.pid


def child_env(plan: RerunPlan, prep: Prepared, seed: int | None, where: dict[str, str],
              drop: tuple[str, ...] = ()) -> dict[str, str]:
    """The rerun's environment: this one, with the recorded variables set or unset, ``where``
    (the store or server it records to) and the rebuilt inputs."""
    gone = {*plan.env_unset, *drop, "RUNLOCK_RUN_ID", "RUNLOCK_RANK"}
    env = {k: v for k, v in os.environ.items() if k not in gone}
    env.update(plan.env_set)
    env.update({**where, ENV_REPRODUCES: plan.run_id,
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


def _stdout() -> int | None:
    """The rerun's output goes to stderr, so stdout stays clean for runlock's own result."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None
