"""Dataset snapshots: content-addressed, versioned, derivable (see docs/data.md).

Every function here takes the store first; ``runlock.snapshot`` and ``runlock.transform`` (in
``runlock.api``) are the forms that open the store of this folder."""

from runlock.data.checkout import checkout
from runlock.data.diff import diff
from runlock.data.snapshot import Snapshot, SnapshotInfo, create_snapshot, list_snapshots, load_snapshot, read_table
from runlock.data.transform import derive
from runlock.data.verify import verify

__all__ = ["Snapshot", "SnapshotInfo", "checkout", "create_snapshot", "derive", "diff", "list_snapshots",
           "load_snapshot", "read_table", "verify"]
