"""Artifacts: files or folders a run produced, stored by content.

A file's content id is its sha256. A folder's is the sha256 over its sorted per-file entries
(the OpenSSF model-signing convention: each file hashed alone, then the list hashed), so a folder
is identified by every byte of every file and by nothing else: not its location, its mtimes or
the order the filesystem lists it in. The folder's file list is stored as a manifest object.

The catalog (``list_artifacts``, ``find``, ``show``, ``get_artifact``) reads them back: an
artifact is named ``art:sha256:…`` (its content, whoever logged it) or ``RUN/NAME``. Downloads
land beside the destination first and replace it only once every byte has been verified, and
never overwrite anything unless asked to.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import audit, canonical, lineage, refs
from runlock.errors import Conflict, IntegrityError, InvalidInput, NotFound
from runlock.hashing import is_digest
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


def _path_key(path: str) -> tuple[str, ...]:
    # model-signing sorts pathlib paths, which compare part by part: "a/b" before "a-c".
    return tuple(path.split("/"))


def tree_digest(entries: list[dict]) -> str:
    """Content id of a folder from its entries ``{"path", "size", "digest"}``: the sha256 over
    the raw per-file sha256 digests, in path order. This is the root digest a model-signing
    signature carries for the same folder (its ``files`` serialisation, sha256)."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: _path_key(e["path"])):
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


ProgressFn = Callable[[int, int], None]      # (bytes written, bytes in all)


def materialize(store: Store, art: Artifact, dest: str | Path, on_progress: ProgressFn | None = None) -> Path:
    """Write an artifact's exact bytes to ``dest`` (every file verified against its hash)."""
    dest = Path(dest)
    if art.manifest is None:
        store.objects.copy_to(art.digest, dest)
        if on_progress:
            on_progress(art.size, art.size)
        return dest
    done = 0
    for e in folder_entries(store, art):
        store.objects.copy_to(e["digest"], dest / e["path"])
        done += e["size"]
        if on_progress:
            on_progress(done, art.size)
    return dest


def folder_entries(store: Store, art: Artifact) -> list[dict]:
    """A folder artifact's files ``{"path", "size", "digest"}``, checked against its id."""
    if art.manifest is None:
        return []
    entries = canonical.loads(store.objects.get_bytes(art.manifest))["entries"]
    actual = tree_digest(entries)
    if actual != art.digest:
        raise IntegrityError(f"The file list of artifact {art.digest} hashes to {actual}.",
                             expected=art.digest, actual=actual,
                             hint="The metadata was changed behind runlock's back; run `runlock fsck`.")
    return entries


# -- the catalog ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArtifactDetail:
    """One artifact with everything known about its content: who made it, which models name it."""

    artifact: Artifact
    producers: list[dict]      # every (run, name) that logged these exact bytes
    models: list[str]          # model versions pointing at these bytes
    entries: list[dict]        # a folder's files; empty for a file

    def to_dict(self) -> dict:
        return {**self.artifact.to_dict(), "ref": self.artifact.ref, "producers": self.producers,
                "models": self.models, "entries": self.entries}


@dataclass(frozen=True)
class Download:
    ref: str
    digest: str
    dest: str
    files: int
    size: int

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def list_artifacts(store: Store, *, run: str | None = None, kind: str | None = None,
                   name: str | None = None, limit: int | None = None) -> list[Artifact]:
    """Artifacts, newest first, optionally of one run (id or prefix), kind or name."""
    q = sa.select(artifacts).order_by(artifacts.c.created_at.desc(), artifacts.c.run_id, artifacts.c.name)
    if run:
        q = q.where(artifacts.c.run_id.like(f"{_run_id(run)}%"))
    if kind:
        q = q.where(artifacts.c.kind == kind)
    if name:
        q = q.where(artifacts.c.name == name)
    if limit:
        q = q.limit(limit)
    with store.db.read() as conn:
        return [_artifact(r) for r in conn.execute(q)]


def find(store: Store, ref: str) -> Artifact:
    """The artifact ``ref`` names: ``art:sha256:…``, ``sha256:…``, or ``RUN/NAME`` (RUN may be a
    unique prefix of at least 6 characters, with or without ``run:``)."""
    text = ref.strip()
    digest = text.split(":", 1)[1] if text.startswith(("art:", "artifact:")) else text
    if is_digest(digest):
        with store.db.read() as conn:
            row = conn.execute(sa.select(artifacts).where(artifacts.c.digest == digest)
                               .order_by(artifacts.c.created_at, artifacts.c.run_id).limit(1)).first()
        if row is None:
            raise NotFound("artifact", ref, hint="List artifacts with `runlock artifacts list`.")
        return _artifact(row)
    run, _, name = text.rpartition("/")
    if not run or not name:
        raise InvalidInput(f"{ref!r} is not an artifact reference; expected art:sha256:…, sha256:… "
                           "or RUN_ID/NAME.", hint="List artifacts with `runlock artifacts list`.")
    if len(_run_id(run)) < 6:
        raise InvalidInput(f"Run reference {run!r} is too short; give at least 6 characters of the id.")
    with store.db.read() as conn:
        rows = conn.execute(sa.select(artifacts).where(
            artifacts.c.run_id.like(f"{_run_id(run)}%"), artifacts.c.name == name).limit(2)).all()
    if not rows:
        raise NotFound("artifact", ref, hint="List artifacts with `runlock artifacts list`.")
    if len(rows) > 1:
        raise InvalidInput(f"{ref!r} matches artifacts of several runs; give more of the run id.")
    return _artifact(rows[0])


def show(store: Store, ref: str) -> ArtifactDetail:
    art = find(store, ref)
    with store.db.read() as conn:
        rows = conn.execute(sa.select(artifacts.c.run_id, artifacts.c.name, artifacts.c.created_at)
                            .where(artifacts.c.digest == art.digest).order_by(artifacts.c.created_at))
        producers = [{"run": r.run_id, "name": r.name, "created_at": r.created_at} for r in rows]
    models = [r.ref for r in refs.names_for(store, "model", art.digest)]
    return ArtifactDetail(art, producers, models, folder_entries(store, art))


def download(store: Store, art: Artifact, dest: str | Path, *, force: bool = False,
             on_progress: ProgressFn | None = None) -> Download:
    """Write ``art`` to ``dest``, which must not exist unless ``force``. The bytes land in a
    scratch path beside ``dest`` first and replace it only once every file has been verified."""
    dest = Path(dest).absolute()
    if (dest.exists() or dest.is_symlink()) and not force:
        raise Conflict(f"{dest} already exists.", hint="Pick another destination, or pass --force to replace it.")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    except OSError as e:
        raise InvalidInput(f"Cannot write to {dest.parent}: {e.strerror}.") from e
    try:
        written = materialize(store, art, scratch / "content", on_progress)
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.replace(written, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Download(art.ref, art.digest, str(dest), art.files, art.size)


def get_artifact(store: Store, ref: str, dest: str | Path, *, force: bool = False,
                 on_progress: ProgressFn | None = None) -> Download:
    """Download the artifact ``ref`` names to ``dest`` and record the read in the audit log."""
    art = find(store, ref)
    result = download(store, art, dest, force=force, on_progress=on_progress)
    store.db.run_write(lambda conn: audit.append(conn, store.actor, "artifact.read", art.lineage_node,
                                                 after=art.digest, details={"dest": result.dest}))
    return result


def _run_id(ref: str) -> str:
    return ref[4:] if ref.startswith("run:") else ref
