"""Dataset snapshots: a file, a folder tree or a table, pinned by the sha256 of its manifest.

``create_snapshot(store, path, name)`` lists the files (``tree``), hashes and stores them
(``ingest``), reads a tabular file's records (``tabular``), writes the manifest (``manifest``) as
an object, and in one transaction records the snapshot row, names it ``ds:NAME@vN`` (the same
content under the same name keeps its version), appends an audit entry and, for a derived
snapshot, a ``derived_from`` lineage edge. Nothing is recorded until every object is stored, so
an interrupted snapshot leaves no trace but scratch files and unreferenced objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from runlock import audit, canonical, lineage, refs
from runlock._version import __version__
from runlock.data import manifest as mf
from runlock.data import tabular
from runlock.data.ingest import Entry, ProgressFn, ingest
from runlock.data.statcache import StatCache
from runlock.data.tree import list_files
from runlock.errors import InvalidInput, NotFound
from runlock.hashing import digest_bytes, is_digest
from runlock.store import Store
from runlock.store.objects import ObjectStore
from runlock.store.schema import ID, METADATA, NAME, TIME, utcnow
from runlock.store.schema import refs as refs_table

snapshots = sa.Table(
    "snapshots", METADATA,
    sa.Column("id", ID, primary_key=True),                 # sha256 of the manifest object
    sa.Column("kind", sa.String(16), nullable=False),      # files | table
    sa.Column("parent", ID, nullable=True),
    sa.Column("recipe_id", ID, nullable=True),             # sha256 of the canonical recipe
    sa.Column("recipe", sa.JSON, nullable=True),
    sa.Column("record_count", sa.BigInteger, nullable=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("files", sa.Integer, nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("created_by", NAME, nullable=False),
    sa.Index("ix_snapshots_recipe", "recipe_id"),
)

STAT_CACHE = "cache/stat.sqlite"
T = TypeVar("T")


@dataclass(frozen=True)
class Snapshot:
    id: str
    kind: str
    manifest: dict = field(repr=False)
    name: str | None = None
    version: int | None = None
    created: bool = False          # this call made a new version

    @property
    def ref(self) -> str:
        return f"ds:{self.name}@v{self.version}" if self.name else self.id

    @property
    def lineage_node(self) -> str:
        return lineage.node("snapshot", self.id)

    @property
    def entries(self) -> list[dict]:
        return self.manifest["entries"]

    @property
    def record_count(self) -> int | None:
        return (self.manifest.get("table") or {}).get("record_count")

    @property
    def size(self) -> int:
        return self.manifest["size"]

    @property
    def files(self) -> int:
        return self.manifest["files"]

    @property
    def parent(self) -> str | None:
        return self.manifest.get("parent")

    @property
    def recipe(self) -> dict | None:
        return self.manifest.get("recipe")

    def to_dict(self) -> dict:
        table = dict(self.manifest.get("table") or {}) or None
        return {"id": self.id, "ref": self.ref, "name": self.name, "version": self.version,
                "kind": self.kind, "files": self.files, "size": self.size,
                "record_count": self.record_count, "table": table, "parent": self.parent,
                "recipe": self.recipe, "created": self.created}


def create_snapshot(store: Store, path: str | Path, name: str | None = None, *,
                    id_column: str | None = None, kind: str | None = None,
                    on_progress: ProgressFn | None = None, use_cache: bool = True,
                    parent: str | None = None, recipe: dict | None = None) -> Snapshot:
    """Hash and store ``path``, then record it as the next version of ``ds:NAME``.

    ``kind`` forces "files" (store a CSV as a plain file) or "table"; by default a file with a
    tabular suffix (.csv .tsv .jsonl .ndjson .parquet .pq) is a table and anything else files.
    """
    p = Path(path).absolute()
    name = refs.check_name(name or _default_name(p))
    cache = StatCache(store.root / STAT_CACHE) if use_cache else None
    manifest = build_manifest(store.objects, p, id_column=id_column, kind=kind, on_progress=on_progress,
                              cache=cache, parent=parent, recipe=recipe)
    snap = save(store, manifest, name, source=str(p))
    took(snap.id, p)
    return snap


def build_manifest(objects: ObjectStore, path: str | Path, *, id_column: str | None = None,
                   kind: str | None = None, on_progress: ProgressFn | None = None,
                   cache: StatCache | None = None, parent: str | None = None,
                   recipe: dict | None = None) -> dict:
    """Hash ``path`` into ``objects`` (each file, and a table's records index) and return its
    manifest, recording nothing: ``save`` names it here, a team server names it there."""
    p = Path(path).absolute()
    fmt = _table_format(p, kind, id_column)
    parsed = _parse_table(p, fmt, id_column) if fmt else None   # a malformed table stores nothing
    entries = ingest(objects, list_files(p), cache=cache, on_progress=on_progress)
    table = _table_section(objects, entries[0], fmt, id_column, parsed) if fmt else None
    return mf.build("table" if fmt else "files", entries, table=table, parent=parent, recipe=recipe)


def default_name(path: str | Path) -> str:
    """The dataset name a path gets when none is given."""
    return _default_name(Path(path).absolute())


# Where this process took each snapshot from (absolute path), so that a run using it (or a split
# of it) can record where the script reads it, and a rerun can rebuild it there.
_taken_here: dict[str, str] = {}


def taken_from(snapshot_id: str) -> str | None:
    """The absolute path this process last snapshotted ``snapshot_id`` from, if it did."""
    return _taken_here.get(snapshot_id)


def took(snapshot_id: str, path: str | Path) -> None:
    """Note that this process snapshotted ``snapshot_id`` from ``path`` (a client of a team
    server names its snapshots there, and a remote run's ``use`` records the path)."""
    _taken_here[snapshot_id] = str(path)


def taken_here() -> dict[str, str]:
    """Every snapshot id this process took, with the absolute path it took it from."""
    return dict(_taken_here)


def save(store: Store, manifest: dict, name: str, *, source: str | None = None) -> Snapshot:
    """Store ``manifest`` and name it ``ds:NAME``, in one audited transaction."""
    oid = store.objects.put_bytes(mf.encode(manifest))
    recipe = manifest.get("recipe")

    def write(conn: sa.Connection) -> tuple[refs.Ref, bool]:
        if conn.execute(sa.select(snapshots.c.id).where(snapshots.c.id == oid)).first() is None:
            conn.execute(snapshots.insert().values(
                id=oid, kind=manifest["kind"], parent=manifest.get("parent"),
                recipe_id=canonical.digest(recipe) if recipe else None, recipe=recipe,
                record_count=(manifest.get("table") or {}).get("record_count"), size=manifest["size"],
                files=manifest["files"], created_at=utcnow(), created_by=store.actor))
        before = _latest_target(conn, name)
        ref, created = refs.assign(conn, "ds", name, oid, actor=store.actor,
                                   meta={"source": source} if source else {})
        if created:
            audit.append(conn, store.actor, "snapshot.create", ref.ref, before=before, after=oid,
                         details={"kind": manifest["kind"], "files": manifest["files"],
                                  "size": manifest["size"], "parent": manifest.get("parent"),
                                  "source": source,
                                  # a derived snapshot's recipe leaves the version out (its id must not
                                  # move on upgrade); which runlock derived it is kept here
                                  **({"runlock_version": __version__} if recipe else {})})
        if manifest.get("parent"):
            lineage.record_edge(conn, "derived_from", lineage.node("snapshot", oid),
                                lineage.node("snapshot", manifest["parent"]))
        return ref, created

    ref, created = store.db.run_write(write)
    return Snapshot(oid, manifest["kind"], manifest, ref.name, ref.version, created)


@dataclass(frozen=True)
class SnapshotInfo:
    """One named version, for listings."""

    ref: str
    id: str
    kind: str
    files: int
    size: int
    record_count: int | None
    parent: str | None
    created_at: str
    created_by: str


def list_snapshots(store: Store, name: str | None = None) -> list[SnapshotInfo]:
    """Every ``ds:NAME@vN`` (of one name, or all), oldest version first."""
    q = (sa.select(refs_table, snapshots).join(snapshots, snapshots.c.id == refs_table.c.target)
         .where(refs_table.c.namespace == "ds").order_by(refs_table.c.name, refs_table.c.version))
    if name is not None:
        q = q.where(refs_table.c.name == refs.check_name(name))
    with store.db.read() as conn:
        rows = conn.execute(q).mappings().all()
    return [SnapshotInfo(f"ds:{r['name']}@v{r['version']}", r["target"], r["kind"], r["files"], r["size"],
                         r["record_count"], r["parent"], r[refs_table.c.created_at], r[refs_table.c.created_by])
            for r in rows]


def load_snapshot(store: Store, ref: str) -> Snapshot:
    """The snapshot a reference names: ``ds:NAME@vN``, ``ds:NAME`` (latest), ``NAME`` or an id."""
    if isinstance(ref, Snapshot):
        return ref
    text = ref.strip() if isinstance(ref, str) else ref
    if isinstance(text, str) and is_digest(text):
        with store.db.read() as conn:
            known = conn.execute(sa.select(snapshots.c.id).where(snapshots.c.id == text)).first()
        if known is None:
            raise NotFound("dataset snapshot", text, hint="List snapshots with `runlock data list`.")
        names = refs.names_for(store, "ds", text)
        name, version = (names[-1].name, names[-1].version) if names else (None, None)
        oid = text
    else:
        text = text if ":" in text else f"ds:{text}"
        r = refs.resolve(store, text, "ds")
        oid, name, version = r.target, r.name, r.version
    manifest = mf.decode(store.objects.get_bytes(oid), oid)
    return Snapshot(oid, manifest["kind"], manifest, name, version)


def read_table(store: Store, snap: Snapshot | str):  # -> pyarrow.Table
    """The records of a table snapshot: ``_record_id`` (string) first, then the data columns."""
    return tabular.to_arrow(parse_table(store, snap))


def parse_table(store: Store, snap: Snapshot | str) -> tabular.Parsed:
    """The records of a table snapshot, read back from the stored (hash-verified) file."""
    snap = load_snapshot(store, snap)
    table = snap.manifest.get("table")
    if snap.kind != "table" or not table:
        raise InvalidInput(f"{snap.ref} is a snapshot of files, not a table.",
                           hint="Snapshot a .csv, .tsv, .jsonl or .parquet file to get records.")
    entry = snap.entries[0]
    parsed = tabular.parse(store.objects.get_bytes(entry["sha256"]), table["format"],
                           id_column=table["id_column"], source=entry["path"])
    if parsed.record_count != table["record_count"] or parsed.columns != table["columns"]:
        raise InvalidInput(f"{snap.ref} was written by a runlock that reads {table['format']} "
                           "differently from this one.", hint="Read it with the runlock version that made it.")
    return parsed


def records_index(store: Store, snap: Snapshot) -> dict[str, str]:
    """``{record id: content hash}`` of a table snapshot (empty for files)."""
    table = snap.manifest.get("table")
    if not table:
        return {}
    return mf.record_hashes(canonical.loads(store.objects.get_bytes(table["records"])))


def _parse_table(p: Path, fmt: str, id_column: str | None) -> tuple[str, tabular.Parsed]:
    """(content id, records) of the table file at ``p``, read before anything is stored."""
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InvalidInput(f"Cannot read {p}: {e.strerror}.") from None
    return digest_bytes(data), tabular.parse(data, fmt, id_column=id_column, source=p.name)


def _table_section(objects: ObjectStore, entry: Entry, fmt: str, id_column: str | None,
                   pre: tuple[str, tabular.Parsed] | None = None) -> dict:
    if pre is not None and pre[0] == entry.sha256:
        parsed = pre[1]   # the bytes parsed are the bytes stored
    else:                 # the file changed while it was stored: parse what was stored
        parsed = tabular.parse(objects.get_bytes(entry.sha256), fmt, id_column=id_column,
                               source=entry.path)
    index_id = objects.put_bytes(canonical.dumps(mf.records_index(parsed, id_column)))
    return mf.table_section(parsed, id_column, index_id)


def _table_format(p: Path, kind: str | None, id_column: str | None) -> str | None:
    if kind not in (None, "files", "table"):
        raise InvalidInput(f"Unknown snapshot kind {kind!r}; expected 'files' or 'table'.")
    if not p.exists():
        raise InvalidInput(f"{p} does not exist.", hint="Check the path.")
    fmt = tabular.format_of(p) if p.is_file() and kind != "files" else None
    if fmt is None and (kind == "table" or id_column):
        raise InvalidInput(f"{p} is not a tabular file, so it has no records or id column.",
                           hint="Tables are single .csv, .tsv, .jsonl, .ndjson, .parquet or .pq files.")
    return fmt


def _default_name(p: Path) -> str:
    return safe_name(p.stem if p.is_file() else p.name)


def safe_name(text: str) -> str:
    """``text`` made into an allowed dataset name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("._-")[:128] or "data"


def _latest_target(conn: sa.Connection, name: str) -> str | None:
    t = refs_table
    return conn.execute(sa.select(t.c.target).where(t.c.namespace == "ds", t.c.name == name)
                        .order_by(t.c.version.desc()).limit(1)).scalar()
