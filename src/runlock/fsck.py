"""Check a store: every object hashes to its id, and every object a record points at exists.

It also counts what ``runlock gc`` would remove (scratch files of ended processes, objects
nothing references and older than the grace period); those are waste, not damage, so they do
not make the store fail the check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from runlock import audit, canonical, gc, paths
from runlock.errors import IntegrityError
from runlock.store import Store
from runlock.store.objects import ObjectProblem
from runlock.store.schema import artifacts, refs, runs
from runlock.tracking import rollups


@dataclass(frozen=True)
class FsckReport:
    objects_checked: int
    problems: list[ObjectProblem] = field(default_factory=list)
    referenced_missing: list[dict] = field(default_factory=list)
    unreferenced: int = 0               # objects gc would remove
    scratch_files: int = 0              # scratch files of ended processes
    leftover_bytes: int = 0
    changed_records: list[str] = field(default_factory=list)   # sealed records that no longer match the audit log

    @property
    def ok(self) -> bool:
        return not self.problems and not self.referenced_missing and not self.changed_records

    def to_dict(self) -> dict:
        return {"ok": self.ok, "objects_checked": self.objects_checked,
                "problems": [p.__dict__ for p in self.problems],
                "referenced_missing": self.referenced_missing, "unreferenced": self.unreferenced,
                "scratch_files": self.scratch_files, "leftover_bytes": self.leftover_bytes,
                "changed_records": self.changed_records}


def referenced(store: Store) -> list[tuple[str, str]]:
    """(object id, who points at it) for every object the records name: locks, artifacts and the
    files inside them, snapshot manifests with their files and records index, split manifests."""
    out: list[tuple[str, str]] = []
    with store.db.read() as conn:
        live = runs.c.deleted_at.is_(None) if "deleted_at" in runs.c else sa.true()   # gc may collect a deleted run's
        deleted = sa.select(runs.c.id).where(sa.not_(live))
        for r in conn.execute(sa.select(runs.c.id, runs.c.recipe_id).where(runs.c.recipe_id.is_not(None), live)):
            out.append((r.recipe_id, f"lock of run:{r.id}"))
        for r in conn.execute(sa.select(artifacts).where(artifacts.c.run_id.not_in(deleted))):
            who = f"artifact {r.name} of run:{r.run_id}"
            out.append((r.manifest or r.digest, who))
            out += [(oid, f"{path} in {who}") for path, oid in _manifest_files(store, r.manifest)]
        for r in conn.execute(sa.select(refs).where(refs.c.namespace.in_(("ds", "split")))):
            who = f"{r.namespace}:{r.name}@v{r.version}"
            out.append((r.target, who))
            if r.namespace == "ds":
                out += [(oid, f"{path} in {who}") for path, oid in _manifest_files(store, r.target)]
    return list(dict.fromkeys(out))


def _manifest_files(store: Store, manifest_id: str | None) -> list[tuple[str, str]]:
    """(path, object id) of every file a folder or snapshot manifest lists; nothing if the
    manifest itself is missing or corrupt (that is reported on its own)."""
    if not manifest_id or store.objects.verify_one(manifest_id) is not None:
        return []
    doc = canonical.loads(store.objects.get_bytes(manifest_id))
    files = [(e["path"], e.get("sha256") or e.get("digest")) for e in doc.get("entries", [])]
    table = doc.get("table") or {}
    if table.get("records"):
        files.append(("records index", table["records"]))
    return files


def unsafe_paths(store: Store) -> list[ObjectProblem]:
    """Snapshot manifests and folder file lists that name a path ``runlock.paths`` refuses (``..``,
    absolute, under ``.git/`` or ``.runlock/``, duplicated): crafted or damaged documents that no
    command will write out. Missing or corrupt documents are reported on their own."""
    with store.db.read() as conn:
        folders = sa.select(artifacts.c.manifest).where(artifacts.c.manifest.is_not(None))
        ids = [r.manifest for r in conn.execute(folders)]
        ids += [r.target for r in conn.execute(sa.select(refs.c.target).where(refs.c.namespace == "ds"))]
    found = []
    for oid in dict.fromkeys(ids):
        if store.objects.verify_one(oid) is not None:
            continue
        try:
            doc = canonical.loads(store.objects.get_bytes(oid))
            paths.check_entries([e.get("path") for e in doc.get("entries", [])], f"Object {oid}")
        except (IntegrityError, ValueError, AttributeError, TypeError) as e:
            found.append(ObjectProblem(oid, "unsafe path", str(e).split(" Nothing was written")[0]))
    return found


def fsck(store: Store, progress: Callable[[int], None] | None = None) -> FsckReport:
    checked, problems = 0, []
    for oid in store.objects.iter_ids():
        problem = store.objects.verify_one(oid)
        if problem:
            problems.append(problem)
        checked += 1
        if progress:
            progress(checked)
    problems += unsafe_paths(store)
    missing = [{"id": oid, "referenced_by": who} for oid, who in referenced(store) if not store.objects.has(oid)]
    waste = gc.count(store)
    with store.db.read() as conn:
        changed = [p.message for p in audit.sealed_problems(conn)]
        changed += [f"Run {run_id}: its chart rollups are not what its metric points give (the metric_rollups "
                    "table was edited); charts and statistics in the UI would be wrong. Delete that run's rows "
                    "from metric_rollups and the UI reads the points instead." for run_id in rollups.differing(conn)
                    if not any(f"run:{run_id} " in m for m in changed)]   # its points changed: named once, above
    return FsckReport(checked, problems, missing, len(waste.unreferenced), len(waste.scratch), waste.bytes,
                      changed)
