"""The bundle's file layout, and the deterministic tar that holds it.

A bundle (``.rlb``) is an uncompressed tar whose first member is ``manifest.json`` and second
``manifest.sig``; every other member follows sorted by path::

    manifest.json                 schema, root, what is inside, and the sha256 + size of every other member
    manifest.sig                  base64 Ed25519 signature of manifest.json by the store's key
    store.pub                     the store's public key (PEM); an auditor compares it with the one they hold
    audit/checkpoint.json         the signed audit checkpoint every proof leads to
    audit/entries/SEQ.json        one audit entry with its inclusion proof (runlock.audit-proof/v1)
    attestations/HEX.intoto.jsonl an attestation (DSSE envelopes, JSON Lines) an audit entry inside names:
                                  `runlock attest` (attestation.create) or the production gate
                                  (gate.pass, gate.override); name = sha256 of its bytes
    code/COMMIT.bundle            `git bundle` of a recorded commit (its whole history)
    env/RUN/pylock.toml           the run's environment as a PEP 751 lock (wheel hashes when exported with --hashes)
    env/RUN/sbom.cdx.json         the run's environment as a CycloneDX 1.6 SBOM (absent, and named excluded,
                                  when cyclonedx-python-lib was not installed at export)
    objects/HEX                   a stored object (lock, diff, manifests, data, artifacts); name = sha256 of bytes
    records/runs/ID.json          a run's row, its artifacts' rows and every metric point
    records/snapshots/HEX.json    a snapshot's row and the refs naming it
    records/splits/HEX.json       a split's row and the refs naming it
    records/models/NAME@vN.json   a model version's ref row and the aliases pointing at it
    records/aliases/NAME@ALIAS.json  every move of an alias that ever pointed at a version inside
    records/edges.json            the lineage edges among the entities inside

Every member has mtime 0, uid/gid 0, no owner names and mode 0644, so the same content gives the
same bytes. A member is either bytes or a ``Stream`` (its size, and a way to open it), which
``write`` copies in chunks, so a bundle with large data objects is written in constant memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

SCHEMA = "runlock.bundle/v1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "store.pub"
CHECKPOINT = "audit/checkpoint.json"


ATTESTING = ("attestation.create", "gate.pass", "gate.override")


def attestation_of(entry: dict) -> str | None:
    """The id of the attestation an audit entry names: the one ``attest`` wrote or the gate kept."""
    if entry.get("action") not in ATTESTING:
        return None
    details = entry.get("details") or {}
    found = details.get("attestation") or (entry.get("after") if entry["action"] == "attestation.create" else None)
    return found if isinstance(found, str) and found.startswith("sha256:") else None


def attestation_member(oid: str) -> str:
    return f"attestations/{oid.split(':', 1)[1]}.intoto.jsonl"


def dumps(value: Any) -> bytes:
    """Stable JSON for records (sorted keys; NaN kept as the database may hold it)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=repr).encode("utf-8") + b"\n"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


@dataclass(frozen=True)
class Stream:
    """A member too large to hold: its size and sha256 (known beforehand), and how to read it."""

    size: int
    sha256: str
    open: Callable[[], BinaryIO]


Member = bytes | Stream


def size_of(data: Member) -> int:
    return data.size if isinstance(data, Stream) else len(data)


def sha256_of(data: Member) -> str:
    return data.sha256 if isinstance(data, Stream) else sha256(data)


def write(out: BinaryIO, members: list[tuple[str, Member]]) -> None:
    """Write ``members`` (already in bundle order) as a deterministic tar; streams are copied in chunks."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            if isinstance(data, Stream):
                with data.open() as f:
                    tar.addfile(_info(name, data.size), f)
            else:
                tar.addfile(_info(name, len(data)), io.BytesIO(data))


def scan(path: str) -> Iterator[tuple[str, "Extent"]]:
    """Every regular member of the bundle at ``path``, in order, as (name, where its bytes are);
    nothing is read but the headers.

    Raises ``tarfile.TarError`` / ``OSError`` when the file is not a readable tar."""
    with tarfile.open(path, mode="r:") as tar:
        for info in tar:
            if not info.isfile():
                raise tarfile.TarError(f"member {info.name!r} is not a regular file")
            yield info.name, Extent(path, info.offset_data, info.size)


@dataclass(frozen=True)
class Extent:
    """A member's bytes inside a bundle file, read only when asked."""

    path: str
    offset: int
    size: int

    def open(self) -> "_Slice":
        return _Slice(self)

    def read(self) -> bytes:
        with self.open() as f:
            return f.read()


class _Slice:
    """A reader over ``size`` bytes of a file from ``offset``; short if the file is."""

    def __init__(self, extent: Extent) -> None:
        self._f = open(extent.path, "rb")
        self._f.seek(extent.offset)
        self._left = extent.size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        chunk = self._f.read(n)
        self._left -= len(chunk)
        return chunk

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "_Slice":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
