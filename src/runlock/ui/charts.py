"""Metric series for the browser, never more points than it can draw.

A series with more than ``2 * buckets`` points in the asked step range is cut into ``buckets``
equal step ranges (one per pixel column of a ~1,000-pixel chart) and each bucket gives two
points: its smallest value at the bucket's first step and its largest at its last step (the
min/max envelope, the shape a line chart of every point would show). The database does the
bucketing (one ``GROUP BY`` over the ``(run_id, key, step)`` index), so a 1M-point series costs
one aggregate query, not a million rows in Python; a sealed run answers from its rollups
(``tracking/rollups.py``: min/max/count per 64, 512 or 4,096 steps, written when it was sealed),
so a 1M-point chart reads ~2,000 rollup rows instead (buckets then end on rollup boundaries; a zoomed
range adds the raw points of its two partial rollups at the edges). Zooming asks again for the visible range:
fewer points per bucket, until every point is sent as it is. Rank 0 only (what the run reports);
non-finite values are left out, as in ``runlock metrics``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from threading import Lock

import sqlalchemy as sa

from runlock.errors import InvalidInput
from runlock.store import Store
from runlock.store.schema import metrics
from runlock.tracking import rollups

BUCKETS = 1000
MAX_BUCKETS = 4000


@dataclass(frozen=True)
class Series:
    run_id: str
    key: str
    steps: list[int]
    values: list[float]
    start: int | None        # the step range asked for (None: from the first / to the last)
    end: int | None
    points: int              # points in the range before downsampling
    downsampled: bool

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "key": self.key, "steps": self.steps, "values": self.values,
                "start": self.start, "end": self.end, "points": self.points, "downsampled": self.downsampled}


def series(store: Store, run_id: str, key: str, *, start: int | None = None, end: int | None = None,
           buckets: int = BUCKETS) -> Series:
    """The points of ``key`` with ``start <= step <= end``, downsampled to at most ``2 * buckets``."""
    if not 1 <= buckets <= MAX_BUCKETS:
        raise InvalidInput(f"Ask for 1 to {MAX_BUCKETS} buckets, not {buckets}.")
    if start is not None and end is not None and start > end:
        raise InvalidInput(f"The step range {start}..{end} is empty.", hint="Give start <= end.")
    where = [metrics.c.run_id == run_id, metrics.c.key == key, metrics.c.rank == 0,
             metrics.c.raw.is_(None), metrics.c.value.is_not(None)]
    if start is not None:
        where.append(metrics.c.step >= start)
    if end is not None:
        where.append(metrics.c.step <= end)
    with store.db.read() as conn:
        rolled = _from_rollups(conn, run_id, key, start, end, buckets, where) if rollups.has(conn, run_id) else None
        if rolled is not None:
            return rolled
        n, lo, hi = conn.execute(sa.select(sa.func.count(), sa.func.min(metrics.c.step),
                                           sa.func.max(metrics.c.step)).where(*where)).one()
        if n <= 2 * buckets:
            rows = conn.execute(sa.select(metrics.c.step, metrics.c.value).where(*where)
                                .order_by(metrics.c.step, metrics.c.seq)).all()
            return Series(run_id, key, [r[0] for r in rows], [r[1] for r in rows], start, end, n, False)
        # integer division on both databases: bucket = (step - lo) * buckets // (hi - lo + 1)
        bucket = ((metrics.c.step - lo) * buckets // sa.literal(hi - lo + 1, sa.BigInteger)).label("b")
        q = (sa.select(bucket, sa.func.min(metrics.c.step), sa.func.max(metrics.c.step),
                       sa.func.min(metrics.c.value), sa.func.max(metrics.c.value))
             .where(*where).group_by(bucket).order_by(bucket))
        steps, values = [], []
        for _, first, last, vmin, vmax in conn.execute(q):
            steps.append(first)
            values.append(vmin)
            if last != first:
                steps.append(last)
                values.append(vmax)
    return Series(run_id, key, steps, values, start, end, n, True)


def _from_rollups(conn: sa.Connection, run_id: str, key: str, start: int | None, end: int | None, buckets: int,
                  where: list) -> Series | None:
    """The envelope from the coarsest rollup width that still gives ``buckets`` buckets in the
    range, plus the raw points of the range's partial buckets at its edges; None: use the points."""
    width = next((w for w in reversed(rollups.WIDTHS)
                  if rollups.count(conn, run_id, key, w, start, end) >= buckets), None)
    if width is None:
        return None
    pieces = rollups.pieces(conn, run_id, key, width, start, end)
    edges = []
    if start is not None:
        edges.append(metrics.c.step.between(start, -(-start // width) * width - 1))
    if end is not None:
        edges.append(metrics.c.step.between(((end + 1) // width) * width, end))
    if edges:
        q = sa.select(metrics.c.step, metrics.c.value).where(*where, sa.or_(*edges))
        pieces += [rollups.Piece(s, s, 1, v, v) for s, v in conn.execute(q)]
        pieces.sort(key=lambda p: p.first)
    n = sum(p.n for p in pieces)
    if n <= 2 * buckets:
        return None
    lo, hi = pieces[0].first, max(p.last for p in pieces)
    groups: dict[int, list] = {}
    for p in pieces:
        g = groups.setdefault((p.first - lo) * buckets // (hi - lo + 1), [p.first, p.last, p.vmin, p.vmax])
        g[1], g[2], g[3] = max(g[1], p.last), min(g[2], p.vmin), max(g[3], p.vmax)
    steps, values = [], []
    for first, last, vmin, vmax in groups.values():
        steps.append(first)
        values.append(vmin)
        if last != first:
            steps.append(last)
            values.append(vmax)
    return Series(run_id, key, steps, values, start, end, n, True)


class SeriesCache:
    """The series already sent, for runs that have ended: a sealed run's points never change, so
    the second look at a 1M-point chart (another reader, a zoom out) costs no query. Bounded
    (least recently used first out); one per app, never shared between processes."""

    def __init__(self, size: int = 256) -> None:
        self.size, self._items, self._lock = size, OrderedDict(), Lock()

    def get(self, key: tuple) -> Series | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: tuple, value: Series) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def identical(store: Store, run_ids: list[str], key: str) -> bool:
    """Whether every run logged exactly the same (step, value) points for ``key`` (rank 0), bit
    for bit (non-finite values compared by their text)."""
    seen = None
    with store.db.read() as conn:
        for run_id in run_ids:
            q = (sa.select(metrics.c.step, metrics.c.value, metrics.c.raw)
                 .where(metrics.c.run_id == run_id, metrics.c.key == key, metrics.c.rank == 0)
                 .order_by(metrics.c.step, metrics.c.seq))
            pts = [(s, v.hex() if isinstance(v, float) else v, raw) for s, v, raw in conn.execute(q)]
            if seen is None:
                seen = pts
            elif pts != seen:
                return False
    return bool(seen)
