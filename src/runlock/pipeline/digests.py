"""Content ids of a pipeline's files and folders, re-hashing only what changed (the stat cache).

A file's id is its sha256 (``sha256:…``); a folder's is ``artifacts.tree_digest`` of its files,
the same id the folder gets when stored as an artifact. A file whose stat (device, inode, size,
mtime, ctime) is what it was when last hashed is not read again (``runlock.data.statcache``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from runlock import artifacts
from runlock.data.snapshot import STAT_CACHE
from runlock.data.statcache import StatCache, is_racy, signature
from runlock.data.tree import list_files
from runlock.hashing import digest_file
from runlock.store import Store


class Hasher:
    def __init__(self, store: Store) -> None:
        self.cache = StatCache(Path(store.root) / STAT_CACHE)
        self.hashed_files = 0      # how many files were actually read (the rest came from the cache)
        self._stable: dict[Path, str | None] = {}

    def digest(self, path: Path, *, stable: bool = False) -> str | None:
        """The content id of the file or folder at ``path``; None when there is nothing there.
        ``stable``: a path no stage writes (a plain dep), looked at once per hasher."""
        if stable and path in self._stable:
            return self._stable[path]
        found = self._digest(path)
        if stable:
            self._stable[path] = found
        return found

    def _digest(self, path: Path) -> str | None:
        if not (path.exists() or path.is_symlink()):
            return None
        files = list_files(path)
        entries = self._entries(files)
        if path.is_file():
            return entries[0]["digest"]
        return artifacts.tree_digest(entries)

    def _entries(self, files: list[tuple[str, str]]) -> list[dict]:
        reals = [os.path.abspath(real) for _, real in files]
        known = self.cache.lookup(reals)
        now = time.time_ns()
        fresh, entries = [], []
        for (rel, _), real in zip(files, reals):
            st = os.stat(real)
            sig = signature(st)
            hit = known.get(real)
            if hit is not None and tuple(hit[0]) == sig:
                digest = hit[1]
            else:
                digest, _ = digest_file(real)
                self.hashed_files += 1
                if not is_racy(sig, now):
                    fresh.append((real, sig, digest))
            entries.append({"path": rel, "size": st.st_size, "digest": digest})
        self.cache.update(fresh)
        return entries
