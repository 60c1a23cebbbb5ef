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
from pathlib import Path
from typing import Any

from runlock import canonical
from runlock.data.snapshot import taken_from
from runlock.errors import InvalidInput
from runlock.paths import problem
from runlock.store import Store


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
