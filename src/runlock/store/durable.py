"""Making a batch of new files durable without flushing the whole machine.

``os.sync()`` writes back every filesystem on the host, other people's work included, and waits
for all of it. A store only needs its own writes on disk, so on Linux:

- ``start(fd)``: as soon as a file is complete, its writeback starts (``sync_file_range`` with
  ``SYNC_FILE_RANGE_WRITE``: queued, not waited for), so the disk writes while the next files are
  still being copied;
- ``barrier(path)``: one ``syncfs(2)`` on the filesystem that holds ``path`` waits until every
  write to it so far is on disk, and reports a writeback error (Linux 5.8 and later).

Elsewhere ``start`` is an ``fsync`` of the file (durable at once, in the worker that wrote it)
and ``barrier`` falls back to ``os.sync()``.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

from runlock.errors import StoreError

SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _libc() -> Any | None:
    """libc's syncfs and sync_file_range, or None where they do not exist."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only the commands that write a batch of objects load it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syncfs.argtypes = [ctypes.c_int]
        libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    except (OSError, AttributeError):
        return None
    return libc


def start(fd: int) -> None:
    """The file open at ``fd`` is complete: start writing it to disk (Linux), or fsync it."""
    libc = _libc()
    if libc is None or libc.sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0:
        os.fsync(fd)


def barrier(path: Path) -> None:
    """Wait until every write so far to the filesystem holding ``path`` is on disk."""
    libc = _libc()
    if libc is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.syncfs(fd) != 0:
            err = _errno()
            raise StoreError(f"Cannot write the store's new files under {path} to disk: {os.strerror(err)}.",
                             hint="Check the disk (free space, errors in dmesg), then run the command again.")
    finally:
        os.close(fd)


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()
