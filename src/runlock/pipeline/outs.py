"""A stage's outs: stored by content as artifacts of the stage's run, restored from the store on a
cache hit. A restore writes beside the out and renames into place, through the path validator
(``artifacts.materialize`` writes with ``paths.Dest``), so an interrupted restore leaves the old
out or the new one, never half of one; an out whose bytes are already right is not touched."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from runlock import artifacts
from runlock.errors import InvalidInput
from runlock.pipeline.digests import Hasher
from runlock.store import Store

OUT_KIND = "pipeline-out"


def artifact_name(out: str) -> str:
    """The artifact name an out is stored under (artifact names hold no '/')."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", out.replace("/", "--"))
    return name if name[:1].isalnum() else f"o{name}"[:128]


def remove(path: Path) -> None:
    """Delete an out before its stage runs, so nothing stale can pass for the new result."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def restore(store: Store, root: Path, outs: dict, run_id: str, hasher: Hasher) -> list[str]:
    """Bring each out to the recorded bytes; return the outs that had to be written."""
    written = []
    for out, info in sorted(outs.items()):
        dest = root / out
        if hasher.digest(dest) == info["digest"]:
            continue
        art = artifacts.get(store, run_id, info["name"])
        if art.digest != info["digest"]:
            raise InvalidInput(f"Artifact {info['name']} of run {run_id} is not the recorded out {out}.")
        _place(store, art, dest)
        written.append(out)
    return written


def _place(store: Store, art: artifacts.Artifact, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.runlock-{uuid.uuid4().hex[:8]}"
    try:
        artifacts.materialize(store, art, tmp, exclusive=True)
        if dest.is_dir() and not dest.is_symlink():
            old = dest.parent / f".{dest.name}.runlock-old-{uuid.uuid4().hex[:8]}"
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            remove(tmp)
