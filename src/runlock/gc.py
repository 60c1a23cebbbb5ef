"""Garbage collection: what killed processes left behind, and objects that nothing references.

Two kinds of leftovers:

**Scratch files.** Objects are written to a scratch file first (``objects/tmp/put-…``,
``snap-…``) and renamed into place when complete; a process killed before that leaves them.
A scratch file's name carries the host and pid of the process writing it
(``snap-HOST~PID~….tmp``). It is a leftover when that process is gone (same host, pid not
running); one written on another host (a store on a shared filesystem) when it has not changed for
a day (``FOREIGN_GRACE``) and for the grace period; one whose name says no owner (an older runlock)
when it is older than the grace period.

**Unreferenced objects.** "Referenced" is computed by construction, not from a list of known
places, so a table or a document added later cannot be forgotten: every ``sha256:…`` id written
anywhere in the database (every text and JSON column of every table, found by reflection: runs
and their locks and contexts, artifacts, snapshots, splits and their reports, references, lineage,
verifications, attestations, the audit log …; only the metric values are skipped, and the rows
that belong to a deleted run: its record, artifacts, notes, verifications, and the audit entries
and lineage edges about it), and then,
transitively, every id written inside a stored JSON document reached that way (locks name code
diffs, snapshot manifests name their files and records index, folder lists name their files,
split manifests name their snapshot). An object that is referenced by nothing but is younger
than the grace period is kept: a run or a snapshot in progress stores its objects before the
record that names them.

``collect(store)`` is a dry run (it reads only); ``collect(store, delete=True)`` needs the admin
role, deletes, and records one ``store.gc`` audit entry with what it removed. The references are
taken twice, before and after the plan, and only what both passes call unreferenced is deleted.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from runlock import audit, authz, canonical
from runlock.errors import InvalidInput
from runlock.store import Store, scratch

DEFAULT_GRACE = 86400.0               # seconds an unreferenced object or an ownerless scratch file is kept
FOREIGN_GRACE = 86400.0               # at least this long for a scratch file another host is writing
DOCUMENT_LIMIT = 64 << 20             # larger objects are data, not documents that name other objects
SKIPPED_TABLES = frozenset({"metrics", "alembic_version"})
_ID = re.compile(rb"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Leftover:
    kind: str          # "scratch" or "object"
    id: str            # a scratch file's path, or an object id
    size: int
    age: float         # seconds since it was last written
    reason: str

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True)
class GcReport:
    grace: float
    referenced: int                     # stored objects something references
    objects: int                        # stored objects in all
    leftovers: list[Leftover] = field(default_factory=list)
    kept_young: int = 0                 # unreferenced, but inside the grace period
    deleted: bool = False

    @property
    def scratch(self) -> list[Leftover]:
        return [x for x in self.leftovers if x.kind == "scratch"]

    @property
    def unreferenced(self) -> list[Leftover]:
        return [x for x in self.leftovers if x.kind == "object"]

    @property
    def bytes(self) -> int:
        return sum(x.size for x in self.leftovers)

    def to_dict(self) -> dict:
        return {"grace": self.grace, "deleted": self.deleted, "objects": self.objects,
                "referenced": self.referenced, "unreferenced": len(self.unreferenced),
                "scratch_files": len(self.scratch), "bytes": self.bytes, "kept_young": self.kept_young,
                "leftovers": [x.to_dict() for x in self.leftovers]}


# -- what is referenced -------------------------------------------------------------------------
def referenced_ids(store: Store) -> set[str]:
    """Every object id the database names, and every id named inside a document reached from them."""
    found = _database_ids(store)
    todo = list(found)
    while todo:
        for oid in _ids_in(_document(store, todo.pop())):
            if oid not in found:
                found.add(oid)
                todo.append(oid)
    return found


def _database_ids(store: Store) -> set[str]:
    found: set[str] = set()
    with store.db.read() as conn:
        meta = sa.MetaData()
        meta.reflect(bind=conn)
        deleted = _deleted_runs(conn, meta)
        for table in meta.sorted_tables:
            if table.name in SKIPPED_TABLES:
                continue
            cols = [c for c in table.columns if not isinstance(c.type, (sa.Integer, sa.Float, sa.Numeric,
                                                                         sa.Boolean))]
            if not cols:
                continue
            for row in conn.execute(sa.select(*cols)):
                if deleted and _of_deleted_run(table.name, row._mapping, deleted):
                    continue
                for value in row:
                    found.update(_ids_in(_as_bytes(value)))
    return found


def _deleted_runs(conn: sa.Connection, meta: sa.MetaData) -> set[str]:
    """Runs deleted with ``runs delete`` (a tombstone): they no longer keep objects alive."""
    runs = meta.tables.get("runs")
    if runs is None or "deleted_at" not in runs.c:
        return set()
    return set(conn.execute(sa.select(runs.c.id).where(runs.c.deleted_at.is_not(None))).scalars())


def _of_deleted_run(table: str, row: Mapping, deleted: set[str]) -> bool:
    """Is this row a deleted run's own (its record, its artifacts, notes, verifications, the
    audit entries and lineage edges about it)? Rows of live runs that name it still count."""
    if table == "runs":
        return row.get("id") in deleted
    if row.get("run_id") in deleted:
        return True
    nodes = {f"run:{r}" for r in deleted}
    if table == "edges":
        return row.get("src") in nodes or row.get("dst") in nodes
    if table == "audit_log":
        details = row.get("details")
        if isinstance(details, str):
            try:
                details = json.loads(details)
            except ValueError:
                details = None
        return row.get("target") in nodes or (isinstance(details, dict) and details.get("run") in deleted)
    return False


def _as_bytes(value: object) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str).encode("utf-8", "surrogatepass")
    return b""


def _ids_in(data: bytes) -> set[str]:
    return {m.decode() for m in _ID.findall(data)} if data else set()


def _document(store: Store, oid: str) -> bytes:
    """The bytes of ``oid`` when it is a JSON document of a sane size; else nothing."""
    try:
        with store.objects.open(oid) as f:
            head = f.read(1)
            if head not in (b"{", b"["):
                return b""
            data = head + f.read(DOCUMENT_LIMIT)
    except Exception:  # noqa: BLE001 - a missing or unreadable object names nothing (fsck reports it)
        return b""
    return data if len(data) <= DOCUMENT_LIMIT else b""


def parse_grace(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``1h`` or ``2d``."""
    m = re.fullmatch(r"\s*(\d{1,9}(?:\.\d{1,6})?)\s*([smhd]?)\s*", text or "")
    if m is None:
        raise InvalidInput(f"{text!r} is not a duration.", hint="Give seconds, or a number with s, m, h or d "
                           "(e.g. --grace 1h; --grace 0 removes every unreferenced object at once).")
    return float(m[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m[2]]


# -- what is left over --------------------------------------------------------------------------
def collect(store: Store, *, grace: float = DEFAULT_GRACE, delete: bool = False) -> GcReport:
    """Find (and with ``delete``, remove) scratch files of dead processes and objects nothing
    references. Deleting needs the admin role and is recorded in the audit log."""
    if not 0 <= grace < float("inf"):
        raise InvalidInput(f"The grace period must be a number of seconds >= 0, not {grace!r}.")
    if delete:
        with store.db.read() as conn:
            authz.require(conn, store.actor, "store.gc", "store", {})
    now = time.time()
    stale = list(_scratch_leftovers(store, now, grace))
    refs = referenced_ids(store)
    all_ids = list(store.objects.iter_ids())
    candidates, young = [], 0
    for oid in all_ids:
        if oid in refs:
            continue
        age = _age(store, oid, now)
        if age is None or age < grace:
            young += 1
            continue
        candidates.append(Leftover("object", oid, _size(store, oid), age, "referenced by nothing"))
    if delete and candidates:
        again = referenced_ids(store)       # a record written meanwhile keeps its objects
        candidates = [c for c in candidates if c.id not in again]
    leftovers = stale + candidates
    if delete:
        leftovers = _delete(store, leftovers, grace)
        _record(store, leftovers, grace)
    return GcReport(grace, sum(oid in refs for oid in all_ids), len(all_ids), leftovers, young, delete)


def count(store: Store, grace: float = DEFAULT_GRACE) -> GcReport:
    """What ``gc`` would remove (for ``fsck``)."""
    return collect(store, grace=grace)


def _scratch_leftovers(store: Store, now: float, grace: float) -> Iterable[Leftover]:
    """Scratch files whose writer has ended (or, when it cannot be checked, older than ``grace``)."""
    local = hasattr(store.objects, "path_of")
    here = scratch.host()
    for path in _files(store.objects.scratch_dir()):
        who = scratch.owner(path.name)
        if who is None or (who.pid is None and not local):   # not ours (a shared temp folder)
            continue
        st = _lstat(path)
        if st is None:
            continue
        age = now - st.st_mtime
        if who.pid is not None and who.host == here:
            if not _alive(who.pid):
                yield Leftover("scratch", str(path), st.st_size, age, f"its process {who.pid} has ended")
        elif who.pid is not None:      # another host's process, which this one cannot see
            if age >= max(grace, FOREIGN_GRACE):
                yield Leftover("scratch", str(path), st.st_size, age, f"written on {who.host}, untouched for a day")
        elif age >= grace:
            yield Leftover("scratch", str(path), st.st_size, age, "its writer is unknown; older than the grace period")
    if local:   # an older runlock wrote its scratch files beside the objects
        for folder in sorted(p for p in Path(store.objects.root).glob("??") if p.is_dir()):
            for path in _files(folder):
                st = _lstat(path)
                if path.name.endswith(".tmp") and st is not None and now - st.st_mtime >= grace:
                    yield Leftover("scratch", str(path), st.st_size, now - st.st_mtime, "older than the grace period")


def _files(folder: Path) -> list[Path]:
    try:
        return sorted(folder / n for n in os.listdir(folder))
    except OSError:
        return []


def _lstat(path: Path) -> os.stat_result | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def _delete(store: Store, leftovers: list[Leftover], grace: float) -> list[Leftover]:
    done = []
    for x in leftovers:
        try:
            if x.kind == "scratch":
                Path(x.id).unlink()
            else:
                age = _age(store, x.id, time.time())
                if age is None or age < grace:      # stored again meanwhile (``freshen``): keep it
                    continue
                store.objects.delete(x.id)
        except FileNotFoundError:
            continue
        done.append(x)
    return done


def _record(store: Store, removed: list[Leftover], grace: float) -> None:
    objects = sorted(x.id for x in removed if x.kind == "object")
    details = {"objects": len(objects), "scratch_files": sum(x.kind == "scratch" for x in removed),
               "bytes": sum(x.size for x in removed), "grace": grace, "removed": objects[:1000],
               "removed_digest": canonical.digest(objects)}
    store.db.run_write(lambda conn: audit.append(conn, store.actor, "store.gc", "store", details=details))


def _age(store: Store, oid: str, now: float) -> float | None:
    objects = store.objects
    try:
        if hasattr(objects, "path_of"):
            return now - os.stat(objects.path_of(oid)).st_mtime
        if hasattr(objects, "client") and hasattr(objects, "key_of"):
            head = objects.client.head_object(Bucket=objects.bucket, Key=objects.key_of(oid))
            return now - head["LastModified"].timestamp()
    except Exception:  # noqa: BLE001 - unknown age: treat as young, never delete
        return None
    return None


def _size(store: Store, oid: str) -> int:
    objects = store.objects
    try:
        if hasattr(objects, "path_of"):
            return os.stat(objects.path_of(oid)).st_size
    except OSError:
        pass
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


