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
never sees the failure.

The queue is bounded at all times: when ``max_buffered`` points wait, ``append`` blocks until the
thread has taken some (a healthy but slower store slows the loop down instead of filling the
memory); while the store refuses writes, the thread drops the oldest points instead, with a
warning that counts them. An error the thread does not expect (a bug, a driver error nobody
translated) never stops it: the batch is retried twice, then dropped and counted. Every point is
either written or counted: ``unwritten_points`` is what ``append`` took minus what reached the
store, and ``Run.finish`` refuses to seal a run ``finished`` when it is not zero. The same thread
sends the heartbeat.
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
UNEXPECTED_ATTEMPTS = 3   # tries of one batch that fails with an error nobody expected
WAIT_WARNING_S = 1.0      # log() blocked this long on a full queue: say so once


@dataclass(frozen=True)
class WriterSettings:
    batch_points: int = 5000        # write as soon as this many points wait ...
    interval_ms: int = 200          # ... or this often, whichever comes first
    max_buffered: int = 5_000_000   # points queued at most: log() waits, or the oldest go while the store fails
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
        self.dropped_points = 0      # given up on (writer thread only adds)
        self.written_points = 0      # committed to the store (writer thread only adds)
        self.failing: str | None = None
        self.loss_reason: str | None = None   # why the first points were given up on
        self._queue: deque = deque()
        self._wake = threading.Event()
        self._room = threading.Event()
        self._batch_points = self.settings.batch_points
        self._max_buffered = max(1, self.settings.max_buffered)
        self._appended = 0           # points appended (the training thread only adds)
        self._sampled = 0            # points appended by the system-metrics sampler (its thread only)
        self._taken = 0              # points taken off the queue (the writer thread only adds)
        self._since_wake = 0
        self._seq = start_seq
        self._last_step: int | None = None
        self._unexpected = 0         # failed attempts of the current batch with an unexpected error
        self._waited_warning = False
        self._stop = threading.Event()
        self._on_sealed = on_sealed
        self._thread = threading.Thread(target=self._loop, name=f"runlock-writer-{run_id[-6:]}", daemon=True)
        self._thread.start()

    # called from the training loop ----------------------------------------------------------
    def append(self, step: int, values: dict) -> None:
        """Queue one log call (already checked: ``{str: float}``). Never raises; waits only
        while ``max_buffered`` points are queued."""
        if self._appended - self._taken >= self._max_buffered:
            self._wait_for_room()
        self._queue.append((step, time.time(), values))
        n = len(values)
        self._appended += n
        self._since_wake += n
        if self._since_wake >= self._batch_points:
            self._since_wake = 0
            self._wake.set()

    def append_sample(self, step: int, values: dict) -> None:
        """``append`` for the one other thread that logs (the system-metrics sampler): its own
        count, so that the training thread's count is never raced. Never waits."""
        self._queue.append((step, time.time(), values))
        self._sampled += len(values)

    def _wait_for_room(self) -> None:
        started = time.monotonic()
        while (self._appended - self._taken >= self._max_buffered and self._thread.is_alive()
               and not self._stop.is_set()):
            self._room.clear()
            self._wake.set()
            self._room.wait(0.05)
            if not self._waited_warning and time.monotonic() - started > WAIT_WARNING_S:
                self._waited_warning = True
                warnings.warn(f"runlock: {self.buffered_points} metric points of run {self.run_id} wait to be "
                              f"written (max_buffered={self._max_buffered}); log() waits for the store to "
                              "catch up.", RuntimeWarning, stacklevel=4)

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
        """Flush, stop the thread and give up what it could not write; True when every point
        appended was written (``unwritten_points`` is then 0)."""
        ok = self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if self.unwritten_points and self.loss_reason is None:
            self.loss_reason = (self.failing and f"the store refused them ({self.failing})") or \
                "the store did not take them in time"
        return ok and self.unwritten_points == 0

    @property
    def last_step(self) -> int | None:
        return self._last_step

    @property
    def buffered_points(self) -> int:
        return self._appended + self._sampled - self._taken

    @property
    def appended_points(self) -> int:
        return self._appended + self._sampled

    @property
    def unwritten_points(self) -> int:
        """Points appended that are not (or not yet) in the store: after ``close``, the lost ones."""
        return self._appended + self._sampled - self.written_points

    # the writer thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        pending: list[Row] = []
        markers: list[_Marker] = []
        pause, retry_at = 0.0, 0.0
        next_beat = time.monotonic() + self.settings.heartbeat_s
        while True:
            try:
                now = time.monotonic()
                self._wake.wait(retry_at - now if retry_at > now else self.settings.interval_ms / 1000)
                self._wake.clear()
                if retry_at > time.monotonic():    # woken while pausing: make room, do not retry yet
                    self._bound(markers)           # (a failing store is not retried faster on a flush)
                    if self._stop.is_set():
                        self._give_up(pending, markers, "the run ended while the store refused them")
                        return
                    continue
                retry_at = 0.0
                while True:
                    self._take(pending, markers)
                    if pending and not self._write(pending, markers):
                        self._bound(markers)
                        pause = min(self.settings.max_retry_s, max(0.05, pause * 2))
                        retry_at = time.monotonic() + pause
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
                if self._stop.is_set() and (retry_at or not self._queue):
                    self._give_up(pending, markers, "the run ended while the store refused them")
                    return
            except Exception as e:  # noqa: BLE001 - the thread must never die with points queued
                self._give_up(pending, markers, f"the metric writer failed ({type(e).__name__}: {e})",
                              queued=False)
                pause, retry_at = 0.0, 0.0

    def _take(self, pending: list[Row], markers: list[_Marker]) -> None:
        """Move queued entries into ``pending`` (up to one batch); stop after a flush marker."""
        limit = self._batch_points * 4
        queue, seq, taken, run_id, rank = self._queue, self._seq, 0, self.run_id, self.rank
        try:
            while queue and len(pending) < limit:
                entry = queue.popleft()
                if type(entry) is _Marker:
                    self._reached(entry, markers)
                    break
                step, t, values = entry
                seq += 1
                taken += len(values)
                for key, value in values.items():
                    if value - value == 0.0:   # finite
                        pending.append((run_id, key, step, rank, seq, value, None, t))
                    else:
                        pending.append((run_id, key, step, rank, seq, None, encode(value)[1], t))
        finally:   # the counts stay true even if an entry could not be taken
            self._seq = seq
            self._taken += taken
            self._room.set()

    def _reached(self, marker: _Marker, markers: list[_Marker]) -> None:
        # drops take entries from the front of the queue, so every drop so far came before it
        marker.lost = self.dropped_points - marker.dropped_before
        markers.append(marker)

    def _write(self, pending: list[Row], markers: list[_Marker]) -> bool:
        """Try to write ``pending``; True when it is done with (written, or given up on)."""
        try:
            self.store.db.run_write(lambda conn: self._insert(conn, pending))
        except SealedError:
            self._give_up(pending, markers, "the run was sealed before they were written", queued=False)
            if self._on_sealed:
                self._on_sealed()
            return True
        except IntegrityError:
            try:
                self._renumber(pending)   # another handle logged under the same rank meanwhile
            except Exception as e:  # noqa: BLE001
                return self._unexpected_failure(pending, markers, e)
            return False
        except RunlockError as e:
            if self.failing is None:
                warnings.warn(f"runlock: cannot write metrics of run {self.run_id} yet ({e}); keeping "
                              "them buffered in memory and retrying.", RuntimeWarning, stacklevel=1)
            self.failing = str(e)
            return False
        except Exception as e:  # noqa: BLE001 - e.g. a driver error that was not translated
            return self._unexpected_failure(pending, markers, e)
        if self.failing is not None:
            warnings.warn(f"runlock: the store takes metrics of run {self.run_id} again.",
                          RuntimeWarning, stacklevel=1)
        self.failing = None
        self._unexpected = 0
        self.written_points += len(pending)
        top = max(map(itemgetter(2), pending))
        self._last_step = top if self._last_step is None else max(self._last_step, top)
        return True

    def _unexpected_failure(self, pending: list[Row], markers: list[_Marker], error: Exception) -> bool:
        """Retry a batch that failed with an unexpected error twice, then drop it (counted)."""
        self._unexpected += 1
        if self._unexpected < UNEXPECTED_ATTEMPTS:
            return False
        self._unexpected = 0
        self._give_up(pending, markers, f"writing them failed ({type(error).__name__}: {error})", queued=False)
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
        excess = self.buffered_points - self._max_buffered
        dropped = 0
        while excess >= 0 and self._queue:   # >= : leave room for the call that waits
            entry = self._queue.popleft()
            if type(entry) is _Marker:
                self._reached(entry, markers)
                continue
            n = len(entry[2])
            excess -= n
            dropped += n
            self.dropped_points += n
            self._taken += n
        self._room.set()
        if dropped:
            self.loss_reason = self.loss_reason or f"the store refused them for too long ({self.failing})"
            warnings.warn(f"runlock: the store has refused metrics of run {self.run_id} for a while "
                          f"({self.failing}); dropped the {dropped} oldest buffered points "
                          f"({self.dropped_points} so far).", RuntimeWarning, stacklevel=1)

    def _give_up(self, pending: list[Row], markers: list[_Marker], why: str, *, queued: bool = True) -> None:
        """Drop ``pending`` and (``queued``) everything still queued: the run is sealed, closing
        while the store fails, or a batch kept failing."""
        lost = len(pending)
        pending.clear()
        while queued and self._queue:
            entry = self._queue.popleft()
            if type(entry) is _Marker:
                self._reached(entry, markers)
            else:
                lost += len(entry[2])
                self._taken += len(entry[2])
        self.dropped_points += lost
        for m in markers:
            m.lost += lost
            m.done.set()
        markers.clear()
        self._room.set()
        if lost:
            self.loss_reason = self.loss_reason or why
            warnings.warn(f"runlock: {lost} points of run {self.run_id} were not written: {why}.",
                          RuntimeWarning, stacklevel=1)

    def _beat(self, due: float) -> float:
        """Refresh the run's heartbeat if it is due; return when the next one is."""
        if time.monotonic() < due:
            return due
        try:
            records.heartbeat(self.store, self.run_id, None)
        except Exception:  # noqa: BLE001 - the next beat will try again; a missed beat is not an error
            pass
        return time.monotonic() + self.settings.heartbeat_s


def _sqlite_insert(conn: Connection) -> str:
    """The INSERT for ``metrics`` as SQLAlchemy compiles it for SQLite, columns in table order."""
    compiled = metrics.insert().values({c: sa.bindparam(c) for c in COLUMNS}).compile(dialect=conn.dialect)
    assert tuple(compiled.positiontup) == COLUMNS
    return str(compiled)


def _latest(pending: list[Row]) -> dict[str, tuple[int, float | None, str | None]]:
    """The last logged point of each key in a batch: ``{key: (step, value, raw)}``."""
    return {r[1]: (r[2], r[5], r[6]) for r in pending}
