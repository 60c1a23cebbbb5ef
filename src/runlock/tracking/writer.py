"""The metric writer: ``log`` appends to memory and returns; a thread writes batches.

A batch is written every ``batch_points`` points or ``interval_ms`` milliseconds, whichever comes
first, in one transaction. ``flush`` blocks until every point logged before it is durable.
When the store cannot take a batch (disk full, lost connection, locked database), the points stay
buffered (at most ``max_buffered``; beyond that the oldest are dropped with a warning), and the
writer retries; the training loop never sees the failure. The same thread sends the heartbeat.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from runlock.errors import RunlockError, SealedError
from runlock.store import Store
from runlock.store.schema import metrics
from runlock.tracking import records

Point = tuple[str, int, float | None, str | None, float, int]  # key, step, value, raw, time, seq


@dataclass(frozen=True)
class WriterSettings:
    batch_points: int = 2000
    interval_ms: int = 200
    max_buffered: int = 5_000_000
    heartbeat_s: float = records.HEARTBEAT_SECONDS


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
        self._buf: list[Point] = []
        self._cond = threading.Condition()
        self._seq = start_seq
        self._durable_seq = start_seq
        self._last_step: int | None = None
        self._stop = False
        self._failing: str | None = None
        self._on_sealed = on_sealed
        self._thread = threading.Thread(target=self._loop, name=f"runlock-writer-{run_id[-6:]}", daemon=True)
        self._thread.start()

    # called from the training loop ----------------------------------------------------------
    def append(self, items: list[tuple[str, float]], step: int) -> None:
        now = time.time()
        with self._cond:
            for key, value in items:
                self._seq += 1
                v, raw = encode(value)
                self._buf.append((key, step, v, raw, now, self._seq))
            if len(self._buf) > self.settings.max_buffered:
                dropped = len(self._buf) - self.settings.max_buffered
                del self._buf[:dropped]
                warnings.warn(f"runlock: the store has not taken metrics for a while ({self._failing}); "
                              f"dropped the {dropped} oldest buffered points.", RuntimeWarning, stacklevel=3)
            if len(self._buf) >= self.settings.batch_points:
                self._cond.notify()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every point appended so far is durable; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._seq
            self._cond.notify_all()
            while self._durable_seq < target and self._thread.is_alive():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(timeout=0.05 if remaining is None else min(0.05, remaining))
                self._cond.notify_all()
            return self._durable_seq >= target

    def close(self, timeout: float | None = None) -> bool:
        ok = self.flush(timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        return ok

    @property
    def last_step(self) -> int | None:
        return self._last_step

    # the writer thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        next_beat = time.monotonic() + self.settings.heartbeat_s
        while True:
            with self._cond:
                if not self._buf and not self._stop:
                    self._cond.wait(timeout=self.settings.interval_ms / 1000)
                batch = self._buf[: self.settings.batch_points * 5]
                stop = self._stop and not self._buf
            if stop:
                return
            if batch and self._write(batch):
                with self._cond:
                    del self._buf[: len(batch)]
                    self._durable_seq = batch[-1][5]
                    self._cond.notify_all()
            elif batch:
                time.sleep(min(1.0, self.settings.interval_ms / 1000))
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.settings.heartbeat_s
                self._beat()
            if self._stop and self._failing:
                return

    def _write(self, batch: list[Point]) -> bool:
        rows = [{"run_id": self.run_id, "key": k, "step": s, "rank": self.rank, "seq": q,
                 "value": v, "raw": r, "time": t} for k, s, v, r, t, q in batch]
        top = max(p[1] for p in batch)

        def write(conn: Connection) -> None:
            records.require_running(conn, self.run_id)
            conn.execute(metrics.insert(), rows)
            conn.execute(records.runs.update().where(records.runs.c.id == self.run_id).values(
                last_step=sa.func.coalesce(sa.func.max(records.runs.c.last_step, top), top)
                if conn.dialect.name == "sqlite" else sa.func.greatest(
                    sa.func.coalesce(records.runs.c.last_step, top), top)))

        try:
            self.store.db.run_write(write)
        except SealedError:
            with self._cond:
                self._buf.clear()
                self._durable_seq = self._seq
                self._cond.notify_all()
            if self._on_sealed:
                self._on_sealed()
            return False
        except RunlockError as e:
            if self._failing is None:
                warnings.warn(f"runlock: cannot write metrics yet ({e}); keeping them buffered and retrying.",
                              RuntimeWarning, stacklevel=1)
            self._failing = str(e)
            return False
        self._failing = None
        self._last_step = top if self._last_step is None else max(self._last_step, top)
        return True

    def _beat(self) -> None:
        try:
            records.heartbeat(self.store, self.run_id, None)
        except RunlockError:
            pass  # the next beat will try again; a missed beat is not an error
