"""What each page shows: one function per page, calling the domain's own functions and returning
a plain, JSON-ready dict (the page's ``.json`` twin is that dict; the HTML page renders it).

No rule lives here that the CLI does not share: the runs table is ``tracking.query``'s filter
language, a comparison is ``verify.compare``, a split's report is the one ``split`` stored, the
audit check is ``audit.verify``.
"""

from __future__ import annotations

from typing import Any

from runlock import artifacts, audit, canonical, cards, registry
from runlock.data.diff import diff as diff_snapshots
from runlock.data.snapshot import list_snapshots, read_table
from runlock.data.split import RECORD_ID, list_splits
from runlock.data.split import load as load_split
from runlock.errors import InvalidInput, NotFound
from runlock.lineage import entities
from runlock.store import Store
from runlock.tracking import annotations, fields, records, series
from runlock.tracking import lock as locks
from runlock.ui import charts, listing, svg
from runlock.verify.compare import compare as compare_runs
from runlock.verify.records import verifications_of

LOCK_SECTIONS = ("config", "seed", "seeding", "knobs", "code", "entrypoint", "environment", "inputs")
MAX_COMPARE = 10
MAX_PAIRS = 50
COMPARE_SECTIONS = ("config", "code", "environment", "inputs", "knobs", "seed", "seeding", "entrypoint")


def jsonable(value: Any) -> Any:
    """Through canonical JSON's own rules, with what it refuses (NaN, tuples…) made plain."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return value


def runs_page(store: Store, *, where: str = "", sort: str = "", project: str = "", status: str = "",
              after: str = "", limit: int = 50, columns: list[str] | None = None,
              projects: set[str] | None = None) -> dict:
    """One page of runs; ``projects`` (None: all) are the only projects it may list."""
    cols = listing.parse_columns([c for c in columns or [] if c.strip()])
    page = listing.page(store, where=where or None, sort=sort or None, project=project or None,
                        status=status or None, after=after or None, limit=limit, columns=cols, projects=projects)
    return jsonable({**page.to_dict(), "where": where, "sort": sort, "project": project, "status": status,
                     "limit": limit, "after": after})


def run_page(store: Store, ref: str) -> dict:
    """Everything about a run but its metric statistics (``metrics_summary``: they scan every
    point, so the page asks for them after it is shown): each key's latest value is indexed."""
    rec = records.get(store, ref)
    lock = locks.load(store, rec.recipe_id) if rec.recipe_id else {}
    sections = {k: lock[k] for k in LOCK_SECTIONS if k in lock}
    with store.db.read() as conn:
        latest = fields.for_runs(conn, [rec.id], fields.run_fields.c.section == "metrics")[rec.id]
    return jsonable({
        "run": rec.to_dict(), "lock": sections, "recipe_id": rec.recipe_id,
        "metrics": [{"key": k.removeprefix("metrics."), "latest": v} for k, v in latest.items()],
        "artifacts": [a.__dict__ for a in artifacts.for_run(store, rec.id)],
        "notes": [n.__dict__ for n in annotations.notes(store, rec.id)],
        "verifications": [v.to_dict() for v in verifications_of(store, rec.id)],
        "audit": [e.to_dict() for e in audit.log(store, target=rec.ref, limit=200)],
    })


def metrics_summary(store: Store, ref: str) -> dict:
    rec = records.get(store, ref)
    return jsonable({"run": rec.id, "metrics": [m.__dict__ for m in series.summarize(store, rec.id)]})


def series_data(store: Store, ref: str, key: str, *, start: int | None = None, end: int | None = None,
                buckets: int = charts.BUCKETS, cache: charts.SeriesCache | None = None) -> dict:
    rec = records.get(store, ref)
    wanted = (rec.id, key, start, end, buckets)
    found = cache.get(wanted) if cache is not None and rec.sealed else None
    if found is None:
        found = charts.series(store, rec.id, key, start=start, end=end, buckets=buckets)
        if cache is not None and rec.sealed:
            cache.put(wanted, found)
    return jsonable(found.to_dict())


