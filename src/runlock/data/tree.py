"""Listing the files a snapshot or a folder artifact covers: a file, or every regular file under
a folder.

Paths are relative, ``/``-separated, Unicode NFC, and sorted by code point (the same order as
their UTF-8 bytes), so the list never depends on the order the filesystem returns them in, on
the folder the tree sits in, or on the machine.

Symbolic links are never followed out of the tree. A link whose target (fully resolved) lies
inside the tree is read as the file or folder it points at, stored under the link's own path;
a link that points outside the tree is an error that names it, so no byte from outside the
folder (a key, ``/etc/shadow``, another user's file) can enter the store through a link planted
in a dataset. A link that loops back into its own ancestry, a broken link, and anything that is
not a regular file (a FIFO, a socket, a device) are errors too. The folder given as the root may
itself be a link: the user named it.

A folder or file named ``.git`` or ``.runlock`` (a repository, a store: in any case spelling a
filesystem may equate) is never included, and a root that is, or lies inside, one of them is
refused: runlock never captures a store's private key or a repository's internals. Empty
folders hold no files and leave no trace.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from pathlib import Path

from runlock.errors import InvalidInput
from runlock.paths import inside_reserved, is_reserved


def list_files(root: str | Path) -> list[tuple[str, str]]:
    """``[(relative path, absolute path to read)]`` sorted by relative path."""
    root = Path(root).absolute()
    st = _stat(str(root), root.name)
    reserved = inside_reserved(root)
    if reserved is not None:
        raise InvalidInput(f"{root} is inside {reserved}; runlock never captures a repository's or a "
                           "store's own folder.", hint="Pick the folder that holds your data or model.")
    if stat.S_ISREG(st.st_mode):
        return [(_clean_name(root.name, root.name), str(root))]
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{root} is not a regular file or a folder.")
    real_root = os.path.realpath(root)
    found: dict[str, str] = {}
    stack = [(real_root, "", frozenset({(st.st_dev, st.st_ino)}))]
    while stack:
        folder, prefix, ancestors = stack.pop()
        for entry in _scan(folder, prefix or "."):
            if is_reserved(entry.name):
                continue
            rel = prefix + _clean_name(entry.name, prefix + entry.name)
            path = _inside(entry.path, real_root, rel) if entry.is_symlink() else entry.path
            est = _stat(path, rel) if entry.is_symlink() else entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(est.st_mode):
                key = (est.st_dev, est.st_ino)
                if key in ancestors:
                    raise InvalidInput(f"Symbolic link loop: {rel} leads back to a folder above it.",
                                       hint="Remove the link, or snapshot a folder without it.")
                stack.append((path, rel + "/", ancestors | {key}))
            elif stat.S_ISREG(est.st_mode):
                if rel in found:
                    raise InvalidInput(f"Two files map to the same name {rel!r} after Unicode normalisation.",
                                       hint="Rename one of them.")
                found[rel] = path
            else:
                raise InvalidInput(f"{rel} is not a regular file (a FIFO, socket or device).",
                                   hint="Move it out of the folder, or snapshot a folder without it.")
    return sorted(found.items())


def _inside(link: str, real_root: str, rel: str) -> str:
    """The real path a link inside the tree leads to; an error if it leads out of the tree."""
    _stat(link, rel)  # broken links and loops get their own messages
    real = os.path.realpath(link)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise InvalidInput(f"{rel} is a symbolic link to {real}, outside the folder; runlock never "
                           "follows a link out of the tree it stores.",
                           hint="Copy what it points at into the folder (cp -L), or remove the link.")
    if any(is_reserved(part) for part in Path(os.path.relpath(real, real_root)).parts):
        raise InvalidInput(f"{rel} is a symbolic link into {real}, a .git or .runlock folder, which runlock "
                           "never captures.", hint="Remove the link.")
    return real


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
    if "\\" in name:
        raise InvalidInput(f"The file name {label!r} holds a backslash, which other systems read as a "
                           "folder separator.", hint="Rename it.")
    return unicodedata.normalize("NFC", name)
