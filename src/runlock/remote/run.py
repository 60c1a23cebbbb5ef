"""``RemoteRun``: the run a script holds when ``RUNLOCK_SERVER`` is set.

The same surface as a local ``Run`` for what a training loop calls: ``log`` (returns in
microseconds: points go to the spool, see ``runlock.remote.spool``), ``flush`` (waits for the
server's acknowledgement), ``log_artifact`` (uploads only the objects the server lacks, by
sha256), ``set_summary`` is not offered yet, ``finish`` and the ``with`` block. The lock is
captured here, in the training process (its code, environment and entry point are this
machine's), and sent to the server, which stores it and computes the recipe id.
"""

from __future__ import annotations

import mimetypes
import os
import socket
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from runlock import artifacts, canonical, code, seeding
from runlock.config import ResolvedConfig
from runlock.data.snapshot import taken_from, taken_here
from runlock.data.tree import list_files
from runlock.errors import InvalidInput, RunlockError, SealedError
from runlock.hashing import digest_bytes, digest_file
from runlock.refs import check_name
from runlock.remote.client import Client, connect
from runlock.remote.http import HttpService
from runlock.remote.interface import InputUse
from runlock.remote.resume import find_checkpoint
from runlock.remote.spool import Spool
from runlock.tracking import lock as locks
from runlock.tracking import values as checks
from runlock.tracking import where
from runlock.tracking.resume import Resumption
from runlock.tracking.values import MAX_STEP


__all__ = ["RemoteRun", "RemoteObjects", "join_remote_run", "start_remote_run", "connect"]


