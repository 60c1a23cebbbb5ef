"""Per-bucket rollups of a sealed run's metric series: charts and statistics without the points.

When a run is sealed (``records.end``, written in the sealing transaction) each of its series is cut into
fixed buckets of steps (``bucket = step // width``) at three widths (``WIDTHS``: 64, 512 and
4,096 steps) and each bucket keeps, over every point of every rank, the number of points and of
distinct steps, its first and last step, and the smallest and largest finite value (what
``series.summarize`` reports); and, over rank 0's finite points (what a chart draws), their number,
first and last step, smallest and largest value. A sealed run never changes, so the rollups are
written once and stay true; they are a cache of the points, never the record (the points are).
Runs sealed before the table existed (migration ``0012``), or loaded from a bundle, have none,
and readers fall back to the points.

One scan of the run's points fills the finest width; the coarser ones are summed from it (buckets
partition the steps, so distinct steps add up). The scan is done before the seal takes the write
lock (``prepare``, from a read); in the lock, ``write`` only checks that no point arrived since
(the number of points per key: points are only added, never changed) and inserts the rows, or, if
one did, computes them there from the points as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import Connection

from runlock.store.schema import ID, METADATA, metrics

WIDTHS = (64, 512, 4096)     # steps per bucket, finest first, each 8 times the one before: a chart
#                              of ~1,000 buckets reads between 1,000 and 8,000 rollup rows

metric_rollups = sa.Table(
    "metric_rollups", METADATA,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("bucket", sa.BigInteger, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),     # every rank, every value
    sa.Column("steps", sa.BigInteger, nullable=False),      # distinct steps
    sa.Column("lo_step", sa.BigInteger, nullable=False),
    sa.Column("hi_step", sa.BigInteger, nullable=False),
    sa.Column("vmin", sa.Float, nullable=True),             # finite values only
    sa.Column("vmax", sa.Float, nullable=True),
    sa.Column("n0", sa.BigInteger, nullable=False),         # rank 0, finite: what a chart draws
    sa.Column("first0", sa.BigInteger, nullable=True),
    sa.Column("last0", sa.BigInteger, nullable=True),
    sa.Column("min0", sa.Float, nullable=True),
    sa.Column("max0", sa.Float, nullable=True),
    sa.PrimaryKeyConstraint("run_id", "key", "width", "bucket", name="pk_metric_rollups"),
)


@dataclass(frozen=True)
class Piece:
    """A stretch of rank 0's finite points: ``n`` of them from ``first`` to ``last`` step."""

    first: int
    last: int
    n: int
    vmin: float
    vmax: float


@dataclass(frozen=True)
class Prepared:
    """A run's rollup rows, computed before its seal takes the write lock, and the number of points
    per key they were computed from."""

    run_id: str
    shape: dict
    rows: tuple[dict, ...]


def prepare(conn: Connection, run_id: str) -> Prepared:
    """Roll up every series of ``run_id`` from a read (before the seal's write transaction): one
    scan of its points for the finest width, the coarser widths summed from it here."""
    fine = [dict(zip(COLUMNS, row, strict=True)) for row in conn.execute(_fine(run_id))]
    rows = list(fine)
    for coarse in WIDTHS[1:]:
        rows += _coarsen(fine, coarse)
    shape: dict[str, int] = {}
    for row in fine:
        shape[row["key"]] = shape.get(row["key"], 0) + row["points"]
    return Prepared(run_id, shape, tuple(rows))


