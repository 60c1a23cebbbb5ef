"""The client's on-disk spool: points wait in local SQLite until the server acknowledges them.

``run.log`` only appends to an in-memory queue (microseconds). A background thread moves the
queue into the spool file (one transaction per wake-up), ships the oldest spooled points to the
server in compressed batches, and deletes them only once the server answered 2xx. While the
server is down (restarting, network cut) points accumulate in the spool and the thread retries
with backoff; every point carries its sequence number, so a batch delivered twice is stored
once. ``flush`` waits until every point logged before it is acknowledged.

The spool lives in ``$XDG_CACHE_HOME/runlock/spool/RUN_ID.sqlite`` (``RUNLOCK_SPOOL_DIR``); it is
deleted when everything is shipped, and kept (with its path in the warning) when not.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
import warnings
from collections import deque
from pathlib import Path

from runlock.remote.client import Client, ServerUnavailable
from runlock.errors import RunlockError

BATCH_POINTS = 5_000
IDLE_WAKE_S = 0.2
HEARTBEAT_S = 60.0
MAX_BACKOFF_S = 5.0


def spool_dir() -> Path:
    base = os.environ.get("RUNLOCK_SPOOL_DIR")
    if base:
        return Path(base)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "runlock" / "spool"


class Spool:
    """Queue → SQLite file → server, for one run and rank."""

    def __init__(self, client: Client, run_id: str, rank: int = 0, *, path: Path | None = None,
                 start_seq: int = 0) -> None:
        self.client, self.run_id, self.rank = client, run_id, rank
        self.path = path or spool_dir() / f"{run_id}.r{rank}.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._queue: deque = deque()
        # numbers go on after the server's and after any a killed process left in this spool, so
        # no log call of this process is taken for one already stored (and dropped as a repeat)
        start_seq = max(start_seq, _spooled_seq(self.path))
        self._seq = start_seq       # last sequence number given out (training thread only)
        self._acked = start_seq     # every point with seq <= this is on the server
        self._spooled = start_seq   # every point with seq <= this left the queue (shipping thread)
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._closing = False
        self.failing: str | None = None
        self.shipped_points = 0
        self.request_seconds: list[float] = []   # each batch's round trip (bench/bench_server.py)
        self._thread = threading.Thread(target=self._loop, name=f"runlock-spool-{run_id[-6:]}", daemon=True)
        self._db = None
        self._thread.start()

    # -- the training thread ------------------------------------------------------------------------
    def append(self, step: int, values: dict) -> None:
        self._seq += 1
        self._queue.append((self._seq, step, time.time(), values))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every point appended so far is acknowledged by the server."""
        target = self._seq
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._cond:
            while self._acked < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(0.05 if left is None else min(left, 0.05))
                self._wake.set()
        return True

    def close(self, timeout: float | None = None) -> int:
        """Flush (at most ``timeout`` s), stop the thread; the number of points not shipped."""
        done = self.flush(timeout)
        self._closing = True
        self._wake.set()
        self._thread.join(5)
        left = self._seq - self._acked
        if done and left == 0:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        else:
            warnings.warn(f"runlock: {left} points of run {self.run_id} were not acknowledged by the server "
                          f"({self.failing or 'timeout'}); they are kept in {self.path}.", RuntimeWarning, stacklevel=2)
        return left

    @property
    def unshipped(self) -> int:
        return self._seq - self._acked

    # -- the shipping thread --------------------------------------------------------------------------
    def _loop(self) -> None:
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS points (seq INTEGER, key TEXT, step INTEGER, value REAL, "
                         "raw TEXT, time REAL, PRIMARY KEY (seq, key))")
        backoff = 0.0
        last_sent = time.monotonic()
        while True:
            self._wake.wait(backoff or IDLE_WAKE_S)
            self._wake.clear()
            self._spool()
            try:
                sent = self._ship()
                if not sent and time.monotonic() - last_sent > HEARTBEAT_S:
                    self.client.send_points(self.run_id, self.rank, [])
                    sent = True
                if sent:
                    last_sent = time.monotonic()
                backoff, self.failing = 0.0, None
            except ServerUnavailable as e:
                self.failing = e.message
                backoff = min(MAX_BACKOFF_S, max(0.1, backoff * 2))
            except RunlockError as e:   # refused (sealed run, revoked token): keep them spooled
                self.failing = e.message
                backoff = MAX_BACKOFF_S
            if self._closing and (not self._queue and self._pending() == 0 or self.failing):
                break
        self._db.close()

    def _spool(self) -> None:
        if not self._queue:
            return
        rows: list = []
        while self._queue:
            seq, step, when, values = self._queue.popleft()
            self._spooled = seq
            rows += [(seq, k, step, *_encode(v), when) for k, v in values.items()]
            if not values:
                rows.append((seq, "", step, None, "empty", when))   # keeps the seq, shipped as nothing
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO points VALUES (?, ?, ?, ?, ?, ?)", rows)
        self._db.execute("COMMIT")

    def _pending(self) -> int:
        return self._db.execute("SELECT count(*) FROM points").fetchone()[0]

    def _ship(self) -> bool:
        sent = False
        for top, points in _batches(self._db):
            began = time.perf_counter()
            self.client.send_points(self.run_id, self.rank, points)
            self.request_seconds.append(time.perf_counter() - began)
            self.shipped_points += len(points)
            sent = True
            self._ack(top)
        self._ack(self._spooled)
        return sent

    def _ack(self, seq: int) -> None:
        with self._cond:
            if seq > self._acked:
                self._acked = seq
            self._cond.notify_all()


