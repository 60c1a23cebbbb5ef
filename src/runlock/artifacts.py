"""Artifacts: files or folders a run produced, stored by content.

A file's content id is its sha256. A folder's is the sha256 over its sorted per-file entries
(the OpenSSF model-signing convention: each file hashed alone, then the list hashed), so a folder
is identified by every byte of every file and by nothing else: not its location, its mtimes or
the order the filesystem lists it in. The folder's file list is stored as a manifest object.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import audit, canonical, lineage
from runlock.errors import InvalidInput, NotFound
from runlock.store import Store
from runlock.store.schema import artifacts, utcnow

FOLDER_MEDIA_TYPE = "application/vnd.runlock.folder+json"


@dataclass(frozen=True)
class Artifact:
    run_id: str
    name: str
    digest: str
    manifest: str | None
    kind: str
    media_type: str
    size: int
    files: int
    meta: dict
    created_at: str

    @property
    def id(self) -> str:
        return self.digest

    @property
    def ref(self) -> str:
        return f"art:{self.digest}"

    @property
    def lineage_node(self) -> str:
        return f"artifact:{self.digest}"

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def tree_digest(entries: list[dict]) -> str:
    """Content id of a folder from its entries ``{"path", "size", "digest"}``."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e["path"]):
        h.update(bytes.fromhex(e["digest"].split(":", 1)[1]))
    return f"sha256:{h.hexdigest()}"


def _walk(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            files.append(Path(dirpath) / f)
    return files


def store_path(store: Store, path: str | Path) -> tuple[str, str | None, str, int, int]:
    """Put a file or folder into the object store: (digest, manifest id, media type, size, files)."""
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"{p} does not exist.", hint="Check the path of the artifact.")
    if p.is_file():
        oid = store.objects.put_file(p)
        media = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        return oid, None, media, p.stat().st_size, 1
    entries = []
    for f in _walk(p):
        oid = store.objects.put_file(f)
        entries.append({"path": f.relative_to(p).as_posix(), "size": f.stat().st_size, "digest": oid})
    manifest = store.objects.put_bytes(canonical.dumps({"kind": "folder", "entries": entries}))
    return tree_digest(entries), manifest, FOLDER_MEDIA_TYPE, sum(e["size"] for e in entries), len(entries)


def record(conn: Connection, store: Store, run_id: str, name: str, stored: tuple, kind: str,
           meta: dict) -> Artifact:
    digest, manifest, media, size, files = stored
    exists = conn.execute(sa.select(artifacts.c.name).where(
        artifacts.c.run_id == run_id, artifacts.c.name == name)).first()
    if exists:
        raise InvalidInput(f"Run {run_id} already has an artifact named {name!r}.",
                           hint="Artifacts are immutable; log the new one under another name.")
    art = Artifact(run_id, name, digest, manifest, kind, media, size, files, canonical.normalize(meta), utcnow())
    conn.execute(artifacts.insert().values(**art.to_dict()))
    lineage.record_edge(conn, "generated_by", art.lineage_node, f"run:{run_id}")
    audit.append(conn, store.actor, "artifact.create", art.lineage_node, after=digest,
                 details={"run": run_id, "name": name, "kind": kind})
    return art


def _artifact(row: sa.Row) -> Artifact:
    return Artifact(row.run_id, row.name, row.digest, row.manifest, row.kind, row.media_type, row.size,
                    row.files, dict(row.meta or {}), row.created_at)


def for_run(store: Store, run_id: str) -> list[Artifact]:
    with store.db.read() as conn:
        rows = conn.execute(sa.select(artifacts).where(artifacts.c.run_id == run_id).order_by(artifacts.c.name))
        return [_artifact(r) for r in rows]


def get(store: Store, run_id: str, name: str) -> Artifact:
    with store.db.read() as conn:
        row = conn.execute(sa.select(artifacts).where(artifacts.c.run_id == run_id, artifacts.c.name == name)).first()
    if row is None:
        raise NotFound("artifact", f"{name} of run {run_id}")
    return _artifact(row)


def materialize(store: Store, art: Artifact, dest: str | Path) -> Path:
    """Write an artifact's exact bytes to ``dest`` (every file verified against its hash)."""
    dest = Path(dest)
    if art.manifest is None:
        store.objects.copy_to(art.digest, dest)
        return dest
    entries = canonical.loads(store.objects.get_bytes(art.manifest))["entries"]
    for e in entries:
        store.objects.copy_to(e["digest"], dest / e["path"])
    return dest
