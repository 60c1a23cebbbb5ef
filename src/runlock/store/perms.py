"""File modes of a local store: never world-readable, whatever the process umask.

A store is private to its owner and the store folder's group: files 0640, folders 0750, objects
0440 (they never change). ``runlock init --shared`` widens files and folders to group write
(0660 / 0770) so that several accounts of one group can write the store. Folders carry the
setgid bit, so what is created inside them follows the store folder's group. The private key is
0600 in a 0700 folder either way (``runlock.keys``).

Every mode is set explicitly (``os.open`` with a mode, then ``fchmod``/``chmod``), so a process
started with ``umask 000`` creates the same modes as one with ``umask 077``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

OBJECT_MODE = 0o440
KEY_MODE = 0o600
KEY_DIR_MODE = 0o700


@dataclass(frozen=True)
class Modes:
    shared: bool = False

    @property
    def file(self) -> int:
        return 0o660 if self.shared else 0o640

    @property
    def dir(self) -> int:
        return 0o2770 if self.shared else 0o2750

    @property
    def object(self) -> int:
        return OBJECT_MODE

    def make_dir(self, path: Path) -> None:
        """Create ``path`` (and missing parents up to an existing folder) with the folder mode."""
        missing = []
        p = Path(path)
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:
                continue
            chmod(d, self.dir)

    def write_file(self, path: Path, data: bytes, mode: int | None = None) -> None:
        """Write ``data`` to ``path`` atomically (temporary file + rename) with ``mode``."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, self.file if mode is None else mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)

    def create_file(self, path: Path) -> None:
        """Create an empty file with the file mode if it does not exist (a database file, say,
        so that the program that fills it inherits a private mode); fix its mode if it does."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, self.file)
        except PermissionError:
            pass          # another account's file in a shared store: its owner set its mode
        finally:
            os.close(fd)


def chmod(path: Path, mode: int) -> None:
    """Set ``mode``; a filesystem that ignores modes (or a file someone else owns) is left be."""
    try:
        os.chmod(path, mode)
    except PermissionError:
        pass
