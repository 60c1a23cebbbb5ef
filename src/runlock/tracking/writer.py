"""The metric writer: ``append`` puts one log call on a queue and returns; a thread writes batches.

The training loop pays for one ``deque.append`` (atomic under the GIL, so no lock) and a counter.
The writer thread wakes every ``interval_ms`` milliseconds, or as soon as ``batch_points`` points
wait, numbers the points in logging order (``seq``), and writes them in one transaction per
batch, together with the run's ``last_step`` and the latest value of each metric (the query
index, ``runlock.tracking.fields``).

``flush`` puts a marker on the same queue and waits for the thread to reach it: everything logged
before the marker is then committed. When the store cannot take a batch (disk full, lost
connection, a database locked for longer than the busy timeout, a read-only store), the points
stay queued, one warning says so, and the thread retries with a growing pause; the training loop
never sees the failure. The queue is bounded: past ``max_buffered`` points the oldest are dropped,
with a warning that counts them (``dropped_points``). The same thread sends the heartbeat.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from runlock.errors import RunlockError, SealedError
from runlock.store import Store
from runlock.store.schema import metrics, runs
from runlock.tracking import fields, records

Entry = tuple[int, float, dict]            # step, unix time, {key: float}
Row = tuple[str, str, int, int, int, float | None, str | None, float]  # metrics' columns, in order
COLUMNS = tuple(c.name for c in metrics.c)  # run_id, key, step, rank, seq, value, raw, time


@dataclass(frozen=True)
class WriterSettings:
    batch_points: int = 5000        # write as soon as this many points wait ...
    interval_ms: int = 200          # ... or this often, whichever comes first
    max_buffered: int = 5_000_000   # points kept while the store refuses them; then the oldest go
    max_retry_s: float = 5.0        # longest pause between two attempts while the store fails
    heartbeat_s: float = records.HEARTBEAT_SECONDS


class _Marker:
    """A flush request on the queue: set once every entry before it is written or given up.
    ``lost`` counts the points before it that were dropped instead of written."""

    __slots__ = ("done", "dropped_before", "lost")

    def __init__(self, dropped_before: int) -> None:
        self.done = threading.Event()
        self.dropped_before = dropped_before
        self.lost = 0


def encode(value: float) -> tuple[float | None, str | None]:
    """A float as (value, raw): non-finite values keep their meaning in ``raw``."""
    if math.isfinite(value):
        return value, None
    return None, ("nan" if value != value else "inf" if value > 0 else "-inf")


def decode(value: float | None, raw: str | None) -> float:
    return float(raw) if raw else float(value)  # float("nan"), float("inf")


class MetricWriter:
    def __init__(self, store: Store, run_id: str, rank: int = 0, start_seq: int = 0,
                 settings: WriterSettings | None = None, on_sealed: Callable[[], None] | None = None) -> None:
        self.store, self.run_id, self.rank = store, run_id, rank
        self.settings = settings or WriterSettings()
        self.dropped_points = 0
        self.failing: str | None = None
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._batch_points = self.settings.batch_points
        self._appended = 0           # points appended (the training thread only adds)
        self._taken = 0              # points taken off the queue (the writer thread only adds)
        self._since_wake = 0
        self._seq = start_seq
        self._last_step: int | None = None
        self._stop = threading.Event()
        self._on_sealed = on_sealed
        self._thread = threading.Thread(target=self._loop, name=f"runlock-writer-{run_id[-6:]}", daemon=True)
        self._thread.start()

    # called from the training loop ----------------------------------------------------------
    def append(self, step: int, values: dict) -> None:
        """Queue one log call (already checked: ``{str: float}``). Never blocks, never raises."""
        self._queue.append((step, time.time(), values))
        n = len(values)
        self._appended += n
        self._since_wake += n
        if self._since_wake >= self._batch_points:
            self._since_wake = 0
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every point appended so far is written; False on timeout, or when some of
        them were dropped instead (queue overflow, or the run was sealed by another process)."""
        marker = _Marker(self.dropped_points)
        self._queue.append(marker)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not marker.done.wait(0.05):
            if not self._thread.is_alive() or (deadline is not None and time.monotonic() >= deadline):
                return False
        return marker.lost == 0

    def close(self, timeout: float | None = None) -> bool:
        ok = self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        return ok

    @property
    def last_step(self) -> int | None:
        return self._last_step

    @property
    def buffered_points(self) -> int:
        return self._appended - self._taken

    # the writer thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        pending: list[Row] = []
        markers: list[_Marker] = []
        pause = 0.0
        next_beat = time.monotonic() + self.settings.heartbeat_s
        while True:
            if pause:
                self._stop.wait(pause)       # a failing store is not retried faster on a flush
            else:
                self._wake.wait(self.settings.interval_ms / 1000)
            self._wake.clear()
            while True:
                self._take(pending, markers)
                if pending and not self._write(pending, markers):
                    self._bound(markers)
                    pause = min(self.settings.max_retry_s, max(0.05, pause * 2))
                    break
                pause = 0.0
                pending.clear()
                for m in markers:
                    m.done.set()
                markers.clear()
                next_beat = self._beat(next_beat)   # also while the queue never empties
                if not self._queue:
                    break
            next_beat = self._beat(next_beat)
            if self._stop.is_set() and (pause or not self._queue):
                self._give_up(pending, markers, "the run ended while the store refused them")
                return

    def _take(self, pending: list[Row], markers: list[_Marker]) -> None:
        """Move queued entries into ``pending`` (up to one batch); stop after a flush marker."""
        limit = self._batch_points * 4
        queue, seq, taken, run_id, rank = self._queue, self._seq, 0, self.run_id, self.rank
        while queue and len(pending) < limit:
            entry = queue.popleft()
            if type(entry) is _Marker:
                self._reached(entry, markers)
                break
            step, t, values = entry
            seq += 1
            for key, value in values.items():
                if value - value == 0.0:   # finite
                    pending.append((run_id, key, step, rank, seq, value, None, t))
                else:
                    pending.append((run_id, key, step, rank, seq, None, encode(value)[1], t))
            taken += len(values)
        self._seq = seq
        self._taken += taken

    def _reached(self, marker: _Marker, markers: list[_Marker]) -> None:
        # drops take entries from the front of the queue, so every drop so far came before it
        marker.lost = self.dropped_points - marker.dropped_before
        markers.append(marker)

    def _write(self, pending: list[Row], markers: list[_Marker]) -> bool:
        try:
            self.store.db.run_write(lambda conn: self._insert(conn, pending))
        except SealedError:
            self._give_up(pending, markers, "the run was sealed before they were written")
            if self._on_sealed:
                self._on_sealed()
            return True
        except IntegrityError:
            self._renumber(pending)   # another handle logged under the same rank meanwhile
            return False
        except RunlockError as e:
            if self.failing is None:
                warnings.warn(f"runlock: cannot write metrics of run {self.run_id} yet ({e}); keeping "
                              "them buffered in memory and retrying.", RuntimeWarning, stacklevel=1)
            self.failing = str(e)
            return False
        if self.failing is not None:
            warnings.warn(f"runlock: the store takes metrics of run {self.run_id} again.",
                          RuntimeWarning, stacklevel=1)
        self.failing = None
        top = max(map(itemgetter(2), pending))
        self._last_step = top if self._last_step is None else max(self._last_step, top)
        return True

    def _insert(self, conn: Connection, pending: list[Row]) -> None:
        records.require_running(conn, self.run_id)
        run_id = self.run_id
        if conn.dialect.name == "sqlite":   # the driver's executemany of tuples: 2.5x SQLAlchemy's
            conn.exec_driver_sql(_sqlite_insert(conn), pending)
        else:
            conn.execute(metrics.insert(), [dict(zip(COLUMNS, r)) for r in pending])
        top = max(map(itemgetter(2), pending))
        greatest = sa.func.max if conn.dialect.name == "sqlite" else sa.func.greatest
        conn.execute(runs.update().where(runs.c.id == run_id).values(
            last_step=greatest(sa.func.coalesce(runs.c.last_step, top), top)))
        if self.rank == 0:
            fields.record_latest(conn, run_id, _latest(pending))

    def _renumber(self, pending: list[Row]) -> None:
        with self.store.db.read() as conn:
            base = conn.execute(sa.select(sa.func.max(metrics.c.seq)).where(
                metrics.c.run_id == self.run_id, metrics.c.rank == self.rank)).scalar() or 0
        shift = base + 1 - pending[0][4]
        pending[:] = [(*r[:4], r[4] + shift, *r[5:]) for r in pending]
        self._seq += shift

    def _bound(self, markers: list[_Marker]) -> None:
        """While the store fails, keep at most ``max_buffered`` queued points; drop the oldest."""
        excess = self.buffered_points - self.settings.max_buffered
        dropped = 0
        while excess > 0 and self._queue:
            entry = self._queue.popleft()
            if type(entry) is _Marker:
                self._reached(entry, markers)
                continue
            n = len(entry[2])
            excess -= n
            dropped += n
            self.dropped_points += n
            self._taken += n
        if dropped:
            warnings.warn(f"runlock: the store has refused metrics of run {self.run_id} for a while "
                          f"({self.failing}); dropped the {dropped} oldest buffered points "
                          f"({self.dropped_points} so far).", RuntimeWarning, stacklevel=1)

    def _give_up(self, pending: list[Row], markers: list[_Marker], why: str) -> None:
        """Drop everything not yet written (the run is sealed, or closing while the store fails)."""
        lost = len(pending)
        pending.clear()
        while self._queue:
            entry = self._queue.popleft()
            if type(entry) is _Marker:
                markers.append(entry)
            else:
                lost += len(entry[2])
                self._taken += len(entry[2])
        self.dropped_points += lost
        for m in markers:
            m.lost += lost
            m.done.set()
        markers.clear()
        if lost:
            warnings.warn(f"runlock: {lost} points of run {self.run_id} were not written: {why}.",
                          RuntimeWarning, stacklevel=1)

    def _beat(self, due: float) -> float:
        """Refresh the run's heartbeat if it is due; return when the next one is."""
        if time.monotonic() < due:
            return due
        try:
            records.heartbeat(self.store, self.run_id, None)
        except RunlockError:
            pass  # the next beat will try again; a missed beat is not an error
        return time.monotonic() + self.settings.heartbeat_s


def _sqlite_insert(conn: Connection) -> str:
    """The INSERT for ``metrics`` as SQLAlchemy compiles it for SQLite, columns in table order."""
    compiled = metrics.insert().values({c: sa.bindparam(c) for c in COLUMNS}).compile(dialect=conn.dialect)
    assert tuple(compiled.positiontup) == COLUMNS
    return str(compiled)


def _latest(pending: list[Row]) -> dict[str, tuple[int, float | None, str | None]]:
    """The last logged point of each key in a batch: ``{key: (step, value, raw)}``."""
    return {r[1]: (r[2], r[5], r[6]) for r in pending}
