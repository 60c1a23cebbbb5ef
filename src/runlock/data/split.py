"""Splits: a snapshot + a strategy + a seed -> the record ids of each partition, pinned forever.

A split is an immutable **manifest** object (canonical JSON, ``runlock.split/1``)::

    {"format": "runlock.split/2", "snapshot": "sha256:…", "strategy": "stratified",
     "params": {"ratios": [...], "names": [...], "by": "label", ...}, "seed": 42,
     "hash": "rl-hash64-v1", "keys": "rl-key-v1",
     "partitions": [{"name": "train", "count": 8, "digest": "sha256:…", "ids": [sorted ids]}, …],
     "removed": [{"id", "kept", "kind"}, …]}        # --dedup only

Its sha256 is the split id; ``split:NAME@vN`` names it (the same manifest keeps its version).
The id depends on what was split and how, never on the runlock version that did it (the version
is in the ``split.create`` audit entry); ``runlock.split/1`` manifests, which held it, still load.
Group and hash keys are a column's values in canonical text (``strategies.key_texts``), so an
integer column that a new row turns into floats keeps every key.
A partition's digest is the sha256 of the canonical JSON list of its sorted ids. The leakage
report is a separate object (a check can be rerun with other settings without changing the
split); the ``splits`` table points at the latest one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from runlock import audit, canonical, lineage, refs
from runlock._version import __version__
from runlock.data import leakage, strategies
from runlock.data.minhash import NearDupSettings, arrow
from runlock.data.snapshot import Snapshot, load_snapshot, read_table
from runlock.errors import InvalidInput, NotFound
from runlock.hashing import is_digest
from runlock.store import Store
from runlock.store.schema import ID, METADATA, NAME, TIME, utcnow
from runlock.store.schema import refs as refs_table

FORMAT = "runlock.split/2"
FORMATS = ("runlock.split/1", FORMAT)   # /1 held the runlock version, which moved the id on upgrade
JSON_COLUMNS = b"runlock.json_columns"  # schema metadata: columns stored as canonical JSON text
RECORD_ID = "_record_id"
ProgressFn = Callable[[str, int, int], None]

splits = sa.Table(
    "splits", METADATA,
    sa.Column("id", ID, primary_key=True),              # sha256 of the manifest object
    sa.Column("snapshot_id", ID, nullable=False),
    sa.Column("strategy", sa.String(32), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("counts", sa.JSON, nullable=False),         # {partition: records}
    sa.Column("report_id", ID, nullable=True),            # latest leakage report object
    sa.Column("passed", sa.Boolean, nullable=True),       # did that report pass
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("created_by", NAME, nullable=False),
    sa.Index("ix_splits_snapshot", "snapshot_id"),
)


@dataclass(frozen=True)
class Split:
    """One split manifest, with its name and its latest leakage report."""

    id: str
    manifest: dict = field(repr=False)
    name: str | None = None
    version: int | None = None
    leakage: leakage.LeakageReport | None = field(default=None, repr=False)
    created: bool = False
    store: Store | None = field(default=None, repr=False, compare=False)
    # the snapshot itself, where ``store`` cannot look it up (it is a team server's objects)
    source: Any = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"split:{self.name}@v{self.version}" if self.name else self.id

    @property
    def lineage_node(self) -> str:
        return lineage.node("split", self.id)

    @property
    def snapshot_id(self) -> str:
        return self.manifest["snapshot"]

    @property
    def strategy(self) -> str:
        return self.manifest["strategy"]

    @property
    def seed(self) -> int:
        return self.manifest["seed"]

    @property
    def params(self) -> dict:
        return self.manifest["params"]

    @property
    def partitions(self) -> tuple[str, ...]:
        return tuple(p["name"] for p in self.manifest["partitions"])

    @property
    def counts(self) -> dict[str, int]:
        return {p["name"]: p["count"] for p in self.manifest["partitions"]}

    def ids(self, partition: str) -> list[str]:
        """The sorted record ids of one partition."""
        for p in self.manifest["partitions"]:
            if p["name"] == partition:
                return list(p["ids"])
        raise InvalidInput(f"{self.ref} has no partition {partition!r}; it has {', '.join(self.partitions)}.")

    def to_arrow(self, partition: str | None = None) -> Any:
        """The snapshot's records of one partition as a ``pyarrow.Table`` (sorted by record id),
        or ``{partition: Table}`` for all of them."""
        if partition is None:
            table = self._table()
            return {p: _take(table, self.ids(p)) for p in self.partitions}
        return _take(self._table(), self.ids(partition))

    def to_pandas(self, partition: str | None = None) -> Any:
        """Like ``to_arrow``, as pandas DataFrames."""
        tables = self.to_arrow(partition)
        if partition is not None:
            return tables.to_pandas()
        return {p: t.to_pandas() for p, t in tables.items()}

    def to_hf(self) -> Any:
        """A Hugging Face ``datasets.DatasetDict`` with one Dataset per partition."""
        try:
            import datasets
        except ModuleNotFoundError:
            raise InvalidInput("to_hf() needs the datasets library, which is not installed.",
                               hint="pip install 'runlock[hf]'") from None
        return datasets.DatasetDict({p: datasets.Dataset(t) for p, t in self.to_arrow().items()})

    def _table(self) -> Any:
        if self.store is None:
            raise InvalidInput(f"{self.ref} was not loaded from a store, so its records cannot be read.",
                               hint="Use runlock.load_split(ref) to get a split bound to its store.")
        return read_table(self.store, self.source or self.snapshot_id)

    def to_dict(self) -> dict:
        total = sum(self.counts.values()) or 1
        return {"id": self.id, "ref": self.ref, "name": self.name, "version": self.version,
                "snapshot": self.snapshot_id, "strategy": self.strategy, "seed": self.seed,
                "params": self.params, "counts": self.counts,
                "achieved": {p: round(c / total, 6) for p, c in self.counts.items()},
                "digests": {p["name"]: p["digest"] for p in self.manifest["partitions"]},
                "removed": len(self.manifest.get("removed", [])),
                "applied": _applied_summary(self.manifest.get("applied")),
                "keys": self.manifest.get("keys"), "created": self.created,
                "leakage": None if self.leakage is None else _leak_summary(self.leakage)}


@dataclass(frozen=True)
class SplitInfo:
    ref: str
    id: str
    snapshot: str
    strategy: str
    counts: dict
    passed: bool | None
    created_at: str
    created_by: str


@dataclass(frozen=True)
class Records:
    """The parts of a table snapshot a split needs."""

    snapshot: Snapshot
    table: Any  # pyarrow.Table with _record_id first

    @property
    def ids(self) -> Any:
        return self.table.column(RECORD_ID).combine_chunks()

    @property
    def id_column(self) -> str | None:
        return (self.snapshot.manifest.get("table") or {}).get("id_column")


# -- library functions (store first) -------------------------------------------------------------
def create_split(store: Store, snapshot: Snapshot | str, *, name: str | None = None,
                 ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, strategy: str = "random",
                 by: str | None = None, group: str | None = None, names: Sequence[str] | None = None,
                 dedup: bool = False, check: bool = True, text_columns: Sequence[str] | None = None,
                 settings: NearDupSettings = NearDupSettings(),
                 on_progress: ProgressFn | None = None) -> Split:
    """Assign every record of a table snapshot to a partition, store the manifest, run the
    leakage checks (unless ``check=False``) and name it ``split:NAME@vN``."""
    progress = on_progress or (lambda *_: None)
    seed = strategies.check_seed(seed)
    weights, names = strategies.check_ratios(ratios, names)
    if by is not None and strategy in ("random",):
        raise InvalidInput(f"The random strategy takes no --by column (got {by!r}).",
                           hint="Use --strategy stratified, group, temporal or hash with --by.")
    progress("read", 0, 4)
    recs = records(store, snapshot)
    texts_cols = _text_columns(recs, text_columns, (by, group))
    keep = np.ones(recs.table.num_rows, bool)
    removed: list[dict] = []
    if dedup:
        progress("dedup", 1, 4)
        removed = _dedup(recs, texts_cols, settings)
        keep[np.isin(np.asarray(recs.ids.to_pylist(), object), [r["id"] for r in removed])] = False
    table = recs.table.filter(arrow()[0].array(keep)) if removed else recs.table
    progress("assign", 2, 4)
    result = assign(table, strategy, weights, seed, by, group)
    params = {"ratios": [float(r) for r in ratios], "weights": list(weights), "names": list(names),
              "by": by, "group": group, "dedup": settings.to_dict() if dedup else None,
              "text_columns": list(text_columns) if text_columns else None}
    manifest = build_manifest(recs.snapshot.id, strategy, params, seed, table.column(RECORD_ID),
                              result.part, names, removed=removed)
    report = None
    if check:
        progress("check", 3, 4)
        report = leakage.check(inputs(table, result.part, names, strategy, by, group, texts_cols), settings,
                               on_progress=progress)
    progress("store", 4, 4)
    return save(store, manifest, name or recs.snapshot.name or "split", report=report,
                details={"warnings": list(result.warnings), **_jsonable(result.details)})


def records(store: Store, snapshot: Snapshot | str) -> Records:
    snap = load_snapshot(store, snapshot)
    table = read_table(store, snap)
    pc = arrow()[1]
    ids = table.column(RECORD_ID)
    if pc.count_distinct(ids).as_py() != len(ids):
        raise InvalidInput(f"{snap.ref} has repeated record ids; a split needs every id once.")
    json_cols = [c["name"] for c in (snap.manifest.get("table") or {}).get("columns", []) if c.get("type") == "json"]
    if json_cols:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               JSON_COLUMNS: canonical.dumps(json_cols)})
    return Records(snap, table)


def build_manifest(snapshot_id: str, strategy: str, params: dict, seed: int, ids: Any,
                   part: np.ndarray, names: Sequence[str], *, removed: Sequence[dict] = (),
                   applied: dict | None = None) -> dict:
    """The canonical manifest; ids of each partition sorted (by code point)."""
    pa, pc = arrow()
    ids = pa.chunked_array([ids]) if isinstance(ids, pa.Array) else ids
    partitions = []
    for i, pname in enumerate(names):
        sub = ids.filter(pa.array(part == i))
        sorted_ids = sub.take(pc.sort_indices(sub)).to_pylist()
        partitions.append({"name": pname, "count": len(sorted_ids),
                           "digest": canonical.digest(sorted_ids), "ids": sorted_ids})
    manifest = {"format": FORMAT, "snapshot": snapshot_id, "strategy": strategy,
                "params": canonical.normalize(params), "seed": seed, "hash": strategies.HASH_VERSION,
                "keys": strategies.KEY_VERSION, "partitions": partitions, "removed": list(removed)}
    if applied is not None:
        manifest["applied"] = applied
    return manifest


def save(store: Store, manifest: dict, name: str, *, report: leakage.LeakageReport | None,
         action: str = "split.create", details: dict | None = None) -> Split:
    """Store the manifest (and report), record the row, name, audit entry and lineage edges."""
    oid = store.objects.put_bytes(canonical.dumps(manifest))
    report_id = store.objects.put_bytes(canonical.dumps(report.to_dict())) if report else None
    counts = {p["name"]: p["count"] for p in manifest["partitions"]}

    def write(conn: sa.Connection) -> tuple[refs.Ref, bool]:
        row = conn.execute(sa.select(splits.c.id).where(splits.c.id == oid)).first()
        if row is None:
            conn.execute(splits.insert().values(
                id=oid, snapshot_id=manifest["snapshot"], strategy=manifest["strategy"],
                params=manifest["params"], seed=manifest["seed"], counts=counts, report_id=report_id,
                passed=None if report is None else report.passed, created_at=utcnow(),
                created_by=store.actor))
        elif report_id is not None:
            conn.execute(splits.update().where(splits.c.id == oid).values(
                report_id=report_id, passed=report.passed))
        before = conn.execute(sa.select(refs_table.c.target).where(
            refs_table.c.namespace == "split", refs_table.c.name == name)
            .order_by(refs_table.c.version.desc()).limit(1)).scalar()
        ref, created = refs.assign(conn, "split", name, oid, actor=store.actor,
                                   meta={"snapshot": manifest["snapshot"], "strategy": manifest["strategy"]})
        if created:
            audit.append(conn, store.actor, action, ref.ref, before=before, after=oid, details={
                "snapshot": manifest["snapshot"], "strategy": manifest["strategy"], "seed": manifest["seed"],
                "counts": counts, "report": report_id, "runlock_version": __version__,
                "passed": None if report is None else report.passed, **(details or {})})
        node = lineage.node("split", oid)
        lineage.record_edge(conn, "derived_from", node, lineage.node("snapshot", manifest["snapshot"]))
        if manifest.get("applied"):
            lineage.record_edge(conn, "derived_from", node, lineage.node("split", manifest["applied"]["from"]))
        return ref, created

    ref, created = store.db.run_write(write)
    return Split(oid, manifest, ref.name, ref.version, report, created, store)


def load(store: Store, ref: Split | str) -> Split:
    """A split by ``split:NAME@vN``, ``split:NAME`` (latest), ``NAME`` or its id."""
    if isinstance(ref, Split):
        return ref if ref.store is not None else load(store, ref.id)
    if not isinstance(ref, str):
        raise InvalidInput(f"Expected a split or a reference like split:NAME@v1, got {type(ref).__name__}.")
    text = ref.strip()
    if is_digest(text):
        oid = text
        names = refs.names_for(store, "split", oid)
        name, version = (names[-1].name, names[-1].version) if names else (None, None)
    else:
        r = refs.resolve(store, text if ":" in text else f"split:{text}", "split")
        oid, name, version = r.target, r.name, r.version
    with store.db.read() as conn:
        row = conn.execute(sa.select(splits).where(splits.c.id == oid)).first()
    if row is None:
        raise NotFound("split", text, hint="List splits with `runlock split list`.")
    manifest = canonical.loads(store.objects.get_bytes(oid))
    if manifest.get("format") not in FORMATS:
        raise InvalidInput(f"Object {oid} is not a split manifest ({manifest.get('format')!r}).")
    report = None
    if row.report_id:
        report = leakage.LeakageReport.from_dict(canonical.loads(store.objects.get_bytes(row.report_id)))
    return Split(oid, manifest, name, version, report, False, store)


def list_splits(store: Store, name: str | None = None) -> list[SplitInfo]:
    """Every ``split:NAME@vN`` (of one name, or all), oldest version first."""
    t = refs_table
    q = (sa.select(t, splits).join(splits, splits.c.id == t.c.target).where(t.c.namespace == "split")
         .order_by(t.c.name, t.c.version))
    if name is not None:
        q = q.where(t.c.name == refs.check_name(name))
    with store.db.read() as conn:
        rows = conn.execute(q).mappings().all()
    return [SplitInfo(f"split:{r['name']}@v{r['version']}", r["target"], r["snapshot_id"], r["strategy"],
                      dict(r["counts"]), r["passed"], r[t.c.created_at], r[t.c.created_by]) for r in rows]


# -- helpers shared with split_ops ----------------------------------------------------------------
def column(table: Any, name: str, what: str) -> np.ndarray:
    """A column as NumPy, or a clear error if it is missing or has missing values."""
    cols = [c for c in table.column_names if c != RECORD_ID]
    if name not in cols:
        raise InvalidInput(f"Column {name!r} is not in this snapshot; it has: {', '.join(cols)}.",
                           hint=f"Pass an existing column as the {what} column.")
    col = table.column(name)
    if col.null_count:
        raise InvalidInput(f"Column {name!r} has {col.null_count} missing values; every record needs a "
                           f"{what} value.", hint="Fill or drop those records, then snapshot again.")
    values = col.to_numpy()
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise InvalidInput(f"Column {name!r} has {int(np.isnan(values).sum())} NaN values; every record "
                           f"needs a {what} value.", hint="Fill or drop those records, then snapshot again.")
    return values


def key_column(table: Any, name: str, what: str) -> np.ndarray:
    """A group or hash-key column as its values' canonical texts (``strategies.key_texts``). A
    column of mixed JSON types (strings and numbers in one column) is decoded first, so ``"u1"``
    stays ``u1`` and ``5`` stays ``5`` whichever other values share the column."""
    distinct, inverse = np.unique(column(table, name, what), return_inverse=True)
    if name in _json_columns(table):
        distinct = [_json_key(v, name) for v in distinct]
    texts = strategies.key_texts(distinct, what=what)   # once per distinct value, not per record
    return np.asarray(texts, dtype=str).reshape(-1)[inverse.reshape(-1)]


def _json_columns(table: Any) -> list[str]:
    raw = (table.schema.metadata or {}).get(JSON_COLUMNS)
    return canonical.loads(raw) if raw else []


def _json_key(text: str, name: str) -> Any:
    value = canonical.loads(text.encode("utf-8"))
    if isinstance(value, (list, dict)):
        raise InvalidInput(f"Column {name!r} holds lists or objects; a group or hash key must be a string, "
                           "a number or a boolean.", hint="Split by a column of plain values.")
    return value


def time_column(table: Any, name: str) -> np.ndarray:
    """A time column as sortable NumPy: numbers and timestamps as they are; strings as numbers
    if they all parse as numbers, else as timestamps if they all parse as ISO 8601, else text."""
    values = column(table, name, "time")
    if values.dtype.kind not in "OUS":
        return values
    pa, pc = arrow()
    col = table.column(name)
    for target in (pa.float64(), pa.timestamp("us")):
        try:
            return pc.cast(col, target).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return values


def assign(table: Any, strategy: str, weights: Sequence[int], seed: int, by: str | None,
           group: str | None, *, allow_empty: bool = False) -> strategies.Assignment:
    col = None
    if by is not None:
        what = {"stratified": "stratify", "stratified-group": "stratify", "temporal": "time"}.get(strategy, "group")
        col = time_column(table, by) if strategy == "temporal" else \
            key_column(table, by, what) if strategy in ("group", "hash") else column(table, by, what)
    grp = key_column(table, group, "group") if group is not None else None
    if group is not None and strategy != "stratified-group":
        raise InvalidInput("--group is only for the stratified-group strategy; the group strategy "
                           "takes its column from --by.")
    return strategies.assign(strategy, table.column(RECORD_ID).combine_chunks(), weights, seed,
                             column=col, group=grp, allow_empty=allow_empty)


def inputs(table: Any, part: np.ndarray, names: Sequence[str], strategy: str, by: str | None,
           group: str | None, text: leakage.TextColumns) -> leakage.Inputs:
    """What the leakage checks look at, given how the split was made."""
    groups = times = labels = None
    if strategy in ("group", "hash") and by is not None:
        groups = key_column(table, by, "group")
    if strategy == "stratified-group":
        groups = key_column(table, group, "group")
    if strategy in ("stratified", "stratified-group"):
        labels = column(table, by, "stratify")
    if strategy == "temporal":
        times = time_column(table, by)
    return leakage.Inputs(table.column(RECORD_ID).to_pylist(), part, names, texts(table, text.columns),
                          groups, times, labels, text.columns, text.note())


def texts(table: Any, cols: Sequence[str]) -> Any:
    """One text per record: the chosen string columns joined by a space (nulls skipped)."""
    if not cols:
        return None
    pc = arrow()[1]
    if len(cols) == 1:
        return table.column(cols[0]).combine_chunks()
    return pc.binary_join_element_wise(*[table.column(c) for c in cols], " ",
                                       null_handling="skip").combine_chunks()


def _text_columns(recs: Records, chosen: Sequence[str] | None, exclude: Sequence[str | None]) -> leakage.TextColumns:
    """The columns the duplicate checks compare: those named, else the free-text columns of the
    data (``leakage.free_text_columns``) other than the id, ``--by`` and ``--group`` columns."""
    pa = arrow()[0]
    table = recs.table
    names = [c for c in table.column_names if c != RECORD_ID]
    if chosen:
        for c in chosen:
            if c not in names:
                raise InvalidInput(f"Text column {c!r} is not in {recs.snapshot.ref}; it has: {', '.join(names)}.")
            if not pa.types.is_string(table.schema.field(c).type):
                raise InvalidInput(f"Text column {c!r} holds {table.schema.field(c).type}, not text.")
        return leakage.TextColumns(tuple(chosen))
    skip = {recs.id_column, *exclude, *_json_columns(table)}
    return leakage.free_text_columns(table, [c for c in names if c not in skip])


def _dedup(recs: Records, text: leakage.TextColumns, settings: NearDupSettings) -> list[dict]:
    if not text.columns:
        raise InvalidInput(f"{recs.snapshot.ref} has no free-text column to deduplicate on.",
                           hint="Name them with --text COLUMN.")
    return leakage.duplicates(recs.ids.to_pylist(), texts(recs.table, text.columns), settings)


def _take(table: Any, ids: list[str]) -> Any:
    pa, pc = arrow()
    pos = pc.index_in(pa.array(ids, pa.string()), value_set=table.column(RECORD_ID))
    return table.take(pos)


def _leak_summary(report: leakage.LeakageReport) -> dict:
    return {"passed": report.passed, "counts": report.counts}


def _applied_summary(applied: dict | None) -> dict | None:
    if not applied:
        return None
    return {"from": applied["from"], "added": applied["added"], "missing": len(applied["missing"])}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return str(value)
    item = getattr(value, "item", None)
    return _jsonable(item()) if callable(item) and not isinstance(value, (str, bytes)) else value