def write(conn: Connection, run_id: str, prepared: Prepared | None = None) -> int:
    """Write the rollups of ``run_id`` inside the transaction that seals it; the rows written.
    ``prepared`` rows are written as they are when no point arrived since they were computed (the
    series' shape is unchanged: the run was still running then, so a late point is possible);
    else they are computed here, in the transaction, from the points as they are now."""
    if prepared is not None and prepared.run_id == run_id and _shape(conn, run_id) == prepared.shape:
        if prepared.rows:
            conn.execute(metric_rollups.insert(), list(prepared.rows))
        return len(prepared.rows)
    written = conn.execute(metric_rollups.insert().from_select(COLUMNS, _fine(run_id))).rowcount or 0
    r, fine = metric_rollups.c, WIDTHS[0]
    for coarse in WIDTHS[1:]:
        up = _floor_div(r.bucket, coarse // fine)
        q = (sa.select(r.run_id, r.key, sa.literal(coarse, sa.Integer), up.label("b"), sa.func.sum(r.points),
                       sa.func.sum(r.steps), sa.func.min(r.lo_step), sa.func.max(r.hi_step), sa.func.min(r.vmin),
                       sa.func.max(r.vmax), sa.func.sum(r.n0), sa.func.min(r.first0), sa.func.max(r.last0),
                       sa.func.min(r.min0), sa.func.max(r.max0))
             .where(r.run_id == run_id, r.width == fine)
             .group_by(r.run_id, r.key, sa.literal_column("b")))
        written += conn.execute(metric_rollups.insert().from_select(COLUMNS, q)).rowcount or 0
    return written


COLUMNS = [c.name for c in metric_rollups.columns]


def _fine(run_id: str) -> sa.Select:
    """The finest width's rows of ``run_id``, in ``COLUMNS`` order: one scan of its points."""
    finite = sa.and_(metrics.c.raw.is_(None), metrics.c.value.is_not(None))
    drawn = sa.and_(finite, metrics.c.rank == 0)
    fine = WIDTHS[0]
    bucket = _floor_div(metrics.c.step, fine)

    def when(cond: sa.ColumnElement, col: sa.ColumnElement) -> sa.ColumnElement:
        return sa.case((cond, col), else_=None)

    return (sa.select(metrics.c.run_id, metrics.c.key, sa.literal(fine, sa.Integer), bucket.label("b"),
                      sa.func.count(), sa.func.count(sa.distinct(metrics.c.step)),
                      sa.func.min(metrics.c.step), sa.func.max(metrics.c.step),
                      sa.func.min(when(finite, metrics.c.value)), sa.func.max(when(finite, metrics.c.value)),
                      sa.func.count(when(drawn, metrics.c.step)),
                      sa.func.min(when(drawn, metrics.c.step)), sa.func.max(when(drawn, metrics.c.step)),
                      sa.func.min(when(drawn, metrics.c.value)), sa.func.max(when(drawn, metrics.c.value)))
            .where(metrics.c.run_id == run_id).group_by(metrics.c.run_id, metrics.c.key, sa.literal_column("b")))


def _coarsen(fine: list[dict], width: int) -> list[dict]:
    """The rows of ``width`` summed from the finest ones, as the SQL of ``write`` sums them (NULLs
    left out of min and max)."""
    groups: dict[tuple, list[dict]] = {}
    for row in fine:
        groups.setdefault((row["key"], row["bucket"] // (width // WIDTHS[0])), []).append(row)
    out = []
    for (key, bucket), rows in groups.items():
        out.append({"run_id": rows[0]["run_id"], "key": key, "width": width, "bucket": bucket,
                    "points": sum(r["points"] for r in rows), "steps": sum(r["steps"] for r in rows),
                    "lo_step": min(r["lo_step"] for r in rows), "hi_step": max(r["hi_step"] for r in rows),
                    "vmin": _least(r["vmin"] for r in rows), "vmax": _most(r["vmax"] for r in rows),
                    "n0": sum(r["n0"] for r in rows), "first0": _least(r["first0"] for r in rows),
                    "last0": _most(r["last0"] for r in rows), "min0": _least(r["min0"] for r in rows),
                    "max0": _most(r["max0"] for r in rows)})
    return out


def _least(xs):  # noqa: ANN001, ANN202
    return min((x for x in xs if x is not None), default=None)


def _most(xs):  # noqa: ANN001, ANN202
    return max((x for x in xs if x is not None), default=None)


def _shape(conn: Connection, run_id: str) -> dict[str, int]:
    """``{key: points}``: a point logged since changes it (a series' points are only ever added,
    never updated or deleted, by the tracking layer)."""
    q = sa.select(metrics.c.key, sa.func.count()).where(metrics.c.run_id == run_id).group_by(metrics.c.key)
    return {k: int(n) for k, n in conn.execute(q)}


def _floor_div(col: sa.ColumnElement, by: int) -> sa.ColumnElement:
    """``col // by`` rounded down on both databases (their integer division truncates toward 0)."""
    return sa.case((col >= 0, col // by), else_=(col - (by - 1)) // by)


def differing(conn: Connection) -> list[str]:
    """The runs whose stored rollups are not what their points give (``runlock fsck``): rollups are
    not part of a sealed record's digest, so an edit of them is found by recomputing them."""
    r = metric_rollups.c
    found = []
    for (run_id,) in conn.execute(sa.select(r.run_id).distinct().order_by(r.run_id)):
        stored = conn.execute(sa.select(metric_rollups).where(r.run_id == run_id)).mappings()
        mine = sorted(tuple(row[c] for c in COLUMNS) for row in stored)
        if mine != sorted(tuple(row[c] for c in COLUMNS) for row in prepare(conn, run_id).rows):
            found.append(run_id)
    return found


def has(conn: Connection, run_id: str) -> bool:
    """Whether the run's rollups were written (it was sealed with them)."""
    return conn.execute(sa.select(sa.literal(1)).where(metric_rollups.c.run_id == run_id).limit(1)).first() is not None


def totals(conn: Connection, run_id: str) -> list[tuple]:
    """Per key: (key, points, first step, last step, min, max, distinct steps), from the coarse
    width (a handful of rows per key); empty when the run has no rollups."""
    r = metric_rollups.c
    q = (sa.select(r.key, sa.func.sum(r.points), sa.func.min(r.lo_step), sa.func.max(r.hi_step),
                   sa.func.min(r.vmin), sa.func.max(r.vmax), sa.func.sum(r.steps))
         .where(r.run_id == run_id, r.width == WIDTHS[-1]).group_by(r.key).order_by(r.key))
    return [tuple(row) for row in conn.execute(q)]


def count(conn: Connection, run_id: str, key: str, width: int, first: int | None, last: int | None) -> int:
    """How many buckets of ``width`` lie wholly inside ``first..last`` (None: open) and hold a drawn point."""
    return conn.execute(sa.select(sa.func.count()).where(*_inside(run_id, key, width, first, last))).scalar() or 0


def pieces(conn: Connection, run_id: str, key: str, width: int, first: int | None, last: int | None) -> list[Piece]:
    """The buckets of ``width`` wholly inside ``first..last`` that hold drawn points, in step order."""
    r = metric_rollups.c
    q = (sa.select(r.first0, r.last0, r.n0, r.min0, r.max0).where(*_inside(run_id, key, width, first, last))
         .order_by(r.bucket))
    return [Piece(*row) for row in conn.execute(q)]


def _inside(run_id: str, key: str, width: int, first: int | None, last: int | None) -> list:
    r = metric_rollups.c
    where = [r.run_id == run_id, r.key == key, r.width == width, r.n0 > 0]
    if first is not None:
        where.append(r.bucket * width >= first)
    if last is not None:
        where.append(r.bucket * width + (width - 1) <= last)
    return where
