"""Dataset snapshots: content-addressed, versioned, derivable (see docs/data.md)."""

from runlock.data.snapshot import (Snapshot, SnapshotInfo, create_snapshot, list_snapshots, load_snapshot,
                                   read_table, snapshot)

__all__ = ["Snapshot", "SnapshotInfo", "create_snapshot", "list_snapshots", "load_snapshot", "read_table",
           "snapshot"]
