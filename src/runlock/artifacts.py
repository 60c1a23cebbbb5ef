"""Artifacts: files or folders a run produced, stored by content.

A file's content id is its sha256. A folder's is the sha256 of its *folder document*, the
canonical JSON ``{"entries": [{"digest", "path", "size"}, …], "format": "runlock.folder/1",
"kind": "folder"}`` with the entries sorted by path. The document is stored as an object, so a
folder's id is also the id of its file list, and it binds every file's path as well as its
bytes: the same bytes under other names make another folder. Nothing else enters it: not the
folder's location, its mtimes or the order the filesystem lists it in. (A folder logged by a
runlock before this rule has a file list without ``format``; its id is the model-signing digest
below, which it keeps, and its paths are checked like any other.) ``model_signing_digest``
gives the root digest an OpenSSF model-signing signature carries for the same folder (which
hashes the per-file digests alone; the signature binds the names in its predicate).

Folders are listed as snapshots are (``runlock.data.tree``): links are never followed out of the
folder, and ``.git`` and ``.runlock`` folders are never captured.

The catalog (``list_artifacts``, ``find``, ``show``, ``get_artifact``) reads them back: an
artifact is named ``art:sha256:…`` (its content, whoever logged it) or ``RUN/NAME``. Every path
of a folder is checked (``runlock.paths``) before a byte is written, files are written through
directory descriptors that never follow a link, and downloads land in a scratch folder first and
replace anything only once every byte has been verified. ``--force`` replaces the files the
artifact names and nothing else; it never deletes, and it refuses a destination that is or holds
a store or a repository, or that is the project the command runs in.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock import audit, authz, canonical, lineage, refs
from runlock.data.tree import list_files
from runlock.errors import Conflict, IntegrityError, InvalidInput, NotFound
from runlock.hashing import digest_bytes, is_digest
from runlock.paths import Dest, check_component, check_entries, inside_reserved, is_within
from runlock.store import DIRNAME, Store
from runlock.store.schema import artifacts, utcnow
from runlock.tracking import records

FOLDER_MEDIA_TYPE = "application/vnd.runlock.folder+json"
FOLDER_FORMAT = "runlock.folder/1"


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


def folder_document(entries: list[dict]) -> dict:
    """The canonical file list of a folder; its sha256 is the folder's content id."""
    rows = sorted(({"path": e["path"], "size": e["size"], "digest": e["digest"]} for e in entries),
                  key=lambda e: e["path"])
    return {"format": FOLDER_FORMAT, "kind": "folder", "entries": rows}


def tree_digest(entries: list[dict]) -> str:
    """Content id of a folder from its entries ``{"path", "size", "digest"}``: binds every path,
    size and byte (see the module docstring)."""
    return digest_bytes(canonical.dumps(folder_document(entries)))


def _path_key(path: str) -> tuple[str, ...]:
    # model-signing sorts pathlib paths, which compare part by part: "a/b" before "a-c".
    return tuple(path.split("/"))


