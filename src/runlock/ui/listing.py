"""One page of the runs table: the CLI's ``--where`` and ``--sort`` compiled to SQL, paged by keyset.

A page never reads more than ``limit + 1`` runs: the query orders by the sort's keys, then
``started_at DESC, id DESC`` (a total order), and the next page starts strictly after the last
row's values of those keys (the *cursor*, an opaque URL-safe token). Keys sort with nulls last,
so "after" a value means greater (or smaller, descending) or NULL, and after NULL only NULL with
a later tie-breaker. Columns the user opts into (``config.lr``, ``metrics.loss:max``) are read
for the page's runs only.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.store.schema import metrics
from runlock.store.schema import runs as runs_t
from runlock.tracking import fields as fieldidx
from runlock.tracking import query, records
from runlock.verify.records import tier_rank, verifications

MAX_LIMIT = 500
AGGREGATES = ("last", "min", "max")


@dataclass(frozen=True)
class Column:
    """An opt-in column: ``config.lr``, ``summary.f1``, ``tags.team``, ``metrics.loss`` (last
    value), ``metrics.loss:min`` or ``metrics.loss:max``."""

    section: str
    key: str
    agg: str = "last"

    @property
    def label(self) -> str:
        return f"{self.section}.{self.key}" + ("" if self.agg == "last" else f":{self.agg}")


@dataclass(frozen=True)
class Row:
    run: records.RunRecord
    values: dict                 # column label -> value
    verified: str | None         # the best verification tier, or None

    def to_dict(self) -> dict:
        return {**self.run.to_dict(), "values": self.values, "verified": self.verified}


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    next_cursor: str | None
    columns: list[Column] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"runs": [r.to_dict() for r in self.rows], "next": self.next_cursor,
                "columns": [c.label for c in self.columns]}


def parse_columns(texts: list[str]) -> list[Column]:
    out = []
    for text in texts:
        name, _, agg = text.strip().partition(":")
        section, dot, key = name.partition(".")
        section = query.SECTION_ALIASES.get(section, "")
        agg = agg or "last"
        if not dot or not key or not section or agg not in AGGREGATES or (agg != "last" and section != "metrics"):
            raise InvalidInput(f"Cannot show column {text!r}.",
                               hint="Name config.KEY, summary.KEY, tags.KEY or metrics.KEY[:min|:max].")
        out.append(Column(section, key, agg))
    return out


def page(store: Store, *, where: str | None = None, sort: str | None = None, project: str | None = None,
         status: str | None = None, after: str | None = None, limit: int = 50,
         columns: list[Column] | None = None, projects: set[str] | None = None) -> Page:
    """The runs matching ``where`` in ``sort`` order, ``limit`` of them after ``after``; only
    runs of ``projects`` when it is given (the projects a signed-in reader may read)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"A page holds 1 to {MAX_LIMIT} runs, not {limit}.")
    keys, _ = query.sort_keys(sort) if sort and sort.strip() else ([], [])
    keys = [*keys, (runs_t.c.started_at, True), (runs_t.c.id, True)]
    q = records.select_runs(project, status)
    if projects is not None:
        q = q.where(runs_t.c.project.in_(sorted(projects)))
    if where and where.strip():
        q = q.where(query.compile_where(where)[0])
    if after:
        q = q.where(_after(keys, _decode(after, len(keys))))
    labelled = [col.label(f"_k{i}") for i, (col, _) in enumerate(keys)]
    q = q.add_columns(*labelled).order_by(*[(c.desc() if d else c.asc()).nulls_last() for c, d in keys])
    q = q.limit(limit + 1)
    columns = columns or []
    with store.db.read() as conn:
        rows = conn.execute(q).all()
        more = len(rows) > limit
        rows = rows[:limit]
        ids = [r.id for r in rows]
        values = _values(conn, ids, columns)
        tiers = _verified(conn, ids)
    cursor = _encode([getattr(rows[-1], f"_k{i}") for i in range(len(keys))]) if more and rows else None
    out = [Row(records.from_row(r), values.get(r.id, {}), tiers.get(r.id)) for r in rows]
    return Page(out, cursor, columns)


def _after(keys: list[tuple[ColumnElement, bool]], last: list) -> ColumnElement:
    """Rows strictly after ``last`` in the order of ``keys`` (nulls last)."""
    ors, equal = [], []
    for (col, desc), v in zip(keys, last):
        if v is None:
            beyond, same = sa.false(), col.is_(None)
        else:
            beyond, same = sa.or_(col < v if desc else col > v, col.is_(None)), col == v
        ors.append(sa.and_(*equal, beyond))
        equal.append(same)
    return sa.or_(*ors)


def _encode(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(text: str, n: int) -> list:
    try:
        values = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != n or any(isinstance(v, (dict, list)) for v in values):
        raise InvalidInput("This page link is not valid for this sort.", hint="Start again from the first page.")
    return values


def _values(conn: sa.Connection, ids: list[str], columns: list[Column]) -> dict[str, dict]:
    if not ids or not columns:
        return {}
    last = [c for c in columns if c.agg == "last"]
    named = sa.or_(sa.false(), *(sa.and_(fieldidx.run_fields.c.section == c.section,
                                         fieldidx.run_fields.c.slug == fieldidx.slug(c.key)) for c in last))
    found = fieldidx.for_runs(conn, ids, named) if last else {}
    out: dict[str, dict] = {i: {} for i in ids}
    for run_id, vals in found.items():
        for c in last:
            prefix = c.section + "."
            out[run_id].update({c.label: v for k, v in vals.items()
                                if k.startswith(prefix) and fieldidx.slug(k[len(prefix):]) == fieldidx.slug(c.key)})
    extremes = [c for c in columns if c.agg != "last"]
    if extremes:
        finite = sa.and_(metrics.c.raw.is_(None), metrics.c.value.is_not(None))
        value = sa.case((finite, metrics.c.value), else_=None)
        q = (sa.select(metrics.c.run_id, metrics.c.key, sa.func.min(value), sa.func.max(value))
             .where(metrics.c.run_id.in_(ids), metrics.c.key.in_(sorted({c.key for c in extremes})))
             .group_by(metrics.c.run_id, metrics.c.key))
        for run_id, key, lo, hi in conn.execute(q):
            for c in extremes:
                if c.key == key:
                    out[run_id][c.label] = lo if c.agg == "min" else hi
    return out


def _verified(conn: sa.Connection, ids: list[str]) -> dict[str, str]:
    best: dict[str, str] = {}
    if not ids:
        return best
    for run_id, tier in conn.execute(sa.select(verifications.c.run_id, verifications.c.tier)
                                     .where(verifications.c.run_id.in_(ids))):
        if run_id not in best or tier_rank(tier) < tier_rank(best[run_id]):
            best[run_id] = tier
    return best
