"""Resuming: a run that continues another from one of its checkpoints.

    run = runlock.resume("run:01JD…")            # that run's latest checkpoint artifact
    run = runlock.resume("art:sha256:…")          # a checkpoint artifact (or RUN/NAME)
    run = runlock.resume("out/ckpt-400.pt")       # a checkpoint on disk, found by its content

``resume`` starts a run (or joins the one ``runlock run`` started) with the project, name,
config and seed of the run it continues (unless given), declares the checkpoint as an input,
restores the RNG state the checkpoint holds (a ``runlock.torch.rng_state()`` dict saved in it,
see below), and links the two runs: a ``resumes`` lineage edge ``run:NEW -> run:OLD``, an
audit entry ``run.resume`` naming the checkpoint artifact and its step, and the same facts in
the new run's record (``context["resumes"]``). Its metrics continue the original's steps: the
default step of ``run.log`` is one past the checkpoint's.

The Hugging Face callback does the same by itself when the Trainer resumes from a checkpoint.

``chain(store, run)`` walks the links back: ``[(oldest, last step kept), ..., (run, None)]``;
``compare`` stitches a chain's series (the older run's points up to the step each resume
started from, then the newer run's) so that a crashed and resumed training compares with an
uninterrupted one.

The RNG state is found in a checkpoint file saved with ``torch.save`` whose top level is, or
holds under any key, a ``runlock.torch.rng_state()`` dict; in a checkpoint folder, in its
``rng_state.pt`` file. The Trainer's own ``rng_state.pth`` is restored by the Trainer.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from runlock import artifacts, audit, lineage
from runlock.errors import InvalidInput, NotFound
from runlock.hashing import is_digest
from runlock.store import Store
from runlock.store.schema import artifacts as artifacts_table
from runlock.store.schema import runs
from runlock.tracking import lock as locks
from runlock.tracking import records
from runlock.tracking.run import Run, start_run

EDGE = "resumes"
RNG_FILE = "rng_state.pt"
MAX_CHAIN = 1000


@dataclass(frozen=True)
class Resumption:
    run: str                  # the run that continues
    of: str                   # the run it continues
    checkpoint: str | None    # lineage node of the checkpoint artifact (artifact:sha256:…)
    step: int                 # the step the checkpoint holds; the new run logs from step + 1
    rng_restored: bool = False

    def to_dict(self) -> dict:
        return {"run": self.run, "of": self.of, "checkpoint": self.checkpoint, "step": self.step,
                "rng_restored": self.rng_restored}


def resume(run_or_checkpoint: str | os.PathLike, *, project: str | None = None, name: str | None = None,
           config: Any = None, seed: int | None = None, step: int | None = None, restore_rng: bool = True,
           store: Store) -> Run:
    """Start a run that continues ``run_or_checkpoint`` (see the module docstring)."""
    art, path = find_checkpoint(store, run_or_checkpoint)
    step = step_of(art, step)
    old = records.get(store, art.run_id)
    lock = locks.load(store, old.recipe_id) if old.recipe_id else {}
    restored = restore_rng and restore_rng_of(store, art)   # before the run starts: a refusal leaves nothing
    run = start_run(project or old.project, name or old.name,
                    config=lock.get("config") if config is None else config,
                    seed=lock.get("seed") if seed is None else seed, store=store)
    run.use(art, path=path)
    mark_resumed(store, run, old.id, art, step, rng_restored=restored)
    return run


def continue_run(store: Store | None, run: Run, checkpoint: str | Path, step: int) -> Resumption | None:
    """Link ``run``, which resumed from the checkpoint folder or file at ``checkpoint`` (as the
    Trainer does), to the run that logged that checkpoint. None, with a warning, when no run in
    this store logged those bytes. A run on a team server (no ``store``) asks the server
    (``RemoteRun.checkpoint_at``, ``RemoteRun.mark_resumed``)."""
    remote = store is None
    try:
        art = run.checkpoint_at(checkpoint) if remote else _artifact_of_path(store, Path(checkpoint), besides=run.id)
    except NotFound:
        where = "on the server" if remote else "in this store"
        warnings.warn(f"runlock: the checkpoint {checkpoint} was not logged by any run {where}, so run {run.id} "
                      "cannot be linked to the run it continues.", stacklevel=2)
        run.continue_from(step)
        return None
    thing = art.ref if remote else art
    try:
        run.use(thing, path=checkpoint)
    except InvalidInput:          # a checkpoint outside the project: an input without a path
        run.use(thing)
    if remote:
        return run.mark_resumed(art.run_id, art.ref, step)
    return mark_resumed(store, run, art.run_id, art, step)


def mark_resumed(store: Store, run: Run, of: str, checkpoint: artifacts.Artifact | None, step: int, *,
                 rng_restored: bool = False) -> Resumption:
    """Record that ``run`` continues run ``of`` from ``checkpoint`` at ``step``, in one transaction."""
    found = record_resumption(store, run.id, of, checkpoint.lineage_node if checkpoint else None, step,
                              rng_restored=rng_restored)
    run.continue_from(step)
    return found


def record_resumption(store: Store, run_id: str, of: str, checkpoint: str | None, step: int, *,
                      rng_restored: bool = False) -> Resumption:
    """The records of a resumption (the running run's context, the ``resumes`` edge, the audit
    entry), in one transaction: ``mark_resumed`` here, ``POST /runs/{id}/resumes`` on a server."""
    if of == run_id:
        raise InvalidInput(f"Run {run_id} cannot resume itself.")
    found = Resumption(run_id, of, checkpoint, step, rng_restored)
    node = f"run:{run_id}"

    def write(conn: sa.Connection) -> None:
        row = records.require_running(conn, run_id)
        context = {**(row.context or {}), "resumes": found.to_dict()}
        conn.execute(runs.update().where(runs.c.id == run_id).values(context=context))
        if lineage.record_edge(conn, EDGE, node, f"run:{of}"):
            audit.append(conn, store.actor, "run.resume", node,
                         details={"of": f"run:{of}", "checkpoint": found.checkpoint, "step": step})

    store.db.run_write(write)
    return found


def resumed_from(store: Store, run_id: str) -> Resumption | None:
    """What ``run_id`` continues, if it was resumed."""
    info = records.get(store, run_id).context.get("resumes")
    return Resumption(**info) if isinstance(info, dict) and info.get("of") else None


def chain(store: Store, run_id: str) -> list[tuple[str, int | None]]:
    """``[(run, last step of it that counts), ...]``, oldest first; the last entry is ``run_id``
    itself with ``None`` (all of its steps)."""
    out: list[tuple[str, int | None]] = [(records.get(store, run_id).id, None)]
    seen = {out[0][0]}
    while len(out) < MAX_CHAIN:
        found = resumed_from(store, out[0][0])
        if found is None or found.of in seen:
            break
        seen.add(found.of)
        out.insert(0, (found.of, found.step))
    return out


# -- finding the checkpoint ----------------------------------------------------------------------
def find_checkpoint(store: Store, ref: str | os.PathLike) -> tuple[artifacts.Artifact, str | None]:
    """The checkpoint artifact ``ref`` names, and the local path it was given as (if any)."""
    text = os.fspath(ref)
    if Path(text).exists():
        return _artifact_of_path(store, Path(text)), text
    if text.startswith(("art:", "artifact:")) or is_digest(text) or "/" in text:
        return artifacts.find(store, text), None
    old = records.get(store, text)
    logged = artifacts.for_run(store, old.id)
    points = [a for a in logged if a.kind == "checkpoint"]
    if not points:
        raise InvalidInput(f"Run {old.id} logged no checkpoint artifact to resume from.",
                           hint="Log checkpoints with run.log_artifact(path, name, kind='checkpoint', "
                                "metadata={'step': N}), or pass the checkpoint itself.")
    return max(points, key=lambda a: (meta_step(a) if meta_step(a) is not None else -1, a.created_at)), None


def _artifact_of_path(store: Store, path: Path, besides: str | None = None) -> artifacts.Artifact:
    """The artifact with the bytes at ``path``, as logged by the newest run that logged them (a
    deterministic training logs the same checkpoint bytes in every run; the checkpoint on disk is
    the last one written), other than ``besides``."""
    digest = artifacts.store_path(store, path)[0]
    with store.db.read() as conn:
        row = conn.execute(sa.select(artifacts_table.c.run_id, artifacts_table.c.name).where(
            artifacts_table.c.digest == digest, artifacts_table.c.run_id != (besides or ""))
            .order_by(artifacts_table.c.created_at.desc(), artifacts_table.c.run_id.desc()).limit(1)).first()
    if row is None:
        raise NotFound("checkpoint artifact", str(path),
                       hint="Resume from a checkpoint a run logged (run.log_artifact), or name the run.")
    return artifacts.get(store, row.run_id, row.name)


def meta_step(art: artifacts.Artifact) -> int | None:
    step = (art.meta or {}).get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None


def step_of(art: artifacts.Artifact, step: int | None) -> int:
    if step is not None:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidInput(f"Step {step!r} is not a non-negative integer.")
        return step
    found = meta_step(art)
    if found is None:
        raise InvalidInput(f"Checkpoint {art.ref} does not say which step it holds.",
                           hint="Pass resume(..., step=N), or log checkpoints with metadata={'step': N}.")
    return found


# -- the RNG state it holds ------------------------------------------------------------------------
def restore_rng_of(store: Store, art: artifacts.Artifact) -> bool:
    """Restore the runlock RNG state the checkpoint holds; False when it holds none (or torch is
    not installed, since only torch checkpoints hold one). ``store``: anything with the objects
    (a team server's client reads them hash-checked)."""
    try:
        import torch  # optional: checkpoints with RNG state are torch files

        from runlock.torch.rng import RNG_STATE_FORMAT, restore_rng_state
    except ModuleNotFoundError:
        return False
    if art.manifest is None:
        digest = art.digest
    else:
        digest = next((e["digest"] for e in artifacts.folder_entries(store, art) if e["path"] == RNG_FILE), None)
    if digest is None:
        return False
    try:
        saved = torch.load(io.BytesIO(store.objects.get_bytes(digest)), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a torch file: nothing to restore
        return False
    state = _find_state(saved, RNG_STATE_FORMAT)
    if state is None:
        return False
    try:
        restore_rng_state(state)
    except InvalidInput as e:
        raise InvalidInput(f"The RNG state in checkpoint {art.ref} cannot be restored here: {e.message}",
                           hint="Pass resume(..., restore_rng=False) and call runlock.torch.restore_rng_state "
                                "with its sampler and generators yourself.") from None
    return True


def _find_state(saved: Any, fmt: str) -> dict | None:
    if isinstance(saved, dict) and saved.get("format") == fmt:
        return saved
    if isinstance(saved, dict):
        return next((v for v in saved.values() if isinstance(v, dict) and v.get("format") == fmt), None)
    return None
