"""``ServerObjects``: the team server's objects, as an ``ObjectStore`` on the client.

``has`` asks the server which objects it lacks; storing uploads the bytes by sha256 (the server
re-hashes them before it keeps them); reading downloads into a scratch file, and every derived
read (``get_bytes``, ``copy_to``) hashes what arrived, as against a local folder. So the domain's
own code (hashing a snapshot's files, materialising an artifact with its path checks) runs
unchanged against a server. Listing and deleting are the server's own business: refused here.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runlock.errors import InvalidInput
from runlock.remote.client import Client
from runlock.store.objects import ObjectStore


class ServerObjects(ObjectStore):
    """``via``: the file list of the folder artifact being read, sent with each download (a
    viewer of one project may read the files a folder artifact of that project names)."""

    def __init__(self, client: Client, via: str | None = None) -> None:
        self.client = client
        self.via = via
        self._present: set[str] = set()

    def has(self, oid: str) -> bool:
        if oid in self._present:
            return True
        if self.client.missing([oid]):
            return False
        self._present.add(oid)
        return True

    def iter_ids(self):  # noqa: ANN201
        raise InvalidInput("A client cannot list the server's objects.", hint="Run `runlock fsck` on the server.")

    def _write_new(self, oid: str, src: Path) -> None:
        self.client.put_object(oid, src)
        self._present.add(oid)

    def _open(self, oid: str) -> BinaryIO:
        fd, tmp = tempfile.mkstemp(prefix="runlock-get-", suffix=".tmp")
        os.close(fd)
        try:
            self.client.download(oid, tmp, via=self.via if oid != self.via else None)   # hash-checked
            f = open(tmp, "rb")                    # noqa: SIM115 - the caller closes it
        finally:
            Path(tmp).unlink(missing_ok=True)      # the open file stays readable until closed
        return f

    def delete(self, oid: str) -> None:
        raise InvalidInput("A client cannot delete the server's objects.", hint="Run `runlock gc` on the server.")


@dataclass
class ServerView:
    """What a domain function that only moves bytes needs of a store: ``objects`` (the server's),
    ``root`` (a folder no download may write into) and ``actor`` (for messages)."""

    objects: ServerObjects
    root: Path
    actor: str