def _spooled_seq(path: Path) -> int:
    """The highest sequence number a spool file on disk holds (0: none, or no file)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT max(seq) FROM points").fetchone()[0] or 0
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def _batches(db: sqlite3.Connection):  # noqa: ANN202 - a generator of (last seq, points)
    """The spooled points, oldest first, in batches of whole log calls; a batch is deleted from the
    spool only when the next is asked for (after the caller shipped it)."""
    while True:
        rows = db.execute("SELECT seq, key, step, value, raw, time FROM points ORDER BY seq, key "
                          "LIMIT ?", (BATCH_POINTS,)).fetchall()
        if not rows:
            return
        top = rows[-1][0]
        if len(rows) == BATCH_POINTS:          # a log call is never split across two batches
            rows = [r for r in rows if r[0] < top] or rows
            top = rows[-1][0]
        yield top, [[k, step, seq, raw if raw is not None else v, t] for seq, k, step, v, raw, t in rows
                    if raw != "empty"]
        db.execute("DELETE FROM points WHERE seq <= ?", (top,))


def drain(client: Client, run_id: str, timeout: float = 60.0) -> int:
    """Ship what processes on this machine left spooled for ``run_id`` (one killed before it
    shipped, or whose server was away at its exit): what ``runlock run`` does before it seals the
    run it started. Returns the log calls still not on the server (their spools are kept)."""
    left = 0
    for path in sorted(spool_dir().glob(f"{run_id}.r*.sqlite")):
        rank = path.name[len(run_id) + 2:-len(".sqlite")]
        if rank.isdigit():
            left += _drain_one(client, run_id, int(rank), path, time.monotonic() + timeout)
    return left


def _drain_one(client: Client, run_id: str, rank: int, path: Path, deadline: float) -> int:
    db = sqlite3.connect(path, isolation_level=None)
    backoff = 0.1
    try:
        while True:
            try:
                for _top, points in _batches(db):
                    client.send_points(run_id, rank, points)
                break
            except sqlite3.OperationalError:      # the process died before it made the table
                break
            except ServerUnavailable:
                if time.monotonic() + backoff > deadline:
                    break
                time.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
            except RunlockError:                  # refused (sealed run, revoked token)
                break
        try:
            left = db.execute("SELECT count(DISTINCT seq) FROM points").fetchone()[0]
        except sqlite3.OperationalError:
            left = 0
    finally:
        db.close()
    if left == 0:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        warnings.warn(f"runlock: {left} points of run {run_id} could not be sent to the server; they are kept "
                      f"in {path}.", RuntimeWarning, stacklevel=3)
    return left


def _encode(v: float) -> tuple[float | None, str | None]:
    if math.isfinite(v):
        return v, None
    return None, "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
