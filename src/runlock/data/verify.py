"""Re-hashing snapshots: never trusting a cache, a stat or an earlier answer.

``verify(store)`` re-hashes every object each snapshot names (manifest, files, records index)
and reports what is missing or corrupt. ``verify(store, ref, path=DIR)`` instead re-hashes the
files in ``DIR`` and compares them with the snapshot: files missing, extra, or changed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from runlock.data.diff import compare
from runlock.data.ingest import WORKERS
from runlock.data.snapshot import Snapshot, load_snapshot, snapshots
from runlock.data.tree import list_files
from runlock.errors import InvalidInput
from runlock.hashing import digest_file
from runlock.store import Store


@dataclass(frozen=True)
class Problem:
    snapshot: str
    problem: str      # missing | corrupt | changed | extra | unreadable
    path: str | None = None
    object: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class VerifyReport:
    snapshots: int
    objects: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "snapshots": self.snapshots, "objects": self.objects,
                "problems": [p.__dict__ for p in self.problems]}


def verify(store: Store, ref: str | Snapshot | None = None, *, path: str | Path | None = None) -> VerifyReport:
    if path is not None:
        if ref is None:
            raise InvalidInput("Verifying a folder needs the snapshot to compare it with.",
                               hint="Pass a reference too: runlock data verify ds:NAME@vN --path DIR.")
        return verify_path(store, load_snapshot(store, ref), Path(path))
    if ref is not None:
        return _verify_objects(store, [load_snapshot(store, ref)])
    with store.db.read() as conn:
        ids = [r.id for r in conn.execute(sa.select(snapshots.c.id).order_by(snapshots.c.id))]
    return _verify_objects(store, [load_snapshot(store, i) for i in ids])


def verify_path(store: Store, snap: Snapshot, path: Path) -> VerifyReport:
    """Re-hash the files under ``path`` (no stat cache) and compare them with ``snap``."""
    files = list_files(path)
    with ThreadPoolExecutor(WORKERS) as pool:
        found = dict(zip([rel for rel, _ in files], pool.map(lambda f: digest_file(f[1])[0], files)))
    changes = compare({e["path"]: e["sha256"] for e in snap.entries}, found)
    problems = ([Problem(snap.ref, "missing", p) for p in changes.removed]
                + [Problem(snap.ref, "extra", p) for p in changes.added]
                + [Problem(snap.ref, "changed", p) for p in changes.changed])
    return VerifyReport(1, len(files), sorted(problems, key=lambda p: p.path or ""))


def _verify_objects(store: Store, snaps: list[Snapshot]) -> VerifyReport:
    work = []
    for s in snaps:
        work.append((s, None, s.id))
        work.extend((s, e["path"], e["sha256"]) for e in s.entries)
        if s.manifest.get("table"):
            work.append((s, None, s.manifest["table"]["records"]))
    with ThreadPoolExecutor(WORKERS) as pool:
        found = list(pool.map(lambda w: store.objects.verify_one(w[2]), work))
    problems = [Problem(s.ref, p.problem, rel, oid, p.detail)
                for (s, rel, oid), p in zip(work, found) if p is not None]
    return VerifyReport(len(snaps), len(work), problems)
