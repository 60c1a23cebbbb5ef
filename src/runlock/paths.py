"""Paths that come out of a manifest, and writing them below a destination and nowhere else.

Every path a stored document names (a snapshot's files, a folder artifact's files, an
artifact's name when it becomes a file name) passes ``check_entries`` before a byte is written.
A path is accepted only in its one canonical form:

- relative POSIX: ``/``-separated, not absolute, no drive (``C:``), no backslash, no NUL;
- every component non-empty and neither ``.`` nor ``..`` (so ``a//b``, ``a/./b``, ``a/``
  and ``../x`` are refused, not normalised);
- no component that a filesystem may take for ``.git`` or ``.runlock`` (any case, trailing
  dots or spaces, characters HFS+ ignores): nothing is ever written into a repository or a store;
- valid Unicode (no lone surrogates), and no two entries equal after NFC normalisation;
- no entry that is a folder of another (``a`` and ``a/b``).

``Dest`` writes files below a folder through directory file descriptors (``openat``): each
folder on the way is opened with ``O_NOFOLLOW``, so a symbolic link planted in the destination
(``DEST/sub -> /etc``) is refused, never followed, and a file is replaced by renaming a verified
scratch copy over it (a rename replaces a link itself, never what it points at).

Pure helpers (layer 1): nothing here knows about stores or runs.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from runlock.errors import IntegrityError, InvalidInput
from runlock.hashing import digest_stream

RESERVED = (".git", ".runlock")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Code points HFS+ ignores when it compares names (git's is_hfs_dotgit list), and NTFS's
# trailing dots and spaces: ".git\u200c" or ".GIT." would still be the repository there.
_IGNORED = dict.fromkeys(map(ord, "\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                                  "\u206a\u206b\u206c\u206d\u206e\u206f\ufeff"))
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class UnsafePath(IntegrityError):
    """A stored document names a path that may not be written (crafted or damaged); nothing was."""


def is_reserved(component: str) -> bool:
    """True for a name a filesystem may take for ``.git`` or ``.runlock``."""
    if component.isascii():
        return component.rstrip(". ").lower() in RESERVED
    name = unicodedata.normalize("NFC", component.translate(_IGNORED)).rstrip(". ").casefold()
    return name in RESERVED


def problem(path: object) -> str | None:
    """Why ``path`` may not be written below a destination, or None when it may."""
    if not isinstance(path, str) or not path:
        return "it is not a non-empty string"
    if "\x00" in path:
        return "it contains a NUL byte"
    if "\\" in path:
        return "it contains a backslash"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    if path.startswith("/") or _DRIVE.match(path):
        return "it is absolute"
    ascii_only = path.isascii()
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return "it is not in canonical form (an empty, '.' or '..' component)" if part != ".." \
                else "it climbs out of the destination ('..')"
        if (part[0] == "." or not ascii_only) and is_reserved(part):    # ASCII: both names start with '.'
            return f"it names a {part!r} folder or file, which runlock never writes"
    return None


def check_entry(path: object, where: str = "the manifest") -> str:
    """``path`` if it is a safe relative path, else IntegrityError naming it."""
    why = problem(path)
    if why is not None:
        raise UnsafePath(f"{where} names the path {path!r}, which runlock refuses: {why}.",
                             hint="Nothing was written. The stored document was crafted or damaged; "
                                  "run `runlock fsck`, and do not use this object.")
    return path  # type: ignore[return-value]


def check_entries(paths: Iterable[object], where: str = "the manifest") -> list[str]:
    """Check every path (as ``check_entry``), then that no two collide: equal after NFC
    normalisation, or one a folder of another. Returns them in the order given."""
    out = [check_entry(p, where) for p in paths]
    seen: dict[str, str] = {}
    folders: dict[str, str] = {}
    for p in out:
        key = p if p.isascii() else unicodedata.normalize("NFC", p)
        if key in seen:
            raise UnsafePath(f"{where} names {seen[key]!r} and {p!r}, which are the same path.",
                                 hint="Nothing was written. The stored document was crafted or damaged.")
        seen[key] = p
        i = key.find("/")
        while i != -1:
            folders.setdefault(key[:i], p)
            i = key.find("/", i + 1)
    for folder in folders.keys() & seen.keys():
        raise UnsafePath(f"{where} names {seen[folder]!r} both as a file and as a folder "
                             f"(of {folders[folder]!r}).", hint="Nothing was written. The stored document "
                             "was crafted or damaged.")
    return out


def check_component(name: object, what: str = "name") -> str:
    """A single path component (an artifact name that becomes a file name)."""
    why = problem(name)
    if why is None and "/" in name:  # type: ignore[operator]
        why = "it contains '/'"
    if why is not None:
        raise UnsafePath(f"The {what} {name!r} cannot be used as a file name: {why}.",
                             hint="Nothing was written. The stored record was crafted or damaged.")
    return name  # type: ignore[return-value]


def is_within(path: str | Path, folder: str | Path) -> bool:
    """True when the real location of ``path`` is ``folder`` or below it (links resolved)."""
    p, f = os.path.realpath(path), os.path.realpath(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def inside_reserved(path: str | Path) -> str | None:
    """The ``.git`` or ``.runlock`` folder that ``path`` is, or lies in; None when neither."""
    real = Path(os.path.realpath(path))
    for p in (real, *real.parents):
        if is_reserved(p.name):
            return str(p)
    return None


class Dest:
    """Write files below ``root`` without following any symbolic link inside it.

    ``root`` itself must be a real folder (not a link). Use as a context manager; ``write``
    verifies the bytes against their content id before they replace anything. An ``exclusive``
    Dest (a fresh folder) never replaces a file: two entries that one filesystem takes for the
    same name (``A`` and ``a`` on a case-insensitive one) are refused instead of overwriting."""

    def __init__(self, root: str | Path, *, exclusive: bool = False) -> None:
        self.root = Path(root)
        self.exclusive = exclusive
        try:
            self.fd = os.open(self.root, _DIR_FLAGS)
        except OSError as e:
            raise _refused(str(self.root), e) from None

    def __enter__(self) -> Dest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _parent(self, rel: str) -> tuple[int, str]:
        """An fd of the folder holding ``rel`` (created as needed, never through a link), and
        the file's name in it. The caller closes the fd unless it is the root's."""
        parts = check_entry(rel).split("/")
        fd = self.fd
        for i, part in enumerate(parts[:-1]):
            try:
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if fd != self.fd:
                    os.close(fd)
                raise _refused(str(self.root / "/".join(parts[:i + 1])), e) from None
            if fd != self.fd:
                os.close(fd)
            fd = nxt
        return fd, parts[-1]

    def check_replaceable(self, rel: str) -> None:
        """Refuse now (before anything is written) if ``rel`` cannot become a file: a folder
        sits at its place, or a link or a file sits where one of its folders must be."""
        parts = check_entry(rel).split("/")
        here = self.root
        for i, part in enumerate(parts):
            here = here / part
            try:
                st = os.lstat(here)
            except FileNotFoundError:
                return
            last = i == len(parts) - 1
            if last and stat.S_ISDIR(st.st_mode):
                raise InvalidInput(f"{here} is a folder, and the download has a file there.",
                                   hint="Move the folder away; --force replaces files, never folders.")
            if not last and not stat.S_ISDIR(st.st_mode):
                kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a file"
                raise InvalidInput(f"{here} is {kind}, and the download needs a folder there.",
                                   hint="runlock never follows links inside a destination; move it away.")

    def write(self, rel: str, src: BinaryIO, expected: str) -> None:
        """Stream ``src`` into ``rel``; it replaces what is there only if it hashes to ``expected``."""
        fd, name = self._parent(rel)
        tmp = f".runlock-{secrets.token_hex(8)}.tmp"
        try:
            out_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=fd)
            try:
                with os.fdopen(out_fd, "wb") as out:
                    actual, _ = digest_stream(src, out)
                if actual != expected:
                    raise IntegrityError(f"Object {expected} is corrupt: its bytes hash to {actual}.",
                                         expected=expected, actual=actual,
                                         hint="Run `runlock fsck` to list every damaged object.")
                if _is_dir_at(fd, name):
                    raise InvalidInput(f"{self.root / rel} is a folder, and the download has a file there.",
                                       hint="Move the folder away; --force replaces files, never folders.")
                if self.exclusive and _exists_at(fd, name):
                    raise UnsafePath(f"Two entries are written to the same file {rel!r} (this filesystem "
                                         "does not tell their names apart).",
                                         hint="Nothing was kept. Write to a case-sensitive filesystem.")
                os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                _unlink_at(fd, tmp)
                raise
        except OSError as e:
            raise _refused(str(self.root / rel), e) from None
        finally:
            if fd != self.fd:
                os.close(fd)

    def move_in(self, staged: Dest, rel: str) -> None:
        """Rename ``rel`` from another ``Dest`` on the same filesystem into this one."""
        src_fd, src_name = staged._parent(rel)
        fd, name = self._parent(rel)
        try:
            os.replace(src_name, name, src_dir_fd=src_fd, dst_dir_fd=fd)
        except OSError as e:
            raise _refused(str(self.root / rel), e) from None
        finally:
            for f in (src_fd, fd):
                if f not in (self.fd, staged.fd):
                    os.close(f)


def _is_dir_at(fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _exists_at(fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _unlink_at(fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except OSError:
        pass


def _refused(where: str, e: OSError) -> InvalidInput:
    if e.errno in (errno.ELOOP, errno.ENOTDIR):
        return InvalidInput(f"{where} is a symbolic link or a file where a folder must be; "
                            "runlock never follows links inside a destination.",
                            hint="Move it away, or pick another destination.")
    return InvalidInput(f"Cannot write {where}: {e.strerror or e}.", hint="Check free space and permissions.")