class RemoteObjects:
    """An object store that is the server: ``put_bytes``/``put_file`` upload what it lacks."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def put_bytes(self, data: bytes) -> str:
        oid = digest_bytes(data)
        if self.client.missing([oid]):
            self.client.put_bytes(oid, data)
        return oid

    def put_file(self, path: str | Path) -> str:
        oid, _ = digest_file(path)
        if self.client.missing([oid]):
            self.client.put_object(oid, Path(path))
        return oid


@dataclass
class _View:
    """What ``tracking.lock.build`` needs of a store: somewhere to put the code diff."""
    objects: RemoteObjects


class RemoteRun:
    seal_at_exit = True     # left open at exit: every point shipped, then sealed (tracking.run)

    def __init__(self, client: Client, record: dict, lock: dict | None, *,
                 on_end: Callable[[Any], None] | None = None, owned: bool = True, rank: int = 0,
                 start_seq: int = 0) -> None:
        self.client = client
        self.service = HttpService(client)
        self.cwd = (record.get("context") or {}).get("cwd")
        self.id, self.project, self.name = record["id"], record["project"], record["name"]
        self.recipe_id = record.get("recipe_id")
        self.rank, self.owned = rank, owned
        self._lock = lock
        self._spool = Spool(client, self.id, rank, start_seq=start_seq)
        self._auto_step = -1
        self._known: set[str] = set()
        self._ended = False
        self._on_end = on_end
        self._holds = 0             # start_run calls holding a joined run (a nested one only flushes)
        self.lost_points = 0

    @property
    def ref(self) -> str:
        return f"run:{self.id}"

    lineage_node = ref

    @property
    def lock(self) -> dict | None:
        return self._lock

    @property
    def ended(self) -> bool:
        return self._ended

    def __repr__(self) -> str:
        return f"<RemoteRun {self.id} {self.project}/{self.name} at {self.client.url}>"

    def log(self, values: dict[str, Any], step: int | None = None) -> None:
        """Record scalar metrics at ``step``; returns at once (see ``flush``)."""
        if self._ended:
            raise SealedError(self.id, "ended")
        if type(values) is not dict:
            values = checks.as_dict(values)
        if step is None:
            step = self._auto_step + 1
        elif type(step) is not int or step < 0 or step > MAX_STEP:
            step = checks.as_step(step)
        if step > self._auto_step:
            self._auto_step = step
        for k, v in values.items():
            if type(v) is not float or k not in self._known:
                values = checks.checked(values, self._known)
                break
        else:
            values = values.copy()
        self._spool.append(step, values)

    def continue_from(self, step: int) -> None:
        self._auto_step = max(self._auto_step, checks.as_step(step))

    def mark_resumed(self, of: str, checkpoint: str | None, step: int, *, rng_restored: bool = False) -> Resumption:
        """Have the server record that this run continues run ``of`` from ``checkpoint`` (an
        artifact reference) at ``step``; logging goes on from ``step + 1``."""
        found = self.client.call("POST", f"/runs/{self.id}/resumes", json={
            "of": of, "checkpoint": checkpoint, "step": step, "rng_restored": rng_restored})
        self.continue_from(step)
        return Resumption(**found)

    def checkpoint_at(self, path: str | Path) -> artifacts.Artifact:
        """The checkpoint artifact with the bytes at ``path`` (``tracking.resume.continue_run``)."""
        return find_checkpoint(self.service, path, besides=self.id)[0]

    def flush(self, timeout: float | None = None) -> None:
        """Block until the server has acknowledged every point logged so far."""
        if not self._spool.flush(timeout):
            raise RunlockError(f"{self._spool.unshipped} metric points of run {self.id} are not on the server "
                               f"yet ({self._spool.failing or 'it is slow'}); they stay spooled in "
                               f"{self._spool.path}.", hint="Check the server, then call flush() again.")

    def set_summary(self, values: dict[str, Any]) -> None:
        """Merge final values (evaluation results) into the run's summary, on the server."""
        if self._ended:
            raise SealedError(self.id, "ended")
        self.service.set_summary(self.id, canonical.normalize(values))

    def use(self, thing: Any, *, path: str | Path | None = None) -> None:
        """Declare an input (a snapshot, split, artifact or model, or a reference string) as
        ``Run.use`` does; the server resolves it and checks that ``path`` holds its bytes."""
        if self._ended:
            raise SealedError(self.id, "ended")
        ref = thing if isinstance(thing, str) else (getattr(thing, "ref", None) or getattr(thing, "lineage_node", None))
        if not isinstance(ref, str) or (not isinstance(thing, str) and not getattr(thing, "id", None)):
            raise InvalidInput(f"run.use() takes a snapshot, split, artifact or model, or a reference "
                               f"string; got {type(thing).__name__}.")
        done = self.service.use_input(self.id, self._placed(ref, thing, path))
        if self._lock is not None:
            locks.add_input(self._lock, done["entry"])
        self.recipe_id = done["recipe_id"]

    def _placed(self, ref: str, thing: Any, path: str | Path | None) -> InputUse:
        """What the server needs to record where the script reads the input (see ``InputUse``)."""
        root = where.project_root(self._lock or {}, self.cwd)
        if path is None:
            node = getattr(thing, "lineage_node", "") or ""
            snap = thing.id if node.startswith("snapshot:") else getattr(thing, "snapshot_id", None)
            sources = taken_here() if isinstance(thing, str) else {snap: taken_from(snap)} if snap else {}
            taken = {}
            for sid, source in sources.items():
                rel = where.relative(Path(source), root) if source else None
                if rel is not None:
                    taken[sid] = [rel, "folder" if Path(source).is_dir() else "file"]
            return InputUse(ref, taken=taken or None)
        found = Path(path) if Path(path).is_absolute() else Path.cwd() / path
        if not found.exists():
            raise InvalidInput(f"{path} does not exist, so it cannot be where the run reads {ref}.")
        rel = where.relative(found, root)
        if rel is None:
            raise InvalidInput(f"{path} is outside the project ({root}); a rerun could not rebuild it there.",
                               hint="Keep inputs inside the project, or leave out path= and use input_path().")
        held = tuple((r, digest_file(real)[0]) for r, real in list_files(found)) if found.is_dir() \
            else ((found.name, digest_file(found)[0]),)
        return InputUse(ref, rel, "folder" if found.is_dir() else "file", held)

    def log_artifact(self, path: str | Path, name: str, kind: str = "artifact",
                     metadata: dict | None = None) -> dict:
        """Upload a file or folder by content (only what the server lacks) as an output of this run."""
        check_name(name, "artifact name")
        p = Path(path)
        if not p.exists():
            raise InvalidInput(f"{p} does not exist.", hint="Check the path of the artifact.")
        files = list_files(p)
        digests = {real: digest_file(real) for _, real in files}
        missing = set(self.client.missing(sorted({d for d, _ in digests.values()})))
        for real, (d, _) in digests.items():
            if d in missing:
                self.client.put_object(d, Path(real))
                missing.discard(d)
        if p.is_file():
            body = {"digest": digests[files[0][1]][0], "folder": False,
                    "media_type": mimetypes.guess_type(p.name)[0] or "application/octet-stream"}
        else:
            doc = artifacts.folder_document([{"path": rel, "size": digests[real][1], "digest": digests[real][0]}
                                             for rel, real in files])
            manifest = RemoteObjects(self.client).put_bytes(canonical.dumps(doc))
            body = {"digest": manifest, "folder": True}
        return self.client.record_artifact(self.id, {**body, "name": name, "kind": kind,
                                                     "metadata": canonical.normalize(metadata or {})})

    def finish(self, status: str = "finished", error: str | None = None, *, timeout: float = 60) -> None:
        """Ship every point (waiting at most ``timeout`` s), then seal the run on the server; a run
        whose points did not all arrive is sealed ``failed`` with ``lost_points``. A joined run
        (``runlock run`` owns it) only ships: what is left stays spooled for the wrapper to send."""
        if self._ended:
            return
        if self._holds > 1:         # a nested start_run that joined this same run: only flush
            self._holds -= 1
            self._spool.flush(timeout)
            return
        self._ended = True
        self.lost_points = self._spool.close(timeout)
        try:
            if self.owned:
                self.client.finish_run(self.id, status, error, self.lost_points)
        finally:
            if self._on_end is not None:
                self._on_end(self)

    # -- a run that ``runlock run`` started for this process ------------------------------------------
    def adopt(self, *, project: str | None = None, name: str | None = None, config: Any = None,
              seed: int | None = None, tags: dict | None = None, seeding_report: dict | None = None) -> None:
        """Tell the server what the script says about the run it joined (``tracking.adopt.adopt``),
        with the knobs as this process sees them."""
        if self._ended:
            raise SealedError(self.id, "ended")
        values = config.values if isinstance(config, ResolvedConfig) else config
        declared = ((self._lock or {}).get("knobs") or {}).get("declared") or {}
        body = {"project": project, "name": name, "seed": seed, "tags": canonical.normalize(tags) if tags else None,
                "config": canonical.normalize(values) if values is not None else None,
                "seeding": canonical.normalize(seeding_report) if seeding_report is not None else None,
                "knobs": canonical.normalize(seeding.knobs(**declared))}
        d = self.client.call("POST", f"/runs/{self.id}/adopt", json=body)
        self._lock, self.recipe_id = d["lock"], d["recipe_id"]
        self.project, self.name = d["run"]["project"], d["run"]["name"]
        if project and project != self.project:
            warnings.warn(f"runlock: start_run(project={project!r}) joined run {self.id} of project "
                          f"{self.project!r}, which the command line chose (runlock run --project).",
                          RuntimeWarning, stacklevel=3)

    def record_seeding(self, report: dict, seed: int | None = None) -> None:
        """Put a seeding report (and the seed) into the lock, on the server."""
        self.adopt(seed=seed, seeding_report=report)

    def __enter__(self) -> "RemoteRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is None:
            self.finish("finished")
        else:
            self.finish("failed", "".join(traceback.format_exception(exc_type, exc, tb)))


