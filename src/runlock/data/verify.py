"""Re-hashing snapshots: never trusting a cache, a stat or an earlier answer.

``verify(store)`` re-hashes every object each snapshot names (manifest, files, records index)
and reports what is missing or corrupt. ``verify(store, ref, path=DIR)`` instead re-hashes the
files in ``DIR`` and compares them with the snapshot: files missing, extra, or changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa

from runlock.data.diff import compare
from runlock.data.ingest import WORKERS
from runlock.data.snapshot import Snapshot, load_snapshot, snapshots
from runlock.data.tree import list_files
from runlock.errors import InvalidInput
from runlock.hashing import digest_file
from runlock.store import Store

T = TypeVar("T")
Progress = Callable[[int, int], None]


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


def verify(store: Store, ref: str | Snapshot | None = None, *, path: str | Path | None = None,
           on_progress: Progress | None = None) -> VerifyReport:
    """``on_progress(done, total)`` is called as files are re-hashed."""
    if path is not None:
        if ref is None:
            raise InvalidInput("Verifying a folder needs the snapshot to compare it with.",
                               hint="Pass a reference too: runlock data verify ds:NAME@vN --path DIR.")
        return verify_path(store, load_snapshot(store, ref), Path(path), on_progress=on_progress)
    if ref is not None:
        return _verify_objects(store, [load_snapshot(store, ref)], on_progress)
    with store.db.read() as conn:
        ids = [r.id for r in conn.execute(sa.select(snapshots.c.id).order_by(snapshots.c.id))]
    return _verify_objects(store, [load_snapshot(store, i) for i in ids], on_progress)


def verify_path(store: Store | None, snap: Snapshot, path: Path, *, on_progress: Progress | None = None) -> VerifyReport:
    """Re-hash the files under ``path`` (no stat cache) and compare them with ``snap`` (its
    manifest says everything: a team server's client compares with the one the server sent)."""
    files = list_files(path)
    with ThreadPoolExecutor(WORKERS) as pool:
        found = dict(zip([rel for rel, _ in files],
                         _counted(pool.map(lambda f: digest_file(f[1])[0], files), len(files), on_progress)))
    changes = compare({e["path"]: e["sha256"] for e in snap.entries}, found)
    problems = ([Problem(snap.ref, "missing", p) for p in changes.removed]
                + [Problem(snap.ref, "extra", p) for p in changes.added]
                + [Problem(snap.ref, "changed", p) for p in changes.changed])
    return VerifyReport(1, len(files), sorted(problems, key=lambda p: p.path or ""))


def _verify_objects(store: Store, snaps: list[Snapshot], on_progress: Progress | None = None) -> VerifyReport:
    work = []
    for s in snaps:
        work.append((s, None, s.id))
        work.extend((s, e["path"], e["sha256"]) for e in s.entries)
        if s.manifest.get("table"):
            work.append((s, None, s.manifest["table"]["records"]))
    with ThreadPoolExecutor(WORKERS) as pool:
        found = list(_counted(pool.map(lambda w: store.objects.verify_one(w[2]), work), len(work), on_progress))
    problems = [Problem(s.ref, p.problem, rel, oid, p.detail)
                for (s, rel, oid), p in zip(work, found) if p is not None]
    return VerifyReport(len(snaps), len(work), problems)


def _counted(results: Iterable[T], total: int, on_progress: Progress | None) -> Iterator[T]:
    """Pass results through, reporting ``(done, total)`` as each arrives."""
    for done, r in enumerate(results, 1):
        if on_progress:
            on_progress(done, total)
        yield r
