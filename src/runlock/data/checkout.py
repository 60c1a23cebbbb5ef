"""Checking a snapshot out: its files, rebuilt from the object store into a new folder.

Every byte is verified against its hash on the way out. The files are written into a hidden
folder beside the destination, which is renamed into place only when all are complete, so an
interrupted checkout leaves no half-filled destination.
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
from runlock.store import Store


@dataclass(frozen=True)
class Checkout:
    ref: str
    id: str
    dest: str
    files: int
    size: int


def checkout(store: Store, ref: str | Snapshot, dest: str | Path) -> Checkout:
    """Write the files of snapshot ``ref`` into ``dest`` (a new or empty folder)."""
    snap = load_snapshot(store, ref)
    dest = Path(dest).absolute()
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"{dest} already exists and is not an empty folder.",
                           hint="Check out into a new folder.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.checkout-"))
    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(lambda e: store.objects.copy_to(e["sha256"], work / e["path"]), snap.entries))
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