def model_signing_digest(entries: list[dict]) -> str:
    """The root digest an OpenSSF model-signing signature carries for this folder (its ``files``
    serialisation, sha256): the sha256 over the raw per-file digests in path order. It does not
    bind names, so it is never an id here; it lets a runlock folder be matched to such a signature."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: _path_key(e["path"])):
        h.update(bytes.fromhex(e["digest"].split(":", 1)[1]))
    return f"sha256:{h.hexdigest()}"


def store_path(store: Store, path: str | Path) -> tuple[str, str | None, str, int, int]:
    """Put a file or folder into the object store: (digest, manifest id, media type, size, files).

    A folder is listed by ``runlock.data.tree.list_files``: no link is followed out of it and no
    ``.git`` or ``.runlock`` folder is captured; a path in the store itself is refused."""
    p = Path(path)
    if not p.exists():
        raise InvalidInput(f"{p} does not exist.", hint="Check the path of the artifact.")
    root = getattr(store, "root", None)
    if root is not None and (is_within(p, root) or inside_reserved(p)):
        raise InvalidInput(f"{p} is inside a runlock store or a repository's .git folder; it cannot be "
                           "logged as an artifact.", hint="Log the folder that holds your outputs.")
    files = list_files(p)
    if p.is_file():
        oid = store.objects.put_file(files[0][1])
        media = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        return oid, None, media, os.stat(files[0][1]).st_size, 1
    entries = []
    for rel, real in files:
        oid = store.objects.put_file(real)
        entries.append({"path": rel, "size": os.stat(real).st_size, "digest": oid})
    doc = folder_document(entries)
    manifest = store.objects.put_bytes(canonical.dumps(doc))
    return manifest, manifest, FOLDER_MEDIA_TYPE, sum(e["size"] for e in entries), len(entries)


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


def materialize(store: Store, art: Artifact, dest: str | Path, on_progress: ProgressFn | None = None, *,
                exclusive: bool = False) -> Path:
    """Write an artifact's exact bytes to ``dest`` (every file verified against its hash), never
    below a link and never outside ``dest``. A folder's paths are all checked first; with
    ``exclusive`` (a fresh folder) no file is ever replaced."""
    dest = Path(os.path.abspath(dest))
    entries = folder_entries(store, art)
    if art.manifest is None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with Dest(dest.parent) as out, store.objects.open(art.digest) as src:
            out.write(check_component(dest.name, "destination"), src, art.digest)
        if on_progress:
            on_progress(art.size, art.size)
        return dest
    done = 0
    dest.mkdir(parents=True, exist_ok=True)
    with Dest(dest, exclusive=exclusive) as out:
        for e in entries:
            with store.objects.open(e["digest"]) as src:
                out.write(e["path"], src, e["digest"])
            done += e["size"]
            if on_progress:
                on_progress(done, art.size)
    return dest


def folder_entries(store: Store, art: Artifact) -> list[dict]:
    """A folder artifact's files ``{"path", "size", "digest"}``, checked against its id and
    every path checked by ``runlock.paths`` (a crafted list is refused, naming the entry)."""
    if art.manifest is None:
        return []
    doc = canonical.loads(store.objects.get_bytes(art.manifest))
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and {"path", "size", "digest"} <= e.keys()
                                                for e in entries):
        raise IntegrityError(f"Object {art.manifest} is not the file list of a folder artifact.",
                             hint="The metadata was changed behind runlock's back; run `runlock fsck`.")
    check_entries([e["path"] for e in entries], f"The file list of artifact {art.digest}")
    legacy = "format" not in doc        # logged before ids bound paths: its id is the model-signing digest
    actual = model_signing_digest(entries) if legacy else tree_digest(entries)
    if actual != art.digest:
        raise IntegrityError(f"The file list of artifact {art.digest} hashes to {actual}.",
                             expected=art.digest, actual=actual,
                             hint="The metadata was changed behind runlock's back; run `runlock fsck`.")
    return folder_document(entries)["entries"]


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
        q = q.where(artifacts.c.run_id == records.get(store, run).id)   # the one run resolver
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
    run_id = records.get(store, run).id   # the one run resolver: prefixes, any case, wildcards escaped
    with store.db.read() as conn:
        row = conn.execute(sa.select(artifacts).where(artifacts.c.run_id == run_id, artifacts.c.name == name)).first()
    if row is None:
        raise NotFound("artifact", ref, hint=f"List the artifacts of that run with `runlock artifacts list --run {run}`.")
    return _artifact(row)


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
    """Write ``art`` to ``dest``, which must not exist unless ``force``. Every path is checked
    and every byte verified in a scratch folder before anything at ``dest`` changes.

    With ``force``, an existing file (or link) ``dest`` is replaced by a file artifact; a folder
    artifact writes its files into an existing folder ``dest``, replacing those it names and
    leaving everything else there. ``force`` refuses a ``dest`` that is or holds a store or a
    ``.git`` folder, or is (or holds) the project the working directory belongs to."""
    dest = Path(os.path.abspath(dest))
    entries = folder_entries(store, art)          # refuses a crafted file list before any write
    reserved = inside_reserved(dest)
    if reserved is not None or is_within(dest, store.root):
        raise InvalidInput(f"{dest} is inside {reserved or store.root}; runlock never writes there.",
                           hint="Pick a destination outside the store and any .git folder.")
    exists = refuse_existing(dest, force)
    if exists:
        _check_force(store, art, dest, entries)
    if exists and art.manifest is not None:
        _merge(store, art, dest, entries, on_progress)
        return Download(art.ref, art.digest, str(dest), art.files, art.size)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name[:100]}.", suffix=".tmp"))
    except OSError as e:
        raise InvalidInput(f"Cannot write to {dest.parent}: {e.strerror}.") from e
    try:
        written = materialize(store, art, scratch / "content", on_progress, exclusive=True)
        os.replace(written, dest)      # replaces a file or a link itself, never what a link points at
    except OSError as e:
        raise InvalidInput(f"Cannot write {dest}: {e.strerror or e}.", hint="Check free space and permissions.") from e
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Download(art.ref, art.digest, str(dest), art.files, art.size)


def refuse_existing(dest: str | Path, force: bool) -> bool:
    """Does ``dest`` exist? A ``Conflict`` when it does and ``force`` is not given (a team
    server's client asks this before the server records a read it could not write)."""
    exists = os.path.lexists(dest)
    if exists and not force:
        raise Conflict(f"{dest} already exists.", hint="Pick another destination, or pass --force to replace "
                       "the files the artifact names.")
    return exists


def _check_force(store: Store, art: Artifact, dest: Path, entries: list[dict]) -> None:
    """Refuse a --force that could harm a store, a repository or the project, or that would
    have to delete something (a folder where a file goes, or the reverse)."""
    for name in (DIRNAME, ".git"):
        if os.path.lexists(dest / name):
            raise InvalidInput(f"{dest} holds {name}; --force never writes into a project or a store.",
                               hint="Download into a new folder.")
    try:
        project = _project_root(Path.cwd())
    except OSError:             # the working directory was removed: there is no project to guard
        project = None
    for guarded in filter(None, (store.root, project)):
        if is_within(guarded, dest):
            raise InvalidInput(f"{dest} is, or holds, {guarded}; --force never writes over a project or a store.",
                               hint="Download into a new folder.")
    st = os.lstat(dest)
    if art.manifest is None and stat.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{dest} is a folder and the artifact is one file; --force never deletes a folder.",
                           hint="Give the path of the file to write, e.g. DEST/NAME.")
    if art.manifest is not None:
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidInput(f"{dest} is {'a symbolic link' if stat.S_ISLNK(st.st_mode) else 'a file'} and the "
                               "artifact is a folder; runlock never follows a link or deletes a file it does "
                               "not name.", hint="Download into a new folder.")
        with Dest(dest) as out:
            for e in entries:
                out.check_replaceable(e["path"])


