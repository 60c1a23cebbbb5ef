"""``runlock.resume`` (and the Hugging Face callback's resume) of a run on a team server.

As locally (``tracking.resume``): the checkpoint is found (a path on disk by the content hashed
here, nothing uploaded; a checkpoint artifact by reference; a run's latest checkpoint), the RNG
state it holds is restored from the server's objects (each byte hashed here), a run starts (or
the one ``runlock run`` started is joined) with the old run's project, name, config and seed,
declares the checkpoint as an input, and the server records the resumption
(``POST /runs/{id}/resumes``: the context, the ``resumes`` edge, the audit entry).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runlock import artifacts
from runlock.errors import InvalidInput, NotFound
from runlock.hashing import digest_file, is_digest
from runlock.remote.objects import ServerObjects, ServerView
from runlock.store.objects import ObjectStore
from runlock.tracking.resume import meta_step, restore_rng_of, step_of


class _HashOnly(ObjectStore):
    """An object store that only hashes: the id a path would have, with nothing stored."""

    def has(self, oid: str) -> bool:
        return True

    def put_file(self, path: str | Path) -> str:
        return digest_file(path)[0]

    def iter_ids(self):  # noqa: ANN201
        return iter(())

    def _write_new(self, oid: str, src: Path) -> None:  # never called: every object "exists"
        raise AssertionError(oid)

    def _open(self, oid: str):  # noqa: ANN202
        raise NotFound("object", oid)

    def delete(self, oid: str) -> None:
        raise AssertionError(oid)


def find_checkpoint(svc: Any, ref: str | os.PathLike, *, besides: str | None = None) -> tuple[artifacts.Artifact, str | None]:
    """The checkpoint artifact ``ref`` names on the server, and the local path it was given as."""
    text = os.fspath(ref)
    if Path(text).exists():
        with tempfile.TemporaryDirectory(prefix="runlock-hash-") as nowhere:
            view = ServerView(_HashOnly(), Path(nowhere) / ".runlock", "client")   # type: ignore[arg-type]
            digest = artifacts.store_path(view, Path(text))[0]   # type: ignore[arg-type]
        try:
            detail = svc.show_artifact(f"art:{digest}")
        except NotFound:
            detail = None
        producers = [p for p in (detail.producers if detail else []) if p["run"] != besides]
        if not producers:
            raise NotFound("checkpoint artifact", text,
                           hint="Resume from a checkpoint a run logged (run.log_artifact), or name the run.")
        newest = max(producers, key=lambda p: (p["created_at"], p["run"]))
        return svc.show_artifact(f"{newest['run']}/{newest['name']}").artifact, text
    if text.startswith(("art:", "artifact:")) or is_digest(text) or "/" in text:
        return svc.show_artifact(text).artifact, None
    old = svc.run_record(text)
    points = svc.list_artifacts(run=old.id, kind="checkpoint")
    if not points:
        raise InvalidInput(f"Run {old.id} logged no checkpoint artifact to resume from.",
                           hint="Log checkpoints with run.log_artifact(path, name, kind='checkpoint', "
                                "metadata={'step': N}), or pass the checkpoint itself.")
    return max(points, key=lambda a: (meta_step(a) if meta_step(a) is not None else -1, a.created_at)), None


def restore_rng(svc: Any, art: artifacts.Artifact) -> bool:
    """Restore the RNG state the checkpoint holds, read from the server's objects."""
    with tempfile.TemporaryDirectory(prefix="runlock-client-") as nowhere:
        view = ServerView(ServerObjects(svc.client, via=art.manifest), Path(nowhere) / ".runlock", "client")
        return restore_rng_of(view, art)  # type: ignore[arg-type]


def resume(svc: Any, ref: str | os.PathLike, start: Callable[..., Any], *, project: str | None = None,
           name: str | None = None, config: Any = None, seed: int | None = None, step: int | None = None,
           restore_rng_state: bool = True) -> Any:
    """``runlock.resume`` against the server ``svc`` talks to; ``start(project, name, config=,
    seed=)`` starts (or joins) the run, as ``runlock.start_run`` does."""
    art, path = find_checkpoint(svc, ref)
    step = step_of(art, step)
    old = svc.run_view(art.run_id)
    lock = old.lock or {}
    restored = restore_rng_state and restore_rng(svc, art)   # before the run starts: a refusal leaves nothing
    run = start(project or old.run.project, name or old.run.name,
                config=lock.get("config") if config is None else config,
                seed=lock.get("seed") if seed is None else seed)
    run.use(art.ref, path=path)
    run.mark_resumed(old.run.id, art.ref, step, rng_restored=restored)
    return run
