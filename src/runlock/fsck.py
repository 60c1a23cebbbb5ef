"""Check a store: every object hashes to its id, and every object a record points at exists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from runlock.store import Store
from runlock.store.objects import ObjectProblem
from runlock.store.schema import artifacts, refs, runs


@dataclass(frozen=True)
class FsckReport:
    objects_checked: int
    problems: list[ObjectProblem] = field(default_factory=list)
    referenced_missing: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.referenced_missing

    def to_dict(self) -> dict:
        return {"ok": self.ok, "objects_checked": self.objects_checked,
                "problems": [p.__dict__ for p in self.problems],
                "referenced_missing": self.referenced_missing}


def referenced(store: Store) -> list[tuple[str, str]]:
    """(object id, who points at it) for every object the metadata names directly."""
    out: list[tuple[str, str]] = []
    with store.db.read() as conn:
        for r in conn.execute(sa.select(runs.c.id, runs.c.recipe_id).where(runs.c.recipe_id.is_not(None))):
            out.append((r.recipe_id, f"lock of run:{r.id}"))
        for r in conn.execute(sa.select(artifacts)):
            out.append((r.manifest or r.digest, f"artifact {r.name} of run:{r.run_id}"))
        for r in conn.execute(sa.select(refs).where(refs.c.namespace.in_(("ds", "split")))):
            out.append((r.target, f"{r.namespace}:{r.name}@v{r.version}"))
    return out


def fsck(store: Store, progress: Callable[[int], None] | None = None) -> FsckReport:
    checked, problems = 0, []
    for oid in store.objects.iter_ids():
        problem = store.objects.verify_one(oid)
        if problem:
            problems.append(problem)
        checked += 1
        if progress:
            progress(checked)
    missing = [{"id": oid, "referenced_by": who} for oid, who in referenced(store) if not store.objects.has(oid)]
    return FsckReport(checked, problems, missing)
