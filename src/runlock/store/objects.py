"""Content-addressed object storage.

An ``ObjectStore`` keeps immutable blobs under their ``sha256:<hex>`` id. Backends implement five
primitives (``_write_new``, ``_open``, ``has``, ``iter_ids``, ``delete``); everything else
(``put_bytes``, ``put_file``, ``get_bytes``, ``verify``) is derived here, so every backend
behaves the same and one conformance suite tests them all.

The local backend lays objects out as ``objects/ab/cdef…`` and writes atomically: a temporary file
in the same folder, fsync, then rename; an object that already exists is never rewritten.
Reads verify the hash, so corruption is always reported and never returned.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runlock.errors import IntegrityError, NotFound, StoreError
from runlock.hashing import ALGORITHM, check_digest, digest_bytes, digest_stream, hex_of
from runlock.store.scratch import prefix as scratch_prefix
from runlock.store.perms import Modes


@dataclass(frozen=True)
class ObjectProblem:
    """One object that failed verification."""

    id: str
    problem: str  # "corrupt" or "missing"
    detail: str = ""


FRESHEN_AFTER = 600.0   # seconds: an object stored or freshened more recently is not touched again


class ObjectStore(ABC):
    """The interface every object backend provides."""

    # -- primitives -----------------------------------------------------------------------
    @abstractmethod
    def has(self, oid: str) -> bool: ...

    @abstractmethod
    def iter_ids(self) -> Iterator[str]: ...

    @abstractmethod
    def _open(self, oid: str) -> BinaryIO:
        """Open the stored bytes of ``oid`` for reading, or raise NotFound."""

    @abstractmethod
    def _write_new(self, oid: str, src: Path) -> None:
        """Atomically store the scratch file ``src`` (already hashed to ``oid``) unless the
        object exists. The backend may move ``src`` away instead of copying it."""

    @abstractmethod
    def delete(self, oid: str) -> None:
        """Remove an object. Only an explicit, audited garbage collection may call this."""

    def freshen(self, oid: str) -> None:
        """Mark an existing object as just stored again (its age restarts), so that garbage
        collection's grace period protects an object a writer is reusing. Best effort."""

    # -- derived ------------------------------------------------------------------------------
    def put_bytes(self, data: bytes) -> str:
        oid = digest_bytes(data)
        if not self.has(oid):
            with _scratch_file(self) as tmp:
                tmp.write_bytes(data)
                self._write_new(oid, tmp)
        else:
            self.freshen(oid)
        return oid

    def put_file(self, path: str | Path) -> str:
        """Store a file's bytes; the copy is hashed as it is made, so a file that changes while
        it is read can never be stored under a wrong id."""
        with _scratch_file(self) as tmp:
            with open(path, "rb") as src, open(tmp, "wb") as dst:
                oid, _ = digest_stream(src, dst)
            if not self.has(oid):
                self._write_new(oid, tmp)
            else:
                self.freshen(oid)
        return oid

    def open(self, oid: str) -> BinaryIO:
        """A reader over the object's bytes. The caller must hash what it reads if it needs
        the guarantee; ``get_bytes`` and ``copy_to`` do."""
        return self._open(check_digest(oid))

    def get_bytes(self, oid: str) -> bytes:
        with self.open(oid) as f:
            data = f.read()
        actual = digest_bytes(data)
        if actual != oid:
            raise _corrupt(oid, actual)
        return data

    def copy_to(self, oid: str, dest: str | Path) -> None:
        """Write the object to ``dest`` atomically, verifying its hash on the way."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        try:
            with self.open(oid) as src, os.fdopen(fd, "wb") as out:
                actual, _ = digest_stream(src, out)
            if actual != oid:
                raise _corrupt(oid, actual)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def verify_one(self, oid: str) -> ObjectProblem | None:
        try:
            with self.open(oid) as f:
                actual, _ = digest_stream(f)
        except NotFound:
            return ObjectProblem(oid, "missing")
        return None if actual == oid else ObjectProblem(oid, "corrupt", f"content hashes to {actual}")

    def scratch_dir(self) -> Path:
        """A folder for temporary files (the same filesystem as the objects, when local)."""
        return Path(tempfile.gettempdir())

    def make_scratch_dir(self) -> Path:
        d = self.scratch_dir()
        d.mkdir(parents=True, exist_ok=True)
        return d


def _corrupt(oid: str, actual: str) -> IntegrityError:
    return IntegrityError(
        f"Object {oid} is corrupt: its bytes hash to {actual}.",
        expected=oid, actual=actual,
        hint="Run `runlock fsck` to list every damaged object; restore it from a copy of the data.",
    )


class _scratch_file:
    """A temporary file path beside the store's objects, removed on exit."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def __enter__(self) -> Path:
        try:
            self.dir = self.store.make_scratch_dir()
            fd, name = tempfile.mkstemp(dir=self.dir, prefix=scratch_prefix("put"), suffix=".tmp")
        except OSError as e:
            what = "is read-only" if e.errno == errno.EROFS else f"cannot be written ({e.strerror})"
            raise StoreError(f"The store's object folder {self.store.scratch_dir()} {what}.",
                             hint="Open the store with write permission, or only read from it.") from e
        os.close(fd)
        self.path = Path(name)
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


