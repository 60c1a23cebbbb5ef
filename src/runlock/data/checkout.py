"""Checking a snapshot out: its files, rebuilt from the object store into a new folder.

Every path in the manifest is checked first (``runlock.paths``: relative, canonical, no ``..``,
nothing under ``.git/`` or ``.runlock/``, no two the same), so a crafted manifest is refused,
naming the entry, before a byte is written. Every byte is verified against its hash on the way
out. The files are written into a hidden folder beside the destination, through directory
descriptors that never follow a link, and the folder is renamed into place only when all are
complete, so an interrupted checkout leaves no half-filled destination.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from runlock.data.ingest import WORKERS
from runlock.data.snapshot import Snapshot, load_snapshot
from runlock.errors import InvalidInput, StoreError
from runlock.paths import Dest, check_entries, inside_reserved, is_within
from runlock.store import Store


@dataclass(frozen=True)
class Checkout:
    ref: str
    id: str
    dest: str
    files: int
    size: int


def checkout(store: Store, ref: str | Snapshot, dest: str | Path) -> Checkout:
    """Write the files of snapshot ``ref`` into ``dest`` (a new or empty folder, not a link)."""
    snap = load_snapshot(store, ref)
    entries = snap.entries if isinstance(snap.entries, list) else None
    if entries is None or not all(isinstance(e, dict) and "path" in e and "sha256" in e for e in entries):
        raise InvalidInput(f"The manifest of {snap.ref} has no valid file list.", hint="Run `runlock fsck`.")
    check_entries([e["path"] for e in entries], f"The manifest of {snap.ref}")
    dest = Path(os.path.abspath(dest))
    reserved = inside_reserved(dest)
    if reserved is not None or is_within(dest, store.root):
        raise InvalidInput(f"{dest} is inside {reserved or store.root}; runlock never writes there.",
                           hint="Check out into a new folder outside the store and any .git folder.")
    if dest.is_symlink():
        raise InvalidInput(f"{dest} is a symbolic link; runlock checks out into a real folder only.",
                           hint="Check out into a new folder.")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"{dest} already exists and is not an empty folder.",
                           hint="Check out into a new folder.")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name[:100]}.checkout-"))
    except OSError as e:
        raise InvalidInput(f"Cannot write into {dest.parent}: {e.strerror or e}.",
                           hint="Check the path and its permissions.") from None
    try:
        with Dest(work, exclusive=True) as out, ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(lambda e: _write(store, out, e), entries))
        if dest.exists():
            dest.rmdir()
        os.replace(work, dest)
    except OSError as e:
        shutil.rmtree(work, ignore_errors=True)
        raise StoreError(f"Cannot write the checkout into {dest}: {e.strerror or e}.",
                         hint="Check free space and permissions.") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Checkout(snap.ref, snap.id, str(dest), snap.files, snap.size)


def _write(store: Store, out: Dest, entry: dict) -> None:
    with store.objects.open(entry["sha256"]) as src:
        out.write(entry["path"], src, entry["sha256"])