def join_remote_run(client: Client, run_id: str, *, on_end: Callable[[Any], None] | None = None,
                    rank: int = 0) -> RemoteRun:
    """A handle on the running run ``run_id`` that ``runlock run`` started for this process: it
    logs as ``rank`` (each process of a distributed job its own: ``RUNLOCK_RANK``), numbering on
    from what the server holds for that rank, ships, and leaves sealing to the wrapper."""
    view = client.call("GET", f"/runs/{run_id}/view")
    if view["run"]["status"] != "running":
        raise SealedError(run_id, view["run"]["status"])
    seq = client.call("GET", f"/runs/{run_id}/seq", params={"rank": rank})["seq"]
    return RemoteRun(client, view["run"], view["lock"], on_end=on_end, owned=False, rank=rank, start_seq=seq)


def start_remote_run(client: Client, project: str, name: str | None = None, *, config: Any = None,
                     seed: int | None = None, tags: dict | None = None, argv: list[str] | None = None,
                     seeding_report: dict | None = None, context: dict | None = None,
                     on_end: Callable[[Any], None] | None = None) -> RemoteRun:
    """Capture the lock here, create the run on the server, and return a handle that logs to it."""
    record, lock = create_remote_run(client, project, name, config=config, seed=seed, tags=tags, argv=argv,
                                     seeding_report=seeding_report, context=context)
    return RemoteRun(client, record, lock, on_end=on_end)


def create_remote_run(client: Client, project: str, name: str | None = None, *, config: Any = None,
                      seed: int | None = None, tags: dict | None = None, argv: list[str] | None = None,
                      seeding_report: dict | None = None, context: dict | None = None) -> tuple[dict, dict]:
    """Capture the lock here and create the run on the server: ``(record, lock)`` (``runlock run``
    creates its command's run so, leaving the logging to the command)."""
    check_name(project, "project name")
    if name:
        check_name(name, "run name")
    if seed is None and seeding_report is not None:
        seed = seeding_report.get("seed")
    view = _View(RemoteObjects(client))
    values = config.values if isinstance(config, ResolvedConfig) else config
    lock = locks.build(view, config=values, seed=seed, argv=argv)  # type: ignore[arg-type]
    if seeding_report is not None:
        lock["seeding"] = canonical.normalize(seeding_report)
    context = {"cwd": str(Path.cwd()), "pid": os.getpid(), **code.context(view.objects),  # type: ignore[arg-type]
               **(context or {})}
    record = client.create_run({"project": project, "name": name, "tags": canonical.normalize(tags or {}),
                                "lock": lock, "context": context, "host": socket.gethostname()})
    return record, lock
