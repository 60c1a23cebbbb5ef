"""A snapshot manifest that arrived from a client, checked against the objects before it is named.

A client of ``runlock server`` hashes its files, uploads the objects the server lacks, and sends
the manifest. Nothing in it is taken on trust: ``checked_manifest`` re-reads and re-hashes every
entry's object (its size must be the one claimed), re-parses a table's stored bytes and rebuilds
its records index and table section, and returns the manifest rebuilt from those facts with
``manifest.build`` (which checks every path). A manifest that differs in any claim is refused.
"""

from __future__ import annotations

import hashlib
from typing import Any

from runlock import canonical
from runlock.data import manifest as mf
from runlock.data import tabular
from runlock.data.ingest import Entry
from runlock.data.transform import RECIPE_FORMAT
from runlock.errors import IntegrityError, InvalidInput, NotFound
from runlock.hashing import is_digest
from runlock.store.objects import ObjectStore

MAX_ENTRIES = 200_000


def checked_manifest(objects: ObjectStore, doc: Any) -> dict:
    """The manifest ``doc`` claims to be, rebuilt from the stored objects (see the module)."""
    if not isinstance(doc, dict) or doc.get("format") != mf.FORMAT or doc.get("kind") not in mf.KINDS:
        raise InvalidInput(f"Not a snapshot manifest ({mf.FORMAT}).")
    parent, recipe = _derivation(objects, doc)
    raw = doc.get("entries")
    if not isinstance(raw, list) or not raw or len(raw) > MAX_ENTRIES:
        raise InvalidInput(f"A manifest lists 1 to {MAX_ENTRIES} entries.")
    entries = [_entry(objects, e) for e in raw]
    table = _table(objects, doc, entries) if doc["kind"] == "table" else None
    rebuilt = mf.build(doc["kind"], entries, table=table, parent=parent, recipe=recipe)
    if canonical.dumps(rebuilt) != canonical.dumps(canonical.normalize(doc)):
        raise IntegrityError("The manifest sent does not match the objects it names (sizes, totals or the "
                             "table's records); nothing was recorded.", expected=None, actual=None)
    return rebuilt


def _derivation(objects: ObjectStore, doc: dict) -> tuple[str | None, dict | None]:
    """A derived snapshot's ``parent`` and ``recipe`` (``runlock.transform`` on a client): both or
    neither; the recipe is one (its format, its parent) and the parent a snapshot held here. That
    the function made these files is the client's word, as a snapshot's files are."""
    parent, recipe = doc.get("parent"), doc.get("recipe")
    if parent is None and recipe is None:
        return None, None
    if not (isinstance(parent, str) and is_digest(parent) and isinstance(recipe, dict)
            and recipe.get("format") == RECIPE_FORMAT and recipe.get("parent") == parent):
        raise InvalidInput(f"A derived snapshot names its parent snapshot and a {RECIPE_FORMAT} recipe of "
                           "that parent (runlock.transform makes both).")
    try:
        mf.decode(objects.get_bytes(parent), parent)
    except NotFound:
        raise InvalidInput(f"The parent snapshot {parent} is not on this server.") from None
    return parent, canonical.normalize(recipe)


def _entry(objects: ObjectStore, e: Any) -> Entry:
    if not isinstance(e, dict) or set(e) != {"path", "size", "sha256"} or not isinstance(e["path"], str) \
            or type(e["size"]) is not int or not isinstance(e["sha256"], str) or not is_digest(e["sha256"]):
        raise InvalidInput("Each manifest entry is {\"path\": str, \"size\": int, \"sha256\": \"sha256:…\"}.")
    if not e["sha256"].startswith("sha256:"):
        raise InvalidInput(f"{e['sha256'][:80]!r} is not a sha256 object id.")
    size = _rehash(objects, e["sha256"])
    if size != e["size"]:
        raise IntegrityError(f"{e['path']}: the manifest says {e['size']} bytes, the object holds {size}.",
                             expected=str(e["size"]), actual=str(size))
    return Entry(e["path"], size, e["sha256"])


def _rehash(objects: ObjectStore, oid: str) -> int:
    if not objects.has(oid):
        raise InvalidInput(f"Object {oid} is not uploaded yet.", hint="Upload the snapshot's objects first.")
    h, size = hashlib.sha256(), 0
    try:
        with objects.open(oid) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
    except NotFound:
        raise InvalidInput(f"Object {oid} is not uploaded yet.") from None
    if f"sha256:{h.hexdigest()}" != oid:
        raise IntegrityError(f"Stored object {oid} does not hash to its id.", expected=oid,
                             actual=f"sha256:{h.hexdigest()}")
    return size


def _table(objects: ObjectStore, doc: dict, entries: list[Entry]) -> dict:
    claimed = doc.get("table")
    if len(entries) != 1 or not isinstance(claimed, dict) or claimed.get("format") not in set(tabular.FORMATS.values()):
        raise InvalidInput("A table snapshot is one file with its table section.")
    id_column = claimed.get("id_column")
    if id_column is not None and not isinstance(id_column, str):
        raise InvalidInput("A table's id_column is a column name or null.")
    parsed = tabular.parse(objects.get_bytes(entries[0].sha256), claimed["format"], id_column=id_column,
                           source=entries[0].path)
    index_id = objects.put_bytes(canonical.dumps(mf.records_index(parsed, id_column)))
    return mf.table_section(parsed, id_column, index_id)
