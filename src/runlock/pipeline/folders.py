"""The folder cache: a folder's content id without listing and looking it up again, while nothing
in it changed.

The stat cache spares re-reading a file, but listing a 10,000-file folder, looking every file up
in it and hashing the list still cost more than the rest of a no-op ``repro``. So for each folder
hashed, this keeps (``.runlock/cache/folders.sqlite``) its id, where it resolved to, and the stat
signature (device, inode, size, mtime, ctime) of every folder under it and of every file it
lists. The id is reused when the root resolves to the same place and every recorded folder and
file has the signature recorded: a file added, removed or renamed changes its folder's mtime and
ctime; a file written in place changes its own (a dep is then looked at again through the stat
cache). The folders are read before the files are listed, and a folder or file whose timestamps
are too close to that moment ("racy", as in the stat cache) keeps the folder out of the cache,
so a change made while it is being listed is never recorded as unchanged. Like the stat cache it
is only a cache: any error reading or writing it is ignored, and the folder is then listed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from runlock.data.statcache import Signature, is_racy, signature
from runlock.paths import is_reserved

_SCHEMA = "CREATE TABLE IF NOT EXISTS folders (path TEXT PRIMARY KEY, record TEXT NOT NULL)"


def walk(real_root: str) -> list[list]:
    """``[relative folder, *signature]`` of the folder and every folder under it."""
    out = []
    for folder, dirs, _ in os.walk(real_root):
        dirs[:] = sorted(d for d in dirs if not is_reserved(d))
        out.append([os.path.relpath(folder, real_root), *signature(os.stat(folder))])
    return out


class FolderCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def get(self, root: Path) -> str | None:
        """The recorded id of the folder at ``root`` if nothing in it changed since, else None."""
        try:
            with self._connect() as conn:
                row = conn.execute("SELECT record FROM folders WHERE path = ?", (str(root.absolute()),)).fetchone()
            conn.close()
            if row is None:
                return None
            rec = json.loads(row[0])
            real = os.path.realpath(root)
            if real != rec["root"]:
                return None
            for rel, *sig in rec["dirs"]:
                if list(signature(os.stat(os.path.join(real, rel)))) != sig:
                    return None
            for rel, *sig in rec["files"]:
                if list(signature(os.stat(os.path.join(real, rel)))) != sig:
                    return None
            return rec["digest"]
        except (sqlite3.Error, OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, root: Path, real_root: str, dirs: list[list], files: list[tuple[str, Signature]], digest: str,
            started_ns: int) -> None:
        """Record ``digest`` for ``root``: ``dirs`` from ``walk`` (read first), ``files`` as (real path,
        signature), all read after ``started_ns``. Nothing is recorded when any of them is racy."""
        if any(is_racy(tuple(d[1:]), started_ns) for d in dirs) or any(is_racy(s, started_ns) for _, s in files):
            return
        rec = {"root": real_root, "digest": digest, "dirs": dirs,
               "files": [[os.path.relpath(real, real_root), *sig] for real, sig in files]}
        try:
            with self._connect() as conn:
                conn.execute("INSERT OR REPLACE INTO folders VALUES (?, ?)",
                             (str(root.absolute()), json.dumps(rec, separators=(",", ":"))))
            conn.close()
        except (sqlite3.Error, OSError):
            pass

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():     # private whatever the umask, as the stat cache
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o640))
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        return conn
