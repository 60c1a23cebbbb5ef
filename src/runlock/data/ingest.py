"""Hashing files into the object store: in parallel, streamed, and never under a wrong hash.

Each file is read once, in 1 MiB chunks: every chunk is hashed and written to a scratch copy
beside the objects, so memory stays flat whatever the file size and the copy is exactly the bytes
that were hashed. The file's stat (device, inode, size, mtime_ns, ctime_ns) is taken before and
after; if it differs, the file changed while it was read and it is read again (up to
``ATTEMPTS`` times, then an error). A file the stat cache knows, unchanged, is not read at all.

On the local backend each scratch copy starts its way to disk as soon as it is written, and the
copies become objects together at the end: one barrier (``syncfs`` of the store's filesystem,
not ``sync`` of the whole machine) for all of them, then a rename each, then one more barrier for
the renames (instead of two fsyncs per file). Interrupted before that, they are only scratch
files, never objects; other backends get one ``put_file`` per file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from runlock.data.statcache import Signature, StatCache, is_racy, signature
from runlock.errors import InvalidInput
from runlock.hashing import ALGORITHM, CHUNK
from runlock.store import durable
from runlock.store.objects import LocalObjectStore, ObjectStore
from runlock.store.scratch import prefix as scratch_prefix

ATTEMPTS = 3
WORKERS = max(8, 4 * (os.cpu_count() or 1))  # threads: hashing and I/O release the GIL


@dataclass(frozen=True)
class Entry:
    """One file of a snapshot."""

    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Progress:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


ProgressFn = Callable[[Progress], None]


def ingest(objects: ObjectStore, files: list[tuple[str, str]], *, cache: StatCache | None = None,
           on_progress: ProgressFn | None = None, workers: int = WORKERS) -> list[Entry]:
    """Store every ``(relative path, absolute path)`` in ``objects``; entries in the same order."""
    job = _Job(objects, files, cache)
    entries = job.known_entries()           # stat cache hits, in this thread: no pool overhead
    todo = [i for i, e in enumerate(entries) if e is None]
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runlock-hash")
    try:
        futures = {i: pool.submit(job.one, i) for i in todo}
        _wait_all(list(futures.values()), job, on_progress)
        for i, f in futures.items():
            entries[i] = f.result()
        job.commit()
    except BaseException:
        job.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        job.abort()
        raise
    pool.shutdown()
    if cache is not None:
        cache.update(job.cache_rows)
    return entries


def _wait_all(futures: list[Future], job: "_Job", on_progress: ProgressFn | None) -> None:
    """Wait for every future, reporting progress about every 0.1 s and raising the first error at
    once. Each future counts itself down when it ends: ``concurrent.futures.wait`` over the pending
    set would put a waiter on every pending future at each wake-up, quadratic in the number of files
    (26 s of CPU for 10,000)."""
    left, failed = [len(futures)], []
    lock, changed = threading.Lock(), threading.Event()

    def ended(f: Future) -> None:
        with lock:
            left[0] -= 1
            if not f.cancelled() and f.exception() is not None:
                failed.append(f)
        changed.set()

    for f in futures:
        f.add_done_callback(ended)
    while True:
        with lock:
            n, first_error = left[0], failed[:1]
        if first_error:
            first_error[0].result()
        if on_progress is not None:
            on_progress(job.progress(len(job.files) - n))
        if not n:
            return
        changed.wait(0.1)
        changed.clear()


class _Stopped(Exception):
    pass


class _Job:
    def __init__(self, objects: ObjectStore, files: list[tuple[str, str]], cache: StatCache | None) -> None:
        self.objects = objects
        self.files = files
        self.local = isinstance(objects, LocalObjectStore)
        self.known = cache.lookup([p for _, p in files]) if cache is not None else {}
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.pending: list[tuple[str, Path]] = []      # (object id, scratch copy) to commit
        self.cache_rows: list[tuple[str, Signature, str]] = []
        self.bytes_done = 0
        self.bytes_total = 0

    def progress(self, files_done: int) -> Progress:
        return Progress(files_done, len(self.files), self.bytes_done, self.bytes_total)

    def known_entries(self) -> list[Entry | None]:
        """Stat every file once: an entry for each the stat cache vouches for, else None."""
        entries: list[Entry | None] = []
        for rel, path in self.files:
            st = _stat(path, rel)
            self.bytes_total += st.st_size
            known = self.known.get(path)
            hit = known is not None and known[0] == signature(st) and self.objects.has(known[1])
            if hit:
                self.objects.freshen(known[1])      # reused: garbage collection's grace restarts
            entries.append(Entry(rel, st.st_size, known[1]) if hit else None)
            self.bytes_done += st.st_size if hit else 0
        return entries

    def one(self, i: int) -> Entry:
        rel, path = self.files[i]
        for _ in range(ATTEMPTS):
            if self.stop.is_set():
                raise _Stopped()
            before = _stat(path, rel)
            started = time.time_ns()
            oid, size, scratch = self._copy(path, rel)
            after = _stat(path, rel)
            if signature(before) == signature(after) and size == after.st_size:
                self._keep(oid, scratch, path, signature(after), started)
                return Entry(rel, size, oid)
            if scratch is not None:
                scratch.unlink(missing_ok=True)
        raise InvalidInput(f"{rel} kept changing while it was read ({ATTEMPTS} attempts).",
                           hint="Stop whatever is writing it, then snapshot again.")

    def _copy(self, path: str, rel: str) -> tuple[str, int, Path | None]:
        if not self.local:
            try:
                oid = self.objects.put_file(path)
            except OSError as e:
                raise _unreadable(rel, e) from None
            self._count(_size(path))
            return oid, _size(path), None
        folder = self.objects.scratch_dir()
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=scratch_prefix("snap"), suffix=".tmp")
        scratch = Path(name)
        try:
            return (*self._stream(path, fd, rel), scratch)
        except BaseException:
            scratch.unlink(missing_ok=True)
            raise

    def _stream(self, path: str, fd: int, rel: str) -> tuple[str, int]:
        h = hashlib.sha256()
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        size = 0
        try:
            with open(path, "rb", buffering=0) as src, open(fd, "wb", buffering=0) as out:
                while n := src.readinto(buf):
                    if self.stop.is_set():
                        raise _Stopped()
                    h.update(view[:n])
                    _write_all(out, view[:n])
                    size += n
                    self._count(n)
                durable.start(out.fileno())   # the disk writes it while the next files are copied
        except OSError as e:
            raise _unreadable(rel, e) from None
        return f"{ALGORITHM}:{h.hexdigest()}", size

    def _keep(self, oid: str, scratch: Path | None, path: str, sig: Signature, started: int) -> None:
        with self.lock:
            if not is_racy(sig, started):
                self.cache_rows.append((path, sig, oid))
            if scratch is not None:
                self.pending.append((oid, scratch))

    def _count(self, n: int) -> None:
        with self.lock:
            self.bytes_done += n

    def commit(self) -> None:
        """Make the scratch copies objects: one barrier for their bytes, a rename each, one
        barrier for the renames (``store/durable.py``: the store's filesystem only)."""
        if not self.pending:
            return
        durable.barrier(self.objects.root)
        for oid, scratch in self.pending:
            dest = self.objects.path_of(oid)
            if dest.exists():
                scratch.unlink(missing_ok=True)
                self.objects.freshen(oid)
                continue
            self.objects.place(oid, scratch)
            self.objects.freshen(oid)   # its age starts now, not when the scratch copy was written
        durable.barrier(self.objects.root)  # the renames: one journal commit, not an fsync per folder
        self.pending = []

    def abort(self) -> None:
        for _, scratch in self.pending:
            scratch.unlink(missing_ok=True)
        self.pending = []


def _write_all(out, view: memoryview) -> None:
    while view:
        view = view[out.write(view):]


def _stat(path: str, rel: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise InvalidInput(f"{rel} disappeared while the snapshot ran.",
                           hint="Snapshot again once the folder stops changing.") from None
    except OSError as e:
        raise _unreadable(rel, e) from None


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _unreadable(rel: str, e: OSError) -> InvalidInput:
    return InvalidInput(f"Cannot read {rel}: {e.strerror or e}.",
                        hint="Check its permissions, or snapshot a folder without it.")

