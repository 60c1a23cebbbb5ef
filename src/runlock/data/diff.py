"""What changed between two snapshots: files by path, and records by record id.

Files are compared by content hash at each path. Records (when both snapshots are tables) are
compared by id: an id only in the newer one is added, only in the older one removed, in both
with a different canonical form changed. When the ids are content hashes (no id column), an
edited record shows as one removed and one added.
"""

from __future__ import annotations

from dataclasses import dataclass

from runlock.data.snapshot import Snapshot, load_snapshot, records_index
from runlock.store import Store


@dataclass(frozen=True)
class Changes:
    added: list[str]
    removed: list[str]
    changed: list[str]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_dict(self) -> dict:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


@dataclass(frozen=True)
class SnapshotDiff:
    old: str
    new: str
    old_id: str
    new_id: str
    files: Changes
    records: Changes | None      # None unless both snapshots are tables

    @property
    def identical(self) -> bool:
        return self.old_id == self.new_id

    def to_dict(self) -> dict:
        return {"old": self.old, "new": self.new, "old_id": self.old_id, "new_id": self.new_id,
                "identical": self.identical, "files": self.files.to_dict(),
                "records": self.records.to_dict() if self.records else None}


def diff(store: Store, old: str | Snapshot, new: str | Snapshot) -> SnapshotDiff:
    a, b = load_snapshot(store, old), load_snapshot(store, new)
    files = compare({e["path"]: e["sha256"] for e in a.entries}, {e["path"]: e["sha256"] for e in b.entries})
    records = None
    if a.kind == b.kind == "table":
        records = compare(records_index(store, a), records_index(store, b))
    return SnapshotDiff(a.ref, b.ref, a.id, b.id, files, records)


def compare(old: dict[str, str], new: dict[str, str]) -> Changes:
    """Keys added, removed, and present in both with a different value (each sorted)."""
    return Changes(sorted(new.keys() - old.keys()), sorted(old.keys() - new.keys()),
                   sorted(k for k in old.keys() & new.keys() if old[k] != new[k]))
