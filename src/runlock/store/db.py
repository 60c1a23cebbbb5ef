"""The metadata database: SQLAlchemy Core over SQLite (default) or PostgreSQL.

``Database`` only stores its URL; ``connect`` creates the engine lazily. Writes go through
``write()``, which on SQLite takes the write lock up front (``BEGIN IMMEDIATE``) so that two
writers never deadlock upgrading a read lock, and retries while the database stays locked.
Driver errors are translated into ``runlock.errors`` here, where they enter.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from runlock.errors import InvalidInput, StoreBusy, StoreError

T = TypeVar("T")
BUSY_TIMEOUT_MS = 30_000
WRITE_ATTEMPTS = 20


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def read_only(self) -> bool:
        """True for a SQLite file on a read-only filesystem (or in a folder we may not write):
        it is opened immutable, reads work, and every write is refused with a clear error."""
        return _sqlite_read_only(self.url)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = _make_engine(self.url)
        return self._engine

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with _translated(self.url):
            with self.engine.connect() as conn:
                yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction. Prefer ``run_write`` when the body can be retried."""
        with _translated(self.url):
            with self.engine.connect() as conn:
                conn = conn.execution_options(runlock_write=True)
                with conn.begin():
                    yield conn

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        """Hold the database-wide lock ``name`` while the body runs, so that clients doing the
        same check-then-create work (``runlock init``) take turns. PostgreSQL: a session advisory
        lock. SQLite needs none: every write transaction already holds the one write lock."""
        if self.is_sqlite:
            yield
            return
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with _translated(self.url):
            conn = self.engine.connect()
            try:
                conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
                conn.commit()
            except BaseException:
                conn.invalidate()
                conn.close()
                raise
        try:
            yield
        finally:
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()
            except DBAPIError:
                conn.invalidate()   # the session ends, and its lock with it
            finally:
                conn.close()

    def run_write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction, retrying while the database is locked."""
        delay = 0.01
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self.write() as conn:
                    return fn(conn)
            except StoreBusy:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")


def _sqlite_path(url: str) -> str | None:
    path = sa.engine.make_url(url).database if url.startswith("sqlite") else None
    return path if path and path != ":memory:" else None


def _sqlite_read_only(url: str) -> bool:
    path = _sqlite_path(url)
    return bool(path) and os.path.exists(path) and not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)


def _make_engine(url: str) -> Engine:
    if _sqlite_read_only(url):
        uri = f"file:{_sqlite_path(url)}?immutable=1"
        return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "isolation_level": None})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get("runlock_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as e:
        raise StoreError(f"The database driver for {url.split(':', 1)[0]} is not installed ({e.name}).",
                         hint="Install it with `pip install 'runlock[postgres]'`.") from e
    except sa.exc.ArgumentError as e:
        raise StoreError(f"Cannot use database URL {_redact(url)}: {e}.") from e


def _redact(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable url>"


_BUSY_MARKERS = ("database is locked", "database table is locked", "busy",
                 "could not serialize access", "deadlock detected")
_DAMAGED_MARKERS = ("file is not a database", "malformed", "file is encrypted")


def _damaged(url: str, e: DBAPIError) -> StoreError:
    """SQLite's own corruption report, as one sentence naming the file and what to do."""
    path = _sqlite_path(url) or _redact(url)
    return StoreError(f"The metadata database {path} is damaged ({e.orig}); runlock cannot read it.",
                      hint=f"Restore it from a backup, or salvage what SQLite can read with "
                           f"`sqlite3 {path} .recover | sqlite3 recovered.db` and put that in its place.")


@contextmanager
def _translated(url: str) -> Iterator[None]:
    try:
        yield
    except UnicodeEncodeError as e:   # a lone surrogate (an undecodable byte of argv, say) in a value
        raise InvalidInput(f"Text {e.object[max(0, e.start - 20):e.end + 20]!r} is not valid Unicode "
                           f"({e.reason}); the metadata database stores only UTF-8 text.") from None
    except OverflowError as e:   # the driver refuses a Python int wider than 64 bits
        raise InvalidInput(f"A number is too large for the metadata database ({e}).",
                           hint=f"Use whole numbers up to {2**63 - 1}.") from None
    except sa.exc.DataError as e:   # PostgreSQL: a value out of its column's range
        raise InvalidInput(f"The metadata database refused a value: {str(e.orig).strip().splitlines()[0]}.")\
            from None
    except OperationalError as e:
        text = str(e.orig).lower() if e.orig is not None else str(e).lower()
        if any(m in text for m in _DAMAGED_MARKERS):
            raise _damaged(url, e) from e
        if any(m in text for m in _BUSY_MARKERS):
            raise StoreBusy(f"The metadata database stayed locked: {e.orig}.",
                            hint="Another process holds a long write; try again.") from e
        if "readonly" in text or "read-only" in text or "read only" in text:
            raise StoreError("The metadata database is read-only here.",
                             hint="Open the store with write permission, or only read from it.") from e
        if "disk" in text and "full" in text or "no space" in text:
            raise StoreError("The disk holding the metadata database is full.",
                             hint="Free some space and retry.") from e
        raise StoreError(f"The metadata database at {_redact(url)} failed: {' '.join(str(e.orig).split())}.") from e
    except DBAPIError as e:
        if any(m in str(e.orig).lower() for m in _DAMAGED_MARKERS):
            raise _damaged(url, e) from e
        if getattr(e, "connection_invalidated", False):
            raise StoreError(f"Lost the connection to the metadata database at {_redact(url)}.",
                             hint="Check that the server is up, then retry.") from e
        raise
