"""Listing the files a snapshot covers: a file, or every regular file under a folder.

Paths are relative, ``/``-separated, Unicode NFC, and sorted by code point (the same order as
their UTF-8 bytes), so the list never depends on the order the filesystem returns them in, on
the folder the tree sits in, or on the machine. Symbolic links are followed; a link that loops
back into its own ancestry, a broken link, and anything that is not a regular file (a FIFO, a
socket, a device) are errors. Empty folders hold no files and leave no trace. A folder named
``.runlock`` (a store) is never included.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from pathlib import Path

from runlock.errors import InvalidInput
from runlock.store import DIRNAME


def list_files(root: str | Path) -> list[tuple[str, str]]:
    """``[(relative path, absolute path)]`` sorted by relative path."""
    root = Path(root).absolute()
    st = _stat(str(root), root.name)
    if stat.S_ISREG(st.st_mode):
        return [(_clean_name(root.name, root.name), str(root))]
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{root} is not a regular file or a folder.")
    found: dict[str, str] = {}
    stack = [(str(root), "", frozenset({(st.st_dev, st.st_ino)}))]
    while stack:
        folder, prefix, ancestors = stack.pop()
        for entry in _scan(folder, prefix or "."):
            rel = prefix + _clean_name(entry.name, prefix + entry.name)
            est = entry.stat() if not entry.is_symlink() else _stat(entry.path, rel)
            if stat.S_ISDIR(est.st_mode):
                key = (est.st_dev, est.st_ino)
                if key in ancestors:
                    raise InvalidInput(f"Symbolic link loop: {rel} leads back to a folder above it.",
                                       hint="Remove the link, or snapshot a folder without it.")
                if entry.name != DIRNAME:
                    stack.append((entry.path, rel + "/", ancestors | {key}))
            elif stat.S_ISREG(est.st_mode):
                if rel in found:
                    raise InvalidInput(f"Two files map to the same name {rel!r} after Unicode normalisation.",
                                       hint="Rename one of them.")
                found[rel] = entry.path
            else:
                raise InvalidInput(f"{rel} is not a regular file (a FIFO, socket or device).",
                                   hint="Move it out of the folder, or snapshot a folder without it.")
    return sorted(found.items())


def _scan(folder: str, label: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError as e:
        raise InvalidInput(f"Cannot list folder {label}: {e.strerror}.",
                           hint="Check its permissions, or snapshot a folder without it.") from None


def _stat(path: str, label: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InvalidInput(f"{label} is a broken symbolic link.", hint="Fix or remove the link.") from None
        raise InvalidInput(f"{path} does not exist.", hint="Check the path.") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InvalidInput(f"Symbolic link loop at {label}.", hint="Remove the link.") from None
        raise InvalidInput(f"Cannot read {label}: {e.strerror}.", hint="Check its permissions.") from None


def _clean_name(name: str, label: str) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"The file name {label!r} is not valid UTF-8.",
                           hint="Rename it; snapshot manifests hold UTF-8 names only.") from None
    return unicodedata.normalize("NFC", name)