class LocalObjectStore(ObjectStore):
    """Objects in a local folder: ``ROOT/ab/cdef…``, read-only (0440) in folders of the store's
    mode (``store/perms.py``); scratch files (0600) in ``ROOT/tmp``."""

    def __init__(self, root: str | Path, modes: Modes | None = None) -> None:
        self.root = Path(root)
        self.modes = modes or Modes()

    def path_of(self, oid: str) -> Path:
        return Path(self._file(oid))

    def _file(self, oid: str) -> str:
        """``path_of`` as a string: a re-snapshot asks about every file, and pathlib's ``/`` costs
        more than the stat itself."""
        hx = hex_of(oid)
        return f"{self.root}/{hx[:2]}/{hx[2:]}"

    def scratch_dir(self) -> Path:
        return self.root / "tmp"

    def make_scratch_dir(self) -> Path:
        d = self.scratch_dir()
        if not d.is_dir():
            self.modes.make_dir(d)
        return d

    def place(self, oid: str, src: Path) -> None:
        """Rename the scratch file ``src`` into place as ``oid`` (read-only), creating its folder."""
        dest = self.path_of(oid)
        if not dest.parent.is_dir():
            self.modes.make_dir(dest.parent)
        os.chmod(src, self.modes.object)
        os.replace(src, dest)

    def has(self, oid: str) -> bool:
        return os.path.isfile(self._file(oid))

    def iter_ids(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for sub in sorted(self.root.iterdir()):
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for f in sorted(sub.iterdir()):
                if len(f.name) == 62 and not f.name.endswith(".tmp"):
                    yield f"{ALGORITHM}:{sub.name}{f.name}"

    def _open(self, oid: str) -> BinaryIO:
        try:
            return open(self.path_of(oid), "rb")
        except FileNotFoundError:
            raise NotFound("object", oid, hint="Run `runlock fsck` to see what else is missing.") from None
        except OSError as e:
            raise StoreError(f"Cannot read object {oid}: {e.strerror}.") from e

    def _write_new(self, oid: str, src: Path) -> None:
        """Move the scratch file ``src`` (same filesystem) into place after an fsync."""
        dest = self.path_of(oid)
        if dest.exists():
            return
        try:
            with open(src, "rb+") as f:
                os.fsync(f.fileno())
            self.place(oid, src)
            _fsync_dir(dest.parent)
        except OSError as e:
            raise StoreError(f"Cannot write object {oid} under {self.root}: {e.strerror}.",
                             hint="Check free disk space and permissions.") from e

    def delete(self, oid: str) -> None:
        self.path_of(oid).unlink(missing_ok=True)

    def freshen(self, oid: str) -> None:
        path = self._file(oid)
        try:
            if time.time() - os.stat(path).st_mtime > FRESHEN_AFTER:   # a read, not a write, when recent
                os.utime(path)
        except OSError:
            pass


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
