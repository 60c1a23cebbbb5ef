"""What one does with a split once it exists: export it, import one, carry it to a newer
snapshot, and check it for leakage again.

``splits_v1.json`` is the plain exchange format: ``{"train": [ids…], "validation": […], …}``
with record ids as the snapshot knows them (the values of its id column), partitions in order.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from runlock import audit, canonical
from runlock.data import leakage
from runlock.data.minhash import NearDupSettings, arrow
from runlock.data.split import (RECORD_ID, ProgressFn, Split, _text_columns, assign, build_manifest, inputs, key_column,
                                load, records, save, splits, time_column)
from runlock.data.snapshot import Snapshot
from runlock.errors import InvalidInput
from runlock.store import Store


@dataclass(frozen=True)
class Exported:
    path: str
    split: str
    counts: dict

    def to_dict(self) -> dict:
        return {"path": self.path, "split": self.split, "counts": self.counts}


def export_split(store: Store, ref: Split | str, path: str | Path) -> Exported:
    """Write ``{partition: [ids…]}`` to ``path`` (atomically)."""
    return write_ids(load(store, ref), path)


def write_ids(sp: Split, path: str | Path) -> Exported:
    """``export_split`` of a split already loaded (a team server's client loads it over HTTP)."""
    body = {p: sp.ids(p) for p in sp.partitions}
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.replace(tmp, dest)
    except OSError as e:
        raise InvalidInput(f"Cannot write {dest}: {e.strerror}.", hint="Pick a writable path.") from e
    return Exported(str(dest), sp.ref, sp.counts)


def import_split(store: Store, path: str | Path, snapshot: Snapshot | str, *, name: str,
                 check: bool = True, settings: NearDupSettings = NearDupSettings()) -> Split:
    """Read a ``splits_v1.json`` into a split of ``snapshot``; ids the snapshot lacks are refused.
    Records the file does not mention belong to no partition (``params.unassigned``)."""
    return import_ids(store, parse_ids(read_ids(path), str(path)), str(path), snapshot, name=name, check=check, settings=settings)


def import_ids(store: Store, body: dict[str, list[str]], path: str, snapshot: Snapshot | str, *, name: str,
               check: bool = True, settings: NearDupSettings = NearDupSettings()) -> Split:
    """``import_split`` of ids already read (``parse_ids``); ``path`` names where they came from
    in messages (a team server imports what its client read, in the client's words)."""
    recs = records(store, snapshot)
    ids = recs.ids.to_pylist()
    index = {rid: k for k, rid in enumerate(ids)}
    part = np.full(len(ids), -1, np.int8)
    for i, (pname, members) in enumerate(body.items()):
        unknown = [m for m in members if m not in index]
        if unknown:
            raise InvalidInput(f"{len(unknown)} ids in partition {pname!r} of {path} are not records of "
                               f"{recs.snapshot.ref}: {', '.join(map(repr, unknown[:5]))}"
                               f"{' …' if len(unknown) > 5 else ''}.",
                               hint="Import against the snapshot these ids came from.")
        rows = [index[m] for m in members]
        clash = [ids[r] for r in rows if part[r] != -1]
        if clash:
            raise InvalidInput(f"Record {clash[0]!r} is listed in two partitions of {path}.")
        part[rows] = i
    names = list(body)
    params = {"source": canonical.digest(body), "names": names,
              "unassigned": int((part == -1).sum())}
    manifest = build_manifest(recs.snapshot.id, "imported", params, 0, recs.ids, part, names)
    report = None
    if check:
        mask = part >= 0
        table = recs.table.filter(arrow()[0].array(mask))
        report = leakage.check(inputs(table, part[mask], names, "imported", None, None,
                                      _text_columns(recs, None, ())), settings)
    return save(store, manifest, name, report=report, action="split.import")


def read_ids(path: str | Path) -> bytes:
    """The bytes of a ``splits_v1.json`` (``parse_ids`` reads them)."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise InvalidInput(f"Cannot read {path}: {e.strerror}.") from e


def parse_ids(data: bytes, path: str) -> dict[str, list[str]]:
    """``{partition: [ids…]}`` from the bytes of a ``splits_v1.json`` read from ``path``."""
    try:
        body = canonical.loads(data.decode("utf-8"))
    except ValueError as e:  # malformed, nested too deeply, or not UTF-8
        raise InvalidInput(f"{path} is not valid JSON: {e}.") from None
    if not isinstance(body, dict) or len(body) < 1 or not all(isinstance(v, list) for v in body.values()):
        raise InvalidInput(f"{path} must be a JSON object of partition name -> list of record ids.",
                           hint='For example {"train": ["a", "b"], "test": ["c"]}.')
    out = {}
    for pname, members in body.items():
        if not pname:
            raise InvalidInput(f"{path} has a partition with an empty name.")
        if not all(isinstance(m, (str, int)) and not isinstance(m, bool) for m in members):
            raise InvalidInput(f"Partition {pname!r} of {path} holds ids that are neither strings nor integers.")
        out[pname] = [str(m) for m in members]
    return out


def apply_split(store: Store, ref: Split | str, snapshot: Snapshot | str, *, name: str | None = None,
                check: bool = True, settings: NearDupSettings = NearDupSettings()) -> Split:
    """Carry a split to another snapshot of the same data: every record the old split placed keeps
    its partition, new records are placed by the same strategy (``_place_new``), and records the
    new snapshot lacks are listed in ``manifest.applied.missing``."""
    old = load(store, ref)
    recs = records(store, snapshot)
    ids = recs.ids.to_pylist()
    names = list(old.partitions)
    part = _partition_of(old, ids)
    dropped = {r["id"] for r in old.manifest.get("removed", [])}
    present = set(ids)
    fresh = np.array([p < 0 and r not in dropped for r, p in zip(ids, part.tolist())], bool)
    part[fresh] = _place_new(old, recs.table, part, fresh)
    keep = part >= 0
    missing = sorted(r for p in names for r in old.ids(p) if r not in present)
    params = dict(old.params)
    applied = {"from": old.id, "added": {p: int(((part == i) & fresh).sum()) for i, p in enumerate(names)},
               "missing": missing}
    removed = [r for r in old.manifest.get("removed", []) if r["id"] in present]
    table = recs.table.filter(arrow()[0].array(keep))
    manifest = build_manifest(recs.snapshot.id, old.strategy, params, old.seed, table.column(RECORD_ID),
                              part[keep], names, removed=removed, applied=applied)
    report = None
    if check:
        text_cols = _text_columns(recs, old.params.get("text_columns"), (old.params.get("by"), old.params.get("group")))
        report = leakage.check(inputs(table, part[keep], names, old.strategy, old.params.get("by"),
                                      old.params.get("group"), text_cols), settings)
    return save(store, manifest, name or old.name or "split", report=report, action="split.apply",
                details={"from": old.id, "added": applied["added"], "missing": len(missing)})


def _place_new(old: Split, table, part: np.ndarray, fresh: np.ndarray) -> np.ndarray:
    """Partitions for the new records: hash as always; temporal by the old boundaries; group
    strategies keep a known group where it is and split new groups; the others split the new
    records alone with the old ratios and seed. An imported split places new records by hash."""
    if not fresh.any():
        return np.zeros(0, np.int8)
    strategy, by, group = old.strategy, old.params.get("by"), old.params.get("group")
    weights = old.params.get("weights") or [1] * len(old.partitions)
    new = table.filter(arrow()[0].array(fresh))
    if strategy == "imported":
        return assign(new, "hash", weights, old.seed, None, None).part
    if strategy == "temporal":
        times = _column_of(table, by, temporal=True)
        bounds = [times[part == i].min() for i in range(1, len(weights)) if (part == i).any()]
        return np.searchsorted(np.array(bounds), times[fresh], side="right").astype(np.int8)
    placed = assign(new, strategy, weights, old.seed, by, group, allow_empty=True).part
    key = group if strategy == "stratified-group" else by if strategy == "group" else None
    if key is not None:
        values = _column_of(table, key)
        known = {v: p for v, p in zip(values[~fresh].tolist(), part[~fresh].tolist()) if p >= 0}
        placed = np.array([known.get(v, p) for v, p in zip(values[fresh].tolist(), placed.tolist())], np.int8)
    return placed


def _partition_of(sp: Split, ids: list[str]) -> np.ndarray:
    """The partition index of each id in ``sp`` (-1 where it has none)."""
    where = {rid: i for i, p in enumerate(sp.partitions) for rid in sp.ids(p)}
    return np.array([where.get(r, -1) for r in ids], np.int8)


def _column_of(table, name: str, temporal: bool = False) -> np.ndarray:
    return time_column(table, name) if temporal else key_column(table, name, "group")


@dataclass(frozen=True)
class Checked:
    split: str
    report: leakage.LeakageReport

    def to_dict(self) -> dict:
        return {"split": self.split, **self.report.to_dict()}


def check_split(store: Store, ref: Split | str, *, settings: NearDupSettings = NearDupSettings(),
                text_columns: Sequence[str] | None = None, save_report: bool = True,
                on_progress: ProgressFn | None = None) -> Checked:
    """Run the leakage checks on a stored split; store the report as the split's latest.
    ``on_progress(stage, done, total)``: reading, then the near-duplicate bands."""
    progress = on_progress or (lambda *_: None)
    progress("read", 0, 1)
    sp = load(store, ref)
    recs = records(store, sp.snapshot_id)
    part = _partition_of(sp, recs.ids.to_pylist())
    table = recs.table.filter(arrow()[0].array(part >= 0))
    by, group = sp.params.get("by"), sp.params.get("group")
    cols = _text_columns(recs, text_columns, (by, group))
    report = leakage.check(inputs(table, part[part >= 0], list(sp.partitions), sp.strategy, by, group, cols),
                           settings, on_progress=progress)
    if save_report:
        report_id = store.objects.put_bytes(canonical.dumps(report.to_dict()))

        def write(conn: sa.Connection) -> None:
            before = conn.execute(sa.select(splits.c.report_id).where(splits.c.id == sp.id)).scalar()
            conn.execute(splits.update().where(splits.c.id == sp.id).values(report_id=report_id,
                                                                            passed=report.passed))
            audit.append(conn, store.actor, "split.check", sp.ref, before=before, after=report_id,
                         details={"passed": report.passed, "counts": report.counts})

        store.db.run_write(write)
    return Checked(sp.ref, report)