def _merge(store: Store, art: Artifact, dest: Path, entries: list[dict], on_progress: ProgressFn | None) -> None:
    """Stage every file (verified) in a scratch folder inside ``dest``, then rename each over the
    file it replaces: a failure before the renames leaves ``dest`` as it was."""
    try:
        scratch = Path(tempfile.mkdtemp(dir=dest, prefix=".runlock-get-", suffix=".tmp"))
    except OSError as e:
        raise InvalidInput(f"Cannot write to {dest}: {e.strerror}.") from e
    try:
        staged = materialize(store, art, scratch / "content", on_progress, exclusive=True)
        with Dest(staged) as src, Dest(dest) as out:
            for e in entries:
                out.move_in(src, e["path"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _project_root(cwd: Path) -> Path | None:
    """The nearest folder at or above ``cwd`` holding a store or a git repository."""
    for d in (cwd, *cwd.parents):
        if (d / DIRNAME).exists() or (d / ".git").exists():
            return d
    return None


def get_artifact(store: Store, ref: str, dest: str | Path, *, force: bool = False,
                 on_progress: ProgressFn | None = None) -> Download:
    """Download the artifact ``ref`` names to ``dest`` and record the read in the audit log."""
    art = prepare_read(store, ref)
    result = download(store, art, dest, force=force, on_progress=on_progress)
    record_read(store, art, result.dest)
    return result


def prepare_read(store: Store, ref: str) -> Artifact:
    """The artifact ``ref`` names, once the reader is allowed and its run is sealed as recorded
    (checked before anything is written: a team server answers this, the client then writes)."""
    art = find(store, ref)
    with store.db.read() as conn:
        authz.require(conn, store.actor, "artifact.read", art.lineage_node, {"run": art.run_id})
    audit.require_sealed(store, f"run:{art.run_id}")
    return art


def record_read(store: Store, art: Artifact, dest: str) -> None:
    """Append the ``artifact.read`` audit entry of a download of ``art`` to ``dest``."""
    store.db.run_write(lambda conn: audit.append(conn, store.actor, "artifact.read", art.lineage_node,
                                                 after=art.digest, details={"dest": dest, "run": art.run_id}))
