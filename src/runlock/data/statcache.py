"""The stat cache: skip re-hashing a file whose stat has not changed since it was last hashed.

It lives in ``.runlock/cache/stat.sqlite`` and is only a cache: deleting it costs time, never
correctness, and any error reading or writing it is ignored (the file is then simply hashed).

A file's key is its absolute path plus (device, inode, size, mtime_ns, **ctime_ns**). mtime can be
set back by any program (``touch -d``, ``os.utime``, ``rsync -t``); ctime cannot, so an in-place
edit that restores the mtime still misses the cache. A file whose timestamps are too close to the
moment it was hashed is not cached at all ("racy" in git's sense: a second write within the same
timestamp tick would leave the stat unchanged).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

Signature = tuple[int, int, int, int, int]   # (dev, ino, size, mtime_ns, ctime_ns)
_SCHEMA = ("CREATE TABLE IF NOT EXISTS stat (path TEXT PRIMARY KEY, dev INTEGER, ino INTEGER, "
           "size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, digest TEXT NOT NULL)")
_BATCH = 500


def signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def is_racy(sig: Signature, hashed_at_ns: int) -> bool:
    """True when a later write could leave the stat unchanged (same timestamp tick)."""
    newest = max(sig[3], sig[4])
    coarse = sig[3] % 1_000_000_000 == 0 and sig[4] % 1_000_000_000 == 0
    margin = 2_000_000_000 if coarse else 100_000_000
    return newest >= hashed_at_ns - margin


class StatCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def lookup(self, paths: list[str]) -> dict[str, tuple[Signature, str]]:
        """``{path: (signature, digest)}`` for the paths the cache knows."""
        found: dict[str, tuple[Signature, str]] = {}
        try:
            with self._connect() as conn:
                for i in range(0, len(paths), _BATCH):
                    chunk = paths[i:i + _BATCH]
                    q = ("SELECT path, dev, ino, size, mtime_ns, ctime_ns, digest FROM stat "
                         f"WHERE path IN ({','.join('?' * len(chunk))})")
                    for row in conn.execute(q, chunk):
                        found[row[0]] = (tuple(row[1:6]), row[6])
            conn.close()
        except (sqlite3.Error, OSError):
            return {}
        return found

    def update(self, rows: list[tuple[str, Signature, str]]) -> None:
        """Remember ``(path, signature, digest)`` for each row (best effort)."""
        if not rows:
            return
        try:
            with self._connect() as conn:
                conn.executemany("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 [(p, *sig, d) for p, sig, d in rows])
            conn.close()
        except (sqlite3.Error, OSError):
            pass

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():     # private whatever the umask; SQLite's -wal/-shm follow its mode
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o640))
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        return conn