def compare_page(store: Store, refs: list[str], *, all_rows: bool = False) -> dict:
    """2 to 10 runs side by side; ``verdicts``: ``verify.compare`` of each run against the first
    (the baseline), in the order given (``compare`` is the first of them)."""
    refs = [r for r in refs if r.strip()]
    if not refs:
        return {"runs": [], "rows": [], "hidden": 0, "lock_rows": [], "curves": [], "verdicts": [], "compare": None,
                "all": all_rows}
    if not 2 <= len(refs) <= MAX_COMPARE:
        raise InvalidInput(f"Compare 2 to {MAX_COMPARE} runs, not {len(refs)}.",
                           hint="Tick the runs to compare on the runs page.")
    recs = [records.get(store, r) for r in refs]
    ids = [r.id for r in recs]
    table = series.compare(store, ids, only_differences=not all_rows)
    locks_ = [locks.load(store, r.recipe_id) if r.recipe_id else {} for r in recs]
    lock_rows = []
    for section in COMPARE_SECTIONS:
        flat = [_flatten(lk.get(section), section) for lk in locks_]
        for key in sorted({k for f in flat for k in f}):
            vals = [f.get(key) for f in flat]
            differs = any(canonical.dumps(v) != canonical.dumps(vals[0]) for v in vals[1:]) \
                if all(_canonable(v) for v in vals) else len({repr(v) for v in vals}) > 1
            if differs or all_rows:
                lock_rows.append({"key": key, "values": vals, "differs": differs})
    keys = sorted({k.key for r in ids for k in series.summarize(store, r)})
    curves = [{"key": k, "identical": charts.identical(store, ids, k)} for k in keys]
    verdicts = [{**compare_runs(store, ids[0], other).to_dict(), "name": rec.name}
                 for other, rec in zip(ids[1:], recs[1:])]
    return jsonable({"runs": [r.to_dict() for r in recs], "rows": table.to_dict()["rows"], "hidden": table.hidden,
                     "lock_rows": lock_rows, "curves": curves, "verdicts": verdicts, "compare": verdicts[0],
                     "all": all_rows})


def _canonable(v: Any) -> bool:
    try:
        canonical.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def data_page(store: Store, *, old: str = "", new: str = "", split: str = "") -> dict:
    out: dict[str, Any] = {"snapshots": [s.__dict__ for s in list_snapshots(store)],
                           "splits": [s.__dict__ for s in list_splits(store)], "diff": None, "split": None,
                           "old": old, "new": new}
    if old and new:
        out["diff"] = diff_snapshots(store, old, new).to_dict()
    if split:
        s = load_split(store, split)
        out["split"] = {**s.to_dict(), "leakage": s.leakage.to_dict() if s.leakage else None,
                        "records": _pair_records(store, s.snapshot_id, s.leakage.pairs[:MAX_PAIRS] if s.leakage else ())}
    return jsonable(out)


def _pair_records(store: Store, snapshot_id: str, pairs: tuple) -> dict[str, dict]:
    """The records of the first duplicate pairs, by record id, to show them side by side."""
    ids = sorted({i for p in pairs for i in (p.a, p.b)})
    if not ids:
        return {}
    import pyarrow as pa  # noqa: PLC0415 - the tabular extra, only for a table snapshot's split
    import pyarrow.compute as pc  # noqa: PLC0415
    table = read_table(store, snapshot_id)
    found = table.filter(pc.is_in(table.column(RECORD_ID), value_set=pa.array(ids))).to_pylist()
    return {row.pop(RECORD_ID): row for row in found}


def lineage_page(store: Store, entity: str = "", *, direction: str = "upstream", depth: int = 10) -> dict:
    if direction not in ("upstream", "downstream"):
        raise InvalidInput(f"Unknown direction {direction!r}; use upstream or downstream.")
    if not entity:
        return {"entity": "", "direction": direction, "graph": None, "svg": None}
    v = entities.view(store, entity, direction, depth)
    return jsonable({"entity": entity, "direction": direction, "graph": v.to_dict(), "svg": svg.to_svg(v),
                     "described": {k: n.to_dict() for k, n in sorted(v.nodes.items())}})


def registry_page(store: Store, name: str = "") -> dict:
    models = registry.list_models(store, name or None)
    out: dict[str, Any] = {"name": name, "models": [m.__dict__ for m in models], "history": [], "gates": [],
                           "card": None}
    if name:
        if not models:
            raise NotFound("model", name)
        out["history"] = [h.__dict__ for h in registry.history(store, name)]
        out["gates"] = [e.to_dict() for e in audit.log(store, action="gate.*", limit=200)
                        if e.target.startswith(f"model:{name}@")]
        out["card"] = _card(store, f"model:{name}@v{max(m.version for m in models)}")
    return jsonable(out)


def _card(store: Store, ref: str) -> str | None:
    try:
        return cards.model_card(store, ref).text
    except (NotFound, InvalidInput):
        return None


def audit_page(store: Store, *, target: str = "", actor: str = "", action: str = "", limit: int = 100,
               before: int | None = None) -> dict:
    """``limit`` entries matching the filters, newest first, older than entry ``before`` (keyset:
    the next page starts below the last entry shown, however long the log); ``next`` is the
    ``before`` of the following page, or None on the last one."""
    if not 1 <= limit <= 1000:
        raise InvalidInput(f"Show 1 to 1000 entries, not {limit}.")
    if before is not None and before < 1:
        raise InvalidInput(f"before is an entry's sequence number (1 or more), not {before}.")
    found = audit.log(store, target=target or None, actor=actor or None, action=action or None, limit=limit + 1,
                      before_seq=before)
    entries = list(reversed(found))[:limit]
    more = len(found) > limit
    return jsonable({"entries": [e.to_dict() for e in entries], "target": target, "actor": actor,
                     "action": action, "limit": limit, "before": before,
                     "next": entries[-1].seq if more and entries else None})


def audit_verify(store: Store) -> dict:
    return jsonable(audit.verify(store).to_dict())
