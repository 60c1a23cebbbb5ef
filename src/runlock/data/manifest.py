"""The snapshot manifest: the document whose sha256 is a snapshot's id.

A manifest is canonical JSON (``runlock.canonical``)::

    {"format": "runlock.snapshot/1",
     "kind": "files" | "table",
     "entries": [{"path": "a/b.txt", "size": 12, "sha256": "sha256:…"}, …],   sorted by path
     "files": 2, "size": 1234,
     "table": null | {"format": "csv", "columns": [{"name": "id", "type": "string"}, …],
                      "record_count": 3, "id_column": "id" | null,
                      "records": "sha256:…"},          the records index object (below)
     "parent": null | "sha256:…",                      the snapshot this one was derived from
     "recipe": null | {…}}                             how it was derived (runlock.data.transform)

The records index is a second object, ``{"format": "runlock.records/1", "ids": [...],
"hashes": [...]}``: each record's id and the sha256 hex of its canonical form, in file order
(``hashes`` is null when the ids are content hashes themselves). Nothing in a manifest depends on
where the data sat, when it was read, or who read it.

Every entry's path is checked by ``runlock.paths`` when a manifest is built and when one is
read back (``decode``): relative POSIX, canonical, no ``..``, nothing under ``.git/`` or
``.runlock/``, no two the same. A manifest that fails is refused, naming the entry, so no
command can be made to write outside its destination by a crafted manifest.
"""

from __future__ import annotations

from collections.abc import Sequence

from runlock import canonical
from runlock.data.ingest import Entry
from runlock.data.tabular import Parsed
from runlock.errors import IntegrityError
from runlock.paths import check_entries

FORMAT = "runlock.snapshot/1"
RECORDS_FORMAT = "runlock.records/1"
KINDS = ("files", "table")


def build(kind: str, entries: Sequence[Entry], *, table: dict | None = None, parent: str | None = None,
          recipe: dict | None = None) -> dict:
    rows = sorted((e.to_dict() for e in entries), key=lambda e: e["path"])
    check_entries([e["path"] for e in rows], "The new snapshot")
    return {"format": FORMAT, "kind": kind, "entries": rows, "files": len(rows),
            "size": sum(e["size"] for e in rows), "table": table, "parent": parent, "recipe": recipe}


def table_section(parsed: Parsed, id_column: str | None, records_id: str) -> dict:
    return {"format": parsed.format, "columns": parsed.columns, "record_count": parsed.record_count,
            "id_column": id_column, "records": records_id}


def records_index(parsed: Parsed, id_column: str | None) -> dict:
    return {"format": RECORDS_FORMAT, "ids": parsed.ids, "hashes": parsed.hashes if id_column else None}


def record_hashes(index: dict) -> dict[str, str]:
    """``{record id: content hash}`` from a records index."""
    hashes = index["hashes"] or [i.split(":", 1)[1].split("#", 1)[0] for i in index["ids"]]
    return dict(zip(index["ids"], hashes))


def encode(manifest: dict) -> bytes:
    return canonical.dumps(manifest)


def decode(data: bytes, oid: str) -> dict:
    """Parse a manifest object and check that it is one."""
    try:
        manifest = canonical.loads(data)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("kind") not in KINDS:
        raise IntegrityError(f"Object {oid} is not a snapshot manifest ({FORMAT}).",
                             hint="Pass a snapshot id or a ds:NAME@vN reference.")
    entries = manifest.get("entries")
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "path" in e for e in entries):
        raise IntegrityError(f"Snapshot manifest {oid} has no valid file list.", hint="Run `runlock fsck`.")
    check_entries([e["path"] for e in entries], f"Snapshot manifest {oid}")
    return manifest
