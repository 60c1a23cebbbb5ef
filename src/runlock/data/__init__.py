"""Dataset snapshots: content-addressed, versioned, derivable (see docs/data.md)."""

from runlock.data.checkout import checkout
from runlock.data.diff import diff
from runlock.data.snapshot import (Snapshot, SnapshotInfo, create_snapshot, list_snapshots, load_snapshot,
                                   read_table, snapshot)
from runlock.data.transform import derive, transform
from runlock.data.verify import verify

__all__ = ["Snapshot", "SnapshotInfo", "checkout", "create_snapshot", "derive", "diff", "list_snapshots",
           "load_snapshot", "read_table", "snapshot", "transform", "verify"]
