"""Per-bucket rollups of a sealed run's metric series: charts and statistics without the points.

When a run is sealed (``records.end``, in the sealing transaction) each of its series is cut into
fixed buckets of steps (``bucket = step // width``) at three widths (``WIDTHS``: 64, 512 and
4,096 steps) and each bucket keeps, over every point of every rank, the number of points and of
distinct steps, its first and last step, and the smallest and largest finite value (what
``series.summarize`` reports); and, over rank 0's finite points (what a chart draws), their number,
first and last step, smallest and largest value. A sealed run never changes, so the rollups are
written once and stay true; they are a cache of the points, never the record (the points are).
Runs sealed before the table existed (migration ``0012``), or loaded from a bundle, have none,
and readers fall back to the points.

One scan of the run's points fills the finest width; the coarser ones are summed from it (buckets
partition the steps, so distinct steps add up).
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


def write(conn: Connection, run_id: str) -> int:
    """Roll up every series of ``run_id`` (inside the transaction that seals it); the rows written."""
    finite = sa.and_(metrics.c.raw.is_(None), metrics.c.value.is_not(None))
    drawn = sa.and_(finite, metrics.c.rank == 0)
    fine = WIDTHS[0]
    bucket = _floor_div(metrics.c.step, fine)

    def when(cond: sa.ColumnElement, col: sa.ColumnElement) -> sa.ColumnElement:
        return sa.case((cond, col), else_=None)

    q = (sa.select(metrics.c.run_id, metrics.c.key, sa.literal(fine, sa.Integer), bucket.label("b"),
                   sa.func.count(), sa.func.count(sa.distinct(metrics.c.step)),
                   sa.func.min(metrics.c.step), sa.func.max(metrics.c.step),
                   sa.func.min(when(finite, metrics.c.value)), sa.func.max(when(finite, metrics.c.value)),
                   sa.func.count(when(drawn, metrics.c.step)),
                   sa.func.min(when(drawn, metrics.c.step)), sa.func.max(when(drawn, metrics.c.step)),
                   sa.func.min(when(drawn, metrics.c.value)), sa.func.max(when(drawn, metrics.c.value)))
         .where(metrics.c.run_id == run_id).group_by(metrics.c.run_id, metrics.c.key, sa.literal_column("b")))
    cols = [c.name for c in metric_rollups.columns]
    written = conn.execute(metric_rollups.insert().from_select(cols, q)).rowcount or 0
    r = metric_rollups.c
    for coarse in WIDTHS[1:]:
        ratio = coarse // fine
        up = _floor_div(r.bucket, ratio)
        q = (sa.select(r.run_id, r.key, sa.literal(coarse, sa.Integer), up.label("b"), sa.func.sum(r.points),
                       sa.func.sum(r.steps), sa.func.min(r.lo_step), sa.func.max(r.hi_step), sa.func.min(r.vmin),
                       sa.func.max(r.vmax), sa.func.sum(r.n0), sa.func.min(r.first0), sa.func.max(r.last0),
                       sa.func.min(r.min0), sa.func.max(r.max0))
             .where(r.run_id == run_id, r.width == fine)
             .group_by(r.run_id, r.key, sa.literal_column("b")))
        written += conn.execute(metric_rollups.insert().from_select(cols, q)).rowcount or 0
    return written


def _floor_div(col: sa.ColumnElement, by: int) -> sa.ColumnElement:
    """``col // by`` rounded down on both databases (their integer division truncates toward 0)."""
    return sa.case((col >= 0, col // by), else_=(col - (by - 1)) // by)


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
