"""Reading metric series back: per-key summaries, points streamed in order, CSV, comparison.

CSV (``runlock metrics RUN --csv``): a header ``step,value,key,rank,time``, then one row per
point in the order ``key, step, rank, logging order``; values are written so that they read back
as the same float (``repr``), ``nan``/``inf``/``-inf`` as such; ``time`` is unix seconds.
A step logged twice (steps may go backwards, e.g. after resuming from a checkpoint) gives two
rows, in the order they were logged.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

import sqlalchemy as sa

from runlock.store import Store
from runlock.store.schema import metrics
from runlock.tracking import fields, records, rollups
from runlock.tracking.writer import decode

CSV_HEADER = ("step", "value", "key", "rank", "time")


@dataclass(frozen=True)
class KeySummary:
    key: str
    points: int
    first_step: int
    last_step: int
    latest: float | None      # the last value rank 0 logged
    min: float | None = None  # over every point (nan and inf left out of min and max)
    max: float | None = None
    steps: int = 0            # distinct steps


@dataclass(frozen=True)
class Point:
    key: str
    step: int
    value: float
    rank: int
    time: float


@dataclass(frozen=True)
class CompareRow:
    section: str              # run | config | summary | metrics | tags
    key: str
    values: list
    differs: bool


@dataclass(frozen=True)
class Comparison:
    runs: list[str]
    rows: list[CompareRow]
    names: list[str] = field(default_factory=list)   # each run's name, in the order of ``runs``
    hidden: int = 0                                   # identical rows left out (only_differences)

    def to_dict(self) -> dict:
        return {"runs": self.runs, "names": self.names, "hidden": self.hidden,
                "rows": [r.__dict__ for r in self.rows]}


def _filtered(q: sa.Select, run_id: str, keys: Sequence[str] | None, rank: int | None) -> sa.Select:
    q = q.where(metrics.c.run_id == run_id)
    if keys:
        q = q.where(metrics.c.key.in_(list(keys)))
    if rank is not None:
        q = q.where(metrics.c.rank == rank)
    return q


def summarize(store: Store, ref: str, *, rank: int | None = None) -> list[KeySummary]:
    """One line per metric key of a run: how many points and steps, which steps, the latest
    value, the smallest and the largest."""
    rec = records.get(store, ref)
    if rank is None and rec.sealed:      # a sealed run's rollups hold these totals (tracking/rollups.py)
        with store.db.read() as conn:
            rows = rollups.totals(conn, rec.id)
            latest = fields.for_runs(conn, [rec.id])[rec.id] if rows else {}
        if rows:
            return [KeySummary(k, n, lo, hi, latest.get(f"metrics.{k}"), vmin, vmax, steps)
                    for k, n, lo, hi, vmin, vmax, steps in rows]
    finite = sa.and_(metrics.c.raw.is_(None), metrics.c.value.is_not(None))
    value = sa.case((finite, metrics.c.value), else_=None)
    q = _filtered(sa.select(metrics.c.key, sa.func.count(), sa.func.min(metrics.c.step), sa.func.max(metrics.c.step),
                            sa.func.min(value), sa.func.max(value), sa.func.count(sa.distinct(metrics.c.step))),
                  rec.id, None, rank).group_by(metrics.c.key)
    with store.db.read() as conn:
        rows = conn.execute(q.order_by(metrics.c.key)).all()
        latest = fields.for_runs(conn, [rec.id])[rec.id]
    return [KeySummary(k, n, lo, hi, latest.get(f"metrics.{k}"), vmin, vmax, steps)
            for k, n, lo, hi, vmin, vmax, steps in rows]


def points(store: Store, ref: str, *, keys: Sequence[str] | None = None,
           rank: int | None = None) -> Iterator[Point]:
    """Every point of a run (or of some keys / one rank), streamed in key, step, rank, log order."""
    rec = records.get(store, ref)
    q = _filtered(sa.select(metrics.c.key, metrics.c.step, metrics.c.value, metrics.c.raw, metrics.c.rank,
                            metrics.c.time), rec.id, keys, rank)
    q = q.order_by(metrics.c.key, metrics.c.step, metrics.c.rank, metrics.c.seq)
    with store.db.read() as conn:
        for r in conn.execution_options(yield_per=10_000).execute(q):
            yield Point(r.key, r.step, decode(r.value, r.raw), r.rank, r.time)


def write_csv(stream: Iterator[Point], out: TextIO) -> int:
    """Write points as CSV; return how many rows."""
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_HEADER)
    n = 0
    for p in stream:
        w.writerow((p.step, repr(p.value), p.key, p.rank, repr(p.time)))
        n += 1
    return n


def compare(store: Store, refs: Sequence[str], *, only_differences: bool = False) -> Comparison:
    """Side by side: each run's status and recipe, then every config, summary, latest metric and
    tag value (``None`` where a run lacks the key)."""
    recs = [records.get(store, r) for r in refs]
    with store.db.read() as conn:
        values = fields.for_runs(conn, [r.id for r in recs])
    rows = [CompareRow("run", c, [getattr(r, c) for r in recs], len({getattr(r, c) for r in recs}) > 1)
            for c in ("name", "status", "recipe_id", "last_step")]
    if any(r.deleted for r in recs):
        rows.append(CompareRow("run", "deleted_at", [r.deleted_at for r in recs], True))
    labels = sorted({k for v in values.values() for k in v},
                    key=lambda k: (fields.SECTIONS.index(k.split(".", 1)[0]), k))
    for label in labels:
        section, key = label.split(".", 1)
        vals = [values[r.id].get(label) for r in recs]
        rows.append(CompareRow(section, key, vals, any(_differs(vals[0], v) for v in vals[1:])))
    hidden = 0
    if only_differences:
        shown = [r for r in rows if r.differs]
        rows, hidden = shown, len(rows) - len(shown)
    return Comparison([r.id for r in recs], rows, [r.name for r in recs], hidden)


def _differs(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return False   # nan == nan for a comparison of results
    return a != b or type(a) is not type(b)
