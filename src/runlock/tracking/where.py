"""Where a run found its inputs: a path relative to the project, recorded in the lock.

A script that snapshots ``data/tickets.jsonl`` and splits it, or loads its base model from
``models/base``, reads those inputs *by path*. The lock records that path with the input, so a
rerun can rebuild the input exactly there (``runlock.verify.inputs``) and the script runs
unchanged, writing the same paths into its outputs (PEFT writes the base model's path into
``adapter_config.json``)::

    {"node": "split:sha256:…", "ref": "split:tickets@v1", "kind": "split", "id": "sha256:…",
     "path": "data/tickets.jsonl", "path_kind": "file"}

The path is known when this process took the snapshot (for a split: of its snapshot), or when
the script names it (``run.use(x, path="models/base")``). It is relative to the project: the
root of the git work tree the run recorded, else the folder the run started in; an input found
outside the project has no recorded path (a rerun then only offers ``input_path``).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa

from runlock import artifacts, canonical
from runlock.data.snapshot import load_snapshot, taken_from
from runlock.errors import InvalidInput
from runlock.hashing import digest_file, is_digest
from runlock.paths import problem
from runlock.refs import resolve
from runlock.store import Store
from runlock.store.schema import artifacts as artifacts_table


def found_at(store: Store, lock: dict, cwd: str | None, entry: dict, thing: Any = None,
             path: str | os.PathLike | None = None) -> dict:
    """``{"path", "path_kind"}`` for an input entry, or ``{}`` when it was not found by path."""
    root = project_root(lock, cwd)
    if path is not None:
        where = Path(path) if Path(path).is_absolute() else Path.cwd() / path
        if not where.exists():
            raise InvalidInput(f"{path} does not exist, so it cannot be where the run reads {entry['ref']}.")
        rel = relative(where, root)
        if rel is None:
            raise InvalidInput(f"{path} is outside the project ({root}); a rerun could not rebuild it there.",
                               hint="Keep inputs inside the project, or leave out path= and use input_path().")
        _check_holds(store, entry, where, path)
        return {"path": rel, "path_kind": "folder" if where.is_dir() else "file"}
    source = taken_from(_snapshot_of(store, entry, thing) or "")
    rel = relative(Path(source), root) if source else None
    if rel is None:
        return {}
    return {"path": rel, "path_kind": "folder" if Path(source).is_dir() else "file"}


def project_root(lock: dict, cwd: str | None) -> Path:
    """The root of the git work tree the lock recorded (``code.git.subdir`` below ``cwd``), else ``cwd``."""
    here = Path(cwd or Path.cwd())
    subdir = ((lock.get("code") or {}).get("git") or {}).get("subdir")
    if subdir and subdir != ".":
        depth = len(Path(subdir).parts)
        return here.parents[depth - 1] if depth <= len(here.parents) else here
    return here


def relative(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` as a canonical POSIX path, or None when it lies outside
    (or is the root itself, or would name a ``.git`` / ``.runlock`` folder)."""
    try:
        rel = Path(os.path.realpath(path)).relative_to(os.path.realpath(root)).as_posix()
    except ValueError:
        return None
    return rel if rel != "." and problem(rel) is None else None


def _snapshot_of(store: Store, entry: dict, thing: Any) -> str | None:
    if entry.get("kind") == "snapshot":
        return entry["id"]
    if entry.get("kind") == "split":
        snap = getattr(thing, "snapshot_id", None)
        if snap is None:
            try:
                snap = canonical.loads(store.objects.get_bytes(entry["id"])).get("snapshot")
            except (ValueError, AttributeError):
                return None
        return snap if isinstance(snap, str) else None
    return None


def input_files(store: Store, entry: dict) -> list[tuple[str, str]] | None:
    """``[(path inside the input, object id)]`` of an input's files (for a split: its snapshot's;
    a file artifact is one file named after it); None for a kind that has no files."""
    kind = entry.get("kind")
    if kind in ("snapshot", "split"):
        snap_id = entry["id"] if kind == "snapshot" else _snapshot_of(store, entry, None)
        return None if snap_id is None else [(e["path"], e["sha256"]) for e in load_snapshot(store, snap_id).entries]
    if kind in ("artifact", "model"):
        ref = entry.get("ref") or entry["node"]
        digest = entry["id"] if is_digest(entry["id"]) else resolve(store, ref, "model").target
        with store.db.read() as conn:
            row = conn.execute(sa.select(artifacts_table.c.run_id, artifacts_table.c.name).where(
                artifacts_table.c.digest == digest).limit(1)).first()
        if row is None:
            return [(PurePosixPath(ref).name, digest)]
        art = artifacts.get(store, row.run_id, row.name)
        return [(e["path"], e["digest"]) for e in artifacts.folder_entries(store, art)] or [(art.name, art.digest)]
    return None


def _check_holds(store: Store, entry: dict, where: Path, given: object) -> None:
    """Refuse a ``path=`` that does not hold the input's bytes: the lock would say the run read
    ``entry`` there, and a rerun would rebuild other bytes than the run read."""
    files = input_files(store, entry)
    if files is None:
        return
    if where.is_file():
        wrong = [] if len(files) == 1 and digest_file(where)[0] == files[0][1] else [where.name]
    else:
        wrong = [p for p, d in files if not (where / p).is_file() or digest_file(where / p)[0] != d]
    if wrong:
        listed = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        raise InvalidInput(f"{given} does not hold the bytes of {entry['ref']} ({listed} differ or are missing).",
                           hint="Declare what the script really reads there (snapshot it), or point path= at "
                                "a copy of the input.")
