"""Content ids of a pipeline's files and folders, re-hashing only what changed (the stat cache).

A file's id is its sha256 (``sha256:…``); a folder's is ``artifacts.tree_digest`` of its files,
the same id the folder gets when stored as an artifact. A file whose stat (device, inode, size,
mtime, ctime) is what it was when last hashed is not read again (``runlock.data.statcache``); a
folder in which no folder or file changed is not even listed again (``folders``); and within
one hasher a file's id is remembered under its stat, so an out that the next stage depends on is
not looked up twice.
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
from runlock.pipeline.folders import FolderCache, walk
from runlock.store import Store

FOLDER_CACHE = "cache/folders.sqlite"


class Hasher:
    def __init__(self, store: Store) -> None:
        self.cache = StatCache(Path(store.root) / STAT_CACHE)
        self.folders = FolderCache(Path(store.root) / FOLDER_CACHE)
        self.hashed_files = 0      # how many files were actually read (the rest came from the cache)
        self.listed_folders = 0    # how many folders were listed (the rest came from the folder cache)
        self._stable: dict[Path, str | None] = {}
        self._seen: dict[str, tuple[tuple, str]] = {}    # real path -> (signature, digest), not racy

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
        if not path.is_dir():
            return self._entries(list_files(path))[0][0]["digest"]
        known = self.folders.get(path)
        if known is not None:
            return known
        started = time.time_ns()
        real_root = os.path.realpath(path)
        try:
            dirs = walk(real_root)          # before the listing: see folders' docstring
        except OSError:
            dirs = None
        files = list_files(path)
        self.listed_folders += 1
        entries, sigs = self._entries(files)
        digest = artifacts.tree_digest(entries)
        if dirs is not None:
            self.folders.put(path, real_root, dirs, sigs, digest, started)
        return digest

    def _entries(self, files: list[tuple[str, str]]) -> tuple[list[dict], list[tuple[str, tuple]]]:
        """Each file's entry (path, size, digest), and (real path, signature) of each."""
        reals = [os.path.abspath(real) for _, real in files]
        stats = [os.stat(real) for real in reals]
        sigs = [signature(st) for st in stats]
        todo = [r for r, sig in zip(reals, sigs) if self._seen.get(r, (None,))[0] != sig]
        known = self.cache.lookup(todo) if todo else {}
        now = time.time_ns()
        fresh, entries = [], []
        for (rel, _), real, st, sig in zip(files, reals, stats, sigs):
            seen, hit = self._seen.get(real), known.get(real)
            if seen is not None and seen[0] == sig:
                digest = seen[1]
            elif hit is not None and tuple(hit[0]) == sig:
                digest = hit[1]
            else:
                digest, _ = digest_file(real)
                self.hashed_files += 1
                if not is_racy(sig, now):
                    fresh.append((real, sig, digest))
            if not is_racy(sig, now):
                self._seen[real] = (sig, digest)
            entries.append({"path": rel, "size": st.st_size, "digest": digest})
        self.cache.update(fresh)
        return entries, list(zip(reals, sigs))
